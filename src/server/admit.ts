import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Decision } from '../decision/types.js';
import { canonicalizeRequest, type RequestSource } from '../request/canonical.js';
import type { RequestView } from '../request/view.js';
import type { GatewayCore, PolicyRuntime } from './core.js';
import { reservedKind, serveReservedPath } from './endpoints.js';
import { sendProblem } from './respond.js';
import { hasBody } from '../request/body.js';

export interface Admitted {
  readonly runtime: PolicyRuntime;
  readonly view: RequestView;
  readonly decision: Extract<Decision, { kind: 'allow' }>;
}

export interface AdmitOptions {
  /** For logs: which front door asked. */
  readonly door: 'proxy' | 'guard';
  /** What to canonicalise when it is not `req` itself (a middleware mounted under a path). */
  readonly source?: RequestSource;
  /** Runs before the gateway answers on its own (Fastify must be told to stand aside). */
  readonly beforeAnswer?: () => void;
}

/**
 * The front half of every request, shared by the reverse proxy and the middleware: pin the policy
 * runtime, canonicalise, answer the reserved prefix, decide, and answer refusals. Resolves to the
 * allowed request for the caller to act on, or undefined when the gateway already answered.
 * Metrics and the runtime pin are settled when the response closes, whoever answers it.
 */
export async function admitRequest(core: GatewayCore, req: IncomingMessage, res: ServerResponse, options: AdmitOptions): Promise<Admitted | undefined> {
  const { metrics, logger } = core;
  const started = performance.now();
  const runtime = core.acquire();
  let routeLabel = '(none)';
  let policyLabel = '(none)';
  res.once('close', () => {
    metrics.requests.inc({ route: routeLabel, policy: policyLabel, status: String(res.statusCode) });
    metrics.requestDuration.observe({ route: routeLabel }, (performance.now() - started) / 1000);
    core.release(runtime);
  });

  const canonical = canonicalizeRequest(options.source ?? req, { trustedProxies: runtime.trusted, maxTokenBytes: runtime.policy.auth.jwt.maxTokenBytes });
  if (!canonical.ok) {
    routeLabel = '(rejected)';
    metrics.rejectedRequests.inc({ reason: canonical.reason });
    metrics.denials.inc({ code: canonical.problem.code });
    options.beforeAnswer?.();
    // An ambiguous request may hide a second one in its body: never read on from this socket.
    sendProblem(res, canonical.problem, undefined, { connection: 'close' });
    return undefined;
  }
  const view = canonical.view;

  const prefix = runtime.policy.mfa.pathPrefix;
  if (view.path.startsWith(prefix)) {
    const subpath = view.path.slice(prefix.length);
    routeLabel = '(gateway)';
    policyLabel = reservedKind(subpath);
    options.beforeAnswer?.();
    await serveReservedPath(core, runtime, req, res, view, subpath);
    return undefined;
  }

  const decision = await core.decide(view, runtime);
  if (decision.route !== undefined) {
    routeLabel = decision.route.name;
    policyLabel = decision.route.policy;
  }
  if (decision.kind === 'deny') {
    metrics.denials.inc({ code: decision.problem.code });
    logger.info(
      { event: 'denied', door: options.door, request_id: view.requestId, code: decision.problem.code, route: decision.route?.name, method: view.method, path: view.path, client: view.clientIp },
      'request denied',
    );
    options.beforeAnswer?.();
    // A refused request's body is never wanted; closing is cheaper and safer than draining it.
    sendProblem(res, decision.problem, view.requestId, hasBody(req) ? { connection: 'close' } : undefined);
    return undefined;
  }
  return { runtime, view, decision };
}
