import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { cellCounter, cellHistogram, type CellCounter, type CellHistogram, type CounterCell, type HistogramCell } from './cells.js';

/**
 * How each metric adds up over the workers of `serve --workers N` (src/cluster/aggregate.ts), where
 * the primary merges every worker's registry into one scrape with prom-client's aggregator:
 * - counters and histograms are summed (prom-client's default `aggregator: 'sum'`);
 * - gauges that every worker reads from the same shared state (the store, the key file) would be
 *   counted N times by a sum, so they say `aggregator: 'max'`;
 * - gauges of one process's own state (requests in flight, its upstream pools, the policy version it
 *   runs) are kept apart with a `worker` label instead: a sum would hide the one stuck worker.
 * prom-client's default process metrics carry their own aggregators (sums, and averages/min/max for
 * event-loop lag). With one process none of this matters: the registry is exposed as it is.
 */
export const PER_WORKER_GAUGES: ReadonlySet<string> = new Set([
  'mfa_gateway_in_flight_requests',
  'mfa_gateway_upstream_pool_connected',
  'mfa_gateway_upstream_pool_free',
  'mfa_gateway_upstream_pool_pending',
  'mfa_gateway_upstream_pool_running',
  'mfa_gateway_config_last_reload_timestamp_seconds',
  // Each worker has its own connections: one of them may have lost the store while the others have not.
  'mfa_gateway_store_up',
]);

/**
 * The `route` label of answers that no user route decided. Route names otherwise come from the
 * policy (or the reserved prefix's built-in routes), so the label's values stay bounded.
 * - `(none)`: no route matched (404 route_not_found), or the request ended before one was chosen;
 * - `(rejected)`: the request was refused as ambiguous or malformed before matching (400), whether
 *   the gateway read it itself or rebuilt it from a proxy's forward-auth headers.
 */
export const UNMATCHED_ROUTE = '(none)';
export const REJECTED_ROUTE = '(rejected)';
/** The `policy` label when no route decided. */
export const NO_POLICY = '(none)';

/** Shared with the cluster primary, which counts the reloads it refuses before any worker sees them. */
export const CONFIG_RELOADS_METRIC = {
  name: 'mfa_gateway_config_reloads_total',
  help: 'Policy file reloads, by result (success|failure).',
  labelNames: ['result'] as const,
};

/**
 * Every metric the gateway exports, in one registry per gateway instance (no global registry, so
 * tests and embedded guards can run several side by side). Labels are bounded: route names come
 * from the policy file, statuses are collapsed to their numeric code, reasons are closed unions.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // prom-client names these gauges `*_total`, which Prometheus reserves for counters (promtool rejects them).
  for (const misnamed of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(misnamed);
  }

  const requests = cellCounter({
    name: 'mfa_gateway_requests_total',
    help: 'Requests answered, by route, policy and status.',
    labelNames: ['route', 'policy', 'status'] as const,
    registers: [registry],
  });
  const requestDuration = cellHistogram({
    name: 'mfa_gateway_request_duration_seconds',
    help: 'Time from request start to response end, by route.',
    labelNames: ['route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });

  return {
    registry,
    requests,
    requestDuration,
    requestCells: requestCellsOf(requests, requestDuration),
    storeCalls: cellCounter({
      name: 'mfa_gateway_store_calls_total',
      help: 'Store operations by backend and operation: each is one SQL statement or transaction, or one Redis script.',
      labelNames: ['backend', 'operation'] as const,
      registers: [registry],
    }),
    storeUp: new Gauge({
      name: 'mfa_gateway_store_up',
      help: 'Whether the store backend answers (1) or not (0); while any is 0, mfa and step_up routes answer 503.',
      labelNames: ['backend'] as const,
      registers: [registry],
    }),
    denials: new Counter({
      name: 'mfa_gateway_denials_total',
      help: 'Requests refused by the gateway, by problem code and the route that refused them.',
      labelNames: ['code', 'route'] as const,
      registers: [registry],
    }),
    rejectedRequests: new Counter({
      name: 'mfa_gateway_rejected_requests_total',
      help: 'Requests rejected before routing as ambiguous or malformed, by reason.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    upstreamRequests: cellCounter({
      name: 'mfa_gateway_upstream_requests_total',
      help: 'Requests sent to upstreams, by upstream and outcome.',
      labelNames: ['upstream', 'outcome'] as const,
      registers: [registry],
    }),
    upstreamRetries: new Counter({
      name: 'mfa_gateway_upstream_retries_total',
      help: 'Upstream retries of idempotent requests, by upstream.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    upstreamConnected: new Gauge({
      name: 'mfa_gateway_upstream_pool_connected',
      help: 'Open connections in the upstream pool.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    upstreamFree: new Gauge({
      name: 'mfa_gateway_upstream_pool_free',
      help: 'Idle keep-alive connections in the upstream pool.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    upstreamPending: new Gauge({
      name: 'mfa_gateway_upstream_pool_pending',
      help: 'Requests waiting for an upstream connection.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    upstreamRunning: new Gauge({
      name: 'mfa_gateway_upstream_pool_running',
      help: 'Requests in flight to the upstream.',
      labelNames: ['upstream'] as const,
      registers: [registry],
    }),
    jwksFetches: new Counter({
      name: 'mfa_gateway_jwks_fetches_total',
      help: 'JWKS fetches, by result.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    tokenCache: cellCounter({
      name: 'mfa_gateway_token_cache_total',
      help: 'Validated-token cache lookups, by result (hit|miss).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    configReloads: new Counter({ ...CONFIG_RELOADS_METRIC, registers: [registry] }),
    configInfo: new Gauge({
      name: 'mfa_gateway_config_last_reload_timestamp_seconds',
      help: 'Unix time of the last successful policy load.',
      registers: [registry],
    }),
    inFlight: new Gauge({
      name: 'mfa_gateway_in_flight_requests',
      help: 'Requests being handled now.',
      registers: [registry],
    }),
    mfaVerifications: cellCounter({
      name: 'mfa_gateway_mfa_verifications_total',
      help: 'Second-factor verifications, by method (totp|hotp|recovery, otp for a code tried against factors of several kinds, session, idp, none when the lock refused it) and result (success|failure|locked); a code is labelled before it is checked, so success and failure of one method add up.',
      labelNames: ['method', 'result'] as const,
      registers: [registry],
    }),
    mfaLockouts: new Counter({
      name: 'mfa_gateway_mfa_lockouts_total',
      help: 'Users locked out after repeated second-factor failures.',
      registers: [registry],
    }),
    mfaActiveLocks: new Gauge({
      name: 'mfa_gateway_mfa_active_locks',
      help: 'Users locked out right now.',
      aggregator: 'max',
      registers: [registry],
    }),
    throttled: new Counter({
      name: 'mfa_gateway_throttled_requests_total',
      help: 'Requests refused with 429 by a throttle: a route rate limit by address or subject, or a blocked address trying codes.',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    mfaAddressBlocks: new Counter({
      name: 'mfa_gateway_mfa_address_blocks_total',
      help: 'Client addresses blocked from trying second-factor codes after repeated failures across users.',
      registers: [registry],
    }),
    mfaReplays: new Counter({
      name: 'mfa_gateway_mfa_replays_rejected_total',
      help: 'Second-factor codes refused because they were already used.',
      registers: [registry],
    }),
    mfaCodeDeliveries: new Counter({
      name: 'mfa_gateway_mfa_code_deliveries_total',
      help: 'Codes sent to e-mail or SMS contacts, by channel and result (sent|failed): a failure is an SMTP server or SMS provider that did not take the message.',
      labelNames: ['channel', 'result'] as const,
      registers: [registry],
    }),
    mfaEnrollments: new Counter({
      name: 'mfa_gateway_mfa_enrollments_total',
      help: 'Factor enrolments by factor type and event: started (a pending factor was created), confirmed (it was activated with a code), expired (voided or purged before it was confirmed). confirmed/started is the registration rate.',
      labelNames: ['type', 'event'] as const,
      registers: [registry],
    }),
    mfaSessionsIssued: new Counter({
      name: 'mfa_gateway_mfa_sessions_issued_total',
      help: 'MFA sessions issued.',
      registers: [registry],
    }),
    buildInfo: new Gauge({
      name: 'mfa_gateway_build_info',
      help: 'Always 1; its labels name the running build: version (package.json), node (the Node.js version), commit (MFA_GATEWAY_COMMIT, set by the image build; else unknown).',
      labelNames: ['version', 'node', 'commit'] as const,
      // Every worker runs the same build: one series of 1, not N.
      aggregator: 'max',
      registers: [registry],
    }),
    keyAge: new Gauge({
      name: 'mfa_gateway_encryption_key_age_seconds',
      help: 'Age of each secret-encryption key, by key id.',
      labelNames: ['kid', 'primary'] as const,
      aggregator: 'max',
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** What every answered request records: its count by status, and its duration, under one route label. */
export interface RequestCells {
  record(status: number, seconds: number): void;
}

class RouteRequestCells implements RequestCells {
  private readonly answered = new Map<number, CounterCell>();
  private duration: HistogramCell | undefined = undefined;

  constructor(
    private readonly requests: CellCounter<'route' | 'policy' | 'status'>,
    private readonly durations: CellHistogram<'route'>,
    private readonly route: string,
    private readonly policy: string,
  ) {}

  record(status: number, seconds: number): void {
    let answered = this.answered.get(status);
    if (answered === undefined) {
      const { route, policy } = this;
      answered = this.requests.cell(`${route}\0${policy}\0${status}`, { route, policy, status: String(status) });
      this.answered.set(status, answered);
    }
    answered.inc();
    (this.duration ??= this.durations.cell(this.route, { route: this.route })).observe(seconds);
  }
}

/**
 * The cells of a route label, bound on its first request: route and policy names are the compiled
 * policy's own strings, whose hashes V8 keeps, so a request builds and hashes no key of its own.
 */
function requestCellsOf(requests: CellCounter<'route' | 'policy' | 'status'>, durations: CellHistogram<'route'>): (route: string, policy: string) => RequestCells {
  const byRoute = new Map<string, Map<string, RequestCells>>();
  return (route, policy) => {
    let byPolicy = byRoute.get(route);
    if (byPolicy === undefined) byRoute.set(route, (byPolicy = new Map()));
    let cells = byPolicy.get(policy);
    if (cells === undefined) byPolicy.set(policy, (cells = new RouteRequestCells(requests, durations, route, policy)));
    return cells;
  };
}

/** The `event` label of mfa_gateway_mfa_enrollments_total. */
export type EnrollmentEvent = 'started' | 'confirmed' | 'expired';
