import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite.js';
import { StoreError } from '../../src/store/errors.js';
import { MIGRATIONS } from '../../src/store/sql.js';
import type { StoredSession } from '../../src/store/types.js';
import { fakeClock, T0, type FakeClock } from '../support/clock.js';
import { active, activeContact, contact, factor, hashes } from './durable-conformance.js';
import { inThreads } from './threads.js';

const PENDING_MS = 10 * 60_000;
const SESSION: StoredSession = { subject: 'alice', method: 'totp', mfaTime: T0 / 1000, issuedAt: T0, expiresAt: T0 + 60_000 };

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mfa-store-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function dbPath(): string {
  return join(dir, `db-${++n}`, 'mfa.db');
}

// The verbs themselves: durable-conformance.ts (sqlite-durable.test.ts). Here, what only SQLite has.
describe('sqlite store: factors', () => {
  let store: SqliteStore;
  let time: FakeClock;
  beforeEach(() => {
    time = fakeClock(T0);
    store = openSqliteStore({ path: dbPath(), clock: time });
  });
  afterEach(() => store.close());

  test('pending factors past pendingUntil are invisible, cannot be activated, and are purged', async () => {
    const { durable } = store;
    await durable.createFactor(factor({ id: 'p1' }));
    await durable.createFactor(factor({ id: 'p2', pendingUntil: T0 + 2 * PENDING_MS }));
    await durable.createFactor(active({ id: 'a1' }));
    time.set(T0 + PENDING_MS - 1);
    assert.deepEqual((await durable.listFactors('alice', time())).map((f) => f.id), ['a1', 'p1', 'p2'].sort());
    assert.equal((await durable.getFactor('p1'))?.id, 'p1');
    time.set(T0 + PENDING_MS);
    assert.equal(await durable.getFactor('p1'), undefined);
    assert.deepEqual((await durable.listFactors('alice', time())).map((f) => f.id), ['a1', 'p2']);
    assert.equal(await durable.activateFactor('p1', 'alice', time()), false);
    await durable.createContact(contact({ id: 'c1', pendingUntil: T0 + 1 }));
    await durable.createContact(activeContact({ id: 'c2' }));
    assert.deepEqual(store.cleanup(), { ttl: 0, factors: 1, contacts: 1 });
    assert.deepEqual(store.cleanup(), { ttl: 0, factors: 0, contacts: 0 });
    assert.deepEqual((await durable.listContacts('alice', time())).map((c) => c.id), ['c2']);
    assert.equal(await durable.activateFactor('p2', 'alice', time()), true);
  });

  test('cleanup tells which pending factors it purged, by type (the expired enrolments); active ones are not', async () => {
    const purged: string[][] = [];
    const told = openSqliteStore({ path: dbPath(), clock: time, onPendingPurged: (types) => purged.push([...types].sort()) });
    try {
      await told.durable.createFactor(factor({ id: 'p1' }));
      await told.durable.createFactor(factor({ id: 'p2', type: 'hotp' }));
      await told.durable.createFactor(factor({ id: 'p3', pendingUntil: T0 + 2 * PENDING_MS }));
      await told.durable.createFactor(active({ id: 'a1', type: 'hotp' }));
      time.set(T0 + PENDING_MS);
      assert.deepEqual(told.cleanup(), { ttl: 0, factors: 2, contacts: 0 });
      assert.deepEqual(told.cleanup(), { ttl: 0, factors: 0, contacts: 0 });
      assert.deepEqual(purged, [['hotp', 'totp']], 'told once, and not when nothing was purged');
    } finally {
      await told.close();
    }
  });
});

describe('sqlite store: file, schema, lifecycle', () => {
  test('creates the parent directory, mode 0600 file, WAL; data survives reopen', async () => {
    const path = dbPath();
    const time = fakeClock(T0);
    const first = openSqliteStore({ path, clock: time });
    await first.durable.createFactor(active({ id: 'keep' }));
    await first.durable.replaceRecoveryCodes('alice', hashes('a'), T0);
    await first.durable.consumeRecoveryCode('alice', 'k1$a00', T0);
    await first.ttl.issueSession('s'.repeat(64), SESSION, 20, T0);
    await first.close();
    assert.equal(statSync(path).mode & 0o777, 0o600);

    const raw = new Database(path, { readonly: true });
    try {
      assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
      assert.deepEqual(raw.prepare('SELECT version FROM schema_version').all(), [{ version: MIGRATIONS.sqlite.at(-1)!.version }]);
    } finally {
      raw.close();
    }

    const second = openSqliteStore({ path, clock: time });
    try {
      assert.equal((await second.durable.getFactor('keep'))?.id, 'keep');
      assert.equal(await second.durable.countRecoveryCodes('alice'), 9);
      assert.deepEqual(await second.ttl.getSession('s'.repeat(64), 'alice', T0), SESSION);
      await second.durable.ping();
      await second.ttl.ping();
    } finally {
      await second.close();
    }
  });

  test("the page cache is SQLite's own 2 MiB, not the 16 MiB better-sqlite3 builds in", async () => {
    // Why the store sets it: a connection left at the build's default keeps up to 16 MiB of pages.
    const plain = new Database(':memory:');
    try {
      assert.equal(plain.pragma('cache_size', { simple: true }), -16000);
    } finally {
      plain.close();
    }
    const store = openSqliteStore({ path: dbPath(), clock: fakeClock(T0) });
    try {
      assert.equal(store.pageCacheKiB, 2048);
    } finally {
      await store.close();
    }
  });

  test('a database from a newer schema is refused', async () => {
    const path = dbPath();
    await openSqliteStore({ path }).close();
    const raw = new Database(path);
    raw.prepare('UPDATE schema_version SET version = 99').run();
    raw.close();
    assert.throws(() => openSqliteStore({ path }), {
      name: 'StoreError',
      code: 'ERR_STORE_SCHEMA_TOO_NEW',
      message: `the database schema is version 99; this gateway knows up to ${MIGRATIONS.sqlite.at(-1)!.version} (downgrade is not supported)`,
    });
  });

  test('options are validated; a closed store refuses calls; close is idempotent', async () => {
    assert.throws(() => openSqliteStore({ path: '' }), { code: 'ERR_STORE_INVALID_OPTION', message: 'option "path" must be a non-empty file path' });
    assert.throws(() => openSqliteStore({ path: dbPath(), busyTimeoutMs: -1 }), {
      code: 'ERR_STORE_INVALID_OPTION',
      message: 'option "busyTimeoutMs" must be a positive integer of milliseconds',
    });
    const store = openSqliteStore({ path: dbPath() });
    await store.durable.close();
    await store.ttl.ping(); // still open: one half closed
    await store.ttl.close();
    await assert.rejects(store.ttl.lockRemainingMs('x', T0), (err: unknown) => StoreError.is(err) && err.code === 'ERR_STORE_CLOSED');
    await assert.rejects(store.ttl.readLockAndBlock('x', 'ip:x', T0), (err: unknown) => StoreError.is(err) && err.code === 'ERR_STORE_CLOSED');
    await assert.rejects(store.durable.ping(), { code: 'ERR_STORE_CLOSED', message: 'the store is closed' });
    await store.close();
  });
});

/**
 * Real contention: worker threads, each with its own connection to the same file, run at the
 * same time (unlike calls inside one process, which better-sqlite3 serialises).
 */
describe('sqlite store: several connections in parallel threads', () => {
  const WORKERS = 4;
  const PER_WORKER = 25;

  test('8 threads opening one new file at the same moment all get a working, migrated store', async () => {
    const versions = await inThreads<number>(
      8,
      `async (open) => {
        const store = open();
        const version = store.migrations.status.current;
        await store.close();
        return version;
      }`,
      { path: dbPath() },
    );
    assert.deepEqual(versions, Array.from({ length: 8 }, () => MIGRATIONS.sqlite.at(-1)!.version));
  });

  test(`${WORKERS} threads × ${PER_WORKER}: one recovery code consumed once, counter ends at ${WORKERS * PER_WORKER}`, async () => {
    const path = dbPath();
    const store = openSqliteStore({ path, clock: () => T0 });
    try {
      await store.durable.replaceRecoveryCodes('alice', hashes('a'), T0);
      const results = await inThreads<boolean[]>(
        WORKERS,
        `async (open, data) => {
          const store = open();
          const consumed = [];
          for (let i = 0; i < data.count; i++) {
            consumed.push((await store.durable.consumeRecoveryCode('alice', data.hash, data.now)).consumed);
            await store.ttl.recordFailure('fail:alice', data.now, { maxFailures: 1000, findTimeMs: 60000, blockMs: 60000 });
          }
          await store.close();
          return consumed;
        }`,
        { path, hash: 'k1$a05', now: T0, count: PER_WORKER },
      );
      assert.equal(results.flat().filter(Boolean).length, 1);
      assert.equal(await store.durable.countRecoveryCodes('alice'), 9);
      assert.equal((await store.ttl.recordFailure('fail:alice', T0, { maxFailures: 1000, findTimeMs: 60_000, blockMs: 60_000 })).failures, WORKERS * PER_WORKER + 1);
    } finally {
      await store.close();
    }
  });
});
