import type { StoreConfig } from '../config/types.js';
import type { Clock } from '../time/clock.js';
import { StoreError } from './errors.js';
import { watchBackend, type BackendState } from './health.js';
import { openSqliteStore } from './sqlite.js';
import type { EventStore } from './events.js';
import type { DurableStore, InvalidationBus, PendingPurged, TtlStore } from './types.js';

export { StoreError, type StoreErrorCode } from './errors.js';

export interface OpenedStore {
  readonly kind: StoreConfig['kind'];
  readonly durable: DurableStore;
  readonly ttl: TtlStore;
  /** The audit trail, the outbox and first-seen signals. */
  readonly events: EventStore;
  /** How replicas sharing this store tell each other what to forget; none for the embedded store. */
  readonly bus?: InvalidationBus | undefined;
  /** Why a backend does not answer right now ("redis: connection refused"), or undefined. */
  down(): string | undefined;
  backends(): readonly BackendState[];
  close(): Promise<void>;
}

export interface OpenStoreOptions {
  /** Told when a backend goes down or comes back. */
  readonly onHealthChange?: ((state: BackendState) => void) | undefined;
  /** PostgreSQL: the first schema of the search_path (tests use one each). */
  readonly schema?: string | undefined;
  /** Told of pending factors deleted unconfirmed by the periodic cleanup. */
  readonly onPendingPurged?: PendingPurged | undefined;
  /** How often expired rows and pending factors are deleted (default 60 s). */
  readonly cleanupIntervalMs?: number | undefined;
  /** SQLite: told why the checkpoint thread stopped (checkpoints are whole again from then on). */
  readonly onCheckpointFallback?: ((reason: string) => void) | undefined;
}

function describeDown(states: readonly BackendState[]): string | undefined {
  const down = states.filter((state) => !state.up);
  return down.length === 0 ? undefined : down.map((state) => `${state.backend}: ${state.reason ?? 'no answer'}`).join('; ');
}

/**
 * Opens the backend named by `store:` in the policy file. The shared store needs PostgreSQL to
 * answer now (its schema is checked or migrated); Redis may come later: until it answers, the
 * store reports it down and requests that need it fail closed.
 */
export async function openStore(config: StoreConfig, clock: Clock, options: OpenStoreOptions = {}): Promise<OpenedStore> {
  switch (config.kind) {
    case 'sqlite': {
      // One file on this host: a failure is an error of the call, not an outage to wait out.
      const store = openSqliteStore({
        path: config.path,
        clock,
        onPendingPurged: options.onPendingPurged,
        cleanupIntervalMs: options.cleanupIntervalMs,
        onCheckpointFallback: options.onCheckpointFallback,
      });
      return {
        kind: 'sqlite',
        durable: store.durable,
        ttl: store.ttl,
        events: store.events,
        down: () => undefined,
        backends: () => [{ backend: 'sqlite', up: true }],
        close: () => store.close(),
      };
    }
    case 'shared': {
      // Loaded only here: an embedded deployment never pays the clients' memory (~8 MB RSS).
      const [{ openPostgresStore }, { openRedisTtlStore }] = await Promise.all([import('./postgres.js'), import('./redis.js')]);
      const postgres = await openPostgresStore(config.postgres, { clock, migrate: config.migrate, schema: options.schema, onPendingPurged: options.onPendingPurged, cleanupIntervalMs: options.cleanupIntervalMs });
      let redisReason: string | undefined;
      let redis;
      try {
        redis = await openRedisTtlStore(config.redis, { onError: (error) => (redisReason = error.message) });
      } catch (error) {
        await postgres.close();
        throw error;
      }
      const opened = redis;
      const pgWatch = watchBackend('postgres', () => postgres.durable.ping(), { onChange: options.onHealthChange });
      const redisState = (): BackendState => {
        const state = opened.state();
        return state === 'ready' ? { backend: 'redis', up: true } : { backend: 'redis', up: false, reason: redisReason ?? (state === 'connecting' ? 'connecting' : 'connection lost') };
      };
      opened.onStateChange((state) => {
        if (state === 'ready') redisReason = undefined;
        options.onHealthChange?.(redisState());
      });
      const backends = (): BackendState[] => [pgWatch.state(), redisState()];
      return {
        kind: 'shared',
        durable: pgWatch.guard(postgres.durable),
        ttl: opened.ttl,
        events: postgres.events,
        bus: opened.bus,
        // Asked on every mfa request: nothing is built while both answer.
        down: () => (pgWatch.state().up && opened.state() === 'ready' ? undefined : describeDown(backends())),
        backends,
        async close() {
          pgWatch.close();
          await Promise.allSettled([postgres.close(), opened.close()]);
        },
      };
    }
    default: {
      const kind: never = config;
      throw new StoreError('ERR_STORE_INVALID_OPTION', `unknown store kind ${JSON.stringify((kind as { kind?: unknown }).kind)}`);
    }
  }
}
