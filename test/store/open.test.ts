import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/open.js';
import { missingBinary } from '../support/binaries.js';
import { createTestSchema, postgresConfig } from '../support/postgres.js';
import { REDIS_SERVER, startPrivateRedis } from '../support/redis-server.js';
import { POSTGRES_URL, postgresOrSkip, redisOrSkip } from '../support/services.js';
import { startTcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/wait.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mfa-open-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('openStore: sqlite opens the embedded store at the configured path', async () => {
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'data', 'mfa.db') }, () => 1_000);
  try {
    assert.equal(await store.ttl.useOtpStep('f', 1, 1_000, 60_000), true);
    assert.equal(await store.ttl.useOtpStep('f', 1, 1_000, 60_000), false);
    await store.durable.ping();
  } finally {
    await store.close();
  }
});

const skip = (await postgresOrSkip()) ?? (await redisOrSkip()) ?? missingBinary(REDIS_SERVER, 'redis-server');

describe('openStore: shared (PostgreSQL + Redis)', () => {

  test('opens both, migrates PostgreSQL, and reports each backend down and up again by itself', { skip, timeout: 30_000 }, async () => {
    const schema = await createTestSchema();
    const redis = await startPrivateRedis();
    const relay = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(POSTGRES_URL).port || 5432) });
    const changes: string[] = [];
    const pgUrl = new URL(schema.url);
    pgUrl.host = `127.0.0.1:${relay.port}`;
    const store = await openStore(
      {
        kind: 'shared',
        migrate: 'on_start',
        postgres: postgresConfig(pgUrl.toString(), { connectTimeoutMs: 500, statementTimeoutMs: 500 }),
        redis: { url: `redis://127.0.0.1:${redis.port}`, topology: { mode: 'single' }, keyPrefix: 'open:', connectTimeoutMs: 500, commandTimeoutMs: 300 },
      },
      Date.now,
      { onHealthChange: (state) => changes.push(`${state.backend} ${state.up ? 'up' : 'down'}`) },
    );
    try {
      assert.equal(store.kind, 'shared');
      assert.equal(store.down(), undefined);
      assert.deepEqual((await schema.query<{ version: number }>('SELECT version FROM schema_migrations')).map((r) => r.version), [1, 2]);
      assert.equal(await store.ttl.useOtpStep('f', 1, Date.now(), 60_000), true);
      assert.deepEqual(await store.durable.listFactors('nobody', Date.now()), []);

      // PostgreSQL's network goes away: the first call that meets it marks it down; later calls fail at once.
      await relay.stop();
      await assert.rejects(store.durable.listFactors('nobody', Date.now()), { code: 'ERR_STORE_UNAVAILABLE' });
      assert.match(store.down() ?? '', /^postgres: /);
      const started = Date.now();
      await assert.rejects(store.durable.listFactors('nobody', Date.now()), { code: 'ERR_STORE_UNAVAILABLE' });
      assert.ok(Date.now() - started < 50, 'refused without waiting for a timeout');
      await relay.start();
      await eventually(() => store.down() === undefined, 5_000);
      assert.deepEqual(await store.durable.listFactors('nobody', Date.now()), []);

      // Redis goes away, and comes back on the same port.
      await redis.kill();
      await eventually(() => /^redis: /.test(store.down() ?? ''), 3_000);
      await assert.rejects(store.ttl.useOtpStep('f', 2, Date.now(), 60_000), { code: 'ERR_STORE_UNAVAILABLE' });
      await redis.start();
      await eventually(() => store.down() === undefined, 5_000);
      assert.equal(await store.ttl.useOtpStep('f', 2, Date.now(), 60_000), true);
      assert.deepEqual(changes, ['postgres down', 'postgres up', 'redis down', 'redis up']);
      assert.ok(!(store.down() ?? '').includes('postgres://'));
    } finally {
      await store.close();
      await relay.close();
      await redis.dispose();
      await schema.drop();
    }
  });
});
