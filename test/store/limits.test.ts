import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite.js';

/**
 * The two throttle verbs of the TTL store on real SQLite files: `takeToken` (a fixed-window quota,
 * one statement) and `recordFailure` / `blockedUntil` (a failure window that turns into a block,
 * one BEGIN IMMEDIATE transaction). Time is the `now` each call passes; nothing sleeps.
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

describe('takeToken: a fixed window per key', () => {
  let store: SqliteStore;
  beforeEach(() => {
    store = openSqliteStore({ path: dbPath(), clock: () => T0 });
  });
  afterEach(() => store.close());

  test('limit takes per window, counted from the first; then refused until the window ends; then afresh', async () => {
    const { ttl } = store;
    assert.deepEqual(await ttl.takeToken('rl:a', T0, WINDOW), { taken: true, remaining: 2, resetAt: T0 + MINUTE });
    // Later takes keep the first take's window end.
    assert.deepEqual(await ttl.takeToken('rl:a', T0 + 10_000, WINDOW), { taken: true, remaining: 1, resetAt: T0 + MINUTE });
    assert.deepEqual(await ttl.takeToken('rl:a', T0 + 20_000, WINDOW), { taken: true, remaining: 0, resetAt: T0 + MINUTE });
    assert.deepEqual(await ttl.takeToken('rl:a', T0 + 30_000, WINDOW), { taken: false, remaining: 0, resetAt: T0 + MINUTE });
    assert.deepEqual(await ttl.takeToken('rl:a', T0 + MINUTE - 1, WINDOW), { taken: false, remaining: 0, resetAt: T0 + MINUTE });
    // Refused takes do not push the count past limit + 1.
    assert.equal(await ttl.get('rl:a'), 4);
    assert.deepEqual(await ttl.takeToken('rl:a', T0 + MINUTE, WINDOW), { taken: true, remaining: 2, resetAt: T0 + 2 * MINUTE });
  });

  test('keys are independent', async () => {
    const { ttl } = store;
    for (let i = 0; i < 3; i++) await ttl.takeToken('rl:a', T0, WINDOW);
    assert.equal((await ttl.takeToken('rl:a', T0, WINDOW)).taken, false);
    assert.deepEqual(await ttl.takeToken('rl:b', T0, WINDOW), { taken: true, remaining: 2, resetAt: T0 + MINUTE });
  });

  test('50 parallel takes of a quota of 10: exactly 10 taken, remaining counts down 9…0', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => store.ttl.takeToken('rl:p', T0, { limit: 10, windowMs: MINUTE })));
    assert.equal(results.filter((r) => r.taken).length, 10);
    assert.deepEqual(results.filter((r) => r.taken).map((r) => r.remaining).sort((a, b) => b - a), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
  });

  test('two store instances on one file (two replicas of the embedded store) share the quota', async () => {
    const path = dbPath();
    const a = openSqliteStore({ path, clock: () => T0 });
    const b = openSqliteStore({ path, clock: () => T0 });
    try {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).ttl.takeToken('rl:shared', T0, { limit: 7, windowMs: MINUTE })));
      assert.equal(results.filter((r) => r.taken).length, 7);
    } finally {
      await a.close();
      await b.close();
    }
  });

  test('bad arguments are refused with typed errors', async () => {
    const { ttl } = store;
    await assert.rejects(ttl.takeToken('', T0, WINDOW), { code: 'ERR_STORE_INVALID_OPTION' });
    await assert.rejects(ttl.takeToken('k', Number.NaN, WINDOW), { code: 'ERR_STORE_INVALID_OPTION', message: 'now must be unix milliseconds' });
    await assert.rejects(ttl.takeToken('k', T0, { limit: 0, windowMs: MINUTE }), { code: 'ERR_STORE_INVALID_OPTION', message: 'window.limit must be a positive integer' });
    await assert.rejects(ttl.takeToken('k', T0, { limit: 1, windowMs: 0 }), { code: 'ERR_STORE_INVALID_OPTION' });
  });
});

describe('recordFailure / blockedUntil: a failure window that becomes a block', () => {
  let store: SqliteStore;
  beforeEach(() => {
    store = openSqliteStore({ path: dbPath(), clock: () => T0 });
  });
  afterEach(() => store.close());

  test('maxFailures within findTime block for blockMs; a failure while blocked changes nothing; then afresh', async () => {
    const { ttl } = store;
    assert.deepEqual(await ttl.recordFailure('ip:a', T0, RULE), { failures: 1, blockedNow: false, blockedUntil: 0 });
    assert.deepEqual(await ttl.recordFailure('ip:a', T0 + MINUTE, RULE), { failures: 2, blockedNow: false, blockedUntil: 0 });
    assert.equal(await ttl.blockedUntil('ip:a', T0 + MINUTE), 0);
    const blockedUntil = T0 + 2 * MINUTE + RULE.blockMs;
    assert.deepEqual(await ttl.recordFailure('ip:a', T0 + 2 * MINUTE, RULE), { failures: 3, blockedNow: true, blockedUntil });
    assert.equal(await ttl.blockedUntil('ip:a', T0 + 2 * MINUTE), blockedUntil);
    // A failure racing past the caller's check: the block is neither extended nor reported again.
    assert.deepEqual(await ttl.recordFailure('ip:a', T0 + 3 * MINUTE, RULE), { failures: 3, blockedNow: false, blockedUntil });
    assert.equal(await ttl.blockedUntil('ip:a', blockedUntil - 1), blockedUntil);
    assert.equal(await ttl.blockedUntil('ip:a', blockedUntil), 0);
    assert.deepEqual(await ttl.recordFailure('ip:a', blockedUntil, RULE), { failures: 1, blockedNow: false, blockedUntil: 0 });
  });

  test('the window is fixed from its first failure: failures spread wider than findTime never block', async () => {
    const { ttl } = store;
    await ttl.recordFailure('ip:b', T0, RULE);
    await ttl.recordFailure('ip:b', T0 + 4 * MINUTE, RULE);
    // The window opened at T0 ended at T0 + 5m: this is the first failure of a new one.
    assert.deepEqual(await ttl.recordFailure('ip:b', T0 + 5 * MINUTE, RULE), { failures: 1, blockedNow: false, blockedUntil: 0 });
  });

  test('maxFailures: 1 blocks on the first failure; keys are independent', async () => {
    const { ttl } = store;
    const once = { ...RULE, maxFailures: 1 };
    assert.deepEqual(await ttl.recordFailure('ip:c', T0, once), { failures: 1, blockedNow: true, blockedUntil: T0 + RULE.blockMs });
    assert.equal(await ttl.blockedUntil('ip:d', T0), 0);
  });

  test('50 parallel failures: exactly one starts the block', async () => {
    const results = await Promise.all(Array.from({ length: 50 }, () => store.ttl.recordFailure('ip:p', T0, { ...RULE, maxFailures: 20 })));
    assert.equal(results.filter((r) => r.blockedNow).length, 1);
    assert.deepEqual(results.map((r) => r.failures).slice(0, 20), Array.from({ length: 20 }, (_, i) => i + 1));
  });

  test('a key holding another verb’s value is read as no failures, not misread', async () => {
    const { ttl } = store;
    await ttl.set('ip:e', 'a session, say', MINUTE);
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

describe('throttle verbs across threads sharing one file', () => {
  const WORKERS = 4;
  const PER_WORKER = 25;
  const moduleUrl = new URL('../../src/store/sqlite.js', import.meta.url).href;
  const workerSource = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { openSqliteStore } = await import(workerData.moduleUrl);
      const store = openSqliteStore({ path: workerData.path, clock: () => workerData.now });
      parentPort.postMessage({ ready: true });
      await new Promise((resolve) => parentPort.once('message', resolve));
      let taken = 0;
      let blocks = 0;
      for (let i = 0; i < workerData.count; i++) {
        if ((await store.ttl.takeToken('rl:threads', workerData.now, { limit: 30, windowMs: 60000 })).taken) taken++;
        if ((await store.ttl.recordFailure('ip:threads', workerData.now, { maxFailures: 40, findTimeMs: 300000, blockMs: 900000 })).blockedNow) blocks++;
      }
      await store.close();
      parentPort.postMessage({ taken, blocks });
    })().catch((err) => parentPort.postMessage({ error: String(err && err.message) }));
  `;

  test(`${WORKERS} threads × ${PER_WORKER}: a quota of 30 is taken exactly 30 times; 40 failures block exactly once`, async () => {
    const path = dbPath();
    const store = openSqliteStore({ path, clock: () => T0 });
    const workers = Array.from({ length: WORKERS }, () => new Worker(workerSource, { eval: true, workerData: { moduleUrl, path, now: T0, count: PER_WORKER } }));
    try {
      type Reply = { ready?: boolean; taken?: number; blocks?: number; error?: string };
      const next = (w: Worker) =>
        new Promise<Reply>((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', reject);
        });
      const ready = await Promise.all(workers.map(next));
      assert.ok(ready.every((m) => m.ready === true), JSON.stringify(ready));
      const done = workers.map(next);
      for (const w of workers) w.postMessage('go');
      const results = await Promise.all(done);
      assert.deepEqual(results.filter((r) => r.error !== undefined), []);
      assert.equal(results.reduce((sum, r) => sum + (r.taken ?? 0), 0), 30);
      assert.equal(results.reduce((sum, r) => sum + (r.blocks ?? 0), 0), 1);
      assert.equal(await store.ttl.blockedUntil('ip:threads', T0), T0 + 900_000);
    } finally {
      await Promise.all(workers.map((w) => w.terminate()));
      await store.close();
    }
  });
});
