import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../time/clock.js';
import { StoreError } from './errors.js';
import { createSqliteTtl } from './sqlite-ttl.js';
import { factorParams, MIGRATIONS, rowToFactor, statementsFor, type FactorRow, type StatementName } from './sql.js';
import type { DurableStore, FactorRecord, SealedSecret, TtlStore } from './types.js';

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
  /** Deletes expired TTL rows and expired pending factors now; returns how many of each. */
  cleanup(): { readonly ttl: number; readonly factors: number };
  close(): Promise<void>;
}

const ALGORITHMS = new Set(['SHA1', 'SHA256', 'SHA512']);

function positiveInt(value: unknown, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new StoreError('ERR_STORE_INVALID_OPTION', `option "${name}" must be a positive integer of milliseconds`);
  }
  return value;
}

function checkFactor(f: FactorRecord): void {
  const bad = (field: string, what: string) => new StoreError('ERR_STORE_INVALID_OPTION', `factor.${field} ${what}`);
  if (typeof f !== 'object' || f === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'factor must be an object');
  for (const field of ['id', 'subject'] as const) {
    if (typeof f[field] !== 'string' || f[field] === '') throw bad(field, 'must be a non-empty string');
  }
  if (typeof f.label !== 'string') throw bad('label', 'must be a string');
  if (f.type !== 'totp' && f.type !== 'hotp') throw bad('type', 'must be "totp" or "hotp"');
  if (f.status !== 'pending' && f.status !== 'active') throw bad('status', 'must be "pending" or "active"');
  if (typeof f.secret?.kid !== 'string' || typeof f.secret?.blob !== 'string' || f.secret.kid === '' || f.secret.blob === '') {
    throw bad('secret', 'must be a sealed secret { kid, blob }');
  }
  if (!ALGORITHMS.has(f.algorithm)) throw bad('algorithm', 'must be SHA1, SHA256 or SHA512');
  if (!Number.isSafeInteger(f.digits) || f.digits < 6 || f.digits > 10) throw bad('digits', 'must be an integer from 6 to 10');
  if (!Number.isSafeInteger(f.periodSeconds) || f.periodSeconds <= 0) throw bad('periodSeconds', 'must be a positive integer');
  if (!Number.isSafeInteger(f.counter) || f.counter < 0) throw bad('counter', 'must be a non-negative integer');
  if (!Number.isSafeInteger(f.createdAt)) throw bad('createdAt', 'must be unix milliseconds');
  if (f.status === 'pending' && !Number.isSafeInteger(f.pendingUntil)) throw bad('pendingUntil', 'is required (unix ms) for a pending factor');
  if (f.status === 'active' && f.pendingUntil !== undefined) throw bad('pendingUntil', 'must be undefined for an active factor');
  if (f.confirmedAt !== undefined && !Number.isSafeInteger(f.confirmedAt)) throw bad('confirmedAt', 'must be unix milliseconds');
}

function migrate(db: Database.Database): void {
  const sql = statementsFor('sqlite');
  db.exec(sql.createSchemaVersion);
  const migrations = MIGRATIONS.sqlite;
  const latest = migrations.at(-1)?.version ?? 0;
  // IMMEDIATE: two processes opening a new file at once run the migrations once, in turn.
  db.transaction(() => {
    const row = db.prepare(sql.readSchemaVersion).get() as { version: number } | undefined;
    const current = row?.version ?? 0;
    if (current > latest) {
      throw new StoreError('ERR_STORE_SCHEMA_TOO_NEW', `the database schema is version ${current}; this gateway knows up to ${latest} (downgrade is not supported)`);
    }
    for (const m of migrations) {
      if (m.version <= current) continue;
      for (const statement of m.up) db.exec(statement);
    }
    if (row === undefined) db.prepare(sql.insertSchemaVersion).run(latest);
    else if (current !== latest) db.prepare(sql.updateSchemaVersion).run(latest);
  }).immediate();
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
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }

  // Prepared once; every call below reuses them.
  const sql = statementsFor('sqlite');
  const st = Object.fromEntries(
    (Object.keys(sql) as StatementName[])
      .filter((name) => !['createSchemaVersion', 'readSchemaVersion', 'insertSchemaVersion', 'updateSchemaVersion'].includes(name))
      .map((name) => [name, db.prepare(sql[name])]),
  ) as Record<Exclude<StatementName, 'createSchemaVersion' | 'readSchemaVersion' | 'insertSchemaVersion' | 'updateSchemaVersion'>, Database.Statement>;

  let closed = false;
  const open = new Set<'durable' | 'ttl'>(['durable', 'ttl']);
  const shortLived = createSqliteTtl(db, live);
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
    return db.transaction(() => ({ ttl: shortLived.purge(now), factors: st.purgePendingFactors.run(now).changes })).immediate();
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
      if (!Number.isSafeInteger(next) || next < 0) throw new StoreError('ERR_STORE_INVALID_OPTION', 'the next HOTP counter must be a non-negative integer');
      return st.advanceHotpCounter.run(next, id, expected).changes === 1;
    },
    async replaceSecret(id, expected: SealedSecret, next: SealedSecret) {
      live();
      if (typeof next?.kid !== 'string' || typeof next?.blob !== 'string' || next.kid === '' || next.blob === '') {
        throw new StoreError('ERR_STORE_INVALID_OPTION', 'the next secret must be a sealed secret { kid, blob }');
      }
      return st.replaceSecret.run(next.kid, next.blob, id, expected.kid, expected.blob).changes === 1;
    },
    async factorsNotSealedWith(kid, limit) {
      live();
      if (!Number.isSafeInteger(limit) || limit < 1) throw new StoreError('ERR_STORE_INVALID_OPTION', 'limit must be a positive integer');
      return (st.factorsNotSealedWith.all(kid, limit) as FactorRow[]).map(rowToFactor);
    },
    async replaceRecoveryCodes(subject, hashes, now) {
      live();
      if (typeof subject !== 'string' || subject === '') throw new StoreError('ERR_STORE_INVALID_OPTION', 'subject must be a non-empty string');
      if (!Array.isArray(hashes) || hashes.some((h) => typeof h !== 'string' || h === '')) {
        throw new StoreError('ERR_STORE_INVALID_OPTION', 'hashes must be non-empty strings');
      }
      if (new Set(hashes).size !== hashes.length) throw new StoreError('ERR_STORE_INVALID_OPTION', 'hashes must be unique');
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
    cleanup,
    async close() {
      shutdown();
    },
  };
}
