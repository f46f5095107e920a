import type { IncomingMessage, ServerResponse } from 'node:http';
import { admit, type Pass } from '../../admission/admit.js';
import { holdSeconds } from '../../decision/hold.js';
import { clientAnswerHeaders, identityHeaders } from '../../contract/headers.js';
import type { GatewayCore } from '../../core/gateway-core.js';
import { problem, renderProblem, type Problem } from '../../errors/problems.js';
import { sendProblem } from '../../http/respond.js';
import { NO_POLICY, REJECTED_ROUTE } from '../../metrics/metrics.js';
import { hasBody } from '../../request/body.js';
import type { RequestSource } from '../../request/canonical.js';
import type { RequestView } from '../../request/view.js';
import { rebuildOriginal, syntheticRequest, type AuthzKind } from './rebuild.js';

/**
 * nginx `auth_request` turns every status but 2xx/401/403 into a bare 500 and drops the body, so the
 * auth-request answer also carries the real status and the problem body in headers; the nginx
 * example copies them with `auth_request_set` and replays them from an `error_page` location
 * (docs/plugin-mode.md). The other proxies pass the problem response through as it is.
 */
export const PROBLEM_STATUS_HEADER = 'x-problem-status';
export const PROBLEM_BODY_HEADER = 'x-problem-body';
/**
 * Sent as `on` by an nginx that holds the allows it may (the example's proxy_cache): only then are
 * sessions read through to the store and allows marked with X-Accel-Expires. Without it every
 * request is asked about, and the in-process caches serve as they do for the proxy door.
 */
const HOLD_REQUEST_HEADER = 'x-auth-request-cache';

/** A header value must be ASCII without control characters; JSON escapes the rest. */
function asciiJson(body: string): string {
  return body.replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** The status and body in headers, which the nginx example replays: on every auth-request refusal. */
function authRequestProblemHeaders(p: Problem, requestId: string | undefined): Record<string, string> {
  const rendered = renderProblem(p, requestId);
  return { [PROBLEM_STATUS_HEADER]: String(rendered.status), [PROBLEM_BODY_HEADER]: asciiJson(rendered.body) };
}

/**
 * For a refusal by `admit()` before any door is chosen: the auth-request call's own headers are
 * the client's credentials, so a repeated or oversized one is refused while the call itself is
 * read. When the request `admit()` read targets the auth-request endpoint (nginx asks for exactly
 * that path), the refusal carries the same headers as the door's own, or nginx would answer the
 * client a bare 502 instead of its 400 or 431.
 */
export function earlyAuthRequestHeaders(admitted: Pick<RequestSource, 'url'>, pass: Pass, p: Problem): Record<string, string> | undefined {
  return admitted.url === `${pass.runtime.policy.mfa.pathPrefix}authz/auth-request` ? authRequestProblemHeaders(p, undefined) : undefined;
}

/**
 * Front door 2: `<prefix>authz/<kind>` for proxies that do their own forwarding. The original
 * request is rebuilt from the proxy's headers and walks the same admission path as a proxied
 * request (canonicalise, decide), on the runtime the auth call pinned; the answer is 200 + the
 * identity headers of the header contract, or exactly the problem response the reverse proxy
 * would send.
 */
export async function serveForwardAuth(core: GatewayCore, pass: Pass, req: IncomingMessage, res: ServerResponse, view: RequestView, kind: string): Promise<void> {
  const { metrics, logger } = core;
  const { runtime } = pass;
  const requestId = view.requestId;
  // A forward-auth call has no use for a body; one that sends it never gets its connection reused.
  const close = hasBody(req);

  function refuse(p: Problem, family: AuthzKind | undefined, id = requestId): void {
    sendProblem(res, p, id, family === 'auth-request' ? authRequestProblemHeaders(p, id) : undefined, close);
  }

  // Anyone who can reach this endpoint chooses the request being judged: only trusted proxies may.
  const peer = req.socket.remoteAddress;
  if (peer === undefined || !runtime.authzTrusted.has(peer)) {
    logger.warn({ event: 'authz_untrusted_peer', request_id: requestId, client: peer }, 'forward-auth call from a peer outside authz.trusted_proxies');
    pass.denied('forbidden');
    refuse(problem('forbidden', 'this endpoint answers trusted proxies only'), undefined);
    return;
  }

  const found = rebuildOriginal(req, kind, view.search);
  if (found === undefined) {
    pass.denied('not_found');
    refuse(problem('not_found', 'no such forward-auth endpoint'), undefined);
    return;
  }
  const family = found.kind;
  if (!found.rebuilt.ok) {
    // The proxy's original request cannot be read one way: counted like an ambiguous request the
    // gateway received itself. The refusals above stay under the reserved route: no request was judged.
    pass.label(REJECTED_ROUTE, NO_POLICY);
    metrics.rejectedRequests.inc({ reason: 'authz_original' });
    pass.denied(found.rebuilt.problem.code);
    refuse(found.rebuilt.problem, family);
    return;
  }

  // The same hallway as a proxied request: a `..` in X-Original-URL is a 400, never a 200.
  // Read with the authz trust list: the proxy's X-Request-Id becomes the decision's id, so the
  // proxy's log, the gateway's and the backend's line up. Without one, the decision keeps the id
  // this call already has, as its early refusals do.
  const admitted = admit(core, pass, syntheticRequest(req, found.rebuilt.original), {
    door: family,
    trusted: runtime.authzTrusted,
    reserved: false,
    forCache: family === 'auth-request' && req.headers[HOLD_REQUEST_HEADER] === 'on',
    requestId,
  });
  const admission = admitted instanceof Promise ? await admitted : admitted;
  if (admission.kind === 'refused') {
    refuse(admission.problem, family, admission.requestId ?? requestId);
    return;
  }
  const { decision } = admission;
  const headers = identityHeaders(decision.identity, admission.view.requestId);
  // nginx may keep an allow that holds long enough (docs/plugin-mode.md); nothing else may. Not
  // beside Cache-Control: no-store, which nginx 1.22 lets win when it comes first.
  const hold = holdSeconds(decision.holdUntil, pass.now);
  if (hold > 0) headers.push('x-accel-expires', String(hold), 'content-length', '0');
  else headers.push('cache-control', 'no-store', 'content-length', '0');
  // For the proxy to hand to the client (session, RateLimit); never to copy onto the backend request.
  const answer = clientAnswerHeaders(decision);
  if (answer !== undefined) for (const [name, value] of Object.entries(answer)) headers.push(name, value);
  if (close) headers.push('connection', 'close');
  res.writeHead(200, headers);
  res.end();
}
