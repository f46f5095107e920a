import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missingBinary, NGINX, OATHTOOL } from '../../support/binaries.js';
import type { FakeClock } from '../../support/clock.js';
import { enrollTotpOverHttp } from '../../support/enroll.js';
import { call, rawExchange, statusesIn } from '../../support/http.js';
import { sampleValue } from '../../support/metrics.js';
import { oathTotp, wrongTotp } from '../../support/otp.js';
import { token } from '../../support/tokens.js';
import type { Upstream } from '../../support/upstream.js';
import { startProxyStack, type ProxyLaunch, type ProxyStack } from './stack.js';
import { assertProblem, INVALID_CODE_CHALLENGE, MFA_CHALLENGE } from '../support.js';

// dist/test/authz/ → repository root: the test runs the shipped example, not a copy of it.
const EXAMPLE = fileURLToPath(new URL('../../../../config/examples/nginx.conf', import.meta.url));

const ROUTES = `routes:
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: search, match: { path_prefix: /search/ }, upstream: app, policy: public, rate_limit: { requests: 2, per: 1m } }
  - { name: orders-read, match: { path_prefix: /orders/, methods: [GET] }, upstream: app, policy: bearer, scopes: [orders:read] }
  - { name: orders-write, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: payments, match: { path_prefix: /payments/, methods: [POST] }, upstream: app, policy: step_up, max_age: 5m }
default: deny
authz: { trusted_proxies: [127.0.0.1/32] }
`;

const skip = missingBinary(NGINX, 'nginx') ?? missingBinary(OATHTOOL, 'oathtool');

/** The shipped example with its listen and upstream addresses, and its cache folder, pointed at this test's own. */
function exampleFor(listenPort: number, gatewayPort: number, backendPort: number, dir: string): string {
  const replacements: [string, string][] = [
    ['listen 80;', `listen 127.0.0.1:${listenPort};`],
    ['server 127.0.0.1:8080;', `server 127.0.0.1:${gatewayPort};`],
    ['server 127.0.0.1:9000;', `server 127.0.0.1:${backendPort};`],
    ['/dev/shm/nginx-mfa-authz', join(dir, 'authz-cache')],
  ];
  let text = readFileSync(EXAMPLE, 'utf8');
  for (const [from, to] of replacements) {
    assert.equal(text.split(from).length, 2, `the example must contain "${from}" exactly once`);
    text = text.replace(from, to);
  }
  return text;
}

function mainConfig(dir: string): string {
  return `daemon off;
master_process off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 128; }
http {
    access_log off;
    client_body_temp_path ${dir}/tmp/body;
    proxy_temp_path ${dir}/tmp/proxy;
    fastcgi_temp_path ${dir}/tmp/fastcgi;
    uwsgi_temp_path ${dir}/tmp/uwsgi;
    scgi_temp_path ${dir}/tmp/scgi;
    include ${dir}/mfa-gateway.conf;
}
`;
}

/** nginx running the shipped example (listen and upstream addresses substituted) in front of the gateway and backend. */
const NGINX_LAUNCH: ProxyLaunch = {
  name: 'nginx',
  startTimeoutMs: 5000,
  start(ports, workspace) {
    const dir = join(workspace, 'nginx');
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    writeFileSync(join(dir, 'mfa-gateway.conf'), exampleFor(ports.listen, ports.gateway, ports.upstream, dir));
    writeFileSync(join(dir, 'nginx.conf'), mainConfig(dir));
    let stderr = '';
    const process = spawn(NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    process.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    return { process, output: () => stderr + readFileSync(join(dir, 'error.log'), 'utf8') };
  },
};

const startStack = (): Promise<ProxyStack> => startProxyStack(ROUTES, NGINX_LAUNCH);

describe('nginx auth_request in front of the gateway (config/examples/nginx.conf)', { skip }, () => {
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

  test('public route: forwarded; spoofed identity and credentials never reach the backend', async () => {
    const before = forwarded();
    const reply = await call(port, 'GET', '/public/a%20b?x=1', {
      'x-auth-subject': 'mallory',
      'X-Auth-MFA': 'totp',
      x_auth_subject: 'mallory',
      'x.auth.subject': 'mallory',
      'x-mfa-token': '123456',
      'x-session-token': 'stolen-session-token',
      'x-original-url': '/admin',
    });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(forwarded(), before + 1);
    const got = upstream.received.at(-1)!;
    assert.equal(got.url, '/public/a%20b?x=1');
    const names = upstream.headerNames(got);
    for (const name of ['x-auth-subject', 'x-auth-mfa', 'x_auth_subject', 'x.auth.subject', 'x-mfa-token', 'x-session-token', 'x-original-url']) {
      assert.ok(!names.includes(name), `${name} must not reach the backend`);
    }
    assert.match(String(got.headers['x-request-id']), /^[0-9a-f]{32}$/, 'nginx $request_id, carried by the gateway');
    assert.equal(reply.headers['x-request-id'], got.headers['x-request-id']);
    assert.equal(reply.headers['x-session-token'], undefined);
  });

  test('bearer route: 401 problem with one WWW-Authenticate, 403 on a missing scope, 200 with identity', async () => {
    const before = forwarded();
    const missing = await call(port, 'GET', '/orders/7');
    assertProblem(missing, 401, 'invalid_token', 'a bearer token is required');
    assert.equal(missing.headers['www-authenticate'], 'Bearer error="invalid_token", error_description="a bearer token is required"');
    assert.match(String(missing.headers['x-request-id']), /^[0-9a-f]{32}$/);

    const narrow = await token('alice', { scopes: ['profile'], now: clock() });
    const scope = await call(port, 'GET', '/orders/7', { authorization: `Bearer ${narrow}` });
    assertProblem(scope, 403, 'insufficient_scope', 'the token lacks a scope this route requires');
    assert.equal(scope.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="orders:read", error_description="the token lacks a scope this route requires"');
    assert.equal(forwarded(), before, 'nothing reaches the backend on a refusal');

    const jwt = await token('alice', { scopes: ['orders:read', 'profile'], now: clock() });
    const ok = await call(port, 'GET', '/orders/7', { authorization: `Bearer ${jwt}`, 'x-auth-subject': 'root', 'x-auth-scopes': 'admin' });
    assert.equal(ok.status, 200, ok.text);
    const got = upstream.received.at(-1)!;
    assert.equal(got.headers['x-auth-subject'], 'alice');
    assert.equal(got.headers['x-auth-scopes'], 'orders:read profile');
    assert.equal(got.headers['x-auth-mfa'], 'none');
    assert.equal(got.headers['x-auth-mfa-time'], undefined);
    assert.equal(got.headers.authorization, `Bearer ${jwt}`);
  });

  test('mfa: challenge, code accepted with a session returned, session reused, step-up challenge', async () => {
    const jwt = await token('dana', { scopes: ['orders:read'], now: clock() });
    // Enrolment goes through nginx's /.mfa/ location to the gateway's own endpoints.
    const { secret } = await enrollTotpOverHttp(port, jwt, clock);
    const before = forwarded();

    const challenged = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, '{"qty":1}');
    assertProblem(challenged, 401, 'mfa_required', 'a second factor is required for this route');
    assert.equal(challenged.headers['www-authenticate'], MFA_CHALLENGE);
    assert.equal(forwarded(), before);

    const verifiedAt = Math.floor(clock() / 1000);
    const withCode = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}`, 'content-type': 'application/json', 'x-mfa-token': oathTotp(secret, clock()) }, '{"qty":2}');
    assert.equal(withCode.status, 200, withCode.text);
    const session = String(withCode.headers['x-session-token']);
    assert.ok(session.length >= 32, 'the session token is returned to the client');
    assert.equal(withCode.headers['x-session-expires'], String(verifiedAt + 43200));
    let got = upstream.received.at(-1)!;
    assert.equal(got.method, 'POST');
    assert.equal(got.body.toString(), '{"qty":2}', 'the body reaches the backend intact');
    assert.equal(got.headers['x-auth-subject'], 'dana');
    assert.equal(got.headers['x-auth-mfa'], 'totp');
    assert.equal(got.headers['x-auth-mfa-time'], String(verifiedAt));
    for (const name of ['x-mfa-token', 'x-session-token', 'x-session-expires']) assert.ok(!upstream.headerNames(got).includes(name), `${name} must not reach the backend`);

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

  describe('held allows (proxy_cache on /_mfa_auth, X-Accel-Expires from the gateway)', () => {
    /** How many answers the gateway gave for the orders-write route (mfa) with `status`. */
    const decided = async (status: number): Promise<number> =>
      sampleValue(await stack!.gateway.metrics.registry.metrics(), `mfa_gateway_requests_total{route="orders-write",policy="mfa",status="${status}"}`) ?? 0;

    /** A user with a session opened through nginx: the bearer token and the session token. */
    async function withSession(subject: string): Promise<{ jwt: string; session: string; secret: string }> {
      const jwt = await token(subject, { scopes: ['orders:read'], now: clock() });
      const { secret } = await enrollTotpOverHttp(port, jwt, clock);
      const opened = await call(port, 'POST', '/orders/0', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathTotp(secret, clock()) });
      assert.equal(opened.status, 200, opened.text);
      return { jwt, session: String(opened.headers['x-session-token']), secret };
    }

    test('repeats within the hold are answered by nginx, each with its own request id; other credentials are asked about', async () => {
      const { jwt, session } = await withSession('gina');
      const credentials = { authorization: `Bearer ${jwt}`, 'x-session-token': session };
      const before = forwarded();
      const askedBefore = await decided(200);
      const replies: Awaited<ReturnType<typeof call>>[] = [];
      for (let i = 0; i < 3; i++) replies.push(await call(port, 'DELETE', '/orders/5', credentials));
      for (const reply of replies) assert.equal(reply.status, 200, reply.text);
      assert.equal(await decided(200), askedBefore + 1, 'the gateway decided the first request only');
      assert.equal(forwarded(), before + 3, 'every request reached the backend');
      const received = upstream.received.slice(-3);
      const ids = received.map((got) => String(got.headers['x-request-id']));
      assert.equal(new Set(ids).size, 3, 'each request keeps its own id');
      received.forEach((got, i) => {
        assert.equal(got.method, 'DELETE');
        assert.equal(got.url, '/orders/5');
        assert.equal(got.headers['x-auth-subject'], 'gina');
        assert.equal(got.headers['x-auth-mfa'], 'totp');
        assert.match(ids[i]!, /^[0-9a-f]{32}$/);
        assert.equal(replies[i]!.headers['x-request-id'], ids[i]);
        assert.ok(!upstream.headerNames(got).includes('x-session-token'));
      });

      // A refusal is never held: the same refused request is decided each time.
      const refusedBefore = await decided(401);
      for (let i = 0; i < 2; i++) assertProblem(await call(port, 'DELETE', '/orders/5', { authorization: `Bearer ${jwt}` }), 401, 'mfa_required');
      assert.equal(await decided(401), refusedBefore + 2);

      // Another target, another client's credentials: never the held answer.
      assert.equal((await call(port, 'DELETE', '/orders/6', credentials)).status, 200);
      assert.equal(await decided(200), askedBefore + 2);
      const other = await withSession('hugo');
      const hugo = await call(port, 'DELETE', '/orders/5', { authorization: `Bearer ${other.jwt}`, 'x-session-token': other.session });
      assert.equal(hugo.status, 200);
      assert.equal(upstream.received.at(-1)!.headers['x-auth-subject'], 'hugo');
    });

    test('a revoked session stops passing within 2 s of the answer nginx held', async () => {
      const { jwt, session } = await withSession('iris');
      const credentials = { authorization: `Bearer ${jwt}`, 'x-session-token': session };
      const askedAt = Date.now();
      assert.equal((await call(port, 'DELETE', '/orders/7', credentials)).status, 200);
      const revoked = await call(port, 'POST', '/.mfa/session/revoke', credentials);
      assert.equal(revoked.status, 204, revoked.text);
      const held = await call(port, 'DELETE', '/orders/7', credentials);
      // nginx holds an answer for more than 1 s: this one came from it (the gateway would refuse).
      if (Date.now() - askedAt < 900) assert.equal(held.status, 200, 'answered from the held allow');
      let refused = held;
      while (refused.status === 200) {
        assert.ok(Date.now() - askedAt <= 2_150, `still allowed ${Date.now() - askedAt} ms after the held answer was decided`);
        await new Promise((resolve) => setTimeout(resolve, 25));
        refused = await call(port, 'DELETE', '/orders/7', credentials);
      }
      assertProblem(refused, 401, 'session_invalid');
      assertProblem(await call(port, 'DELETE', '/orders/7', credentials), 401, 'session_invalid');
    });

    test('a request with a code, or with credentials of another shape, is decided by the gateway and never held', async () => {
      const { jwt, session, secret } = await withSession('jack');
      const credentials = { authorization: `Bearer ${jwt}`, 'x-session-token': session };
      assert.equal((await call(port, 'DELETE', '/orders/8', credentials)).status, 200);
      const asked = await decided(200);
      // A code beside the session: the session decides, but only the gateway may say so.
      for (let i = 1; i <= 2; i++) {
        assert.equal((await call(port, 'DELETE', '/orders/8', { ...credentials, 'x-mfa-token': wrongTotp(secret, clock()) })).status, 200);
        assert.equal(await decided(200), asked + i);
      }
      // "Bearer" + "<jwt> <session>" joins to the same text as the held key's "Bearer <jwt>" + "<session>".
      const before = forwarded();
      const shifted = await call(port, 'DELETE', '/orders/8', { authorization: 'Bearer', 'x-session-token': `${jwt} ${session}` });
      assertProblem(shifted, 431, 'header_too_large', 'the X-Session-Token header is too large');
      assert.equal(forwarded(), before, 'the shifted credentials reached no backend');
    });
  });

  test('lockout: 429 with Retry-After and the problem body reach the client through nginx', async () => {
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
    clock.advance(20_000);
    // The same request again: a rate-limited allow is never held, each one takes a token.
    const second = await call(port, 'GET', '/search/a');
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

  test('path tricks: nginx forwards the raw target to the gateway, which answers 400 with its body', async () => {
    const before = forwarded();
    for (const path of ['/public/%2e%2e/orders/1', '/public/..%2forders/1', '/public//x', '/public/a;b', '/public/%2Fx', '/public/%252e%252e/admin/x', '/public/%EF%BC%8E%EF%BC%8E/admin/x']) {
      const raw = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n`);
      assert.deepEqual(statusesIn(raw), [400], path);
      assert.match(raw, /\r\nContent-Type: application\/problem\+json\r\n/, path);
      assert.match(raw, /"code":"invalid_request"/, path);
    }
    assert.equal(forwarded(), before);
  });

  test('credential headers refused while the gateway reads nginx\'s call reach the client with their own status, not 502', async () => {
    const before = forwarded();
    const oversized = await call(port, 'GET', '/public/x', { 'x-session-token': 'a'.repeat(300) });
    assertProblem(oversized, 431, 'header_too_large', 'the X-Session-Token header is too large');
    const twice = await rawExchange(port, 'GET /public/x HTTP/1.1\r\nHost: api.example.com\r\nX-Session-Token: a\r\nX-Session-Token: b\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statusesIn(twice), [400]);
    assert.match(twice, /\r\nContent-Type: application\/problem\+json\r\n/);
    assert.match(twice, /"code":"invalid_request"/);
    assert.equal(forwarded(), before);
  });

  test('an escaped unreserved character is decided as the backend reads it: /%6Frders/7 meets the bearer rule on /orders/', async () => {
    const before = forwarded();
    const raw = await rawExchange(port, 'GET /%6Frders/7 HTTP/1.1\r\nHost: api.example.com\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statusesIn(raw), [401]);
    assert.match(raw, /"code":"invalid_token"/);
    assert.equal(forwarded(), before);
  });

  test('a Host that ends the authority early ("api.example.com?") cannot turn the decided path into "/"', async () => {
    const before = forwarded();
    const raw = await rawExchange(port, 'GET /admin/x HTTP/1.1\r\nHost: api.example.com?\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statusesIn(raw), [400]);
    assert.match(raw, /"code":"invalid_request"/);
    assert.equal(forwarded(), before, 'nothing reached the backend');
  });

  test('clients cannot reach the forward-auth endpoint through nginx', async () => {
    const reply = await call(port, 'GET', '/.mfa/authz/auth-request', { 'x-original-method': 'GET', 'x-original-url': '/public/x' });
    assert.equal(reply.status, 404);
  });

  test('gateway down: nginx fails closed with a 502 problem, nothing forwarded', async () => {
    // A stack of its own: stopping the shared gateway would break every test that ran after this one.
    const own = await startStack();
    try {
      await own.gateway.stop();
      const before = own.upstream.received.length;
      const reply = await call(own.port, 'GET', '/public/x');
      assertProblem(reply, 502, 'upstream_unavailable', 'the MFA gateway did not answer');
      assert.equal(own.upstream.received.length, before);
    } finally {
      await own.stop();
    }
  });
});
