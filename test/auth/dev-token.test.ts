import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { describe, test } from 'node:test';
import { issueDevToken } from '../../src/auth/dev-token.js';
import { AuthConfigError } from '../../src/auth/errors.js';
import { AUDIENCE, ISSUER, T0, T0_SECONDS } from './helpers.js';

const SECRET = 'demo-secret-for-tests-0123456789abcdef';

function decode(segment: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(segment, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('issueDevToken', () => {
  test('HS256 over exactly the claims asked for, `now` in epoch ms', async () => {
    const token = await issueDevToken({
      secret: SECRET,
      issuer: ISSUER,
      audience: AUDIENCE,
      subject: 'erin',
      scopes: ['orders:read', 'profile'],
      roles: ['ops'],
      ttlSeconds: 90,
      amr: ['otp'],
      authTime: T0_SECONDS - 5,
      now: T0 + 999,
    });
    const [header, payload, signature] = token.split('.');
    assert.deepEqual(decode(header!), { alg: 'HS256', typ: 'JWT' });
    const body = decode(payload!);
    assert.match(String(body.jti), /^[0-9a-f-]{36}$/);
    delete body.jti;
    assert.deepEqual(body, {
      iss: ISSUER,
      aud: AUDIENCE,
      sub: 'erin',
      iat: T0_SECONDS,
      exp: T0_SECONDS + 90,
      scope: 'orders:read profile',
      roles: ['ops'],
      amr: ['otp'],
      auth_time: T0_SECONDS - 5,
    });
    // Checked independently of jose: HMAC-SHA256 over header.payload.
    assert.equal(signature, createHmac('sha256', SECRET).update(`${header}.${payload}`).digest('base64url'));
  });

  test('defaults: one hour, no scope/roles/amr claims', async () => {
    const token = await issueDevToken({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE, subject: 'frank', now: T0 });
    const body = decode(token.split('.')[1]!);
    assert.equal(body.exp, T0_SECONDS + 3600);
    assert.deepEqual(Object.keys(body).sort(), ['aud', 'exp', 'iat', 'iss', 'jti', 'sub']);
  });

  test('bad options throw AuthConfigError naming the option, never echoing the secret', async () => {
    const base = { secret: SECRET, issuer: ISSUER, audience: AUDIENCE, subject: 'x' };
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ secret: 'short-secret' }, 'auth.jwt.hmacSecret'],
      [{ issuer: '' }, 'issuer'],
      [{ audience: '' }, 'audience'],
      [{ subject: '' }, 'subject'],
      [{ subject: 'x'.repeat(257) }, 'subject'],
      [{ scopes: ['has space'] }, 'scopes'],
      [{ roles: [''] }, 'roles'],
      [{ amr: [1] }, 'amr'],
      [{ ttlSeconds: 0 }, 'ttlSeconds'],
      [{ ttlSeconds: 1.5 }, 'ttlSeconds'],
      [{ now: Number.NaN }, 'now'],
      [{ authTime: -1 }, 'authTime'],
    ];
    for (const [override, option] of cases) {
      await assert.rejects(
        issueDevToken({ ...base, ...override } as Parameters<typeof issueDevToken>[0]),
        (error: unknown) => error instanceof AuthConfigError && error.option === option && !error.message.includes(SECRET),
        option,
      );
    }
  });
});
