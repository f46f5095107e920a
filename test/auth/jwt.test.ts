import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { afterEach, before, beforeEach, describe, test } from 'node:test';
import { createJwtVerifier, type JwtVerifier, type VerifyResult } from '../../src/auth/jwt.js';
import { renderProblem } from '../../src/errors/problems.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { fakeClock, type FakeClock } from '../support/clock.js';
import { captureLog } from '../support/log.js';
import { counterValue } from '../support/metrics.js';
import { b64url, signRaw } from '../support/tokens.js';
import { AUDIENCE, T0, T0_SECONDS, baseConfig, claims, signingKey, startJwksServer, tokenFor, withoutClaim, type JwksServer, type SigningKey } from './helpers.js';

const FORMAT = 'token signature or format invalid';
const HEADER = 'the Authorization header must be "Bearer" followed by one space and one token';

function refusedWith(result: VerifyResult, detail: string, code = 'invalid_token'): void {
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.deepEqual(result.problem, { code, detail });
}

describe('JWT verifier with a JWKS issuer', () => {
  let rsa: SigningKey;
  let ec: SigningKey;
  let attacker: SigningKey;
  let jwks: JwksServer;
  let attackerServer: JwksServer;
  let clock: FakeClock;
  let metrics: Metrics;
  let verifier: JwtVerifier;

  before(async () => {
    [rsa, ec, attacker] = await Promise.all([signingKey('RS256', 'rsa-1'), signingKey('ES256', 'ec-1'), signingKey('RS256', 'rsa-1')]);
  });

  // A fresh issuer, attacker server and verifier for each test: JWKS fetch counts and the key cache start empty.
  beforeEach(async () => {
    jwks = await startJwksServer([rsa.publicJwk, ec.publicJwk]);
    attackerServer = await startJwksServer([attacker.publicJwk]);
    clock = fakeClock(T0);
    metrics = createMetrics();
    verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), metrics, clock });
  });

  afterEach(async () => {
    await verifier.close();
    await jwks.close();
    await attackerServer.close();
  });

  test('a valid RS256 token gives the principal, with one JWKS fetch', async () => {
    const token = tokenFor(rsa, claims({ roles: ['admin', 'ops'], amr: ['pwd', 'otp'], auth_time: T0_SECONDS - 60 }));
    const result = await verifier.verify(`Bearer ${token}`);
    assert.ok(result.ok);
    assert.equal(result.principal.subject, 'alice');
    assert.deepEqual([...result.principal.scopes], ['orders:read', 'profile']);
    assert.deepEqual([...result.principal.roles], ['admin', 'ops']);
    assert.equal(result.principal.expiresAt, T0_SECONDS + 600);
    assert.deepEqual(result.principal.amr, ['pwd', 'otp']);
    assert.equal(result.principal.authTime, T0_SECONDS - 60);
    assert.equal(result.principal.tokenHash, createHash('sha256').update(token).digest('hex'));
    assert.equal(jwks.requests(), 1);
    assert.equal(await counterValue(metrics.jwksFetches, { result: 'success' }), 1);
    assert.equal(await counterValue(metrics.jwksFetches, { result: 'failure' }), 0);
  });

  test('a valid ES256 token; the scheme is case-insensitive; scopes may be an array', async () => {
    // An earlier request fetched the issuer's keys.
    await verifier.verify(`Bearer ${tokenFor(rsa)}`);
    const result = await verifier.verify(`bEaReR ${tokenFor(ec, claims({ sub: 'bob', scope: ['a', 'b'] }))}`);
    assert.ok(result.ok);
    assert.equal(result.principal.subject, 'bob');
    assert.deepEqual([...result.principal.scopes], ['a', 'b']);
    assert.deepEqual([...result.principal.roles], []);
    assert.deepEqual(result.principal.amr, []);
    assert.equal(result.principal.authTime, undefined);
    assert.equal(jwks.requests(), 1, 'keys come from the cache');
  });

  test('alg none: an unsigned token is refused, with or without a signature segment', async () => {
    const unsigned = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims())}.`;
    refusedWith(await verifier.verify(`Bearer ${unsigned}`), FORMAT);
    const withJunk = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims())}.${b64url('sig')}`;
    refusedWith(await verifier.verify(`Bearer ${withJunk}`), FORMAT);
    for (const alg of ['None', 'NONE', '', 'nOnE']) {
      refusedWith(await verifier.verify(`Bearer ${signRaw({ alg, typ: 'JWT' }, claims(), Buffer.alloc(0))}x`), FORMAT);
    }
  });

  test('HS/RS confusion: HS256 signed with the RSA public key (PEM and JWK bytes) is refused', async () => {
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    for (const secret of [pem, Buffer.from(pem), JSON.stringify(rsa.publicJwk)]) {
      const forged = signRaw({ alg: 'HS256', typ: 'JWT', kid: rsa.kid }, claims({ sub: 'mallory' }), secret);
      refusedWith(await verifier.verify(`Bearer ${forged}`), FORMAT);
    }
  });

  test('an algorithm outside the allow-list is refused even with a correct signature', async () => {
    for (const alg of ['RS384', 'RS512', 'PS256']) {
      const token = signRaw({ alg, typ: 'JWT', kid: rsa.kid }, claims(), rsa.privateKey);
      refusedWith(await verifier.verify(`Bearer ${token}`), FORMAT);
    }
    // ES256 header over an RSA kid: the key type must fit the algorithm.
    const mixed = signRaw({ alg: 'ES256', typ: 'JWT', kid: rsa.kid }, claims(), ec.privateKey);
    refusedWith(await verifier.verify(`Bearer ${mixed}`), FORMAT);
  });

  test('exp, iss, aud and sub are required', async () => {
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, withoutClaim('exp'))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, withoutClaim('iss'))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, withoutClaim('aud'))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, withoutClaim('sub'))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ sub: '' }))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ sub: 'x'.repeat(257) }))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ sub: 42 }))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ exp: String(T0_SECONDS + 600) }))}`), 'token claims invalid');
    assert.ok((await verifier.verify(`Bearer ${tokenFor(rsa, claims({ sub: 'x'.repeat(256) }))}`)).ok);
  });

  test('a subject, scope or role with surrounding whitespace or a control character is refused: HTTP would trim what state is keyed on', async () => {
    for (const sub of [' alice', 'alice ', 'alice\t', '\u00a0alice', 'al\u0000ice', 'al\nice', 'alice\u007f', 'alice\u0085', 'al\ud800ice']) {
      refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ sub }))}`), 'token claims invalid');
    }
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ scope: ['orders:read', 'admin\r\nX-Auth-Subject: root'] }))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ roles: ['ops\u0000'] }))}`), 'token claims invalid');
    for (const sub of ['jörg', 'José Ramírez', '山田', 'a%b', 'emoji😀']) {
      const result = await verifier.verify(`Bearer ${tokenFor(rsa, claims({ sub }))}`);
      assert.ok(result.ok && result.principal.subject === sub, sub);
    }
  });

  test('claims of the wrong type refuse the token rather than read as absent', async () => {
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ scope: 7 }))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ scope: ['a', 1] }))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ roles: { admin: true } }))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ amr: 'otp' }))}`), 'token claims invalid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ auth_time: 'yesterday' }))}`), 'token claims invalid');
    // A single role string stays one role: "Org Admin" never grants "Admin".
    const result = await verifier.verify(`Bearer ${tokenFor(rsa, claims({ roles: 'Org Admin' }))}`);
    assert.ok(result.ok);
    assert.deepEqual([...result.principal.roles], ['Org Admin']);
  });

  test('expired, beyond the clock tolerance → "token expired"; within it → accepted', async () => {
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ exp: T0_SECONDS - 31 }))}`), 'token expired');
    assert.ok((await verifier.verify(`Bearer ${tokenFor(rsa, claims({ exp: T0_SECONDS - 29 }))}`)).ok);
  });

  test('nbf or iat in the future beyond the tolerance → "token not yet valid"', async () => {
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ nbf: T0_SECONDS + 31 }))}`), 'token not yet valid');
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ iat: T0_SECONDS + 31 }))}`), 'token not yet valid');
    assert.ok((await verifier.verify(`Bearer ${tokenFor(rsa, claims({ nbf: T0_SECONDS + 29, iat: T0_SECONDS + 29 }))}`)).ok);
  });

  test('wrong issuer or audience → "token issuer or audience not accepted"', async () => {
    const detail = 'token issuer or audience not accepted';
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ iss: 'https://evil.example/' }))}`), detail);
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ iss: 'https://idp.test.example' }))}`), detail);
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ aud: 'other-api' }))}`), detail);
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims({ aud: [] }))}`), detail);
    assert.ok((await verifier.verify(`Bearer ${tokenFor(rsa, claims({ aud: ['other-api', AUDIENCE] }))}`)).ok);
  });

  test('a bad signature and a crit header are refused', async () => {
    const good = tokenFor(rsa, claims({ sub: 'sig-test' }));
    const [h, p] = good.split('.');
    const other = tokenFor(rsa, claims({ sub: 'other' })).split('.')[2];
    refusedWith(await verifier.verify(`Bearer ${h}.${p}.${other}`), FORMAT);
    const tampered = `${h}.${b64url(claims({ sub: 'root' }))}.${good.split('.')[2]}`;
    refusedWith(await verifier.verify(`Bearer ${tampered}`), FORMAT);
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims(), { crit: ['exp'] })}`), FORMAT);
    refusedWith(await verifier.verify(`Bearer ${tokenFor(rsa, claims(), { crit: ['b64'], b64: false })}`), FORMAT);
  });

  test('embedded jwk / jku / x5u / x5c headers never pick the key', async () => {
    // An earlier request fetched the issuer's keys: rsa-1 is a known kid.
    await verifier.verify(`Bearer ${tokenFor(rsa)}`);
    const before = jwks.requests();
    const withJwk = tokenFor(attacker, claims({ sub: 'mallory' }), { jwk: attacker.publicJwk });
    refusedWith(await verifier.verify(`Bearer ${withJwk}`), FORMAT);
    const withoutKid = signRaw({ alg: 'RS256', jwk: attacker.publicJwk }, claims({ sub: 'mallory' }), attacker.privateKey);
    refusedWith(await verifier.verify(`Bearer ${withoutKid}`), FORMAT);
    const withJku = tokenFor(attacker, claims({ sub: 'mallory' }), { jku: attackerServer.url, x5u: attackerServer.url });
    refusedWith(await verifier.verify(`Bearer ${withJku}`), FORMAT);
    const withX5c = tokenFor(attacker, claims({ sub: 'mallory' }), { x5c: [Buffer.from('not a cert').toString('base64')] });
    refusedWith(await verifier.verify(`Bearer ${withX5c}`), FORMAT);
    assert.equal(attackerServer.requests(), 0, 'the attacker URL was never fetched');
    assert.equal(jwks.requests(), before, 'a known kid with a bad signature fetches nothing');
  });

  test('malformed tokens: segment count, empty segments, bad base64url, not JSON', async () => {
    const [h, p, s] = tokenFor(rsa).split('.');
    const cases = [
      `${h}.${p}`,
      `${h}.${p}.${s}.${s}`,
      `${h}..${s}`,
      `.${p}.${s}`,
      `${h}.${p}.${s}+`,
      `${h}/.${p}.${s}`,
      `${h}.${p}.${s}=`,
      `${h}.${p}.${s}abc`, // a segment length of 1 mod 4 is no base64url at all
      `${b64url('not json')}.${p}.${s}`,
      `${b64url('[1,2]')}.${p}.${s}`,
      `${b64url('null')}.${p}.${s}`,
      `${b64url({ alg: 'RS256', kid: rsa.kid })}.${b64url('not json')}.${s}`,
      `${b64url({ alg: 'RS256', kid: 7 })}.${p}.${s}`,
      `${Buffer.from([0xff, 0xfe, 0x7b]).toString('base64url')}.${p}.${s}`,
      'a.b.c',
      'abcde.abcd.abcd',
    ];
    for (const token of cases) refusedWith(await verifier.verify(`Bearer ${token}`), FORMAT);
    // A correctly signed payload that is not a JSON object: format, not signature, is what fails.
    for (const payload of ['not json', '[]', '"text"', 'null']) {
      refusedWith(await verifier.verify(`Bearer ${signRaw({ alg: 'RS256', kid: rsa.kid }, payload, rsa.privateKey)}`), FORMAT);
    }
  });

  test('wrong scheme, missing token, extra spaces or tabs → invalid_token, header detail', async () => {
    const token = tokenFor(rsa);
    for (const header of [`Basic ${token}`, `Token ${token}`, `Bearer`, `Bearer `, `Bearer  ${token}`, `Bearer\t${token}`, ` Bearer ${token}`, `Bearer ${token} `, `Bearer ${token}\n`, `Bearer:${token}`, `Bearer ${token} ${token}`, `Bearer ${token},${token}`, '']) {
      refusedWith(await verifier.verify(header), HEADER);
    }
  });

  test('an oversized token → 431 header_too_large, before any parsing', async () => {
    const limit = baseConfig().maxTokenBytes;
    const huge = `Bearer ${'a'.repeat(limit + 1)}`;
    const result = await verifier.verify(huge);
    refusedWith(result, 'the bearer token is larger than this gateway accepts', 'header_too_large');
    assert.ok(!result.ok);
    const rendered = renderProblem(result.problem);
    assert.equal(rendered.status, 431);
    assert.deepEqual(rendered.headers, { 'content-type': 'application/problem+json', 'cache-control': 'no-store' });
    assert.deepEqual(JSON.parse(rendered.body), {
      type: 'https://mfa-gateway.dev/problems/header_too_large',
      title: 'Request header fields too large',
      status: 431,
      detail: 'the bearer token is larger than this gateway accepts',
      code: 'header_too_large',
    });
    // Wrong scheme and oversized: still 431; exactly at the limit: parsed normally.
    refusedWith(await verifier.verify(`Basic ${'a'.repeat(limit * 2)}`), 'the bearer token is larger than this gateway accepts', 'header_too_large');
    refusedWith(await verifier.verify(`Bearer ${'a'.repeat(limit)}`), FORMAT);
  });

  test('a refusal renders as RFC 6750 401 problem+json and never contains the token', async () => {
    const token = tokenFor(rsa, claims({ exp: T0_SECONDS - 3600 }));
    const result = await verifier.verify(`Bearer ${token}`);
    assert.ok(!result.ok);
    const rendered = renderProblem(result.problem, 'req-1');
    assert.equal(rendered.status, 401);
    assert.deepEqual(rendered.headers, {
      'content-type': 'application/problem+json',
      'cache-control': 'no-store',
      'www-authenticate': 'Bearer error="invalid_token", error_description="token expired"',
    });
    assert.equal(
      rendered.body,
      '{"type":"https://mfa-gateway.dev/problems/invalid_token","title":"Invalid bearer token","status":401,"detail":"token expired","code":"invalid_token","request_id":"req-1"}',
    );
    for (const part of token.split('.')) assert.ok(!rendered.body.includes(part) && !rendered.headers['www-authenticate']!.includes(part));
  });
});

describe('logs', () => {
  test('refusals are logged with a reason and the token hash, never the token', async () => {
    const key = await signingKey('RS256', 'k1');
    const jwks = await startJwksServer([key.publicJwk]);
    const { logger, lines } = captureLog();
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), logger, clock: fakeClock(T0) });
    try {
      const tokens = [
        tokenFor(key, claims({ exp: T0_SECONDS - 3600 })),
        tokenFor(key, claims({ aud: 'nope' })),
        signRaw({ alg: 'HS256', kid: 'k1' }, claims(), 'secret'),
        tokenFor(key, claims({ scope: 1 })),
      ];
      for (const token of tokens) assert.equal((await verifier.verify(`Bearer ${token}`)).ok, false);
      const entries = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.event === 'jwt_rejected');
      assert.deepEqual(
        entries.map((entry) => [entry.reason, entry.token_hash]),
        [
          ['expired', createHash('sha256').update(tokens[0]!).digest('hex')],
          ['aud_mismatch', createHash('sha256').update(tokens[1]!).digest('hex')],
          ['alg_not_allowed', createHash('sha256').update(tokens[2]!).digest('hex')],
          ['claims', createHash('sha256').update(tokens[3]!).digest('hex')],
        ],
      );
      const all = lines.join('');
      for (const token of tokens) for (const part of token.split('.')) assert.ok(!all.includes(part));
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });
});

describe('unknown kid', () => {
  test('→ 401, exactly one refetch per cooldown, shared by concurrent callers, then a rotated key is found', async () => {
    const [current, rotated, unknown] = await Promise.all([signingKey('RS256', 'k1'), signingKey('ES256', 'k2'), signingKey('RS256', 'never')]);
    const jwks = await startJwksServer([current.publicJwk]);
    const clock = fakeClock(T0);
    const metrics = createMetrics();
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), metrics, clock });
    try {
      assert.ok((await verifier.verify(`Bearer ${tokenFor(current)}`)).ok);
      assert.equal(jwks.requests(), 1);

      // Within the cooldown of the first fetch: no refetch at all.
      refusedWith(await verifier.verify(`Bearer ${tokenFor(unknown)}`), FORMAT);
      assert.equal(jwks.requests(), 1);

      clock.advance(30_000);
      const results = await Promise.all(Array.from({ length: 5 }, (_, i) => verifier.verify(`Bearer ${tokenFor(unknown, claims({ sub: `u${i}` }))}`)));
      for (const result of results) refusedWith(result, FORMAT);
      assert.equal(jwks.requests(), 2, 'five concurrent unknown kids share one refetch');

      clock.advance(29_999);
      refusedWith(await verifier.verify(`Bearer ${tokenFor(unknown, claims({ sub: 'again' }))}`), FORMAT);
      assert.equal(jwks.requests(), 2, 'still within the cooldown');

      // The issuer rotates: after the cooldown, the new kid is found by one refetch.
      jwks.setKeys([current.publicJwk, rotated.publicJwk]);
      clock.advance(1);
      const result = await verifier.verify(`Bearer ${tokenFor(rotated)}`);
      assert.ok(result.ok);
      assert.equal(jwks.requests(), 3);
      assert.equal(await counterValue(metrics.jwksFetches, { result: 'success' }), 3);
      assert.equal(await counterValue(metrics.jwksFetches, { result: 'failure' }), 0);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });

  test('no kid with several keys of the right type: each is tried, the right one wins', async () => {
    const [a, b] = await Promise.all([signingKey('RS256', 'a'), signingKey('RS256', 'b')]);
    const jwks = await startJwksServer([a.publicJwk, b.publicJwk]);
    const verifier = createJwtVerifier({ config: baseConfig({ jwksUri: jwks.url }), clock: fakeClock(T0) });
    try {
      const noKid = signRaw({ alg: 'RS256', typ: 'JWT' }, claims({ sub: 'kidless' }), b.privateKey);
      const result = await verifier.verify(`Bearer ${noKid}`);
      assert.ok(result.ok);
      assert.equal(result.principal.subject, 'kidless');
      const attacker = await signingKey('RS256', 'x');
      refusedWith(await verifier.verify(`Bearer ${signRaw({ alg: 'RS256' }, claims(), attacker.privateKey)}`), FORMAT);
    } finally {
      await verifier.close();
      await jwks.close();
    }
  });
});
