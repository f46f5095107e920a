import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { missingBinary } from '../support/binaries.js';
import { call, type Reply } from '../support/http.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { CLI, REPO, startServe, type ServeProcess } from '../support/serve.js';
import { oathTotp, wrongTotp } from '../support/otp.js';
import { createTestSchema, type TestSchema } from '../support/postgres.js';
import { deleteKeys, REDIS_SERVER, startPrivateRedis, type PrivateRedis } from '../support/redis-server.js';
import { POSTGRES_URL, postgresOrSkip, redisOrSkip, REDIS_URL } from '../support/services.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/wait.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { token } from '../support/tokens.js';

/**
 * Three gateway processes on one shared store (PostgreSQL + Redis): together they must behave as
 * one. Real processes, real servers, real time; every user is fresh, so the scenarios stand alone.
 */

const STEP_MS = 30_000;

function policy(ws: Workspace, upstream: string, pgUrl: string, redisUrl: string, keyPrefix: string): string {
  const store = `store:
  kind: shared
  postgres: { url: "${pgUrl}", connect_timeout: 1s, statement_timeout: 1s }
  redis: { url: "${redisUrl}", key_prefix: "${keyPrefix}", connect_timeout: 1s, command_timeout: 500ms }`;
  // Every request here comes from 127.0.0.1: the per-address throttle would join the users' lockouts.
  return `${policyHead(ws, upstream).replace(/^store: .*$/m, store).replace('  issuer: Test Gateway\n', '  issuer: Test Gateway\n  ip_throttle: { enabled: false }\n')}routes:
  - { name: public, match: { path: /public }, upstream: app, policy: public }
  - { name: limited, match: { path: /limited }, upstream: app, policy: bearer, rate_limit: { requests: 5, per: 1m, key: subject } }
  - { name: secure, match: { path: /secure }, upstream: app, policy: mfa }
`;
}

interface User {
  readonly subject: string;
  readonly bearer: string;
  readonly secret: string;
  readonly recoveryCodes: string[];
}

const auth = (user: User, extra: Record<string, string> = {}) => ({ authorization: `Bearer ${user.bearer}`, ...extra });

/** Enrols a new user on `port` (enroll + confirm with the current code) the way the setup page does. */
async function enrol(port: number, subject = `u-${randomBytes(4).toString('hex')}`): Promise<User> {
  const bearer = await token(subject);
  const enrolled = await call(port, 'POST', '/.mfa/totp/enroll', { authorization: `Bearer ${bearer}` });
  assert.equal(enrolled.status, 201, enrolled.text);
  const { factor_id: factorId, secret } = enrolled.json<{ factor_id: string; secret: string }>();
  const confirmed = await call(port, 'POST', '/.mfa/totp/confirm', { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, JSON.stringify({ factor_id: factorId, code: oathTotp(secret, Date.now()) }));
  assert.equal(confirmed.status, 200, confirmed.text);
  return { subject, bearer, secret, recoveryCodes: confirmed.json<{ recovery_codes: string[] }>().recovery_codes };
}

/** A code the replay guard has not seen: the confirm used the current step, so take the next one (within the window). */
const nextCode = (user: User): string => oathTotp(user.secret, Date.now() + STEP_MS);

async function stopAll(replicas: readonly ServeProcess[]): Promise<void> {
  await Promise.all(
    replicas.map(async (r) => {
      r.child.kill('SIGTERM');
      await r.exited;
    }),
  );
}

function problemCode(reply: Reply): string | undefined {
  return reply.headers['content-type']?.startsWith('application/problem+json') ? reply.json<{ code: string }>().code : undefined;
}

// Probed before any describe runs: tests must be registered synchronously inside their describe.
const sharedSkip = (await postgresOrSkip()) ?? (await redisOrSkip());
const outageSkip = sharedSkip ?? missingBinary(REDIS_SERVER, 'redis-server');

describe('three replicas on one shared store', { timeout: 120_000 }, () => {
  const skip = sharedSkip;
  let ws: Workspace;
  let upstream: Upstream;
  let schema: TestSchema;
  let replicas: ServeProcess[] = [];
  const keyPrefix = `rep${randomBytes(4).toString('hex')}:`;

  before(async () => {
    if (skip !== undefined) return;
    ws = createWorkspace();
    upstream = await startUpstream();
    schema = await createTestSchema();
    ws.writePolicy(policy(ws, upstream.url, schema.url, REDIS_URL, keyPrefix));
    // One at a time: the first creates the schema, the others find it current.
    for (let i = 0; i < 3; i++) replicas.push(await startServe(['--config', ws.configPath]));
  });

  after(async () => {
    await stopAll(replicas);
    replicas = [];
    await upstream?.close();
    await schema?.drop();
    if (skip === undefined) await deleteKeys(REDIS_URL, keyPrefix);
    ws?.remove();
  });

  test('3 wrong codes, one on each replica, lock the user on all of them', { skip }, async () => {
    const [a, b, c] = replicas as [ServeProcess, ServeProcess, ServeProcess];
    const user = await enrol(a.port);
    const wrong = wrongTotp(user.secret, Date.now());
    for (const replica of [a, b, c]) {
      const reply = await call(replica.port, 'GET', '/secure', auth(user, { 'x-mfa-token': wrong }));
      assert.equal(reply.status, 401, reply.text);
      assert.equal(problemCode(reply), 'mfa_invalid');
    }
    for (const replica of [a, b, c]) {
      const reply = await call(replica.port, 'GET', '/secure', auth(user, { 'x-mfa-token': nextCode(user) }));
      assert.equal(reply.status, 429, reply.text);
      assert.equal(problemCode(reply), 'mfa_locked');
      assert.ok(Number(reply.headers['retry-after']) > 0);
    }
  });

  test('the same TOTP code sent to all 3 at once is accepted exactly once', { skip }, async () => {
    const user = await enrol(replicas[0]!.port);
    const code = nextCode(user);
    const before = upstream.received.length;
    const replies = await Promise.all(replicas.flatMap((r) => [0, 1, 2].map(() => call(r.port, 'GET', '/secure', auth(user, { 'x-mfa-token': code })))));
    const accepted = replies.filter((r) => r.status === 200);
    assert.equal(accepted.length, 1, replies.map((r) => r.status).join(','));
    assert.match(String(accepted[0]!.headers['x-session-token']), /^[A-Za-z0-9_-]{43}$/);
    for (const refused of replies.filter((r) => r.status !== 200)) assert.ok(['mfa_invalid', 'mfa_locked'].includes(problemCode(refused) ?? ''), refused.text);
    assert.equal(upstream.received.length - before, 1);
  });

  test('one recovery code fired 50 times across the replicas succeeds once', { skip }, async () => {
    const user = await enrol(replicas[1]!.port);
    const code = user.recoveryCodes[0]!;
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => call(replicas[i % 3]!.port, 'GET', '/secure', auth(user, { 'x-mfa-token': code }))));
    assert.equal(replies.filter((r) => r.status === 200).length, 1, replies.map((r) => r.status).join(','));
    const listed = await call(replicas[2]!.port, 'GET', '/.mfa/factors', auth(user, { 'x-session-token': String(replies.find((r) => r.status === 200)!.headers['x-session-token']) }));
    assert.equal(listed.status, 200, listed.text);
    assert.equal(listed.json<{ recovery_codes_remaining: number }>().recovery_codes_remaining, 9);
  });

  test('a session revoked on replica A is refused on replica C within 1 s, though C had it cached', { skip }, async (t) => {
    const [a, b, c] = replicas as [ServeProcess, ServeProcess, ServeProcess];
    const user = await enrol(b.port);
    const opened = await call(b.port, 'POST', '/.mfa/verify', auth(user, { 'x-mfa-token': nextCode(user) }));
    assert.equal(opened.status, 200, opened.text);
    const session = opened.json<{ session_token: string }>().session_token;
    // C reads it now, so it sits in C's 2 s cache.
    assert.equal((await call(c.port, 'GET', '/secure', auth(user, { 'x-session-token': session }))).status, 200);
    const revoked = await call(a.port, 'POST', '/.mfa/session/revoke', auth(user, { 'x-session-token': session }));
    assert.equal(revoked.status, 204, revoked.text);
    const start = Date.now();
    let status = 200;
    while (status === 200 && Date.now() - start < 2_500) {
      status = (await call(c.port, 'GET', '/secure', auth(user, { 'x-session-token': session }))).status;
      if (status === 200) await sleep(20);
    }
    const elapsed = Date.now() - start;
    assert.equal(status, 401);
    assert.ok(elapsed < 1_000, `refused after ${elapsed} ms`);
    t.diagnostic(`revoked on A, refused on C after ${elapsed} ms`);
  });

  test('mfa-gateway factors revoke-sessions, run beside the replicas, ends a session every replica had cached within 1 s', { skip }, async (t) => {
    const user = await enrol(replicas[2]!.port);
    const opened = await call(replicas[2]!.port, 'POST', '/.mfa/verify', auth(user, { 'x-mfa-token': nextCode(user) }));
    assert.equal(opened.status, 200, opened.text);
    const session = { 'x-session-token': opened.json<{ session_token: string }>().session_token };
    for (const replica of replicas) assert.equal((await call(replica.port, 'GET', '/secure', auth(user, session))).status, 200);
    const cli = spawnSync(process.execPath, [CLI, 'factors', 'revoke-sessions', '--config', ws.configPath, '--user', user.subject], { cwd: REPO, encoding: 'utf8' });
    assert.equal(cli.status, 0, cli.stderr);
    // The audit line (pino, asynchronous) may come before or after the command's own line.
    assert.ok(cli.stdout.split('\n').includes(`ended 1 session of ${user.subject}`), cli.stdout);
    const start = Date.now();
    await eventually(async () => (await Promise.all(replicas.map((r) => call(r.port, 'GET', '/secure', auth(user, session))))).every((reply) => reply.status === 401), 1_000);
    t.diagnostic(`CLI revocation seen by all 3 replicas after ${Date.now() - start} ms`);
  });

  test('a rate limit holds across the replicas', { skip }, async () => {
    const bearer = await token(`rl-${randomBytes(4).toString('hex')}`);
    const replies = await Promise.all(Array.from({ length: 15 }, (_, i) => call(replicas[i % 3]!.port, 'GET', '/limited', { authorization: `Bearer ${bearer}` })));
    assert.equal(replies.filter((r) => r.status === 200).length, 5, replies.map((r) => r.status).join(','));
    for (const refused of replies.filter((r) => r.status !== 200)) {
      assert.equal(refused.status, 429);
      assert.equal(problemCode(refused), 'rate_limited');
    }
  });
});

describe('two replicas when a store backend goes away', { timeout: 120_000 }, () => {
  const skip = outageSkip;
  let ws: Workspace;
  let upstream: Upstream;
  let schema: TestSchema;
  let redis: PrivateRedis;
  let relay: TcpProxy;
  let replicas: ServeProcess[] = [];

  before(async () => {
    if (skip !== undefined) return;
    ws = createWorkspace();
    upstream = await startUpstream();
    schema = await createTestSchema();
    redis = await startPrivateRedis();
    relay = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(POSTGRES_URL).port || 5432) });
    const pgUrl = new URL(schema.url);
    pgUrl.host = `127.0.0.1:${relay.port}`;
    ws.writePolicy(policy(ws, upstream.url, pgUrl.toString(), redis.url, 'outage:'));
    for (let i = 0; i < 2; i++) replicas.push(await startServe(['--config', ws.configPath]));
  });

  after(async () => {
    await stopAll(replicas);
    replicas = [];
    await upstream?.close();
    await relay?.close();
    await redis?.dispose();
    await schema?.drop();
    ws?.remove();
  });

  /** Both replicas answer `path` with `status` (and, for a problem, `code`) within `ms`. */
  async function bothAnswer(path: string, headers: Record<string, string>, status: number, code?: string, ms = 5_000): Promise<Reply[]> {
    let last: Reply[] = [];
    await eventually(async () => {
      last = await Promise.all(replicas.map((r) => call(r.port, 'GET', path, headers)));
      return last.every((reply) => reply.status === status && (code === undefined || problemCode(reply) === code));
    }, ms).catch(() => assert.fail(`expected ${status} ${code ?? ''} from both, got ${last.map((r) => `${r.status} ${r.text}`).join(' | ')}`));
    return last;
  }

  async function ready(replica: ServeProcess): Promise<Reply> {
    return call(replica.adminPort, 'GET', '/readyz');
  }

  test('Redis stops: mfa routes answer 503 store_unavailable, public and bearer go on, /readyz says why; back when it returns', { skip }, async () => {
    const user = await enrol(replicas[0]!.port);
    const opened = await call(replicas[1]!.port, 'POST', '/.mfa/verify', auth(user, { 'x-mfa-token': nextCode(user) }));
    assert.equal(opened.status, 200, opened.text);
    const session = { 'x-session-token': opened.json<{ session_token: string }>().session_token };
    await bothAnswer('/secure', auth(user, session), 200);

    await redis.kill();
    const refused = await bothAnswer('/secure', auth(user, session), 503, 'store_unavailable');
    for (const reply of refused) {
      assert.equal(reply.headers['retry-after'], '5');
      assert.equal(reply.json<{ detail: string }>().detail, 'the second-factor store is not answering; try again shortly');
    }
    // A code is not even looked at, and no failure is counted.
    await bothAnswer('/secure', auth(user, { 'x-mfa-token': '000000' }), 503, 'store_unavailable');
    assert.equal((await call(replicas[0]!.port, 'POST', '/.mfa/verify', auth(user, { 'x-mfa-token': user.recoveryCodes[0]! }))).status, 503);
    // No code is sent (or enrolment started) while a send could not be counted against the quotas.
    for (const path of ['/.mfa/otp/send', '/.mfa/otp/enroll']) {
      const body = JSON.stringify(path.endsWith('send') ? { channel: 'sms', factor_id: 'c-1' } : { channel: 'sms', destination: '+14155550123' });
      const reply = await call(replicas[1]!.port, 'POST', path, auth(user, { 'content-type': 'application/json' }), body);
      assert.equal(reply.status, 503, path);
      assert.equal(reply.json<{ code: string }>().code, 'store_unavailable');
    }
    await bothAnswer('/public', {}, 200);
    await bothAnswer('/limited', auth(user), 200);
    for (const replica of replicas) {
      const readiness = await ready(replica);
      assert.equal(readiness.status, 503);
      assert.match(readiness.json<{ reason: string }>().reason, /^store unavailable: redis: /);
    }

    await redis.start();
    // This Redis keeps nothing on disk: the session is gone with it (fail closed), and a recovery code (in PostgreSQL) opens a new one.
    await bothAnswer('/secure', auth(user, session), 401, 'session_invalid', 10_000);
    const again = await call(replicas[0]!.port, 'POST', '/.mfa/verify', auth(user, { 'x-mfa-token': user.recoveryCodes[0]! }));
    assert.equal(again.status, 200, again.text);
    await bothAnswer('/secure', auth(user, { 'x-session-token': again.json<{ session_token: string }>().session_token }), 200);
    for (const replica of replicas) assert.equal((await ready(replica)).status, 200);
  });

  test('PostgreSQL unreachable: mfa routes answer 503 store_unavailable, public goes on, /readyz says why; back when it returns', { skip }, async () => {
    const user = await enrol(replicas[1]!.port);
    const opened = await call(replicas[0]!.port, 'POST', '/.mfa/verify', auth(user, { 'x-mfa-token': nextCode(user) }));
    assert.equal(opened.status, 200, opened.text);
    const session = { 'x-session-token': opened.json<{ session_token: string }>().session_token };
    await bothAnswer('/secure', auth(user, session), 200);

    await relay.stop();
    await bothAnswer('/secure', auth(user, session), 503, 'store_unavailable');
    await bothAnswer('/public', {}, 200);
    for (const replica of replicas) assert.match((await ready(replica)).json<{ reason: string }>().reason, /^store unavailable: postgres: /);
    const metrics = await call(replicas[0]!.adminPort, 'GET', '/metrics');
    assert.match(metrics.text, /^mfa_gateway_store_up\{backend="postgres"\} 0$/m);
    assert.match(metrics.text, /^mfa_gateway_denials_total\{code="store_unavailable",route="secure"\} [1-9]\d*$/m);

    await relay.start();
    await bothAnswer('/secure', auth(user, session), 200, undefined, 10_000);
    assert.match((await call(replicas[0]!.adminPort, 'GET', '/metrics')).text, /^mfa_gateway_store_up\{backend="postgres"\} 1$/m);
  });
});
