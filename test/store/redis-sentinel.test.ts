import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RedisConfig } from '../../src/config/types.js';
import { openRedisTtlStore } from '../../src/store/redis.js';
import type { Invalidation } from '../../src/store/types.js';
import { missingBinary } from '../support/binaries.js';
import { REDIS_SERVER, startPrivateRedis, testPrefix, type PrivateRedis } from '../support/redis-server.js';
import { eventually } from '../support/wait.js';

/**
 * topology: sentinel, against a private master (with a password) and a private Sentinel (without):
 * the store asks the Sentinel where the master is, and the URL's credentials go to the master only.
 */

const skip = missingBinary(REDIS_SERVER, 'redis-server');
const PASSWORD = 'master-pw-9a8b7c';
let master: PrivateRedis;
let sentinel: PrivateRedis;
before(async () => {
  if (skip !== undefined) return;
  master = await startPrivateRedis({ password: PASSWORD });
  sentinel = await startPrivateRedis({ sentinelFor: { name: 'mfa', port: master.port, password: PASSWORD } });
});
after(async () => {
  await sentinel?.dispose();
  await master?.dispose();
});

test('redis sentinel: the master is found through the Sentinel; verbs and the bus work', { skip }, async () => {
  const config: RedisConfig = {
    url: `redis://:${PASSWORD}@ignored-with-sentinel/0`,
    topology: { mode: 'sentinel', master: 'mfa', nodes: [{ host: '127.0.0.1', port: sentinel.port }] },
    keyPrefix: testPrefix(),
    connectTimeoutMs: 2_000,
    commandTimeoutMs: 2_000,
  };
  const a = await openRedisTtlStore(config);
  const b = await openRedisTtlStore(config);
  try {
    assert.deepEqual([a.state(), b.state()], ['ready', 'ready']);
    const now = Date.now();
    assert.equal(await a.ttl.useOtpStep('f', 3, now, 60_000), true);
    assert.equal(await b.ttl.useOtpStep('f', 3, now, 60_000), false);
    const got: Invalidation[] = [];
    b.bus.subscribe((message) => got.push(message));
    await eventually(async () => {
      await a.bus.publish({ kind: 'sessions', subject: 'alice' });
      await new Promise((resolve) => setTimeout(resolve, 50));
      return got.length > 0;
    }, 5_000);
    assert.deepEqual(got[0], { kind: 'sessions', subject: 'alice' });
  } finally {
    await a.close();
    await b.close();
  }
});

test('redis sentinel: an unknown master name fails closed (never ready, verbs unavailable)', { skip }, async () => {
  const store = await openRedisTtlStore(
    {
      url: `redis://:${PASSWORD}@x`,
      topology: { mode: 'sentinel', master: 'nope', nodes: [{ host: '127.0.0.1', port: sentinel.port }] },
      keyPrefix: testPrefix(),
      connectTimeoutMs: 500,
      commandTimeoutMs: 500,
    },
    { reconnect: { initialMs: 1_000, maxMs: 1_000 } },
  );
  try {
    assert.equal(store.state(), 'connecting');
    await assert.rejects(store.ttl.ping(), { code: 'ERR_STORE_UNAVAILABLE' });
  } finally {
    await store.close();
  }
});
