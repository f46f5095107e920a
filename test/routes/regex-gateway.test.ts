/**
 * Route regexes at the gateway's edge: a pattern the matcher cannot run stops `check` and startup;
 * an accepted one cannot be used by an unauthenticated client to stall other requests. The
 * gateway under load runs as a child process (`serve`), so a stall shows up as latency on the
 * client side instead of hanging the test runner.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { startGateway } from '../../src/server/gateway.js';
import { PolicyError } from '../../src/config/errors.js';
import { createLogger } from '../../src/log/logger.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const silent = createLogger({ level: 'silent' });

// A route with the pattern first, so every request's path goes through it.
const ROUTES = String.raw`routes:
  - { name: api, match: { path_regex: '/api/(\w|\d)+' }, upstream: app, policy: public }
  - { name: health, match: { path: /healthz }, upstream: app, policy: public }
default: deny
`;

const REFUSED = String.raw`routes:
  - { name: ok, match: { path_regex: '/api/(\w|\d)+' }, upstream: app, policy: public }
  - name: peek
    match: { path_regex: '/x/(?=admin)' }
    upstream: app
    policy: public
default: deny
`;

describe('a refused path_regex stops check and startup, naming file and line', () => {
  let ws: Workspace;
  before(() => {
    ws = createWorkspace();
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + REFUSED);
  });
  after(() => ws.remove());

  const why = "route 2 (routes[1]).match.path_regex: lookahead '(?=' at offset 3 is not supported: path_regex is matched in linear time";

  test('startGateway rejects with the policy error', async () => {
    await assert.rejects(startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false }), (error: unknown) => {
      assert.ok(error instanceof PolicyError, String(error));
      assert.match(error.message, new RegExp(`gateway\\.yaml:\\d+: ${literal(why)}`));
      return true;
    });
  });

  test('check exits 1 with the same message; an accepted pattern shows as written in the table', () => {
    const refused = spawnSync(process.execPath, [CLI, 'check', '--config', ws.configPath], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
    assert.equal(refused.status, 1, refused.stdout);
    // The `match:` line of routes[1]: policyHead's lines, then `routes:`, routes[0], `- name: peek`.
    const line = policyHead(ws, 'http://127.0.0.1:1').split('\n').length + 3;
    assert.match(refused.stderr, new RegExp(`gateway\\.yaml:${line}: ${literal(why)}`));

    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + ROUTES);
    const ok = spawnSync(process.execPath, [CLI, 'check', '--config', ws.configPath], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /^1 +api +\* +\* +~\/api\/\(\\w\|\\d\)\+ +public/m);
  });
});

describe('an accepted path_regex: a crafted unauthenticated request does not delay others', () => {
  let upstream: Upstream;
  let ws: Workspace;
  let child: ChildProcess;
  let port: number;

  before(async () => {
    upstream = await startUpstream();
    ws = createWorkspace();
    ws.writePolicy(policyHead(ws, upstream.url) + ROUTES);
    child = spawn(process.execPath, [CLI, 'serve', '--config', ws.configPath], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    port = await new Promise<number>((resolve, reject) => {
      let log = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        log += chunk.toString();
        const match = /"address":"127\.0\.0\.1:(\d+)"/.exec(log);
        if (match) resolve(Number(match[1]));
      });
      child.once('exit', (code) => reject(new Error(`serve exited early with ${code}`)));
    });
  });
  after(async () => {
    // SIGKILL: a gateway stalled in a regex would never get to its SIGTERM handler.
    child.kill('SIGKILL');
    await upstream.close();
    ws.remove();
  });

  test('the normal request takes about as long with a crafted one in flight as without', async (t) => {
    // Backtracking takes exponential time on this path: \w and \d both match a digit, so the group
    // can split the digits 2^n ways before the '-' fails each one (26 digits take V8 seconds).
    const crafted = `/api/${'1'.repeat(8_000)}-`;
    assert.equal((await timedGet(port, '/healthz', Infinity)).status, 200);
    const alone: number[] = [];
    for (let i = 0; i < 15; i++) alone.push((await timedGet(port, '/healthz', Infinity)).ms);
    const baseline = medianOf(alone);
    // The limits below only turn a stalled gateway into a failed test; the verdict is the ratio.
    const first = await timedGet(port, crafted, 1000 * baseline);
    assert.equal(first.status, 404, `the crafted path matches no route and is answered (took ${first.ms} ms)`);

    /** Median latency of the normal request, each time sent right behind one to `other`. */
    const behind = async (other: string): Promise<number> => {
      const times: number[] = [];
      for (let i = 0; i < 7; i++) {
        const inFlight = timedGet(port, other, 1000 * baseline);
        times.push((await timedGet(port, '/healthz', 100 * baseline)).ms);
        await inFlight;
      }
      return medianOf(times);
    };
    const withCrafted = await behind(crafted);
    // For scale: the same length that any matcher rejects at once.
    const withLongBenign = await behind(`/other/${'1'.repeat(8_000)}-`);
    const measured = `normal request alone ${baseline.toFixed(2)} ms; with a crafted one in flight ${withCrafted.toFixed(2)} ms; with a benign one of the same length in flight ${withLongBenign.toFixed(2)} ms (medians)`;
    t.diagnostic(measured);
    assert.ok(withCrafted <= 20 * baseline, measured);
  });
});

/** GET on a fresh connection: status and milliseconds to the end of the body; Infinity past `limitMs`. */
function timedGet(port: number, path: string, limitMs: number): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const start = process.hrtime.bigint();
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, ms: Number(process.hrtime.bigint() - start) / 1e6 });
      });
    });
    const timer =
      limitMs === Infinity
        ? undefined
        : setTimeout(() => {
            req.destroy();
            resolve({ status: 0, ms: Infinity });
          }, Math.ceil(limitMs));
    // After a timeout the destroyed request errors too; the promise is settled by then.
    req.on('error', reject);
    req.end();
  });
}

function medianOf(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function literal(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
