import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadPolicyFile } from '../../src/config/load.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import { runInviteCommand } from '../../src/cli/invite.js';
import { CHROMIUM, missingBinary } from '../support/binaries.js';
import { evaluate, launchBrowser, type Browser } from '../support/browser.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../support/clock.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call, freePort, type Reply } from '../support/http.js';
import { captureLog, type LogCapture } from '../support/log.js';
import { oathTotp } from '../support/otp.js';
import { token } from '../support/tokens.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

/**
 * WebAuthn end to end: a real gateway on http://localhost:<port> (RP id localhost), headless
 * Chromium opening its setup page, and the DevTools virtual authenticator as the user's passkey.
 * Registration goes through the page's own button; assertions run in the page with the same
 * browser bundle the page loads. The gateway runs on a fake clock so lifetimes can pass.
 */

const skip = missingBinary(CHROMIUM, 'chromium');
const DAY = 86_400_000;
const s = (ms: number): number => Math.floor(ms / 1000);

/** Helpers installed in the page with evaluate (DevTools: not subject to the page's CSP). */
const PAGE_LIB = `window.__mfa = {
  async post(bearer, path, body, headers) {
    const h = Object.assign({ authorization: 'Bearer ' + bearer }, body === undefined ? {} : { 'content-type': 'application/json' }, headers || {});
    const r = await fetch('/.mfa/' + path, { method: 'POST', headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  },
  async register(bearer, label, headers) {
    const o = await this.post(bearer, 'webauthn/register/options', undefined, headers);
    if (o.status !== 200) return o;
    const response = await SimpleWebAuthnBrowser.startRegistration({ optionsJSON: o.body });
    return this.post(bearer, 'webauthn/register/verify', label ? { response, label } : { response }, headers);
  },
  async assertion(bearer, allow) {
    const o = await this.post(bearer, 'webauthn/authenticate/options');
    if (o.status !== 200) return { refused: o };
    if (allow) o.body.allowCredentials = [{ id: allow, type: 'public-key' }];
    return { response: await SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: o.body }), options: o.body };
  },
  async authenticate(bearer, allow) {
    const a = await this.assertion(bearer, allow);
    return a.refused || this.post(bearer, 'webauthn/authenticate/verify', { response: a.response });
  },
};`;

interface PageReply {
  readonly status: number;
  readonly body: Record<string, unknown>;
}

/** A problem+json answer's body without its request id (which differs per request). */
function problemBody(reply: { status: number; body: Record<string, unknown> } | Reply): Record<string, unknown> {
  const body = 'json' in reply ? reply.json() : { ...reply.body };
  assert.match(String(body.request_id), /^[0-9a-f-]{36}$/);
  delete body.request_id;
  return body;
}

function problem(code: string, title: string, status: number, detail: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { type: `https://mfa-gateway.dev/problems/${code}`, title, status, detail, code, ...extra };
}

const MFA_INVALID = problem('mfa_invalid', 'Second factor rejected', 401, 'the second factor was not accepted');

describe('WebAuthn in a real browser against a real gateway', { skip, timeout: 120_000 }, () => {
  let dir: string;
  let ws: Workspace;
  let upstream: Upstream;
  let gateway: Gateway;
  let browser: Browser;
  let clock: FakeClock;
  let port: number;
  let audit: LogCapture;
  let origin: string;
  const bearer = (subject: string) => token(subject, { now: clock() });
  /** Secrets and identifiers the logs must never hold. */
  const secrets: string[] = [];

  const writePolicy = (origins: string) =>
    ws.writePolicy(
      policyHead(ws, upstream.url).replace(
        'mfa:\n  issuer: Test Gateway\n',
        `mfa:\n  issuer: Test Gateway\n  webauthn: { rp_id: localhost, origins: [${origins}] }\n`,
      ) +
        `routes:
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: vault, match: { path_prefix: /vault/ }, upstream: app, policy: step_up, max_age: 5m, methods: [webauthn] }
default: deny
`,
    );

  async function inPage<T>(call: string): Promise<T> {
    return evaluate<T>(browser.page, call);
  }
  const authenticate = async (subject: string, allow?: string) => inPage<PageReply>(`window.__mfa.authenticate(${JSON.stringify(await bearer(subject))}, ${JSON.stringify(allow ?? null)})`);
  const register = async (subject: string, label?: string, headers?: Record<string, string>) =>
    inPage<PageReply>(`window.__mfa.register(${JSON.stringify(await bearer(subject))}, ${JSON.stringify(label ?? null)}, ${JSON.stringify(headers ?? {})})`);
  /** The credential id the gateway offers `subject` in its authentication options. */
  const credentialIdOf = async (subject: string) =>
    (await inPage<PageReply>(`window.__mfa.post(${JSON.stringify(await bearer(subject))}, 'webauthn/authenticate/options')`)).body.allowCredentials as { id: string }[];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mfa-webauthn-'));
    ws = createWorkspace();
    upstream = await startUpstream();
    port = await freePort();
    origin = `http://localhost:${port}`;
    writePolicy(origin);
    clock = fakeClock(intoCurrentStep());
    audit = captureLog('audit');
    gateway = await startGateway({ configPath: ws.configPath, logger: audit.logger, audit: audit.logger, clock, watch: false, listen: { host: '127.0.0.1', port }, admin: false });
    browser = await launchBrowser(dir);
    await browser.page.goto(`${origin}/.mfa/setup`);
    await browser.page.waitForLoadState('load');
    // The page's CSP forbids eval, so nothing here polls with a string: its deferred scripts ran by 'load'.
    assert.equal(await inPage('typeof window.SimpleWebAuthnBrowser.startRegistration'), 'function');
    await inPage(PAGE_LIB);
  });
  after(async () => {
    await browser?.close();
    await gateway?.stop();
    await upstream?.close();
    ws?.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  test('the setup page and its two scripts are served without a bearer, scripts as same-origin JavaScript', async () => {
    for (const asset of ['setup.js', 'webauthn-browser.js']) {
      const reply = await call(port, 'GET', `/.mfa/${asset}`);
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['content-type'], 'text/javascript; charset=utf-8');
      assert.equal(reply.headers['x-content-type-options'], 'nosniff');
      assert.equal(reply.headers['cross-origin-resource-policy'], 'same-origin');
    }
    assert.match((await call(port, 'GET', '/.mfa/webauthn-browser.js')).text, /SimpleWebAuthnBrowser/);
    assert.equal((await call(port, 'POST', '/.mfa/setup.js')).status, 401, 'only GET is public');
  });

  let registeredAt = 0;
  test('register through the setup page: "Add a security key or passkey" → credential listed, 10 recovery codes shown', async () => {
    const page = browser.page;
    // Signed in to the page with an invite link (the page never takes a bearer token).
    const printed: string[] = [];
    await runInviteCommand(loadPolicyFile(ws.configPath), 'alice', (line) => printed.push(line));
    const inviteToken = printed[0]!.split('#invite=')[1]!;
    secrets.push(inviteToken);
    await page.goto(`${origin}/.mfa/setup#invite=${inviteToken}`);
    await page.locator('#step-invite').waitFor();
    await page.click('#invite-form button');
    await page.locator('#step-factors').waitFor();
    await page.fill('#webauthn-label', 'Laptop');
    registeredAt = clock();
    await page.click('#webauthn-add');
    await page.locator('#status', { hasText: 'added' }).waitFor();
    assert.equal(await page.textContent('#status'), 'Security key or passkey added (Laptop). Save your recovery codes now: they are shown only once.');
    const codes = (await page.textContent('#codes'))!.split('\n');
    assert.equal(codes.length, 10);
    secrets.push(...codes);

    const listed = await call(port, 'GET', '/.mfa/factors', { authorization: `Bearer ${await bearer('alice')}` });
    assert.equal(listed.status, 200);
    const body = listed.json<{ factors: Record<string, unknown>[] }>();
    const id = body.factors[0]!.id as string;
    assert.match(id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(body, {
      factors: [
        {
          id,
          type: 'webauthn',
          status: 'active',
          label: 'Laptop',
          kind: 'platform',
          synced: false,
          transports: ['internal'],
          created_at: s(registeredAt),
          expires_at: s(registeredAt + 365 * DAY),
          expired: false,
        },
      ],
      recovery_codes_remaining: 10,
    });
  });

  let passkeySession = '';
  let totpSecret = '';
  test('authenticate → a session like POST verify gives; on an mfa route the upstream sees X-Auth-MFA webauthn and no session token', async () => {
    const reply = await authenticate('alice');
    assert.equal(reply.status, 200);
    assert.deepEqual(Object.keys(reply.body), ['session_token', 'expires_at']);
    assert.match(reply.body.session_token as string, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(reply.body.expires_at, s(clock() + 12 * 3_600_000));
    passkeySession = reply.body.session_token as string;
    secrets.push(passkeySession);

    const before = upstream.received.length;
    const proxied = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${await bearer('alice')}`, 'x-session-token': passkeySession }, '{}');
    assert.equal(proxied.status, 200);
    assert.equal(proxied.headers['x-session-token'], undefined, 'nothing minted: the session was sent');
    assert.equal(upstream.received.length, before + 1);
    const got = upstream.received.at(-1)!;
    assert.equal(got.headers['x-auth-subject'], 'alice');
    assert.equal(got.headers['x-auth-mfa'], 'webauthn');
    assert.equal(got.headers['x-auth-mfa-time'], String(s(clock())));
    for (const name of ['x-session-token', 'x-mfa-token']) assert.ok(!upstream.headerNames(got).includes(name), `${name} must not reach the backend`);
  });

  test('a methods: [webauthn] route refuses a TOTP code (unverified, uncounted) and a TOTP session, and takes the passkey session', async () => {
    const auth = { authorization: `Bearer ${await bearer('alice')}` };
    // A TOTP factor too, added with the passkey session as the step-up.
    const enrolled = await call(port, 'POST', '/.mfa/totp/enroll', { ...auth, 'x-session-token': passkeySession });
    assert.equal(enrolled.status, 201, enrolled.text);
    const { factor_id: factorId, secret } = enrolled.json<{ factor_id: string; secret: string }>();
    secrets.push(secret);
    totpSecret = secret;
    const confirmed = await call(port, 'POST', '/.mfa/totp/confirm', { ...auth, 'x-session-token': passkeySession, 'content-type': 'application/json' }, JSON.stringify({ factor_id: factorId, code: oathTotp(secret, clock()) }));
    assert.deepEqual(confirmed.json(), { factor_id: factorId, status: 'active' });
    clock.advanceStep();

    const code = oathTotp(secret, clock());
    const before = upstream.received.length;
    for (let i = 0; i < 4; i++) {
      const refused = await call(port, 'POST', '/vault/1', { ...auth, 'x-mfa-token': code }, '{}');
      assert.equal(refused.status, 401);
      assert.equal(refused.headers['content-type'], 'application/problem+json');
      assert.equal(
        refused.headers['www-authenticate'],
        'Bearer error="insufficient_user_authentication", error_description="this route accepts a second factor by webauthn only; a code in X-MFA-Token does not satisfy it", max_age=300, mfa_methods="webauthn"',
      );
      assert.deepEqual(
        problemBody(refused),
        problem('mfa_method_not_accepted', 'Second factor method not accepted here', 401, 'this route accepts a second factor by webauthn only; a code in X-MFA-Token does not satisfy it', { methods: ['webauthn'] }),
      );
    }
    // Four refusals and no lock (three failures would lock); the code was not even used up.
    const orders = await call(port, 'POST', '/orders/2', { ...auth, 'x-mfa-token': code }, '{}');
    assert.equal(orders.status, 200, orders.text);
    const totpSession = orders.headers['x-session-token'] as string;
    secrets.push(totpSession);
    assert.equal(upstream.received.at(-1)!.headers['x-auth-mfa'], 'totp');

    const bySession = await call(port, 'POST', '/vault/1', { ...auth, 'x-session-token': totpSession }, '{}');
    assert.deepEqual(
      problemBody(bySession),
      problem('mfa_method_not_accepted', 'Second factor method not accepted here', 401, 'this route accepts a second factor by webauthn only; a session opened by totp does not satisfy it', { methods: ['webauthn'] }),
    );
    const none = await call(port, 'POST', '/vault/1', auth, '{}');
    assert.equal(none.headers['www-authenticate'], 'Bearer error="insufficient_user_authentication", error_description="a fresh second factor is required for this operation", max_age=300, mfa_methods="webauthn"');
    assert.deepEqual(problemBody(none), problem('step_up_required', 'Fresh second factor required', 401, 'a fresh second factor is required for this operation', { methods: ['webauthn'] }));
    assert.equal(upstream.received.length, before + 1, 'only the /orders request was forwarded');

    const vault = await call(port, 'POST', '/vault/1', { ...auth, 'x-session-token': passkeySession }, '{}');
    assert.equal(vault.status, 200);
    assert.equal(upstream.received.at(-1)!.headers['x-auth-mfa'], 'webauthn');
  });

  test('a replayed challenge is refused: the assertion verifies once', async () => {
    const signed = await inPage<{ response: unknown }>(`window.__mfa.assertion(${JSON.stringify(await bearer('alice'))})`);
    const send = async () => inPage<PageReply>(`window.__mfa.post(${JSON.stringify(await bearer('alice'))}, 'webauthn/authenticate/verify', ${JSON.stringify({ response: signed.response })})`);
    const first = await send();
    assert.equal(first.status, 200);
    secrets.push(first.body.session_token as string);
    const replay = await send();
    assert.equal(replay.status, 401);
    assert.deepEqual(problemBody(replay), MFA_INVALID);
    assert.equal((await authenticate('alice')).status, 200, 'a success clears the failure');
  });

  test('a wrong origin fails registration and authentication', async () => {
    writePolicy('http://localhost:1');
    assert.deepEqual(gateway.reload(), { ok: true });
    try {
      const refused = await authenticate('alice');
      assert.equal(refused.status, 401);
      assert.deepEqual(problemBody(refused), MFA_INVALID);
      const registration = await register('bob');
      assert.equal(registration.status, 400);
      assert.deepEqual(
        problemBody(registration),
        problem('invalid_request', 'Bad request', 400, 'the registration response did not verify (origin, RP id, challenge, user verification or attestation); ask for new options and try again'),
      );
      const listed = await call(port, 'GET', '/.mfa/factors', { authorization: `Bearer ${await bearer('bob')}` });
      assert.deepEqual(listed.json(), { factors: [], recovery_codes_remaining: 0 }, 'nothing was stored');
    } finally {
      writePolicy(origin);
      assert.deepEqual(gateway.reload(), { ok: true });
    }
    assert.equal((await authenticate('alice')).status, 200);
  });

  test("another user's credential does not verify for alice", async () => {
    const bob = await register('bob');
    assert.equal(bob.status, 201);
    const bobBody = bob.body;
    assert.deepEqual(Object.keys(bobBody), ['factor_id', 'type', 'kind', 'label', 'status', 'expires_at', 'recovery_codes']);
    assert.deepEqual({ ...bobBody, factor_id: 'x', recovery_codes: (bobBody.recovery_codes as string[]).length }, {
      factor_id: 'x',
      type: 'webauthn',
      kind: 'platform',
      label: 'Passkey',
      status: 'active',
      expires_at: s(clock() + 365 * DAY),
      recovery_codes: 10,
    });
    const [bobCredential] = await credentialIdOf('bob');
    const [aliceCredential] = await credentialIdOf('alice');
    assert.notEqual(bobCredential!.id, aliceCredential!.id);
    secrets.push(bobCredential!.id, aliceCredential!.id);
    const refused = await authenticate('alice', bobCredential!.id);
    assert.equal(refused.status, 401);
    assert.deepEqual(problemBody(refused), MFA_INVALID);
    assert.equal((await authenticate('alice')).status, 200);
  });

  test('a signature counter that goes back (a cloned authenticator) is refused', async () => {
    const { cdp, authenticatorId } = browser;
    const [alice] = await credentialIdOf('alice');
    const before = (await cdp.send('WebAuthn.getCredentials', { authenticatorId })).credentials.find((c) => Buffer.from(c.credentialId, 'base64').toString('base64url') === alice!.id)!;
    assert.ok(before.signCount > 0, `the virtual authenticator counts (${before.signCount})`);
    assert.equal((await authenticate('alice')).status, 200);
    // The clone: the same key with the counter it had before that last assertion.
    await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: before.credentialId });
    await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: { ...before, signCount: before.signCount - 1 } });
    const refused = await authenticate('alice');
    assert.equal(refused.status, 401);
    assert.deepEqual(problemBody(refused), MFA_INVALID);
    // The genuine authenticator, one ahead, goes on working.
    await cdp.send('WebAuthn.removeCredential', { authenticatorId, credentialId: before.credentialId });
    await cdp.send('WebAuthn.addCredential', { authenticatorId, credential: { ...before, signCount: before.signCount + 5 } });
    assert.equal((await authenticate('alice')).status, 200);
    const reasons = audit.events().filter((e) => e.event === 'failed' && e.subject === 'alice').map((e) => e.reason);
    assert.deepEqual(reasons, ['webauthn_challenge', 'webauthn_unverified', 'webauthn_unknown_credential', 'webauthn_counter']);
  });

  test('past its lifetime a passkey is refused, naming it; its last session ended with it; TOTP goes on', async () => {
    const expiresAt = registeredAt + 365 * DAY;
    clock.set(expiresAt - 60_000);
    const last = await authenticate('alice');
    assert.equal(last.status, 200);
    assert.equal(last.body.expires_at, s(expiresAt), 'a session ends no later than the factor that opened it');
    secrets.push(last.body.session_token as string);

    const signed = await inPage<{ response: unknown }>(`window.__mfa.assertion(${JSON.stringify(await bearer('alice'))})`);
    clock.set(expiresAt);
    const refused = await inPage<PageReply>(`window.__mfa.post(${JSON.stringify(await bearer('alice'))}, 'webauthn/authenticate/verify', ${JSON.stringify({ response: signed.response })})`);
    assert.equal(refused.status, 403);
    const day = new Date(expiresAt).toISOString().slice(0, 10);
    const hint = `register a security key or passkey with POST /.mfa/webauthn/register/options, or an authenticator app with POST /.mfa/totp/enroll; the step-up that asks for takes a recovery code, then remove the old factor with DELETE /.mfa/factors/{id}`;
    assert.deepEqual(problemBody(refused), problem('factor_expired', 'Second factor past its lifetime', 403, `the second factor "Laptop" reached the end of its lifetime on ${day}; register it again`, { hint }));
    const options = await inPage<PageReply>(`window.__mfa.post(${JSON.stringify(await bearer('alice'))}, 'webauthn/authenticate/options')`);
    assert.deepEqual(
      problemBody(options),
      problem('factor_expired', 'Second factor past its lifetime', 403, 'every second factor of this user that this route accepts has reached the end of its lifetime; register a new one', {
        hint: hint.replace(', or an authenticator app with POST /.mfa/totp/enroll', ''),
        methods: ['webauthn'],
      }),
    );
    const auth = { authorization: `Bearer ${await bearer('alice')}` };
    const ended = await call(port, 'POST', '/vault/1', { ...auth, 'x-session-token': last.body.session_token as string }, '{}');
    assert.equal(ended.status, 401);
    assert.deepEqual(problemBody(ended), problem('session_invalid', 'MFA session invalid', 401, 'the MFA session is invalid, expired or revoked', { methods: ['webauthn'] }));
    const vault = await call(port, 'POST', '/vault/1', auth, '{}');
    assert.equal(vault.status, 403);
    assert.deepEqual(problemBody(vault), problem('factor_expired', 'Second factor past its lifetime', 403, 'every second factor of this user that this route accepts has reached the end of its lifetime; register a new one', {
      hint: hint.replace(', or an authenticator app with POST /.mfa/totp/enroll', ''),
      methods: ['webauthn'],
    }));
    const listed = (await call(port, 'GET', '/.mfa/factors', auth)).json<{ factors: { type: string; expired?: boolean }[] }>();
    assert.deepEqual(listed.factors.map((f) => [f.type, f.expired]), [['totp', undefined], ['webauthn', true]]);
    const totp = await call(port, 'POST', '/orders/3', { ...auth, 'x-mfa-token': oathTotp(totpSecret, clock()) }, '{}');
    assert.equal(totp.status, 200, 'TOTP has no lifetime unless mfa.totp.max_age sets one');
    secrets.push(totp.headers['x-session-token'] as string);
  });

  test('rename and remove a credential: both need a step-up; removal ends its sessions', async () => {
    const session = (await authenticate('bob')).body.session_token as string;
    secrets.push(session);
    const auth = { authorization: `Bearer ${await bearer('bob')}`, 'content-type': 'application/json' };
    const listed = async () => (await call(port, 'GET', '/.mfa/factors', auth)).json<{ factors: { id: string; label: string }[]; recovery_codes_remaining: number }>();
    const [credential] = (await listed()).factors;
    const stale = await call(port, 'PATCH', `/.mfa/factors/${credential!.id}`, auth, JSON.stringify({ label: 'Work key' }));
    assert.equal(stale.status, 401);
    assert.equal(stale.json().code, 'step_up_required');
    assert.equal((await call(port, 'PATCH', `/.mfa/factors/${credential!.id}`, { ...auth, 'x-session-token': session }, JSON.stringify({ label: '' }))).json().detail, '"label" must be 1-64 printable characters');
    assert.equal((await call(port, 'PATCH', `/.mfa/factors/${credential!.id}`, { ...auth, 'x-session-token': session }, JSON.stringify({ label: 'Work key' }))).status, 204);
    assert.equal((await listed()).factors[0]!.label, 'Work key');
    assert.equal((await call(port, 'DELETE', `/.mfa/factors/${credential!.id}`, auth)).status, 401);
    assert.equal((await call(port, 'DELETE', `/.mfa/factors/${credential!.id}`, { ...auth, 'x-session-token': session })).status, 204);
    assert.deepEqual(await listed(), { factors: [], recovery_codes_remaining: 0 });
    const after = await call(port, 'POST', '/orders/1', { ...auth, 'x-session-token': session }, '{}');
    assert.equal(after.status, 401, 'the session went with the factor');
    assert.equal(after.json().code, 'session_invalid');
    assert.equal((await call(port, 'POST', '/orders/1', auth, '{}')).json().code, 'mfa_not_enrolled', 'and bob has none left');
  });

  test('no challenge, credential id, session token or recovery code reaches a log line', () => {
    const text = audit.text();
    assert.ok(audit.lines.length > 20);
    for (const secret of secrets) assert.ok(!text.includes(secret), `a log line holds ${secret.slice(0, 6)}…`);
  });
});
