import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../time/clock.js';
import { checkContact, checkFactor, checkLabel, checkLimit, checkNextCounter, checkNextSecret, checkRecoveryHashes, checkSignCount, checkWebAuthnCredential, importTally, notEmpty } from './checks.js';
import { credentialConflict, StoreError } from './errors.js';
import { migrateSqlite, type MigrationResult } from './migrate.js';
import { createSqliteEventStore, type EventStore } from './events.js';
import { createWriteBatcher } from './sqlite-batch.js';
import { startCheckpointer } from './sqlite-checkpointer.js';
import { createSqliteTtl } from './sqlite-ttl.js';
import { contactParams, factorParams, rowToContact, rowToFactor, rowToRecoveryCode, rowToWebAuthn, statementsFor, webAuthnParams, type ContactRow, type FactorRow, type RecoveryCodeRow, type StatementName, type WebAuthnRow } from './sql.js';
import type { DurableRecord, DurableStore, FactorType, ImportCounts, PendingPurged, SealedSecret, TtlStore, WebAuthnCredentialRecord } from './types.js';

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
  /** Told why the checkpoint thread stopped (this connection's checkpoints are whole again from then on). */
  readonly onCheckpointFallback?: ((reason: string) => void) | undefined;
}

/**
 * SQLite's page cache per connection, in KiB: SQLite's own default. better-sqlite3 builds SQLite with
 * 16 MiB instead, and a gateway with 40,000 users filled all of it during the benchmark's fresh-code
 * row (RSS +15 MiB, kept for the process's life). An admission touches a few b-tree leaves; the
 * operating system's page cache holds the file, so a miss is one `pread`: 2.1 against 1.4 reads per
 * fresh-code admission, the same CPU (`node dist/bench/admit-micro.js 1000 20000`).
 */
export const PAGE_CACHE_KIB = 2048;

/**
 * WAL frames after which this connection checkpoints, after the commit that crosses the mark, on the
 * event loop (SQLite's default: 1000). The checkpoint thread (sqlite-checkpointer.ts) has by then
 * copied nearly all of them, so this one has little left to copy and sync; it bounds the WAL, which
 * the thread alone does not under steady writes. Without the thread, at 1000 a fresh-code admission
 * (about 2.5 frames) waited 12–17 µs on syncs beyond its CPU time, at 4000 7–9 µs
 * (`taskset -c 0 node dist/bench/admit-micro.js 1000 40000`).
 */
export const WAL_AUTOCHECKPOINT_PAGES = 4000;

/**
 * How often the checkpoint thread copies committed frames into the database file while commits keep
 * coming (it sleeps while none do), and how soon after the first commit that wakes it: often enough that
 * the connection's own checkpoint at WAL_AUTOCHECKPOINT_PAGES finds little left, rarely enough that
 * pages written again and again are not copied each time. In the benchmark's fresh-code row (four
 * runs each, the thread on the gateway's core) p99 was 30.0 ms at 100 ms, 39.8 ms at 25 ms and 37.4 ms
 * with no thread (bench/results/issue-11-progress.md).
 */
export const CHECKPOINT_INTERVAL_MS = 100;

export interface SqliteStore {
  readonly durable: DurableStore;
  readonly ttl: TtlStore;
  /** The audit trail, the outbox and first-seen signals (branch events). */
  readonly events: EventStore;
  /** What opening did to the schema: the versions it applied, and the status after. */
  readonly migrations: MigrationResult;
  /** The connection's page cache as SQLite reports it, in KiB. */
  readonly pageCacheKiB: number;
  /** Whether the checkpoint thread runs ('thread') or this connection's checkpoints are whole ('inline'). */
  checkpointMode(): 'thread' | 'inline';
  /** Checkpoints the thread has run (none while nothing is committed). */
  checkpointsByThread(): number;
  /** The WAL frames after which this connection checkpoints, as SQLite reports it. */
  readonly walAutocheckpointPages: number;
  /** Deletes expired TTL rows, expired pending factors and contacts now; returns how many of each. */
  cleanup(): { readonly ttl: number; readonly factors: number; readonly contacts: number };
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
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`);
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    migrations = migrateSqlite(db);
  } catch (err) {
    db.close();
    throw err;
  }

  // Prepared once; every call below reuses them.
  const sql = statementsFor('sqlite');
  const st = Object.fromEntries((Object.keys(sql) as StatementName[]).map((name) => [name, db.prepare(sql[name])])) as Record<StatementName, Database.Statement>;

  let closed = false;
  // An in-memory database has no WAL to checkpoint.
  const checkpointer =
    path === ':memory:'
      ? undefined
      : startCheckpointer(path, { intervalMs: CHECKPOINT_INTERVAL_MS, onFallback: options.onCheckpointFallback });
  const batcher = createWriteBatcher(db, live);
  const shortLived = createSqliteTtl(db, live, batcher);
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

  function cleanup(): { ttl: number; factors: number; contacts: number } {
    live();
    const now = clock();
    const { ttl, purged, contacts } = db
      .transaction(() => ({ ttl: shortLived.purge(now), purged: st.purgePendingFactors.all(now) as { type: FactorType }[], contacts: st.purgePendingContacts.run(now).changes }))
      .immediate();
    if (purged.length > 0) options.onPendingPurged?.(purged.map((row) => row.type));
    return { ttl, factors: purged.length, contacts };
  }

  async function shutdown(): Promise<void> {
    if (closed) return checkpointer?.close();
    // Writes already queued are committed: their callers were told nothing yet.
    batcher.flush();
    closed = true;
    clearInterval(timer);
    db.close();
    // After this connection: the thread's, closing last, checkpoints what is left and removes the WAL.
    await checkpointer?.close();
  }

  const replaceCodes = db.transaction((subject: string, hashes: readonly string[], now: number) => {
    st.deleteRecoveryCodes.run(subject);
    for (const hash of hashes) st.insertRecoveryCode.run(subject, hash, now);
  });

  /** Every durable row of `source`, factors, recovery codes then contacts, in the export order. */
  function* readAll(source: Database.Database): Generator<DurableRecord> {
    for (const row of source.prepare(sql.exportFactors).iterate() as Iterable<FactorRow>) yield { kind: 'factor', factor: rowToFactor(row) };
    for (const row of source.prepare(sql.exportRecoveryCodes).iterate() as Iterable<RecoveryCodeRow>) yield { kind: 'recovery_code', code: rowToRecoveryCode(row) };
    for (const row of source.prepare(sql.exportContacts).iterate() as Iterable<ContactRow>) yield { kind: 'contact', contact: rowToContact(row) };
    for (const row of source.prepare(sql.exportWebAuthn).iterate() as Iterable<WebAuthnRow>) yield { kind: 'webauthn_credential', credential: rowToWebAuthn(row) };
  }

  // Validates every record before writing it; a throw anywhere rolls the whole import back.
  const importRecords = db.transaction((records: Iterable<DurableRecord>, replace: boolean): ImportCounts => {
    const factors = Number((st.countFactors.get() as { n: number }).n);
    const contacts = Number((st.countContacts.get() as { n: number }).n);
    if (factors + contacts > 0 && !replace) throw notEmpty(factors, contacts);
    if (replace) {
      st.deleteAllRecoveryCodes.run();
      st.deleteAllFactors.run();
      st.deleteAllContacts.run();
      st.deleteAllWebAuthn.run();
    }
    const seen = importTally();
    for (const record of records) {
      seen.add(record);
      if (record.kind === 'factor') st.insertFactor.run(...factorParams(record.factor));
      else if (record.kind === 'contact') st.insertContact.run(...contactParams(record.contact));
      else if (record.kind === 'webauthn_credential') insertCredential(record.credential);
      else st.importRecoveryCode.run(record.code.subject, record.code.hash, record.code.createdAt, record.code.usedAt ?? null);
    }
    return seen.counts();
  });

  function insertCredential(credential: WebAuthnCredentialRecord): void {
    try {
      st.insertWebAuthn.run(...webAuthnParams(credential));
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || code === 'SQLITE_CONSTRAINT_UNIQUE') throw credentialConflict();
      throw err;
    }
  }

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
    async createContact(contact) {
      live();
      checkContact(contact);
      try {
        st.insertContact.run(...contactParams(contact));
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new StoreError('ERR_STORE_CONFLICT', 'a contact with this id already exists');
        throw err;
      }
    },
    async getContact(id, now) {
      live();
      const row = st.getContact.get(id, now) as ContactRow | undefined;
      return row === undefined ? undefined : rowToContact(row);
    },
    async listContacts(subject, now) {
      live();
      return (st.listContacts.all(subject, now) as ContactRow[]).map(rowToContact);
    },
    async activateContact(id, subject, now) {
      live();
      return st.activateContact.run(now, id, subject, now).changes === 1;
    },
    async deleteContact(id, subject) {
      live();
      return st.deleteContact.run(id, subject).changes === 1;
    },
    async replaceContactDestination(id, expected, next) {
      live();
      checkNextSecret(next);
      return st.replaceContactDestination.run(next.kid, next.blob, id, expected.kid, expected.blob).changes === 1;
    },
    async contactsNotSealedWith(kid, limit) {
      live();
      checkLimit(limit);
      return (st.contactsNotSealedWith.all(kid, limit) as ContactRow[]).map(rowToContact);
    },
    async renameFactor(id, subject, label) {
      live();
      checkLabel(label);
      return st.renameFactor.run(label, id, subject).changes === 1;
    },
    async createWebAuthnCredential(credential) {
      live();
      checkWebAuthnCredential(credential);
      insertCredential(credential);
    },
    async listWebAuthnCredentials(subject) {
      live();
      return (st.listWebAuthn.all(subject) as WebAuthnRow[]).map(rowToWebAuthn);
    },
    async advanceWebAuthnCounter(id, next, usedAt) {
      live();
      checkSignCount(next);
      return st.advanceWebAuthnCounter.run(next, usedAt, id, next, next).changes === 1;
    },
    async renameWebAuthnCredential(id, subject, label) {
      live();
      checkLabel(label);
      return st.renameWebAuthn.run(label, id, subject).changes === 1;
    },
    async deleteWebAuthnCredential(id, subject) {
      live();
      return st.deleteWebAuthn.run(id, subject).changes === 1;
    },
    async replaceWebAuthnPublicKey(id, expected, next) {
      live();
      checkNextSecret(next);
      return st.replaceWebAuthnKey.run(next.kid, next.blob, id, expected.kid, expected.blob).changes === 1;
    },
    async webAuthnCredentialsNotSealedWith(kid, limit) {
      live();
      checkLimit(limit);
      return (st.webAuthnNotSealedWith.all(kid, limit) as WebAuthnRow[]).map(rowToWebAuthn);
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
      if (open.size === 0) await shutdown();
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
      if (open.size === 0) await shutdown();
    },
  };


  return {
    durable,
    ttl,
    events: createSqliteEventStore(db, live, batcher),
    migrations,
    pageCacheKiB: -Number(db.pragma('cache_size', { simple: true })),
    checkpointMode: () => checkpointer?.mode() ?? 'inline',
    checkpointsByThread: () => checkpointer?.checkpoints() ?? 0,
    walAutocheckpointPages: Number(db.pragma('wal_autocheckpoint', { simple: true })),
    cleanup,
    async close() {
      await shutdown();
    },
  };
}
