import type { PostgresConfig } from '../config/types.js';
import { systemClock, type Clock } from '../time/clock.js';
import { checkFactor, checkLimit, checkNextCounter, checkNextSecret, checkRecoveryHashes, importTally, notEmpty } from './checks.js';
import { StoreError } from './errors.js';
import { migratePostgres, postgresMigrationStatus, schemaBehind, type MigrationResult, type MigrationStatus } from './migrate.js';
import { createPgPool, type PgPool, type PgQuery } from './pg-pool.js';
import { factorParams, POSTGRES_ONLY, rebind, rowToFactor, rowToRecoveryCode, statementsFor, type FactorRow, type RecoveryCodeRow, type StatementName } from './sql.js';
import type { DurableRecord, DurableStore, FactorRecord, FactorType, PendingPurged, RecoveryCodeRecord } from './types.js';

/**
 * The shared backend's durable half: factors and recovery codes in PostgreSQL, for many gateway
 * replicas at once. Every check-and-set is ONE statement whose WHERE clause is the check, so the
 * database's row locks decide races between replicas (a waiting UPDATE re-checks the row once the
 * winner commits); the two multi-statement verbs run in one transaction with an explicit lock.
 * Times are BIGINT unix ms from the injected clock, never the server's.
 */

export interface PostgresStoreOptions {
  readonly clock?: Clock | undefined;
  /** on_start: apply pending migrations while opening; manual: refuse to open while any is pending. */
  readonly migrate: 'on_start' | 'manual';
  /** First schema of the search_path instead of the URL's or server's default (tests use one each). */
  readonly schema?: string | undefined;
  /** How often expired pending factors are deleted (default 60 s); every replica may do it, it is idempotent. */
  readonly cleanupIntervalMs?: number | undefined;
  /** Told of a failure on an idle connection (already dropped; the next call reconnects). */
  readonly onIdleError?: ((error: StoreError) => void) | undefined;
  readonly onPendingPurged?: PendingPurged | undefined;
}

export interface PostgresStore {
  readonly durable: DurableStore;
  /** What opening did: the versions it applied (none in manual mode) and the status after. */
  readonly migrations: MigrationResult;
  /** Deletes expired pending factors now; resolves to how many. */
  cleanup(): Promise<number>;
  close(): Promise<void>;
}

/** `store status` / `store migrate`: the schema without the store (no refusal when it is behind). */
export interface PostgresMigrator {
  status(): Promise<MigrationStatus>;
  migrate(): Promise<MigrationResult>;
  close(): Promise<void>;
}

const DURABLE_STATEMENTS = [
  'ping',
  'insertFactor',
  'getFactor',
  'listFactors',
  'activateFactor',
  'deleteFactor',
  'advanceHotpCounter',
  'replaceSecret',
  'factorsNotSealedWith',
  'purgePendingFactors',
  'deleteRecoveryCodes',
  'countRecoveryCodes',
  'exportFactors',
  'exportRecoveryCodes',
  'countFactors',
  'deleteAllFactors',
  'deleteAllRecoveryCodes',
] as const satisfies readonly StatementName[];

type DurableStatement = (typeof DURABLE_STATEMENTS)[number];

/** The shared statements this backend runs, and its own, rebound to $n once at load. */
const SQL = (() => {
  const common = statementsFor('postgres');
  return Object.fromEntries(DURABLE_STATEMENTS.map((name) => [name, rebind(common[name])])) as Record<DurableStatement, string>;
})();
const PG = Object.fromEntries(Object.entries(POSTGRES_ONLY).map(([name, text]) => [name, rebind(text)])) as Record<keyof typeof POSTGRES_ONLY, string>;

/** Rows per round trip when exporting (cursor FETCH) and importing (unnest batch). */
const BATCH = 500;
const UNIQUE_VIOLATION = '23505';

function checkOptions(options: { clock?: unknown; cleanupIntervalMs?: unknown }): { clock: Clock; cleanupIntervalMs: number } {
  if (typeof options !== 'object' || options === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'the PostgreSQL store needs an options object');
  const clock = (options.clock ?? systemClock) as Clock;
  if (typeof clock !== 'function') throw new StoreError('ERR_STORE_INVALID_OPTION', 'option "clock" must be a function');
  const cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000;
  if (typeof cleanupIntervalMs !== 'number' || !Number.isSafeInteger(cleanupIntervalMs) || cleanupIntervalMs <= 0) {
    throw new StoreError('ERR_STORE_INVALID_OPTION', 'option "cleanupIntervalMs" must be a positive integer of milliseconds');
  }
  return { clock, cleanupIntervalMs };
}

/** Opens the schema alone, for the store commands. Connects lazily: the first call does. */
export function openPostgresMigrator(config: PostgresConfig, options: { clock?: Clock | undefined; schema?: string | undefined } = {}): PostgresMigrator {
  const { clock } = checkOptions(options);
  const pool = createPgPool(config, { schema: options.schema });
  let ended: Promise<void> | undefined;
  const live = (): void => {
    if (ended !== undefined) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  };
  return {
    async status() {
      live();
      return pool.withClient((client) => postgresMigrationStatus(client));
    },
    async migrate() {
      live();
      return pool.withClient((client) => migratePostgres(client, clock()));
    },
    close: () => (ended ??= pool.end()),
  };
}

/**
 * Connects, brings the schema up to date (`on_start`) or checks that it is (`manual`), and returns
 * the store. Fails with ERR_STORE_UNAVAILABLE when the server cannot be reached, ERR_STORE_SCHEMA_BEHIND
 * in manual mode with migrations pending, ERR_STORE_SCHEMA_TOO_NEW after a downgrade.
 */
export async function openPostgresStore(config: PostgresConfig, options: PostgresStoreOptions): Promise<PostgresStore> {
  const { clock, cleanupIntervalMs } = checkOptions(options);
  if (options.migrate !== 'on_start' && options.migrate !== 'manual') throw new StoreError('ERR_STORE_INVALID_OPTION', 'option "migrate" must be "on_start" or "manual"');
  const pool = createPgPool(config, { schema: options.schema, onIdleError: options.onIdleError });
  let migrations: MigrationResult;
  try {
    migrations =
      options.migrate === 'on_start'
        ? await pool.withClient((client) => migratePostgres(client, clock()))
        : { applied: [], status: await pool.withClient((client) => postgresMigrationStatus(client)) };
    if (migrations.status.pending.length > 0) throw schemaBehind(migrations.status);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return createStore(pool, clock, cleanupIntervalMs, migrations, options.onPendingPurged);
}

function createStore(pool: PgPool, clock: Clock, cleanupIntervalMs: number, migrations: MigrationResult, onPendingPurged: PendingPurged | undefined): PostgresStore {
  let ended: Promise<void> | undefined;
  const timer = setInterval(() => {
    // Unavailable now: the next round tries again, and reads ignore expired pending factors anyway.
    cleanup().catch(() => undefined);
  }, cleanupIntervalMs);
  timer.unref();

  function live(): void {
    if (ended !== undefined) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  }

  async function cleanup(): Promise<number> {
    live();
    const purged = await pool.query<{ type: FactorType }>(SQL.purgePendingFactors, [clock()]);
    if (purged.length > 0) onPendingPurged?.(purged.map((row) => row.type));
    return purged.length;
  }

  async function importBatch(query: PgQuery, factors: FactorRecord[], codes: RecoveryCodeRecord[]): Promise<void> {
    if (factors.length > 0) {
      // Column-wise arrays: unnest() zips them back into rows, a whole batch per statement.
      const rows = factors.map(factorParams);
      const columns = rows[0]!.map((_, i) => rows.map((row) => row[i]));
      await query(PG.importFactors, columns);
    }
    if (codes.length > 0) {
      await query(PG.importRecoveryCodes, [codes.map((c) => c.subject), codes.map((c) => c.hash), codes.map((c) => c.createdAt), codes.map((c) => c.usedAt ?? null)]);
    }
  }

  const durable: DurableStore = {
    async createFactor(factor) {
      live();
      checkFactor(factor);
      try {
        await pool.query(SQL.insertFactor, factorParams(factor));
      } catch (error) {
        if ((error as { code?: unknown }).code === UNIQUE_VIOLATION) throw new StoreError('ERR_STORE_CONFLICT', 'a factor with this id already exists');
        throw error;
      }
    },
    async getFactor(id) {
      live();
      const [row] = await pool.query<FactorRow>(SQL.getFactor, [id, clock()]);
      return row === undefined ? undefined : rowToFactor(row);
    },
    async listFactors(subject, now) {
      live();
      return (await pool.query<FactorRow>(SQL.listFactors, [subject, now])).map(rowToFactor);
    },
    async activateFactor(id, subject, now) {
      live();
      return (await pool.execute(SQL.activateFactor, [now, id, subject, now])) === 1;
    },
    async deleteFactor(id, subject) {
      live();
      return (await pool.execute(SQL.deleteFactor, [id, subject])) === 1;
    },
    async advanceHotpCounter(id, expected, next) {
      live();
      checkNextCounter(next);
      // No stored counter equals a non-integer; say so here rather than let BIGINT refuse the cast.
      if (!Number.isSafeInteger(expected)) return false;
      return (await pool.execute(SQL.advanceHotpCounter, [next, id, expected])) === 1;
    },
    async replaceSecret(id, expected, next) {
      live();
      checkNextSecret(next);
      return (await pool.execute(SQL.replaceSecret, [next.kid, next.blob, id, expected.kid, expected.blob])) === 1;
    },
    async factorsNotSealedWith(kid, limit) {
      live();
      checkLimit(limit);
      return (await pool.query<FactorRow>(SQL.factorsNotSealedWith, [kid, limit])).map(rowToFactor);
    },
    async replaceRecoveryCodes(subject, hashes, now) {
      live();
      checkRecoveryHashes(subject, hashes);
      await pool.transaction(async (query) => {
        await query(PG.lockRecoveryCodes, [subject]);
        await query(SQL.deleteRecoveryCodes, [subject]);
        if (hashes.length > 0) await query(PG.insertRecoveryCodes, [subject, [...hashes], now]);
      });
    },
    async consumeRecoveryCode(subject, hash, now) {
      live();
      const [row] = await pool.query<{ consumed: string; remaining: string }>(PG.consumeRecoveryCode, [now, subject, hash, subject]);
      return { consumed: Number(row!.consumed) === 1, remaining: Number(row!.remaining) };
    },
    async countRecoveryCodes(subject) {
      live();
      const [row] = await pool.query<{ n: string }>(SQL.countRecoveryCodes, [subject]);
      return Number(row!.n);
    },
    exportAll() {
      live();
      return (async function* (): AsyncGenerator<DurableRecord> {
        for await (const batch of pool.snapshot([SQL.exportFactors, SQL.exportRecoveryCodes], BATCH)) {
          for (const row of batch.rows) {
            yield batch.statement === 0 ? { kind: 'factor', factor: rowToFactor(row as FactorRow) } : { kind: 'recovery_code', code: rowToRecoveryCode(row as RecoveryCodeRow) };
          }
        }
      })();
    },
    async importAll(records, options) {
      live();
      const replace = options?.replace === true;
      return pool.transaction(async (query) => {
        await query(PG.lockForImport);
        const [{ n }] = (await query<{ n: string }>(SQL.countFactors)) as [{ n: string }];
        if (Number(n) > 0 && !replace) throw notEmpty(Number(n));
        if (replace) {
          await query(SQL.deleteAllRecoveryCodes);
          await query(SQL.deleteAllFactors);
        }
        const tally = importTally();
        let factors: FactorRecord[] = [];
        let codes: RecoveryCodeRecord[] = [];
        for (const record of records) {
          tally.add(record);
          if (record.kind === 'factor') factors.push(record.factor);
          else codes.push(record.code);
          if (factors.length + codes.length >= BATCH) {
            await importBatch(query, factors, codes);
            factors = [];
            codes = [];
          }
        }
        await importBatch(query, factors, codes);
        return tally.counts();
      });
    },
    async ping() {
      live();
      await pool.query(SQL.ping);
    },
    async close() {
      await close();
    },
  };

  function close(): Promise<void> {
    if (ended === undefined) {
      clearInterval(timer);
      ended = pool.end();
    }
    return ended;
  }

  return { durable, migrations, cleanup, close };
}
