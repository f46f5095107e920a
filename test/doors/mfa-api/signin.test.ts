import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { call, type Reply } from '../../support/http.js';
import { secretsIn } from '../../support/log.js';
import { oathTotp } from '../../support/otp.js';
import { AUDIENCE, CLIENT_ID, startSigninRig, type SigninRig } from './signin-rig.js';

/**
 * The setup page's sign-in over plain HTTP (no browser): the OIDC code flow against a real
 * oidc-provider, invite links, and the answers to an attacker at each state change — a replayed
 * callback, a callback in another browser (login CSRF), another user's code, an open redirect, a
 * stolen or replayed invite, cross-site calls with the cookie, a cookie sent to the backend or to
 * the bearer API, sign-out, expiry — and that no token, code or secret reaches the log.
 */

const PAGE_HEADERS = { 'x-mfa-setup': '1' } as const;

function cookieValue(reply: Reply, name: string): string | undefined {
  const lines = reply.headers['set-cookie'] ?? [];
  const line = lines.find((l) => l.startsWith(`${name}=`));
  return line === undefined ? undefined : line.slice(name.length + 1).split(';')[0];
}
function cookieLine(reply: Reply, name: string): string | undefined {
  return (reply.headers['set-cookie'] ?? []).find((l) => l.startsWith(`${name}=`));
}
function problemOf(reply: Reply): Record<string, unknown> {
  assert.equal(reply.headers['content-type'], 'application/problem+json');
  const body = reply.json();
  delete body.request_id;
  return body;
}
const FORBIDDEN = (detail: string, hint?: string) => ({ type: 'https://mfa-gateway.dev/problems/forbidden', title: 'Forbidden', status: 403, detail, code: 'forbidden', ...(hint !== undefined ? { hint } : {}) });
const SIGNED_OUT = FORBIDDEN('not signed in to the setup page, or the sign-in expired', 'sign in again, or open a new invite link');

describe('setup page sign-in over HTTP (OIDC code + PKCE, invites, setup session)', { timeout: 120_000 }, () => {
  let rig: SigninRig;
  /** What the log must never hold. */
  const secrets: string[] = [];
  const get = (path: string, headers: Record<string, string> = {}) => call(rig.port, 'GET', path, { host: `localhost:${rig.port}`, ...headers });
  const page = (method: string, path: string, cookie: string, body?: unknown, extra: Record<string, string> = {}) =>
    call(
      rig.port,
      method,
      `/.mfa/setup/${path}`,
      { host: `localhost:${rig.port}`, ...PAGE_HEADERS, origin: rig.origin, 'sec-fetch-site': 'same-origin', cookie, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...extra },
      body === undefined ? undefined : JSON.stringify(body),
    );

  /** GET setup/login: the issuer's URL and the login cookie. */
  async function startLogin(): Promise<{ url: URL; binding: string; reply: Reply }> {
    const reply = await get('/.mfa/setup/login');
    assert.equal(reply.status, 303, reply.text);
    const binding = cookieValue(reply, 'mfa_setup_login')!;
    assert.match(binding, /^[A-Za-z0-9_-]{43}$/);
    secrets.push(binding);
    return { url: new URL(reply.headers.location!), binding, reply };
  }
  /** A whole sign-in of `user`: the setup session cookie's value. */
  async function signIn(user: string): Promise<string> {
    const { url, binding } = await startLogin();
    const back = await rig.idp.login(url.href, user);
    const reply = await get(back.pathname + back.search, { cookie: `mfa_setup_login=${binding}` });
    assert.equal(reply.status, 303, reply.text);
    const session = cookieValue(reply, 'mfa_setup')!;
    secrets.push(session, back.searchParams.get('code')!, back.searchParams.get('state')!);
    return session;
  }

  before(async () => {
    rig = await startSigninRig();
  });
  after(async () => {
    await rig?.close();
  });

  test('before sign-in: the session endpoint says signed out and that sign-in is offered; without the page header it refuses', async () => {
    const state = await page('GET', 'session', '');
    assert.equal(state.status, 200);
    assert.deepEqual(state.json(), { signed_in: false, signin_available: true });
    const bare = await get('/.mfa/setup/session');
    assert.equal(bare.status, 403);
    assert.deepEqual(problemOf(bare), FORBIDDEN('setup calls must come from the setup page (the x-mfa-setup header is missing)'));
  });

  test('login redirects to the discovered issuer with PKCE S256, state, nonce, the fixed redirect URI and the resource; the login cookie is bound to the callback path', async () => {
    const { url, reply } = await startLogin();
    assert.equal(`${url.origin}${url.pathname}`, `${rig.idp.issuer}/auth`);
    const q = url.searchParams;
    assert.equal(q.get('client_id'), CLIENT_ID);
    assert.equal(q.get('redirect_uri'), `${rig.origin}/.mfa/setup/callback`);
    assert.equal(q.get('response_type'), 'code');
    assert.equal(q.get('scope'), 'openid orders:read');
    assert.equal(q.get('code_challenge_method'), 'S256');
    assert.match(q.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);
    assert.match(q.get('state')!, /^[A-Za-z0-9_-]{43}$/);
    assert.match(q.get('nonce')!, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(q.get('resource'), rig.idp.resource);
    assert.equal(reply.headers['referrer-policy'], 'no-referrer');
    assert.match(cookieLine(reply, 'mfa_setup_login')!, /^mfa_setup_login=[A-Za-z0-9_-]{43}; Path=\/\.mfa\/setup\/callback; Max-Age=600; HttpOnly; SameSite=Lax$/);
  });

  test('a whole sign-in: the callback opens a setup session (HttpOnly, SameSite=Strict, path-scoped, 15 min) and goes to the page, whatever the request said', async () => {
    const { url, binding } = await startLogin();
    const back = await rig.idp.login(url.href, 'alice');
    assert.equal(back.origin + back.pathname, `${rig.origin}/.mfa/setup/callback`);
    const reply = await get(back.pathname + back.search, { cookie: `mfa_setup_login=${binding}` });
    assert.equal(reply.status, 303);
    assert.equal(reply.headers.location, '/.mfa/setup');
    assert.match(cookieLine(reply, 'mfa_setup')!, /^mfa_setup=[A-Za-z0-9_-]{43}; Path=\/\.mfa\/setup; Max-Age=900; HttpOnly; SameSite=Strict$/);
    assert.equal(cookieLine(reply, 'mfa_setup_login'), 'mfa_setup_login=; Path=/.mfa/setup/callback; Max-Age=0; HttpOnly; SameSite=Lax');
    const session = cookieValue(reply, 'mfa_setup')!;
    secrets.push(session, back.searchParams.get('code')!);
    const state = await page('GET', 'session', `mfa_setup=${session}`);
    assert.deepEqual(state.json(), { signed_in: true, signin_available: true, subject: 'alice', via: 'oidc', expires_at: Math.floor((rig.clock() + 15 * 60_000) / 1000) });
    const factors = await page('GET', 'api/factors', `mfa_setup=${session}`);
    assert.equal(factors.status, 200);
    assert.deepEqual(factors.json(), { factors: [], recovery_codes_remaining: 0 });
  });

  test('a replayed callback (the same state twice) is refused with a page, and opens nothing', async () => {
    const { url, binding } = await startLogin();
    const back = await rig.idp.login(url.href, 'alice');
    const target = back.pathname + back.search;
    assert.equal((await get(target, { cookie: `mfa_setup_login=${binding}` })).status, 303);
    const again = await get(target, { cookie: `mfa_setup_login=${binding}` });
    assert.equal(again.status, 400);
    assert.equal(again.headers['content-type'], 'text/html; charset=utf-8');
    assert.match(again.text, /<h1>This sign-in link has expired<\/h1>/);
    assert.equal(cookieValue(again, 'mfa_setup'), undefined);
    assert.match(String(again.headers['content-security-policy']), /^default-src 'none'; style-src 'sha256-[^']+'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'$/);
  });

  test('login CSRF: a callback arriving in a browser that did not start the sign-in is refused, and the sign-in is used up', async () => {
    const attacker = await startLogin();
    const back = await rig.idp.login(attacker.url.href, 'mallory');
    const target = back.pathname + back.search;
    for (const cookie of ['', `mfa_setup_login=${'A'.repeat(43)}`]) {
      const victim = await get(target, cookie === '' ? {} : { cookie });
      assert.equal(victim.status, cookie === '' ? 400 : 400);
      assert.equal(cookieValue(victim, 'mfa_setup'), undefined);
      assert.match(victim.text, cookie === '' ? /Sign-in was started elsewhere/ : /This sign-in link has expired/);
    }
    // Not even the browser that started it can finish it now: fail closed.
    const late = await get(target, { cookie: `mfa_setup_login=${attacker.binding}` });
    assert.equal(late.status, 400);
    assert.equal(cookieValue(late, 'mfa_setup'), undefined);
  });

  test("another user's code with this browser's state is refused by PKCE at the issuer: no session", async () => {
    const mine = await startLogin();
    const theirs = await startLogin();
    const myBack = await rig.idp.login(mine.url.href, 'alice');
    const theirBack = await rig.idp.login(theirs.url.href, 'bob');
    const forged = new URLSearchParams(myBack.search);
    forged.set('code', theirBack.searchParams.get('code')!);
    const reply = await get(`/.mfa/setup/callback?${forged}`, { cookie: `mfa_setup_login=${mine.binding}` });
    assert.equal(reply.status, 400);
    assert.match(reply.text, /Sign-in did not complete/);
    assert.equal(cookieValue(reply, 'mfa_setup'), undefined);
    assert.ok(rig.log.events().some((e) => e.event === 'setup_signin_refused' && e.reason === 'oidc'));
  });

  test('no open redirect: login takes no parameters; an unknown state never redirects anywhere', async () => {
    for (const query of ['?return=https://evil.example/', '?redirect_uri=https://evil.example/cb']) {
      const reply = await get(`/.mfa/setup/login${query}`);
      assert.equal(reply.status, 400);
      assert.equal(reply.headers.location, undefined);
      assert.match(reply.text, /Sign-in link not valid/);
    }
    const reply = await get('/.mfa/setup/callback?code=x&state=y&redirect_uri=https://evil.example/');
    assert.equal(reply.status, 400);
    assert.equal(reply.headers.location, undefined);
  });

  test('an access token that fails the gateway’s bearer checks (another audience) opens no session', async () => {
    rig.rewrite({ audience: 'another-api' });
    try {
      const { url, binding } = await startLogin();
      const back = await rig.idp.login(url.href, 'alice');
      const reply = await get(back.pathname + back.search, { cookie: `mfa_setup_login=${binding}` });
      assert.equal(reply.status, 403);
      assert.match(reply.text, /Sign-in not accepted/);
      assert.equal(cookieValue(reply, 'mfa_setup'), undefined);
      assert.ok(rig.log.events().some((e) => e.event === 'setup_signin_refused' && e.reason === 'invalid_token'));
    } finally {
      rig.rewrite({ audience: AUDIENCE });
    }
  });

  test('the cookie is accepted by the setup endpoints only: the bearer API ignores it, and the backend never sees it', async () => {
    const session = await signIn('alice');
    const api = await call(rig.port, 'GET', '/.mfa/factors', { cookie: `mfa_setup=${session}` });
    assert.equal(api.status, 401);
    assert.equal(problemOf(api).code, 'invalid_token');
    const proxied = await call(rig.port, 'GET', '/open/x', { cookie: `theme=dark; mfa_setup=${session}; mfa_setup_stepup=${session}; lang=en` });
    assert.equal(proxied.status, 200);
    const got = rig.upstream.received.at(-1)!;
    assert.equal(got.headers.cookie, 'theme=dark; lang=en');
    await call(rig.port, 'GET', '/open/y', { cookie: `mfa_setup=${session}` });
    assert.equal(rig.upstream.received.at(-1)!.headers.cookie, undefined, 'a Cookie header of only ours is dropped whole');
  });

  test('cross-site calls with the cookie are refused and change nothing: header, Sec-Fetch-Site and Origin are all checked', async () => {
    const session = await signIn('carol');
    const enroll = (extra: Record<string, string>, drop: string[] = []) => {
      const headers: Record<string, string> = { host: `localhost:${rig.port}`, ...PAGE_HEADERS, origin: rig.origin, 'sec-fetch-site': 'same-origin', cookie: `mfa_setup=${session}`, ...extra };
      for (const name of drop) delete headers[name];
      return call(rig.port, 'POST', '/.mfa/setup/api/totp/enroll', headers);
    };
    const cases: [Reply, string][] = [
      [await enroll({}, ['x-mfa-setup']), 'setup calls must come from the setup page (the x-mfa-setup header is missing)'],
      [await enroll({ 'sec-fetch-site': 'cross-site' }), 'setup calls must come from the setup page (cross-site request)'],
      [await enroll({ 'sec-fetch-site': 'same-site' }), 'setup calls must come from the setup page (cross-site request)'],
      [await enroll({ origin: 'https://evil.example' }), 'setup calls must come from the setup page (Origin missing or not this gateway)'],
      [await enroll({ origin: 'null' }), 'setup calls must come from the setup page (Origin missing or not this gateway)'],
      [await enroll({}, ['origin']), 'setup calls must come from the setup page (Origin missing or not this gateway)'],
    ];
    for (const [reply, detail] of cases) assert.deepEqual(problemOf(reply), FORBIDDEN(detail));
    assert.deepEqual((await page('GET', 'api/factors', `mfa_setup=${session}`)).json(), { factors: [], recovery_codes_remaining: 0 }, 'nothing was enrolled');
    // Only the endpoints the page uses, and only with a live session.
    assert.equal((await page('POST', 'api/session/revoke-all', `mfa_setup=${session}`)).status, 404);
    assert.deepEqual(problemOf(await page('GET', 'api/factors', `mfa_setup=${'x'.repeat(43)}`)), SIGNED_OUT);
    assert.deepEqual(problemOf(await page('GET', 'api/factors', `mfa_setup=${session}; mfa_setup=${session}`)), SIGNED_OUT, 'two session cookies are ambiguous: refused');
  });

  test('invite links: printed by the CLI, single use (a second open is refused), refused unchanged when cross-site, 10 minutes', async () => {
    const link = await rig.invite('dave');
    const match = /^http:\/\/localhost:\d+\/\.mfa\/setup#invite=([A-Za-z0-9_-]{43})$/.exec(link);
    assert.ok(match, link);
    const token = match[1]!;
    secrets.push(token);
    // Login CSRF with an invite: a cross-site page cannot make the browser redeem it.
    assert.equal((await page('POST', 'invite', '', { token }, { origin: 'https://evil.example' })).status, 403);
    assert.equal((await call(rig.port, 'POST', '/.mfa/setup/invite', { 'content-type': 'application/json' }, JSON.stringify({ token }))).status, 403);
    const first = await page('POST', 'invite', '', { token });
    assert.equal(first.status, 200, first.text);
    assert.deepEqual(first.json(), { signed_in: true, signin_available: true, subject: 'dave', via: 'invite', expires_at: Math.floor((rig.clock() + 15 * 60_000) / 1000) });
    const session = cookieValue(first, 'mfa_setup')!;
    secrets.push(session);
    assert.match(cookieLine(first, 'mfa_setup')!, /; Path=\/\.mfa\/setup; Max-Age=900; HttpOnly; SameSite=Strict$/);
    const second = await page('POST', 'invite', '', { token });
    assert.deepEqual(problemOf(second), FORBIDDEN('this invite link was already used or has expired', 'ask your administrator for a new invite link'));
    assert.equal(cookieValue(second, 'mfa_setup'), undefined);
    // Thirty at once: one wins.
    const raced = await rig.invite('erin');
    const racedToken = raced.split('#invite=')[1]!;
    secrets.push(racedToken);
    const replies = await Promise.all(Array.from({ length: 30 }, () => page('POST', 'invite', '', { token: racedToken })));
    assert.deepEqual(replies.map((r) => r.status).sort(), [200, ...Array(29).fill(403)]);
    // And 10 minutes after it was printed (the CLI reads the wall clock), a link is dead.
    const late = (await rig.invite('frank')).split('#invite=')[1]!;
    secrets.push(late);
    const gatewayTime = rig.clock();
    rig.clock.set(Date.now() + 10 * 60_000 - 1);
    try {
      assert.equal((await page('POST', 'invite', '', { token: late, extra: 1 })).status, 400, 'a bad body uses nothing up');
      rig.clock.set(Date.now() + 10 * 60_000);
      assert.deepEqual(problemOf(await page('POST', 'invite', '', { token: late })), FORBIDDEN('this invite link was already used or has expired', 'ask your administrator for a new invite link'));
    } finally {
      rig.clock.set(gatewayTime);
    }
    for (const bad of [{}, { token: 7 }, { token, extra: 1 }]) assert.equal((await page('POST', 'invite', '', bad)).status, 400);
  });

  test('step-up for removing a factor still needs a second factor; sign-out ends the session; 15 minutes end it too', async () => {
    const session = await signIn('gina');
    const cookie = `mfa_setup=${session}`;
    const enrolled = await page('POST', 'api/totp/enroll', cookie);
    assert.equal(enrolled.status, 201, enrolled.text);
    const { factor_id: factorId, secret } = enrolled.json<{ factor_id: string; secret: string }>();
    secrets.push(secret);
    const confirmed = await page('POST', 'api/totp/confirm', cookie, { factor_id: factorId, code: oathTotp(secret, rig.clock()) });
    assert.equal(confirmed.status, 200);
    assert.equal(confirmed.json<{ recovery_codes: string[] }>().recovery_codes.length, 10);
    secrets.push(...confirmed.json<{ recovery_codes: string[] }>().recovery_codes);

    const bare = await page('DELETE', `api/factors/${factorId}`, cookie);
    assert.equal(bare.status, 401);
    assert.equal(problemOf(bare).code, 'step_up_required');
    rig.clock.advanceStep();
    // "Confirm it is you" puts the MFA session in an HttpOnly cookie; the page only learns until when.
    const verified = await page('POST', 'api/verify', cookie, undefined, { 'x-mfa-token': oathTotp(secret, rig.clock()) });
    assert.equal(verified.status, 200, verified.text);
    assert.deepEqual(verified.json(), { confirmed: true, valid_until: Math.floor((rig.clock() + 5 * 60_000) / 1000) });
    const stepUp = cookieValue(verified, 'mfa_setup_stepup')!;
    secrets.push(stepUp);
    assert.match(cookieLine(verified, 'mfa_setup_stepup')!, /; Path=\/\.mfa\/setup; Max-Age=300; HttpOnly; SameSite=Strict$/);
    assert.ok(!verified.text.includes(stepUp));
    const removed = await page('DELETE', `api/factors/${factorId}`, `${cookie}; mfa_setup_stepup=${stepUp}`);
    assert.equal(removed.status, 204, removed.text);

    const out = await page('POST', 'logout', cookie);
    assert.equal(out.status, 204);
    assert.deepEqual(out.headers['set-cookie'], ['mfa_setup=; Path=/.mfa/setup; Max-Age=0; HttpOnly; SameSite=Strict', 'mfa_setup_stepup=; Path=/.mfa/setup; Max-Age=0; HttpOnly; SameSite=Strict']);
    assert.deepEqual(problemOf(await page('GET', 'api/factors', cookie)), SIGNED_OUT);
    assert.deepEqual((await page('GET', 'session', cookie)).json(), { signed_in: false, signin_available: true });

    const later = await signIn('gina');
    rig.clock.advance(15 * 60_000);
    assert.deepEqual(problemOf(await page('GET', 'api/factors', `mfa_setup=${later}`)), SIGNED_OUT);
  });

  test('with sign-in off, login and callback answer a page saying so, and the session endpoint says invites only', async () => {
    rig.rewrite({ oidc: false });
    try {
      const reply = await get('/.mfa/setup/login');
      assert.equal(reply.status, 404);
      assert.match(reply.text, /Sign-in is not set up/);
      assert.deepEqual((await page('GET', 'session', '')).json(), { signed_in: false, signin_available: false });
    } finally {
      rig.rewrite({});
    }
  });

  test('no token, code, state, cookie or secret of any of the above reached the log', () => {
    const text = rig.log.text();
    assert.ok(secrets.length > 20);
    assert.equal(secretsIn(text, secrets).length, 0, 'a secret reached the log');
    assert.ok(rig.log.events().some((e) => e.event === 'setup_signed_in' && e.via === 'oidc'));
  });
});
