import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RedisConfig, StoreTlsConfig } from '../../src/config/types.js';
import type { StoreError } from '../../src/store/errors.js';
import { openRedisTtlStore } from '../../src/store/redis.js';
import { missingBinary } from '../support/binaries.js';
import { freePort, REDIS_SERVER, startPrivateRedis, testPrefix, type PrivateRedis } from '../support/redis-server.js';
import { makeCertificate } from '../support/tls.js';

/**
 * The TLS settings reach the connection: a private redis-server on a TLS port that also demands a
 * client certificate, so `ca`, `cert`/`key`, `serverName` and `verify` each decide the outcome.
 */

const skip = missingBinary(REDIS_SERVER, 'redis-server');
let dir: string;
let server: PrivateRedis;
let tlsPort: number;
let pem: { serverCert: string; clientCert: string; clientKey: string };

before(async () => {
  if (skip !== undefined) return;
  dir = mkdtempSync(join(tmpdir(), 'mfa-redis-tls-'));
  const serverCert = makeCertificate(dir, 'server');
  const clientCert = makeCertificate(dir, 'client');
  tlsPort = await freePort();
  // Self-signed both ways: the server trusts the client's certificate as its own CA, and vice versa.
  server = await startPrivateRedis({
    args: ['--tls-port', String(tlsPort), '--tls-cert-file', serverCert.certFile, '--tls-key-file', serverCert.keyFile, '--tls-ca-cert-file', clientCert.certFile, '--tls-auth-clients', 'yes'],
  });
  pem = { serverCert: readFileSync(serverCert.certFile, 'utf8'), clientCert: readFileSync(clientCert.certFile, 'utf8'), clientKey: readFileSync(clientCert.keyFile, 'utf8') };
});
after(async () => {
  await server?.dispose();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const config = (tls: StoreTlsConfig | undefined, scheme = 'rediss'): RedisConfig => ({
  url: `${scheme}://127.0.0.1:${tlsPort}`,
  topology: { mode: 'single' },
  keyPrefix: testPrefix(),
  connectTimeoutMs: 1_000,
  commandTimeoutMs: 1_000,
  ...(tls !== undefined ? { tls } : {}),
});

/** Opens, reports state and the first verb's outcome and the errors reported, closes. */
async function attempt(cfg: RedisConfig) {
  const reported: string[] = [];
  const store = await openRedisTtlStore(cfg, { onError: (e: StoreError) => reported.push(e.message), reconnect: { initialMs: 1_000, maxMs: 1_000 } });
  try {
    const outcome = await store.ttl.takeToken('rl', Date.now(), { limit: 1, windowMs: 60_000 }).then(
      (take) => (take.taken ? 'taken' : 'refused'),
      (e: unknown) => (e as StoreError).code,
    );
    return { state: store.state(), outcome, reported };
  } finally {
    await store.close();
  }
}

describe('redis over TLS', { skip }, () => {
  test('ca, client certificate and server name verified: connected', async () => {
    const full = { ca: pem.serverCert, cert: pem.clientCert, key: pem.clientKey, verify: true };
    assert.deepEqual(await attempt(config(full)), { state: 'ready', outcome: 'taken', reported: [] });
    assert.deepEqual(await attempt(config({ ...full, serverName: 'localhost' })), { state: 'ready', outcome: 'taken', reported: [] });
    // tls: given with a redis:// URL turns TLS on as well.
    assert.deepEqual(await attempt(config(full, 'redis')), { state: 'ready', outcome: 'taken', reported: [] });
  });

  test('each missing or wrong setting fails closed, as ERR_STORE_UNAVAILABLE', async () => {
    const full = { ca: pem.serverCert, cert: pem.clientCert, key: pem.clientKey, verify: true };
    const down = (reported: string) => ({ state: 'connecting', outcome: 'ERR_STORE_UNAVAILABLE', reported });
    const first = async (cfg: RedisConfig) => {
      const result = await attempt(cfg);
      return { ...result, reported: result.reported[0] ?? '' };
    };
    // rediss:// alone: TLS on, but the self-signed server certificate is not trusted.
    assert.deepEqual(await first(config(undefined)), down('the TLS handshake with Redis failed (DEPTH_ZERO_SELF_SIGNED_CERT)'));
    assert.deepEqual(await first(config({ ...full, serverName: 'redis.example' })), down('the TLS handshake with Redis failed (ERR_TLS_CERT_ALTNAME_INVALID)'));
    // verify: false accepts the server's certificate; the server still wants ours.
    const noClientCert = await first(config({ verify: false }));
    assert.deepEqual({ state: noClientCert.state, outcome: noClientCert.outcome }, { state: 'connecting', outcome: 'ERR_STORE_UNAVAILABLE' });
    assert.deepEqual(await attempt(config({ cert: pem.clientCert, key: pem.clientKey, verify: false })), { state: 'ready', outcome: 'taken', reported: [] });
  });
});
