import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { createMfaGuard, type MfaGuard } from '../../src/index.js';
import { createLogger } from '../../src/log/logger.js';
import type { Metrics } from '../../src/metrics/metrics.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { missingBinary, OATHTOOL } from '../support/binaries.js';
import { fakeClock, intoCurrentStep } from '../support/clock.js';
import { enrollTotpOverHttp } from '../support/enroll.js';
import { call, closeServer, type Reply } from '../support/http.js';
import { oathTotp, wrongTotp } from '../support/otp.js';
import { token } from '../support/tokens.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { assertProblem, AUTH_QUESTIONS, copiedByProxy, type AuthQuestion } from './support.js';

/**
 * Throttles through all five front doors (reverse proxy, nginx auth_request, Traefik/Caddy
 * forward-auth, Envoy ext_authz, the Node middleware), the harness of contract.test.ts: a route's
 * `rate_limit` by address and by subject, with exact `Retry-After`, `RateLimit` and
 * `RateLimit-Policy`, and the per-address MFA throttle across users. Every door shares one SQLite
 * file, as replicas share a store; each test first moves the fake clock past every window and block.
 *
 * Two clients, A and B. At the proxy and the middleware they are real socket peers (127.0.0.1 and
 * 127.0.0.2) and `trusted_proxies` is empty, so a client's X-Forwarded-For is ignored. Behind the
 * forward-auth doors they are the addresses the (trusted) proxy puts last in X-Forwarded-For,
 * after whatever the client sent.
 */

const skip = missingBinary(OATHTOOL, 'oathtool');
const silent = createLogger({ level: 'silent' });
const MINUTE = 60_000;
const SPRAYED = 4;

const ROUTES = `trusted_proxies: []
authz: { trusted_proxies: [127.0.0.1/32] }
routes:
  - { name: feed, match: { path_prefix: /feed/ }, upstream: app, policy: public, rate_limit: { requests: 2, per: 1m } }
  - { name: export, match: { path_prefix: /export/ }, upstream: app, policy: bearer, rate_limit: { requests: 2, per: 1m, key: subject } }
  - { name: account, match: { path_prefix: /account/ }, upstream: app, policy: mfa }
default: deny
`;

type DoorName = 'proxy' | 'auth-request' | 'forward-auth' | 'ext-authz' | 'middleware';
const DOORS: readonly DoorName[] = ['proxy', 'auth-request', 'forward-auth', 'ext-authz', 'middleware'];
type Client = 'A' | 'B';

interface Outcome {
  readonly reply: Reply;
  /** Headers the backend received (forward-auth: would receive); undefined when nothing was let through. */
  readonly backend: IncomingHttpHeaders | undefined;
}

interface Door {
  readonly name: DoorName;
  readonly mfaPort: number;
  readonly metrics: () => Metrics;
  send(client: Client, method: string, path: string, headers?: Record<string, string>): Promise<Outcome>;
}

const clock = fakeClock(intoCurrentStep());

/** Counter values read now (prom-client hands out its live objects, so copy the number). */
async function throttled(metrics: Metrics, limit: string): Promise<number> {
  return (await metrics.throttled.get()).values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

async function addressBlocks(metrics: Metrics): Promise<number> {
  return (await metrics.mfaAddressBlocks.get()).values[0]?.value ?? 0;
}

function assertQuota(reply: Reply, policy: string, left: number, seconds: number): void {
  assert.equal(reply.headers['ratelimit-policy'], `"${policy}";q=2;w=60`, 'RateLimit-Policy');
  assert.equal(reply.headers['ratelimit'], `"${policy}";r=${left};t=${seconds}`, 'RateLimit');
}

function assertNoQuota(reply: Reply): void {
  assert.equal(reply.headers['ratelimit'], undefined);
  assert.equal(reply.headers['ratelimit-policy'], undefined);
}

describe('throttles, the same on every front door', { skip }, () => {
  let ws: Workspace;
  let upstream: Upstream;
  let gw: Gateway;
  let guard: MfaGuard;
  let app: Server;
  const appSeen: IncomingHttpHeaders[] = [];
  const doors = new Map<DoorName, Door>();
  /** Per door: the sprayed users' secrets, then the target's. */
  const secrets = new Map<DoorName, string[]>();

  before(async () => {
    ws = createWorkspace();
    upstream = await startUpstream();
    // A low address threshold, so a handful of users is enough to trip it.
    const head = policyHead(ws, upstream.url).replace('mfa:\n  issuer: Test Gateway\n', 'mfa:\n  issuer: Test Gateway\n  ip_throttle: { max_failures: 4, find_time: 5m, block: 15m }\n');
    ws.writePolicy(head + ROUTES);
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: false, watch: false, logger: silent, audit: silent, clock });
    guard = await createMfaGuard({ config: ws.configPath, watch: false, logger: silent, clock });
    app = createServer((req, res) =>
      guard(req, res, () => {
        appSeen.push(req.headers);
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"ok":true}');
      }),
    );
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    const gwPort = gw.address.port;
    const appPort = (app.address() as AddressInfo).port;

    const direct = (name: DoorName, port: number, seen: () => readonly IncomingHttpHeaders[], metrics: () => Metrics): Door => ({
      name,
      mfaPort: port,
      metrics,
      async send(client, method, path, headers = {}) {
        const before = seen().length;
        const reply = client === 'A' ? await call(port, method, path, headers) : await call(port, method, path, headers, undefined, { localAddress: '127.0.0.2' });
        return { reply, backend: seen().length > before ? seen().at(-1) : undefined };
      },
    });
    const askedBy = (name: DoorName, build: (method: string, path: string) => AuthQuestion): Door => ({
      name,
      mfaPort: gwPort,
      metrics: () => gw.metrics,
      async send(client, method, path, headers = {}) {
        const question = build(method, path);
        const { 'x-forwarded-for': sent, ...rest } = headers;
        // The proxy appends the address it saw to whatever the client sent.
        const seenAt = client === 'A' ? '198.51.100.1' : '198.51.100.2';
        const forwardedFor = sent === undefined ? seenAt : `${sent}, ${seenAt}`;
        const reply = await call(gwPort, question.method, question.path, { ...question.headers, ...rest, 'x-forwarded-for': forwardedFor });
        return { reply, backend: copiedByProxy(reply) };
      },
    });
    doors.set('proxy', direct('proxy', gwPort, () => upstream.received.map((r) => r.headers), () => gw.metrics));
    doors.set('middleware', direct('middleware', appPort, () => appSeen, () => guard.core.metrics));
    for (const asking of ['auth-request', 'forward-auth', 'ext-authz'] as const) doors.set(asking, askedBy(asking, AUTH_QUESTIONS[asking]));

    for (const name of DOORS) {
      const list: string[] = [];
      for (let i = 0; i <= SPRAYED; i++) list.push((await enrollTotpOverHttp(doors.get(name)!.mfaPort, await token(`${name}-user-${i}`, { now: clock() }), clock)).secret);
      secrets.set(name, list);
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
      test('by address: RateLimit counts down on allowed answers; then 429 rate_limited with Retry-After = t; nothing reaches the backend', async () => {
        const door = doors.get(name)!;
        clock.advance(16 * MINUTE);
        const before = await throttled(door.metrics(), 'route_ip');

        const first = await door.send('A', 'GET', '/feed/1');
        assert.equal(first.reply.status, 200, first.reply.text);
        assert.ok(first.backend !== undefined, 'forwarded');
        assertQuota(first.reply, 'feed', 1, 60);

        clock.advance(15_000);
        const second = await door.send('A', 'GET', '/feed/2');
        assert.equal(second.reply.status, 200, second.reply.text);
        assertQuota(second.reply, 'feed', 0, 45);

        clock.advance(5_000);
        const third = await door.send('A', 'GET', '/feed/3');
        assertProblem(third.reply, 429, 'rate_limited', "this route's request quota is used up; retry after the time given");
        assert.equal(third.reply.headers['retry-after'], '40');
        assertQuota(third.reply, 'feed', 0, 40);
        assert.equal(third.backend, undefined, 'a refused request reaches no backend');
        if (name === 'auth-request') assert.equal(third.reply.headers['x-problem-status'], '429');

        // A client's own X-Forwarded-For does not make it someone else.
        const spoofed = await door.send('A', 'GET', '/feed/4', { 'x-forwarded-for': '203.0.113.9' });
        assert.equal(spoofed.reply.status, 429, spoofed.reply.text);
        assert.equal(spoofed.backend, undefined);

        // Another address has its own quota.
        const other = await door.send('B', 'GET', '/feed/5');
        assert.equal(other.reply.status, 200, other.reply.text);
        assertQuota(other.reply, 'feed', 1, 60);

        // The window ends: A starts afresh.
        clock.advance(40_000);
        const again = await door.send('A', 'GET', '/feed/6');
        assert.equal(again.reply.status, 200, again.reply.text);
        assertQuota(again.reply, 'feed', 1, 60);

        assert.equal((await throttled(door.metrics(), 'route_ip')) - before, 2);
      });

      test('by subject: each token subject has its own quota, whatever the address; no token is not counted', async () => {
        const door = doors.get(name)!;
        clock.advance(16 * MINUTE);
        const alice = { authorization: `Bearer ${await token(`${name}-alice`, { now: clock() })}` };
        const bob = { authorization: `Bearer ${await token(`${name}-bob`, { now: clock() })}` };

        const anonymous = await door.send('A', 'GET', '/export/x');
        assertProblem(anonymous.reply, 401, 'invalid_token');
        assertNoQuota(anonymous.reply);

        const first = await door.send('A', 'GET', '/export/1', alice);
        assert.equal(first.reply.status, 200, first.reply.text);
        assert.equal(first.backend?.['x-auth-subject'], `${name}-alice`);
        assertQuota(first.reply, 'export', 1, 60);
        clock.advance(30_000);
        assertQuota((await door.send('A', 'GET', '/export/2', alice)).reply, 'export', 0, 30);

        // From another address it is still alice's quota.
        const used = await door.send('B', 'GET', '/export/3', alice);
        assertProblem(used.reply, 429, 'rate_limited');
        assert.equal(used.reply.headers['retry-after'], '30');
        assertQuota(used.reply, 'export', 0, 30);
        assert.equal(used.backend, undefined);

        const other = await door.send('A', 'GET', '/export/4', bob);
        assert.equal(other.reply.status, 200, other.reply.text);
        assert.equal(other.backend?.['x-auth-subject'], `${name}-bob`);
        assertQuota(other.reply, 'export', 1, 60);
      });

      test('MFA codes by address across users: blocked though no user reached its own lockout; another address is not', async () => {
        const door = doors.get(name)!;
        clock.advance(16 * MINUTE);
        const list = secrets.get(name)!;
        const target = SPRAYED;
        const jwtOf = (i: number): Promise<string> => token(`${name}-user-${i}`, { now: clock() });
        const blocksBefore = await addressBlocks(door.metrics());
        clock.advanceStep();

        // One wrong code each for four users: under each user's own lockout (3), at the address's threshold (4).
        for (let i = 0; i < SPRAYED; i++) {
          const wrong = await door.send('A', 'POST', '/account/x', { authorization: `Bearer ${await jwtOf(i)}`, 'x-mfa-token': wrongTotp(list[i]!, clock()) });
          assertProblem(wrong.reply, 401, 'mfa_invalid');
        }

        // A fifth user with the right code: refused before anything about the user is looked at.
        const right = { authorization: `Bearer ${await jwtOf(target)}`, 'x-mfa-token': oathTotp(list[target]!, clock()) };
        const blocked = await door.send('A', 'POST', '/account/x', right);
        const detail = 'too many failed second-factor attempts from this network address; try again later';
        assertProblem(blocked.reply, 429, 'mfa_locked', detail);
        assert.equal(blocked.reply.headers['retry-after'], '900');
        assertNoQuota(blocked.reply);
        assert.equal(blocked.backend, undefined, 'a refused request reaches no backend');

        // The same answer for a user with no factor at all: nothing about the user leaks.
        const nobody = await door.send('A', 'POST', '/account/x', { authorization: `Bearer ${await token(`${name}-nobody`, { now: clock() })}`, 'x-mfa-token': '123456' });
        assertProblem(nobody.reply, 429, 'mfa_locked', detail);
        assert.equal(nobody.reply.headers['retry-after'], '900');

        // Its own X-Forwarded-For does not get the blocked client out.
        const spoofed = await door.send('A', 'POST', '/account/x', { ...right, 'x-forwarded-for': '203.0.113.9' });
        assertProblem(spoofed.reply, 429, 'mfa_locked', detail);

        // Another address: the same code is accepted (never verified above, so not a replay).
        const elsewhere = await door.send('B', 'POST', '/account/x', right);
        assert.equal(elsewhere.reply.status, 200, elsewhere.reply.text);
        assert.equal(elsewhere.backend?.['x-auth-mfa'], 'totp');
        // And a sprayed user was never locked on its own.
        clock.advanceStep();
        const sprayed = await door.send('B', 'POST', '/account/x', { authorization: `Bearer ${await jwtOf(0)}`, 'x-mfa-token': oathTotp(list[0]!, clock()) });
        assert.equal(sprayed.reply.status, 200, sprayed.reply.text);

        // The block ends after 15 minutes.
        clock.advance(15 * MINUTE);
        const later = await door.send('A', 'POST', '/account/x', { authorization: `Bearer ${await jwtOf(1)}`, 'x-mfa-token': oathTotp(list[1]!, clock()) });
        assert.equal(later.reply.status, 200, later.reply.text);

        assert.equal((await addressBlocks(door.metrics())) - blocksBefore, 1);
      });
    });
  }
});
