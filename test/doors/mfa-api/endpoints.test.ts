import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { INVALID_CODE_DETAIL } from '../../../src/mfa/service.js';
import { createRig, type Rig } from '../../mfa/support.js';
import { startServer } from './server.js';
import { call, closeServer, rawExchange, type Reply } from '../../support/http.js';
import { oathHotp, oathTotp, wrongTotp } from '../../support/otp.js';
import { secretsIn } from '../../support/log.js';

/** The endpoints behind a real node:http server on loopback (server.ts). */

const PREFIX = '/.mfa/';
const JSON_TYPE = 'application/json; charset=utf-8';

function auth(subject: string, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${subject}`, ...extra };
}

function jsonHeaders(subject: string, extra: Record<string, string> = {}): Record<string, string> {
  return auth(subject, { 'content-type': 'application/json', ...extra });
}

function problemBody(code: string, title: string, status: number, detail: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: `https://mfa-gateway.dev/problems/${code}`, title, status, detail, code, ...extra };
}

function assertJson(reply: Reply, status: number): Record<string, unknown> {
  assert.equal(reply.status, status, reply.text);
  assert.equal(reply.headers['content-type'], JSON_TYPE);
  assert.equal(reply.headers['cache-control'], 'no-store');
  return reply.json();
}

describe('MFA endpoints over HTTP', () => {
  let rig: Rig;
  let server: Server;
  let port = 0;
  /** Every secret, code and token the test handled. */
  let secrets: string[];

  beforeEach(async () => {
    rig = createRig();
    secrets = [];
    ({ server, port } = await startServer(rig));
  });
  afterEach(async () => {
    await closeServer(server);
    await rig.close();
  });

  // Each step below is one test, run on a fresh rig and server after the steps it needs (alice's
  // factor is enrolled at T0, then confirmed). `journey()` runs all of them in order on one rig, for
  // the test about what a whole run of use leaves in the logs.

  async function setupPage(): Promise<void> {
    const reply = await call(port, 'GET', `${PREFIX}setup`, auth('alice'));
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(reply.headers['x-frame-options'], 'DENY');
    assert.equal(reply.headers['cache-control'], 'no-store');
    const csp = reply.headers['content-security-policy']!;
    const style = /<style>([\s\S]*)<\/style>/.exec(reply.text)![1]!;
    const hash = (text: string) => createHash('sha256').update(text).digest('base64');
    // No inline script at all: two same-origin scripts, each carrying this response's nonce, and nothing else runs.
    const scripts = [...reply.text.matchAll(/<script([^>]*)>([\s\S]*?)<\/script>/g)];
    assert.deepEqual(scripts.map((m) => m[2]), ['', '']);
    const nonce = /nonce="([A-Za-z0-9+/=]{24})"/.exec(scripts[0]![1]!)![1]!;
    assert.deepEqual(
      scripts.map((m) => m[1]),
      [` nonce="${nonce}" src="webauthn-browser.js" defer`, ` nonce="${nonce}" src="setup.js" defer`],
    );
    assert.equal(
      csp,
      `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'sha256-${hash(style)}'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    );
    const again = await call(port, 'GET', `${PREFIX}setup`, auth('alice'));
    assert.ok(!again.text.includes(nonce), 'a fresh nonce per response');
    assert.ok(!/\b(src|href)=["']?(https?:)?\/\//i.test(reply.text), 'no external resources');
    assert.ok(reply.text.includes('Add a security key or passkey'));
    const { SETUP_SCRIPT } = await import('../../../src/doors/mfa-api/setup-page.js');
    assert.ok(!SETUP_SCRIPT.includes('innerHTML'), 'server data never goes through innerHTML');
    // The page calls the API through its setup session (setup/api/…), never with a bearer it holds.
    for (const path of ['totp/enroll', 'totp/confirm', 'verify', 'factors', 'webauthn/register/options', 'webauthn/register/verify', 'webauthn/authenticate/options', 'webauthn/authenticate/verify']) {
      assert.ok(SETUP_SCRIPT.includes(`'api/${path}'`), path);
    }
    assert.ok(!/authorization|bearer|localStorage|sessionStorage|document\.cookie/i.test(SETUP_SCRIPT), 'the page holds no token');
    assert.ok(!reply.text.includes('id="bearer"'), 'nobody is asked to paste a token');
  }

  async function enroll(): Promise<{ secret: string; factorId: string }> {
    const reply = await call(port, 'POST', `${PREFIX}totp/enroll`, auth('alice'));
    const body = assertJson(reply, 201);
    assert.deepEqual(Object.keys(body), ['factor_id', 'type', 'secret', 'otpauth_uri', 'qr_svg', 'qr_png', 'manual_key', 'pending_until']);
    const secret = body.secret as string;
    const factorId = body.factor_id as string;
    secrets.push(secret);
    assert.equal(body.type, 'totp');
    assert.equal(body.otpauth_uri, `otpauth://totp/Test%20Gateway:alice?secret=${secret}&issuer=Test%20Gateway&algorithm=SHA1&digits=6&period=30`);
    assert.match(body.qr_svg as string, /^<svg [^>]*width="300" height="300"/);
    assert.match(body.qr_png as string, /^data:image\/png;base64,/);
    assert.equal((body.manual_key as string).replaceAll(' ', ''), secret);
    assert.equal(body.pending_until, Math.floor(rig.clock() / 1000) + 600);
    return { secret, factorId };
  }

  async function badBodies(factorId: string): Promise<void> {
    const cases: [Record<string, string>, string | Buffer, string][] = [
      [auth('alice', { 'content-type': 'text/plain' }), '{}', 'the body must be application/json'],
      [jsonHeaders('alice'), Buffer.alloc(16 * 1024 + 1, 0x20), 'the body must be at most 16384 bytes'],
      [jsonHeaders('alice'), '{"factor_id":', 'the body is not valid JSON'],
      [jsonHeaders('alice'), '[1]', 'the body must be a JSON object'],
      [jsonHeaders('alice'), JSON.stringify({ factor_id: factorId, code: '123456', extra: 1 }), 'unknown field "extra"'],
      [jsonHeaders('alice'), JSON.stringify({ factor_id: factorId }), '"code" must be a non-empty string'],
      [jsonHeaders('alice'), JSON.stringify({ factor_id: factorId, code: 123456 }), '"code" must be a non-empty string'],
    ];
    for (const [headers, body, detail] of cases) {
      const reply = await call(port, 'POST', `${PREFIX}totp/confirm`, headers, body);
      assert.equal(reply.status, 400, detail);
      assert.equal(reply.headers['content-type'], 'application/problem+json');
      const got = reply.json();
      delete got.request_id;
      assert.deepEqual(got, problemBody('invalid_request', 'Bad request', 400, detail));
    }
  }

  async function confirm(secret: string, factorId: string): Promise<string[]> {
    const code = oathTotp(secret, rig.clock());
    secrets.push(code);
    const reply = await call(port, 'POST', `${PREFIX}totp/confirm`, jsonHeaders('alice'), JSON.stringify({ factor_id: factorId, code }));
    const body = assertJson(reply, 200);
    assert.deepEqual(Object.keys(body), ['factor_id', 'status', 'recovery_codes']);
    assert.equal(body.status, 'active');
    const recoveryCodes = body.recovery_codes as string[];
    assert.equal(recoveryCodes.length, 10);
    secrets.push(...recoveryCodes);
    return recoveryCodes;
  }

  async function verify(secret: string): Promise<void> {
    const none = await call(port, 'POST', `${PREFIX}verify`, auth('alice'));
    assert.equal(none.status, 401);
    assert.equal(
      none.headers['www-authenticate'],
      'Bearer error="insufficient_user_authentication", error_description="a second factor is required for this route", max_age=43200',
    );

    rig.clock.advance(30_000);
    const code = oathTotp(secret, rig.clock());
    secrets.push(code);
    const ok = await call(port, 'POST', `${PREFIX}verify`, auth('alice', { 'x-mfa-token': code }));
    const body = assertJson(ok, 200);
    assert.deepEqual(Object.keys(body), ['session_token', 'expires_at']);
    assert.equal(body.expires_at, Math.floor(rig.clock() / 1000) + 12 * 3600);
    secrets.push(body.session_token as string);

    const wrong = wrongTotp(secret, rig.clock());
    const shapes = new Set<string>();
    // The first is the code just used (a replay); then a wrong one; then malformed ones.
    for (const input of [code, wrong, '12345', '1234567', '123456789', '+12345', `${code.slice(0, 3)} ${code.slice(3)}`, 'abcdef']) {
      const reply = await call(port, 'POST', `${PREFIX}verify`, auth('alice', { 'x-mfa-token': input }));
      assert.equal(reply.status, 401, input);
      const got = reply.json();
      delete got.request_id;
      assert.deepEqual(got, problemBody('mfa_invalid', 'Second factor rejected', 401, INVALID_CODE_DETAIL));
      shapes.add(JSON.stringify([reply.headers['content-type'], reply.headers['www-authenticate'], reply.headers['cache-control'], reply.headers['retry-after'], got]));
      // Stay below the lockout: a success on the next step clears the failure.
      rig.clock.advance(30_000);
      const fresh = oathTotp(secret, rig.clock());
      const cleared = await call(port, 'POST', `${PREFIX}verify`, auth('alice', { 'x-mfa-token': fresh }));
      assert.equal(cleared.status, 200);
      secrets.push(fresh, cleared.json().session_token as string);
    }
    assert.equal(shapes.size, 1, 'identical status, headers and body');
  }

  async function twoMfaTokens(secret: string): Promise<void> {
    const code = oathTotp(secret, rig.clock() + 30_000);
    const raw = await rawExchange(
      port,
      `POST ${PREFIX}verify HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer alice\r\nX-MFA-Token: ${code}\r\nX-MFA-Token: ${code}\r\nContent-Length: 0\r\n\r\n`,
    );
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.match(raw, /"code":"invalid_request"/);
  }

  async function revokeThenList(secret: string, factorId: string): Promise<void> {
    rig.clock.advance(30_000);
    const code = oathTotp(secret, rig.clock());
    const session = (await call(port, 'POST', `${PREFIX}verify`, auth('alice', { 'x-mfa-token': code }))).json().session_token as string;
    secrets.push(code, session);
    const otherUser = await call(port, 'POST', `${PREFIX}session/revoke`, auth('mallory', { 'x-session-token': session }));
    assert.equal(otherUser.status, 401);
    assert.equal(otherUser.json().code, 'session_invalid');
    const revoked = await call(port, 'POST', `${PREFIX}session/revoke`, auth('alice', { 'x-session-token': session }));
    assert.equal(revoked.status, 204);
    assert.equal(revoked.text, '');
    const again = await call(port, 'POST', `${PREFIX}session/revoke`, auth('alice', { 'x-session-token': session }));
    assert.equal(again.status, 401);

    const listed = assertJson(await call(port, 'GET', `${PREFIX}factors`, auth('alice')), 200);
    assert.deepEqual(listed, {
      factors: [
        {
          id: factorId,
          type: 'totp',
          status: 'active',
          label: 'Authenticator app',
          algorithm: 'SHA1',
          digits: 6,
          period: 30,
          created_at: Math.floor(Date.UTC(2026, 0, 1) / 1000),
          confirmed_at: Math.floor(Date.UTC(2026, 0, 1) / 1000),
        },
      ],
      recovery_codes_remaining: 10,
    });
  }

  async function manageFactors(secret: string, factorId: string, recoveryCodes: string[]): Promise<void> {
    rig.clock.advance(10 * 60_000);
    const stale = await call(port, 'POST', `${PREFIX}totp/enroll`, auth('alice'));
    assert.equal(stale.status, 401);
    assert.equal(stale.headers['www-authenticate'], 'Bearer error="insufficient_user_authentication", error_description="a fresh second factor is required for this operation", max_age=300');
    assert.equal((await call(port, 'DELETE', `${PREFIX}factors/${factorId}`, auth('alice'))).status, 401);
    assert.equal((await call(port, 'POST', `${PREFIX}recovery-codes`, auth('alice'))).status, 401);

    // HOTP hardware token, enrolled and confirmed with the fresh session of a step-up code.
    const hotpSecret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
    const stepUp = oathTotp(secret, rig.clock());
    secrets.push(stepUp);
    const session = assertJson(await call(port, 'POST', `${PREFIX}verify`, auth('alice', { 'x-mfa-token': stepUp })), 200).session_token as string;
    secrets.push(session);
    const enrolled = await call(port, 'POST', `${PREFIX}totp/enroll`, jsonHeaders('alice', { 'x-session-token': session }), JSON.stringify({ type: 'hotp', secret: hotpSecret, counter: 3, label: 'YubiKey' }));
    const e = assertJson(enrolled, 201);
    assert.match(e.otpauth_uri as string, /^otpauth:\/\/hotp\/.*&counter=3$/);
    // Activating a second factor needs the same step-up as enrolling it.
    const unconfirmed = await call(port, 'POST', `${PREFIX}totp/confirm`, jsonHeaders('alice'), JSON.stringify({ factor_id: e.factor_id, code: oathHotp(hotpSecret, 3) }));
    assert.equal(unconfirmed.status, 401);
    assert.equal(unconfirmed.json().code, 'step_up_required');
    const confirm = await call(port, 'POST', `${PREFIX}totp/confirm`, jsonHeaders('alice', { 'x-session-token': session }), JSON.stringify({ factor_id: e.factor_id, code: oathHotp(hotpSecret, 3) }));
    assert.deepEqual(assertJson(confirm, 200), { factor_id: e.factor_id, status: 'active' });

    const resync = await call(port, 'POST', `${PREFIX}hotp/resync`, jsonHeaders('alice'), JSON.stringify({ factor_id: e.factor_id, code1: oathHotp(hotpSecret, 50), code2: oathHotp(hotpSecret, 51) }));
    assert.deepEqual(assertJson(resync, 200), { factor_id: e.factor_id, status: 'resynchronised' });

    const hotpCode = oathHotp(hotpSecret, 52);
    const regenerated = await call(port, 'POST', `${PREFIX}recovery-codes`, auth('alice', { 'x-mfa-token': hotpCode }));
    const codes = assertJson(regenerated, 200).recovery_codes as string[];
    assert.equal(codes.length, 10);
    assert.ok(!codes.some((c) => recoveryCodes.includes(c)));
    secrets.push(...codes);

    // The old recovery codes are gone; a new one works as a step-up for the removal.
    const removed = await call(port, 'DELETE', `${PREFIX}factors/${factorId}`, auth('alice', { 'x-mfa-token': codes[0]! }));
    assert.equal(removed.status, 204);
    const missing = await call(port, 'DELETE', `${PREFIX}factors/${factorId}`, auth('alice', { 'x-mfa-token': codes[1]! }));
    assert.equal(missing.status, 404);
    assert.equal(missing.json().code, 'not_found');
    const left = assertJson(await call(port, 'GET', `${PREFIX}factors`, auth('alice')), 200);
    assert.deepEqual((left.factors as { id: string }[]).map((f) => f.id), [e.factor_id]);
    assert.equal(left.recovery_codes_remaining, 8);
  }

  async function unknownEndpoints(): Promise<void> {
    const unknown = await call(port, 'GET', `${PREFIX}nope`, auth('alice'));
    assert.equal(unknown.status, 404);
    assert.equal(unknown.json().code, 'not_found');
    // Names every object inherits are not endpoints either (they answered 500 once).
    for (const inherited of ['constructor', '__proto__', 'hasOwnProperty', 'toString']) {
      for (const method of ['GET', 'POST']) {
        const answer = await call(port, method, `${PREFIX}${inherited}`, auth('alice'));
        assert.equal(answer.status, 404, `${method} ${inherited}`);
        assert.equal(answer.json().code, 'not_found');
        assert.equal(answer.json().detail, 'no such gateway endpoint');
      }
    }
    const wrongMethod = await call(port, 'GET', `${PREFIX}totp/enroll`, auth('alice'));
    assert.equal(wrongMethod.status, 405);
    assert.equal(wrongMethod.headers.allow, 'POST');
    assert.equal(wrongMethod.json().code, 'method_not_allowed');
    const deleteOther = await call(port, 'POST', `${PREFIX}factors/abc`, auth('alice'));
    assert.equal(deleteOther.status, 405);
    assert.equal(deleteOther.headers.allow, 'DELETE, PATCH');
  }

  async function notEnrolled(): Promise<void> {
    const reply = await call(port, 'POST', `${PREFIX}verify`, auth('zoe', { 'x-mfa-token': '123456' }));
    assert.equal(reply.status, 403);
    const got = reply.json();
    delete got.request_id;
    assert.deepEqual(
      got,
      problemBody('mfa_not_enrolled', 'No second factor enrolled', 403, 'no active second factor is enrolled for this user', {
        hint: 'enroll one with POST /.mfa/totp/enroll, then activate it with POST /.mfa/totp/confirm',
      }),
    );
  }

  /** Alice's factor, enrolled and confirmed at T0. */
  async function confirmedAlice(): Promise<{ secret: string; factorId: string; recoveryCodes: string[] }> {
    const { secret, factorId } = await enroll();
    return { secret, factorId, recoveryCodes: await confirm(secret, factorId) };
  }

  /** Every step above, in order, on one rig. */
  async function journey(): Promise<void> {
    await setupPage();
    const { secret, factorId } = await enroll();
    await badBodies(factorId);
    const recoveryCodes = await confirm(secret, factorId);
    await verify(secret);
    await twoMfaTokens(secret);
    await revokeThenList(secret, factorId);
    await manageFactors(secret, factorId, recoveryCodes);
    await unknownEndpoints();
    await notEnrolled();
  }

  test('GET setup: no inline script, its two same-origin scripts allowed by a fresh nonce, the style by its hash', setupPage);

  test('POST totp/enroll → 201 with the secret, otpauth URI, 300×300 QR (SVG and PNG) and manual key', async () => {
    await enroll();
  });

  test('bad bodies: wrong content type, too large, not JSON, unknown field, missing field → 400 invalid_request', async () => {
    const { factorId } = await enroll();
    await badBodies(factorId);
  });

  test('POST totp/confirm with an oathtool code → 200 with 10 recovery codes', async () => {
    const { secret, factorId } = await enroll();
    await confirm(secret, factorId);
  });

  test('POST verify: no code → 401 mfa_required with an RFC 9470 challenge; a code → session; reuse, wrong, malformed → identical 401', async () => {
    const { secret } = await confirmedAlice();
    await verify(secret);
  });

  test('two X-MFA-Token headers are refused before any code is tried', async () => {
    const { secret } = await confirmedAlice();
    await twoMfaTokens(secret);
  });

  test('session/revoke → 204, then the session is invalid; GET factors lists without secrets', async () => {
    const { secret, factorId } = await confirmedAlice();
    await revokeThenList(secret, factorId);
  });

  test('a second factor, DELETE factors/{id} and POST recovery-codes need a fresh second factor', async () => {
    const { secret, factorId, recoveryCodes } = await confirmedAlice();
    await manageFactors(secret, factorId, recoveryCodes);
  });

  test('unknown endpoint → 404, wrong method → 405 with Allow', unknownEndpoints);

  test('a user without a factor: verify → 403 mfa_not_enrolled with the enrollment hint', notEnrolled);

  test('no secret, code or token in the logs', async () => {
    await journey();
    const text = rig.log.text() + rig.auditLog.text();
    const events = new Set(rig.auditLog.events().map((e) => e.event));
    for (const e of ['enrolled', 'confirmed', 'verified', 'failed', 'replay', 'session_issued', 'session_revoked', 'factor_removed', 'recovery_code_used', 'hotp_resynced']) {
      assert.ok(events.has(e), `audit event ${e}`);
    }
    for (const ev of rig.auditLog.events()) {
      assert.equal(ev.name, 'audit');
      assert.equal(typeof ev.subject, 'string');
    }
    assert.deepEqual(secretsIn(text, secrets).map((s) => `${s.length} chars`), [], 'log output contains a secret, code or token');
  });
});
