import { holdTickShape } from '../async/tick-shape.js';
import { loadPolicyFile } from '../config/load.js';
import { createPolicyWatcher } from '../config/watch.js';
import type { GatewayPolicy } from '../config/types.js';
import { createJwtVerifier } from '../auth/jwt.js';
import { loadKeyring } from '../crypto/keyring.js';
import type { BearerVerifier, RateLimiter } from '../decision/engine.js';
import { createLogger, type Logger } from '../log/logger.js';
import type { CounterCell } from '../metrics/cells.js';
import { createMetrics, type Metrics } from '../metrics/metrics.js';
import { createDelivery } from '../delivery/index.js';
import { createEventHub, type EventHub } from '../events/hub.js';
import { readBuildInfo } from '../metrics/build-info.js';
import { createClockWatch } from '../metrics/clock-offset.js';
import { FACTOR_TYPES } from '../mfa/enrollment.js';
import { createMfaService, type MfaService } from '../mfa/service.js';
import { createForwarder, type Forwarder } from '../forward/forwarder.js';
import { createTrustList, type TrustList } from '../request/trust.js';
import { openStore } from '../store/open.js';
import type { InvalidationBus } from '../store/types.js';
import { createRouteLimiter } from '../throttle/route-limiter.js';
import type { SetupDeps } from '../setup/door.js';
import { createSetupDeps } from '../setup/deps.js';
import { systemClock, type Clock } from '../time/clock.js';

export type ReloadResult = { readonly ok: true } | { readonly ok: false; readonly error: string };

/**
 * Everything that depends on one version of the policy. A request pins the runtime it started
 * with, so a reload never changes the rules (or the pools) under a request in flight.
 */
export interface PolicyRuntime {
  readonly policy: GatewayPolicy;
  readonly bearer: BearerVerifier & { close(): void | Promise<void> };
  readonly forwarder: Forwarder;
  readonly trusted: TrustList;
  /** Forward-auth endpoints believe X-Original-* / X-Forwarded-* only from these peers. */
  readonly authzTrusted: TrustList;
}

export interface CoreOptions {
  readonly configPath: string;
  readonly logger?: Logger;
  readonly audit?: Logger;
  readonly clock?: Clock;
  /** Watch the policy file for changes (default true). */
  readonly watch?: boolean;
  /** Other processes' cache changes, when the store has no bus of its own (workers on SQLite). */
  readonly bus?: InvalidationBus;
  /** How often the store deletes expired rows and pending factors (default 60 s). */
  readonly cleanupIntervalMs?: number;
  /** Poll the policy's NTP server (`clock:`; default true). Workers leave it to the primary: one clock, one poller. */
  readonly pollClock?: boolean;
}

/**
 * What every front door stands on: the policy runtimes (pinned per request, swapped on reload),
 * and the I/O the decision needs (JWT keys, stores, the MFA service, upstream pools). Doors reach
 * it only through the admission path (src/admission).
 */
export interface GatewayCore {
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly mfa: MfaService;
  /** The audit trail, risk rules and alert delivery (issue 13). */
  readonly events: EventHub;
  /** Routes' `rate_limit:`, on the same store as the MFA state. */
  readonly limiter: RateLimiter;
  /** The setup page's sign-in: invites, OIDC sign-ins and setup sessions on the TTL store. */
  readonly setup: SetupDeps;
  /** Pins the current runtime for one request; pair with `release`. */
  acquire(): PolicyRuntime;
  release(runtime: PolicyRuntime): void;
  current(): PolicyRuntime;
  inFlight(): number;
  /** Resolves when no request is in flight, or after `timeoutMs`. */
  whenIdle(timeoutMs: number): Promise<void>;
  reload(): ReloadResult;
  /**
   * Runs `listener` with every valid new policy before it replaces the running one (the listeners
   * apply what lives outside the runtime, e.g. the TLS certificate). A listener that throws refuses
   * the policy like a broken file: logged, counted, the running one kept.
   */
  onPolicy(listener: (next: GatewayPolicy) => void): void;
  ready(): Promise<string | undefined>;
  /** Refreshes the gauges that are read on scrape (active locks, key ages, pool sizes). */
  refreshGauges(): Promise<void>;
  close(): Promise<void>;
}

/** `target` with every method call counted by name first (what each request asks of the store). */
function countCalls<T extends object>(target: T, cellOf: (operation: string) => CounterCell): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(target)) {
    if (typeof value !== 'function' || name === 'close' || name === 'ping') {
      wrapped[name] = value;
      continue;
    }
    const calls = cellOf(name);
    wrapped[name] = (...args: unknown[]): unknown => {
      calls.inc();
      return (value as (...a: unknown[]) => unknown).apply(target, args);
    };
  }
  return wrapped as T;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export async function createGatewayCore(options: CoreOptions): Promise<GatewayCore> {
  // Before the process can first go idle: see src/async/tick-shape.ts.
  holdTickShape();
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger();
  const audit = options.audit ?? createLogger({ name: 'audit' });
  const metrics = createMetrics();

  // A bad file at startup throws here: the gateway never serves without a valid policy.
  const initialPolicy = loadPolicyFile(options.configPath);
  metrics.configReloads.inc({ result: 'success' }, 0);
  metrics.configReloads.inc({ result: 'failure' }, 0);
  // Present from the start, so rate() and increase() see the first enrolment of each kind.
  for (const type of FACTOR_TYPES) for (const event of ['started', 'confirmed', 'expired'] as const) metrics.mfaEnrollments.inc({ type, event }, 0);
  metrics.configInfo.set(Math.floor(clock() / 1000));
  metrics.buildInfo.set(readBuildInfo(), 1);

  // No key, no start: secrets are never stored in plaintext.
  const keyring = loadKeyring({ ...initialPolicy.keys, clock, metrics, logger });
  const store = await openStore(initialPolicy.store, clock, {
    cleanupIntervalMs: options.cleanupIntervalMs,
    // Enrolments left unconfirmed until they expired (the other ends of an enrolment are counted in src/mfa).
    onPendingPurged: (types) => {
      for (const type of types) metrics.mfaEnrollments.inc({ type, event: 'expired' });
    },
    onCheckpointFallback(reason) {
      logger.warn({ event: 'sqlite_checkpoint_inline', error: reason }, 'SQLite checkpoint thread stopped; checkpoints run whole on the event loop again');
    },
    onHealthChange(state) {
      metrics.storeUp.set({ backend: state.backend }, state.up ? 1 : 0);
      if (state.up) logger.info({ event: 'store_recovered', backend: state.backend }, 'store backend answers again');
      else logger.error({ event: 'store_unavailable', backend: state.backend, error: state.reason }, 'store backend does not answer; mfa routes fail closed (503)');
    },
  });
  for (const state of store.backends()) metrics.storeUp.set({ backend: state.backend }, state.up ? 1 : 0);

  const inFlightByRuntime = new Map<PolicyRuntime, number>();
  let inFlightTotal = 0;
  let onIdle: (() => void) | undefined;
  let runtime = buildRuntime(initialPolicy);

  const durableBackend = store.kind === 'sqlite' ? 'sqlite' : 'postgres';
  const ttlBackend = store.kind === 'sqlite' ? 'sqlite' : 'redis';
  const durable = countCalls(store.durable, (operation) => metrics.storeCalls.cell(`${durableBackend}\0${operation}`, { backend: durableBackend, operation }));
  const ttl = countCalls(store.ttl, (operation) => metrics.storeCalls.cell(`${ttlBackend}\0${operation}`, { backend: ttlBackend, operation }));
  const delivery = createDelivery();
  // Late-bound: the hub ends sessions through the MFA service, which records into the hub.
  let mfaRef: MfaService | undefined;
  const events = createEventHub({
    store: store.events,
    durable: store.durable,
    keyring,
    delivery,
    clock,
    policy: () => runtime.policy,
    logger,
    registry: metrics.registry,
    endSessions: (subject, now) => (mfaRef === undefined ? Promise.resolve(0) : mfaRef.endSessionsOf(subject, now)),
  });
  const mfa = createMfaService({ durable, ttl, bus: store.bus ?? options.bus, storeDown: () => store.down(), keyring, metrics, logger, audit, auditSink: events.record, risk: events, delivery });
  mfaRef = mfa;
  const limiter = createRouteLimiter({ ttl, logger, metrics });
  const setup = createSetupDeps(ttl);
  const clockWatch = options.pollClock === false ? undefined : createClockWatch({ registry: metrics.registry, logger, clock });
  clockWatch?.apply(initialPolicy.clock);

  function buildRuntime(policy: GatewayPolicy, previous?: PolicyRuntime): PolicyRuntime {
    // Keep caches and warm connections when their part of the policy did not change.
    const bearer =
      previous !== undefined && sameJson(previous.policy.auth.jwt, policy.auth.jwt)
        ? previous.bearer
        : createJwtVerifier({ config: policy.auth.jwt, metrics, logger, clock });
    const forwarder =
      previous !== undefined &&
      sameJson([...previous.policy.upstreams], [...policy.upstreams]) &&
      sameJson(previous.policy.limits, policy.limits)
        ? previous.forwarder
        : createForwarder({
            upstreams: policy.upstreams,
            maxQueued: policy.limits.maxQueued,
            metrics,
            logger,
          });
    return {
      policy,
      bearer,
      forwarder,
      trusted: createTrustList(policy.trustedProxies),
      authzTrusted: createTrustList(policy.authz.trustedProxies),
    };
  }

  /** Closes what a retired runtime owns and the current one no longer shares. */
  async function closeRetired(old: PolicyRuntime): Promise<void> {
    if (old.bearer !== runtime.bearer) await old.bearer.close();
    if (old.forwarder !== runtime.forwarder) await old.forwarder.close();
  }

  function reloadFailed(error: Error): void {
    metrics.configReloads.inc({ result: 'failure' });
    logger.error({ event: 'config_reload_failed', error: error.message }, 'policy reload refused; keeping the previous policy');
  }

  const policyListeners: ((next: GatewayPolicy) => void)[] = [];

  function applyPolicy(policy: GatewayPolicy): void {
    for (const listener of policyListeners) listener(policy);
    if (!sameJson(policy.store, runtime.policy.store) || !sameJson(policy.keys, runtime.policy.keys)) {
      logger.warn({ event: 'config_reload_partial' }, 'store and keys settings change only on restart; keeping the running ones');
    }
    const previous = runtime;
    runtime = buildRuntime(policy, previous);
    clockWatch?.apply(policy.clock);
    if (!inFlightByRuntime.has(previous)) void closeRetired(previous);
    metrics.configReloads.inc({ result: 'success' });
    metrics.configInfo.set(Math.floor(clock() / 1000));
    logger.info({ event: 'config_reloaded', routes: policy.routes.length }, 'policy reloaded');
  }

  function reload(): ReloadResult {
    try {
      applyPolicy(loadPolicyFile(options.configPath));
      return { ok: true };
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      reloadFailed(failure);
      return { ok: false, error: failure.message };
    }
  }

  const watcher =
    options.watch === false
      ? undefined
      : createPolicyWatcher({ path: options.configPath, load: loadPolicyFile, onReload: applyPolicy, onError: reloadFailed });

  return {
    metrics,
    logger,
    clock,
    mfa,
    events,
    limiter,
    setup,
    acquire() {
      const pinned = runtime;
      inFlightByRuntime.set(pinned, (inFlightByRuntime.get(pinned) ?? 0) + 1);
      inFlightTotal++;
      metrics.inFlight.inc();
      return pinned;
    },
    release(pinned) {
      const left = (inFlightByRuntime.get(pinned) ?? 1) - 1;
      if (left === 0) {
        inFlightByRuntime.delete(pinned);
        if (pinned !== runtime) void closeRetired(pinned);
      } else {
        inFlightByRuntime.set(pinned, left);
      }
      inFlightTotal--;
      metrics.inFlight.dec();
      if (inFlightTotal === 0) onIdle?.();
    },
    current: () => runtime,
    onPolicy(listener) {
      policyListeners.push(listener);
    },
    inFlight: () => inFlightTotal,
    reload,
    async ready() {
      const down = store.down();
      return down === undefined ? undefined : `store unavailable: ${down}`;
    },
    async refreshGauges() {
      runtime.forwarder.collectPoolGauges();
      for (const age of keyring.keyAges(clock())) {
        metrics.keyAge.set({ kid: age.kid, primary: String(age.primary) }, Math.floor(age.ageMs / 1000));
      }
      metrics.mfaActiveLocks.set(await mfa.activeLocks(clock()));
    },
    whenIdle(timeoutMs) {
      if (inFlightTotal === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const deadline = setTimeout(finish, timeoutMs);
        function finish(): void {
          clearTimeout(deadline);
          onIdle = undefined;
          resolve();
        }
        onIdle = finish;
      });
    },
    async close() {
      watcher?.close();
      clockWatch?.close();
      await runtime.forwarder.close();
      await runtime.bearer.close();
      // After the requests drained: what they recorded is written before the store closes.
      await events.close();
      await store.close();
    },
  };
}
