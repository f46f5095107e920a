import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { createMfaGuard, GuardOptionError, type GuardIdentity, type MfaGuard } from '../../../src/index.js';
import { createLogger } from '../../../src/log/logger.js';
import { missingBinary, OATHTOOL } from '../../support/binaries.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../../support/clock.js';
import { enrollTotpOverHttp } from '../../support/enroll.js';
import { createWorkspace, policyHead, type Workspace } from '../../support/fixture.js';
import { call, closeServer, rawExchange, statusesIn } from '../../support/http.js';
import { oathTotp, wrongTotp } from '../../support/otp.js';
import { token } from '../../support/tokens.js';
import { assertProblem, identityNames, INVALID_CODE_CHALLENGE, MFA_CHALLENGE } from '../support.js';

const ROUTES = `routes:
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: orders-read, match: { path_prefix: /orders/, methods: [GET] }, upstream: app, policy: bearer, scopes: [orders:read] }
  - { name: orders-write, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: payments, match: { path_prefix: /payments/, methods: [POST] }, upstream: app, policy: step_up, max_age: 5m }
  - { name: private, match: { path: /private }, upstream: app, policy: bearer, forward_authorization: false }
  - { name: mounted, match: { path_prefix: /mounted/ }, upstream: app, policy: bearer }
  - { name: admin, match: { path_prefix: /admin/ }, policy: deny }
default: deny
`;

// The guard never contacts upstreams: the application is the backend.
const UNUSED_UPSTREAM = 'http://127.0.0.1:9';
const silent = createLogger({ level: 'silent' });
const skipOtp = missingBinary(OATHTOOL, 'oathtool');

/** What the application saw of a request the guard let through. */
interface Seen {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly rawNames: string[];
  readonly identity: GuardIdentity | undefined;
  readonly body: string;
}

interface App {
  readonly port: number;
  readonly seen: Seen[];
  close(): Promise<void>;
}

/** The application behind the guard: records what it saw, answers 200 JSON. */
function recorder(seen: Seen[]) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      seen.push({
        url: req.url ?? '',
        headers: { ...req.headers },
        rawNames: req.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase()),
        identity: req.mfaIdentity,
        body: Buffer.concat(chunks).toString('utf8'),
      });
      const text = JSON.stringify({ ok: true });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) });
      res.end(text);
    });
  };
}

async function listen(server: Server, seen: Seen[]): Promise<App> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    seen,
    close: () => closeServer(server),
  };
}

function startNodeApp(guard: MfaGuard): Promise<App> {
  const seen: Seen[] = [];
  const app = recorder(seen);
  return listen(
    createServer((req, res) => guard(req, res, () => app(req, res))),
    seen,
  );
}

function startExpressApp(guard: MfaGuard): Promise<App> {
  const seen: Seen[] = [];
  const app = express();
  // Mounted under a path, Express rewrites req.url; the guard must judge the URL the client sent.
  app.use('/mounted', guard, recorder(seen));
  app.use(guard);
  app.use(recorder(seen));
  return listen(createServer(app), seen);
}

for (const [kind, start] of [
  ['node:http', startNodeApp],
  ['express', startExpressApp],
] as const) {
  describe(`createMfaGuard mounted in ${kind}`, () => {
    let ws: Workspace;
    let clock: FakeClock;
    let guard: MfaGuard;
    let app: App;

    before(async () => {
      ws = createWorkspace();
      ws.writePolicy(policyHead(ws, UNUSED_UPSTREAM) + ROUTES);
      clock = fakeClock(intoCurrentStep());
      guard = await createMfaGuard({ config: ws.configPath, logger: silent, clock, watch: false });
      app = await start(guard);
    });
    after(async () => {
      await app.close();
      await guard.close();
      ws.remove();
    });

    test('public route: next() with every spoofed identity spelling and credential removed', async () => {
      const before = app.seen.length;
      const reply = await call(app.port, 'GET', '/public/a%20b?x=1', {
        'X-Auth-Subject': 'mallory',
        x_auth_subject: 'mallory',
        'x.auth.subject': 'mallory',
        'X-AUTH-MFA': 'totp',
        'x-auth_mfa-time': '1',
        'x-mfa-token': '123456',
        'x-session-token': 'stolen-session-token',
        'x-original-url': '/admin/x',
        'x-authorization-hint': 'kept',
      });
      assert.equal(reply.status, 200, reply.text);
      assert.equal(app.seen.length, before + 1);
      const seen = app.seen.at(-1)!;
      assert.equal(seen.url, '/public/a%20b?x=1');
      assert.deepEqual(identityNames(seen.headers), []);
      for (const name of ['x-auth-subject', 'x_auth_subject', 'x.auth.subject', 'x-auth-mfa', 'x-auth_mfa-time', 'x-mfa-token', 'x-session-token', 'x-original-url']) {
        assert.equal(seen.headers[name], undefined, name);
        assert.ok(!seen.rawNames.includes(name), `${name} left in rawHeaders`);
      }
      assert.equal(seen.headers['x-authorization-hint'], 'kept', 'only identity headers go, not every x-auth… prefix');
      assert.equal(seen.identity, undefined);
      assert.match(String(seen.headers['x-request-id']), /^[0-9a-f-]{36}$/);
      assert.equal(reply.headers['x-request-id'], seen.headers['x-request-id']);
    });

    test('bearer route: 401 / 403 problems without calling next(), then identity on req', async () => {
      const before = app.seen.length;
      const missing = await call(app.port, 'GET', '/orders/7');
      assertProblem(missing, 401, 'invalid_token', 'a bearer token is required');
      assert.equal(missing.headers['www-authenticate'], 'Bearer error="invalid_token", error_description="a bearer token is required"');
      const narrow = await token('alice', { scopes: ['profile'], now: clock() });
      const scope = await call(app.port, 'GET', '/orders/7', { authorization: `Bearer ${narrow}` });
      assertProblem(scope, 403, 'insufficient_scope', 'the token lacks a scope this route requires');
      assert.equal(scope.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="orders:read", error_description="the token lacks a scope this route requires"');
      assert.equal(app.seen.length, before, 'next() is not called on a refusal');

      const jwt = await token('alice', { scopes: ['orders:read', 'profile'], now: clock() });
      const ok = await call(app.port, 'GET', '/orders/7', { authorization: `Bearer ${jwt}`, 'x-auth-subject': 'root' });
      assert.equal(ok.status, 200, ok.text);
      const seen = app.seen.at(-1)!;
      assert.equal(seen.headers['x-auth-subject'], 'alice');
      assert.equal(seen.headers['x-auth-scopes'], 'orders:read profile');
      assert.equal(seen.headers['x-auth-mfa'], 'none');
      assert.equal(seen.headers['x-auth-mfa-time'], undefined);
      assert.equal(seen.headers.authorization, `Bearer ${jwt}`);
      assert.equal(seen.rawNames.filter((name) => name === 'x-auth-subject').length, 1);
      assert.deepEqual(seen.identity, { subject: 'alice', scopes: ['orders:read', 'profile'], mfa: 'none', requestId: seen.headers['x-request-id'], route: 'orders-read' });

      // The application's scope list is its own: changing it changes nothing for the next request.
      (seen.identity!.scopes as string[]).push('admin');
      const again = await call(app.port, 'GET', '/orders/7', { authorization: `Bearer ${jwt}` });
      assert.equal(again.status, 200, again.text);
      const next = app.seen.at(-1)!;
      assert.equal(next.headers['x-auth-scopes'], 'orders:read profile');
      assert.deepEqual(next.identity?.scopes, ['orders:read', 'profile']);
      assert.notEqual(next.identity?.scopes, seen.identity!.scopes);
    });

    test('forward_authorization: false keeps the bearer token from the application', async () => {
      const jwt = await token('alice', { now: clock() });
      const reply = await call(app.port, 'GET', '/private', { authorization: `Bearer ${jwt}` });
      assert.equal(reply.status, 200);
      const seen = app.seen.at(-1)!;
      assert.equal(seen.headers.authorization, undefined);
      assert.ok(!seen.rawNames.includes('authorization'));
      assert.equal(seen.headers['x-auth-subject'], 'alice');
    });

    test('deny route, unmatched route and ambiguous paths never reach the application', async () => {
      const before = app.seen.length;
      assertProblem(await call(app.port, 'GET', '/admin/users'), 403, 'forbidden', 'this route is closed by policy');
      assertProblem(await call(app.port, 'GET', '/nowhere'), 404, 'route_not_found', 'no route matches this request');
      for (const path of ['/public/../admin/x', '/public/%2e%2e/admin', '/public/a%2fb', '/public//x', '/public/a;b']) {
        const raw = await rawExchange(app.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`);
        assert.deepEqual(statusesIn(raw), [400], path);
        assert.match(raw, /"code":"invalid_request"/, path);
        assert.match(raw, /\r\nconnection: close\r\n/i, path);
      }
      assert.equal(app.seen.length, before);
    });

    test('an auth-request call refused while its own headers are read still tells nginx its status', async () => {
      const oversized = { 'x-original-method': 'GET', 'x-original-url': '/public/x', 'x-session-token': 'a'.repeat(300) };
      const refused = await call(app.port, 'GET', '/.mfa/authz/auth-request', oversized);
      assertProblem(refused, 431, 'header_too_large', 'the X-Session-Token header is too large');
      assert.equal(refused.headers['x-problem-status'], '431');
      assert.equal(refused.headers['x-problem-body'], refused.text);
      // Anywhere else the same refusal is a plain problem response.
      const elsewhere = await call(app.port, 'GET', '/public/x', { 'x-session-token': 'a'.repeat(300) });
      assertProblem(elsewhere, 431, 'header_too_large');
      assert.equal(elsewhere.headers['x-problem-status'], undefined);
    });

    test('the reserved prefix is answered by the guard, never the application', async () => {
      const before = app.seen.length;
      const reply = await call(app.port, 'GET', '/.mfa/factors');
      assertProblem(reply, 401, 'invalid_token', 'a bearer token is required');
      const jwt = await token('zoe', { now: clock() });
      const listed = await call(app.port, 'GET', '/.mfa/factors', { authorization: `Bearer ${jwt}` });
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.json(), { factors: [], recovery_codes_remaining: 0 });
      assert.equal(app.seen.length, before);
    });

    test('mfa and step_up: challenge, code accepted (session on the response), session reused, step-up challenge', { skip: skipOtp }, async () => {
      const jwt = await token('dana', { scopes: ['orders:read'], now: clock() });
      const { secret } = await enrollTotpOverHttp(app.port, jwt, clock);
      const before = app.seen.length;

      const challenged = await call(app.port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, '{"qty":1}');
      assertProblem(challenged, 401, 'mfa_required', 'a second factor is required for this route');
      assert.equal(challenged.headers['www-authenticate'], MFA_CHALLENGE);
      assert.equal(app.seen.length, before);

      const verifiedAt = Math.floor(clock() / 1000);
      const withCode = await call(app.port, 'POST', '/orders/1', { authorization: `Bearer ${jwt}`, 'content-type': 'application/json', 'x-mfa-token': oathTotp(secret, clock()) }, '{"qty":2}');
      assert.equal(withCode.status, 200, withCode.text);
      const session = String(withCode.headers['x-session-token']);
      assert.ok(session.length >= 32);
      assert.equal(withCode.headers['x-session-expires'], String(verifiedAt + 43200));
      let seen = app.seen.at(-1)!;
      assert.equal(seen.body, '{"qty":2}', 'the guard leaves the body to the application');
      assert.equal(seen.headers['x-auth-mfa'], 'totp');
      assert.equal(seen.headers['x-auth-mfa-time'], String(verifiedAt));
      assert.equal(seen.headers['x-mfa-token'], undefined);
      assert.equal(seen.headers['x-session-token'], undefined);
      assert.deepEqual(seen.identity, { subject: 'dana', scopes: ['orders:read'], mfa: 'totp', mfaTime: verifiedAt, requestId: seen.headers['x-request-id'], route: 'orders-write' });

      clock.advance(60_000);
      const reused = await call(app.port, 'PUT', '/orders/2', { authorization: `Bearer ${jwt}`, 'x-session-token': session });
      assert.equal(reused.status, 200, reused.text);
      assert.equal(reused.headers['x-session-token'], undefined);
      seen = app.seen.at(-1)!;
      assert.equal(seen.headers['x-session-token'], undefined);
      assert.equal(seen.identity?.mfaTime, verifiedAt);

      assert.equal((await call(app.port, 'POST', '/payments/1', { authorization: `Bearer ${jwt}`, 'x-session-token': session })).status, 200);
      clock.advance(5 * 60_000);
      const stale = await call(app.port, 'POST', '/payments/1', { authorization: `Bearer ${jwt}`, 'x-session-token': session });
      assertProblem(stale, 401, 'step_up_required', 'a fresh second factor is required for this operation');
      assert.equal(stale.headers['www-authenticate'], 'Bearer error="insufficient_user_authentication", error_description="a fresh second factor is required for this operation", max_age=300');
    });

    test('lockout: 429 with Retry-After, next() never called', { skip: skipOtp }, async () => {
      const jwt = await token('erin', { now: clock() });
      const { secret } = await enrollTotpOverHttp(app.port, jwt, clock);
      const before = app.seen.length;
      for (let i = 0; i < 3; i++) {
        const wrong = await call(app.port, 'DELETE', '/orders/1', { authorization: `Bearer ${jwt}`, 'x-mfa-token': wrongTotp(secret, clock()) });
        assertProblem(wrong, 401, 'mfa_invalid', 'the second factor was not accepted');
        assert.equal(wrong.headers['www-authenticate'], INVALID_CODE_CHALLENGE);
      }
      const locked = await call(app.port, 'DELETE', '/orders/1', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathTotp(secret, clock()) });
      assertProblem(locked, 429, 'mfa_locked', 'too many failed second-factor attempts; try again later');
      assert.equal(locked.headers['retry-after'], '30');
      assert.equal(app.seen.length, before);
    });

    if (kind === 'express') {
      test('under an Express mount path the guard judges originalUrl, not the rewritten req.url', async () => {
        const missing = await call(app.port, 'GET', '/mounted/x');
        assertProblem(missing, 401, 'invalid_token', 'a bearer token is required');
        const jwt = await token('mia', { now: clock() });
        const ok = await call(app.port, 'GET', '/mounted/x', { authorization: `Bearer ${jwt}` });
        assert.equal(ok.status, 200);
        const seen = app.seen.at(-1)!;
        assert.equal(seen.url, '/x');
        assert.equal(seen.headers['x-auth-subject'], 'mia');
        // The mount's req.url reads /.mfa/authz/auth-request, but the guard judged /mounted/…: a user
        // route, so its refusal is a plain problem response, not an answer to nginx.
        const mounted = await call(app.port, 'GET', '/mounted/.mfa/authz/auth-request', { 'x-session-token': 'a'.repeat(300) });
        assertProblem(mounted, 431, 'header_too_large');
        assert.equal(mounted.headers['x-problem-status'], undefined);
      });
    }
  });
}

describe('createMfaGuard: options, lifecycle, Fastify hook', () => {
  test('bad options throw GuardOptionError naming the option', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ config: '' }, 'config'],
      [{ config: 42 }, 'config'],
      [{ config: 'x.yaml', clock: 'now' }, 'clock'],
      [{ config: 'x.yaml', watch: 'yes' }, 'watch'],
      [{ config: 'x.yaml', logger: {} }, 'logger'],
    ];
    for (const [options, option] of cases) {
      await assert.rejects(
        createMfaGuard(options as unknown as Parameters<typeof createMfaGuard>[0]),
        (error: unknown) => error instanceof GuardOptionError && error.option === option && error.code === 'ERR_GUARD_INVALID_OPTION',
        option,
      );
    }
  });

  test('a missing policy file fails at creation, not on the first request', async () => {
    const ws = createWorkspace();
    try {
      await assert.rejects(createMfaGuard({ config: `${ws.dir}/absent.yaml`, logger: silent, watch: false }));
    } finally {
      ws.remove();
    }
  });

  test('after close() the guard answers 503 and never calls next()', async () => {
    const ws = createWorkspace();
    ws.writePolicy(policyHead(ws, UNUSED_UPSTREAM) + ROUTES);
    const guard = await createMfaGuard({ config: ws.configPath, logger: silent, watch: false });
    const app = await startNodeApp(guard);
    try {
      assert.equal((await call(app.port, 'GET', '/public/x')).status, 200);
      const closing = guard.close();
      assert.equal(guard.close(), closing, 'close() is idempotent');
      await closing;
      const reply = await call(app.port, 'GET', '/public/x');
      assertProblem(reply, 503, 'overloaded', 'the MFA guard is shutting down');
      assert.equal(reply.headers['retry-after'], '1');
      assert.equal(app.seen.length, 1);
    } finally {
      await app.close();
      ws.remove();
    }
  });

  test('fastifyHook: hijacks the reply before answering a refusal, calls done() on allow', async () => {
    const ws = createWorkspace();
    ws.writePolicy(policyHead(ws, UNUSED_UPSTREAM) + ROUTES);
    const guard = await createMfaGuard({ config: ws.configPath, logger: silent, watch: false });
    const events: string[] = [];
    // Only the two members of Fastify's request/reply the hook touches: `raw` and `hijack()`.
    const server = createServer((req, res) => {
      guard.fastifyHook(
        { raw: req },
        {
          raw: res,
          hijack: () => {
            events.push(`hijack:${res.headersSent ? 'late' : 'before-write'}`);
          },
        },
        (error) => {
          events.push(error === undefined ? 'done' : 'done-with-error');
          res.end('from-route');
        },
      );
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const allowed = await call(port, 'GET', '/public/x');
      assert.equal(allowed.text, 'from-route');
      assert.deepEqual(events, ['done']);
      events.length = 0;
      const refused = await call(port, 'GET', '/orders/1');
      assertProblem(refused, 401, 'invalid_token');
      assert.deepEqual(events, ['hijack:before-write']);
    } finally {
      await closeServer(server);
      await guard.close();
      ws.remove();
    }
  });
});
