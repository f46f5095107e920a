import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createJwtVerifier } from '../../src/auth/jwt.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { TOKEN_DETAIL } from '../../src/auth/errors.js';
import { fakeClock } from '../support/clock.js';
import { counterValue } from '../support/metrics.js';
import { T0, T0_SECONDS, baseConfig, claims, signingKey, startJwksServer, tokenFor } from './helpers.js';

describe('validated-token cache', () => {
  test('a hit returns the same principal without touching keys; expired-on-hit is refused by our clock', async () => {
    const key = await signingKey('RS256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), metrics, clock });
    const hits = () => counterValue(metrics.tokenCache, { result: 'hit' });
    const misses = () => counterValue(metrics.tokenCache, { result: 'miss' });
    try {
      const token = tokenFor(key, claims({ exp: T0_SECONDS + 120 }));
      const verifying = verifier.verify(`Bearer ${token}`);
      assert.ok(verifying instanceof Promise, 'a token not validated yet needs the keys: answered through a promise');
      const first = await verifying;
      assert.ok(first.ok);
      assert.deepEqual([await hits(), await misses()], [0, 1]);

      // The issuer goes away: a hit needs neither the network nor a signature check, nor a promise.
      await jwks.close();
      const second = verifier.verify(`bearer ${token}`);
      assert.ok(!(second instanceof Promise), 'a hit is answered at once');
      assert.ok(second.ok);
      assert.equal(second.principal, first.principal, 'the very same principal object');
      assert.deepEqual([await hits(), await misses()], [1, 1]);

      // One ms before exp: still a hit. At exp the entry is dropped; within the clock tolerance the
      // fresh verification still accepts (and does not cache a token already past exp).
      clock.advance(120_000 - 1);
      assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      assert.deepEqual([await hits(), await misses()], [2, 1]);
      clock.advance(1);
      assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      assert.deepEqual([await hits(), await misses()], [2, 2]);
      assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      assert.deepEqual([await hits(), await misses()], [2, 3], 'not cached past exp');

      // Past exp + tolerance: refused, never served from the cache.
      clock.advance(30_000);
      assert.deepEqual(await verifier.verify(`Bearer ${token}`), { ok: false, problem: { code: 'invalid_token', detail: 'token expired' } });
      assert.deepEqual([await hits(), await misses()], [2, 4]);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });

  test('a hit needs the header exactly as RFC 6750 spells it: any other spelling of a cached token is checked and refused', async () => {
    const key = await signingKey('ES256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    const metrics = createMetrics();
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url, maxTokenBytes: 4096 }), metrics, clock: fakeClock(T0) });
    const lookups = async () => [await counterValue(metrics.tokenCache, { result: 'hit' }), await counterValue(metrics.tokenCache, { result: 'miss' })];
    const refused = (detail: string) => ({ ok: false, problem: { code: 'invalid_token', detail } });
    try {
      const token = tokenFor(key, claims({ exp: T0_SECONDS + 3600 }));
      assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      assert.ok((await verifier.verify(`BEARER ${token}`)).ok, 'the scheme is case-insensitive');
      assert.deepEqual(await lookups(), [1, 1]);
      assert.deepEqual(await verifier.verify(`Bearer  ${token}`), refused(TOKEN_DETAIL.header));
      assert.deepEqual(await verifier.verify(`Bearer ${token} `), refused(TOKEN_DETAIL.header));
      assert.deepEqual(await verifier.verify(`Bearer\t${token}`), refused(TOKEN_DETAIL.header));
      assert.deepEqual(await verifier.verify(`Basic ${token}`), refused(TOKEN_DETAIL.header));
      assert.deepEqual(await verifier.verify(`Bearer ${token}x`), refused(TOKEN_DETAIL.format));
      // Still one hit: the malformed spellings are refused by the syntax check, the changed token by its signature.
      assert.deepEqual(await lookups(), [1, 2]);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });

  test('entries live at most maxTtl by our clock, then the token is verified afresh', async () => {
    const key = await signingKey('ES256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url, cache: { maxEntries: 10, maxTtlMs: 60_000 } }), metrics, clock });
    try {
      const token = tokenFor(key, claims({ exp: T0_SECONDS + 3600 }));
      assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      clock.advance(59_999);
      assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      assert.equal(await counterValue(metrics.tokenCache, { result: 'hit' }), 1);
      clock.advance(1);
      assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      assert.equal(await counterValue(metrics.tokenCache, { result: 'miss' }), 2);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });

  test('refusals are not cached; the cache is bounded; maxEntries 0 disables it', async () => {
    const key = await signingKey('RS256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url, cache: { maxEntries: 2, maxTtlMs: 60_000 } }), metrics, clock });
    const metricsOff = createMetrics();
    const uncached = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url, cache: { maxEntries: 0, maxTtlMs: 60_000 } }), metrics: metricsOff, clock });
    try {
      const bad = tokenFor(key, claims({ aud: 'other' }));
      for (let i = 0; i < 3; i++) assert.equal((await verifier.verify(`Bearer ${bad}`)).ok, false);
      assert.equal(await counterValue(metrics.tokenCache, { result: 'miss' }), 3);
      assert.equal(await counterValue(metrics.tokenCache, { result: 'hit' }), 0);

      const [a, b, c] = ['a', 'b', 'c'].map((sub) => tokenFor(key, claims({ sub })));
      for (const token of [a, b, c, c, b, a]) assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      // a, b, c miss; c and b hit; a was evicted by c (two entries at most).
      assert.equal(await counterValue(metrics.tokenCache, { result: 'hit' }), 2);
      assert.equal(await counterValue(metrics.tokenCache, { result: 'miss' }), 7);

      for (let i = 0; i < 3; i++) assert.ok((await uncached.verify(`Bearer ${a}`)).ok);
      assert.equal(await counterValue(metricsOff.tokenCache, { result: 'hit' }), 0);
      assert.equal(await counterValue(metricsOff.tokenCache, { result: 'miss' }), 3);
    } finally {
      await verifier.close();
      await uncached.close();
      await jwks.close();
    }
  });

  test('cached principals share their scope, role and amr lists, and each still sees exactly its own', async () => {
    const key = await signingKey('ES256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), clock: fakeClock(T0) });
    const principalOf = async (overrides: Record<string, unknown>) => {
      const result = await verifier.verify(`Bearer ${tokenFor(key, claims(overrides))}`);
      assert.ok(result.ok);
      return result.principal;
    };
    try {
      const alice = await principalOf({ sub: 'alice', scope: 'orders:read', roles: ['admin'], amr: ['pwd', 'otp'] });
      const bob = await principalOf({ sub: 'bob', scope: 'orders:read', roles: ['admin'], amr: ['pwd', 'otp'] });
      const carol = await principalOf({ sub: 'carol', scope: 'orders:read orders:write', roles: 'admin ops', amr: ['pwd'] });
      assert.notEqual(alice, bob);
      assert.equal(bob.scopes, alice.scopes, 'one Set for one scope list');
      assert.equal(bob.roles, alice.roles);
      assert.equal(bob.amr, alice.amr);
      assert.ok(Object.isFrozen(alice.amr));
      // Sharing never widens a principal: each holds what its own token said, nothing more.
      assert.deepEqual([[...alice.scopes], [...alice.roles], alice.amr], [['orders:read'], ['admin'], ['pwd', 'otp']]);
      assert.deepEqual([[...carol.scopes], [...carol.roles], carol.amr], [['orders:read', 'orders:write'], ['admin ops'], ['pwd']]);
      assert.equal(alice.scopes.has('orders:write'), false);
      assert.equal(carol.roles.has('admin'), false);
      // Shared, so sealed: a cast that tries to widen one principal changes nobody.
      assert.throws(() => (alice.scopes as Set<string>).add('orders:write'), TypeError);
      assert.throws(() => (alice.roles as Set<string>).delete('admin'), TypeError);
      assert.throws(() => (alice.roles as Set<string>).clear(), TypeError);
      assert.deepEqual([[...bob.scopes], [...bob.roles]], [['orders:read'], ['admin']]);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });
});
