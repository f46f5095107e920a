import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { closeServer, call, type Reply } from '../../support/http.js';
import { enrollTotp } from '../../support/enroll.js';
import { createRig, type Rig } from '../../mfa/support.js';
import { startServer } from './server.js';

/**
 * The WebAuthn endpoints' answers to everything but a real authenticator (test/mfa/webauthn.test.ts
 * has the browser): WebAuthn off, options shapes, bad bodies, a verify with no ceremony under way.
 */

const WEBAUTHN = { rpId: 'localhost', rpName: 'Test Gateway', origins: ['http://localhost:8080'], userVerification: 'preferred', timeoutMs: 300_000, maxAgeMs: { securityKey: 730 * 86_400_000, platform: 365 * 86_400_000 } } as const;
/** The outline of a credential JSON (no valid signature inside). */
const ASSERTION = { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: 'e30', authenticatorData: 'AAAA', signature: 'AAAA' }, clientExtensionResults: {} };
const ATTESTATION = { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: 'e30', attestationObject: 'AAAA' }, clientExtensionResults: {} };

function problemOf(reply: Reply): Record<string, unknown> {
  assert.equal(reply.headers['content-type'], 'application/problem+json');
  const body = reply.json();
  delete body.request_id;
  return body;
}

function problem(code: string, title: string, status: number, detail: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: `https://mfa-gateway.dev/problems/${code}`, title, status, detail, code, ...extra };
}

describe('WebAuthn endpoints over HTTP', () => {
  let rig: Rig;
  let server: Server;
  let port = 0;
  const post = (subject: string, path: string, body?: unknown) =>
    call(port, 'POST', `/.mfa/webauthn/${path}`, { authorization: `Bearer ${subject}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, body === undefined ? undefined : JSON.stringify(body));

  beforeEach(async () => {
    rig = createRig();
    rig.policy = { ...rig.policy, mfa: { ...rig.policy.mfa, webauthn: WEBAUTHN } };
    ({ server, port } = await startServer(rig));
  });
  afterEach(async () => {
    await closeServer(server);
    await rig.close();
  });

  test('without mfa.webauthn every WebAuthn endpoint is 404 not_found, saying why', async () => {
    rig.policy = { ...rig.policy, mfa: { ...rig.policy.mfa, webauthn: undefined } };
    for (const path of ['register/options', 'register/verify', 'authenticate/options', 'authenticate/verify']) {
      const reply = await post('alice', path, path.endsWith('verify') ? { response: path.startsWith('register') ? ATTESTATION : ASSERTION } : undefined);
      assert.equal(reply.status, 404, path);
      assert.deepEqual(problemOf(reply), problem('not_found', 'Not found', 404, 'WebAuthn is not enabled on this gateway (mfa.webauthn in the policy)'));
    }
    assert.equal((await call(port, 'GET', '/.mfa/webauthn/register/options', { authorization: 'Bearer alice' })).headers.allow, 'POST');
  });

  test('registration options: the policy RP, an opaque user handle, user verification as configured, a fresh challenge each time', async () => {
    const first = await post('alice', 'register/options');
    assert.equal(first.status, 200);
    const options = first.json<Record<string, unknown> & { user: { id: string }; challenge: string }>();
    assert.deepEqual(Object.keys(options).sort(), ['attestation', 'authenticatorSelection', 'challenge', 'excludeCredentials', 'extensions', 'hints', 'pubKeyCredParams', 'rp', 'timeout', 'user']);
    assert.deepEqual(options.rp, { name: 'Test Gateway', id: 'localhost' });
    assert.deepEqual({ ...options.user, id: 'x' }, { id: 'x', name: 'alice', displayName: 'alice' });
    assert.ok(!Buffer.from(options.user.id, 'base64url').toString('latin1').includes('alice'), 'the user handle does not carry the subject');
    assert.deepEqual(options.authenticatorSelection, { residentKey: 'preferred', userVerification: 'preferred', requireResidentKey: false });
    assert.deepEqual(options.pubKeyCredParams, [-8, -7, -257].map((alg) => ({ alg, type: 'public-key' })));
    assert.equal(options.attestation, 'none');
    assert.equal(options.timeout, 300_000);
    assert.deepEqual(options.excludeCredentials, []);
    const second = (await post('alice', 'register/options')).json<{ user: { id: string }; challenge: string }>();
    assert.notEqual(second.challenge, options.challenge);
    assert.equal(second.user.id, options.user.id, 'the same handle for the same subject');
    assert.notEqual((await post('bob', 'register/options')).json<{ user: { id: string } }>().user.id, options.user.id);
  });

  test('bad bodies are 400 invalid_request and change nothing', async () => {
    const cases: [string, unknown, string][] = [
      ['register/options', { label: 'x' }, 'unknown field "label"'],
      ['register/verify', undefined, 'a JSON body {response, label} is required'],
      ['register/verify', { label: 'x' }, '"response" is required'],
      ['register/verify', { response: ATTESTATION, extra: 1 }, 'unknown field "extra"'],
      ['register/verify', { response: 'abc' }, '"response" must be the JSON of a registration credential (startRegistration() gives it)'],
      ['register/verify', { response: { ...ATTESTATION, rawId: 'BBBB' } }, '"response" must be the JSON of a registration credential (startRegistration() gives it)'],
      ['register/verify', { response: ATTESTATION, label: 7 }, '"label" must be a string'],
      ['register/verify', { response: ATTESTATION, label: 'bad\u0007bell' }, '"label" must be 1-64 printable characters'],
      ['authenticate/verify', { response: ATTESTATION }, '"response" must be the JSON of an authentication credential (startAuthentication() gives it)'],
      ['authenticate/options', { anything: true }, 'unknown field "anything"'],
    ];
    for (const [path, body, detail] of cases) {
      const reply = await post('alice', path, body);
      assert.equal(reply.status, 400, `${path}: ${detail}`);
      assert.deepEqual(problemOf(reply), problem('invalid_request', 'Bad request', 400, detail));
    }
    assert.equal(rig.auditLog.events().filter((e) => e.event === 'failed').length, 0, 'nothing counted');
  });

  test('a registration with no ceremony under way is refused; the options are single use', async () => {
    const reply = await post('alice', 'register/verify', { response: ATTESTATION });
    assert.deepEqual(problemOf(reply), problem('invalid_request', 'Bad request', 400, 'no registration is in progress (its options expired or were already used); ask for new options'));
    await post('alice', 'register/options');
    const bad = await post('alice', 'register/verify', { response: ATTESTATION });
    assert.equal(problemOf(bad).detail, 'the registration response did not verify (origin, RP id, challenge, user verification or attestation); ask for new options and try again');
    assert.equal(problemOf(await post('alice', 'register/verify', { response: ATTESTATION })).detail, 'no registration is in progress (its options expired or were already used); ask for new options');
    // And after the ceremony's timeout, the options are gone.
    await post('alice', 'register/options');
    rig.clock.advance(300_000);
    assert.equal(problemOf(await post('alice', 'register/verify', { response: ATTESTATION })).detail, 'no registration is in progress (its options expired or were already used); ask for new options');
  });

  test('authentication: no factor → mfa_not_enrolled; TOTP only → none of this kind; assertions without a ceremony count toward the lockout', async () => {
    assert.equal(problemOf(await post('alice', 'authenticate/options')).code, 'mfa_not_enrolled');
    await enrollTotp(rig, 'alice');
    assert.deepEqual(
      problemOf(await post('alice', 'authenticate/options')),
      problem('mfa_not_enrolled', 'No second factor enrolled', 403, 'no second factor of a kind this route accepts (webauthn) is enrolled for this user', {
        hint: 'register a security key or passkey with POST /.mfa/webauthn/register/options',
        methods: ['webauthn'],
      }),
    );
    for (let i = 0; i < 2; i++) {
      const reply = await post('alice', 'authenticate/verify', { response: ASSERTION });
      assert.equal(reply.status, 401);
      assert.equal(reply.headers['www-authenticate'], 'Bearer error="insufficient_user_authentication", error_description="the second factor was not accepted", max_age=43200');
      assert.deepEqual(problemOf(reply), problem('mfa_invalid', 'Second factor rejected', 401, 'the second factor was not accepted'));
    }
    assert.equal((await post('alice', 'authenticate/verify', { response: ASSERTION })).status, 401);
    const locked = await post('alice', 'authenticate/verify', { response: ASSERTION });
    assert.equal(locked.status, 429);
    assert.equal(locked.headers['retry-after'], '30');
    assert.deepEqual(
      rig.auditLog.events().filter((e) => e.event === 'failed').map((e) => e.reason),
      ['webauthn_challenge', 'webauthn_challenge', 'webauthn_challenge'],
    );
  });
});
