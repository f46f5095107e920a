import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/open.js';

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

test('openStore: shared is refused with a clear error in this build', async () => {
  await assert.rejects(openStore(
      {
        kind: 'shared',
        migrate: 'on_start',
        postgres: { url: 'postgres://db/mfa', poolMax: 10, idleTimeoutMs: 30_000, connectTimeoutMs: 5_000, statementTimeoutMs: 2_000 },
        redis: { url: 'redis://cache', topology: { mode: 'single' }, keyPrefix: 'mfa:', connectTimeoutMs: 5_000, commandTimeoutMs: 1_000 },
      },
      () => 0,
    ), {
    name: 'StoreError',
    code: 'ERR_STORE_UNSUPPORTED',
    message: 'store kind "shared" (PostgreSQL + Redis) is not available in this build',
  });
});
