import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, renameSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import { createLogger } from '../../src/log/logger.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call, rawExchange, statusesIn } from '../support/http.js';
import { token } from '../support/tokens.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { captureLog } from '../support/log.js';
import { eventually } from '../support/wait.js';

const ROUTES = `routes:
  - { name: health, match: { path: /healthz }, upstream: app, policy: public }
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: orders-read, match: { path_prefix: /orders/, methods: [GET] }, upstream: app, policy: bearer, scopes: [orders:read] }
  - { name: orders-write, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: payments, match: { path_prefix: /payments/, methods: [POST] }, upstream: app, policy: step_up, max_age: 5m }
  - { name: admin, match: { path_prefix: /admin/ }, policy: deny }
  - { name: no-auth-forward, match: { path: /private }, upstream: app, policy: bearer, forward_authorization: false }
default: deny
`;

const silent = createLogger({ level: 'silent' });

describe('gateway: policies end to end against a recording upstream', () => {
  let upstream: Upstream;
  let ws: Workspace;
  let gateway: Gateway;
  let port: number;

  before(async () => {
    upstream = await startUpstream();
    ws = createWorkspace();
    ws.writePolicy(policyHead(ws, upstream.url) + ROUTES);
    gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false });
    port = gateway.address.port;
  });
  after(async () => {
    await gateway.stop();
    await upstream.close();
    ws.remove();
  });

  test('public route forwards without identity and strips spoofed identity headers', async () => {
    const before = upstream.received.length;
    const reply = await call(port, 'GET', '/public/a%20b?x=1', { 'x-auth-subject': 'mallory', x_auth_subject: 'mallory', 'x-mfa-token': '123456' });
    assert.equal(reply.status, 200);
    assert.equal(upstream.received.length, before + 1);
    const got = upstream.received.at(-1)!;
    assert.equal(got.url, '/public/a%20b?x=1');
    const names = upstream.headerNames(got);
    assert.ok(!names.includes('x-auth-subject'), 'spoofed X-Auth-Subject must not reach the backend');
    assert.ok(!names.includes('x_auth_subject'));
    assert.ok(!names.includes('x-mfa-token'));
    assert.match(String(got.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    assert.equal(reply.headers['x-request-id'], got.headers['x-request-id']);
  });

  test('bearer route: no token → 401 invalid_token problem, nothing forwarded', async () => {
    const before = upstream.received.length;
    const reply = await call(port, 'GET', '/orders/1');
    assert.equal(reply.status, 401);
    assert.equal(reply.headers['content-type'], 'application/problem+json');
    assert.equal(reply.headers['www-authenticate'], 'Bearer error="invalid_token", error_description="a bearer token is required"');
    const body = reply.json();
    assert.equal(body.code, 'invalid_token');
    assert.equal(body.status, 401);
    assert.equal(upstream.received.length, before);
  });

  test('bearer route with the scope → forwarded with identity headers', async () => {
    const jwt = await token('alice', { scopes: ['orders:read', 'profile'] });
    const reply = await call(port, 'GET', '/orders/7', { authorization: `Bearer ${jwt}`, 'X-Auth-Scopes': 'admin' });
    assert.equal(reply.status, 200);
    const got = upstream.received.at(-1)!;
    assert.equal(got.headers['x-auth-subject'], 'alice');
    assert.equal(got.headers['x-auth-scopes'], 'orders:read profile');
    assert.equal(got.headers['x-auth-mfa'], 'none');
    assert.equal(got.headers.authorization, `Bearer ${jwt}`);
    assert.equal(got.headers['x-forwarded-for'], '127.0.0.1');
  });

  test('bearer route without the scope → 403 insufficient_scope', async () => {
    const jwt = await token('alice', { scopes: ['profile'] });
    const before = upstream.received.length;
    const reply = await call(port, 'GET', '/orders/7', { authorization: `Bearer ${jwt}` });
    assert.equal(reply.status, 403);
    assert.equal(reply.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="orders:read", error_description="the token lacks a scope this route requires"');
    assert.equal(reply.json().code, 'insufficient_scope');
    assert.equal(upstream.received.length, before);
  });

  test('forward_authorization: false keeps the bearer token from the backend', async () => {
    const jwt = await token('alice');
    const reply = await call(port, 'GET', '/private', { authorization: `Bearer ${jwt}` });
    assert.equal(reply.status, 200);
    const got = upstream.received.at(-1)!;
    assert.equal(got.headers.authorization, undefined);
    assert.equal(got.headers['x-auth-subject'], 'alice');
  });

  test('mfa route without an enrolled factor → 403 mfa_not_enrolled, step_up route → same, nothing forwarded', async () => {
    const jwt = await token('bob');
    const before = upstream.received.length;
    const mfa = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}` }, '{}');
    assert.equal(mfa.status, 403);
    assert.equal(mfa.json().code, 'mfa_not_enrolled');
    const stepUp = await call(port, 'POST', '/payments/1', { authorization: `Bearer ${jwt}` }, '{}');
    assert.equal(stepUp.status, 403);
    assert.equal(stepUp.json().code, 'mfa_not_enrolled');
    assert.equal(upstream.received.length, before);
  });

  test('deny route → 403 forbidden; unmatched → 404 route_not_found; gateway prefix never forwarded', async () => {
    const before = upstream.received.length;
    const denied = await call(port, 'GET', '/admin/users');
    assert.equal(denied.status, 403);
    assert.equal(denied.json().code, 'forbidden');
    const unmatched = await call(port, 'GET', '/nowhere');
    assert.equal(unmatched.status, 404);
    assert.equal(unmatched.json().code, 'route_not_found');
    const reserved = await call(port, 'GET', '/.mfa/factors');
    assert.equal(reserved.status, 401);
    assert.equal(upstream.received.length, before);
  });

  test('ambiguous paths are refused with 400 and never forwarded', async () => {
    const before = upstream.received.length;
    for (const path of ['/public/../admin/x', '/public/%2e%2e/admin', '/public/a%2fb', '/public//x', '/public/a;b', '/public/a\\b']) {
      const raw = await rawExchange(port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
      assert.deepEqual(statusesIn(raw), [400], path);
      assert.match(raw, /"code":"invalid_request"/, path);
    }
    assert.equal(upstream.received.length, before);
  });

  test('pipelined /public then /orders on one socket: the second is judged on its own', async () => {
    const before = upstream.received.length;
    const raw = await rawExchange(port, 'GET /public/one HTTP/1.1\r\nHost: x\r\n\r\nGET /orders/2 HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.deepEqual(statusesIn(raw), [200, 401]);
    assert.equal(upstream.received.length, before + 1);
    assert.equal(upstream.received.at(-1)!.url, '/public/one');
  });

  test('pipelined valid requests, then a malformed one: each valid one gets its own answer, then the 400, then close', async () => {
    const before = upstream.received.length;
    const raw = await rawExchange(
      port,
      'GET /public/one HTTP/1.1\r\nHost: x\r\n\r\nGET /public/two HTTP/1.1\r\nHost: x\r\n\r\nGET /public/three HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n',
    );
    assert.deepEqual(statusesIn(raw), [200, 200, 400]);
    assert.deepEqual(upstream.received.slice(before).map((r) => r.url), ['/public/one', '/public/two']);
    // The refusal is the last thing on the connection.
    assert.match(raw, /HTTP\/1\.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n$/);
  });

  test('Expect: 100-continue is decided first: a refused request gets its final status at once and its body is never read', async () => {
    const before = upstream.received.length;
    // Only the head is sent: a gateway that answered 100 Continue would wait for the body.
    const raw = await rawExchange(port, 'POST /orders/1 HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n');
    assert.deepEqual(statusesIn(raw), [401]);
    assert.match(raw, /\r\nconnection: close\r\n/i);
    assert.match(raw, /"code":"invalid_token"/);
    assert.equal(upstream.received.length, before);
  });

  test('Expect: 100-continue on an allowed request: 100 Continue, then the body goes upstream', async () => {
    const socket = connect(port, '127.0.0.1');
    const seen: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => seen.push(chunk));
    socket.write('POST /public/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n');
    await eventually(() => Buffer.concat(seen).toString('latin1').startsWith('HTTP/1.1 100 Continue\r\n\r\n'));
    socket.write('hello');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    assert.deepEqual(statusesIn(Buffer.concat(seen).toString('latin1')), [100, 200]);
    assert.equal(upstream.received.at(-1)!.body.toString(), 'hello');
    assert.equal(upstream.received.at(-1)!.headers.expect, undefined, 'Expect is not sent on');
  });

  test('Connection: Authorization cannot strip the token past the gateway or smuggle identity', async () => {
    const jwt = await token('carol', { scopes: ['orders:read'] });
    const reply = await call(port, 'GET', '/orders/9', { authorization: `Bearer ${jwt}`, connection: 'Authorization, X-Auth-Subject', 'x-auth-subject': 'root' });
    assert.equal(reply.status, 200);
    const got = upstream.received.at(-1)!;
    assert.equal(got.headers['x-auth-subject'], 'carol');
    assert.equal(got.headers.authorization, `Bearer ${jwt}`);
  });

  test('chunked POST on a public route arrives intact', async () => {
    const payload = Buffer.alloc(300_000, 'abc');
    const raw = await rawExchange(
      port,
      Buffer.concat([Buffer.from('POST /public/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n'), Buffer.from(payload.length.toString(16) + '\r\n'), payload, Buffer.from('\r\n0\r\n\r\n')]),
    );
    assert.deepEqual(statusesIn(raw), [200]);
    assert.equal(upstream.received.at(-1)!.body.equals(payload), true);
  });

  test('metrics expose requests by route and status', async () => {
    // A request of each kind the metrics below count, whatever other tests ran before.
    await call(port, 'GET', '/public/metered');
    await call(port, 'GET', '/orders/metered');
    const reply = await call(gateway.adminAddress!.port, 'GET', '/metrics');
    assert.equal(reply.status, 200);
    assert.match(reply.text, /mfa_gateway_requests_total\{route="public",policy="public",status="200"\} \d+/);
    assert.match(reply.text, /mfa_gateway_denials_total\{code="invalid_token",route="orders-read"\} \d+/);
    const ready = await call(gateway.adminAddress!.port, 'GET', '/readyz');
    assert.equal(ready.status, 200);
  });
});

describe('gateway: hot reload', () => {
  test('a new policy applies atomically under load, a broken one is refused and counted', async () => {
    const upstream = await startUpstream();
    const ws = createWorkspace();
    const head = policyHead(ws, upstream.url);
    ws.writePolicy(head + 'routes:\n  - { name: a, match: { path_prefix: /v/ }, upstream: app, policy: public }\ndefault: deny\n');
    const gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent });
    const port = gateway.address.port;
    try {
      let failures = 0;
      let done = 0;
      let stop = false;
      const load = Array.from({ length: 8 }, async () => {
        while (!stop) {
          const reply = await call(port, 'GET', '/v/x');
          if (reply.status !== 200) failures++;
          done++;
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 150));
      // Editors write-then-rename; the watcher must see it and apply the whole new file at once.
      const next = join(ws.dir, 'next.yaml');
      writeFileSync(next, head + 'routes:\n  - { name: a, match: { path_prefix: /v/ }, upstream: app, policy: public }\n  - { name: b, match: { path_prefix: /w/ }, upstream: app, policy: deny }\ndefault: deny\n');
      renameSync(next, ws.configPath);
      const deadline = Date.now() + 5000;
      while ((await call(port, 'GET', '/w/x')).status !== 403) {
        assert.ok(Date.now() < deadline, 'reload not applied within 5 s');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // A half-written file is refused; the running policy stays.
      writeFileSync(ws.configPath, head + 'routes:\n  - { name: a, match: { path_prefix: /v/ }, upstream: app, polic');
      const refused = gateway.reload();
      assert.equal(refused.ok, false);
      await new Promise((resolve) => setTimeout(resolve, 300));
      stop = true;
      await Promise.all(load);
      assert.equal(failures, 0, `${failures} of ${done} requests failed during reloads`);
      assert.ok(done > 20);
      assert.equal((await call(port, 'GET', '/w/x')).status, 403);
      const metrics = await call(gateway.adminAddress!.port, 'GET', '/metrics');
      assert.match(metrics.text, /mfa_gateway_config_reloads_total\{result="success"\} [1-9]/);
      assert.match(metrics.text, /mfa_gateway_config_reloads_total\{result="failure"\} [1-9]/);
    } finally {
      await gateway.stop();
      await upstream.close();
      ws.remove();
    }
  });
});

describe('gateway: a fault inside the request path', () => {
  test('a throw while the request is being handled (here: the clock) answers 500 internal_error, logs it without the credentials, and forwards nothing', async () => {
    const upstream = await startUpstream();
    const ws = createWorkspace();
    ws.writePolicy(policyHead(ws, upstream.url) + ROUTES);
    let broken = false;
    const log = captureLog();
    const gateway = await startGateway({
      configPath: ws.configPath,
      logger: log.logger,
      audit: silent,
      watch: false,
      clock: () => {
        if (broken) throw new Error('clock unavailable');
        return Date.now();
      },
    });
    try {
      const port = gateway.address.port;
      assert.equal((await call(port, 'GET', '/public/ok')).status, 200);
      broken = true;
      const reply = await call(port, 'GET', '/public/boom', { authorization: 'Bearer secret-token-value' });
      broken = false;
      assert.equal(reply.status, 500);
      assert.equal(reply.headers['content-type'], 'application/problem+json');
      assert.equal(reply.json().code, 'internal_error');
      assert.deepEqual(upstream.received.map((r) => r.url), ['/public/ok']);
      const failures = log.events().filter((event) => event.event === 'internal_error');
      assert.deepEqual(failures.map((event) => [event.msg, event.error]), [['request failed', 'clock unavailable']]);
      assert.ok(!log.text().includes('secret-token-value'));
      // The failed request holds nothing: no pinned policy runtime keeps a reload's old one, or stop(), waiting.
      const metrics = await call(gateway.adminAddress!.port, 'GET', '/metrics');
      assert.match(metrics.text, /^mfa_gateway_in_flight_requests 0$/m);
      // The gateway goes on answering.
      assert.equal((await call(port, 'GET', '/public/after')).status, 200);
    } finally {
      await gateway.stop();
      await upstream.close();
      ws.remove();
    }
  });
});
