import type { IncomingMessage, ServerResponse } from 'node:http';
import { problem, renderProblem, type Problem } from '../errors/problems.js';
import { canonicalizeRequest } from '../request/canonical.js';
import type { RequestView } from '../request/view.js';
import type { GatewayCore, PolicyRuntime } from '../server/core.js';
import { sendProblem } from '../server/respond.js';
import { identityHeaders } from './identity.js';
import { rebuildOriginal, syntheticRequest, type AuthzKind } from './rebuild.js';
import { hasBody } from '../request/body.js';

/**
 * nginx `auth_request` turns every status but 2xx/401/403 into a bare 500 and drops the body, so the
 * auth-request answer also carries the real status and the problem body in headers; the nginx
 * example copies them with `auth_request_set` and replays them from an `error_page` location
 * (docs/plugin-mode.md). The other proxies pass the problem response through as it is.
 */
export const PROBLEM_STATUS_HEADER = 'x-problem-status';
export const PROBLEM_BODY_HEADER = 'x-problem-body';

/** A header value must be ASCII without control characters; JSON escapes the rest. */
function asciiJson(body: string): string {
  return body.replace(/[\u007f-\uffff]/g, (ch) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * Front door 2: `<prefix>authz/<kind>` for proxies that do their own forwarding. The original
 * request is rebuilt from the proxy's headers, canonicalised with the same function as a proxied
 * request, and decided by the same `core.decide`; the answer is 200 + identity headers or exactly
 * the problem response the reverse proxy would send.
 */
export async function handleForwardAuth(
  core: GatewayCore,
  runtime: PolicyRuntime,
  req: IncomingMessage,
  res: ServerResponse,
  view: RequestView,
  kind: string,
): Promise<void> {
  const { metrics, logger } = core;
  const requestId = view.requestId;
  const close = hasBody(req) ? { connection: 'close' } : undefined;

  function refuse(p: Problem, family: AuthzKind | undefined, extra?: Record<string, string>): void {
    metrics.denials.inc({ code: p.code });
    const headers: Record<string, string> = { ...extra, ...close };
    if (family === 'auth-request') {
      const rendered = renderProblem(p, requestId);
      headers[PROBLEM_STATUS_HEADER] = String(rendered.status);
      headers[PROBLEM_BODY_HEADER] = asciiJson(rendered.body);
    }
    sendProblem(res, p, requestId, Object.keys(headers).length > 0 ? headers : undefined);
  }

  // Anyone who can reach this endpoint chooses the request being judged: only trusted proxies may.
  const peer = req.socket.remoteAddress;
  if (peer === undefined || !runtime.authzTrusted.has(peer)) {
    logger.warn({ event: 'authz_untrusted_peer', request_id: requestId, client: peer }, 'forward-auth call from a peer outside authz.trusted_proxies');
    refuse(problem('forbidden', 'this endpoint answers trusted proxies only'), undefined);
    return;
  }

  const found = rebuildOriginal(req, kind, view.search);
  if (found === undefined) {
    refuse(problem('not_found', 'no such forward-auth endpoint'), undefined);
    return;
  }
  const family = found.kind;
  if (!found.rebuilt.ok) {
    metrics.rejectedRequests.inc({ reason: 'authz_original' });
    refuse(found.rebuilt.problem, family);
    return;
  }

  // The same canonical checks as a proxied request: a `..` in X-Original-URL is a 400, never a 200.
  const canonical = canonicalizeRequest(syntheticRequest(req, found.rebuilt.original), {
    trustedProxies: runtime.authzTrusted,
    maxTokenBytes: runtime.policy.auth.jwt.maxTokenBytes,
  });
  if (!canonical.ok) {
    metrics.rejectedRequests.inc({ reason: canonical.reason });
    refuse(canonical.problem, family);
    return;
  }
  // One id for the auth call and the decision it carries, so logs of both line up.
  const original: RequestView = { ...canonical.view, requestId };

  const decision = await core.decide(original, runtime);
  if (decision.kind === 'deny') {
    logger.info(
      { event: 'denied', request_id: requestId, code: decision.problem.code, route: decision.route?.name, method: original.method, path: original.path, client: original.clientIp, door: family },
      'request denied',
    );
    refuse(decision.problem, family);
    return;
  }

  const headers: Record<string, string> = {
    ...identityHeaders(decision.identity, requestId),
    'cache-control': 'no-store',
    'content-length': '0',
    ...close,
  };
  if (decision.session !== undefined) {
    headers['x-session-token'] = decision.session.token;
    headers['x-session-expires'] = String(decision.session.expiresAt);
  }
  res.writeHead(200, headers);
  res.end();
}
