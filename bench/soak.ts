#!/usr/bin/env node
/**
 * `npm run bench:soak`: the gateway under steady load for 10 minutes (`--minutes N`), its RSS
 * sampled every second. Passes when RSS after warm-up grows by less than 5 %. The load is a
 * rotation over users and routes (public, bearer RS256/ES256, mfa + session, forward-auth) with
 * fresh TOTP verifications mixed in, so caches, sessions and replay records all see traffic.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { enrolMany, gatewayClient, openSession, PATHS, signToken, TOTP_PERIOD_SECONDS } from './lib/gateway-setup.js';
import { writeSoakScript, type RotatedRequest } from './lib/lua.js';
import { machineFacts } from './lib/machine.js';
import { BenchOptionError, parseSoakOptions, SOAK_SPECS, usage } from './lib/options.js';
import { BenchError, hasCommand, sampleRss, type ManagedProcess } from './lib/proc.js';
import { machineLines } from './lib/report.js';
import { launchGateway, prepareGateway, REPO_ROOT, startUpstream } from './lib/stack.js';
import { fmt, median } from './lib/stats.js';
import { stepOf, totpAt } from './lib/totp.js';
import { assertClean, runWrk } from './lib/wrk.js';

const GROWTH_LIMIT = 0.05;
const MB = 2 ** 20;

function log(message: string): void {
  process.stdout.write(`[soak ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

/** Least-squares slope of RSS over time, in bytes per minute. */
function slopePerMinute(points: ReadonlyArray<{ t: number; rss: number }>): number {
  if (points.length < 2) return 0;
  const n = points.length;
  const mt = points.reduce((s, p) => s + p.t, 0) / n;
  const mr = points.reduce((s, p) => s + p.rss, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.t - mt) * (p.rss - mr);
    den += (p.t - mt) ** 2;
  }
  return den === 0 ? 0 : (num / den) * 60_000;
}

async function main(): Promise<number> {
  const options = parseSoakOptions(process.argv.slice(2), process.env);
  if (options.help) {
    process.stdout.write(`${usage('npm run bench:soak [-- flags]', SOAK_SPECS)}\n`);
    return 0;
  }
  if (process.platform !== 'linux') throw new BenchError('the soak reads /proc: Linux only');
  if (!hasCommand('wrk')) throw new BenchError('wrk not found (apt-get install -y wrk)');
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:]/g, '').replace(/\..*$/, 'Z');
  let serverCpus: string | undefined;
  let loadCpus: string | undefined;
  if (options.pin && hasCommand('taskset') && cpus().length >= 2) {
    serverCpus = '0';
    loadCpus = '1';
    spawnSync('taskset', ['-a', '-p', '-c', loadCpus, String(process.pid)], { stdio: 'ignore' });
  }
  const durationSec = Math.round(options.minutes * 60);
  // Warm-up: JIT, caches and pools fill in the first minute (a tenth of a short soak).
  const warmupSec = Math.min(60, Math.max(5, Math.round(durationSec / 10)));
  // Growth compares the median RSS of the window right after warm-up with the last window.
  const windowSec = Math.min(60, Math.max(5, Math.round(durationSec / 10)));
  const work = mkdtempSync(join(tmpdir(), 'mfa-soak-'));
  const outDir = resolve(options.out ?? join(REPO_ROOT, 'bench', 'results'));
  mkdirSync(outDir, { recursive: true });
  const running: ManagedProcess[] = [];
  let failed = true;
  try {
    const upstream = await startUpstream(work, serverCpus);
    running.push(upstream.process);
    const gateway = await launchGateway(work, serverCpus, await prepareGateway(work, upstream.port, { maxQueued: 1000, tokenCacheEntries: 10_000 }));
    running.push(gateway.process);
    log(`upstream :${upstream.port}, mfa-gateway :${gateway.port}; enrolling ${options.users} users`);

    const client = gatewayClient(gateway.port, 16);
    const users = await enrolMany(client, gateway.workspace.signers, 'soak-', options.users, 16, (done) => log(`  enrolled ${done}/${options.users}`));
    const requests: RotatedRequest[] = [];
    for (const user of users) {
      const session = await openSession(client, user);
      const rs = `Bearer ${await signToken(gateway.workspace.signers, 'RS256', user.subject)}`;
      const common = { authorization: user.authorization, 'x-session-token': session };
      requests.push(
        { path: PATHS.public, headers: common },
        { path: PATHS.bearer, headers: { ...common, authorization: rs } },
        { path: PATHS.bearer, headers: common },
        { path: PATHS.mfa, headers: common },
        { path: PATHS.authRequest, headers: { ...common, 'x-original-method': 'GET', 'x-original-url': `http://127.0.0.1${PATHS.mfa}` } },
      );
    }
    await client.close();

    // Fresh codes for every user and every step of the soak (each once, after its last used step).
    const firstStep = stepOf(Date.now(), TOTP_PERIOD_SECONDS);
    const lastStep = stepOf(Date.now() + (durationSec + 60) * 1000, TOTP_PERIOD_SECONDS);
    const codes: Array<{ step: number; user: number; code: string }> = [];
    for (let step = firstStep; step <= lastStep; step++) {
      users.forEach((user, index) => {
        if (step > user.lastStep) codes.push({ step, user: index, code: totpAt(user.secret, step) });
      });
    }
    const script = writeSoakScript(work, 'soak', requests, {
      authorizations: users.map((u) => u.authorization),
      codes,
      periodSeconds: TOTP_PERIOD_SECONDS,
      path: PATHS.mfa,
      every: 10,
    });

    log(`soak: wrk -t1 -c${options.connections} -d${durationSec}s, ${requests.length} requests in rotation + fresh codes, RSS every ${options.sampleMs} ms`);
    const sampler = sampleRss(gateway.process.pid, options.sampleMs);
    const progress = setInterval(() => log(`  ${Math.round((Date.now() - startedAt.getTime()) / 60_000)} min`), 60_000);
    const result = await runWrk({ url: `http://127.0.0.1:${gateway.port}${PATHS.public}`, connections: options.connections, durationSec, script, timeoutSec: 10, cpus: loadCpus });
    clearInterval(progress);
    const points = sampler.stop();
    assertClean('soak', result);

    const afterWarmup = points.filter((p) => p.t >= warmupSec * 1000);
    const first = afterWarmup.filter((p) => p.t < (warmupSec + windowSec) * 1000).map((p) => p.rss);
    const endT = points[points.length - 1]!.t;
    const last = afterWarmup.filter((p) => p.t > endT - windowSec * 1000).map((p) => p.rss);
    const baseline = median(first);
    const final = median(last);
    const growth = (final - baseline) / baseline;
    const slope = slopePerMinute(afterWarmup);
    const peak = Math.max(...points.map((p) => p.rss));
    const pass = growth < GROWTH_LIMIT;
    const verified = Number(result.scriptReport.verified ?? '0');

    const machine = machineFacts(REPO_ROOT);
    const summary = {
      kind: 'soak',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      settings: { minutes: options.minutes, durationSec, warmupSec, windowSec, connections: options.connections, users: options.users, sampleMs: options.sampleMs, pinning: serverCpus === undefined ? 'none' : `servers on CPU ${serverCpus}, wrk on CPU ${loadCpus}` },
      machine,
      requests: result.requests,
      rps: result.rps,
      p50Ms: result.latencyMs.p50,
      p99Ms: result.latencyMs.p99,
      freshVerifications: verified,
      rss: { baselineBytes: baseline, finalBytes: final, growth, slopeBytesPerMinute: slope, peakBytes: peak },
      verdict: pass ? 'met' : 'missed',
      samples: points,
    };
    const markdown = [
      `# mfa-gateway soak — ${summary.startedAt}`,
      '',
      ...machineLines(machine),
      `- wrk -t1 -c${options.connections} for ${fmt(durationSec / 60, 1)} min over ${requests.length} requests (${options.users} users × public, bearer RS256, bearer ES256, mfa + session, forward-auth), one in 10 a fresh X-MFA-Token while the user has an unused TOTP step`,
      '',
      '| measure | value |',
      '| --- | ---: |',
      `| requests | ${fmt(result.requests)} (${fmt(result.rps)} rps, p50 ${fmt(result.latencyMs.p50, 2)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms) |`,
      `| fresh TOTP verifications | ${fmt(verified)} |`,
      `| RSS, median of the ${windowSec} s after a ${warmupSec} s warm-up | ${fmt(baseline / MB, 1)} MB |`,
      `| RSS, median of the last ${windowSec} s | ${fmt(final / MB, 1)} MB |`,
      `| growth after warm-up | ${growth >= 0 ? '+' : ''}${fmt(growth * 100, 2)} % |`,
      `| trend after warm-up (least squares) | ${slope >= 0 ? '+' : ''}${fmt(slope / MB, 2)} MB/min |`,
      `| peak RSS | ${fmt(peak / MB, 1)} MB |`,
      `| target: < 5 % growth after warm-up | ${pass ? 'met' : '**missed**'} |`,
      '',
      `RSS every ${fmt(Math.max(1, Math.round(points.length / 20)))} samples (MB): ${points
        .filter((_, i) => i % Math.max(1, Math.round(points.length / 20)) === 0)
        .map((p) => fmt(p.rss / MB, 1))
        .join(' ')}`,
      '',
    ].join('\n');
    const base = join(outDir, `soak-${stamp}`);
    writeFileSync(`${base}.json`, `${JSON.stringify(summary, null, 2)}\n`);
    writeFileSync(`${base}.md`, markdown);
    process.stdout.write(`\n${markdown}\n`);
    log(`results: ${base}.md and ${base}.json`);
    failed = false;
    return pass ? 0 : 3;
  } finally {
    for (const proc of running.reverse()) await proc.stop();
    if (failed || options.keepTmp) log(`work folder kept: ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`\nSOAK FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = error instanceof BenchOptionError ? 2 : 1;
  },
);
