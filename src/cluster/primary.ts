/**
 * `serve --workers N`: the primary process. It forks N workers (worker.ts), which share the public
 * listener through node:cluster (the primary accepts and hands connections round-robin), and it
 * owns what must answer once for all of them:
 *
 * - the admin listener: /metrics merges every worker's registry (aggregate.ts); /readyz is ready
 *   only when every worker is, and names each one that is not and why; /admin/reload and
 *   /admin/sessions/revoke act once, for all workers. The admin token is checked exactly as a
 *   single gateway checks it (server/admin.ts, the same handler).
 * - reloads: SIGHUP, POST /admin/reload and a change of the policy file (or of the TLS files it
 *   names). The primary reads and checks the file first: a broken one is refused once, here, and
 *   no worker sees it (they would all refuse it: they read the same file). A good one is then
 *   reloaded by every worker, and the answer is a refusal if any worker refused.
 *   Why the primary watches the files and not each worker: one watcher means one decision and one
 *   log line per change, and each worker reloads exactly once for it. N workers watching for
 *   themselves would each debounce on their own clock and log N refusals, and each fs.watch is an
 *   inotify instance (128 per user by default on Linux), which 64 workers would exhaust.
 * - the workers' lives: a worker that exits on its own is forked again after a backoff and counted
 *   (mfa_gateway_worker_restarts_total); one that cannot start ends the cluster instead of being
 *   forked forever (restart.ts).
 * - stopping: SIGTERM or SIGINT asks every worker to drain (gateway.stop(): stop accepting, finish
 *   what is in flight up to limits.drain_timeout); the cluster ends when all have exited.
 *
 * Nothing here knows which store the workers use: they share it as separate gateway processes
 * would, and every store verb is atomic in the store itself.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Counter, Gauge, Registry } from 'prom-client';
import { loadPolicyFile } from '../config/load.js';
import type { GatewayPolicy } from '../config/types.js';
import { createFileSetWatcher, createPolicyWatcher } from '../config/watch.js';
import type { ReloadResult } from '../core/gateway-core.js';
import { createLogger, type Logger } from '../log/logger.js';
import { createClockWatch } from '../metrics/clock-offset.js';
import { CONFIG_RELOADS_METRIC } from '../metrics/metrics.js';
import { formatRouteTable } from '../routes/table.js';
import { systemClock } from '../time/clock.js';
import { adminExposureWarning, createAdminHandler } from '../server/admin.js';
import { listenOn } from '../server/gateway.js';
import { createMetricsAggregator } from './aggregate.js';
import { ClusterError } from './errors.js';
import { CHANNEL, isWorkerMessage, type CallKind, type CallMessage, type CallResults, type MetricsSnapshot, type WorkerCall } from './protocol.js';
import { afterExit, FRESH_HISTORY, MAX_START_FAILURES, type SlotHistory } from './restart.js';
import { SLOT_ENV } from './worker.js';
import { MAX_WORKERS } from './workers-option.js';

export interface ClusterOptions {
  readonly configPath: string;
  /** 1…MAX_WORKERS. */
  readonly workers: number;
  /** The primary's own log (default: JSON on stdout with `role: "primary"`). */
  readonly logger?: Logger;
  /** Watch the policy file and the TLS files it names (default true). */
  readonly watch?: boolean;
}

export interface Cluster {
  /** The public listener as the workers share it, `host:port`. */
  readonly address: string;
  readonly adminAddress: AddressInfo;
  /** Reloads every worker (what SIGHUP does); refused when the file is broken or any worker refused. */
  reload(): Promise<ReloadResult>;
  /** Every worker drains and exits; resolves with the exit code for the primary once all have. */
  stop(): Promise<number>;
  /** Settles when the cluster has ended: with the exit code after stop(), rejected with a ClusterError when it gave up. */
  readonly ended: Promise<number>;
}

/** How long the primary waits for a worker's answer, by question. */
const ANSWER_TIMEOUT_MS: Readonly<Record<CallKind, number>> = {
  metrics: 5_000,
  ready: 2_000,
  reload: 10_000,
  'revoke-sessions': 10_000,
  pools: 2_000,
  stop: 1_000,
};
/** Past the policy's drain deadline, how long a worker may take to close before it is killed. */
const STOP_GRACE_MS = 5_000;

type SlotState = 'starting' | 'ready' | 'restarting' | 'stopped';

interface Slot {
  /** 1…N, kept by replacements: `worker: <slot>` in logs, `worker="<slot>"` in metrics. */
  readonly index: number;
  worker: Worker | undefined;
  state: SlotState;
  forkedAt: number;
  /** The policy generation when this worker was forked: a reload while it started is repeated once it is ready. */
  generation: number;
  /** What the worker reported when it could not start. */
  startError: string | undefined;
  /** How the last worker of this slot ended ("exited with code 1"). */
  lastExit: string | undefined;
  history: SlotHistory;
  restartTimer: NodeJS.Timeout | undefined;
}

interface Pending {
  readonly worker: Worker;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}


function createClusterMetrics(slots: number) {
  const registry = new Registry();
  const metrics = {
    registry,
    restarts: new Counter({
      name: 'mfa_gateway_worker_restarts_total',
      help: 'Workers forked again after one exited on its own, by worker slot.',
      labelNames: ['worker'] as const,
      registers: [registry],
    }),
    up: new Gauge({
      name: 'mfa_gateway_worker_up',
      help: '1 while the worker slot has a running worker that reported ready, else 0.',
      labelNames: ['worker'] as const,
      registers: [registry],
    }),
    // The reloads the primary refuses before any worker sees them; each worker counts its own.
    configReloads: new Counter({ ...CONFIG_RELOADS_METRIC, registers: [registry] }),
  };
  for (let slot = 1; slot <= slots; slot++) {
    metrics.restarts.inc({ worker: String(slot) }, 0);
    metrics.up.set({ worker: String(slot) }, 0);
  }
  return metrics;
}

/** Forks the workers and opens the admin listener; resolves once every worker is ready. */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  const { configPath } = options;
  if (typeof configPath !== 'string' || configPath === '') throw new ClusterError('ERR_CLUSTER_INVALID_OPTION', 'configPath: must be the path of a policy file');
  if (!Number.isSafeInteger(options.workers) || options.workers < 1 || options.workers > MAX_WORKERS) {
    throw new ClusterError('ERR_CLUSTER_INVALID_OPTION', `workers: must be a whole number from 1 to ${MAX_WORKERS}`);
  }
  if (!cluster.isPrimary) throw new ClusterError('ERR_CLUSTER_INVALID_OPTION', 'startCluster runs in the primary process only');
  const logger = options.logger ?? createLogger().child({ role: 'primary' });

  // A broken file stops the start here, with the loader's message, before anything is forked.
  let policy: GatewayPolicy = loadPolicyFile(configPath);
  const metrics = createClusterMetrics(options.workers);
  const aggregator = createMetricsAggregator();
  // The workers share this host's clock: the primary alone asks the NTP server, into its own registry.
  const clockWatch = createClockWatch({ registry: metrics.registry, logger, clock: systemClock });
  clockWatch.apply(policy.clock);
  const slots: Slot[] = Array.from({ length: options.workers }, (_, i) => ({
    index: i + 1,
    worker: undefined,
    state: 'starting',
    forkedAt: 0,
    generation: 0,
    startError: undefined,
    lastExit: undefined,
    history: FRESH_HISTORY,
    restartTimer: undefined,
  }));
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let generation = 0;
  let address = '';
  let started = false;
  let stopping = false;
  let exitCode = 0;
  let failure: ClusterError | undefined;
  let stopDeadline: NodeJS.Timeout | undefined;

  let endWith: (outcome: number | ClusterError) => void = () => undefined;
  const ended = new Promise<number>((resolve, reject) => {
    endWith = (outcome) => (typeof outcome === 'number' ? resolve(outcome) : reject(outcome));
  });
  // Whoever awaits `ended` sees a rejection; nobody awaiting it must not crash the process.
  ended.catch(() => undefined);
  let allReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => {
    allReady = resolve;
  });

  // ---- asking workers -------------------------------------------------------------------------

  function ask<K extends CallKind>(slot: Slot, call: Extract<WorkerCall, { kind: K }>): Promise<CallResults[K]> {
    const worker = slot.worker;
    if (worker === undefined || !worker.isConnected()) return Promise.reject(new Error('not running'));
    const id = nextId++;
    const timeoutMs = ANSWER_TIMEOUT_MS[call.kind];
    return new Promise<CallResults[K]>((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id);
        reject(new Error(`no answer within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      timer.unref();
      pending.set(id, { worker, resolve: (value) => resolve(value as CallResults[K]), reject, timer });
      const message: CallMessage = { channel: CHANNEL, id, call };
      worker.send(message, (error) => {
        if (error === null) return;
        clearTimeout(timer);
        pending.delete(id);
        reject(new Error(`cannot reach it: ${error.message}`));
      });
    });
  }

  function settle(id: number, outcome: { ok: true; value: unknown } | { ok: false; error: string }): void {
    const call = pending.get(id);
    if (call === undefined) return;
    pending.delete(id);
    clearTimeout(call.timer);
    if (outcome.ok) call.resolve(outcome.value);
    else call.reject(new Error(outcome.error));
  }

  function readySlots(): Slot[] {
    return slots.filter((slot) => slot.state === 'ready');
  }

  // ---- the workers' lives ---------------------------------------------------------------------

  cluster.setupPrimary({
    exec: fileURLToPath(new URL('./worker-main.js', import.meta.url)),
    args: [configPath],
    serialization: 'advanced',
  });

  function fork(slot: Slot): void {
    slot.restartTimer = undefined;
    const worker = cluster.fork({ [SLOT_ENV]: String(slot.index) });
    Object.assign(slot, { worker, state: 'starting', forkedAt: Date.now(), generation, startError: undefined });
    worker.on('message', (message: unknown) => onMessage(slot, worker, message));
    // 'close', not 'exit': it comes after the IPC channel is drained, so a worker's last message
    // (why it could not start) is always read before its end is handled.
    worker.process.once('close', (code: number | null, signal: NodeJS.Signals | null) => onExit(slot, worker, code, signal));
    // An IPC error (e.g. a send to a worker that just died) ends in 'close' too; without a listener it would throw here.
    worker.on('error', (error: Error) => logger.warn({ event: 'worker_ipc_error', slot: slot.index, error: error.message }, `worker ${slot.index}: IPC error`));
    logger.info({ event: 'worker_forked', slot: slot.index, pid: worker.process.pid }, `worker ${slot.index} forked`);
  }

  function onMessage(slot: Slot, worker: Worker, message: unknown): void {
    if (slot.worker !== worker || !isWorkerMessage(message)) return;
    switch (message.type) {
      case 'answer':
        settle(message.id, message.ok ? { ok: true, value: message.value } : { ok: false, error: message.error });
        return;
      case 'failed':
        slot.startError = message.error;
        return;
      case 'invalidate':
        // Relayed as is to every other live worker; the sender applied it already.
        for (const other of slots) {
          if (other === slot || other.worker === undefined || !other.worker.isConnected()) continue;
          other.worker.send({ channel: CHANNEL, type: 'invalidate', change: message.change }, (error: Error | null) => {
            if (error !== null) logger.warn({ event: 'invalidation_not_relayed', slot: other.index, error: error.message }, `worker ${other.index} missed a cache invalidation; its caches expire within 2 s`);
          });
        }
        return;
      case 'ready':
        slot.state = 'ready';
        slot.history = { ...slot.history, startFailures: 0 };
        if (address === '') address = message.address;
        metrics.up.set({ worker: String(slot.index) }, 1);
        logger.info({ event: 'worker_ready', slot: slot.index, pid: worker.process.pid, address: message.address }, `worker ${slot.index} ready`);
        if (stopping) {
          void ask(slot, { kind: 'stop' }).catch(() => undefined);
          return;
        }
        if (slot.generation < generation) {
          // It read the file before the last reload got to the workers: bring it up to date.
          void ask(slot, { kind: 'reload' }).then(
            (result) => {
              if (!result.ok) logger.error({ event: 'config_reload_failed', slot: slot.index, error: result.error }, `worker ${slot.index} refused the reloaded policy`);
            },
            () => undefined,
          );
        }
        if (!started && slots.every((s) => s.state === 'ready')) allReady();
        return;
    }
  }

  function onExit(slot: Slot, worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.worker !== worker) return;
    const wasReady = slot.state === 'ready';
    const now = Date.now();
    slot.worker = undefined;
    slot.lastExit = signal !== null ? `was killed by ${signal}` : `exited with code ${code}`;
    for (const [id, call] of pending) {
      if (call.worker !== worker) continue;
      pending.delete(id);
      clearTimeout(call.timer);
      call.reject(new Error(`it ${slot.lastExit}`));
    }
    aggregator.retire(slot.index);
    metrics.up.set({ worker: String(slot.index) }, 0);
    const fields = { slot: slot.index, pid: worker.process.pid, code, signal };

    if (stopping) {
      slot.state = 'stopped';
      if (code !== 0 && code !== null) exitCode = 1;
      logger.info({ event: 'worker_stopped', ...fields }, `worker ${slot.index} stopped`);
      if (slots.every((s) => s.worker === undefined)) finish();
      return;
    }
    const why = slot.startError ?? `it ${slot.lastExit} before it was ready`;
    if (!started && !wasReady) {
      // At the first start every worker reads the same file and binds the same port: another try
      // would fail the same way. End here with its reason, as a single gateway would.
      logger.error({ event: 'worker_start_failed', ...fields, error: why }, `worker ${slot.index} could not start`);
      giveUp(new ClusterError('ERR_CLUSTER_WORKER_FAILED', `worker ${slot.index} could not start: ${why}`));
      return;
    }
    const next = afterExit(slot.history, { wasReady, livedMs: now - slot.forkedAt });
    slot.history = next.history;
    if (next.action === 'give-up') {
      logger.error({ event: 'worker_start_failed', ...fields, error: why }, `worker ${slot.index} could not start ${MAX_START_FAILURES} times in a row; giving up`);
      giveUp(new ClusterError('ERR_CLUSTER_WORKER_FAILED', `worker ${slot.index} could not start (${MAX_START_FAILURES} tries in a row): ${why}`));
      return;
    }
    metrics.restarts.inc({ worker: String(slot.index) });
    slot.state = 'restarting';
    logger.error(
      { event: 'worker_exited', ...fields, ...(wasReady ? {} : { error: why }), restart_in_ms: next.delayMs },
      `worker ${slot.index} ${slot.lastExit}; forking a new one in ${next.delayMs} ms`,
    );
    slot.restartTimer = setTimeout(() => fork(slot), next.delayMs);
  }

  // ---- stopping -------------------------------------------------------------------------------

  let adminServer: Server | undefined;
  const watchers: { close(): void }[] = [];
  let tlsWatcher: { readonly files: string; close(): void } | undefined;

  function finish(): void {
    if (stopDeadline !== undefined) clearTimeout(stopDeadline);
    for (const watcher of watchers) watcher.close();
    tlsWatcher?.close();
    clockWatch.close();
    adminServer?.close();
    adminServer?.closeAllConnections();
    if (failure === undefined) logger.info({ event: 'stopped', exit_code: exitCode }, 'mfa-gateway stopped');
    endWith(failure ?? exitCode);
  }

  function stopAll(): void {
    if (stopping) return;
    stopping = true;
    for (const slot of slots) {
      if (slot.restartTimer !== undefined) clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      if (slot.worker === undefined) slot.state = 'stopped';
      else if (slot.state === 'ready') void ask(slot, { kind: 'stop' }).catch(() => undefined);
      // Still starting: nothing in flight, and it may not listen to IPC yet, where a signal always arrives.
      else slot.worker.process.kill('SIGTERM');
    }
    if (slots.every((slot) => slot.worker === undefined)) {
      finish();
      return;
    }
    // Workers drain up to the policy's deadline; one still there well after it is killed.
    stopDeadline = setTimeout(() => {
      for (const slot of slots) {
        if (slot.worker === undefined) continue;
        logger.error({ event: 'worker_killed', slot: slot.index, pid: slot.worker.process.pid }, `worker ${slot.index} did not stop in time; killing it`);
        exitCode = 1;
        slot.worker.process.kill('SIGKILL');
      }
    }, policy.limits.drainTimeoutMs + STOP_GRACE_MS);
  }

  function giveUp(error: ClusterError): void {
    failure ??= error;
    stopAll();
  }

  function stop(): Promise<number> {
    stopAll();
    return ended;
  }

  // ---- reloading ------------------------------------------------------------------------------

  function refuse(error: unknown): ReloadResult {
    const reason = messageOf(error);
    metrics.configReloads.inc({ result: 'failure' });
    logger.error({ event: 'config_reload_failed', error: reason }, 'policy reload refused; every worker keeps the previous policy');
    return { ok: false, error: reason };
  }

  async function reloadWorkers(next: GatewayPolicy): Promise<ReloadResult> {
    generation++;
    const asked = readySlots();
    const answers = await Promise.all(
      asked.map((slot) =>
        ask(slot, { kind: 'reload' }).then(
          (result) => ({ slot, result }),
          (error: unknown) => ({ slot, result: { ok: false, error: messageOf(error) } as const }),
        ),
      ),
    );
    const refusals = answers.flatMap(({ slot, result }) => (result.ok ? [] : [`worker ${slot.index}: ${result.error}`]));
    if (refusals.length > 0) {
      const error = refusals.join('; ');
      logger.error({ event: 'config_reload_failed', error }, 'policy reload refused by a worker');
      return { ok: false, error };
    }
    policy = next;
    watchTlsFiles(next);
    clockWatch.apply(next.clock);
    logger.info({ event: 'config_reloaded', workers: asked.length, routes: next.routes.length }, 'policy reloaded in every worker');
    return { ok: true };
  }

  // One reload at a time, in the order asked: two at once could leave workers on different files.
  let reloads: Promise<unknown> = Promise.resolve();
  function reload(checked?: GatewayPolicy): Promise<ReloadResult> {
    const run = async (): Promise<ReloadResult> => {
      if (stopping) return { ok: false, error: 'the gateway is stopping' };
      let next = checked;
      if (next === undefined) {
        try {
          next = loadPolicyFile(configPath);
        } catch (error) {
          return refuse(error);
        }
      }
      return reloadWorkers(next);
    };
    const result = reloads.then(run);
    reloads = result.catch(() => undefined);
    return result;
  }

  /** The TLS certificate and key are watched here for the workers, which have no watchers of their own. */
  function watchTlsFiles(next: GatewayPolicy): void {
    if (options.watch === false) return;
    const tls = next.listen.tls;
    const files = tls === undefined ? '' : `${tls.certFile}\n${tls.keyFile}`;
    if (files === (tlsWatcher?.files ?? '')) return;
    tlsWatcher?.close();
    tlsWatcher = undefined;
    if (tls === undefined) return;
    const watcher = createFileSetWatcher({
      paths: [tls.certFile, tls.keyFile],
      onChange: () => void reload(),
      onError: (error) => logger.error({ event: 'tls_watch_failed', error: error.message }, 'watching the TLS files failed'),
    });
    tlsWatcher = { files, close: () => watcher.close() };
  }

  // ---- the admin listener ---------------------------------------------------------------------

  async function scrape(): Promise<{ contentType: string; body: string }> {
    const answers = new Map<number, MetricsSnapshot | undefined>();
    await Promise.all(
      readySlots().map(async (slot) => {
        answers.set(slot.index, await ask(slot, { kind: 'metrics' }).catch(() => undefined));
      }),
    );
    return { contentType: aggregator.contentType, body: await aggregator.expose(answers, await metrics.registry.getMetricsAsJSON()) };
  }

  async function readiness(): Promise<string | undefined> {
    if (stopping) return 'draining';
    const reasons = await Promise.all(
      slots.map(async (slot): Promise<string | undefined> => {
        const name = `worker ${slot.index}`;
        if (slot.state === 'restarting') return `${name}: restarting (the last one ${slot.lastExit})`;
        if (slot.state !== 'ready') return `${name}: ${slot.state}`;
        try {
          const reason = await ask(slot, { kind: 'ready' });
          return reason === null ? undefined : `${name}: ${reason}`;
        } catch (error) {
          return `${name}: ${messageOf(error)}`;
        }
      }),
    );
    const notReady = reasons.filter((reason): reason is string => reason !== undefined);
    return notReady.length === 0 ? undefined : notReady.join('; ');
  }

  async function revokeSessions(subject: string): Promise<number> {
    // The store is shared: one worker ends the sessions (and audits it once) for all of them.
    const [first] = readySlots();
    if (first === undefined) throw new Error('no worker is ready');
    return ask(first, { kind: 'revoke-sessions', subject });
  }

  async function poolStats(): Promise<unknown> {
    const entries = await Promise.all(
      readySlots().map(async (slot) => [String(slot.index), await ask(slot, { kind: 'pools' }).catch((error: unknown) => ({ error: messageOf(error) }))] as const),
    );
    return { workers: Object.fromEntries(entries) };
  }

  adminServer = createServer(
    createAdminHandler({
      scrape,
      routeTable: () => formatRouteTable(policy),
      poolStats,
      ready: readiness,
      reload: () => reload(),
      revokeSessions,
      adminToken: policy.admin.token,
    }),
  );
  let adminAddress: AddressInfo;
  try {
    // Before any fork: a gateway nobody can probe, scrape or reload must not start (as with one process).
    adminAddress = await listenOn(adminServer, policy.admin.port, policy.admin.host);
  } catch (error) {
    adminServer.close();
    throw new Error(`cannot listen: ${messageOf(error)}`, { cause: error });
  }

  for (const slot of slots) fork(slot);
  // Started, or ended before every worker was ready (then `ended` rejects with the reason).
  await Promise.race([ready, ended]);
  started = true;

  if (options.watch !== false) {
    watchers.push(
      createPolicyWatcher({
        path: configPath,
        load: loadPolicyFile,
        onReload: (next) => void reload(next),
        onError: (error) => void refuse(error),
      }),
    );
    watchTlsFiles(policy);
  }
  logger.info(
    { event: 'listening', address, protocol: policy.listen.tls !== undefined ? 'https' : 'http', admin: `${adminAddress.address}:${adminAddress.port}`, workers: options.workers },
    'mfa-gateway ready',
  );
  const exposure = adminExposureWarning(adminAddress.address);
  if (exposure !== undefined) logger.warn({ event: 'admin_exposed', admin: `${adminAddress.address}:${adminAddress.port}` }, exposure);

  return {
    address,
    adminAddress,
    reload: () => reload(),
    stop,
    ended,
  };
}

/**
 * What `serve --workers N` runs: the cluster, with SIGHUP reloading every worker and SIGTERM or
 * SIGINT draining them all. Resolves with the exit code once everything has stopped; rejects with
 * a ClusterError when a worker could not start.
 */
export async function serveCluster(options: ClusterOptions): Promise<number> {
  const running = await startCluster(options);
  const onReload = (): void => void running.reload();
  const onStop = (): void => void running.stop();
  process.on('SIGHUP', onReload);
  process.on('SIGTERM', onStop);
  process.on('SIGINT', onStop);
  try {
    return await running.ended;
  } finally {
    process.off('SIGHUP', onReload);
    process.off('SIGTERM', onStop);
    process.off('SIGINT', onStop);
  }
}
