import type { StoreConfig } from '../config/types.js';
import type { Clock } from '../time/clock.js';
import { StoreError } from './errors.js';
import { openSqliteStore } from './sqlite.js';
import type { DurableStore, TtlStore } from './types.js';

export { StoreError, type StoreErrorCode } from './errors.js';

export interface OpenedStore {
  readonly durable: DurableStore;
  readonly ttl: TtlStore;
  close(): Promise<void>;
}

/** Opens the backend named by `store:` in the policy file. Async because the shared backend connects. */
export async function openStore(config: StoreConfig, clock: Clock): Promise<OpenedStore> {
  switch (config.kind) {
    case 'sqlite':
      return openSqliteStore({ path: config.path, clock });
    case 'shared':
      throw new StoreError('ERR_STORE_UNSUPPORTED', 'store kind "shared" (PostgreSQL + Redis) is not available in this build');
    default: {
      const kind: never = config;
      throw new StoreError('ERR_STORE_INVALID_OPTION', `unknown store kind ${JSON.stringify((kind as { kind?: unknown }).kind)}`);
    }
  }
}
