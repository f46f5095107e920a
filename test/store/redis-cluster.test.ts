import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import type { RedisConfig } from '../../src/config/types.js';
import { openRedisTtlStore, redisTag } from '../../src/store/redis.js';
import type { Invalidation } from '../../src/store/types.js';
import { missingBinary } from '../support/binaries.js';
import { deleteKeys, listKeys, redisBackend, REDIS_SERVER, startPrivateCluster, testPrefix, type PrivateRedis } from '../support/redis-server.js';
import { keySlot } from '../support/redis-slots.js';
import { eventually } from '../support/wait.js';
import { describeTtlConformance } from './ttl-conformance.js';

/**
 * topology: cluster, against a one-node Redis Cluster of this file's own: ioredis routes each
 * script by its keys' slot and the server refuses keys of two slots in one script (CROSSSLOT), so
 * the conformance suite passing here shows every verb keeps to one slot; CLUSTER KEYSLOT checks
 * the keys no script declares.
 */

const missing = missingBinary(REDIS_SERVER, 'redis-server');
let cluster: Promise<PrivateRedis> | undefined;
const server = () => (cluster ??= startPrivateCluster());
after(async () => {
  if (cluster !== undefined) await (await cluster).dispose();
});

async function clusterConfig(): Promise<RedisConfig> {
  const { port } = await server();
  return { topology: { mode: 'cluster', nodes: [{ host: '127.0.0.1', port }] }, keyPrefix: testPrefix(), connectTimeoutMs: 2_000, commandTimeoutMs: 2_000 };
}

describeTtlConformance(
  'redis cluster',
  async () => redisBackend(await clusterConfig(), (await server()).url),
  async () => missing,
);

test('redis cluster: the server puts every key of one subject in one slot, and the bus works', { skip: missing }, async () => {
  const config = await clusterConfig();
  const store = await openRedisTtlStore(config);
  const admin = new Redis((await server()).url);
  admin.on('error', () => undefined);
  try {
    assert.equal(store.state(), 'ready');
    const subject = 'a}b{c';
    const now = Date.now();
    for (let i = 0; i < 3; i++) await store.ttl.recordLockFailure(subject, now, { maxFailures: 3, findTimeMs: 60_000, backoffMs: [60_000] });
    await store.ttl.swapDriftReading(subject, 1, now, 60_000);
    for (let i = 0; i < 3; i++) await store.ttl.issueSession(`h${i}`, { subject, method: 'totp', mfaTime: 1, issuedAt: now, expiresAt: now + 60_000 + i }, 2, now);
    const keys = (await listKeys(admin, config.keyPrefix)).filter((key) => key.includes(redisTag(subject)));
    assert.equal(keys.length, 5); // lock, drift, sessions and the two sessions the cap of 2 kept
    const slots = await Promise.all(keys.map(async (key) => Number(await admin.call('CLUSTER', 'KEYSLOT', key))));
    assert.equal(new Set(slots).size, 1);
    assert.deepEqual(slots, keys.map(keySlot));

    const got: Invalidation[] = [];
    store.bus.subscribe((message) => got.push(message));
    await eventually(async () => {
      await store.bus.publish({ kind: 'factors', subject });
      await new Promise((resolve) => setTimeout(resolve, 50));
      return got.length > 0;
    }, 5_000);
    assert.deepEqual(got[0], { kind: 'factors', subject });
  } finally {
    await store.close();
    await deleteKeys((await server()).url, config.keyPrefix);
    admin.disconnect();
  }
});
