import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';
import { startGateway, type Gateway } from '../../../src/server/gateway.js';
import { createLogger } from '../../../src/log/logger.js';
import { createWorkspace, policyHead, type Workspace } from '../../support/fixture.js';
import { missingBinary, OATHTOOL } from '../../support/binaries.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../../support/clock.js';
import { enrollTotpOverHttp } from '../../support/enroll.js';
import { call, closeServer } from '../../support/http.js';
import { oathTotp } from '../../support/otp.js';
import { token } from '../../support/tokens.js';
import { startUpstream, type Upstream } from '../../support/upstream.js';
import { startGatewayRig, type GatewayRig } from '../../support/gateway.js';

/**
 * The reverse-proxy door's own paths through the admission hallway: WebSocket upgrades (session
 * back on the 101, the reserved prefix never tunnelled), a request that keeps the policy it
 * pinned while a reload happens under it, and a request decided from memory that is handed to the
 * upstream pool in the event-loop turn that read it.
 */

const skip = missingBinary(OATHTOOL, 'oathtool');
const silent = createLogger({ level: 'silent' });

interface UpgradeAnswer {
  readonly status: number;
  readonly headers: IncomingMessage['headers'];
}

/** Sends a WebSocket upgrade; resolves with the 101 (socket closed) or the refusal. */
function upgrade(port: number, path: string, headers: Record<string, string>): Promise<UpgradeAnswer> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port,
      path,
      agent: false,
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', ...headers },
    });
    req.on('upgrade', (res: IncomingMessage, socket: Duplex) => {
      socket.destroy();
      resolve({ status: res.statusCode ?? 0, headers: res.headers });
    });
    req.on('response', (res: IncomingMessage) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket backend that accepts every upgrade and records what reached it. */
async function startWsBackend(): Promise<{ server: Server; url: string; upgrades: IncomingMessage[]; close(): Promise<void> }> {
  const upgrades: IncomingMessage[] = [];
  const server = createServer((_req, res) => res.end('{}'));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgrades.push(req);
    socket.on('error', () => socket.destroy());
    socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    upgrades,
    close: () => closeServer(server),
  };
}

describe('WebSocket upgrades walk the admission path', { skip }, () => {
  let ws: Workspace;
  let backend: Awaited<ReturnType<typeof startWsBackend>>;
  let gw: Gateway;
  let clock: FakeClock;

  before(async () => {
    ws = createWorkspace();
    backend = await startWsBackend();
    clock = fakeClock(intoCurrentStep());
    ws.writePolicy(
      policyHead(ws, backend.url) +
        `routes:
  - { name: live, match: { path: /live }, upstream: app, policy: mfa, websocket: true }
  - { name: everything, match: { path_prefix: / }, upstream: app, policy: public, websocket: true }
`,
    );
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: false, watch: false, logger: silent, audit: silent, clock });
  });
  after(async () => {
    await gw.stop();
    await backend.close();
    ws.remove();
  });

  test('a good X-MFA-Token on an upgrade returns its session on the 101; the backend never sees the code', async () => {
    const jwt = await token('wendy', { now: clock() });
    const { secret } = await enrollTotpOverHttp(gw.address.port, jwt, clock);
    const code = oathTotp(secret, clock());
    const answer = await upgrade(gw.address.port, '/live', { authorization: `Bearer ${jwt}`, 'x-mfa-token': code });
    assert.equal(answer.status, 101);
    const session = answer.headers['x-session-token'];
    assert.match(String(session), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(answer.headers['x-session-expires'], String(Math.floor(clock() / 1000) + 12 * 3600));
    const seen = backend.upgrades.at(-1)!;
    assert.equal(seen.headers['x-mfa-token'], undefined);
    assert.equal(seen.headers['x-session-token'], undefined);
    assert.equal(seen.headers['x-auth-subject'], 'wendy');
    assert.equal(seen.headers['x-auth-mfa'], 'totp');

    // The session the 101 carried is a real one: the next upgrade needs no code.
    const again = await upgrade(gw.address.port, '/live', { authorization: `Bearer ${jwt}`, 'x-session-token': String(session) });
    assert.equal(again.status, 101);
    assert.equal(again.headers['x-session-token'], undefined, 'no new session without a code');
  });

  test('an upgrade under the reserved prefix is refused, even when a catch-all route allows WebSockets', async () => {
    const before = backend.upgrades.length;
    for (const path of ['/.mfa/verify', '/.mfa/setup', '/.mfa/authz/auth-request']) {
      const jwt = await token('wendy', { now: clock() });
      const answer = await upgrade(gw.address.port, path, { authorization: `Bearer ${jwt}` });
      assert.equal(answer.status, 400, path);
      assert.equal(answer.headers['content-type'], 'application/problem+json');
    }
    assert.equal(backend.upgrades.length, before, 'nothing under the reserved prefix reached the backend');
  });
});

/**
 * A JWKS endpoint whose next answer can be held: the one await a test can park a request on.
 * `keys` is read when the answer is sent, so a key published "meanwhile" is in it.
 */
async function startHoldingJwks(keys: JWK[]): Promise<{ url: string; hold(): { arrived: Promise<void>; release(): void }; close(): Promise<void> }> {
  let held: { arrive: () => void; gate: Promise<void> } | undefined;
  const server = createServer((_req, res) => {
    const answer = (): void => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys }));
    };
    if (held === undefined) return answer();
    const { arrive, gate } = held;
    held = undefined;
    arrive();
    void gate.then(answer);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`,
    hold() {
      let arrive!: () => void;
      let release!: () => void;
      const arrived = new Promise<void>((resolve) => (arrive = resolve));
      const gate = new Promise<void>((resolve) => (release = resolve));
      held = { arrive, gate };
      return { arrived, release };
    },
    close: () => closeServer(server),
  };
}

describe('a request keeps the policy it pinned while a reload happens under it', { skip }, () => {
  let ws: Workspace;
  let gw: Gateway;
  let jwks: Awaited<ReturnType<typeof startHoldingJwks>>;
  const published: JWK[] = [];
  const signers = new Map<string, CryptoKey>();
  const clock = fakeClock(intoCurrentStep());

  function policy(sessionTtl: string): string {
    return `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
auth:
  jwt: { issuer: https://idp.test/, audience: api, algorithms: [ES256], jwks_uri: ${jwks.url} }
mfa:
  issuer: Test Gateway
  session: { ttl: ${sessionTtl} }
store: { kind: sqlite, path: ${ws.dir}/mfa.db }
keys: { file: ${ws.keyFile} }
upstreams:
  app: { url: http://127.0.0.1:9, retries: { max: 0 } }
routes:
  - { match: { path_prefix: / }, upstream: app, policy: mfa }
`;
  }

  async function addKey(kid: string): Promise<void> {
    const pair = await generateKeyPair('ES256');
    signers.set(kid, pair.privateKey);
    published.push({ ...(await exportJWK(pair.publicKey)), kid, alg: 'ES256', use: 'sig' });
  }

  function es256(subject: string, kid: string): Promise<string> {
    const now = Math.floor(clock() / 1000);
    return new SignJWT({}).setProtectedHeader({ alg: 'ES256', kid }).setIssuer('https://idp.test/').setAudience('api').setSubject(subject).setIssuedAt(now).setExpirationTime(now + 3600).sign(signers.get(kid)!);
  }

  before(async () => {
    ws = createWorkspace();
    await addKey('k1');
    jwks = await startHoldingJwks(published);
    ws.writePolicy(policy('1h'));
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: false, watch: false, logger: silent, audit: silent, clock });
  });
  after(async () => {
    await gw.stop();
    await jwks.close();
    ws.remove();
  });

  test('a session minted while the policy is reloaded lives as long as the policy the request started with says', async () => {
    const { secret } = await enrollTotpOverHttp(gw.address.port, await es256('pia', 'k1'), clock);
    // Past the JWKS refetch cooldown, so an unknown kid sends the verifier back to the endpoint.
    clock.advance(31_000);
    await addKey('k2');
    const held = jwks.hold();
    const pending = call(gw.address.port, 'POST', '/.mfa/verify', { authorization: `Bearer ${await es256('pia', 'k2')}`, 'x-mfa-token': oathTotp(secret, clock()) });
    // The request is admitted (policy v1 pinned) and now waits for the keys.
    await held.arrived;
    ws.writePolicy(policy('20h'));
    assert.deepEqual(gw.reload(), { ok: true });
    assert.equal(gw.policy().mfa.session.ttlMs, 20 * 3_600_000);
    held.release();

    const verified = await pending;
    assert.equal(verified.status, 200, verified.text);
    assert.equal(verified.json<{ expires_at: number }>().expires_at, Math.floor(clock() / 1000) + 3600, 'v1 session TTL (1h), not v2 (20h)');
  });
});

describe('a trusted proxy in front keeps its say', () => {
  let ws: Workspace;
  let gw: Gateway;
  let upstream: Upstream;

  before(async () => {
    ws = createWorkspace();
    upstream = await startUpstream();
    ws.writePolicy(
      policyHead(ws, upstream.url) +
        `trusted_proxies: [127.0.0.1/32]
untrusted_peer_headers: [X-Real-IP, Remote-User]
routes:
  - { match: { path: /public }, upstream: app, policy: public }
`,
    );
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: false, watch: false, logger: silent, audit: silent });
  });
  after(async () => {
    await gw.stop();
    await upstream.close();
    ws.remove();
  });

  test('its X-Request-Id becomes the request id and its who-the-client-is headers pass; client identity headers still never do', async () => {
    const reply = await call(gw.address.port, 'GET', '/public', { 'x-request-id': 'edge-0123', 'x-real-ip': '203.0.113.9', 'remote-user': 'bob', 'x-auth-subject': 'mallory' });
    assert.equal(reply.status, 200);
    const got = upstream.received.at(-1)!;
    assert.equal(got.headers['x-request-id'], 'edge-0123');
    assert.equal(reply.headers['x-request-id'], 'edge-0123');
    assert.equal(got.headers['x-real-ip'], '203.0.113.9');
    assert.equal(got.headers['remote-user'], 'bob');
    assert.equal(got.headers['x-auth-subject'], undefined);
  });
});

/**
 * For each request the gateway on `port` reads: was it handed to the upstream pool before the turn
 * that read it ended? Node's own channels mark both ends: the server's request start, and undici
 * creating the request. A `process.nextTick` queued at the start runs once that turn's synchronous
 * work is done, before any promise continuation, so a request that waited on an `await` is handed
 * over after it. (undici then writes on an idle keep-alive connection only after the event loop's
 * check phase, having looked for bytes or a close the upstream sent meanwhile; that wait is its
 * own, and the same for every undici client.)
 */
function turnProbe(port: number): { readonly sameTurn: boolean[]; close(): void } {
  const sameTurn: boolean[] = [];
  let open: { ended: boolean } | undefined;
  const onStart = (message: unknown): void => {
    if ((message as { socket: Socket }).socket.localPort !== port) return;
    const turn = { ended: false };
    open = turn;
    process.nextTick(() => {
      turn.ended = true;
    });
  };
  const onHandedOver = (): void => {
    if (open === undefined) return;
    sameTurn.push(!open.ended);
    open = undefined;
  };
  subscribe('http.server.request.start', onStart);
  subscribe('undici:request:create', onHandedOver);
  return {
    sameTurn,
    close() {
      unsubscribe('http.server.request.start', onStart);
      unsubscribe('undici:request:create', onHandedOver);
    },
  };
}

describe('a request decided from memory is handed to the upstream pool in the turn that read it', { skip }, () => {
  let rig: GatewayRig;
  const clock = fakeClock(intoCurrentStep());

  before(async () => {
    rig = await startGatewayRig(
      `routes:
  - { name: open, match: { path_prefix: /open/ }, upstream: app, policy: public }
  - { name: api, match: { path_prefix: /api/ }, upstream: app, policy: bearer }
  - { name: vault, match: { path_prefix: /vault/ }, upstream: app, policy: mfa }
`,
      { clock },
    );
  });
  after(() => rig.close());

  test('public, a cached token and a cached session are handed over at once; a token or session read for the first time waits for its check', async () => {
    const jwt = await token('rhea', { now: clock() });
    const { secret } = await enrollTotpOverHttp(rig.port, jwt, clock);
    const verified = await call(rig.port, 'POST', '/.mfa/verify', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathTotp(secret, clock()) });
    assert.equal(verified.status, 200, verified.text);
    const session = verified.json<{ session_token: string }>().session_token;
    // Another token of the same user (another lifetime), not validated by this gateway yet.
    const other = await token('rhea', { now: clock(), ttlSeconds: 900 });

    const probe = turnProbe(rig.port);
    const statuses: number[] = [];
    try {
      for (const [path, headers] of [
        ['/open/1', {}],
        // Validated while enrolling: cached.
        ['/api/1', { authorization: `Bearer ${jwt}` }],
        // Sessions are cached when first read from the store, not when issued.
        ['/vault/1', { authorization: `Bearer ${jwt}`, 'x-session-token': session }],
        ['/vault/2', { authorization: `Bearer ${jwt}`, 'x-session-token': session }],
        ['/api/2', { authorization: `Bearer ${other}` }],
        ['/api/3', { authorization: `Bearer ${other}` }],
      ] as const) {
        statuses.push((await call(rig.port, 'GET', path, headers)).status);
      }
    } finally {
      probe.close();
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200]);
    assert.deepEqual(rig.upstream.received.slice(-6).map((r) => r.url), ['/open/1', '/api/1', '/vault/1', '/vault/2', '/api/2', '/api/3']);
    assert.deepEqual(probe.sameTurn, [true, true, false, true, false, true]);
  });
});
