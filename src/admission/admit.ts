import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import { then, type Awaitable } from '../async/awaitable.js';
import type { GatewayCore, PolicyRuntime } from '../core/gateway-core.js';
import { decide } from '../decision/engine.js';
import type { Allow } from '../decision/types.js';
import type { Problem } from '../errors/problems.js';
import { whenClosed, type CloseWatcher } from '../http/closed.js';
import { NO_POLICY, REJECTED_ROUTE, UNMATCHED_ROUTE } from '../metrics/metrics.js';
import { canonicalizeRequest, type RequestSource } from '../request/canonical.js';
import type { TrustList } from '../request/trust.js';
import type { RequestView } from '../request/view.js';

/**
 * The one hallway every front door walks: pin the policy runtime and the clock, canonicalise,
 * decide (reserved prefix, route, bearer, scopes, second factor), count and log the outcome. A door
 * only translates its input into a `RequestSource` and the `Admission` into its own output shape
 * (a proxied response, a 101, a forward-auth answer, `next()`), using the header contract in
 * src/contract. Nothing here writes to a socket.
 */

/** Which front door asked; a label in logs. */
export type Door = 'proxy' | 'websocket' | 'middleware' | 'auth-request' | 'forward-auth' | 'ext-authz';

export type Admission =
  | {
      readonly kind: 'refused';
      readonly problem: Problem;
      /** Undefined only when the request could not even be read into a view. */
      readonly requestId: string | undefined;
      /** The request was ambiguous: whatever follows it on the connection must never be read. */
      readonly ambiguous: boolean;
    }
  | { readonly kind: 'allowed'; readonly view: RequestView; readonly decision: Allow };

/**
 * One request's hold on the gateway: the runtime it pinned (its policy, pools and keys, whatever
 * reloads happen meanwhile) and the one clock reading every stage uses. `settle` records the
 * request's metrics and unpins the runtime; only the first call counts, so a door may call it
 * from every way a request can end.
 */
export class Pass implements CloseWatcher {
  readonly runtime: PolicyRuntime;
  readonly now: number;
  private readonly started = performance.now();
  private routeLabel = UNMATCHED_ROUTE;
  private policyLabel = NO_POLICY;
  private settled = false;

  constructor(private readonly core: GatewayCore) {
    // The clock first: a throw there must not leave a runtime pinned with no pass to release it.
    this.now = core.clock();
    this.runtime = core.acquire();
  }

  label(route: string, policy: string): void {
    this.routeLabel = route;
    this.policyLabel = policy;
  }

  /**
   * Counts a refusal under the route the request is labelled with now, so that denials and
   * requests_total name the same route for the same answer.
   */
  denied(code: string): void {
    this.core.metrics.denials.inc({ code, route: this.routeLabel });
  }

  /** Settles with the response's status when it closes, however it ends. */
  settleWhenClosed(res: ServerResponse): void {
    whenClosed(res, this);
  }

  responseClosed(res: ServerResponse): void {
    this.settle(res.statusCode);
  }

  settle(status: number): void {
    if (this.settled) return;
    this.settled = true;
    this.core.metrics.requestCells(this.routeLabel, this.policyLabel).record(status, (performance.now() - this.started) / 1000);
    this.core.release(this.runtime);
  }
}

export interface AdmitOptions {
  readonly door: Door;
  /** Peers whose forwarding headers are believed (default: the policy's `trusted_proxies`). */
  readonly trusted?: TrustList;
  /**
   * Serve the reserved prefix as the gateway's own endpoints (default true). False for a request
   * rebuilt by forward-auth: the proxy's question about its own backend is decided by routes only.
   */
  readonly reserved?: boolean;
  /** The answer may be held by a cache in front (nginx auth_request): see DecisionDeps.forCache. */
  readonly forCache?: boolean;
  /** The request's id unless a trusted peer chose one (see CanonicalOptions.requestId). */
  readonly requestId?: string;
}

/** Answered without a promise when every stage's answer is in memory (src/async/awaitable.ts). */
export function admit(core: GatewayCore, pass: Pass, source: RequestSource, options: AdmitOptions): Awaitable<Admission> {
  const { metrics, logger } = core;
  const { runtime } = pass;
  const canonical = canonicalizeRequest(source, {
    trustedProxies: options.trusted ?? runtime.trusted,
    maxTokenBytes: runtime.policy.auth.jwt.maxTokenBytes,
    requestId: options.requestId,
  });
  if (!canonical.ok) {
    pass.label(REJECTED_ROUTE, NO_POLICY);
    metrics.rejectedRequests.inc({ reason: canonical.reason });
    pass.denied(canonical.problem.code);
    return { kind: 'refused', problem: canonical.problem, requestId: undefined, ambiguous: true };
  }
  const view = canonical.view;

  const decided = decide(view, {
    policy: runtime.policy,
    bearer: runtime.bearer,
    secondFactor: core.mfa,
    limiter: core.limiter,
    now: pass.now,
    reserved: options.reserved ?? true,
    forCache: options.forCache === true,
  });
  return then(decided, (decision): Admission => {
    // Always relabelled: a forward-auth question arrives labelled with the reserved route that
    // received it, and must be counted under the user route that decided it, or none, as when proxied.
    const route = decision.route;
    if (route !== undefined) pass.label(route.name, route.policy);
    else pass.label(UNMATCHED_ROUTE, NO_POLICY);
    if (decision.kind === 'deny') {
      pass.denied(decision.problem.code);
      logger.info(
        { event: 'denied', door: options.door, request_id: view.requestId, client_request_id: view.clientRequestId, code: decision.problem.code, route: decision.route?.name, method: view.method, path: view.path, client: view.clientIp },
        'request denied',
      );
      return { kind: 'refused', problem: decision.problem, requestId: view.requestId, ambiguous: false };
    }
    return { kind: 'allowed', view, decision };
  });
}
