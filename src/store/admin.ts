import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { StoreConfig } from '../config/types.js';
import type { Clock } from '../time/clock.js';
import { StoreError } from './errors.js';
import { planMigrations, sqliteMigrationStatus, type MigrationResult, type MigrationStatus } from './migrate.js';
import { MIGRATIONS } from './sql.js';
import { openPostgresMigrator, openPostgresStore } from './postgres.js';
import { openSqliteStore } from './sqlite.js';
import type { DurableStore } from './types.js';

/**
 * What the `store` commands work on: the configured backend's schema and durable half. Never the
 * TTL half (with `kind: shared` that is Redis, which has no schema and nothing worth moving). Each
 * call opens what it needs and closes it again: a command runs once and exits.
 */
export interface StoreAdmin {
  /** The database holding the durable state. */
  readonly backend: 'sqlite' | 'postgres';
  /** Reads the schema version without changing anything (a missing SQLite file is version 0). */
  status(): Promise<MigrationStatus>;
  /** Applies pending migrations (whatever `store.migrate` says: this is the manual step). */
  migrate(): Promise<MigrationResult>;
  /**
   * Runs `work` on the durable store, opened as the gateway opens it: SQLite migrates, PostgreSQL
   * honours `store.migrate`. `mustExist`: refuse a SQLite path with no database rather than create one.
   */
  withDurable<T>(work: (durable: DurableStore) => Promise<T>, options?: { readonly mustExist?: boolean }): Promise<T>;
}

export function storeAdmin(config: StoreConfig, clock: Clock): StoreAdmin {
  switch (config.kind) {
    case 'sqlite': {
      const { path } = config;
      return {
        backend: 'sqlite',
        async status() {
          if (!existsSync(path)) return planMigrations('sqlite', MIGRATIONS.sqlite, 0);
          const db = new Database(path, { readonly: true, fileMustExist: true });
          try {
            return sqliteMigrationStatus(db);
          } finally {
            db.close();
          }
        },
        async migrate() {
          const store = openSqliteStore({ path, clock });
          await store.close();
          return store.migrations;
        },
        async withDurable(work, options) {
          if (options?.mustExist === true && !existsSync(path)) throw new StoreError('ERR_STORE_INVALID_OPTION', `no SQLite database at ${path}`);
          const store = openSqliteStore({ path, clock });
          try {
            return await work(store.durable);
          } finally {
            await store.close();
          }
        },
      };
    }
    case 'shared': {
      const { postgres, migrate } = config;
      const withMigrator = async <T>(work: (migrator: ReturnType<typeof openPostgresMigrator>) => Promise<T>): Promise<T> => {
        const migrator = openPostgresMigrator(postgres, { clock });
        try {
          return await work(migrator);
        } finally {
          await migrator.close();
        }
      };
      return {
        backend: 'postgres',
        status: () => withMigrator((migrator) => migrator.status()),
        migrate: () => withMigrator((migrator) => migrator.migrate()),
        async withDurable(work) {
          const store = await openPostgresStore(postgres, { clock, migrate });
          try {
            return await work(store.durable);
          } finally {
            await store.close();
          }
        },
      };
    }
    default: {
      const kind: never = config;
      throw new StoreError('ERR_STORE_INVALID_OPTION', `unknown store kind ${JSON.stringify((kind as { kind?: unknown }).kind)}`);
    }
  }
}
