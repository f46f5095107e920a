import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createMfaClient, MfaBodyNotReplayableError, MfaClientError, MfaProblemError, type CodeChallenge, type MfaClientOptions, type MfaFetch, type MfaSession } from '../../src/client/index.js';
import { missingBinary, OATHTOOL } from '../support/binaries.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../support/clock.js';
import { enrollTotpOverHttp } from '../support/enroll.js';
import { startGatewayRig, type GatewayRig } from '../support/gateway.js';
import { call } from '../support/http.js';
import { oathTotp, wrongTotp } from '../support/otp.js';
import { token } from '../support/tokens.js';
import { startUpstream, type ReceivedRequest, type Upstream } from '../support/upstream.js';

/**
 * The client library against the real gateway: a gateway in this process on a fake clock, a real
 * loopback backend that records what reaches it, codes from oathtool. Only the client's `sleep` is
 * injected: it records each wait and moves the gateway's clock on by as much, so a 30 s lockout is
 * waited out without the test sleeping, and the gateway still decides every answer itself.
 */

const skip = missingBinary(OATHTOOL, 'oathtool');

/** What the scripted backend answers next, per request; an empty script answers 200. */
interface Scripted {
  readonly status: number;
  readonly headers?: Record<string, string>;
}

interface Harness {
  readonly rig: GatewayRig;
  readonly backend: Upstream;
  readonly clock: FakeClock;
  readonly baseUrl: string;
  readonly script: Scripted[];
}

/** One client of the harness with everything it did recorded. */
interface Recorded {
  readonly client: MfaFetch;
  readonly challenges: CodeChallenge[];
  readonly slept: number[];
  readonly sessions: (MfaSession | undefined)[];
  readonly bearers: string[];
  readonly codes: string[];
}

function answer(script: Scripted[]) {
  return (_req: unknown, res: ServerResponse, received: ReceivedRequest) => {
    const next = script.shift() ?? { status: 200 };
    const body = JSON.stringify({ ok: next.status === 200, url: received.url, sha256: createHash('sha256').update(received.body).digest('hex') });
    res.writeHead(next.status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...next.headers });
    res.end(body);
  };
}

async function startHarness(): Promise<Harness> {
  const clock = fakeClock(intoCurrentStep());
  const script: Scripted[] = [];
  const backend = await startUpstream({ handler: answer(script) });
  // The body goes on under `upstreams:` of the test policy head, then the routes.
  const rig = await startGatewayRig(
    `  backend: { url: ${backend.url}, timeout: 2s, retries: { max: 0 } }
  dead: { url: 'http://127.0.0.1:9', timeout: 2s, retries: { max: 0 } }
routes:
  - { name: secure, match: { path_prefix: /secure/ }, upstream: backend, policy: mfa }
  - { name: flaky, match: { path_prefix: /flaky/ }, upstream: backend, policy: bearer }
  - { name: gone, match: { path_prefix: /gone/ }, upstream: dead, policy: bearer }
default: deny
`,
    { clock },
  );
  return { rig, backend, clock, baseUrl: `http://127.0.0.1:${rig.port}`, script };
}

/** A client for `subject` whose codes come from `codeFor(attempt)` (default: oathtool's current code). */
function recordedClient(h: Harness, subject: string, codeFor: (challenge: CodeChallenge) => string, options: Partial<MfaClientOptions> = {}): Recorded {
  const r = { challenges: [] as CodeChallenge[], slept: [] as number[], sessions: [] as (MfaSession | undefined)[], bearers: [] as string[], codes: [] as string[] };
  const client = createMfaClient({
    baseUrl: h.baseUrl,
    getBearer: async () => {
      const bearer = await token(subject, { now: h.clock() });
      r.bearers.push(bearer);
      return bearer;
    },
    getCode: (challenge) => {
      r.challenges.push(challenge);
      const code = codeFor(challenge);
      r.codes.push(code);
      return code;
    },
    sleep: async (ms) => {
      r.slept.push(ms);
      h.clock.advance(ms);
    },
    random: () => 0.5,
    now: h.clock,
    onSession: (session) => r.sessions.push(session),
    ...options,
  });
  return { client, ...r };
}

const jsonOf = async (reply: Response): Promise<Record<string, unknown>> => (await reply.json()) as Record<string, unknown>;

/** What must never reach the backend, whatever the client did. */
function assertNoSecondFactorHeaders(backend: Upstream, from: number): void {
  for (const request of backend.received.slice(from)) {
    const names = backend.headerNames(request);
    assert.ok(!names.includes('x-mfa-token'), 'the backend never sees X-MFA-Token');
    assert.ok(!names.includes('x-session-token'), 'the backend never sees X-Session-Token');
  }
}

/** No error message, stack or enumerable field carries a bearer, a code or a session token. */
function assertNoSecrets(error: unknown, secrets: readonly string[]): void {
  const shown = `${String(error)}\n${(error as Error).stack ?? ''}\n${JSON.stringify(error)}`;
  for (const secret of secrets) assert.ok(!shown.includes(secret), 'a credential appears in the error');
}

const FIRST_CHALLENGE = {
  error: 'insufficient_user_authentication',
  errorDescription: 'a second factor is required for this route',
  maxAge: 43200,
  acrValues: undefined,
  mfaMethods: undefined,
  scope: undefined,
  reason: 'mfa_required',
  detail: 'a second factor is required for this route',
  hint: undefined,
};

describe('mfa-gateway/client against the real gateway', { skip }, () => {
  let h: Harness;
  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    await h.rig.close();
    await h.backend.close();
  });

  describe('challenge, code, session kept, refreshed, dropped', () => {
    let alice: { secret: string };
    let r: Recorded;
    before(async () => {
      alice = await enrollTotpOverHttp(h.rig.port, await token('alice', { now: h.clock() }), h.clock);
      r = recordedClient(h, 'alice', () => oathTotp(alice.secret, h.clock()));
    });

    test('the challenge is answered with one code from getCode(); the backend gets the request once, without the second-factor headers', async () => {
      const before = h.backend.received.length;
      const reply = await r.client('/secure/orders?page=1');
      assert.equal(reply.status, 200);
      assert.deepEqual(await jsonOf(reply), { ok: true, url: '/secure/orders?page=1', sha256: createHash('sha256').update('').digest('hex') });
      assert.equal(r.challenges.length, 1);
      const { requestId, ...challenge } = r.challenges[0]!;
      assert.match(requestId!, /^[A-Za-z0-9-]{8,}$/);
      assert.deepEqual(challenge, { ...FIRST_CHALLENGE, attempt: 1, method: 'GET', url: `${h.baseUrl}/secure/orders` });
      assert.equal(h.backend.received.length - before, 1, 'the challenged try never reached the backend');
      const reached = h.backend.received.at(-1)!;
      assert.equal(reached.headers['x-auth-subject'], 'alice');
      assert.equal(reached.headers['x-auth-mfa'], 'totp');
      assertNoSecondFactorHeaders(h.backend, before);
      // The session the answer carried, as the gateway issued it: 12 h from the code.
      assert.equal(r.sessions.length, 1);
      assert.match(r.sessions[0]!.token, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(r.sessions[0]!.expiresAt, Math.floor(h.clock() / 1000) + 43_200);
      assert.deepEqual(r.client.session(), r.sessions[0]);
    });

    test('the next request goes on the session: no code asked, no challenge', async () => {
      h.clock.advance(60_000);
      const before = h.backend.received.length;
      const reply = await r.client('/secure/orders/7', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"qty":2}' });
      assert.equal(reply.status, 200);
      assert.equal((await jsonOf(reply)).sha256, createHash('sha256').update('{"qty":2}').digest('hex'));
      assert.equal(r.challenges.length, 1, 'getCode was not called again');
      assert.equal(h.backend.received.length - before, 1);
      assert.equal(h.backend.received.at(-1)!.headers['x-auth-mfa'], 'totp');
      assertNoSecondFactorHeaders(h.backend, before);
      assert.equal(r.sessions.length, 1, 'the same session');
    });

    test('a session ended behind the client is dropped on its 401 session_invalid, and a new code opens another', async () => {
      const current = r.client.session()!;
      const revoked = await call(h.rig.port, 'POST', '/.mfa/session/revoke', { authorization: `Bearer ${await token('alice', { now: h.clock() })}`, 'x-session-token': current.token });
      assert.equal(revoked.status, 204);
      h.clock.advanceStep();
      const before = h.backend.received.length;
      const reply = await r.client('/secure/orders');
      assert.equal(reply.status, 200);
      assert.equal(r.challenges.length, 2);
      assert.equal(r.challenges[1]!.reason, 'session_invalid');
      assert.equal(r.challenges[1]!.detail, 'the MFA session is invalid, expired or revoked');
      assert.equal(r.challenges[1]!.attempt, 1);
      assert.deepEqual(r.sessions.slice(-2).map((s) => s === undefined), [true, false], 'dropped, then the new one');
      assert.equal(h.backend.received.length - before, 1);
    });

    test('within refreshBeforeMs of expiry the session is refreshed through /.mfa/session/refresh: a new token, the old one dead', async () => {
      const old = r.client.session()!;
      const seen = r.sessions.length;
      h.clock.set(old.expiresAt * 1000 - 4 * 60_000);
      const reply = await r.client('/secure/orders');
      assert.equal(reply.status, 200);
      assert.equal(r.challenges.length, 2, 'a refresh asks no code');
      assert.equal(r.sessions.length, seen + 1);
      const renewed = r.sessions.at(-1)!;
      assert.notEqual(renewed.token, old.token);
      // The gateway never stretches a second factor: the new token ends when the old one would have.
      assert.equal(renewed.expiresAt, old.expiresAt);
      const stale = await call(h.rig.port, 'POST', '/.mfa/session/refresh', { authorization: `Bearer ${await token('alice', { now: h.clock() })}`, 'x-session-token': old.token });
      assert.equal(stale.status, 401);
      assert.equal(stale.json().code, 'session_invalid');
      // A refresh that did not extend is not asked for again: the next request just uses the token.
      h.clock.advance(60_000);
      assert.equal((await r.client('/secure/orders')).status, 200);
      assert.equal(r.sessions.length, seen + 1);
    });

    test('at its expiry the session is dropped here, before sending, and a code is asked again', async () => {
      const old = r.client.session()!;
      h.clock.set(old.expiresAt * 1000);
      const reply = await r.client('/secure/orders');
      assert.equal(reply.status, 200);
      assert.equal(r.challenges.length, 3);
      assert.equal(r.challenges[2]!.reason, 'mfa_required', 'no expired session was sent');
      assert.deepEqual(r.sessions.slice(-2).map((s) => s === undefined), [true, false]);
      assert.equal(r.client.session()!.expiresAt, Math.floor(h.clock() / 1000) + 43_200);
    });

    test('endSession() revokes at the gateway and forgets here', async () => {
      const current = r.client.session()!;
      assert.equal(await r.client.endSession(), true);
      assert.equal(r.client.session(), undefined);
      assert.equal(r.sessions.at(-1), undefined);
      const reused = await call(h.rig.port, 'GET', '/secure/orders', { authorization: `Bearer ${await token('alice', { now: h.clock() })}`, 'x-session-token': current.token });
      assert.equal(reused.status, 401);
      assert.equal(reused.json().code, 'session_invalid');
    });
  });

  describe('refused codes and the lockout', () => {
    test('a refused code is thrown as MfaProblemError mfa_invalid with the default single attempt, naming no credential', async () => {
      const carol = await enrollTotpOverHttp(h.rig.port, await token('carol', { now: h.clock() }), h.clock);
      const r = recordedClient(h, 'carol', () => wrongTotp(carol.secret, h.clock()));
      const before = h.backend.received.length;
      const error = await r.client('/secure/orders').then(
        () => assert.fail('a refused code must throw'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof MfaProblemError);
      assert.ok(MfaClientError.is(error));
      assert.equal(error.status, 401);
      assert.equal(error.code, 'mfa_invalid');
      assert.equal(error.detail, 'the second factor was not accepted');
      assert.equal(error.type, 'https://mfa-gateway.dev/problems/mfa_invalid');
      assert.match(error.requestId!, /^[A-Za-z0-9-]{8,}$/);
      assert.equal(error.message, '401 mfa_invalid: the second factor was not accepted');
      assert.equal(r.challenges.length, 1);
      assert.equal(h.backend.received.length, before, 'nothing reached the backend');
      assertNoSecrets(error, [...r.codes, ...r.bearers]);
    });

    test('three refused codes lock the user; the 429 Retry-After: 30 is waited out and a fresh code gets through', async () => {
      const bob = await enrollTotpOverHttp(h.rig.port, await token('bob', { now: h.clock() }), h.clock);
      const r = recordedClient(h, 'bob', (c) => (c.attempt <= 3 ? wrongTotp(bob.secret, h.clock()) : oathTotp(bob.secret, h.clock())), { codeAttempts: 5 });
      const before = h.backend.received.length;
      const reply = await r.client('/secure/orders');
      assert.equal(reply.status, 200);
      // Three refusals lock bob; the fourth code meets the lock (not judged), the wait, then a fresh challenge.
      assert.deepEqual(
        r.challenges.map((c) => [c.attempt, c.reason]),
        [
          [1, 'mfa_required'],
          [2, 'mfa_invalid'],
          [3, 'mfa_invalid'],
          [4, 'mfa_invalid'],
          [5, 'mfa_required'],
        ],
      );
      assert.deepEqual(r.slept, [30_000], 'exactly the Retry-After of the first lockout step');
      assert.equal(h.backend.received.length - before, 1);
      assertNoSecondFactorHeaders(h.backend, before);
    });

    test('a lock longer than maxWaitMs is not waited: MfaProblemError mfa_locked carries Retry-After', async () => {
      const erin = await enrollTotpOverHttp(h.rig.port, await token('erin', { now: h.clock() }), h.clock);
      const r = recordedClient(h, 'erin', () => wrongTotp(erin.secret, h.clock()), { codeAttempts: 4, maxWaitMs: 10_000 });
      const error = await r.client('/secure/orders').then(
        () => assert.fail('must throw'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof MfaProblemError);
      assert.equal(error.status, 429);
      assert.equal(error.code, 'mfa_locked');
      assert.equal(error.retryAfterSeconds, 30);
      assert.deepEqual(r.slept, []);
      assert.equal(r.challenges.length, 4);
      assertNoSecrets(error, [...r.codes, ...r.bearers]);
    });
  });

  describe('retries: the source document schedule for idempotent requests, never a resent POST', () => {
    test('GET on an upstream answering 503 is retried 3 times at 1 s, 2 s, 4 s ± jitter, then the 503 is returned', async () => {
      const draws = [0, 0.5, 0.75];
      const r = recordedClient(h, 'alice', () => assert.fail('no code on a bearer route'), { random: () => draws.shift()! });
      h.script.push({ status: 503 }, { status: 503 }, { status: 503 }, { status: 503 });
      const before = h.backend.received.length;
      const reply = await r.client('/flaky/report');
      assert.equal(reply.status, 503);
      assert.deepEqual(await jsonOf(reply), { ok: false, url: '/flaky/report', sha256: createHash('sha256').update('').digest('hex') });
      assert.deepEqual(r.slept, [500, 2_000, 4_250], '1 s − 500 ms, 2 s, 4 s + 250 ms');
      assert.equal(h.backend.received.length - before, 4, 'one try and three retries');
    });

    test('a GET that succeeds on the second try returns that answer after one wait', async () => {
      const r = recordedClient(h, 'alice', () => assert.fail('no code'));
      h.script.push({ status: 503 });
      const reply = await r.client('/flaky/report');
      assert.equal(reply.status, 200);
      assert.deepEqual(r.slept, [1_000]);
    });

    test('Retry-After on a 503 is honoured, in seconds and as an HTTP-date', async () => {
      const r = recordedClient(h, 'alice', () => assert.fail('no code'));
      // An HTTP-date has whole seconds: 7 s after the first wait, rounded up to the next second.
      const start = h.clock();
      const date = Math.ceil((start + 2_000 + 7_000) / 1_000) * 1_000;
      h.script.push({ status: 503, headers: { 'retry-after': '2' } }, { status: 503, headers: { 'retry-after': new Date(date).toUTCString() } });
      const reply = await r.client('/flaky/report', { method: 'DELETE' });
      assert.equal(reply.status, 200);
      assert.deepEqual(r.slept, [2_000, date - (start + 2_000)]);
      assert.ok(r.slept[1]! >= 7_000 && r.slept[1]! < 8_000);
    });

    test('a dead upstream: each 502 upstream_unavailable is retried, then thrown as MfaProblemError', async () => {
      const r = recordedClient(h, 'alice', () => assert.fail('no code'));
      const error = await r.client('/gone/x').then(
        () => assert.fail('must throw'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof MfaProblemError);
      assert.equal(error.status, 502);
      assert.equal(error.code, 'upstream_unavailable');
      assert.equal(error.detail, 'the upstream could not be reached');
      assert.deepEqual(r.slept, [1_000, 2_000, 4_000]);
    });

    test('POST is never sent twice: an upstream 503 is returned at once, a 502 thrown at once', async () => {
      const r = recordedClient(h, 'alice', () => assert.fail('no code'));
      h.script.push({ status: 503 });
      const before = h.backend.received.length;
      const reply = await r.client('/flaky/pay', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"amount":5}' });
      assert.equal(reply.status, 503);
      assert.equal(h.backend.received.length - before, 1);
      const error = await r.client('/gone/pay', { method: 'POST', body: 'x' }).then(
        () => assert.fail('must throw'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof MfaProblemError);
      assert.equal(error.code, 'upstream_unavailable');
      assert.deepEqual(r.slept, []);
    });

    test('no gateway at all: an idempotent request is retried then fails as ERR_MFA_CLIENT_NETWORK; a POST fails at once', async () => {
      const closed = await startUpstream();
      const port = closed.port;
      await closed.close();
      const slept: number[] = [];
      const client = createMfaClient({ baseUrl: `http://127.0.0.1:${port}`, getBearer: () => 'bearer-never-sent-anywhere', getCode: () => '000000', sleep: async (ms) => void slept.push(ms), random: () => 0.5 });
      for (const [method, waits] of [
        ['GET', [1_000, 2_000, 4_000]],
        ['POST', []],
      ] as const) {
        slept.length = 0;
        const error = await client('/x', { method }).then(
          () => assert.fail('must throw'),
          (e: unknown) => e,
        );
        assert.ok(error instanceof MfaClientError);
        assert.equal(error.code, 'ERR_MFA_CLIENT_NETWORK');
        assert.equal(error.message, `${method} http://127.0.0.1:${port}/x: no answer from the gateway`);
        assert.deepEqual(slept, waits);
        assertNoSecrets(error, ['bearer-never-sent-anywhere']);
      }
    });
  });

  describe('request bodies that must be sent again', () => {
    let dave: { secret: string };
    before(async () => {
      dave = await enrollTotpOverHttp(h.rig.port, await token('dave', { now: h.clock() }), h.clock);
      h.clock.advanceStep();
    });

    test('a POST challenged before forwarding is sent again with the code, body intact, and reaches the backend once', async () => {
      const r = recordedClient(h, 'dave', () => oathTotp(dave.secret, h.clock()));
      const before = h.backend.received.length;
      const body = JSON.stringify({ item: 'book', qty: 3 });
      const reply = await r.client('/secure/orders', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      assert.equal(reply.status, 200);
      assert.equal((await jsonOf(reply)).sha256, createHash('sha256').update(body).digest('hex'));
      assert.equal(r.challenges.length, 1);
      assert.equal(h.backend.received.length - before, 1);
      assert.equal(h.backend.received.at(-1)!.method, 'POST');
      await r.client.endSession();
    });

    test('a small stream body is buffered and sent again; a long one is refused with MfaBodyNotReplayableError, then sent on a session from verify()', async () => {
      h.clock.advanceStep();
      const r = recordedClient(h, 'dave', () => oathTotp(dave.secret, h.clock()), { maxReplayBytes: 1024 });
      const chunks = (n: number) =>
        new ReadableStream<Uint8Array>({
          start(controller) {
            for (let i = 0; i < n; i++) controller.enqueue(new Uint8Array(512).fill(i));
            controller.close();
          },
        });
      const expected = (n: number) => createHash('sha256').update(Buffer.concat(Array.from({ length: n }, (_, i) => Buffer.alloc(512, i)))).digest('hex');

      const before = h.backend.received.length;
      const small = await r.client('/secure/upload', { method: 'POST', body: chunks(2), duplex: 'half' } as RequestInit);
      assert.equal(small.status, 200);
      assert.equal((await jsonOf(small)).sha256, expected(2));
      assert.equal(r.challenges.length, 1);
      await r.client.endSession();

      const refused = await r.client('/secure/upload', { method: 'POST', body: chunks(8), duplex: 'half' } as RequestInit).then(
        () => assert.fail('must throw'),
        (e: unknown) => e,
      );
      assert.ok(refused instanceof MfaBodyNotReplayableError);
      assert.equal(refused.code, 'ERR_MFA_CLIENT_BODY_NOT_REPLAYABLE');
      assert.ok(refused.cause instanceof MfaProblemError);
      assert.equal(refused.cause.code, 'mfa_required');
      assert.equal(r.challenges.length, 1, 'no code asked for a request that cannot be sent again');

      h.clock.advanceStep();
      const opened = await r.client.verify();
      assert.deepEqual(r.client.session(), opened);
      const big = await r.client('/secure/upload', { method: 'POST', body: chunks(8), duplex: 'half' } as RequestInit);
      assert.equal(big.status, 200);
      assert.equal((await jsonOf(big)).sha256, expected(8));
      assert.equal(r.challenges.length, 2, 'one code for verify()');
      assert.equal(h.backend.received.length - before, 2, 'the small upload and the big one; the refused try never reached it');
      assertNoSecondFactorHeaders(h.backend, before);
    });

    test('two requests challenged at once share one code: the second waits for the first one\'s session', async () => {
      h.clock.advanceStep();
      const r = recordedClient(h, 'dave', () => oathTotp(dave.secret, h.clock()));
      const replies = await Promise.all([r.client('/secure/a'), r.client('/secure/b')]);
      assert.deepEqual(
        replies.map((reply) => reply.status),
        [200, 200],
      );
      assert.equal(r.challenges.length, 1, 'a second code in the same step would be a replay');
    });
  });

  describe('what the client refuses before sending anything', () => {
    test('credentials go to the gateway\'s origin only, the client owns the MFA headers, and redirects are not followed', async () => {
      const r = recordedClient(h, 'alice', () => assert.fail('no code'));
      const before = h.backend.received.length;
      const cases: [string, RequestInit, string][] = [
        ['http://127.0.0.2:1/x', {}, `the request URL must be on ${h.baseUrl}: the client sends credentials there only`],
        ['/flaky/x', { headers: { 'X-MFA-Token': '123456' } }, 'init.headers must not set x-mfa-token: the client sets it'],
        ['/flaky/x', { headers: { authorization: 'Bearer other' } }, 'init.headers must not set authorization: the client sets it'],
        ['/flaky/x', { redirect: 'follow' }, 'redirect: "follow" would send the MFA headers on to the redirect target; redirects are returned to the caller'],
      ];
      for (const [url, init, message] of cases) {
        await assert.rejects(r.client(url, init), (e: unknown) => e instanceof MfaClientError && e.code === 'ERR_MFA_CLIENT_REQUEST' && e.message === message);
      }
      assert.equal(r.bearers.length, 0, 'not even a bearer was asked for');
      assert.equal(h.backend.received.length, before);
    });

    test('a malformed bearer or code is refused without echoing it', async () => {
      const badBearer = createMfaClient({ baseUrl: h.baseUrl, getBearer: () => 'Bearer secret-value', getCode: () => '1' });
      const e1 = await badBearer('/flaky/x').then(
        () => assert.fail('must throw'),
        (e: unknown) => e,
      );
      assert.ok(e1 instanceof MfaClientError);
      assert.equal(e1.code, 'ERR_MFA_CLIENT_CREDENTIAL');
      assertNoSecrets(e1, ['secret-value']);
      const badCode = createMfaClient({ baseUrl: h.baseUrl, getBearer: () => token('frank', { now: h.clock() }), getCode: () => '12 34\r\nx-injected: 1' });
      await enrollTotpOverHttp(h.rig.port, await token('frank', { now: h.clock() }), h.clock);
      const e2 = await badCode('/secure/x').then(
        () => assert.fail('must throw'),
        (e: unknown) => e,
      );
      assert.ok(e2 instanceof MfaClientError);
      assert.equal(e2.code, 'ERR_MFA_CLIENT_CREDENTIAL');
      assertNoSecrets(e2, ['12 34', 'x-injected']);
    });

    test('bad options are refused at creation, naming the option', () => {
      const base = { baseUrl: h.baseUrl, getBearer: () => 'b', getCode: () => 'c' };
      const cases: [Partial<MfaClientOptions>, string][] = [
        [{ baseUrl: 'not a url' }, 'baseUrl: must be an absolute URL'],
        [{ baseUrl: 'ftp://h/' }, 'baseUrl: must be an http: or https: URL'],
        [{ retries: -1 }, 'retries: must be an integer from 0 to 10'],
        [{ codeAttempts: 6 }, 'codeAttempts: must be an integer from 1 to 5'],
        [{ getCode: 'x' as unknown as MfaClientOptions['getCode'] }, 'getCode: must be a function'],
        [{ reservedPrefix: '.mfa' }, 'reservedPrefix: must be a path such as /.mfa/'],
        [{ session: { token: 'a b', expiresAt: 1 } }, 'session: must be {token, expiresAt} as the client reported it'],
      ];
      for (const [change, message] of cases) {
        assert.throws(() => createMfaClient({ ...base, ...change }), (e: unknown) => e instanceof MfaClientError && e.code === 'ERR_MFA_CLIENT_OPTION' && e.message === message);
      }
    });
  });
});
