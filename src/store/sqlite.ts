import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../time/clock.js';
import { checkFactor, checkLimit, checkNextCounter, checkNextSecret, checkRecoveryHashes, importTally, notEmpty } from './checks.js';
import { StoreError } from './errors.js';
import { migrateSqlite, type MigrationResult } from './migrate.js';
import { createSqliteTtl } from './sqlite-ttl.js';
import { factorParams, rowToFactor, rowToRecoveryCode, statementsFor, type FactorRow, type RecoveryCodeRow, type StatementName } from './sql.js';
import type { DurableRecord, DurableStore, FactorType, ImportCounts, PendingPurged, SealedSecret, TtlStore } from './types.js';

/**
 * The embedded store: one SQLite file (WAL) holding both the durable and the TTL state. Several
 * gateway processes may share the file: every check-and-set is one statement or one
 * `BEGIN IMMEDIATE` transaction (the write lock is taken before the read), never a read in one
 * call and a write in another. better-sqlite3 is synchronous, so within one process calls are
 * also serialised; the methods are async only to match the shared (network) backends.
 */

export interface SqliteStoreOptions {
  readonly path: string;
  readonly clock?: Clock | undefined;
  /** How long a writer waits for another process's lock before failing (default 5 s). */
  readonly busyTimeoutMs?: number | undefined;
  /** How often expired TTL rows and expired pending factors are deleted (default 60 s). */
  readonly cleanupIntervalMs?: number | undefined;
  readonly onPendingPurged?: PendingPurged | undefined;
}

export interface SqliteStore {
  readonly durable: DurableStore;
  readonly ttl: TtlStore;
  /** What opening did to the schema: the versions it applied, and the status after. */
  readonly migrations: MigrationResult;
  /** Deletes expired TTL rows and expired pending factors now; returns how many of each. */
  cleanup(): { readonly ttl: number; readonly factors: number };
  close(): Promise<void>;
}

function positiveInt(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new StoreError('ERR_STORE_INVALID_OPTION', `option "${name}" must be a positive integer of milliseconds`);
  }
  return value;
}


/**
 * Switching a new file to WAL needs a lock SQLite does not wait for (no busy handler): when several
 * processes open one new file at once, all but one get SQLITE_BUSY. Try again until busyTimeoutMs.
 */
function enableWal(db: Database.Database, busyTimeoutMs: number): void {
  const deadline = Date.now() + busyTimeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw error;
      Atomics.wait(pause, 0, 0, 10);
    }
  }
}

export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  if (typeof options !== 'object' || options === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'openSqliteStore needs an options object');
  const { path } = options;
  if (typeof path !== 'string' || path === '') throw new StoreError('ERR_STORE_INVALID_OPTION', 'option "path" must be a non-empty file path');
  const clock = options.clock ?? systemClock;
  if (typeof clock !== 'function') throw new StoreError('ERR_STORE_INVALID_OPTION', 'option "clock" must be a function');
  const busyTimeoutMs = positiveInt(options.busyTimeoutMs, 'busyTimeoutMs', 5000);
  const cleanupIntervalMs = positiveInt(options.cleanupIntervalMs, 'cleanupIntervalMs', 60_000);

  if (path !== ':memory:') {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    // Create it 0600 ourselves: it holds sealed secrets and recovery-code hashes.
    closeSync(openSync(path, 'a', 0o600));
  }
  const db = new Database(path);
  let migrations: MigrationResult;
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    enableWal(db, busyTimeoutMs);
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrations = migrateSqlite(db);
  } catch (err) {
    db.close();
    throw err;
  }

  // Prepared once; every call below reuses them.
  const sql = statementsFor('sqlite');
  const st = Object.fromEntries((Object.keys(sql) as StatementName[]).map((name) => [name, db.prepare(sql[name])])) as Record<StatementName, Database.Statement>;

  let closed = false;
  const shortLived = createSqliteTtl(db, live);
  const open = new Set<'durable' | 'ttl'>(['durable', 'ttl']);
  const timer = setInterval(() => {
    try {
      cleanup();
    } catch {
      // A busy or closing database: the next round tries again; reads ignore expired rows anyway.
    }
  }, cleanupIntervalMs);
  timer.unref();

  function live(): void {
    if (closed) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  }

  function cleanup(): { ttl: number; factors: number } {
    live();
    const now = clock();
    const { ttl, purged } = db.transaction(() => ({ ttl: shortLived.purge(now), purged: st.purgePendingFactors.all(now) as { type: FactorType }[] })).immediate();
    if (purged.length > 0) options.onPendingPurged?.(purged.map((row) => row.type));
    return { ttl, factors: purged.length };
  }

  function shutdown(): void {
    if (closed) return;
    closed = true;
    clearInterval(timer);
    db.close();
  }

  const replaceCodes = db.transaction((subject: string, hashes: readonly string[], now: number) => {
    st.deleteRecoveryCodes.run(subject);
    for (const hash of hashes) st.insertRecoveryCode.run(subject, hash, now);
  });

  /** Every durable row of `source`, factors then recovery codes, in the export order. */
  function* readAll(source: Database.Database): Generator<DurableRecord> {
    for (const row of source.prepare(sql.exportFactors).iterate() as Iterable<FactorRow>) yield { kind: 'factor', factor: rowToFactor(row) };
    for (const row of source.prepare(sql.exportRecoveryCodes).iterate() as Iterable<RecoveryCodeRow>) yield { kind: 'recovery_code', code: rowToRecoveryCode(row) };
  }

  // Validates every record before writing it; a throw anywhere rolls the whole import back.
  const importRecords = db.transaction((records: Iterable<DurableRecord>, replace: boolean): ImportCounts => {
    const existing = Number((st.countFactors.get() as { n: number }).n);
    if (existing > 0 && !replace) throw notEmpty(existing);
    if (replace) {
      st.deleteAllRecoveryCodes.run();
      st.deleteAllFactors.run();
    }
    const seen = importTally();
    for (const record of records) {
      seen.add(record);
      if (record.kind === 'factor') st.insertFactor.run(...factorParams(record.factor));
      else st.importRecoveryCode.run(record.code.subject, record.code.hash, record.code.createdAt, record.code.usedAt ?? null);
    }
    return seen.counts();
  });

  const consumeCode = db.transaction((subject: string, hash: string, now: number) => {
    const consumed = st.consumeRecoveryCode.run(now, subject, hash).changes === 1;
    const remaining = Number((st.countRecoveryCodes.get(subject) as { n: number }).n);
    return { consumed, remaining };
  });

  const durable: DurableStore = {
    async createFactor(factor) {
      live();
      checkFactor(factor);
      try {
        st.insertFactor.run(...factorParams(factor));
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
          throw new StoreError('ERR_STORE_CONFLICT', 'a factor with this id already exists');
        }
        throw err;
      }
    },
    async getFactor(id) {
      live();
      const row = st.getFactor.get(id, clock()) as FactorRow | undefined;
      return row === undefined ? undefined : rowToFactor(row);
    },
    async listFactors(subject, now) {
      live();
      return (st.listFactors.all(subject, now) as FactorRow[]).map(rowToFactor);
    },
    async activateFactor(id, subject, now) {
      live();
      return st.activateFactor.run(now, id, subject, now).changes === 1;
    },
    async deleteFactor(id, subject) {
      live();
      return st.deleteFactor.run(id, subject).changes === 1;
    },
    async advanceHotpCounter(id, expected, next) {
      live();
      checkNextCounter(next);
      return st.advanceHotpCounter.run(next, id, expected).changes === 1;
    },
    async replaceSecret(id, expected: SealedSecret, next: SealedSecret) {
      live();
      checkNextSecret(next);
      return st.replaceSecret.run(next.kid, next.blob, id, expected.kid, expected.blob).changes === 1;
    },
    async factorsNotSealedWith(kid, limit) {
      live();
      checkLimit(limit);
      return (st.factorsNotSealedWith.all(kid, limit) as FactorRow[]).map(rowToFactor);
    },
    async replaceRecoveryCodes(subject, hashes, now) {
      live();
      checkRecoveryHashes(subject, hashes);
      replaceCodes.immediate(subject, hashes, now);
    },
    async consumeRecoveryCode(subject, hash, now) {
      live();
      return consumeCode.immediate(subject, hash, now);
    },
    async countRecoveryCodes(subject) {
      live();
      return Number((st.countRecoveryCodes.get(subject) as { n: number }).n);
    },
    exportAll() {
      live();
      if (path === ':memory:') {
        // A second connection would open another, empty database: read it whole in one transaction.
        const records = db.transaction(() => [...readAll(db)])();
        return (async function* () {
          yield* records;
        })();
      }
      // A read-only connection of its own, streaming inside one read transaction: a consistent WAL
      // snapshot while gateways go on writing, and this connection stays free for their calls.
      return (async function* () {
        const reader = new Database(path, { readonly: true, fileMustExist: true });
        try {
          reader.pragma(`busy_timeout = ${busyTimeoutMs}`);
          reader.exec('BEGIN');
          yield* readAll(reader);
          reader.exec('COMMIT');
        } finally {
          reader.close();
        }
      })();
    },
    async importAll(records, options) {
      live();
      return importRecords.immediate(records, options?.replace === true);
    },
    async ping() {
      live();
      st.ping.get();
    },
    async close() {
      open.delete('durable');
      if (open.size === 0) shutdown();
    },
  };

  const ttl: TtlStore = {
    ...shortLived.ttl,
    async ping() {
      live();
      st.ping.get();
    },
    async close() {
      open.delete('ttl');
      if (open.size === 0) shutdown();
    },
  };


  return {
    durable,
    ttl,
    migrations,
    cleanup,
    async close() {
      shutdown();
    },
  };
}
