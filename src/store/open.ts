import type { StoreConfig } from '../config/types.js';
import type { Clock } from '../time/clock.js';
import { StoreError } from './errors.js';
import type { BackendState } from './health.js';
import { openSqliteStore } from './sqlite.js';
import type { DurableStore, InvalidationBus, TtlStore } from './types.js';

export { StoreError, type StoreErrorCode } from './errors.js';

export interface OpenedStore {
  readonly kind: StoreConfig['kind'];
  readonly durable: DurableStore;
  readonly ttl: TtlStore;
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
}

/** Opens the backend named by `store:` in the policy file. Async because the shared backend connects. */
export async function openStore(config: StoreConfig, clock: Clock, _options: OpenStoreOptions = {}): Promise<OpenedStore> {
  switch (config.kind) {
    case 'sqlite': {
      // One file in this process: a failure is an error of the call, not an outage to wait out.
      const store = openSqliteStore({ path: config.path, clock });
      return {
        kind: 'sqlite',
        durable: store.durable,
        ttl: store.ttl,
        down: () => undefined,
        backends: () => [{ backend: 'sqlite', up: true }],
        close: () => store.close(),
      };
    }
    case 'shared':
      throw new StoreError('ERR_STORE_UNSUPPORTED', 'store kind "shared" (PostgreSQL + Redis) is not available in this build');
    default: {
      const kind: never = config;
      throw new StoreError('ERR_STORE_INVALID_OPTION', `unknown store kind ${JSON.stringify((kind as { kind?: unknown }).kind)}`);
    }
  }
}
