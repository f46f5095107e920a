/**
 * `mfa-gateway serve --workers N` as users run it: the built CLI as a child process, a real upstream
 * on loopback, the SQLite store in a temp dir, codes from oathtool. Which worker answered a request
 * is read from the logs (every worker's line says `worker: <slot>`; a refusal logs its request id).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, after, before, beforeEach, describe, test } from 'node:test';
import { missingBinary, OATHTOOL } from '../support/binaries.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../support/clock.js';
import { assertProblem, INVALID_CODE_CHALLENGE } from '../doors/support.js';
import { enrollTotpOverHttp } from '../support/enroll.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call, type Reply } from '../support/http.js';
import { sampleValue } from '../support/metrics.js';
import { oathTotp, wrongTotp } from '../support/otp.js';
import { CLI, REPO, startServe, type LogEvent, type ServeProcess } from '../support/serve.js';
import { handshake, makeCertificate } from '../support/tls.js';
import { token } from '../support/tokens.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { eventually } from '../support/wait.js';

const skip = missingBinary(OATHTOOL, 'oathtool');
const ADMIN_TOKEN = 'admin-token-for-the-cluster-tests';
const ENV = { MFA_GW_TEST_ADMIN: ADMIN_TOKEN, LOG_LEVEL: 'info' };
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };
/** The CLI runs on the real clock: each user's codes come from a clock in the current step, moved on only by enrolling. */
const codeClock = (): FakeClock => fakeClock(intoCurrentStep());

/** No lockout and no address block in the way of 20 parallel uses of one code (the lockout test sets its own). */
const RELAXED_MFA = `  lockout: { max_failures: 100, find_time: 5m, backoff: [30s] }
  ip_throttle: { enabled: false, max_failures: 20, find_time: 5m, block: 15m }
`;

const ROUTES = `routes:
  - { name: p, match: { path: /p }, upstream: app, policy: public }
  - { name: v, match: { path: /v }, upstream: app, policy: public }
  - { name: account, match: { path_prefix: /account/ }, upstream: app, policy: mfa }
  - { name: slow, match: { path: /slow }, upstream: app, policy: public }
default: deny
`;

function clusterPolicy(ws: Workspace, upstreamUrl: string, mfa = RELAXED_MFA, routes = ROUTES): string {
  return (
    policyHead(ws, upstreamUrl)
      .replace('admin: { host: 127.0.0.1, port: 0 }', 'admin: { host: 127.0.0.1, port: 0, token_env: MFA_GW_TEST_ADMIN }')
      .replace('mfa:\n  issuer: Test Gateway\n', `mfa:\n  issuer: Test Gateway\n${mfa}`) + routes
  );
}

function serveWorkers(configPath: string, workers = 2): Promise<ServeProcess> {
  return startServe(['--config', configPath, '--workers', String(workers)], { env: ENV });
}

/** SIGTERM, and the exit. */
async function stopServe(served: ServeProcess | undefined): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
  if (served === undefined) return undefined;
  served.child.kill('SIGTERM');
  const timer = setTimeout(() => served.kill(), 15_000);
  const exit = await served.exited;
  clearTimeout(timer);
  return exit;
}

function problemBody(code: string, title: string, status: number, detail: string): Record<string, unknown> {
  return { type: `https://mfa-gateway.dev/problems/${code}`, title, status, detail, code };
}

/** The slot of the worker that refused each request id (its `denied` log line), once all are logged. */
async function refusedBy(served: ServeProcess, requestIds: readonly string[]): Promise<Map<string, number>> {
  const wanted = new Set(requestIds);
  const found = (): LogEvent[] => served.events().filter((e) => e.event === 'denied' && wanted.has(String(e.request_id)));
  await eventually(() => found().length === wanted.size, 5_000);
  return new Map(found().map((e) => [String(e.request_id), Number(e.worker)]));
}

async function scrape(served: ServeProcess): Promise<string> {
  const reply = await call(served.adminPort, 'GET', '/metrics');
  assert.equal(reply.status, 200);
  return reply.text;
}

const countOf = (text: string, series: string): number => sampleValue(text, series) ?? 0;
const OK_P = 'mfa_gateway_requests_total{route="p",policy="public",status="200"}';
const NOT_FOUND = 'mfa_gateway_requests_total{route="(none)",policy="(none)",status="404"}';

describe('serve --workers: the command line', () => {
  let ws: Workspace;
  before(() => {
    ws = createWorkspace();
    ws.writePolicy(clusterPolicy(ws, 'http://127.0.0.1:9'));
  });
  after(() => ws.remove());

  test('0, -1, abc, 65: exit 2 with a sentence and no stack trace, before anything starts', () => {
    const cases: [string[], RegExp][] = [
      [['--workers', '0'], /^mfa-gateway: --workers: expected a whole number from 1 to 64, or "auto"; got "0"\n$/],
      [['--workers=-1'], /^mfa-gateway: --workers: expected a whole number from 1 to 64, or "auto"; got "-1"\n$/],
      [['--workers', 'abc'], /^mfa-gateway: --workers: expected a whole number from 1 to 64, or "auto"; got "abc"\n$/],
      [['--workers', '65'], /^mfa-gateway: --workers: expected a whole number from 1 to 64, or "auto"; got "65"\n$/],
      // parseArgs refuses a value that looks like an option: still exit 2, a message, no stack.
      [['--workers', '-1'], /^mfa-gateway: option --workers needs a value; write one that starts with "-" as --workers=VALUE\n$/],
    ];
    for (const [args, message] of cases) {
      const result = spawnSync(process.execPath, [CLI, 'serve', '--config', ws.configPath, ...args], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
      assert.equal(result.status, 2, args.join(' '));
      assert.match(result.stderr, message, args.join(' '));
      assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
      assert.equal(result.stdout, '', 'nothing started');
    }
  });

  test('the usage text names --workers', () => {
    const result = spawnSync(process.execPath, [CLI, 'help'], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
    assert.equal(result.status, 0);
    assert.match(result.stdout, /serve {3}--config F \[--demo\] \[--workers N\|auto\]/);
  });

  test('--workers 1 is the single process of before: no primary, no worker field in its logs', async () => {
    const served = await startServe(['--config', ws.configPath, '--workers', '1'], { env: ENV });
    try {
      const reply = await call(served.port, 'GET', '/nowhere');
      assert.equal(reply.status, 404);
      await served.waitFor((e) => e.event === 'denied');
      for (const event of served.events()) {
        assert.equal(event.role, undefined, JSON.stringify(event));
        assert.equal(event.worker, undefined, JSON.stringify(event));
      }
      assert.equal(served.events().filter((e) => e.event === 'listening').length, 1);
    } finally {
      assert.deepEqual(await stopServe(served), { code: 0, signal: null });
    }
  });
});

describe('two workers share one port, one store and one admin listener', { skip }, () => {
  let ws: Workspace;
  let upstream: Upstream;
  let served: ServeProcess;

  before(async () => {
    ws = createWorkspace();
    upstream = await startUpstream();
    ws.writePolicy(clusterPolicy(ws, upstream.url));
    served = await serveWorkers(ws.configPath);
  });
  after(async () => {
    assert.deepEqual(await stopServe(served), { code: 0, signal: null });
    await upstream.close();
    ws.remove();
  });

  test('both workers serve; every line says which worker (or the primary) wrote it; /metrics adds up all workers', async () => {
    const before = await scrape(served);
    const ok: Reply[] = [];
    const missing: Reply[] = [];
    // Not interleaved: connections go to the workers in turn, so /p, /nowhere, /p… would send each path to one worker.
    for (let i = 0; i < 10; i++) ok.push(await call(served.port, 'GET', '/p'));
    for (let i = 0; i < 10; i++) missing.push(await call(served.port, 'GET', '/nowhere'));
    assert.deepEqual(ok.map((r) => r.status), Array<number>(10).fill(200));
    for (const reply of missing) assertProblem(reply, 404, 'route_not_found');
    const workers = await refusedBy(served, missing.map((r) => String(r.headers['x-request-id'])));
    assert.deepEqual(new Set(workers.values()), new Set([1, 2]), 'refusals were logged by both workers');

    for (const event of served.events()) {
      const fromPrimary = event.role === 'primary';
      assert.ok(fromPrimary !== (event.worker === 1 || event.worker === 2), JSON.stringify(event));
    }

    const after = await scrape(served);
    assert.equal(countOf(after, OK_P) - countOf(before, OK_P), 10);
    assert.equal(countOf(after, NOT_FOUND) - countOf(before, NOT_FOUND), 10);
    for (const worker of ['1', '2']) {
      assert.equal(sampleValue(after, `mfa_gateway_worker_up{worker="${worker}"}`), 1);
      assert.equal(sampleValue(after, `mfa_gateway_worker_restarts_total{worker="${worker}"}`), 0);
      assert.equal(sampleValue(after, `mfa_gateway_in_flight_requests{worker="${worker}"}`), 0);
    }
    assert.equal(after.match(/^# TYPE mfa_gateway_requests_total counter$/gm)?.length, 1, 'one metric family, not one per worker');
    const promtool = spawnSync('promtool', ['--version']);
    if (promtool.error === undefined) assert.equal(execFileSync('promtool', ['check', 'metrics'], { input: after, encoding: 'utf8' }).trim(), '');
  });

  test('/readyz is ready when every worker is; the admin API answers for all, behind the admin token', async () => {
    const ready = await call(served.adminPort, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json(), { status: 'ready' });
    assert.deepEqual((await call(served.adminPort, 'GET', '/healthz')).json(), { status: 'ok' });

    const anonymous = await call(served.adminPort, 'POST', '/admin/reload');
    assertProblem(anonymous, 403, 'forbidden', 'admin token required');
    const wrong = await call(served.adminPort, 'POST', '/admin/reload', { authorization: `Bearer ${ADMIN_TOKEN}x` });
    assertProblem(wrong, 403, 'forbidden', 'admin token required');

    const routes = await call(served.adminPort, 'GET', '/admin/routes', ADMIN);
    assert.equal(routes.status, 200);
    assert.match(routes.text, /account/);
    const pools = await call(served.adminPort, 'GET', '/admin/pools', ADMIN);
    assert.equal(pools.status, 200);
    assert.deepEqual(Object.keys(pools.json<{ workers: Record<string, unknown> }>().workers).sort(), ['1', '2']);
  });

  test('one TOTP code sent 20 times at once over 20 connections: one 200 with a session, 19 × 401 mfa_invalid', async () => {
    const jwt = await token('alice');
    const clock = codeClock();
    const { secret } = await enrollTotpOverHttp(served.port, jwt, clock);
    const code = oathTotp(secret, clock());
    const replies = await Promise.all(Array.from({ length: 20 }, () => call(served.port, 'GET', '/account/1', { authorization: `Bearer ${jwt}`, 'x-mfa-token': code })));

    const wins = replies.filter((r) => r.status === 200);
    assert.equal(wins.length, 1, replies.map((r) => r.status).join(' '));
    assert.match(String(wins[0]!.headers['x-session-token']), /^[A-Za-z0-9_-]{43}$/);
    assert.match(String(wins[0]!.headers['x-session-expires']), /^\d+$/);
    const refused = replies.filter((r) => r.status !== 200);
    for (const reply of refused) {
      assertProblem(reply, 401, 'mfa_invalid');
      const body = reply.json();
      delete body.request_id;
      assert.deepEqual(body, problemBody('mfa_invalid', 'Second factor rejected', 401, 'the second factor was not accepted'));
      assert.equal(reply.headers['www-authenticate'], INVALID_CODE_CHALLENGE);
      assert.equal(reply.headers['x-session-token'], undefined);
    }
    const workers = await refusedBy(served, refused.map((r) => String(r.headers['x-request-id'])));
    assert.deepEqual(new Set(workers.values()), new Set([1, 2]), 'both workers refused some');

    // The one session is good on every worker.
    const session = String(wins[0]!.headers['x-session-token']);
    for (let i = 0; i < 4; i++) {
      assert.equal((await call(served.port, 'GET', '/account/1', { authorization: `Bearer ${jwt}`, 'x-session-token': session })).status, 200);
    }
  });

  test('one recovery code sent 20 times at once: one 200 with a session, 19 × 401 mfa_invalid', async () => {
    const jwt = await token('bob');
    const clock = codeClock();
    const { recoveryCodes } = await enrollTotpOverHttp(served.port, jwt, clock);
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => call(served.port, 'GET', '/account/1', { authorization: `Bearer ${jwt}`, 'x-mfa-token': recoveryCodes[0]! })),
    );
    const wins = replies.filter((r) => r.status === 200);
    assert.equal(wins.length, 1, replies.map((r) => r.status).join(' '));
    assert.match(String(wins[0]!.headers['x-session-token']), /^[A-Za-z0-9_-]{43}$/);
    const refused = replies.filter((r) => r.status !== 200);
    assert.equal(refused.length, 19);
    for (const reply of refused) {
      const body = reply.json();
      delete body.request_id;
      assert.equal(reply.status, 401);
      assert.deepEqual(body, problemBody('mfa_invalid', 'Second factor rejected', 401, 'the second factor was not accepted'));
    }
    const workers = await refusedBy(served, refused.map((r) => String(r.headers['x-request-id'])));
    assert.deepEqual(new Set(workers.values()), new Set([1, 2]), 'both workers refused some');
    const factors = await call(served.port, 'GET', '/.mfa/factors', { authorization: `Bearer ${jwt}` });
    assert.equal(factors.json<{ recovery_codes_remaining: number }>().recovery_codes_remaining, 9);
  });

  test('POST /admin/sessions/revoke ends the user\'s sessions once, for every worker', async () => {
    const jwt = await token('carol');
    const clock = codeClock();
    const { secret } = await enrollTotpOverHttp(served.port, jwt, clock);
    const verified = await call(served.port, 'POST', '/.mfa/verify', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathTotp(secret, clock()) });
    assert.equal(verified.status, 200, verified.text);
    const session = verified.json<{ session_token: string }>().session_token;

    const revoked = await call(served.adminPort, 'POST', '/admin/sessions/revoke?subject=carol', ADMIN);
    assert.equal(revoked.status, 200);
    assert.deepEqual(revoked.json(), { subject: 'carol', revoked: 1 });
    for (let i = 0; i < 4; i++) {
      const reply = await call(served.port, 'GET', '/account/1', { authorization: `Bearer ${jwt}`, 'x-session-token': session });
      assertProblem(reply, 401, 'session_invalid');
    }
    await eventually(() => served.events().some((e) => e.name === 'audit' && e.event === 'sessions_revoked' && e.subject === 'carol'));
    assert.equal(served.events().filter((e) => e.name === 'audit' && e.event === 'sessions_revoked' && e.subject === 'carol').length, 1, 'audited once');
  });

  test('a session both workers have cached, revoked through one, is refused by both at once (the primary relays the change)', async () => {
    const jwt = await token('dora');
    const clock = codeClock();
    const { secret } = await enrollTotpOverHttp(served.port, jwt, clock);
    const verified = await call(served.port, 'POST', '/.mfa/verify', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathTotp(secret, clock()) });
    assert.equal(verified.status, 200, verified.text);
    const headers = { authorization: `Bearer ${jwt}`, 'x-session-token': verified.json<{ session_token: string }>().session_token };
    // Connections go to the workers in turn: eight requests reach both, and both keep the session for 2 s.
    for (let i = 0; i < 8; i++) assert.equal((await call(served.port, 'GET', '/account/1', headers)).status, 200);
    assert.equal((await call(served.port, 'POST', '/.mfa/session/revoke', headers)).status, 204);
    for (let i = 0; i < 8; i++) assertProblem(await call(served.port, 'GET', '/account/1', headers), 401, 'session_invalid');
  });
});

describe('lockout across two workers', { skip }, () => {
  let ws: Workspace;
  let upstream: Upstream;
  let served: ServeProcess;

  before(async () => {
    ws = createWorkspace();
    upstream = await startUpstream();
    ws.writePolicy(
      clusterPolicy(ws, upstream.url, `  lockout: { max_failures: 3, find_time: 5m, backoff: [30s, 1m] }\n  ip_throttle: { enabled: false, max_failures: 20, find_time: 5m, block: 15m }\n`),
    );
    served = await serveWorkers(ws.configPath);
  });
  after(async () => {
    assert.deepEqual(await stopServe(served), { code: 0, signal: null });
    await upstream.close();
    ws.remove();
  });

  test('wrong codes spread over both workers lock the user after exactly max_failures (3): then 429 mfa_locked on every worker', async () => {
    const jwt = await token('erin');
    const clock = codeClock();
    const { secret } = await enrollTotpOverHttp(served.port, jwt, clock);
    const ask = (code: string): Promise<Reply> => call(served.port, 'GET', '/account/1', { authorization: `Bearer ${jwt}`, 'x-mfa-token': code });
    const wrong: Reply[] = [];
    for (let i = 0; i < 3; i++) wrong.push(await ask(wrongTotp(secret, clock())));
    for (const reply of wrong) {
      assertProblem(reply, 401, 'mfa_invalid', 'the second factor was not accepted');
      assert.equal(reply.headers['www-authenticate'], INVALID_CODE_CHALLENGE);
    }
    const workers = await refusedBy(served, wrong.map((r) => String(r.headers['x-request-id'])));
    assert.deepEqual(new Set(workers.values()), new Set([1, 2]), 'the failures were spread over both workers');

    // Locked: even the right code is refused now, by whichever worker answers.
    const good = oathTotp(secret, clock());
    for (let i = 0; i < 4; i++) {
      const locked = await ask(good);
      assertProblem(locked, 429, 'mfa_locked', 'too many failed second-factor attempts; try again later');
      assert.equal(locked.headers['retry-after'], '30');
      assert.equal(locked.headers['www-authenticate'], undefined);
    }
  });
});

describe('reloading every worker', { skip }, () => {
  let ws: Workspace;
  let upstream: Upstream;
  let served: ServeProcess | undefined;
  // The policy the gateway is given is a symlink into another directory: the gateway watches the
  // link's directory, so writing the file it points to is seen only by SIGHUP or /admin/reload,
  // and swapping the link (as Kubernetes does) is seen by the watcher.
  let real: string;
  let link: string;

  const statusesOf = async (path: string, n: number): Promise<number[]> => {
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) statuses.push((await call(served!.port, 'GET', path)).status);
    return statuses;
  };
  const reloadedBy = (since: number): number[] =>
    served!
      .events()
      .slice(since)
      .filter((e) => e.event === 'config_reloaded' && typeof e.worker === 'number')
      .map((e) => Number(e.worker))
      .sort();
  const withV = (policy: 'public' | 'deny'): string => clusterPolicy(ws, upstream.url, RELAXED_MFA, ROUTES.replace('{ name: v, match: { path: /v }, upstream: app, policy: public }', `{ name: v, match: { path: /v }, upstream: app, policy: ${policy} }`));

  beforeEach(async () => {
    ws = createWorkspace();
    upstream = await startUpstream();
    mkdirSync(join(ws.dir, 'real'));
    mkdirSync(join(ws.dir, 'link'));
    real = join(ws.dir, 'real', 'gateway.yaml');
    link = join(ws.dir, 'link', 'gateway.yaml');
    writeFileSync(real, withV('public'));
    symlinkSync(real, link);
    served = await serveWorkers(link);
  });
  afterEach(async () => {
    assert.deepEqual(await stopServe(served), { code: 0, signal: null });
    served = undefined;
    await upstream.close();
    ws.remove();
  });

  test('SIGHUP to the primary: every worker reloads once, and every request after it sees the new policy', async () => {
    assert.deepEqual(await statusesOf('/v', 6), Array<number>(6).fill(200));
    writeFileSync(real, withV('deny'));
    const since = served!.events().length;
    served!.child.kill('SIGHUP');
    await served!.waitFor((e) => e.role === 'primary' && e.event === 'config_reloaded');
    assert.deepEqual(await statusesOf('/v', 10), Array<number>(10).fill(403));
    // Each process writes its own lines: a worker's may reach the pipe after the primary's.
    await eventually(() => reloadedBy(since).length >= 2);
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(reloadedBy(since), [1, 2], 'once each');
  });

  test('POST /admin/reload with a broken file: refused once, by the primary; every worker keeps the running policy', async () => {
    const before = await scrape(served!);
    writeFileSync(real, withV('deny').replace('policy: deny', 'policy: nonsense'));
    const since = served!.events().length;
    const refused = await call(served!.adminPort, 'POST', '/admin/reload', ADMIN);
    assert.equal(refused.status, 422);
    const body = refused.json<{ status: string; error: string }>();
    assert.equal(body.status, 'refused');
    assert.match(body.error, /gateway\.yaml:\d+: route 2 \(routes\[1\]\)\.policy/);
    const refusal = await served!.waitFor((e) => e.event === 'config_reload_failed');
    assert.equal(refusal.role, 'primary');
    assert.deepEqual(await statusesOf('/v', 6), Array<number>(6).fill(200));
    assert.equal(served!.events().slice(since).filter((e) => e.event === 'config_reload_failed').length, 1, 'one refusal logged, by the primary');
    assert.deepEqual(reloadedBy(since), []);
    const after = await scrape(served!);
    const failures = 'mfa_gateway_config_reloads_total{result="failure"}';
    assert.equal(countOf(after, failures) - countOf(before, failures), 1);

    writeFileSync(real, withV('deny'));
    const accepted = await call(served!.adminPort, 'POST', '/admin/reload', ADMIN);
    assert.equal(accepted.status, 200);
    assert.deepEqual(accepted.json(), { status: 'reloaded' });
    await eventually(() => reloadedBy(since).length === 2);
    assert.deepEqual(reloadedBy(since), [1, 2]);
    assert.deepEqual(await statusesOf('/v', 6), Array<number>(6).fill(403));
  });

  test('a new policy file swapped in reloads every worker once, by the primary\'s watcher', async () => {
    const next = join(ws.dir, 'real', 'gateway-2.yaml');
    writeFileSync(next, withV('deny'));
    const since = served!.events().length;
    const swap = join(ws.dir, 'link', '.swap');
    symlinkSync(next, swap);
    renameSync(swap, link);
    await served!.waitFor((e) => e.role === 'primary' && e.event === 'config_reloaded');
    assert.deepEqual(await statusesOf('/v', 6), Array<number>(6).fill(403));
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.deepEqual(reloadedBy(since), [1, 2], 'once each');
  });
});

describe('HTTPS with two workers', () => {
  test('both workers serve the certificate; a new certificate and key, seen by the primary\'s watcher, reach every worker once', async () => {
    const ws = createWorkspace();
    const upstream = await startUpstream();
    const first = makeCertificate(ws.dir, 'first');
    const second = makeCertificate(ws.dir, 'second');
    const live = { certFile: join(ws.dir, 'live.crt'), keyFile: join(ws.dir, 'live.key') };
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    ws.writePolicy(
      clusterPolicy(ws, upstream.url).replace('listen: { host: 127.0.0.1, port: 0 }', `listen:\n  host: 127.0.0.1\n  port: 0\n  tls: { cert: ${live.certFile}, key: ${live.keyFile} }`),
    );
    const served = await serveWorkers(ws.configPath);
    const fingerprints = async (n: number): Promise<string[]> => {
      const seen: string[] = [];
      for (let i = 0; i < n; i++) {
        const result = await handshake(served.port);
        seen.push(result.ok ? result.fingerprint256 : result.code);
      }
      return seen;
    };
    try {
      assert.equal(served.events().find((e) => e.role === 'primary' && e.event === 'listening')?.protocol, 'https');
      assert.deepEqual(await fingerprints(4), Array<string>(4).fill(first.fingerprint256));
      const since = served.events().length;
      for (const [from, to] of [[second.certFile, live.certFile], [second.keyFile, live.keyFile]] as const) {
        copyFileSync(from, `${to}.tmp`);
        renameSync(`${to}.tmp`, to);
      }
      await served.waitFor((e) => e.role === 'primary' && e.event === 'config_reloaded');
      assert.deepEqual(await fingerprints(4), Array<string>(4).fill(second.fingerprint256));
      await new Promise((resolve) => setTimeout(resolve, 500));
      const reloaded = served.events().slice(since).filter((e) => e.event === 'tls_reloaded').map((e) => e.worker);
      assert.deepEqual(reloaded.sort(), [1, 2], 'each worker swapped its certificate once');
    } finally {
      assert.deepEqual(await stopServe(served), { code: 0, signal: null });
      await upstream.close();
      ws.remove();
    }
  });
});

describe('stopping', { skip }, () => {
  test('SIGTERM to the primary: the in-flight slow request completes on its worker, every worker stops, the primary exits 0', async () => {
    const upstream = await startUpstream({ handler: (_req, res) => setTimeout(() => res.end('slow done'), 600) });
    const ws = createWorkspace();
    ws.writePolicy(clusterPolicy(ws, upstream.url));
    const served = await serveWorkers(ws.configPath);
    try {
      const inFlight = call(served.port, 'GET', '/slow');
      await eventually(() => upstream.received.length === 1);
      served.child.kill('SIGTERM');
      const reply = await inFlight;
      assert.equal(reply.status, 200);
      assert.equal(reply.text, 'slow done');
      assert.deepEqual(await served.exited, { code: 0, signal: null });
      const stopped = served.events().filter((e) => e.event === 'worker_stopped');
      assert.deepEqual(stopped.map((e) => [e.slot, e.code]).sort(), [[1, 0], [2, 0]]);
      assert.deepEqual(served.events().filter((e) => e.event === 'stopped').map((e) => e.worker ?? e.role).sort(), [1, 2, 'primary']);
    } finally {
      served.kill();
      await upstream.close();
      ws.remove();
    }
  });
});

describe('a worker that dies', { skip }, () => {
  let ws: Workspace;
  let upstream: Upstream;
  let served: ServeProcess | undefined;

  beforeEach(async () => {
    ws = createWorkspace();
    upstream = await startUpstream();
    ws.writePolicy(clusterPolicy(ws, upstream.url));
    served = await serveWorkers(ws.configPath);
  });
  afterEach(async () => {
    await stopServe(served);
    served = undefined;
    await upstream.close();
    ws.remove();
  });

  test('is replaced, counted, and reported by /readyz until its replacement is ready; the counters never go down', async () => {
    for (let i = 0; i < 6; i++) assert.equal((await call(served!.port, 'GET', '/p')).status, 200);
    const before = await scrape(served!);
    assert.equal(countOf(before, OK_P), 6);
    const first = await served!.waitFor((e) => e.event === 'worker_ready' && e.slot === 1);

    process.kill(Number(first.pid), 'SIGKILL');
    const exited = await served!.waitFor((e) => e.event === 'worker_exited' && e.slot === 1);
    assert.equal(exited.signal, 'SIGKILL');
    assert.equal(exited.restart_in_ms, 100);
    const notReady = await call(served!.adminPort, 'GET', '/readyz');
    assert.equal(notReady.status, 503);
    assert.match(notReady.json<{ reason: string }>().reason, /^worker 1: (restarting \(the last one was killed by SIGKILL\)|starting)$/);

    const replaced = await served!.waitFor((e) => e.event === 'worker_ready' && e.slot === 1 && e.pid !== first.pid);
    assert.notEqual(replaced.pid, first.pid);
    await eventually(async () => (await call(served!.adminPort, 'GET', '/readyz')).status === 200);

    const since = served!.events().length;
    const missing: Reply[] = [];
    for (let i = 0; i < 6; i++) missing.push(await call(served!.port, 'GET', '/nowhere'));
    const workers = await refusedBy(served!, missing.map((r) => String(r.headers['x-request-id'])));
    assert.deepEqual(new Set(workers.values()), new Set([1, 2]), 'the replacement serves');
    assert.ok(served!.events().slice(since).every((e) => e.event !== 'worker_exited'));

    const after = await scrape(served!);
    assert.equal(sampleValue(after, 'mfa_gateway_worker_restarts_total{worker="1"}'), 1);
    assert.equal(sampleValue(after, 'mfa_gateway_worker_restarts_total{worker="2"}'), 0);
    assert.equal(sampleValue(after, 'mfa_gateway_worker_up{worker="1"}'), 1);
    assert.ok(countOf(after, OK_P) >= countOf(before, OK_P), 'what the dead worker had counted is still in the sum');
  });

  test('and whose replacements cannot start (the policy broke meanwhile): the primary gives up after 5 tries, with the worker\'s error', async () => {
    const first = await served!.waitFor((e) => e.event === 'worker_ready' && e.slot === 1);
    ws.writePolicy(clusterPolicy(ws, upstream.url).replace('policy: public', 'policy: nonsense'));
    process.kill(Number(first.pid), 'SIGKILL');
    const exit = await served!.exited;
    assert.deepEqual(exit, { code: 1, signal: null });
    assert.match(served!.stderr(), /^mfa-gateway: worker 1 could not start \(5 tries in a row\): .*gateway\.yaml:\d+: route 1 \(routes\[0\]\)\.policy/);
    assert.equal(served!.events().filter((e) => e.event === 'worker_forked' && e.slot === 1).length, 1 + 5, 'forked once, then 5 replacements, then no more');
    assert.deepEqual(served!.events().filter((e) => e.event === 'worker_stopped').map((e) => [e.slot, e.code]), [[2, 0]], 'the healthy worker drained');
  });
});

describe('a cluster that cannot start', () => {
  test('the public port is taken: exit 1 with the worker\'s error, each worker forked once', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const busy = (squatter.address() as AddressInfo).port;
    const ws = createWorkspace();
    try {
      ws.writePolicy(clusterPolicy(ws, 'http://127.0.0.1:9').replace('listen: { host: 127.0.0.1, port: 0 }', `listen: { host: 127.0.0.1, port: ${busy} }`));
      const result = spawnSync(process.execPath, [CLI, 'serve', '--config', ws.configPath, '--workers', '2'], { cwd: REPO, encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...ENV } });
      assert.equal(result.status, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`^mfa-gateway: worker [12] could not start: cannot listen: bind EADDRINUSE 127\\.0\\.0\\.1:${busy}\\n$`));
      const events = result.stdout.trim().split('\n').map((line) => JSON.parse(line) as LogEvent);
      assert.equal(events.filter((e) => e.event === 'worker_forked').length, 2);
      assert.equal(events.filter((e) => e.event === 'listening').length, 0);
    } finally {
      squatter.close();
      ws.remove();
    }
  });

  test('a broken policy: exit 1 naming the line, before any worker is forked', () => {
    const ws = createWorkspace();
    try {
      ws.writePolicy(clusterPolicy(ws, 'http://127.0.0.1:9').replace('policy: public', 'policy: nonsense'));
      const result = spawnSync(process.execPath, [CLI, 'serve', '--config', ws.configPath, '--workers', '2'], { cwd: REPO, encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...ENV } });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /^mfa-gateway: .*gateway\.yaml:\d+: route 1 \(routes\[0\]\)\.policy/);
      assert.equal(result.stdout, '');
    } finally {
      ws.remove();
    }
  });
});
