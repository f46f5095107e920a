import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CADDY, missingBinary, OATHTOOL } from '../../support/binaries.js';
import type { FakeClock } from '../../support/clock.js';
import { enrollTotpOverHttp } from '../../support/enroll.js';
import { call, rawExchange, statusesIn } from '../../support/http.js';
import { oathTotp, wrongTotp } from '../../support/otp.js';
import { token } from '../../support/tokens.js';
import type { ReceivedRequest, Upstream } from '../../support/upstream.js';
import { startProxyStack, type ProxyLaunch, type ProxyStack } from './stack.js';
import { assertProblem, identityNames, INVALID_CODE_CHALLENGE, MFA_CHALLENGE } from '../support.js';

// dist/test/doors/forward-auth/ → repository root: the test runs the shipped example, not a copy of it.
const EXAMPLE = fileURLToPath(new URL('../../../../config/examples/Caddyfile', import.meta.url));

const ROUTES = `routes:
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: search, match: { path_prefix: /search/ }, upstream: app, policy: public, rate_limit: { requests: 2, per: 1m } }
  - { name: profile, match: { path_prefix: /profile/ }, upstream: app, policy: bearer }
  - { name: admin, match: { path_prefix: /admin/ }, upstream: app, policy: deny }
  - { name: orders-read, match: { path_prefix: /orders/, methods: [GET] }, upstream: app, policy: bearer, scopes: [orders:read] }
  - { name: orders-write, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: payments, match: { path_prefix: /payments/, methods: [POST] }, upstream: app, policy: step_up, max_age: 5m }
default: deny
authz: { trusted_proxies: [127.0.0.1/32] }
`;

const skip = missingBinary(CADDY, 'caddy') ?? missingBinary(OATHTOOL, 'oathtool');

/**
 * The shipped example with its site address and upstreams pointed at this test's servers, behind
 * global options that keep Caddy on loopback, over plain HTTP, without an admin endpoint.
 */
function exampleFor(listenPort: number, gatewayPort: number, backendPort: number): string {
  const replacements: [string, string, number][] = [
    // Any Host: the rawExchange tests send api.example.com, call() sends 127.0.0.1:<port>.
    ['\napi.example.com {\n', `\nhttp://:${listenPort} {\n`, 1],
    ['reverse_proxy 127.0.0.1:8080 {', `reverse_proxy 127.0.0.1:${gatewayPort} {`, 2],
    ['reverse_proxy 127.0.0.1:9000\n', `reverse_proxy 127.0.0.1:${backendPort}\n`, 1],
  ];
  let text = readFileSync(EXAMPLE, 'utf8');
  for (const [from, to, count] of replacements) {
    assert.equal(text.split(from).length, count + 1, `the example must contain "${from.trim()}" exactly ${count} time(s)`);
    text = text.replaceAll(from, to);
  }
  assert.doesNotMatch(text, /^\{/m, 'the example has no global options block of its own');
  const global = `{
	admin off
	auto_https off
	default_bind 127.0.0.1
	grace_period 1s
}
`;
  return global + text;
}

/** Every header the backend received, for "no placeholder was left in a value" assertions. */
function headerPairs(got: ReceivedRequest): [string, string][] {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < got.rawHeaders.length; i += 2) pairs.push([got.rawHeaders[i]!.toLowerCase(), got.rawHeaders[i + 1]!]);
  return pairs;
}

function assertNoPlaceholders(got: ReceivedRequest): void {
  for (const [name, value] of headerPairs(got)) assert.doesNotMatch(value, /\{http\./, `${name}: ${value} is an unexpanded Caddy placeholder`);
}

/** Caddy running the shipped example (listen and upstream addresses substituted) in front of the gateway and backend. */
const CADDY_LAUNCH: ProxyLaunch = {
  name: 'caddy',
  startTimeoutMs: 10_000,
  start(ports, workspace) {
    const dir = join(workspace, 'caddy');
    mkdirSync(dir, { recursive: true });
    const config = join(dir, 'Caddyfile');
    writeFileSync(config, exampleFor(ports.listen, ports.gateway, ports.upstream));
    // Caddy keeps its data (certificates, autosave.json) under HOME / XDG dirs: the temp dir, not the system's.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
    let output = '';
    const caddy = spawn(CADDY, ['run', '--config', config, '--adapter', 'caddyfile'], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    caddy.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    caddy.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    return { process: caddy, output: () => output };
  },
};

const startStack = (): Promise<ProxyStack> => startProxyStack(ROUTES, CADDY_LAUNCH);

describe('Caddy in front of the gateway (config/examples/Caddyfile)', { skip }, () => {
  let stack: ProxyStack | undefined;
  let upstream: Upstream;
  let clock: FakeClock;
  let port: number;

  before(async () => {
    stack = await startStack();
    ({ upstream, clock, port } = stack);
  });

  after(() => stack?.stop());

  const forwarded = () => upstream.received.length;

  test('public route: forwarded with no identity headers; spoofed identity, credentials and X-Forwarded-* never reach the backend', async () => {
    const before = forwarded();
    const reply = await call(port, 'GET', '/public/a%20b?x=1', {
      'x-auth-subject': 'mallory',
      'X-Auth-MFA': 'totp',
      'x-auth-mfa-time': '1',
      x_auth_subject: 'mallory',
      'x.auth.subject': 'mallory',
      'x-auth_scopes': 'admin',
      'x-mfa-token': '123456',
      'x-session-token': 'stolen-session-token',
      'x-original-url': '/admin',
      'x-request-id': 'chosen-by-the-client',
      'x-forwarded-for': '10.9.9.9',
      'x-forwarded-uri': '/admin/x',
      forwarded: 'for=10.9.9.9',
    });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(forwarded(), before + 1);
    const got = upstream.received.at(-1)!;
    assert.equal(got.url, '/public/a%20b?x=1');
    assert.deepEqual(identityNames(got.headers), [], 'the gateway set no identity on a public route, so none arrives');
    assertNoPlaceholders(got);
    const names = upstream.headerNames(got);
    for (const name of ['x-mfa-token', 'x-session-token', 'x-original-url', 'x-forwarded-uri', 'x-forwarded-method', 'forwarded']) {
      assert.ok(!names.includes(name), `${name} must not reach the backend`);
    }
    assert.equal(got.headers['x-forwarded-for'], '127.0.0.1', "Caddy's own view of the client, not the client's claim");
    assert.match(String(got.headers['x-request-id']), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, "Caddy's {http.request.uuid}, carried by the gateway");
    assert.equal(reply.headers['x-request-id'], got.headers['x-request-id']);
    assert.equal(reply.headers['x-session-token'], undefined);
  });

  test('bearer route: 401 problem with one WWW-Authenticate, 403 on a missing scope, 200 with exactly the identity the gateway set', async () => {
    const before = forwarded();
    const missing = await call(port, 'GET', '/orders/7', { 'x-auth-subject': 'alice' });
    assertProblem(missing, 401, 'invalid_token', 'a bearer token is required');
    assert.equal(missing.headers['www-authenticate'], 'Bearer error="invalid_token", error_description="a bearer token is required"');
    assert.match(String(missing.headers['x-request-id']), /^[0-9a-f-]{36}$/);

    const narrow = await token('alice', { scopes: ['profile'], now: clock() });
    const scope = await call(port, 'GET', '/orders/7', { authorization: `Bearer ${narrow}` });
    assertProblem(scope, 403, 'insufficient_scope', 'the token lacks a scope this route requires');
    assert.equal(scope.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="orders:read", error_description="the token lacks a scope this route requires"');
    assert.equal(forwarded(), before, 'nothing reaches the backend on a refusal');

    const jwt = await token('alice', { scopes: ['orders:read', 'profile'], now: clock() });
    const ok = await call(port, 'GET', '/orders/7', { authorization: `Bearer ${jwt}`, 'x-auth-subject': 'root', 'x-auth-scopes': 'admin', 'x-auth-mfa-time': '1' });
    assert.equal(ok.status, 200, ok.text);
    const got = upstream.received.at(-1)!;
    assert.deepEqual(identityNames(got.headers).sort(), ['x-auth-mfa', 'x-auth-scopes', 'x-auth-subject']);
    assert.equal(got.headers['x-auth-subject'], 'alice');
    assert.equal(got.headers['x-auth-scopes'], 'orders:read profile');
    assert.equal(got.headers['x-auth-mfa'], 'none');
    // No second factor on this request: the gateway sends no X-Auth-MFA-Time, so none may arrive (2.6's copy_headers sent the placeholder).
    assert.equal(got.headers['x-auth-mfa-time'], undefined);
    assert.equal(got.headers.authorization, `Bearer ${jwt}`);
    assertNoPlaceholders(got);
  });

  test('a client cannot strip the identity by naming it in Connection (hop-by-hop)', async () => {
    const jwt = await token('alice', { scopes: ['orders:read'], now: clock() });
    const raw = await rawExchange(port, `GET /orders/8 HTTP/1.1\r\nHost: api.example.com\r\nAuthorization: Bearer ${jwt}\r\nConnection: X-Auth-Subject, X-Auth-MFA, X-Request-Id, close\r\n\r\n`);
    assert.deepEqual(statusesIn(raw), [200]);
    const got = upstream.received.at(-1)!;
    assert.equal(got.url, '/orders/8');
    assert.equal(got.headers['x-auth-subject'], 'alice');
    assert.equal(got.headers['x-auth-mfa'], 'none');
    assert.match(String(got.headers['x-request-id']), /^[0-9a-f-]{36}$/);
  });

  test('a subject that looks like a Caddy placeholder reaches the backend verbatim, not expanded', async () => {
    const subject = '{http.request.header.Authorization}';
    const jwt = await token(subject, { now: clock() });
    const ok = await call(port, 'GET', '/profile/me', { authorization: `Bearer ${jwt}` });
    assert.equal(ok.status, 200, ok.text);
    const got = upstream.received.at(-1)!;
    assert.equal(got.headers['x-auth-subject'], subject);
    // The gateway answered an empty X-Auth-Scopes (no scopes): Caddy copies only values, so none arrives.
    assert.deepEqual(identityNames(got.headers).sort(), ['x-auth-mfa', 'x-auth-subject']);
  });

  test('mfa: challenge, code accepted with the session returned to the client, session reused, step-up challenge', async () => {
    const jwt = await token('dana', { scopes: ['orders:read'], now: clock() });
    // Enrolment goes through Caddy's /.mfa/ handle to the gateway's own endpoints.
    const { secret } = await enrollTotpOverHttp(port, jwt, clock);
    const before = forwarded();

    const challenged = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, '{"qty":1}');
    assertProblem(challenged, 401, 'mfa_required', 'a second factor is required for this route');
    assert.equal(challenged.headers['www-authenticate'], MFA_CHALLENGE);
    assert.equal(forwarded(), before);

    const verifiedAt = Math.floor(clock() / 1000);
    const code = oathTotp(secret, clock());
    const withCode = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}`, 'content-type': 'application/json', 'x-mfa-token': code }, '{"qty":2}');
    assert.equal(withCode.status, 200, withCode.text);
    const session = String(withCode.headers['x-session-token']);
    assert.ok(session.length >= 32, 'the session token is returned to the client');
    assert.equal(withCode.headers['x-session-expires'], String(verifiedAt + 43200));
    let got = upstream.received.at(-1)!;
    assert.equal(got.method, 'POST');
    assert.equal(got.body.toString(), '{"qty":2}', 'the body reaches the backend intact (the gateway got a GET without it)');
    assert.equal(got.headers['x-auth-subject'], 'dana');
    assert.equal(got.headers['x-auth-scopes'], 'orders:read');
    assert.equal(got.headers['x-auth-mfa'], 'totp');
    assert.equal(got.headers['x-auth-mfa-time'], String(verifiedAt));
    for (const name of ['x-mfa-token', 'x-session-token', 'x-session-expires']) assert.ok(!upstream.headerNames(got).includes(name), `${name} must not reach the backend`);
    for (const [name, value] of headerPairs(got)) assert.ok(!value.includes(code) && !value.includes(session), `${name} carries a credential`);

    clock.advance(60_000);
    const reused = await call(port, 'DELETE', '/orders/2', { authorization: `Bearer ${jwt}`, 'x-session-token': session });
    assert.equal(reused.status, 200, reused.text);
    assert.equal(reused.headers['x-session-token'], undefined, 'no new session for a reused one');
    got = upstream.received.at(-1)!;
    assert.equal(got.url, '/orders/2');
    assert.equal(got.headers['x-auth-mfa-time'], String(verifiedAt));
    assert.ok(!upstream.headerNames(got).includes('x-session-token'));

    clock.advance(5 * 60_000);
    const stale = await call(port, 'POST', '/payments/1', { authorization: `Bearer ${jwt}`, 'x-session-token': session });
    assertProblem(stale, 401, 'step_up_required', 'a fresh second factor is required for this operation');
    assert.equal(stale.headers['www-authenticate'], 'Bearer error="insufficient_user_authentication", error_description="a fresh second factor is required for this operation", max_age=300');
  });

  test('deny: a closed route is 403 forbidden and an unlisted one refused, nothing forwarded', async () => {
    const before = forwarded();
    const jwt = await token('alice', { scopes: ['orders:read'], now: clock() });
    const closed = await call(port, 'GET', '/admin/users', { authorization: `Bearer ${jwt}` });
    assertProblem(closed, 403, 'forbidden', 'this route is closed by policy');
    const unlisted = await call(port, 'GET', '/elsewhere', { authorization: `Bearer ${jwt}` });
    assert.ok(unlisted.status >= 400 && unlisted.status < 500, unlisted.text);
    assert.equal(unlisted.headers['content-type'], 'application/problem+json');
    assert.equal(forwarded(), before);
  });

  test('lockout: 429 with Retry-After and the problem body reach the client through Caddy', async () => {
    const jwt = await token('erin', { now: clock() });
    const { secret } = await enrollTotpOverHttp(port, jwt, clock);
    const before = forwarded();
    for (let i = 0; i < 3; i++) {
      const wrong = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}`, 'x-mfa-token': wrongTotp(secret, clock()) });
      assertProblem(wrong, 401, 'mfa_invalid', 'the second factor was not accepted');
      assert.equal(wrong.headers['www-authenticate'], INVALID_CODE_CHALLENGE);
    }
    const locked = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathTotp(secret, clock()) });
    assertProblem(locked, 429, 'mfa_locked', 'too many failed second-factor attempts; try again later');
    assert.equal(locked.headers['retry-after'], '30');
    assert.equal(locked.headers['www-authenticate'], undefined);
    assert.equal(forwarded(), before);
  });

  test('rate limit: RateLimit headers on allowed answers, then 429 with Retry-After, RateLimit, RateLimit-Policy and the body', async () => {
    const before = forwarded();
    const first = await call(port, 'GET', '/search/a');
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers['ratelimit-policy'], '"search";q=2;w=60');
    assert.equal(first.headers['ratelimit'], '"search";r=1;t=60');
    assert.ok(!upstream.headerNames(upstream.received.at(-1)!).includes('ratelimit'), 'the quota is for the client');
    clock.advance(20_000);
    const second = await call(port, 'GET', '/search/b');
    assert.equal(second.headers['ratelimit'], '"search";r=0;t=40');
    assert.equal(forwarded(), before + 2);

    clock.advance(10_000);
    const refused = await call(port, 'GET', '/search/c');
    assertProblem(refused, 429, 'rate_limited', "this route's request quota is used up; retry after the time given");
    assert.equal(refused.headers['retry-after'], '30');
    assert.equal(refused.headers['ratelimit'], '"search";r=0;t=30');
    assert.equal(refused.headers['ratelimit-policy'], '"search";q=2;w=60');
    assert.equal(forwarded(), before + 2, 'the refused request reached no backend');

    // Routes without a limit carry no RateLimit fields.
    const plain = await call(port, 'GET', '/public/x');
    assert.equal(plain.headers['ratelimit'], undefined);
    assert.equal(plain.headers['ratelimit-policy'], undefined);
  });

  test('path tricks: Caddy sends the raw target to the gateway, which answers 400 with its body', async () => {
    const before = forwarded();
    for (const path of ['/public/%2e%2e/admin', '/public/%2e%2e/orders/1', '/public/..%2forders/1', '/public/../admin/x', '/public//x', '/public/a;b', '/public/%2Fx', '/public/%252e%252e/admin/x', '/public/%EF%BC%8E%EF%BC%8E/admin/x']) {
      const raw = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n`);
      assert.deepEqual(statusesIn(raw), [400], path);
      assert.match(raw, /\r\nContent-Type: application\/problem\+json\r\n/, path);
      assert.match(raw, /"code":"invalid_request"/, path);
    }
    assert.equal(forwarded(), before);
  });

  test('an escaped unreserved character is decided as the backend reads it: /%6Frders/7 meets the bearer rule on /orders/', async () => {
    const before = forwarded();
    const raw = await rawExchange(port, 'GET /%6Frders/7 HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statusesIn(raw), [401]);
    assert.match(raw, /"code":"invalid_token"/);
    assert.equal(forwarded(), before);
  });

  test('clients cannot reach the forward-auth endpoint through Caddy, however the path is spelled', async () => {
    for (const path of ['/.mfa/authz/forward-auth', '/.mfa/authz/auth-request', '/.MFA/Authz/forward-auth', '/.mfa/%61uthz/forward-auth', '/.mfa//authz/forward-auth', '/.mfa/x/../authz/forward-auth', '/.mfa/authz%2fforward-auth']) {
      const raw = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: api.example.com\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: /public/x\r\nConnection: close\r\n\r\n`);
      assert.deepEqual(statusesIn(raw), [404], path);
    }
  });

  test('gateway down: Caddy fails closed with a 502 problem, nothing forwarded', async () => {
    // A stack of its own: stopping the shared gateway would break every test that ran after this one.
    const own = await startStack();
    try {
      await own.gateway.stop();
      const before = own.upstream.received.length;
      for (const [method, path] of [['GET', '/public/x'], ['POST', '/orders/1']] as const) {
        const reply = await call(own.port, method, path, { 'x-auth-subject': 'mallory' });
        assertProblem(reply, 502, 'upstream_unavailable', 'the MFA gateway did not answer');
      }
      assert.equal(own.upstream.received.length, before);
    } finally {
      await own.stop();
    }
  });
});
