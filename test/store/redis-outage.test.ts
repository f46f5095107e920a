import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { RedisConfig } from '../../src/config/types.js';
import { StoreError } from '../../src/store/errors.js';
import { openRedisTtlStore, type RedisHealth, type RedisTtlStore } from '../../src/store/redis.js';
import type { Invalidation, TtlStore } from '../../src/store/types.js';
import { missingBinary } from '../support/binaries.js';
import { REDIS_SERVER, startPrivateRedis, testPrefix, type PrivateRedis } from '../support/redis-server.js';
import { eventually } from '../support/wait.js';

/**
 * Outages, on a redis-server of this file's own (killed, paused, restarted on the same port): the
 * store fails fast with ERR_STORE_UNAVAILABLE, says so in state(), and heals by itself. The server
 * has a password, so every message can be checked for it.
 */

const skip = missingBinary(REDIS_SERVER, 'redis-server');
const PASSWORD = 'pw-0f1e2d3c4b5a';
const COMMAND_TIMEOUT = 500;
const MINUTE = 60_000;

let server: PrivateRedis;
before(async () => {
  if (skip === undefined) server = await startPrivateRedis({ password: PASSWORD });
});
after(async () => {
  await server?.dispose();
});

const config = (): RedisConfig => ({
  url: server.url,
  topology: { mode: 'single' },
  keyPrefix: testPrefix(),
  connectTimeoutMs: 500,
  commandTimeoutMs: COMMAND_TIMEOUT,
});

/** A store that records its state changes and the errors it reports. */
async function open(keyPrefix?: string) {
  const states: RedisHealth[] = [];
  const reported: StoreError[] = [];
  const store = await openRedisTtlStore(keyPrefix === undefined ? config() : { ...config(), keyPrefix }, {
    onError: (error) => reported.push(error),
    reconnect: { initialMs: 50, maxMs: 500 },
  });
  store.onStateChange((state) => states.push(state));
  return { store, states, reported };
}

/** One call of every verb, so each is shown to fail (and later work) alike. */
const VERBS: Record<string, (ttl: TtlStore, now: number) => Promise<unknown>> = {
  useOtpStep: (ttl, now) => ttl.useOtpStep('f', 1, now, MINUTE),
  forgetOtpSteps: (ttl) => ttl.forgetOtpSteps('f'),
  lockRemainingMs: (ttl, now) => ttl.lockRemainingMs('alice', now),
  recordLockFailure: (ttl, now) => ttl.recordLockFailure('alice', now, { maxFailures: 3, findTimeMs: MINUTE, backoffMs: [MINUTE] }),
  clearLock: (ttl) => ttl.clearLock('alice'),
  activeLocks: (ttl, now) => ttl.activeLocks(now),
  recordFailure: (ttl, now) => ttl.recordFailure('ip', now, { maxFailures: 3, findTimeMs: MINUTE, blockMs: MINUTE }),
  blockedUntil: (ttl, now) => ttl.blockedUntil('ip', now),
  readLockAndBlock: (ttl, now) => ttl.readLockAndBlock('alice', 'ip', now),
  swapDriftReading: (ttl, now) => ttl.swapDriftReading('alice', 30, now, MINUTE),
  issueSession: (ttl, now) => ttl.issueSession(String(now), { subject: 'alice', method: 'totp', mfaTime: 1, issuedAt: now, expiresAt: now + MINUTE }, 5, now),
  getSession: (ttl, now) => ttl.getSession('h', 'alice', now),
  deleteSession: (ttl, now) => ttl.deleteSession('h', 'alice', now),
  revokeAllSessions: (ttl, now) => ttl.revokeAllSessions('alice', now),
  takeToken: (ttl, now) => ttl.takeToken('rl', now, { limit: 3, windowMs: MINUTE }),
  ping: (ttl) => ttl.ping(),
};

/** Runs every verb; each must reject with ERR_STORE_UNAVAILABLE. Returns the slowest rejection in ms. */
async function everyVerbUnavailable(ttl: TtlStore, expectedMessage: string | RegExp): Promise<number> {
  let slowest = 0;
  for (const [name, verb] of Object.entries(VERBS)) {
    const start = performance.now();
    const error = await verb(ttl, Date.now()).then(
      () => assert.fail(`${name} succeeded during the outage`),
      (e: unknown) => e,
    );
    const ms = performance.now() - start;
    slowest = Math.max(slowest, ms);
    assert.ok(StoreError.is(error), `${name}: ${String(error)}`);
    assert.equal(error.code, 'ERR_STORE_UNAVAILABLE', name);
    assert.match(error.message, typeof expectedMessage === 'string' ? new RegExp(`^${expectedMessage.replace(/[()]/g, '\\$&')}$`) : expectedMessage, name);
    assert.ok(ms < 2_000, `${name} took ${ms} ms`);
  }
  return slowest;
}

async function everyVerbWorks(ttl: TtlStore): Promise<void> {
  for (const [name, verb] of Object.entries(VERBS)) await assert.doesNotReject(verb(ttl, Date.now()), name);
}

function noSecretIn(texts: readonly string[]): void {
  for (const text of texts) {
    assert.ok(!text.includes(PASSWORD), `the password leaked: ${text}`);
    assert.ok(!text.includes('redis://'), `the URL leaked: ${text}`);
  }
}

describe('redis outage', { skip }, () => {
  test('killed: every verb fails fast, state goes down, and the store heals by itself when the server is back', async (t: TestContext) => {
    const { store, states, reported } = await open();
    try {
      assert.equal(store.state(), 'ready');
      await everyVerbWorks(store.ttl);

      const killedAt = performance.now();
      await server.kill();
      await eventually(() => store.state() === 'down', 1_000);
      t.diagnostic(`state 'down' ${Math.round(performance.now() - killedAt)} ms after the kill`);
      const slowest = await everyVerbUnavailable(store.ttl, 'Redis is not connected (reconnecting in the background)');
      t.diagnostic(`slowest verb rejection while the server is dead: ${slowest.toFixed(1)} ms`);

      const restartedAt = performance.now();
      await server.start();
      await eventually(() => store.state() === 'ready', 5_000);
      t.diagnostic(`state 'ready' again ${Math.round(performance.now() - restartedAt)} ms after the server answered PING`);
      await everyVerbWorks(store.ttl);
      assert.deepEqual(states.slice(0, 1), ['down']);
      assert.equal(states.at(-1), 'ready');
      assert.equal(reported[0]?.message, 'the connection to Redis was lost');
      assert.ok(reported.every((e) => e.code === 'ERR_STORE_UNAVAILABLE'));
      noSecretIn(reported.map((e) => e.message));
    } finally {
      await store.close();
    }
  });

  test('killed with commands in flight: they fail at once, are not resent, and the store heals', async (t) => {
    const { store } = await open();
    try {
      // 200 failures on the way when the connection drops: none may be counted twice after it heals.
      const now = Date.now();
      const rule = { maxFailures: 1_000, findTimeMs: MINUTE, blockMs: MINUTE };
      const inFlight = Array.from({ length: 200 }, () => store.ttl.recordFailure('burst', now, rule).then(() => 'ok', (e: unknown) => `${(e as StoreError).code}: ${(e as StoreError).message}`));
      const killed = server.kill();
      const outcomes = await Promise.all(inFlight);
      await killed;
      const counts = new Map<string, number>();
      for (const outcome of outcomes) counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
      t.diagnostic(`in flight at the kill: ${JSON.stringify(Object.fromEntries(counts))}`);
      // Answered before the socket closed, lost with it, or sent after it closed: nothing else.
      const expected = new Set(['ok', 'ERR_STORE_UNAVAILABLE: the connection to Redis was lost before it answered', 'ERR_STORE_UNAVAILABLE: Redis is not connected (reconnecting in the background)']);
      assert.deepEqual(outcomes.filter((o) => !expected.has(o)), []);
      await server.start();
      await eventually(() => store.state() === 'ready', 5_000);
      // A fresh server (nothing persisted): the count restarts at 1, so no stale command ran on it.
      assert.deepEqual(await store.ttl.recordFailure('burst', now, rule), { failures: 1, blockedNow: false, blockedUntil: 0 });
    } finally {
      await store.close();
    }
  });

  test('hung (SIGSTOP): a verb fails after commandTimeout, state goes down at once, and a probe brings it back', async (t) => {
    const { store, states } = await open();
    try {
      server.pause();
      const start = performance.now();
      const error = await store.ttl.takeToken('rl', Date.now(), { limit: 3, windowMs: MINUTE }).then(
        () => assert.fail('answered while paused'),
        (e: unknown) => e as StoreError,
      );
      const ms = performance.now() - start;
      t.diagnostic(`a verb against a hung server rejected after ${ms.toFixed(0)} ms (commandTimeout ${COMMAND_TIMEOUT} ms)`);
      assert.deepEqual({ code: error.code, message: error.message }, { code: 'ERR_STORE_UNAVAILABLE', message: `Redis did not answer within ${COMMAND_TIMEOUT} ms` });
      assert.ok(ms >= COMMAND_TIMEOUT - 50 && ms < 2_000, `${ms} ms`);
      assert.equal(store.state(), 'down');
      server.resume();
      await eventually(() => store.state() === 'ready', 3_000);
      assert.deepEqual(states, ['down', 'ready']);
      await everyVerbWorks(store.ttl);
    } finally {
      server.resume();
      await store.close();
    }
  });

  test('opened while the server is down: open resolves (state connecting), verbs fail fast, then it connects by itself', async () => {
    await server.kill();
    let store: RedisTtlStore | undefined;
    try {
      const opened = await open();
      store = opened.store;
      assert.equal(store.state(), 'connecting');
      await everyVerbUnavailable(store.ttl, /^Redis (is not connected \(reconnecting in the background\)|is unreachable \(ECONNREFUSED\))$/);
      await server.start();
      await eventually(() => store!.state() === 'ready', 5_000);
      await everyVerbWorks(store.ttl);
      noSecretIn(opened.reported.map((e) => e.message));
    } finally {
      if (server !== undefined) await server.start().catch(() => undefined);
      await store?.close();
    }
  });

  test('the bus: delivered across replicas within 1 s, refused while down, and delivered again after a restart', async (t) => {
    const prefix = testPrefix();
    const a = await open(prefix);
    const b = await open(prefix);
    const admin = new Redis(server.url, { lazyConnect: true });
    admin.on('error', () => undefined);
    const subscribers = async () => {
      await admin.connect().catch(() => undefined);
      const [, n] = (await admin.pubsub('NUMSUB', `${prefix}invalidate`)) as [string, number];
      return Number(n);
    };
    try {
      const got: Invalidation[] = [];
      b.store.bus.subscribe((message) => got.push(message));
      await eventually(async () => (await subscribers()) === 2, 5_000);
      let start = performance.now();
      await a.store.bus.publish({ kind: 'session', hash: 'h1' });
      await eventually(() => got.length === 1, 1_000);
      t.diagnostic(`delivered in ${(performance.now() - start).toFixed(1)} ms`);

      await server.kill();
      admin.disconnect();
      await eventually(() => a.store.state() === 'down', 1_000);
      await assert.rejects(a.store.bus.publish({ kind: 'session', hash: 'lost' }), { code: 'ERR_STORE_UNAVAILABLE' });

      await server.start();
      // Both replicas' subscriber connections come back and subscribe again without being asked.
      await eventually(async () => (await subscribers().catch(() => 0)) === 2, 5_000);
      await eventually(() => a.store.state() === 'ready', 5_000);
      start = performance.now();
      await a.store.bus.publish({ kind: 'factors', subject: 'alice' });
      await eventually(() => got.length === 2, 1_000);
      t.diagnostic(`delivered after the restart in ${(performance.now() - start).toFixed(1)} ms`);
      assert.deepEqual(got, [
        { kind: 'session', hash: 'h1' },
        { kind: 'factors', subject: 'alice' },
      ]);
    } finally {
      admin.disconnect();
      await a.store.close();
      await b.store.close();
    }
  });
});
