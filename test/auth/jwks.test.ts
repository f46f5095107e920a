import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { backoffDelay } from '../../src/auth/jwks.js';
import { createJwtVerifier } from '../../src/auth/jwt.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { fakeClock } from '../support/clock.js';
import { captureLog } from '../support/log.js';
import { counterValue } from '../support/metrics.js';
import { T0, baseConfig, claims, signingKey, startJwksServer, tokenFor } from './helpers.js';

const FORMAT = 'token signature or format invalid';

describe('JWKS fetching', () => {
  test('backoff doubles from 1 s and is capped at 5 min', () => {
    assert.deepEqual([1, 2, 3, 4, 9, 10, 50].map(backoffDelay), [1_000, 2_000, 4_000, 8_000, 256_000, 300_000, 300_000]);
  });

  test('issuer down after the first fetch: cached keys keep working, attempts follow the backoff', async () => {
    const key = await signingKey('RS256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const { logger, lines } = captureLog();
    const maxAge = 600_000;
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), metrics, logger, clock });
    const failures = () => counterValue(metrics.jwksFetches, { result: 'failure' });
    // Distinct tokens each time, so the validated-token cache does not hide the key lookup.
    let n = 0;
    const verifyFresh = async (): Promise<void> => {
      const result = await verifier.verify(`Bearer ${tokenFor(key, claims({ sub: `user-${n++}`, exp: Math.floor(clock() / 1000) + 600, iat: Math.floor(clock() / 1000) }))}`);
      assert.ok(result.ok, 'a token signed with a cached key is accepted');
      await verifier.idle();
    };
    try {
      await verifyFresh();
      assert.equal(jwks.requests(), 1);
      await jwks.close();

      // Fresh keys: no fetch at all, however many requests.
      for (let i = 0; i < 5; i++) await verifyFresh();
      assert.equal(await failures(), 0);

      // Stale: the next request starts one background refresh, which fails; the token still passes.
      clock.advance(maxAge);
      await verifyFresh();
      assert.equal(await failures(), 1);
      for (let i = 0; i < 20; i++) await verifyFresh();
      assert.equal(await failures(), 1, 'no fetch per request while backing off');

      // Backoff 1 s, 2 s, 4 s, 8 s between attempts.
      let expected = 1;
      for (const delay of [1_000, 2_000, 4_000, 8_000]) {
        clock.advance(delay - 1);
        await verifyFresh();
        assert.equal(await failures(), expected, `nothing before ${delay} ms`);
        clock.advance(1);
        await verifyFresh();
        await verifyFresh();
        expected++;
        assert.equal(await failures(), expected, `one attempt after ${delay} ms`);
      }

      // Much later the gap is capped at 5 minutes.
      for (let i = 0; i < 6; i++) {
        clock.advance(300_000);
        await verifyFresh();
        expected++;
      }
      assert.equal(await failures(), expected);
      clock.advance(299_999);
      await verifyFresh();
      assert.equal(await failures(), expected);
      clock.advance(1);
      await verifyFresh();
      assert.equal(await failures(), expected + 1);

      assert.equal(await counterValue(metrics.jwksFetches, { result: 'success' }), 1);
      const failureLogs = lines.filter((line) => line.includes('"jwks_fetch_failed"'));
      assert.equal(failureLogs.length, expected + 1);
      const first = JSON.parse(failureLogs[0]!) as Record<string, unknown>;
      assert.equal(first.level, 40);
      assert.equal(first.failures, 1);
      assert.equal(first.retry_in_ms, 1_000);
      assert.equal(first.has_cached_keys, true);
      assert.equal(first.jwks_uri, jwks.url);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });

  test('issuer down from the start: 401, never 500, and one attempt per backoff step', async () => {
    const key = await signingKey('RS256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    await jwks.close();
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), metrics, clock });
    try {
      for (let i = 0; i < 10; i++) {
        const result = await verifier.verify(`Bearer ${tokenFor(key, claims({ sub: `u${i}` }))}`);
        assert.deepEqual(result, { ok: false, problem: { code: 'invalid_token', detail: FORMAT } });
      }
      assert.equal(await counterValue(metrics.jwksFetches, { result: 'failure' }), 1);
      clock.advance(1_000);
      assert.equal((await verifier.verify(`Bearer ${tokenFor(key)}`)).ok, false);
      assert.equal(await counterValue(metrics.jwksFetches, { result: 'failure' }), 2);
    } finally {
      await verifier.close();
    }
  });

  test('a slow issuer times out: 401 within the timeout, not a hang; the next attempt waits for the backoff', async () => {
    const key = await signingKey('ES256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    jwks.setMode('hang');
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const { logger, lines } = captureLog();
    const verifier = createJwtVerifier({
      config: baseConfig({ jwksUri: jwks.url, jwks: { cooldownMs: 30_000, timeoutMs: 200, cacheMaxAgeMs: 600_000 } }),
      metrics,
      logger,
      clock,
    });
    try {
      const started = performance.now();
      const result = await verifier.verify(`Bearer ${tokenFor(key)}`);
      const elapsed = performance.now() - started;
      assert.deepEqual(result, { ok: false, problem: { code: 'invalid_token', detail: FORMAT } });
      assert.ok(elapsed >= 150 && elapsed < 2_000, `answered after ${Math.round(elapsed)} ms`);
      assert.equal(await counterValue(metrics.jwksFetches, { result: 'failure' }), 1);
      assert.ok(lines.some((line) => line.includes('"timed out"')));

      // Within the backoff: refused at once, no new request reaches the issuer.
      const again = performance.now();
      assert.equal((await verifier.verify(`Bearer ${tokenFor(key)}`)).ok, false);
      assert.ok(performance.now() - again < 100);
      assert.equal(jwks.requests(), 1);

      // The issuer recovers: after the backoff, keys are fetched and the token passes.
      jwks.setMode('ok');
      clock.advance(1_000);
      assert.ok((await verifier.verify(`Bearer ${tokenFor(key)}`)).ok);
      assert.equal(jwks.requests(), 2);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });

  test('error statuses and non-JSON bodies count as failures, keep the last good keys, and are never logged', async () => {
    const [key, next] = await Promise.all([signingKey('RS256', 'k1'), signingKey('RS256', 'k2')]);
    const jwks = await startJwksServer([key.publicJwk]);
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const { logger, lines } = captureLog();
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), metrics, logger, clock });
    try {
      assert.ok((await verifier.verify(`Bearer ${tokenFor(key)}`)).ok);
      jwks.setMode('error');
      clock.advance(600_000);
      assert.ok((await verifier.verify(`Bearer ${tokenFor(key, claims({ sub: 'b' }))}`)).ok);
      await verifier.idle();
      jwks.setMode('garbage');
      clock.advance(1_000);
      assert.ok((await verifier.verify(`Bearer ${tokenFor(key, claims({ sub: 'c' }))}`)).ok);
      await verifier.idle();
      // An empty key set or one with only secret / private keys is not a key set we switch to.
      jwks.setMode('ok');
      jwks.setKeys([{ kty: 'oct', k: 'c2VjcmV0', kid: 'k1' }, { ...next.publicJwk, d: 'private' }]);
      clock.advance(2_000);
      assert.ok((await verifier.verify(`Bearer ${tokenFor(key, claims({ sub: 'd' }))}`)).ok);
      await verifier.idle();
      assert.equal(await counterValue(metrics.jwksFetches, { result: 'failure' }), 3);
      assert.equal(await counterValue(metrics.jwksFetches, { result: 'success' }), 1);
      const logged = lines.join('');
      assert.ok(logged.includes('status 500'));
      assert.ok(logged.includes('response is not JSON'));
      assert.ok(logged.includes('key set holds no usable signature key'));
      assert.ok(!logged.includes('BODY-MUST-NOT-BE-LOGGED'));

      // Back to a good set: the refresh after the backoff swaps keys in the background.
      jwks.setKeys([next.publicJwk]);
      clock.advance(4_000);
      assert.ok((await verifier.verify(`Bearer ${tokenFor(key, claims({ sub: 'e' }))}`)).ok, 'served from the old set while refreshing');
      await verifier.idle();
      assert.ok((await verifier.verify(`Bearer ${tokenFor(next)}`)).ok);
      assert.equal((await verifier.verify(`Bearer ${tokenFor(key, claims({ sub: 'f' }))}`)).ok, false, 'the retired key is gone');
      assert.equal(await counterValue(metrics.jwksFetches, { result: 'success' }), 2);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });

  test('close() aborts a fetch in flight', async () => {
    const key = await signingKey('RS256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    jwks.setMode('hang');
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url, jwks: { cooldownMs: 1_000, timeoutMs: 60_000, cacheMaxAgeMs: 60_000 } }), clock: fakeClock(T0) });
    try {
      const pending = verifier.verify(`Bearer ${tokenFor(key)}`);
      while (jwks.requests() === 0) await new Promise((resolve) => setImmediate(resolve));
      const started = performance.now();
      await verifier.close();
      assert.equal((await pending).ok, false);
      assert.ok(performance.now() - started < 1_000);
      assert.equal((await verifier.verify(`Bearer ${tokenFor(key)}`)).ok, false, 'a closed verifier refuses');
    } finally {
      await jwks.close();
    }
  });
});
