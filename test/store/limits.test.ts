import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite.js';
import { inThreads } from './threads.js';

/**
 * What only the SQLite backend of the throttle verbs has to show (ttl-conformance.ts covers the
 * verbs themselves): rows purged, and real contention from threads with their own connections.
 */

const T0 = Date.UTC(2026, 10, 28, 12);
const MINUTE = 60_000;
const WINDOW = { limit: 3, windowMs: MINUTE };
const RULE = { maxFailures: 3, findTimeMs: 5 * MINUTE, blockMs: 15 * MINUTE };

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mfa-limits-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const dbPath = (): string => join(dir, `db-${++n}`, 'mfa.db');

describe('sqlite: throttle rows', () => {
  let store: SqliteStore;
  beforeEach(() => {
    store = openSqliteStore({ path: dbPath(), clock: () => T0 });
  });
  afterEach(() => store.close());

  test('a key holding another verb’s value is read as no failures, not misread', async () => {
    const { ttl } = store;
    await ttl.takeToken('ip:e', T0, WINDOW);
    assert.equal(await ttl.blockedUntil('ip:e', T0), 0);
    assert.deepEqual(await ttl.recordFailure('ip:e', T0, RULE), { failures: 1, blockedNow: false, blockedUntil: 0 });
  });

  test('expired windows and blocks are purged by cleanup', async () => {
    let now = T0;
    const path = dbPath();
    const timed = openSqliteStore({ path, clock: () => now });
    try {
      await timed.ttl.takeToken('rl:x', T0, WINDOW);
      await timed.ttl.recordFailure('ip:x', T0, { ...RULE, maxFailures: 1 });
      now = T0 + RULE.blockMs;
      assert.equal(timed.cleanup().ttl, 2);
    } finally {
      await timed.close();
    }
  });
});

describe('sqlite: the lockout ladder rows', () => {
  const cfg = { maxFailures: 3, findTimeMs: 5 * MINUTE, backoffMs: [30_000, 60_000, 120_000, 300_000] };
  let store: SqliteStore;
  beforeEach(() => {
    store = openSqliteStore({ path: dbPath(), clock: () => T0 });
  });
  afterEach(() => store.close());

  test('locks across calls, reports the new lock once, counts active locks exactly', async () => {
    const { ttl } = store;
    const now = T0;
    assert.equal((await ttl.recordLockFailure('alice', now, cfg)).lockedNow, false);
    assert.equal((await ttl.recordLockFailure('bob', now, cfg)).lockedNow, false);
    assert.equal((await ttl.recordLockFailure('alice', now, cfg)).lockedNow, false);
    const third = await ttl.recordLockFailure('alice', now, cfg);
    assert.deepEqual(third, { lockedNow: true, retryAfterMs: 30_000, level: 1 });
    assert.equal(await ttl.lockRemainingMs('alice', now + 10_000), 30_000 - 10_000);
    assert.equal(await ttl.lockRemainingMs('bob', now), 0);
    assert.equal(await ttl.activeLocks(now), 1);
    assert.equal(await ttl.activeLocks(now + 30_000), 0);
    await ttl.clearLock('alice');
    // Cleared: the next failure starts a new window instead of re-locking on probation.
    assert.deepEqual(await ttl.recordLockFailure('alice', now + 30_000, cfg), { lockedNow: false, retryAfterMs: 0, level: 0 });
  });
});

describe('throttle verbs across threads sharing one file', () => {
  const WORKERS = 4;
  const PER_WORKER = 25;

  test(`${WORKERS} threads × ${PER_WORKER}: a quota of 30 is taken exactly 30 times; 40 failures block exactly once`, async () => {
    const path = dbPath();
    const store = openSqliteStore({ path, clock: () => T0 });
    try {
      const results = await inThreads<{ taken: number; blocks: number }>(
        WORKERS,
        `async (open, data) => {
          const store = open();
          let taken = 0;
          let blocks = 0;
          for (let i = 0; i < data.count; i++) {
            if ((await store.ttl.takeToken('rl:threads', data.now, { limit: 30, windowMs: 60000 })).taken) taken++;
            if ((await store.ttl.recordFailure('ip:threads', data.now, { maxFailures: 40, findTimeMs: 300000, blockMs: 900000 })).blockedNow) blocks++;
          }
          await store.close();
          return { taken, blocks };
        }`,
        { path, now: T0, count: PER_WORKER },
      );
      assert.equal(results.reduce((sum, r) => sum + r.taken, 0), 30);
      assert.equal(results.reduce((sum, r) => sum + r.blocks, 0), 1);
      assert.equal(await store.ttl.blockedUntil('ip:threads', T0), T0 + 900_000);
    } finally {
      await store.close();
    }
  });
});
