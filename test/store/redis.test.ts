import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { RedisConfig } from '../../src/config/types.js';
import { openRedisTtlStore, reconnectDelay, redisTag, type RedisTtlStore } from '../../src/store/redis.js';
import type { Invalidation, LockoutRule, StoredSession } from '../../src/store/types.js';
import { deleteKeys, listKeys, testPrefix } from '../support/redis-server.js';
import { REDIS_URL, redisOrSkip } from '../support/services.js';
import { hashTagOf, keySlot } from '../support/redis-slots.js';
import { eventually } from '../support/wait.js';

/**
 * What only the Redis backend has to show (the verbs' semantics are the conformance suite's): how
 * keys are named and tagged, whose clock runs what, the pub/sub bus on the wire, and the factory's
 * checks. Against the shared Redis, each test under a key prefix of its own that it deletes.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const YEAR = 365 * 24 * HOUR;
const LADDER: LockoutRule = { maxFailures: 3, findTimeMs: 5 * MINUTE, backoffMs: [MINUTE, 5 * MINUTE] };
const RULE = { maxFailures: 3, findTimeMs: 5 * MINUTE, blockMs: 15 * MINUTE };
const WINDOW = { limit: 3, windowMs: MINUTE };
const HASH = 'ab'.repeat(32);
/** Every character that could break a naive `{subject}` tag, and some that need escaping elsewhere. */
const SUBJECT = 'a}b{c';

let skip: string | undefined;
let admin: Redis;
before(async () => {
  skip = await redisOrSkip();
  if (skip !== undefined && process.env.CI === 'true') throw new Error(`${skip} (CI=true: the Redis backend must be tested)`);
  admin = new Redis(REDIS_URL, { lazyConnect: true });
  admin.on('error', () => undefined);
});
after(() => admin.disconnect());

const config = (keyPrefix: string, over: Partial<RedisConfig> = {}): RedisConfig => ({
  url: REDIS_URL,
  topology: { mode: 'single' },
  keyPrefix,
  connectTimeoutMs: 2_000,
  commandTimeoutMs: 2_000,
  ...over,
});

/** Opens `count` stores sharing one fresh prefix, runs `body`, then closes them and deletes the prefix's keys. */
async function withStores(t: { skip(message: string): void }, count: number, body: (stores: RedisTtlStore[], prefix: string) => Promise<void>): Promise<void> {
  if (skip !== undefined) {
    t.skip(skip);
    return;
  }
  const prefix = testPrefix();
  const stores: RedisTtlStore[] = [];
  try {
    for (let i = 0; i < count; i++) stores.push(await openRedisTtlStore(config(prefix)));
    await body(stores, prefix);
  } finally {
    await Promise.all(stores.map((store) => store.close()));
    await deleteKeys(REDIS_URL, prefix);
  }
}

function session(now: number, over: Partial<StoredSession> = {}): StoredSession {
  return { subject: SUBJECT, method: 'totp', mfaTime: Math.floor(now / 1000), issuedAt: now, expiresAt: now + 12 * HOUR, ...over };
}

describe('redis: keys', () => {
  test('every key a subject’s verbs touch carries the subject’s tag, so all of them share one slot', async (t) => {
    await withStores(t, 1, async ([store], prefix) => {
      const { ttl } = store!;
      const now = Date.now();
      for (let i = 0; i < 3; i++) await ttl.recordLockFailure(SUBJECT, now + i, LADDER);
      await ttl.swapDriftReading(SUBJECT, 30, now, MINUTE);
      await ttl.issueSession(HASH, session(now), 5, now);
      await ttl.useOtpStep('f{1}', 5, now, HOUR);
      await ttl.recordFailure('ip:}{', now, RULE);
      await ttl.takeToken('rl:{x}', now, WINDOW);

      const subjectTag = redisTag(SUBJECT);
      assert.match(subjectTag, /^[A-Za-z0-9_-]{43}$/);
      const subjectKeys = [`${prefix}{${subjectTag}}:lock`, `${prefix}{${subjectTag}}:drift`, `${prefix}{${subjectTag}}:sessions`, `${prefix}{${subjectTag}}:session:${HASH}`];
      const perKey = [`${prefix}{${redisTag('f{1}')}}:otp`, `${prefix}{${redisTag('ip:}{')}}:fail`, `${prefix}{${redisTag('rl:{x}')}}:rate`];
      const gauge = `${prefix}{locks}:active`;
      await admin.connect().catch(() => undefined);
      assert.deepEqual(await listKeys(admin, prefix), [...subjectKeys, ...perKey, gauge].sort());

      // The cluster's own rule (first `{`, first `}` after it) finds exactly the tag we meant.
      for (const key of subjectKeys) assert.equal(hashTagOf(key), subjectTag, key);
      assert.deepEqual(perKey.map(hashTagOf), [redisTag('f{1}'), redisTag('ip:}{'), redisTag('rl:{x}')]);
      assert.equal(hashTagOf(gauge), 'locks');
      assert.equal(new Set(subjectKeys.map(keySlot)).size, 1);
      // The slot function itself, checked against values CLUSTER KEYSLOT gives on Redis 7.
      assert.deepEqual([keySlot('foo'), keySlot('mfa:{abc}:x'), keySlot('{}x'), keySlot('a{b')], [12182, 7638, 10595, 13340]);
    });
  });

  test('a subject like a}b{c works through every subject verb', async (t) => {
    await withStores(t, 2, async ([a, b]) => {
      const now = Date.now();
      assert.deepEqual(await a!.ttl.issueSession(HASH, session(now), 5, now), []);
      assert.deepEqual(await b!.ttl.getSession(HASH, SUBJECT, now), session(now));
      assert.equal(await b!.ttl.getSession(HASH, 'a}b{', now), undefined);
      assert.deepEqual(await b!.ttl.revokeAllSessions(SUBJECT, now), [HASH]);
      assert.equal(await a!.ttl.getSession(HASH, SUBJECT, now), undefined);
      for (let i = 0; i < 3; i++) await a!.ttl.recordLockFailure(SUBJECT, now, LADDER);
      assert.equal(await b!.ttl.lockRemainingMs(SUBJECT, now), MINUTE);
      assert.equal(await b!.ttl.lockRemainingMs('a}b{', now), 0);
      assert.equal(await a!.ttl.activeLocks(now), 1);
      await b!.ttl.clearLock(SUBJECT);
      assert.equal(await a!.ttl.lockRemainingMs(SUBJECT, now), 0);
      assert.equal(await a!.ttl.swapDriftReading(SUBJECT, -30, now, MINUTE), undefined);
      assert.equal(await b!.ttl.swapDriftReading(SUBJECT, null, now, MINUTE), -30);
    });
  });
});

describe('redis: whose clock', () => {
  /** The caller's `now` years away from Redis's: answers follow `now`, key lifetimes the durations. */
  for (const [name, offset] of [['3 years behind', -3 * YEAR], ['3 years ahead', 3 * YEAR]] as const) {
    test(`PTTL of every key equals the duration handed in when the caller's clock is ${name}`, async (t) => {
      await withStores(t, 1, async ([store], prefix) => {
        const { ttl } = store!;
        const now = Date.now() + offset;
        const tag = (value: string) => `${prefix}{${redisTag(value)}}`;

        assert.equal(await ttl.useOtpStep('f1', 7, now, HOUR), true);
        assert.deepEqual(await ttl.takeToken('rl', now, WINDOW), { taken: true, remaining: 2, resetAt: now + MINUTE });
        assert.deepEqual(await ttl.recordFailure('ip', now, RULE), { failures: 1, blockedNow: false, blockedUntil: 0 });
        assert.deepEqual(await ttl.recordFailure('ip2', now, { ...RULE, maxFailures: 1 }), { failures: 1, blockedNow: true, blockedUntil: now + RULE.blockMs });
        assert.equal(await ttl.swapDriftReading('alice', 30, now, 2 * MINUTE), undefined);
        for (let i = 0; i < 3; i++) await ttl.recordLockFailure('alice', now, LADDER);
        assert.deepEqual(await ttl.issueSession(HASH, session(now, { subject: 'alice' }), 5, now), []);

        const expected: Record<string, number> = {
          [`${tag('f1')}:otp`]: HOUR,
          [`${tag('rl')}:rate`]: MINUTE,
          [`${tag('ip')}:fail`]: RULE.findTimeMs,
          [`${tag('ip2')}:fail`]: RULE.blockMs,
          [`${tag('alice')}:drift`]: 2 * MINUTE,
          // The ladder state outlives the lock by its probation (findTime); the gauge lives as long as the lock.
          [`${tag('alice')}:lock`]: MINUTE + LADDER.findTimeMs,
          [`${prefix}{locks}:active`]: MINUTE,
          [`${tag('alice')}:session:${HASH}`]: 12 * HOUR,
          [`${tag('alice')}:sessions`]: 12 * HOUR,
        };
        await admin.connect().catch(() => undefined);
        assert.deepEqual(await listKeys(admin, prefix), Object.keys(expected).sort());
        for (const [key, duration] of Object.entries(expected)) {
          const pttl = await admin.pttl(key);
          assert.ok(pttl <= duration && pttl > duration - 2_000, `${key}: PTTL ${pttl}, expected ${duration}`);
        }

        // Instants are judged with the caller's `now`, not Redis's: all live at now, over at their ends.
        assert.deepEqual(await ttl.getSession(HASH, 'alice', now), session(now, { subject: 'alice' }));
        assert.equal(await ttl.getSession(HASH, 'alice', now + 12 * HOUR), undefined);
        assert.equal(await ttl.lockRemainingMs('alice', now + 1000), MINUTE - 1000);
        assert.equal(await ttl.activeLocks(now), 1);
        assert.equal(await ttl.blockedUntil('ip2', now + RULE.blockMs - 1), now + RULE.blockMs);
        assert.equal(await ttl.blockedUntil('ip2', now + RULE.blockMs), 0);
        assert.equal(await ttl.useOtpStep('f1', 7, now + HOUR - 1, HOUR), false);
        assert.equal(await ttl.useOtpStep('f1', 7, now + HOUR, HOUR), true);
      });
    });
  }
});

describe('redis: the invalidation bus', () => {
  const channelOf = (prefix: string) => `${prefix}invalidate`;
  /** Waits until `count` connections are subscribed to the channel (each store has one). */
  const subscribed = (prefix: string, count: number) =>
    eventually(async () => {
      const [, n] = (await admin.pubsub('NUMSUB', channelOf(prefix))) as [string, number];
      return Number(n) >= count;
    }, 5_000);

  test('a message from one replica reaches every replica, itself included, within 1 s', async (t) => {
    await withStores(t, 2, async ([a, b], prefix) => {
      await admin.connect().catch(() => undefined);
      const got: { at: string; message: Invalidation; ms: number }[] = [];
      const sent = Date.now();
      a!.bus.subscribe((message) => got.push({ at: 'a', message, ms: Date.now() - sent }));
      b!.bus.subscribe((message) => got.push({ at: 'b', message, ms: Date.now() - sent }));
      await subscribed(prefix, 2);
      const start = Date.now();
      await a!.bus.publish({ kind: 'sessions', subject: SUBJECT });
      await eventually(() => got.length === 2, 1_000);
      t.diagnostic(`delivered to both replicas in ${Date.now() - start} ms`);
      assert.deepEqual(got.map(({ at, message }) => ({ at, message })).sort((x, y) => x.at.localeCompare(y.at)), [
        { at: 'a', message: { kind: 'sessions', subject: SUBJECT } },
        { at: 'b', message: { kind: 'sessions', subject: SUBJECT } },
      ]);
    });
  });

  test('anything malformed on the channel is dropped; a listener that throws stops neither the others nor the process', async (t) => {
    if (skip !== undefined) return t.skip(skip);
    const prefix = testPrefix();
    const thrown: unknown[] = [];
    const store = await openRedisTtlStore(config(prefix), { onListenerError: (error) => thrown.push(error) });
    try {
      await admin.connect().catch(() => undefined);
      const got: Invalidation[] = [];
      store.bus.subscribe(() => {
        throw new Error('listener bug');
      });
      const unsubscribe = store.bus.subscribe(() => got.push({ kind: 'factors', subject: 'unsubscribed' }));
      unsubscribe();
      store.bus.subscribe((message) => got.push(message));
      await subscribed(prefix, 1);
      const garbage = [
        'not json',
        '[]',
        'null',
        '{"kind":"session"}',
        '{"kind":"session","hash":""}',
        '{"kind":"session","subject":"s"}',
        '{"kind":"session","hash":"h","extra":1}',
        '{"kind":"nope","subject":"s"}',
        '{"kind":"sessions","subject":5}',
        JSON.stringify({ kind: 'factors', subject: 'x'.repeat(5_000) }),
      ];
      for (const text of garbage) await admin.publish(channelOf(prefix), text);
      await admin.publish(channelOf(prefix), '{"kind":"factors","subject":"s"}');
      await store.bus.publish({ kind: 'session', hash: HASH });
      // One channel, one connection: messages arrive in order, so the garbage came (and went) first.
      await eventually(() => got.length === 2, 1_000);
      assert.deepEqual(got, [
        { kind: 'factors', subject: 's' },
        { kind: 'session', hash: HASH },
      ]);
      assert.equal(thrown.length, 2);
      assert.equal((thrown[0] as Error).message, 'listener bug');

      await assert.rejects(store.bus.publish({ kind: 'session' } as unknown as Invalidation), { code: 'ERR_STORE_INVALID_OPTION' });
      await assert.rejects(store.bus.publish({ kind: 'factors', subject: 'x'.repeat(5_000) }), { code: 'ERR_STORE_INVALID_OPTION', message: 'message must be at most 4096 bytes as JSON' });
    } finally {
      await store.close();
      await deleteKeys(REDIS_URL, prefix);
    }
    await assert.rejects(store.bus.publish({ kind: 'session', hash: HASH }), { code: 'ERR_STORE_CLOSED' });
    await assert.rejects(store.ttl.ping(), { code: 'ERR_STORE_CLOSED' });
  });
});

describe('redis: opening', () => {
  test('bad options are refused at open, and no message holds the URL or its password', async () => {
    const refuse = async (over: Partial<RedisConfig>, message: string) => {
      const error = await openRedisTtlStore(config('p:', over)).then(
        () => assert.fail('opened'),
        (e: unknown) => e as Error & { code: string },
      );
      assert.deepEqual({ code: error.code, message: error.message }, { code: 'ERR_STORE_INVALID_OPTION', message });
    };
    await refuse({ keyPrefix: 'mfa{x}:' }, 'keyPrefix must be a string without { or }');
    await refuse({ url: 'http://user:hunter2@example.test' }, 'url must start with redis:// or rediss://');
    await refuse({ url: 'redis://:hunter2@example.test/db' }, 'url path must be a database number');
    await refuse({ url: 'hunter2' }, 'url is not a valid URL');
    await refuse({ url: undefined }, 'url is required for a single Redis server');
    await refuse({ topology: { mode: 'cluster', nodes: [] } }, 'topology.nodes must list at least one cluster node');
    await refuse({ topology: { mode: 'sentinel', master: '', nodes: [{ host: 'h', port: 26379 }] } }, 'topology.master must name the Sentinel master');
    await refuse({ commandTimeoutMs: 0 }, 'commandTimeoutMs must be a positive integer of milliseconds');
    await assert.rejects(openRedisTtlStore(config('p:'), { onError: 'log' as unknown as () => void }), { code: 'ERR_STORE_INVALID_OPTION', message: 'onError must be a function' });
    await assert.rejects(openRedisTtlStore(config('p:'), { reconnect: { initialMs: 0, maxMs: 10 } }), { code: 'ERR_STORE_INVALID_OPTION', message: 'reconnect.initialMs must be a positive integer of milliseconds' });
  });

  test('a healthy start is ready when open resolves; ping answers', async (t) => {
    await withStores(t, 1, async ([store]) => {
      assert.equal(store!.state(), 'ready');
      await store!.ttl.ping();
    });
  });
});

test('reconnectDelay: the ceiling doubles up to the cap, the delay is drawn in its upper half', () => {
  const low = (attempt: number) => reconnectDelay(attempt, () => 0);
  const high = (attempt: number) => reconnectDelay(attempt, () => 0.999_999);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 50, 5_000].map(low), [50, 100, 200, 400, 800, 1_000, 1_000, 1_000]);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 50, 5_000].map(high), [99, 199, 399, 799, 1_599, 1_999, 1_999, 1_999]);
  assert.equal(reconnectDelay(3, () => 0.5, 10, 1_000), 30);
});
