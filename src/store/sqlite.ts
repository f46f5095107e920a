import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../time/clock.js';
import { checkFactor, checkLimit, checkNextCounter, checkNextSecret, checkRecoveryHashes, importTally, notEmpty } from './checks.js';
import { StoreError } from './errors.js';
import { migrateSqlite, type MigrationResult } from './migrate.js';
import { factorParams, rowToFactor, rowToRecoveryCode, statementsFor, type FactorRow, type RecoveryCodeRow, type StatementName } from './sql.js';
import type { DurableRecord, DurableStore, FailureCount, FailureRule, ImportCounts, SealedSecret, TokenWindow, TtlStore, TtlUpdate } from './types.js';

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

/** countPrefix never counts past this (it feeds gauges, not billing). */
const COUNT_CAP = 100_000;
/** Largest code point: every key starting with `prefix` sorts below prefix + this (plus the substr check). */
const MAX_CHAR = String.fromCodePoint(0x10ffff);

function positiveInt(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new StoreError('ERR_STORE_INVALID_OPTION', `option "${name}" must be a positive integer of milliseconds`);
  }
  return value;
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key === '') throw new StoreError('ERR_STORE_INVALID_OPTION', 'a TTL key must be a non-empty string');
}

function checkTtl(ttlMs: unknown): asserts ttlMs is number {
  if (typeof ttlMs !== 'number' || !Number.isSafeInteger(ttlMs) || ttlMs <= 0) {
    throw new StoreError('ERR_STORE_INVALID_OPTION', 'ttlMs must be a positive integer of milliseconds');
  }
}

function checkTime(now: unknown): asserts now is number {
  if (typeof now !== 'number' || !Number.isSafeInteger(now) || now < 0) throw new StoreError('ERR_STORE_INVALID_OPTION', 'now must be unix milliseconds');
}

function checkCount(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new StoreError('ERR_STORE_INVALID_OPTION', `${name} must be a positive integer`);
}

function checkWindow(window: TokenWindow): void {
  if (typeof window !== 'object' || window === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'window must be { limit, windowMs }');
  checkCount(window.limit, 'window.limit');
  checkTtl(window.windowMs);
}

function checkRule(rule: FailureRule): void {
  if (typeof rule !== 'object' || rule === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'rule must be { maxFailures, findTimeMs, blockMs }');
  checkCount(rule.maxFailures, 'rule.maxFailures');
  checkTtl(rule.findTimeMs);
  checkTtl(rule.blockMs);
}

/** The value `recordFailure` keeps under its key: the window's count, and the block once there is one. */
interface FailureState {
  readonly failures: number;
  readonly blockedUntil?: number;
}

function readFailureState(row: { value: string; expires_at: number } | undefined, now: number): FailureState | undefined {
  if (row === undefined || row.expires_at <= now) return undefined;
  const parsed = JSON.parse(row.value) as Partial<FailureState> | null;
  // A key written by another verb is not a failure window: start afresh rather than misread it.
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.failures !== 'number') return undefined;
  return typeof parsed.blockedUntil === 'number' ? { failures: parsed.failures, blockedUntil: parsed.blockedUntil } : { failures: parsed.failures };
}

function encodeValue(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) throw new StoreError('ERR_STORE_INVALID_OPTION', 'a TTL value must be JSON-serialisable (not undefined or a function)');
  return json;
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
    db.pragma('journal_mode = WAL');
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
    return db.transaction(() => ({ ttl: st.ttlPurge.run(now).changes, factors: st.purgePendingFactors.run(now).changes })).immediate();
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

  const ttlUpdate = db.transaction((key: string, update: TtlUpdate<unknown>): unknown => {
    const now = clock();
    const row = st.ttlRead.get(key) as { value: string; expires_at: number } | undefined;
    const current = row !== undefined && row.expires_at > now ? (JSON.parse(row.value) as unknown) : undefined;
    const next = update(current);
    if (next === undefined) {
      if (row !== undefined) st.ttlDelete.get(key);
      return undefined;
    }
    checkTtl(next.ttlMs);
    st.ttlUpsert.run(key, encodeValue(next.value), now + next.ttlMs);
    return next.value;
  });

  // One BEGIN IMMEDIATE transaction: the write lock is held from the read, so concurrent failures
  // from other processes on the same file are counted one after another, never lost.
  const failure = db.transaction((key: string, now: number, rule: FailureRule): FailureCount => {
    const row = st.ttlRead.get(key) as { value: string; expires_at: number } | undefined;
    const state = readFailureState(row, now);
    if (state?.blockedUntil !== undefined && state.blockedUntil > now) return { failures: state.failures, blockedNow: false, blockedUntil: state.blockedUntil };
    const failures = (state?.failures ?? 0) + 1;
    if (failures >= rule.maxFailures) {
      const blockedUntil = now + rule.blockMs;
      st.ttlUpsert.run(key, encodeValue({ failures, blockedUntil }), blockedUntil);
      return { failures, blockedNow: true, blockedUntil };
    }
    // The window is fixed from its first failure: later ones do not stretch it.
    const windowEnd = state !== undefined && row !== undefined ? row.expires_at : now + rule.findTimeMs;
    st.ttlUpsert.run(key, encodeValue({ failures }), windowEnd);
    return { failures, blockedNow: false, blockedUntil: 0 };
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
    async get<T>(key: string) {
      live();
      checkKey(key);
      const row = st.ttlGet.get(key, clock()) as { value: string } | undefined;
      return row === undefined ? undefined : (JSON.parse(row.value) as T);
    },
    async set<T>(key: string, value: T, ttlMs: number) {
      live();
      checkKey(key);
      checkTtl(ttlMs);
      st.ttlUpsert.run(key, encodeValue(value), clock() + ttlMs);
    },
    async delete(key) {
      live();
      checkKey(key);
      const row = st.ttlDelete.get(key) as { expires_at: number } | undefined;
      return row !== undefined && row.expires_at > clock();
    },
    async update<T>(key: string, update: TtlUpdate<T>) {
      live();
      checkKey(key);
      if (typeof update !== 'function') throw new StoreError('ERR_STORE_INVALID_OPTION', 'update must be a function');
      return ttlUpdate.immediate(key, update as TtlUpdate<unknown>) as T | undefined;
    },
    async countPrefix(prefix) {
      live();
      if (typeof prefix !== 'string') throw new StoreError('ERR_STORE_INVALID_OPTION', 'prefix must be a string');
      const n = st.ttlCountPrefix.get(prefix, prefix + MAX_CHAR, [...prefix].length, prefix, clock(), COUNT_CAP) as { n: number };
      return Number(n.n);
    },
    async takeToken(key, now, window) {
      live();
      checkKey(key);
      checkTime(now);
      checkWindow(window);
      const row = st.ttlTakeToken.get(key, now + window.windowMs, now, window.limit + 1, now) as { value: string; expires_at: number };
      const count = Number(row.value);
      return { taken: count <= window.limit, remaining: Math.max(0, window.limit - count), resetAt: Number(row.expires_at) };
    },
    async recordFailure(key, now, rule) {
      live();
      checkKey(key);
      checkTime(now);
      checkRule(rule);
      return failure.immediate(key, now, rule);
    },
    async blockedUntil(key, now) {
      live();
      checkKey(key);
      checkTime(now);
      const until = readFailureState(st.ttlRead.get(key) as { value: string; expires_at: number } | undefined, now)?.blockedUntil ?? 0;
      return until > now ? until : 0;
    },
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
