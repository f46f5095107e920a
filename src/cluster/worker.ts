/**
 * One worker of `serve --workers N`: a whole gateway (startGateway) on the public listener, which
 * node:cluster shares between the workers, without an admin listener or file watchers of its own —
 * the primary owns those and asks the workers over IPC (protocol.ts). Every log line carries
 * `worker: <slot>`.
 *
 * Signals: SIGTERM and SIGINT drain like a single gateway does (a Ctrl-C in a terminal reaches the
 * whole process group, so workers get it as well as the primary). SIGHUP is ignored here: reloads
 * come from the primary, so that every worker reloads once and the primary can tell whether all of
 * them did. If the primary dies, node:cluster ends each worker at once (its IPC channel closes), so
 * no worker outlives it holding the port.
 */
import type { Logger } from '../log/logger.js';
import { createLogger } from '../log/logger.js';
import { startGateway, type Gateway } from '../server/gateway.js';
import { createListeners, parseInvalidation, warnListenerError } from '../store/invalidation.js';
import type { InvalidationBus } from '../store/types.js';
import { CHANNEL, isCallMessage, isInvalidateMessage, type CallKind, type CallResults, type WorkerCall, type WorkerMessage } from './protocol.js';

/** The environment variable that tells a forked worker its slot (1…N). */
export const SLOT_ENV = 'MFA_GATEWAY_WORKER_SLOT';

export interface WorkerOptions {
  readonly configPath: string;
  /** 1…N: the worker's place in the cluster, kept by its replacements (logs and metric labels). */
  readonly slot: number;
  readonly logger?: Logger;
  readonly audit?: Logger;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) {
      resolve();
      return;
    }
    // An error here means the primary is gone; the 'disconnect' handler deals with that.
    process.send(message, undefined, undefined, () => resolve());
  });
}

/**
 * The workers' bus over IPC, through the primary: what the shared store's Redis pub/sub does across
 * hosts, for workers whose store (SQLite) has no bus. A store with its own bus takes precedence.
 */
function createIpcBus(): InvalidationBus & { deliver(value: unknown): void } {
  const listeners = createListeners(warnListenerError);
  return {
    async publish(change) {
      const checked = parseInvalidation(change);
      if (checked !== undefined) await send({ channel: CHANNEL, type: 'invalidate', change: checked });
    },
    subscribe: (listener) => listeners.add(listener),
    async close() {
      listeners.clear();
    },
    deliver(value) {
      if (isInvalidateMessage(value)) listeners.deliver(value.change);
    },
  };
}

type Handler<K extends CallKind> = (gateway: Gateway, call: Extract<WorkerCall, { kind: K }>) => Promise<CallResults[K]>;
type Handlers = { readonly [K in CallKind]: Handler<K> };

/** Runs the worker until it has stopped; resolves with the exit code for its process. */
export function runWorker(options: WorkerOptions): Promise<number> {
  const logger = options.logger ?? createLogger().child({ worker: options.slot });
  const audit = options.audit ?? createLogger({ name: 'audit' }).child({ worker: options.slot });
  let gateway: Gateway | undefined;
  let draining: Promise<void> | undefined;
  let finish: (code: number) => void = () => undefined;
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });

  /** Drains once, however many ways a stop is asked for; before the gateway is up there is nothing to drain. */
  function stop(): Promise<void> {
    if (gateway === undefined) {
      finish(0);
      return Promise.resolve();
    }
    const running = gateway;
    return (draining ??= running.stop().then(
      () => finish(0),
      (error: unknown) => {
        logger.error({ event: 'stop_failed', error: messageOf(error) }, 'worker did not stop cleanly');
        finish(1);
      },
    ));
  }

  const handlers: Handlers = {
    async metrics({ core, metrics }) {
      await core.refreshGauges().catch(() => undefined);
      return metrics.registry.getMetricsAsJSON();
    },
    async ready({ core }) {
      if (draining !== undefined) return 'draining';
      try {
        return (await core.ready()) ?? null;
      } catch {
        return 'store unavailable';
      }
    },
    reload: async (running) => running.reload(),
    'revoke-sessions': ({ core }, call) => core.mfa.endSessionsOf(call.subject, core.clock()),
    pools: async ({ core }) => core.current().forwarder.poolStats(),
    async stop() {
      await stop();
      return null;
    },
  };

  const bus = createIpcBus();
  process.on('message', (message: unknown) => {
    bus.deliver(message);
    if (!isCallMessage(message)) return;
    const { id, call } = message;
    if (call.kind === 'stop' && gateway === undefined) {
      void stop();
      return;
    }
    if (gateway === undefined) {
      void send({ channel: CHANNEL, type: 'answer', id, ok: false, error: 'starting' });
      return;
    }
    // The table is checked per kind above; indexing it by a union loses that pairing, so say it here.
    const handler = handlers[call.kind] as (gateway: Gateway, call: WorkerCall) => Promise<unknown>;
    void handler(gateway, call).then(
      (value) => send({ channel: CHANNEL, type: 'answer', id, ok: true, value }),
      (error: unknown) => send({ channel: CHANNEL, type: 'answer', id, ok: false, error: messageOf(error) }),
    );
  });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => void stop());
  process.on('SIGHUP', () => logger.info({ event: 'sighup_ignored', primary_pid: process.ppid }, 'a worker does not reload on SIGHUP: the primary reloads every worker'));

  startGateway({ configPath: options.configPath, logger, audit, admin: false, watch: false, pollClock: false, bus }).then(
    (started) => {
      gateway = started;
      void send({ channel: CHANNEL, type: 'ready', address: `${started.address.address}:${started.address.port}` });
    },
    (error: unknown) => {
      const reason = messageOf(error);
      logger.error({ event: 'start_failed', error: reason }, 'worker could not start');
      void send({ channel: CHANNEL, type: 'failed', error: reason }).then(() => finish(1));
    },
  );
  return done;
}
