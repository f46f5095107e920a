#!/usr/bin/env node
/**
 * `npm run bench`: mfa-gateway's cost per request against direct, a minimal undici proxy,
 * http-proxy and nginx, in one run on one machine (issue 5; how to read it: bench/README.md).
 *
 * Layout on a 2-core machine: the upstream and every proxy share CPU 0, wrk and this orchestrator
 * use CPU 1, so in the loaded rows CPU 0 is the bottleneck and 1/rps is the CPU time a request
 * costs there. Every row is run `repeats` times, rounds alternate the order of the rows, and a
 * run with errors fails the whole benchmark.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool, request } from 'undici';
import {
  enrolMany,
  enrolUser,
  gatewayClient,
  markUsed,
  nextCode,
  openSession,
  PATHS,
  planCodes,
  signToken,
  type EnrolledUser,
} from './lib/gateway-setup.js';
import { writeFreshCodeScript } from './lib/lua.js';
import { provisionUsers } from './lib/provision.js';
import { measureVerificationFloor, type FloorStep } from './lib/floor.js';
import { cpuProcessMicros, machineFacts } from './lib/machine.js';
import { nginxMissingReason } from './lib/nginx.js';
import { BenchOptionError, parseRunOptions, RUN_SPECS, usage, type RunOptions } from './lib/options.js';
import { BenchError, cpuMicros, hasCommand, rssBytes, sampleRss, type ManagedProcess } from './lib/proc.js';
import { connectProfiler, inspectorUrlFromLog, type RemoteProfiler } from './lib/inspector.js';
import { renderProfileSummary, summariseProfile } from './lib/profile.js';
import { aggregate, renderMarkdown, verdicts, type Mode, type RssRow, type RunReport, type Sample, type TargetInfo } from './lib/report.js';
import { launchGateway, prepareGateway, REPO_ROOT, startNginx, startNodeBaseline, startUpstream, upstreamServed } from './lib/stack.js';
import { fmt } from './lib/stats.js';
import { assertClean, runWrk, type WrkResult } from './lib/wrk.js';

interface Target extends TargetInfo {
  readonly port: number;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The process whose CPU and memory are the proxy's (undefined for direct). */
  readonly proxy?: ManagedProcess;
  /** Every request must reach the upstream (false for forward-auth, which answers itself). */
  readonly reachesUpstream: boolean;
  /** x-bench-subject the upstream must echo ('-' when no identity is added). */
  readonly expectSubject?: string;
  readonly c1: boolean;
  /** New X-MFA-Token per request, from the code plan. */
  readonly freshCodes: boolean;
}

const ALL_TARGETS = ['direct', 'undici', 'http-proxy', 'nginx', 'public', 'bearer-rs256', 'bearer-es256', 'mfa-session', 'mfa-fresh-code', 'forward-auth'] as const;
type TargetName = (typeof ALL_TARGETS)[number];
const GATEWAY_TARGETS: ReadonlySet<TargetName> = new Set(['public', 'bearer-rs256', 'bearer-es256', 'mfa-session', 'mfa-fresh-code', 'forward-auth']);

/** The fresh-code rows are shorter: each request spends one (user, TOTP step), see bench/README.md. */
const FRESH_WARMUP_SEC = 1;
const FRESH_DURATION_SEC = 5;
/** A measured run is repeated when other processes took more than this share of the server CPU. */
const FOREIGN_LIMIT = 0.1;
const MAX_RETRIES = 2;

function log(message: string): void {
  process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function selectTargets(options: RunOptions): Set<TargetName> {
  const known = new Set<string>(ALL_TARGETS);
  for (const [flag, list] of [['--only', options.only], ['--skip', options.skip]] as const) {
    for (const name of list) if (!known.has(name)) throw new BenchOptionError(flag, `unknown target ${JSON.stringify(name)} (targets: ${ALL_TARGETS.join(', ')})`);
  }
  const selected = new Set<TargetName>(options.only.length > 0 ? (options.only as TargetName[]) : ALL_TARGETS);
  for (const name of options.skip) selected.delete(name as TargetName);
  // Every relative column is relative to direct.
  selected.add('direct');
  return selected;
}

async function preflight(target: Target): Promise<void> {
  const reply = await request(`http://127.0.0.1:${target.port}${target.path}`, { headers: { ...target.headers } });
  await reply.body.text();
  const subject = reply.headers['x-bench-subject'];
  if (reply.statusCode !== 200) throw new BenchError(`${target.name}: the check request answered ${reply.statusCode}, not 200`);
  if (target.reachesUpstream && subject !== target.expectSubject) {
    throw new BenchError(`${target.name}: the upstream saw subject ${JSON.stringify(subject)}, expected ${JSON.stringify(target.expectSubject)}`);
  }
  if (!target.reachesUpstream && reply.headers['x-auth-subject'] !== target.expectSubject) {
    throw new BenchError(`${target.name}: forward-auth answered X-Auth-Subject ${JSON.stringify(reply.headers['x-auth-subject'])}, expected ${JSON.stringify(target.expectSubject)}`);
  }
}

/**
 * Every fresh-code user's bearer token through the bearer route once, so the fresh-code row
 * measures the second factor with a warm validated-token cache, like every other gateway row.
 */
async function warmTokens(port: number, users: readonly EnrolledUser[]): Promise<void> {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 50 });
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < users.length) {
      const user = users[next++]!;
      const reply = await pool.request({ method: 'GET', path: PATHS.bearer, headers: { authorization: user.authorization } });
      await reply.body.text();
      if (reply.statusCode !== 200) throw new BenchError(`warming the token of ${user.subject}: ${reply.statusCode}`);
    }
  };
  try {
    await Promise.all(Array.from({ length: 50 }, worker));
  } finally {
    await pool.close();
  }
}

async function main(): Promise<number> {
  const options = parseRunOptions(process.argv.slice(2), process.env);
  if (options.help) {
    process.stdout.write(`${usage('npm run bench [-- flags]', RUN_SPECS)}\n\ntargets: ${ALL_TARGETS.join(', ')}\n`);
    return 0;
  }
  if (process.platform !== 'linux') throw new BenchError('the benchmark reads /proc and uses taskset: Linux only');
  if (!hasCommand('wrk')) throw new BenchError('wrk not found (apt-get install -y wrk)');
  const selected = selectTargets(options);
  // Each user's next-step code is sent a whole pass after its current-step code: with fewer users
  // than a few connections' worth, both could be in flight at once and arrive out of order.
  if (selected.has('mfa-fresh-code') && options.freshFactors < 4 * options.connections) {
    throw new BenchOptionError('--fresh-factors', `must be at least 4 × --connections (${4 * options.connections})`);
  }
  const notes: string[] = [];
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:]/g, '').replace(/\..*$/, 'Z');

  // Pinning: servers on CPU 0, wrk and this process on CPU 1.
  let serverCpus: string | undefined;
  let loadCpus: string | undefined;
  if (!options.pin) notes.push('pinning disabled (--no-pin): rows compete for all CPUs; CPU/request columns are not meaningful');
  else if (!hasCommand('taskset')) notes.push('taskset not found (util-linux): running unpinned');
  else if (cpus().length < 2) notes.push(`only ${cpus().length} CPU: running unpinned, wrk shares the CPU with the servers`);
  else {
    serverCpus = '0';
    loadCpus = '1';
    spawnSync('taskset', ['-a', '-p', '-c', loadCpus, String(process.pid)], { stdio: 'ignore' });
  }
  if (cpus().length > 2) notes.push(`${cpus().length} CPUs: only CPU 0 (servers) and CPU 1 (wrk) are used`);
  const load = loadavg()[0]!;
  if (load > 0.5) {
    log(`warning: load average ${fmt(load, 2)} before the run; other work on this machine makes the numbers noisy`);
    notes.push(`load average ${fmt(load, 2)} at start: the machine was not idle`);
  }
  if (options.repeats < 3) notes.push(`only ${options.repeats} run(s) per row: fewer than the 3 a published run needs`);

  const work = mkdtempSync(join(tmpdir(), 'mfa-bench-'));
  const outDir = resolve(options.out ?? join(REPO_ROOT, 'bench', 'results'));
  mkdirSync(outDir, { recursive: true });
  const profileDir = options.cpuProf ? join(outDir, `profiles-${stamp}`) : undefined;
  const running: ManagedProcess[] = [];
  // Resident memory of every process right after it started: what the RSS rows grow from.
  const startRss: Record<string, number> = {};
  const track = (proc: ManagedProcess): void => {
    running.push(proc);
    startRss[proc.name] = rssBytes(proc.pid);
  };
  log(`work folder ${work}`);
  const machine = machineFacts(REPO_ROOT);
  let failed = true;

  try {
    const upstream = await startUpstream(work, serverCpus);
    track(upstream.process);
    log(`upstream on :${upstream.port}`);

    // ---- gateway, users and tokens (first: the baselines get the same request headers)
    const needGateway = [...selected].some((name) => GATEWAY_TARGETS.has(name));
    let gatewayPort = 0;
    let gatewayProcess: ManagedProcess | undefined;
    let authorization = 'Bearer not-a-token';
    let rsAuthorization = authorization;
    let sessionToken = 'none';
    const subject = 'bench-session';
    let freshUsers: EnrolledUser[] = [];
    let profiler: RemoteProfiler | undefined;
    if (needGateway) {
      const prepared = await prepareGateway(work, upstream.port, {
        maxQueued: Math.max(1000, 2 * options.rssConnections),
        tokenCacheEntries: Math.max(10_000, options.freshFactors + 1000),
      });
      if (selected.has('mfa-fresh-code')) {
        const started = Date.now();
        freshUsers = await provisionUsers(prepared.workspace.configPath, prepared.workspace.signers, 'bench-fresh-', options.freshFactors);
        log(`provisioned ${freshUsers.length} users with an active TOTP factor in ${fmt((Date.now() - started) / 1000, 1)} s (before start, like \`mfa-gateway factors enroll\`)`);
      }
      const gateway = await launchGateway(work, serverCpus, prepared, profileDir !== undefined);
      track(gateway.process);
      if (profileDir !== undefined) {
        mkdirSync(profileDir, { recursive: true });
        profiler = await connectProfiler(inspectorUrlFromLog(gateway.process.logFile));
        notes.push('--cpu-prof: the first round of every gateway row ran under the V8 profiler; those runs carry its overhead (compare the rounds in the JSON)');
      }
      gatewayProcess = gateway.process;
      gatewayPort = gateway.port;
      log(`mfa-gateway on :${gateway.port} (policy ${gateway.workspace.configPath})`);
      const client = gatewayClient(gateway.port, 32);
      try {
        const sessionUser = await enrolUser(client, gateway.workspace.signers, subject);
        authorization = sessionUser.authorization;
        rsAuthorization = `Bearer ${await signToken(gateway.workspace.signers, 'RS256', subject)}`;
        sessionToken = await openSession(client, sessionUser);
        if (options.httpEnrolments > 0) {
          // The HTTP enrolment path (QR PNG + SVG, recovery codes) measured on its own, for the notes.
          const started = Date.now();
          await enrolMany(client, gateway.workspace.signers, 'bench-http-', options.httpEnrolments, 16, () => undefined);
          const seconds = (Date.now() - started) / 1000;
          log(`enrolled ${options.httpEnrolments} users through POST /.mfa/totp/enroll + /confirm in ${fmt(seconds, 1)} s`);
          notes.push(`enrolment through the HTTP endpoints (enroll with QR PNG+SVG, confirm with recovery codes; 16 in flight, before the rows, machine otherwise idle): ${fmt(options.httpEnrolments / seconds)} users/s`);
        }
      } finally {
        await client.close();
      }
    }
    const requestHeaders = { authorization, 'x-session-token': sessionToken };

    // ---- baselines
    const targets: Target[] = [];
    const baselineInfo = (name: TargetName, label: string, description: string): Pick<Target, 'name' | 'label' | 'description' | 'group'> => ({ name, label, description, group: 'baseline' });
    targets.push({
      ...baselineInfo('direct', 'direct', 'wrk straight to the node:http upstream (no proxy)'),
      port: upstream.port,
      path: PATHS.public,
      headers: requestHeaders,
      reachesUpstream: true,
      expectSubject: '-',
      c1: true,
      freshCodes: false,
    });
    // The two Node baselines differ only in the server script and how the table names them.
    const nodeBaselines = [
      { id: 'undici', script: 'undici-proxy', label: 'undici Pool+stream (minimal)', about: 'bench/servers/undici-proxy.ts: undici Pool (100 connections) + stream(), hop-by-hop headers stripped, nothing else' },
      { id: 'http-proxy', script: 'http-proxy', label: 'http-proxy-3 (keep-alive agent)', about: 'bench/servers/http-proxy.ts: http-proxy-3 web() with a keep-alive http.Agent (100 sockets)' },
    ] as const;
    for (const baseline of nodeBaselines) {
      if (!selected.has(baseline.id)) continue;
      const started = await startNodeBaseline(work, serverCpus, baseline.script, upstream.port);
      track(started.process);
      targets.push({
        ...baselineInfo(baseline.id, baseline.label, baseline.about),
        port: started.port,
        path: PATHS.public,
        headers: requestHeaders,
        proxy: started.process,
        reachesUpstream: true,
        expectSubject: '-',
        c1: true,
        freshCodes: false,
      });
    }
    if (selected.has('nginx')) {
      const missing = nginxMissingReason();
      if (missing !== undefined) {
        log(`nginx row skipped: ${missing}`);
        notes.push(`nginx row skipped: ${missing}`);
      } else {
        const started = await startNginx(work, serverCpus, upstream.port);
        track(started.process);
        targets.push({
          ...baselineInfo('nginx', 'nginx (1 worker, keepalive 100)', 'nginx, one worker, proxy_http_version 1.1, upstream keepalive 100, access log off (CPU and RSS: master + worker)'),
          port: started.port,
          path: PATHS.public,
          headers: requestHeaders,
          proxy: started.process,
          reachesUpstream: true,
          expectSubject: '-',
          c1: true,
          freshCodes: false,
        });
      }
    }

    // ---- gateway rows
    if (gatewayProcess !== undefined) {
      const gw = (name: TargetName, label: string, description: string, rest: Partial<Target> & Pick<Target, 'path' | 'headers'>): void => {
        if (!selected.has(name)) return;
        targets.push({
          name,
          label,
          description,
          group: 'gateway',
          port: gatewayPort,
          proxy: gatewayProcess,
          reachesUpstream: true,
          expectSubject: subject,
          c1: false,
          freshCodes: false,
          ...rest,
        });
      };
      gw('public', 'gateway: public route', `policy public on ${PATHS.public} (canonical view, route match, header hygiene, forward)`, {
        path: PATHS.public,
        headers: requestHeaders,
        expectSubject: '-',
        c1: true,
      });
      gw('bearer-rs256', 'gateway: bearer RS256', `policy bearer + scope on ${PATHS.bearer}, RS256 token, validated-token cache warm`, {
        path: PATHS.bearer,
        headers: { ...requestHeaders, authorization: rsAuthorization },
      });
      gw('bearer-es256', 'gateway: bearer ES256', `policy bearer + scope on ${PATHS.bearer}, ES256 token, validated-token cache warm`, {
        path: PATHS.bearer,
        headers: requestHeaders,
        c1: true,
      });
      gw('mfa-session', 'gateway: mfa + session', `policy mfa + scope on ${PATHS.mfa}: ES256 bearer + X-Session-Token (full enforcement)`, {
        path: PATHS.mfa,
        headers: requestHeaders,
        c1: true,
      });
      gw('mfa-fresh-code', 'gateway: mfa + fresh X-MFA-Token', `policy mfa on ${PATHS.mfa}: a new valid TOTP code per request (verify ±1 step, replay record, session issue, SQLite); ${FRESH_WARMUP_SEC} s warm-up, ${FRESH_DURATION_SEC} s runs`, {
        path: PATHS.mfa,
        headers: {},
        expectSubject: undefined,
        freshCodes: true,
      });
      gw('forward-auth', 'gateway: forward-auth (auth-request)', `${PATHS.authRequest} judging GET ${PATHS.mfa} with bearer + session; answers 200 itself, no upstream hop`, {
        path: PATHS.authRequest,
        headers: { ...requestHeaders, 'x-original-method': 'GET', 'x-original-url': `http://127.0.0.1${PATHS.mfa}` },
        reachesUpstream: false,
      });
    }

    // ---- check every row answers what it claims before timing anything
    for (const target of targets) {
      if (target.freshCodes) {
        const user = freshUsers[0]!;
        const code = nextCode(user, Date.now())!;
        const reply = await request(`http://127.0.0.1:${target.port}${target.path}`, { headers: { authorization: user.authorization, 'x-mfa-token': code.code } });
        await reply.body.text();
        user.lastStep = code.step;
        if (reply.statusCode !== 200) throw new BenchError(`${target.name}: a fresh code answered ${reply.statusCode}, not 200`);
        if (reply.headers['x-bench-subject'] !== user.subject) throw new BenchError(`${target.name}: the upstream saw ${JSON.stringify(reply.headers['x-bench-subject'])}, not ${user.subject}`);
        if (typeof reply.headers['x-session-token'] !== 'string') throw new BenchError(`${target.name}: a verified code returned no X-Session-Token`);
      } else {
        await preflight(target);
      }
    }
    log(`rows: ${targets.map((t) => t.name).join(', ')}`);


    // ---- measurement
    const samples: Sample[] = [];
    let scriptCounter = 0;
    let lastFreshRps = 0;

    const runOnce = async (target: Target, connections: number, durationSec: number): Promise<WrkResult> => {
      if (!target.freshCodes) {
        return runWrk({ url: `http://127.0.0.1:${target.port}${target.path}`, connections, durationSec, headers: target.headers, cpus: loadCpus });
      }
      const plan = planCodes(freshUsers, Date.now());
      // Each request spends one (user, step): never start a run the plan cannot cover.
      const need = lastFreshRps * durationSec * 1.15;
      if (lastFreshRps > 0 && plan.order.length < need) {
        const fits = Math.floor(plan.order.length / (lastFreshRps * 1.15));
        if (fits < 2) throw new BenchError(`mfa-fresh-code: ${plan.order.length} unused codes cannot cover a run at ${fmt(lastFreshRps)} rps; raise --fresh-factors`);
        notes.push(`mfa-fresh-code: a run was shortened to ${fits} s to fit ${plan.order.length} unused codes (raise --fresh-factors)`);
        durationSec = fits;
      }
      const script = writeFreshCodeScript(work, `fresh-${scriptCounter++}`, plan, target.path);
      const result = await runWrk({ url: `http://127.0.0.1:${target.port}${target.path}`, connections, durationSec, script, cpus: loadCpus });
      markUsed(plan, Number(result.scriptReport.sent ?? plan.order.length));
      lastFreshRps = Math.max(lastFreshRps, result.rps);
      return result;
    };

    const measure = async (target: Target, mode: Mode, round: number): Promise<Sample> => {
      const connections = mode === 'c50' ? options.connections : 1;
      const warmup = target.freshCodes ? FRESH_WARMUP_SEC : mode === 'c50' ? options.warmupSec : Math.min(options.warmupSec, 1);
      const duration = target.freshCodes ? Math.min(FRESH_DURATION_SEC, options.durationSec) : mode === 'c50' ? options.durationSec : options.c1DurationSec;
      const label = `${target.name} ${mode} run ${round + 1}`;
      for (let attempt = 0; ; attempt++) {
        if (target.freshCodes) await warmTokens(target.port, freshUsers);
        if (warmup > 0) assertClean(`${label} (warm-up)`, await runOnce(target, connections, warmup));
        // Let requests still in flight when the warm-up's wrk quit reach the upstream before counting.
        await new Promise((resolve) => setTimeout(resolve, 250));
        const servedBefore = await upstreamServed(upstream.port);
        const proxyBefore = target.proxy === undefined ? 0 : cpuMicros(target.proxy.pid);
        const upstreamBefore = cpuMicros(upstream.process.pid);
        const cpu0Before = cpuProcessMicros(0);
        const profiling = profiler !== undefined && target.group === 'gateway' && round === 0;
        if (profiling) await profiler!.start();
        const started = Date.now();
        const result = await runOnce(target, connections, duration);
        const wallUs = (Date.now() - started) * 1000;
        if (profiling) await profiler!.stop(join(profileDir!, `${target.name}-${mode}.cpuprofile`));
        const cpu0 = cpuProcessMicros(0) - cpu0Before;
        const proxyCpu = target.proxy === undefined ? 0 : cpuMicros(target.proxy.pid) - proxyBefore;
        const upstreamCpu = cpuMicros(upstream.process.pid) - upstreamBefore;
        const served = (await upstreamServed(upstream.port)) - servedBefore;
        assertClean(label, result);
        // wrk counts completed responses; up to one request per connection was still in flight when it stopped.
        if (target.reachesUpstream && (served < result.requests || served > result.requests + connections)) {
          throw new BenchError(`${label}: wrk completed ${result.requests} requests but the upstream served ${served}`);
        }
        if (!target.reachesUpstream && served !== 0) throw new BenchError(`${label}: forward-auth must not reach the upstream, but it served ${served}`);
        const ours = proxyCpu + upstreamCpu;
        const foreign = serverCpus === undefined ? 0 : Math.max(0, cpu0 - ours) / wallUs;
        if (foreign > FOREIGN_LIMIT && attempt < MAX_RETRIES) {
          log(`  ${label}: other processes used ${fmt(foreign * 100)} % of CPU 0, repeating the run`);
          continue;
        }
        if (foreign > FOREIGN_LIMIT) notes.push(`${label}: other processes used ${fmt(foreign * 100)} % of CPU 0 even after ${MAX_RETRIES} repeats; kept`);
        const sample: Sample = {
          target: target.name,
          mode,
          round,
          connections,
          requests: result.requests,
          durationSec: result.durationSec,
          rps: result.rps,
          p50Ms: result.latencyMs.p50,
          p75Ms: result.latencyMs.p75,
          p90Ms: result.latencyMs.p90,
          p99Ms: result.latencyMs.p99,
          maxMs: result.latencyMs.max,
          proxyCpuUs: proxyCpu,
          upstreamCpuUs: upstreamCpu,
          foreignShare: foreign,
          serverCpuShare: ours / wallUs,
          upstreamServed: served,
          rssBytesAfter: target.proxy === undefined ? rssBytes(upstream.process.pid) : rssBytes(target.proxy.pid),
          retries: attempt,
        };
        log(`  ${label}: ${fmt(result.rps)} rps, p50 ${fmt(result.latencyMs.p50, 3)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms, server CPU ${fmt((ours / wallUs) * 100)} %`);
        return sample;
      }
    };

    const rounds = async (mode: Mode, list: readonly Target[]): Promise<void> => {
      for (let round = 0; round < options.repeats; round++) {
        const order = round % 2 === 0 ? list : [...list].reverse();
        log(`${mode} round ${round + 1}/${options.repeats}: ${order.map((t) => t.name).join(' → ')}`);
        for (const target of order) samples.push(await measure(target, mode, round));
      }
    };

    await rounds('c50', targets);
    await rounds(
      'c1',
      targets.filter((t) => t.c1),
    );

    // ---- memory at many connections
    const rss: RssRow[] = [];
    for (const target of targets.filter((t) => t.proxy !== undefined && (t.group === 'baseline' || t.name === 'mfa-session'))) {
      const pid = target.proxy!.pid;
      const idle = rssBytes(pid);
      const sampler = sampleRss(pid, 100);
      const result = await runWrk({
        url: `http://127.0.0.1:${target.port}${target.path}`,
        connections: options.rssConnections,
        durationSec: options.rssDurationSec,
        headers: target.headers,
        timeoutSec: 10,
        cpus: loadCpus,
      });
      const points = sampler.stop();
      assertClean(`${target.name} at ${options.rssConnections} connections`, result);
      const peak = Math.max(...points.map((p) => p.rss));
      rss.push({ target: target.name, label: target.label, connections: options.rssConnections, startRssBytes: startRss[target.proxy!.name] ?? 0, idleRssBytes: idle, peakRssBytes: peak, rps: result.rps, p99Ms: result.latencyMs.p99 });
      log(`  ${target.name} at ${options.rssConnections} connections: RSS ${fmt(idle / 2 ** 20, 1)} → peak ${fmt(peak / 2 ** 20, 1)} MB, ${fmt(result.rps)} rps`);
    }

    // ---- what a verification costs at least, on this machine (nothing else runs now)
    let floor: FloorStep[] | undefined;
    if (targets.some((t) => t.freshCodes)) {
      floor = measureVerificationFloor();
      log(`verification floor: ${floor.map((step) => `${step.name} ${fmt(step.micros, 1)} µs`).join('; ')}`);
    }

    // ---- results
    const infos: TargetInfo[] = targets.map(({ name, label, description, group }) => ({ name, label, description, group }));
    const c50 = aggregate(samples, infos, 'c50');
    const c1 = aggregate(samples, infos, 'c1');
    if (targets.some((t) => t.name === 'forward-auth')) {
      notes.push('forward-auth answers without an upstream hop: its "CPU vs direct" column is its own cost minus the upstream\'s, so it can be negative');
    }
    const report: RunReport = {
      kind: 'bench',
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      settings: {
        durationSec: options.durationSec,
        warmupSec: options.warmupSec,
        repeats: options.repeats,
        connections: options.connections,
        c1DurationSec: options.c1DurationSec,
        rssConnections: options.rssConnections,
        rssDurationSec: options.rssDurationSec,
        freshFactors: options.freshFactors,
        freshWarmupSec: FRESH_WARMUP_SEC,
        freshDurationSec: Math.min(FRESH_DURATION_SEC, options.durationSec),
        pinning: serverCpus === undefined ? 'none' : `servers on CPU ${serverCpus}, wrk on CPU ${loadCpus}`,
        cpuProfile: profileDir !== undefined,
        requestHeaders: 'Authorization (ES256 JWT) + X-Session-Token on every row except where stated',
      },
      machine,
      targets: infos,
      notes,
      c50,
      c1,
      rss,
      ...(floor !== undefined ? { floor } : {}),
      verdicts: verdicts(c50, c1, rss, floor),
      samples,
    };
    profiler?.close();
    const base = join(outDir, `run-${stamp}`);
    let markdown = renderMarkdown(report);
    if (profileDir !== undefined) {
      // Loaded rows first, then the one-connection rows.
      const profiles = readdirSync(profileDir)
        .filter((file) => file.endsWith('.cpuprofile'))
        .sort((a, b) => Number(a.includes('-c1.')) - Number(b.includes('-c1.')) || a.localeCompare(b));
      const summaries = profiles.map((file) => renderProfileSummary(summariseProfile(join(profileDir, file), REPO_ROOT)));
      writeFileSync(
        join(profileDir, 'SUMMARY.md'),
        `# CPU profiles of the gateway, run-${stamp}\n\nOne profile per gateway row: the measured run of round 1 only (open the .cpuprofile files in Chrome DevTools or VS Code).\n\n${summaries.join('\n')}`,
      );
      markdown += `\nGateway CPU profile: ${join(profileDir, 'SUMMARY.md')}\n`;
    }
    writeFileSync(`${base}.json`, `${JSON.stringify(report, null, 2)}\n`);
    writeFileSync(`${base}.md`, markdown);
    process.stdout.write(`\n${markdown}\n`);
    log(`results: ${base}.md and ${base}.json`);
    failed = false;
    return 0;
  } finally {
    for (const proc of running.reverse()) await proc.stop();
    if (failed) {
      // Keep the policy and the logs of a failed run: they say why.
      log(`logs kept in ${work}`);
    } else if (!options.keepTmp) {
      rmSync(work, { recursive: true, force: true });
    } else {
      log(`kept ${work}`);
    }
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`\nBENCHMARK FAILED: ${message}\n`);
    process.exitCode = error instanceof BenchOptionError ? 2 : 1;
  },
);
