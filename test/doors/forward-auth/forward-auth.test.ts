import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type Gateway } from '../../../src/server/gateway.js';
import { createLogger } from '../../../src/log/logger.js';
import { missingBinary, OATHTOOL } from '../../support/binaries.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../../support/clock.js';
import { enrollTotpOverHttp } from '../../support/enroll.js';
import { createWorkspace, policyHead, type Workspace } from '../../support/fixture.js';
import { call, rawExchange, statusesIn } from '../../support/http.js';
import { oathTotp, wrongTotp } from '../../support/otp.js';
import { token } from '../../support/tokens.js';
import { startUpstream, type Upstream } from '../../support/upstream.js';
import { assertProblem, identityNames, INVALID_CODE_CHALLENGE, MFA_CHALLENGE } from '../support.js';

const ROUTES = `routes:
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: hosted, match: { host: api.example.com, path_prefix: /hosted/ }, upstream: app, policy: public }
  - { name: search, match: { path_prefix: /search/ }, upstream: app, policy: public, rate_limit: { requests: 5, per: 1m } }
  - { name: orders-read, match: { path_prefix: /orders/, methods: [GET] }, upstream: app, policy: bearer, scopes: [orders:read] }
  - { name: orders-write, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: payments, match: { path_prefix: /payments/, methods: [POST] }, upstream: app, policy: step_up, max_age: 5m }
  - { name: admin, match: { path_prefix: /admin/ }, policy: deny }
default: deny
authz: { trusted_proxies: [127.0.0.1/32] }
`;

const AUTH_REQUEST = '/.mfa/authz/auth-request';
const FORWARD_AUTH = '/.mfa/authz/forward-auth';
const silent = createLogger({ level: 'silent' });

describe('forward-auth endpoints against a real gateway', () => {
  let upstream: Upstream;
  let ws: Workspace;
  let gateway: Gateway;
  let port: number;
  let clock: FakeClock;

  before(async () => {
    upstream = await startUpstream();
    ws = createWorkspace();
    ws.writePolicy(policyHead(ws, upstream.url) + ROUTES);
    clock = fakeClock(intoCurrentStep());
    gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false, admin: false, clock });
    port = gateway.address.port;
  });
  after(async () => {
    await gateway.stop();
    await upstream.close();
    ws.remove();
  });

  describe('auth-request (nginx)', () => {
    test('public route → 200, empty body, request id, no identity', async () => {
      const reply = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': 'http://api.example.com/public/a%20b?x=1', 'x-request-id': 'nginx-0123abcd' });
      assert.equal(reply.status, 200);
      assert.equal(reply.text, '');
      assert.equal(reply.headers['content-length'], '0');
      assert.equal(reply.headers['cache-control'], 'no-store');
      assert.equal(reply.headers['x-accel-expires'], undefined, 'nginx did not say it holds answers');
      assert.equal(reply.headers['x-request-id'], 'nginx-0123abcd');
      assert.deepEqual(identityNames(reply.headers), []);
      assert.equal(reply.headers['x-session-token'], undefined);
    });

    test('bearer route with the scope → 200 with identity headers', async () => {
      const jwt = await token('alice', { scopes: ['orders:read', 'profile'], now: clock() });
      const reply = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/orders/7', authorization: `Bearer ${jwt}` });
      assert.equal(reply.status, 200);
      assert.equal(reply.text, '');
      assert.equal(reply.headers['x-auth-subject'], 'alice');
      assert.equal(reply.headers['x-auth-scopes'], 'orders:read profile');
      assert.equal(reply.headers['x-auth-mfa'], 'none');
      assert.equal(reply.headers['x-auth-mfa-time'], undefined);
      assert.match(String(reply.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    });

    test('header names in any case: the proxy\'s headers are read and the credentials copied into the judged request', async () => {
      const jwt = await token('alice', { scopes: ['orders:read'], now: clock() });
      const raw = await rawExchange(port, `GET ${AUTH_REQUEST} HTTP/1.1\r\nHost: x\r\nx-ORIGINAL-method: GET\r\nX-Original-Url: /orders/7\r\nAUTHORIZATION: Bearer ${jwt}\r\nx-request-ID: nginx-case-1\r\nConnection: close\r\n\r\n`);
      assert.deepEqual(statusesIn(raw), [200]);
      assert.match(raw, /\r\nx-auth-subject: alice\r\n/i);
      assert.match(raw, /\r\nx-request-id: nginx-case-1\r\n/i);
    });

    test('no token → the proxy\'s 401 problem, plus its status and body in headers for nginx', async () => {
      const reply = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/orders/7', 'x-request-id': 'req-401' });
      assertProblem(reply, 401, 'invalid_token', 'a bearer token is required');
      assert.equal(reply.headers['www-authenticate'], 'Bearer error="invalid_token", error_description="a bearer token is required"');
      assert.equal(reply.headers['x-problem-status'], '401');
      assert.equal(reply.headers['x-problem-body'], reply.text);
      assert.deepEqual(reply.json(), {
        type: 'https://mfa-gateway.dev/problems/invalid_token',
        title: 'Invalid bearer token',
        status: 401,
        detail: 'a bearer token is required',
        code: 'invalid_token',
        request_id: 'req-401',
      });
      // The reverse proxy answers the very same request identically, except that a direct client
      // (not a trusted proxy) does not choose the request id.
      const direct = await call(port, 'GET', '/orders/7', { 'x-request-id': 'req-401' });
      assert.equal(direct.status, reply.status);
      const directId = direct.json<{ request_id: string }>().request_id;
      assert.match(directId, /^[0-9a-f-]{36}$/);
      assert.equal(direct.text.replace(directId, 'req-401'), reply.text);
      assert.equal(direct.headers['www-authenticate'], reply.headers['www-authenticate']);
    });

    test('credentials refused while the call itself is read → the same problem, with its status and body for nginx', async () => {
      const reply = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/public/x', 'x-session-token': 'a'.repeat(300) });
      assertProblem(reply, 431, 'header_too_large', 'the X-Session-Token header is too large');
      assert.equal(reply.headers['x-problem-status'], '431');
      assert.equal(reply.headers['x-problem-body'], reply.text);
      const twice = await rawExchange(port, `GET ${AUTH_REQUEST} HTTP/1.1\r\nHost: x\r\nX-Original-Method: GET\r\nX-Original-URL: /public/x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n`);
      assert.deepEqual(statusesIn(twice), [400]);
      assert.match(twice, /\r\nX-Problem-Status: 400\r\n/i);
      const traefik = await call(port, 'GET', FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/x', 'x-session-token': 'a'.repeat(300) });
      assertProblem(traefik, 431, 'header_too_large');
      assert.equal(traefik.headers['x-problem-status'], undefined, 'only nginx needs them');
    });

    test('missing scope → 403 insufficient_scope with the scope challenge', async () => {
      const jwt = await token('alice', { scopes: ['profile'], now: clock() });
      const reply = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/orders/7', authorization: `Bearer ${jwt}` });
      assertProblem(reply, 403, 'insufficient_scope');
      assert.equal(reply.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="orders:read", error_description="the token lacks a scope this route requires"');
      assert.equal(reply.headers['x-problem-status'], '403');
    });

    test('the original method decides, not the auth request\'s', async () => {
      const jwt = await token('nobody', { scopes: ['orders:read'], now: clock() });
      const reply = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'POST', 'x-original-url': '/orders/7', authorization: `Bearer ${jwt}` });
      assertProblem(reply, 403, 'mfa_not_enrolled');
    });

    test('host from an absolute URL, else from the Host header; deny and unmatched routes', async () => {
      const hosted = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': 'https://API.example.com./hosted/x' });
      assert.equal(hosted.status, 200);
      const originForm = await call(port, 'GET', AUTH_REQUEST, { host: 'api.example.com', 'x-original-method': 'GET', 'x-original-url': '/hosted/x' });
      assert.equal(originForm.status, 200);
      const otherHost = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': 'http://other.example.com/hosted/x' });
      assertProblem(otherHost, 404, 'route_not_found');
      assert.equal(otherHost.headers['x-problem-status'], '404');
      const denied = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/admin/users' });
      assertProblem(denied, 403, 'forbidden', 'this route is closed by policy');
    });

    test('missing or malformed original request → 400', async () => {
      const cases: [Record<string, string>, string][] = [
        [{ 'x-original-method': 'GET' }, 'X-Original-URL is required'],
        [{ 'x-original-url': '/public/x' }, 'X-Original-Method is required'],
        [{ 'x-original-method': '', 'x-original-url': '/public/x' }, 'X-Original-Method is required'],
        [{ 'x-original-method': 'get', 'x-original-url': '/public/x' }, 'the request method is not a valid token'],
        [{ 'x-original-method': 'GET', 'x-original-url': 'public/x' }, 'the request target must start with "/"'],
        [{ 'x-original-method': 'GET', 'x-original-url': 'ftp://api.example.com/public/x' }, 'an absolute-form target must be http or https with a valid host and no user information'],
        [{ 'x-original-method': 'GET', 'x-original-url': 'http://user@api.example.com/public/x' }, 'an absolute-form target must be http or https with a valid host and no user information'],
        [{ 'x-original-method': 'GET', 'x-original-url': 'http:///public/x' }, 'an absolute-form target must be http or https with a valid host and no user information'],
        [{ 'x-original-method': 'GET', 'x-original-url': 'http://a b/public/x' }, 'an absolute-form target must be http or https with a valid host and no user information'],
        [{ 'x-original-method': 'GET', 'x-original-url': 'http://api.example.com?/admin/x' }, 'the absolute-form target must have a "/" right after its authority'],
        [{ 'x-original-method': 'GET', 'x-original-url': 'http://api.example.com' }, 'the absolute-form target must have a "/" right after its authority'],
        [{ 'x-original-method': 'GET', 'x-original-url': '/admin/x', 'x-original-host': 'api.example.com?' }, 'the Host header is not a valid host[:port]'],
      ];
      for (const [headers, detail] of cases) {
        const reply = await call(port, 'GET', AUTH_REQUEST, headers);
        assertProblem(reply, 400, 'invalid_request', detail);
        assert.equal(reply.headers['x-problem-status'], '400', JSON.stringify(headers));
      }
      const twice = await rawExchange(port, `GET ${AUTH_REQUEST} HTTP/1.1\r\nHost: x\r\nX-Original-Method: GET\r\nX-Original-URL: /public/x\r\nX-Original-URL: /admin/x\r\n\r\n`);
      assert.deepEqual(statusesIn(twice), [400]);
      assert.match(twice, /"detail":"X-Original-URL must be sent once"/);
    });

    test('path tricks in X-Original-URL → 400 from the same canonical checks as the proxy, never 200', async () => {
      const tricks: [string, string][] = [
        ['/public/../admin/x', 'dot_segment'],
        ['/public/%2e%2e/admin/x', 'dot_segment'],
        ['/public/%2E%2e/admin/x', 'dot_segment'],
        ['http://api.example.com/public/..%2fadmin', 'encoded_slash'],
        ['/public/a%2fb', 'encoded_slash'],
        ['/public//admin', 'empty_segment'],
        ['/public/a;b', 'path_parameter'],
        ['/public/a%5cb', 'encoded_backslash'],
        ['/public/a\\b', 'backslash'],
        ['/public/x#frag', 'fragment'],
        ['/public/%00', 'nul'],
        ['/public/%c0%ae%c0%ae/admin', 'invalid_utf8'],
      ];
      for (const [url] of tricks) {
        const reply = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': url });
        assertProblem(reply, 400, 'invalid_request');
        assert.equal(reply.headers['x-problem-status'], '400', url);
      }
      const clean = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/public/ok' });
      assert.equal(clean.status, 200, 'a clean URL on the same route is allowed');
    });
  });

  describe('forward-auth (Traefik, Caddy)', () => {
    test('X-Forwarded-Method/-Proto/-Host/-Uri rebuild the request', async () => {
      const reply = await call(port, 'GET', FORWARD_AUTH, {
        'x-forwarded-method': 'GET',
        'x-forwarded-proto': 'https',
        'x-forwarded-host': 'api.example.com',
        'x-forwarded-uri': '/hosted/x?y=1',
        'x-forwarded-for': '203.0.113.7',
      });
      assert.equal(reply.status, 200);
      assert.equal(reply.text, '');
      const jwt = await token('bob', { scopes: ['orders:read'], now: clock() });
      const bearer = await call(port, 'GET', FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/orders/1', authorization: `Bearer ${jwt}` });
      assert.equal(bearer.status, 200);
      assert.equal(bearer.headers['x-auth-subject'], 'bob');
      assert.equal(bearer.headers['x-auth-scopes'], 'orders:read');
    });

    test('a forwarded host or URI that could move the decided path is refused, never decided as "/"', async () => {
      for (const [headers, detail] of [
        [{ 'x-forwarded-host': 'api.example.com?', 'x-forwarded-uri': '/admin/x' }, 'the Host header is not a valid host[:port]'],
        [{ 'x-forwarded-host': 'api.example.com/admin', 'x-forwarded-uri': '/x' }, 'the Host header is not a valid host[:port]'],
        [{ 'x-forwarded-uri': 'http://api.example.com?/admin/x' }, 'X-Forwarded-Uri must start with /'],
        [{ 'x-forwarded-uri': '//evil.example/admin/x' }, 'the path contains an empty segment ("//")'],
        [{ 'x-forwarded-uri': '/%61dmin/%252e%252e/x' }, 'the path contains a double-encoded ".", "/" or "\\" (%252E, %252F, %255C)'],
      ] as const) {
        const reply = await call(port, 'GET', FORWARD_AUTH, { 'x-forwarded-method': 'GET', ...headers });
        assertProblem(reply, 400, 'invalid_request', detail);
      }
    });

    test('Host falls back to the request\'s own Host (Caddy passes it through)', async () => {
      const reply = await call(port, 'GET', FORWARD_AUTH, { host: 'api.example.com', 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/hosted/y' });
      assert.equal(reply.status, 200);
    });

    test('deny → exactly the proxy\'s problem response, without the nginx headers', async () => {
      const jwt = await token('bob', { scopes: ['orders:read'], now: clock() });
      const reply = await call(port, 'GET', FORWARD_AUTH, { 'x-forwarded-method': 'DELETE', 'x-forwarded-uri': '/orders/1', authorization: `Bearer ${jwt}` });
      assertProblem(reply, 403, 'mfa_not_enrolled');
      assert.equal(reply.headers['x-problem-status'], undefined);
      assert.equal(reply.headers['x-problem-body'], undefined);
    });

    test('missing, repeated or malformed forwarded headers and path tricks → 400', async () => {
      const cases: [Record<string, string>, string | undefined][] = [
        [{ 'x-forwarded-method': 'GET' }, 'X-Forwarded-Uri is required'],
        [{ 'x-forwarded-uri': '/public/x' }, 'X-Forwarded-Method is required'],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': 'public/x' }, 'X-Forwarded-Uri must start with /'],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': 'http://api.example.com/public/x' }, 'X-Forwarded-Uri must start with /'],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/x', 'x-forwarded-proto': 'gopher' }, 'X-Forwarded-Proto from the trusted proxy must be a single http or https'],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/x', 'x-forwarded-host': 'evil@api.example.com' }, 'the Host header is not a valid host[:port]'],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/x', 'x-forwarded-for': 'not-an-ip' }, 'X-Forwarded-For from the trusted proxy is not a list of IP addresses'],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/../admin/x' }, undefined],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/%2e%2e/admin/x' }, undefined],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/%2Fadmin' }, undefined],
        [{ 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public//x' }, undefined],
      ];
      for (const [headers, detail] of cases) {
        const reply = await call(port, 'GET', FORWARD_AUTH, headers);
        assertProblem(reply, 400, 'invalid_request', detail);
      }
      const twice = await rawExchange(port, `GET ${FORWARD_AUTH} HTTP/1.1\r\nHost: x\r\nX-Forwarded-Method: GET\r\nX-Forwarded-Uri: /public/x\r\nX-Forwarded-Uri: /admin/x\r\n\r\n`);
      assert.deepEqual(statusesIn(twice), [400]);
      assert.match(twice, /"detail":"X-Forwarded-Uri must be sent once"/);
    });
  });

  describe('ext-authz (Envoy)', () => {
    test('own method + the path after ext-authz (and its query), Host from the request', async () => {
      const jwt = await token('carol', { scopes: ['orders:read'], now: clock() });
      const read = await call(port, 'GET', '/.mfa/authz/ext-authz/orders/9?expand=1', { authorization: `Bearer ${jwt}` });
      assert.equal(read.status, 200);
      assert.equal(read.headers['x-auth-subject'], 'carol');
      const write = await call(port, 'POST', '/.mfa/authz/ext-authz/orders/9', { authorization: `Bearer ${jwt}`, 'content-length': '0' });
      assertProblem(write, 403, 'mfa_not_enrolled');
      const hosted = await call(port, 'GET', '/.mfa/authz/ext-authz/hosted/z', { host: 'api.example.com' });
      assert.equal(hosted.status, 200);
      const root = await call(port, 'GET', '/.mfa/authz/ext-authz');
      assertProblem(root, 404, 'route_not_found');
    });

    test('path tricks after ext-authz → 400', async () => {
      for (const path of ['/.mfa/authz/ext-authz/public/../admin', '/.mfa/authz/ext-authz/public/%2e%2e/admin', '/.mfa/authz/ext-authz//admin']) {
        const raw = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        assert.deepEqual(statusesIn(raw), [400], path);
        assert.match(raw, /"code":"invalid_request"/, path);
      }
    });
  });

  test('unknown forward-auth endpoint → 404 not_found', async () => {
    const reply = await call(port, 'GET', '/.mfa/authz/nope', { 'x-original-method': 'GET', 'x-original-url': '/public/x' });
    assertProblem(reply, 404, 'not_found', 'no such forward-auth endpoint');
  });

  test('a peer outside authz.trusted_proxies gets 403 whatever it sends', async () => {
    const jwt = await token('alice', { scopes: ['orders:read'], now: clock() });
    const spoofs: [string, Record<string, string>][] = [
      [AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/public/x' }],
      [AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/orders/1', authorization: `Bearer ${jwt}` }],
      [FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/public/x' }],
      ['/.mfa/authz/ext-authz/public/x', {}],
    ];
    for (const [path, headers] of spoofs) {
      const reply = await call(port, 'GET', path, headers, undefined, { localAddress: '127.0.0.2' });
      assertProblem(reply, 403, 'forbidden', 'this endpoint answers trusted proxies only');
      assert.deepEqual(identityNames(reply.headers), []);
    }
    // The same requests from the trusted address are answered.
    const trusted = await call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'GET', 'x-original-url': '/public/x' }, undefined, { localAddress: '127.0.0.1' });
    assert.equal(trusted.status, 200);
  });

  describe('held answers: which allows nginx may keep (X-Accel-Expires)', { skip: missingBinary(OATHTOOL, 'oathtool') }, () => {
    /** The hold an answer grants: X-Accel-Expires, or "no-store" when it grants none. */
    const holdOf = (reply: { headers: Record<string, string | string[] | undefined> }): string => {
      const hold = reply.headers['x-accel-expires'];
      if (hold !== undefined) {
        assert.equal(reply.headers['cache-control'], undefined, 'never both');
        return String(hold);
      }
      return String(reply.headers['cache-control']);
    };
    /** nginx with the example's proxy_cache: it says so in X-Auth-Request-Cache. */
    const nginx = (method: string, url: string, headers: Record<string, string> = {}) =>
      call(port, 'GET', AUTH_REQUEST, { 'x-original-method': method, 'x-original-url': url, 'x-auth-request-cache': 'on', ...headers });

    test('bearer allows: held while the token outlasts the bound; never by Traefik or Envoy; never a refusal', async () => {
      const jwt = await token('hana', { scopes: ['orders:read'], now: clock() });
      assert.equal(holdOf(await nginx('GET', '/orders/7', { authorization: `Bearer ${jwt}` })), '1');
      assert.equal(holdOf(await nginx('GET', '/public/p')), '1');
      // An nginx that holds nothing does not say it does: no hold is offered.
      assert.equal(holdOf(await nginx('GET', '/orders/7', { authorization: `Bearer ${jwt}`, 'x-auth-request-cache': 'off' })), 'no-store');
      // Valid now, but for less than the bound: nginx must ask again.
      const expiring = await token('hana', { scopes: ['orders:read'], now: clock(), ttlSeconds: 1 });
      const short = await nginx('GET', '/orders/7', { authorization: `Bearer ${expiring}` });
      assert.equal(short.status, 200);
      assert.equal(holdOf(short), 'no-store');
      const traefik = await call(port, 'GET', FORWARD_AUTH, { 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/orders/7', authorization: `Bearer ${jwt}`, 'x-auth-request-cache': 'on' });
      assert.equal(traefik.status, 200);
      assert.equal(holdOf(traefik), 'no-store');
      const envoy = await call(port, 'GET', '/.mfa/authz/ext-authz/orders/7', { authorization: `Bearer ${jwt}`, 'x-auth-request-cache': 'on' });
      assert.equal(envoy.status, 200);
      assert.equal(holdOf(envoy), 'no-store');
      const refused = await nginx('GET', '/orders/7');
      assert.equal(refused.status, 401);
      assert.equal(holdOf(refused), 'no-store');
      const limited = await nginx('GET', '/search/q');
      assert.equal(limited.status, 200);
      assert.ok(limited.headers['ratelimit'] !== undefined);
      assert.equal(holdOf(limited), 'no-store', 'every request on a rate-limited route takes a token');
    });

    test('session allows: held within the session and its step-up age; the answer that spent a code, never', async () => {
      const jwt = await token('ivan', { scopes: ['orders:read'], now: clock() });
      const { secret } = await enrollTotpOverHttp(port, jwt, clock);
      const withCode = await nginx('POST', '/payments/1', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathTotp(secret, clock()) });
      assert.equal(withCode.status, 200, withCode.text);
      assert.equal(holdOf(withCode), 'no-store', 'a code was spent and a session opened');
      const session = String(withCode.headers['x-session-token']);
      const mfaTime = Number(withCode.headers['x-auth-mfa-time']);
      const withSession = { authorization: `Bearer ${jwt}`, 'x-session-token': session };
      assert.equal(holdOf(await nginx('POST', '/payments/1', withSession)), '1');
      assert.equal(holdOf(await nginx('DELETE', '/orders/1', withSession)), '1');

      // payments is step_up with max_age 5m: 2.5 s before the second factor is too old, the allow
      // still holds for the bound; 1.5 s before, it is allowed but must not be held.
      const stepUpEnds = mfaTime * 1000 + 5 * 60_000;
      clock.set(stepUpEnds - 2_500);
      assert.equal(holdOf(await nginx('POST', '/payments/1', withSession)), '1');
      clock.set(stepUpEnds - 1_500);
      const late = await nginx('POST', '/payments/1', withSession);
      assert.equal(late.status, 200);
      assert.equal(holdOf(late), 'no-store');
      assert.equal(holdOf(await nginx('DELETE', '/orders/1', withSession)), '1', 'the mfa route has the session TTL, far off');
    });
  });

  describe('second factor through forward-auth', { skip: missingBinary(OATHTOOL, 'oathtool') }, () => {
    test('mfa challenge, code accepted (session returned), session reused, step-up challenge', async () => {
      const jwt = await token('dana', { scopes: ['orders:read'], now: clock() });
      const { secret } = await enrollTotpOverHttp(port, jwt, clock);
      const ask = (method: string, url: string, extra: Record<string, string> = {}) =>
        call(port, 'GET', AUTH_REQUEST, { 'x-original-method': method, 'x-original-url': url, authorization: `Bearer ${jwt}`, ...extra });

      const challenged = await ask('POST', '/orders/1');
      assertProblem(challenged, 401, 'mfa_required', 'a second factor is required for this route');
      assert.equal(challenged.headers['www-authenticate'], MFA_CHALLENGE);

      const verifiedAt = Math.floor(clock() / 1000);
      const withCode = await ask('POST', '/orders/1', { 'x-mfa-token': oathTotp(secret, clock()) });
      assert.equal(withCode.status, 200, withCode.text);
      assert.equal(withCode.headers['x-auth-subject'], 'dana');
      assert.equal(withCode.headers['x-auth-mfa'], 'totp');
      assert.equal(withCode.headers['x-auth-mfa-time'], String(verifiedAt));
      const sessionToken = String(withCode.headers['x-session-token']);
      assert.ok(sessionToken.length >= 32, 'a session token is returned');
      assert.equal(withCode.headers['x-session-expires'], String(verifiedAt + 43200));

      clock.advance(60_000);
      const reused = await ask('PUT', '/orders/2', { 'x-session-token': sessionToken });
      assert.equal(reused.status, 200, reused.text);
      assert.equal(reused.headers['x-auth-mfa-time'], String(verifiedAt));
      assert.equal(reused.headers['x-session-token'], undefined, 'no new session for a reused one');

      const freshEnough = await ask('POST', '/payments/1', { 'x-session-token': sessionToken });
      assert.equal(freshEnough.status, 200, 'step_up accepts a second factor younger than max_age');
      clock.advance(5 * 60_000);
      const stale = await ask('POST', '/payments/1', { 'x-session-token': sessionToken });
      assertProblem(stale, 401, 'step_up_required');
      assert.equal(stale.headers['www-authenticate'], 'Bearer error="insufficient_user_authentication", error_description="a fresh second factor is required for this operation", max_age=300');
      clock.advanceStep();
      const stepped = await ask('POST', '/payments/1', { 'x-session-token': sessionToken, 'x-mfa-token': oathTotp(secret, clock()) });
      assert.equal(stepped.status, 200, stepped.text);
    });

    test('lockout: three wrong codes, then 429 with Retry-After and the nginx status header', async () => {
      const jwt = await token('erin', { now: clock() });
      const { secret } = await enrollTotpOverHttp(port, jwt, clock);
      const ask = (code: string) =>
        call(port, 'GET', AUTH_REQUEST, { 'x-original-method': 'POST', 'x-original-url': '/orders/1', authorization: `Bearer ${jwt}`, 'x-mfa-token': code });
      for (let i = 0; i < 3; i++) {
        const wrong = await ask(wrongTotp(secret, clock()));
        assertProblem(wrong, 401, 'mfa_invalid', 'the second factor was not accepted');
        assert.equal(wrong.headers['www-authenticate'], INVALID_CODE_CHALLENGE);
      }
      const locked = await ask(oathTotp(secret, clock()));
      assertProblem(locked, 429, 'mfa_locked', 'too many failed second-factor attempts; try again later');
      assert.equal(locked.headers['retry-after'], '30');
      assert.equal(locked.headers['www-authenticate'], undefined);
      assert.equal(locked.headers['x-problem-status'], '429');
      assert.equal(locked.headers['x-problem-body'], locked.text);
    });
  });
});
