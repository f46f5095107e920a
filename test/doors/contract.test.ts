import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createMfaGuard, type MfaGuard } from '../../src/index.js';
import { createLogger } from '../../src/log/logger.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { missingBinary, OATHTOOL } from '../support/binaries.js';
import { fakeClock, intoCurrentStep } from '../support/clock.js';
import { enrollTotpOverHttp } from '../support/enroll.js';
import { call, closeServer, type Reply } from '../support/http.js';
import { oathTotp, wrongTotp } from '../support/otp.js';
import { token } from '../support/tokens.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { AUTH_QUESTIONS, copiedByProxy, type AuthQuestion } from './support.js';

/**
 * One contract, five front doors. Every row is a request and what must come of it — the status and
 * problem code, the headers that reach the backend (for forward-auth: the identity headers the
 * proxy in front copies onto the backend request), and the headers that go back to the client —
 * and every row runs through the reverse proxy, nginx auth_request, Traefik/Caddy forward-auth,
 * Envoy ext_authz and the Node middleware. A door that drifts from the others fails here.
 */

const skip = missingBinary(OATHTOOL, 'oathtool');
const silent = createLogger({ level: 'silent' });

const ROUTES = `trusted_proxies: []
authz: { trusted_proxies: [127.0.0.1/32] }
routes:
  - { name: open, match: { path: /public }, upstream: app, policy: public }
  - { name: orders-read, match: { path_prefix: /orders/, methods: [GET] }, upstream: app, policy: bearer, scopes: [orders:read] }
  - { name: account, match: { path_prefix: /account/ }, upstream: app, policy: mfa }
  - { name: closed, match: { path_prefix: /admin/ }, policy: deny }
  - { name: legacy, match: { path_prefix: /Legacy/, case_insensitive: true }, policy: deny }
default: deny
`;

type DoorName = 'proxy' | 'auth-request' | 'forward-auth' | 'ext-authz' | 'middleware';
const DOORS: readonly DoorName[] = ['proxy', 'auth-request', 'forward-auth', 'ext-authz', 'middleware'];

/** What came of one request through one door. */
interface Outcome {
  readonly reply: Reply;
  /** Headers the backend received (or, for forward-auth doors, would receive); undefined when nothing was let through. */
  readonly backend: IncomingHttpHeaders | undefined;
  /** The request target the backend received, where this door forwards itself (proxy, middleware). */
  readonly target?: string;
}

interface Door {
  readonly name: DoorName;
  /** Where this door's users reach the `/.mfa/` endpoints. */
  readonly mfaPort: number;
  send(method: string, path: string, headers: Record<string, string>): Promise<Outcome>;
}

interface Row {
  readonly name: string;
  /** Limited to some doors when the row is about something only they do. */
  readonly doors?: readonly DoorName[];
  /** Builds the request for `subject`; may call the door's `/.mfa/` endpoints first. */
  request(ctx: RowContext): Promise<{ method: string; path: string; headers: Record<string, string> }>;
  readonly status: number;
  readonly code?: string;
  readonly challenge?: string;
  /** Exact values the backend must receive; `null` = must not receive. */
  readonly backend?: Readonly<Record<string, string | null>>;
  /** The backend must get the gateway's own request id, not this one the client sent. */
  readonly notRequestId?: string;
  /** The target the backend must receive, on the doors that forward themselves. */
  readonly target?: string;
  /** Headers back to the client: `true` = present, `false` = absent. */
  readonly client?: Readonly<Record<string, boolean>>;
}

interface RowContext {
  readonly subject: string;
  readonly door: Door;
  jwt(scopes?: string[]): Promise<string>;
  /** A code for the subject's TOTP factor in a step no earlier request used. */
  freshCode(): string;
  wrong(): string;
  /** A session minted through the door's own `POST /.mfa/verify`. */
  session(): Promise<string>;
}

const SPOOFED_IDENTITY = { 'X-Auth-Subject': 'mallory', x_auth_subject: 'mallory', 'X.Auth.Mfa': 'totp', 'X-AUTH-SCOPES': 'admin' };
/** URL overrides and the request id in the spellings CGI-style backends fold into the real names. */
const SPOOFED_SPELLINGS = { x_original_url: '/admin/users', 'X.Rewrite.URL': '/admin/users', x_request_id: 'spoofed' };

const ROWS: readonly Row[] = [
  {
    name: 'public route: allowed without credentials; no client-sent identity, URL-override or request-id header in any spelling reaches the backend',
    request: async () => ({ method: 'GET', path: '/public', headers: { ...SPOOFED_IDENTITY, ...SPOOFED_SPELLINGS } }),
    status: 200,
    backend: {
      'x-auth-subject': null,
      x_auth_subject: null,
      'x.auth.mfa': null,
      'x-auth-scopes': null,
      'x-auth-mfa': null,
      x_original_url: null,
      'x.rewrite.url': null,
      x_request_id: null,
    },
    client: { 'x-session-token': false },
  },
  {
    name: 'a credential header in another spelling → 400 invalid_request (never guessed at, never passed on)',
    request: async () => ({ method: 'GET', path: '/public', headers: { x_mfa_token: '123456' } }),
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'bearer route without a token → 401 invalid_token',
    request: async () => ({ method: 'GET', path: '/orders/1', headers: {} }),
    status: 401,
    code: 'invalid_token',
    challenge: 'Bearer error="invalid_token", error_description="a bearer token is required"',
  },
  {
    name: 'bearer route, token without the scope → 403 insufficient_scope naming it',
    request: async (ctx) => ({ method: 'GET', path: '/orders/1', headers: { authorization: `Bearer ${await ctx.jwt([])}` } }),
    status: 403,
    code: 'insufficient_scope',
    challenge: 'Bearer error="insufficient_scope", scope="orders:read", error_description="the token lacks a scope this route requires"',
  },
  {
    name: 'bearer route with the scope → 200; verified identity to the backend, spoofed identity dropped',
    request: async (ctx) => ({ method: 'GET', path: '/orders/1', headers: { authorization: `Bearer ${await ctx.jwt(['orders:read'])}`, ...SPOOFED_IDENTITY } }),
    status: 200,
    backend: { 'x-auth-subject': '$subject', 'x-auth-scopes': 'orders:read', 'x-auth-mfa': 'none', x_auth_subject: null, 'x.auth.mfa': null },
  },
  {
    name: 'a non-ASCII subject reaches the backend intact, percent-encoded as UTF-8',
    request: async () => ({ method: 'GET', path: '/orders/1', headers: { authorization: `Bearer ${await token('jörg-山田%', { scopes: ['orders:read'], now: clock() })}` } }),
    status: 200,
    backend: { 'x-auth-subject': 'j%C3%B6rg-%E5%B1%B1%E7%94%B0%25', 'x-auth-mfa': 'none' },
  },
  {
    name: 'a subject with surrounding whitespace → 401 invalid_token',
    request: async () => ({ method: 'GET', path: '/orders/1', headers: { authorization: `Bearer ${await token('alice ', { scopes: ['orders:read'], now: clock() })}` } }),
    status: 401,
    code: 'invalid_token',
  },
  {
    name: 'mfa route without a second factor → 401 mfa_required (RFC 9470)',
    request: async (ctx) => ({ method: 'POST', path: '/account/x', headers: { authorization: `Bearer ${await ctx.jwt()}` } }),
    status: 401,
    code: 'mfa_required',
    challenge: 'Bearer error="insufficient_user_authentication", error_description="a second factor is required for this route", max_age=43200',
  },
  {
    name: 'mfa route with a wrong code → 401 mfa_invalid',
    request: async (ctx) => ({ method: 'POST', path: '/account/x', headers: { authorization: `Bearer ${await ctx.jwt()}`, 'x-mfa-token': ctx.wrong() } }),
    status: 401,
    code: 'mfa_invalid',
  },
  {
    name: 'mfa route with a good code → 200; the session goes back to the client, the code and session never to the backend',
    request: async (ctx) => ({ method: 'POST', path: '/account/x', headers: { authorization: `Bearer ${await ctx.jwt()}`, 'x-mfa-token': ctx.freshCode() } }),
    status: 200,
    backend: { 'x-auth-subject': '$subject', 'x-auth-mfa': 'totp', 'x-mfa-token': null, 'x-session-token': null, 'x-session-expires': null },
    client: { 'x-session-token': true, 'x-session-expires': true },
  },
  {
    name: 'mfa route with a session → 200; no new session, no token to the backend',
    request: async (ctx) => ({ method: 'POST', path: '/account/x', headers: { authorization: `Bearer ${await ctx.jwt()}`, 'x-session-token': await ctx.session() } }),
    status: 200,
    backend: { 'x-auth-subject': '$subject', 'x-auth-mfa': 'totp', 'x-session-token': null },
    client: { 'x-session-token': false },
  },
  {
    name: 'a session of another subject → 401 session_invalid',
    request: async (ctx) => {
      const session = await ctx.session();
      return { method: 'POST', path: '/account/x', headers: { authorization: `Bearer ${await token(`${ctx.subject}-other`, { now: clock() })}`, 'x-session-token': session } };
    },
    status: 401,
    code: 'session_invalid',
  },
  {
    name: 'deny route → 403 forbidden, whatever the credentials',
    request: async (ctx) => ({ method: 'GET', path: '/admin/users', headers: { authorization: `Bearer ${await ctx.jwt(['orders:read'])}` } }),
    status: 403,
    code: 'forbidden',
  },
  {
    name: 'a case-insensitive rule takes every spelling a case-ignoring backend would run: /LEGACY/x → 403',
    request: async () => ({ method: 'GET', path: '/lEgAcY/x', headers: {} }),
    status: 403,
    code: 'forbidden',
  },
  {
    name: 'no route → 404 route_not_found (default deny)',
    request: async () => ({ method: 'GET', path: '/nowhere', headers: {} }),
    status: 404,
    code: 'route_not_found',
  },
  {
    name: 'an ambiguous path → 400 invalid_request, never a cleaned-up decision',
    request: async () => ({ method: 'GET', path: '/public/../admin/users', headers: {} }),
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'an escaped unreserved character cannot dodge a rule: /%61dmin/… is decided as /admin/… → 403',
    request: async (ctx) => ({ method: 'GET', path: '/%61dmin/users', headers: { authorization: `Bearer ${await ctx.jwt(['orders:read'])}` } }),
    status: 403,
    code: 'forbidden',
  },
  {
    name: 'the path is decided and forwarded in one form: /pub%6Cic?q=%2f → /public?q=%2f',
    request: async () => ({ method: 'GET', path: '/pub%6Cic?q=%2f', headers: {} }),
    status: 200,
    backend: { 'x-auth-subject': null },
    target: '/public?q=%2f',
  },
  {
    name: 'a double-encoded dot segment → 400 invalid_request',
    request: async () => ({ method: 'GET', path: '/public/%252e%252e/admin/users', headers: {} }),
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'a fullwidth look-alike of "." → 400 invalid_request',
    request: async () => ({ method: 'GET', path: '/public/%EF%BC%8E%EF%BC%8E/admin/users', headers: {} }),
    status: 400,
    code: 'invalid_request',
  },
  {
    name: 'who-the-client-is headers from an untrusted peer never reach the backend, in any spelling; nor does its request id',
    doors: ['proxy', 'middleware'],
    request: async () => ({
      method: 'GET',
      path: '/public',
      headers: {
        'X-Real-IP': '6.6.6.6',
        x_real_ip: '6.6.6.6',
        'True-Client-IP': '6.6.6.6',
        'CF-Connecting-IP': '6.6.6.6',
        'Remote-User': 'admin',
        'X-Remote-User': 'admin',
        'X.User': 'admin',
        'X-Original-URI': '/admin/users',
        'X-Request-Id': 'chosen-by-client',
      },
    }),
    status: 200,
    backend: {
      'x-real-ip': null,
      x_real_ip: null,
      'true-client-ip': null,
      'cf-connecting-ip': null,
      'remote-user': null,
      'x-remote-user': null,
      'x.user': null,
      'x-original-uri': null,
    },
    notRequestId: 'chosen-by-client',
  },
  {
    name: 'X-Forwarded-* from an untrusted client is replaced by what the gateway saw',
    doors: ['proxy', 'middleware'],
    request: async () => ({ method: 'GET', path: '/public', headers: { 'x-forwarded-for': '6.6.6.6', x_forwarded_for: '6.6.6.6', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } }),
    status: 200,
    backend: { 'x-forwarded-for': '127.0.0.1', x_forwarded_for: null, 'x-forwarded-proto': 'http' },
  },
];

const clock = fakeClock(intoCurrentStep());

describe('the header and status contract, the same on every front door', { skip }, () => {
  let ws: Workspace;
  let upstream: Upstream;
  let gw: Gateway;
  let guard: MfaGuard;
  let app: Server;
  const appSeen: Array<{ headers: IncomingHttpHeaders; url: string }> = [];
  const doors = new Map<DoorName, Door>();
  const secrets = new Map<DoorName, string>();

  before(async () => {
    ws = createWorkspace();
    upstream = await startUpstream();
    ws.writePolicy(policyHead(ws, upstream.url) + ROUTES);
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: false, watch: false, logger: silent, audit: silent, clock });
    guard = await createMfaGuard({ config: ws.configPath, watch: false, logger: silent, clock });
    app = createServer((req, res) =>
      guard(req, res, () => {
        appSeen.push({ headers: req.headers, url: req.url ?? '' });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      }),
    );
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const gwPort = gw.address.port;
    const appPort = (app.address() as AddressInfo).port;

    const direct = (name: DoorName, port: number, seen: () => ReadonlyArray<{ headers: IncomingHttpHeaders; url: string }>): Door => ({
      name,
      mfaPort: port,
      async send(method, path, headers) {
        const before = seen().length;
        const reply = await call(port, method, path, headers);
        const after = seen();
        const last = after.length > before ? after.at(-1) : undefined;
        return last === undefined ? { reply, backend: undefined } : { reply, backend: last.headers, target: last.url };
      },
    });
    const askedBy = (name: DoorName, build: (method: string, path: string) => AuthQuestion): Door => ({
      name,
      mfaPort: gwPort,
      async send(method, path, headers) {
        const question = build(method, path);
        const reply = await call(gwPort, question.method, question.path, { ...question.headers, ...headers });
        return { reply, backend: copiedByProxy(reply) };
      },
    });
    doors.set('proxy', direct('proxy', gwPort, () => upstream.received));
    doors.set('middleware', direct('middleware', appPort, () => appSeen));
    for (const asking of ['auth-request', 'forward-auth', 'ext-authz'] as const) doors.set(asking, askedBy(asking, AUTH_QUESTIONS[asking]));

    for (const name of DOORS) {
      secrets.set(name, (await enrollTotpOverHttp(doors.get(name)!.mfaPort, await token(`${name}-user`, { now: clock() }), clock)).secret);
    }
  });

  after(async () => {
    await closeServer(app);
    await guard.close();
    await gw.stop();
    await upstream.close();
    ws.remove();
  });

  for (const name of DOORS) {
    describe(name, () => {
      for (const row of ROWS) {
        if (row.doors !== undefined && !row.doors.includes(name)) continue;
        test(row.name, async () => {
          const door = doors.get(name)!;
          const subject = `${name}-user`;
          const secret = secrets.get(name)!;
          const ctx: RowContext = {
            subject,
            door,
            jwt: (scopes = []) => token(subject, { scopes, now: clock() }),
            freshCode() {
              clock.advanceStep();
              return oathTotp(secret, clock());
            },
            wrong: () => wrongTotp(secret, clock()),
            async session() {
              clock.advanceStep();
              const verified = await call(door.mfaPort, 'POST', '/.mfa/verify', { authorization: `Bearer ${await token(subject, { now: clock() })}`, 'x-mfa-token': oathTotp(secret, clock()) });
              assert.equal(verified.status, 200, verified.text);
              return verified.json<{ session_token: string }>().session_token;
            },
          };
          const request = await row.request(ctx);
          const outcome = await door.send(request.method, request.path, request.headers);
          const { reply, backend } = outcome;

          assert.equal(reply.status, row.status, reply.text);
          if (row.code !== undefined) {
            assert.equal(reply.headers['content-type'], 'application/problem+json');
            assert.equal(reply.json<{ code: string }>().code, row.code);
            assert.equal(backend, undefined, 'a refused request reaches no backend');
          }
          if (row.challenge !== undefined) assert.equal(reply.headers['www-authenticate'], row.challenge);
          if (row.backend !== undefined) {
            assert.ok(backend !== undefined, 'the request reached the backend');
            for (const [header, expected] of Object.entries(row.backend)) {
              const want = expected === '$subject' ? subject : expected;
              assert.equal(backend[header] ?? null, want, `backend header ${header}`);
            }
            assert.match(String(backend['x-request-id']), /^[\w-]{8,}$/);
            if (row.notRequestId !== undefined) assert.notEqual(backend['x-request-id'], row.notRequestId);
          }
          if (row.target !== undefined && (name === 'proxy' || name === 'middleware')) assert.equal(outcome.target, row.target, 'target at the backend');
          for (const [header, present] of Object.entries(row.client ?? {})) {
            assert.equal(reply.headers[header] !== undefined, present, `client header ${header}`);
          }
        });
      }
    });
  }
});
