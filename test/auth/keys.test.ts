import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { describe, test } from 'node:test';
import { issueDevToken } from '../../src/auth/dev-token.js';
import { AuthConfigError } from '../../src/auth/errors.js';
import { createJwtVerifier } from '../../src/auth/jwt.js';
import type { JwtConfig } from '../../src/config/types.js';
import { createMetrics } from '../../src/metrics/metrics.js';
import { fakeClock } from '../support/clock.js';
import { captureLog } from '../support/log.js';
import { counterValue } from '../support/metrics.js';
import { signRaw } from '../support/tokens.js';
import { AUDIENCE, ISSUER, T0, T0_SECONDS, baseConfig, claims, signingKey, tokenFor } from './helpers.js';

const FORMAT = 'token signature or format invalid';
const SECRET = 'demo-secret-for-tests-0123456789abcdef';

describe('static keys', () => {
  test('a PEM (SPKI) RSA key and a JWK EC key verify their tokens; kids are honoured', async () => {
    const [rsa, ec, ed] = await Promise.all([signingKey('RS256', 'ignored'), signingKey('ES256', 'ec-1'), signingKey('EdDSA', 'ed-1')]);
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const verifier = createJwtVerifier({
      config: baseConfig({ algorithms: ['RS256', 'PS256', 'ES256', 'EdDSA'], staticKeys: [pem, JSON.stringify(ec.publicJwk), JSON.stringify(ed.publicJwk)] }),
      clock: fakeClock(T0),
    });
    try {
      // A PEM has no kid: it serves tokens with any kid or none.
      for (const header of [{}, { kid: 'whatever' }]) {
        const token = signRaw({ alg: 'RS256', typ: 'JWT', ...header }, claims(), rsa.privateKey);
        assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      }
      assert.ok((await verifier.verify(`Bearer ${signRaw({ alg: 'PS256' }, claims(), rsa.privateKey)}`)).ok);
      assert.ok((await verifier.verify(`Bearer ${tokenFor(ec)}`)).ok);
      assert.ok((await verifier.verify(`Bearer ${signRaw({ alg: 'ES256' }, claims({ sub: 'no-kid' }), ec.privateKey)}`)).ok);
      assert.ok((await verifier.verify(`Bearer ${tokenFor(ed)}`)).ok);
      // The EC JWK carries kid ec-1: a token naming another kid is not checked against it.
      const otherKid = signRaw({ alg: 'ES256', kid: 'ec-2' }, claims(), ec.privateKey);
      assert.deepEqual(await verifier.verify(`Bearer ${otherKid}`), { ok: false, problem: { code: 'invalid_token', detail: FORMAT } });
      // The JWK pins alg ES256: RS/PS keys never serve an ES token and vice versa.
      const attacker = await signingKey('ES256', 'ec-1');
      assert.equal((await verifier.verify(`Bearer ${tokenFor(attacker)}`)).ok, false);
    } finally {
      await verifier.close();
    }
  });

  test('HS/RS confusion with static keys: an HS256 token signed with the PEM is refused', async () => {
    const rsa = await signingKey('RS256', 'k');
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const verifier = createJwtVerifier({ config: baseConfig({ algorithms: ['RS256'], staticKeys: [pem] }), clock: fakeClock(T0) });
    try {
      for (const secret of [pem, pem.trim()]) {
        const forged = signRaw({ alg: 'HS256', typ: 'JWT' }, claims({ sub: 'mallory' }), secret);
        assert.deepEqual(await verifier.verify(`Bearer ${forged}`), { ok: false, problem: { code: 'invalid_token', detail: FORMAT } });
      }
    } finally {
      await verifier.close();
    }
  });
});

describe('HS256 demo secret', () => {
  test('a dev token verifies and carries scopes, roles, amr and auth_time; HS384 and RS256 headers are refused', async () => {
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const verifier = createJwtVerifier({ config: baseConfig({ algorithms: ['HS256'], hmacSecret: SECRET }), metrics, clock });
    try {
      const token = await issueDevToken({
        secret: SECRET,
        issuer: ISSUER,
        audience: AUDIENCE,
        subject: 'dave',
        scopes: ['orders:read', 'orders:write'],
        roles: ['Org Admin', 'ops'],
        amr: ['pwd', 'otp'],
        authTime: T0_SECONDS - 10,
        ttlSeconds: 300,
        now: T0,
      });
      const result = await verifier.verify(`Bearer ${token}`);
      assert.ok(result.ok);
      assert.equal(result.principal.subject, 'dave');
      assert.deepEqual([...result.principal.scopes], ['orders:read', 'orders:write']);
      assert.deepEqual([...result.principal.roles], ['Org Admin', 'ops']);
      assert.deepEqual(result.principal.amr, ['pwd', 'otp']);
      assert.equal(result.principal.authTime, T0_SECONDS - 10);
      assert.equal(result.principal.expiresAt, T0_SECONDS + 300);
      assert.ok((await verifier.verify(`Bearer ${token}`)).ok);
      assert.equal(await counterValue(metrics.tokenCache, { result: 'hit' }), 1);

      const wrongSecret = await issueDevToken({ secret: `${SECRET}-other`, issuer: ISSUER, audience: AUDIENCE, subject: 'dave', now: T0 });
      assert.equal((await verifier.verify(`Bearer ${wrongSecret}`)).ok, false);
      assert.equal((await verifier.verify(`Bearer ${signRaw({ alg: 'HS384' }, claims(), SECRET)}`)).ok, false);
      const rsa = await signingKey('RS256', 'k');
      assert.equal((await verifier.verify(`Bearer ${tokenFor(rsa)}`)).ok, false);
      clock.advance(330_001);
      assert.deepEqual(await verifier.verify(`Bearer ${token}`), { ok: false, problem: { code: 'invalid_token', detail: 'token expired' } });
    } finally {
      await verifier.close();
    }
  });
});

describe('configuration is checked at creation', () => {
  const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const smallRsaPem = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const ecPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ecJwk = ecPair.publicKey.export({ format: 'jwk' });
  const privateJwk = ecPair.privateKey.export({ format: 'jwk' });
  const privatePem = ecPair.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

  const cases: Array<[string, Partial<JwtConfig>, string]> = [
    ['no key source', {}, 'auth.jwt'],
    ['two key sources', { jwksUri: 'https://idp.example/jwks', hmacSecret: SECRET }, 'auth.jwt'],
    ['alg none', { algorithms: ['none' as 'RS256'], jwksUri: 'https://idp.example/jwks' }, 'auth.jwt.algorithms'],
    ['empty algorithms', { algorithms: [], jwksUri: 'https://idp.example/jwks' }, 'auth.jwt.algorithms'],
    ['HS256 next to a JWKS', { algorithms: ['RS256', 'HS256'], jwksUri: 'https://idp.example/jwks' }, 'auth.jwt.algorithms'],
    ['RS256 with an HMAC secret', { algorithms: ['HS256', 'RS256'], hmacSecret: SECRET }, 'auth.jwt.algorithms'],
    ['short HMAC secret', { algorithms: ['HS256'], hmacSecret: 'short' }, 'auth.jwt.hmacSecret'],
    ['jwks_uri not http(s)', { jwksUri: 'file:///etc/passwd' }, 'auth.jwt.jwksUri'],
    ['jwks_uri not a URL', { jwksUri: 'not a url' }, 'auth.jwt.jwksUri'],
    ['zero timeout', { jwksUri: 'https://idp.example/jwks', jwks: { cooldownMs: 1, timeoutMs: 0, cacheMaxAgeMs: 1 } }, 'auth.jwt.jwks.timeoutMs'],
    ['no issuer', { issuer: '', jwksUri: 'https://idp.example/jwks' }, 'auth.jwt.issuer'],
    ['no audience', { audience: [], jwksUri: 'https://idp.example/jwks' }, 'auth.jwt.audience'],
    ['negative tolerance', { clockToleranceMs: -1, jwksUri: 'https://idp.example/jwks' }, 'auth.jwt.clockToleranceMs'],
    ['fractional maxEntries', { cache: { maxEntries: 1.5, maxTtlMs: 1 }, jwksUri: 'https://idp.example/jwks' }, 'auth.jwt.cache.maxEntries'],
    ['zero maxTokenBytes', { maxTokenBytes: 0, jwksUri: 'https://idp.example/jwks' }, 'auth.jwt.maxTokenBytes'],
    ['empty static keys', { staticKeys: [] }, 'auth.jwt.staticKeys'],
    ['garbage static key', { staticKeys: ['hello'] }, 'auth.jwt.staticKeys[0]'],
    ['private PEM', { staticKeys: [privatePem] }, 'auth.jwt.staticKeys[0]'],
    ['private JWK', { staticKeys: [JSON.stringify(privateJwk)] }, 'auth.jwt.staticKeys[0]'],
    ['oct JWK', { staticKeys: [JSON.stringify({ kty: 'oct', k: 'c2VjcmV0' })] }, 'auth.jwt.staticKeys[0]'],
    ['only an encryption JWK', { staticKeys: [JSON.stringify({ ...ecJwk, use: 'enc' })] }, 'auth.jwt.staticKeys'],
    ['RSA under 2048 bits', { staticKeys: [smallRsaPem] }, 'auth.jwt.staticKeys[0]'],
    ['no key fits an allowed alg', { algorithms: ['ES384'], staticKeys: [JSON.stringify(ecJwk), rsaPem] }, 'auth.jwt.staticKeys'],
    ['JWK alg outside the list', { algorithms: ['ES256'], staticKeys: [JSON.stringify({ ...ecJwk, alg: 'ES384' })] }, 'auth.jwt.staticKeys'],
  ];
  for (const [name, overrides, option] of cases) {
    test(`throws AuthConfigError naming ${option}: ${name}`, () => {
      const config = { ...baseConfig(), ...overrides };
      assert.throws(
        () => createJwtVerifier({ config }),
        (error: unknown) => {
          assert.ok(error instanceof AuthConfigError);
          assert.ok(AuthConfigError.is(error));
          assert.equal(error.code, 'ERR_AUTH_INVALID_OPTION');
          assert.equal(error.option, option);
          assert.ok(!error.message.includes(SECRET));
          return true;
        },
      );
    });
  }

  test('keys that fit no allowed algorithm are skipped with a warning when another key fits', async () => {
    const { logger, lines } = captureLog();
    const verifier = createJwtVerifier({
      config: baseConfig({ algorithms: ['ES256'], staticKeys: [rsaPem, JSON.stringify({ ...ecJwk, use: 'enc' }), JSON.stringify(ecJwk)] }),
      logger,
    });
    await verifier.close();
    const skipped = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.event === 'jwt_static_key_skipped');
    assert.deepEqual(
      skipped.map((entry) => [entry.key_index, entry.reason]),
      [
        [0, 'fits none of auth.jwt.algorithms'],
        [1, 'not a signature key (use is not "sig")'],
      ],
    );
  });

  test('a valid configuration of each kind creates a verifier', async () => {
    for (const overrides of [{ jwksUri: 'https://idp.example/jwks' }, { staticKeys: [rsaPem, JSON.stringify(ecJwk)] }, { algorithms: ['HS256', 'HS512'] as JwtConfig['algorithms'], hmacSecret: SECRET }]) {
      const verifier = createJwtVerifier({ config: baseConfig(overrides) });
      await verifier.close();
    }
  });
});
