#!/usr/bin/env node
/**
 * `npm run bench`: mfa-gateway's cost per request against direct, a minimal undici proxy,
 * http-proxy and nginx, in one run on one machine (targets: issue 11; how to read it: bench/README.md).
 * `npm run bench -- --soak 10m`: the gateway alone under steady mixed load, its RSS sampled.
 *
 * Layout on a 2-core machine: the upstream and every proxy share CPU 0, wrk and this orchestrator
 * use CPU 1, so in the loaded rows CPU 0 is the bottleneck and 1/rps is the CPU time a request
 * costs there. Every row is run `repeats` times, rounds alternate the order of the rows, and a
 * run with errors fails the whole benchmark.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Pool, request } from 'undici';
import { measureVerificationFloor } from './lib/floor.js';
import { interleave, type Interleaved } from './lib/interleave.js';
import { bearer, enrolUser, inParallel, markUsed, nextCode, openSession, PATHS, planCodes, stepOf, TOTP_PERIOD_SECONDS, type User, type Workspace } from './lib/gateway-setup.js';
import { BenchOptionError, parseOptions, usage, type Options, type TargetName } from './lib/options.js';
import { BenchError, cpuBusyMicros, cpuMicros, hasCommand, log, machineFacts, rssBytes, sampleRss, type MachineFacts, type ManagedProcess } from './lib/proc.js';
import { aggregate, aggregateInterleaved, aggregatePaired, fmt, renderRun, soakSummary, verdicts, type GcTally, type Mode, type PairedSample, type RssRow, type Sample, type TargetInfo } from './lib/report.js';
import { prepareSharedStore, type SharedStore } from './lib/shared-store.js';
import { startGateway as launchGateway, NGINX, REPO_ROOT, startNginx, startNodeServer, startPluginNginx, upstreamServed } from './lib/stack.js';
import { assertClean, runWrk, writeScript, type ScriptRequest, type WrkResult } from './lib/wrk.js';

interface Target extends TargetInfo {
  readonly name: TargetName;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The process whose CPU and memory are the proxy's (undefined for direct). */
  readonly proxy: ManagedProcess | undefined;
  /** Plugin mode: the gateway nginx asks, whose CPU counts with the proxy's. */
  readonly companion?: ManagedProcess;
}

/** What both modes share: the options, the temp folder, pinning, the upstream, the notes. */
interface Context {
  readonly options: Options;
  readonly work: string;
  readonly serverCpus?: string;
  readonly loadCpus?: string;
  readonly upstream: ManagedProcess;
  readonly notes: string[];
  readonly profileDir?: string;
  /** Keeps a started process for the final stop and notes its RSS right after start. */
  track(proc: ManagedProcess): ManagedProcess;
  readonly startRss: Map<string, number>;
  /** `--shared`: the store the gateway runs on instead of SQLite. */
  readonly shared?: SharedStore;
  /** Read before anything starts: the load average and the commit are those of the run's start. */
  readonly machine: MachineFacts;
}

interface Outcome {
  readonly name: 'run' | 'soak';
  readonly markdown: string;
  readonly json: unknown;
  readonly exitCode: number;
}

/**
 * The fresh-code rows are shorter: each request spends one (user, TOTP step), see bench/README.md.
 * The warm-up is the other rows' 2 s: with 1 s, V8 was still optimising the verification path for
 * the first 2.5 s of the first measured run (bench/results/issue-11-progress.md).
 */
const FRESH_WARMUP_SEC = 2;
const FRESH_DURATION_SEC = 5;
/** A measured run is repeated when other processes took more than this share of the server CPU. */
const FOREIGN_LIMIT = 0.1;
const MAX_RETRIES = 2;
const FRESH: TargetName = 'mfa-fresh-code';
const BASELINES: ReadonlySet<TargetName> = new Set(['direct', 'undici', 'contract-floor', 'http-proxy', 'nginx']);
/** Rows whose target is a CPU ratio to the undici proxy (or the context of one): also run paired with it. */
const PAIRED_ROWS: ReadonlySet<TargetName> = new Set(['contract-floor', 'public', 'bearer-es256', 'mfa-session', 'plugin-nginx', 'plugin-decided', 'plugin-floor']);
/** The interleaved one-connection round: requests to one row before the next, and windows its ratio is taken in. */
const INTERLEAVE_BLOCK = 50;
const INTERLEAVE_WINDOWS = 10;
/** Rows also measured with one connection (unloaded latency). */
const C1_ROWS: ReadonlySet<TargetName> = new Set(['direct', 'undici', 'contract-floor', 'http-proxy', 'nginx', 'public', 'bearer-es256', 'mfa-session']);
const ROWS: Readonly<Record<TargetName, { label: string; description: string }>> = {
  direct: { label: 'direct', description: 'wrk straight to the node:http upstream (no proxy)' },
  undici: { label: 'undici Pool+stream (minimal)', description: 'bench/servers/undici-proxy.ts: undici Pool (100 connections) + stream(), hop-by-hop headers stripped, nothing else' },
  'contract-floor': {
    label: 'contract floor: undici + mfa header contract (Node)',
    description: `bench/servers/contract-floor.ts: the undici row plus the least a node:http + undici proxy must do per request for the mfa + session row's header contract with every answer in memory (bearer and session token each SHA-256-hashed and looked up, session bound to the subject, request id, credentials and spoofable X-Auth-*/X-Forwarded-* dropped, identity and forwarding headers added, request id on the response, a count and a duration histogram), and none of the gateway's other checks`,
  },
  'http-proxy': { label: 'http-proxy-3 (keep-alive agent)', description: 'bench/servers/http-proxy.ts: http-proxy-3 web() with a keep-alive http.Agent (100 sockets)' },
  nginx: { label: 'nginx (1 worker, keepalive 100)', description: 'nginx, one worker, proxy_http_version 1.1, upstream keepalive 100, access log off (CPU and RSS: master + worker)' },
  public: { label: 'gateway: public route', description: `policy public on ${PATHS.public} (canonical view, route match, header hygiene, forward)` },
  'bearer-rs256': { label: 'gateway: bearer RS256', description: `policy bearer + scope on ${PATHS.bearer}, RS256 token, validated-token cache warm` },
  'bearer-es256': { label: 'gateway: bearer ES256', description: `policy bearer + scope on ${PATHS.bearer}, ES256 token, validated-token cache warm` },
  'mfa-session': { label: 'gateway: mfa + session', description: `policy mfa + scope on ${PATHS.mfa}: ES256 bearer + X-Session-Token (full enforcement)` },
  'mfa-fresh-code': {
    label: 'gateway: mfa + fresh X-MFA-Token',
    description: `policy mfa on ${PATHS.mfa}: a new valid TOTP code per request (verify ±1 step, replay record, session issue, in the store); ${FRESH_WARMUP_SEC} s warm-up, ${FRESH_DURATION_SEC} s runs`,
  },
  'forward-auth': { label: 'gateway: forward-auth (auth-request)', description: `${PATHS.authRequest} judging GET ${PATHS.mfa} with bearer + session; answers 200 itself, no upstream hop` },
  'plugin-nginx': {
    label: 'plugin mode: nginx auth_request + gateway',
    description: `config/examples/nginx.conf as shipped (addresses substituted) in front of the gateway and the upstream: GET ${PATHS.mfa} with bearer + session, judged by the gateway's auth-request endpoint, forwarded by nginx; nginx and the gateway both on CPU 0, their CPU measured together. Every request carries the same client's credentials, so nginx answers most of them from the allows the gateway let it hold (under 2 s each) and asks the gateway about once a second`,
  },
  'plugin-decided': {
    label: 'plugin mode, every request decided (no held answers)',
    description: `the plugin-nginx row with the example's proxy_cache and X-Auth-Request-Cache lines removed (as it says to turn held answers off): the gateway decides every request`,
  },
  'plugin-floor': {
    label: 'plugin floor: nginx auth_request + constant 200 (Node)',
    description: `the plugin-nginx row with bench/servers/allow.ts in the gateway's place: node:http answering every auth subrequest 200 with identity headers and no work, on CPU 0 with nginx, CPU measured together — what plugin mode costs in nginx's two hops and Node's HTTP before any decision`,
  },
};

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));
const pinning = (ctx: Context): string => (ctx.serverCpus === undefined ? 'none' : `servers on CPU ${ctx.serverCpus}, wrk on CPU ${ctx.loadCpus}`);

async function startGateway(ctx: Context, limits: { maxQueued: number; tokenCacheEntries: number }, provision: number): ReturnType<typeof launchGateway> {
  const nodeFlags = ctx.profileDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`];
  const started = await launchGateway(ctx.work, ctx.serverCpus, ctx.upstream.port, limits, provision, nodeFlags, ctx.shared?.yaml);
  ctx.track(started.process);
  log(`mfa-gateway on :${started.process.port} (policy ${started.workspace.configPath})`);
  return started;
}

/** The HTTP enrolment path (QR PNG + SVG, recovery codes), `count` users with 16 in flight. */
async function enrolMany(pool: Pool, workspace: Workspace, prefix: string, count: number): Promise<User[]> {
  const users: User[] = [];
  await inParallel(count, 16, async (i) => void (users[i] = await enrolUser(pool, workspace, `${prefix}${i}`)));
  return users;
}

/** One request per row before timing anything: it must answer 200 and carry the identity the row claims. */
async function check(target: Target, subject: string, fresh: readonly User[]): Promise<void> {
  const user = target.name === FRESH ? fresh[0] : undefined;
  const code = user === undefined ? undefined : nextCode(user, Date.now());
  const reply = await request(target.url, { headers: user === undefined || code === undefined ? { ...target.headers } : { authorization: user.authorization, 'x-mfa-token': code.code } });
  await reply.body.text();
  if (user !== undefined && code !== undefined) user.lastStep = code.step;
  // The upstream echoes the X-Auth-Subject it received ('-' for none); forward-auth answers it itself.
  const identified = target.group === 'gateway' || target.name === 'plugin-floor' || target.name === 'contract-floor';
  const expected = user?.subject ?? (identified && target.name !== 'public' ? subject : '-');
  const header = target.name === 'forward-auth' ? 'x-auth-subject' : 'x-bench-subject';
  if (reply.statusCode !== 200 || reply.headers[header] !== expected) {
    throw new BenchError(`${target.name}: the check request answered ${reply.statusCode} with ${header} ${JSON.stringify(reply.headers[header])}, expected 200 with ${JSON.stringify(expected)}`);
  }
  if (user !== undefined && typeof reply.headers['x-session-token'] !== 'string') throw new BenchError(`${target.name}: a verified code returned no X-Session-Token`);
}

/** The gateway's collection counters so far; undefined when its admin listener does not answer. */
async function gcTally(adminPort: number): Promise<GcTally | undefined> {
  try {
    const reply = await request(`http://127.0.0.1:${adminPort}/metrics`);
    const text = await reply.body.text();
    if (reply.statusCode !== 200) return undefined;
    const read = (field: 'count' | 'sum', kind: string): number => {
      const line = new RegExp(`^nodejs_gc_duration_seconds_${field}\\{kind="${kind}"\\} (\\S+)$`, 'm').exec(text);
      return line === null ? 0 : Number(line[1]);
    };
    return { major: read('count', 'major'), majorMs: read('sum', 'major') * 1000, minor: read('count', 'minor'), minorMs: read('sum', 'minor') * 1000 };
  } catch {
    return undefined;
  }
}

function gcDelta(before: GcTally, after: GcTally): GcTally {
  return { major: after.major - before.major, majorMs: after.majorMs - before.majorMs, minor: after.minor - before.minor, minorMs: after.minorMs - before.minorMs };
}

async function runRows(ctx: Context, startedAt: Date): Promise<Outcome> {
  const { options, notes, upstream } = ctx;
  const selected = options.targets;
  const url = (port: number, path: string): string => `http://127.0.0.1:${port}${path}`;

  // ---- gateway, users and tokens (first: the baselines get the same request headers)
  const subject = 'bench-session';
  let headers: Record<string, string> = { authorization: 'Bearer not-a-token', 'x-session-token': 'none' };
  let rsAuthorization = headers.authorization!;
  let gateway: ManagedProcess | undefined;
  let gatewayAdminPort: number | undefined;
  let fresh: User[] = [];
  // The contract floor needs the gateway's real bearer token and session to send what the gateway rows send.
  if ([...selected].some((name) => !BASELINES.has(name) || name === 'contract-floor')) {
    const limits = { maxQueued: Math.max(1000, 2 * options.rssConnections), tokenCacheEntries: Math.max(10_000, options.freshFactors + 1000) };
    const started = await startGateway(ctx, limits, selected.has('mfa-fresh-code') ? options.freshFactors : 0);
    gateway = started.process;
    gatewayAdminPort = started.workspace.adminPort;
    fresh = started.provisioned;
    const pool = new Pool(url(gateway.port, ''), { connections: 32 });
    try {
      const sessionUser = await enrolUser(pool, started.workspace, subject);
      rsAuthorization = await bearer(started.workspace, 'RS256', subject);
      headers = { authorization: sessionUser.authorization, 'x-session-token': await openSession(pool, sessionUser) };
      if (options.httpEnrolments > 0) {
        const began = Date.now();
        await enrolMany(pool, started.workspace, 'bench-http-', options.httpEnrolments);
        const seconds = (Date.now() - began) / 1000;
        log(`enrolled ${options.httpEnrolments} users through POST /.mfa/totp/enroll + /confirm in ${fmt(seconds, 1)} s`);
        notes.push(`enrolment through the HTTP endpoints (enroll with QR PNG+SVG, confirm with recovery codes; 16 in flight, before the rows, machine otherwise idle): ${fmt(options.httpEnrolments / seconds)} users/s`);
      }
    } finally {
      await pool.close();
    }
  }

  // ---- rows; the baselines send the gateway rows' headers too, so they parse and forward as many bytes
  const targets: Target[] = [];
  const add = (name: TargetName, server: ManagedProcess, path: string, rowHeaders = headers): void => {
    const group = BASELINES.has(name) ? 'baseline' : 'gateway';
    if (selected.has(name)) targets.push({ name, ...ROWS[name], group, url: url(server.port, path), headers: rowHeaders, proxy: name === 'direct' ? undefined : server });
  };
  add('direct', upstream, PATHS.public);
  for (const [name, script] of [['undici', 'undici-proxy'], ['contract-floor', 'contract-floor'], ['http-proxy', 'http-proxy']] as const) {
    if (selected.has(name)) add(name, ctx.track(await startNodeServer(ctx.work, ctx.serverCpus, script, upstream.port)), name === 'contract-floor' ? PATHS.mfa : PATHS.public);
  }
  if (selected.has('nginx') && !hasCommand(NGINX)) {
    notes.push(`nginx row skipped: ${NGINX} not found (apt-get install -y nginx-light)`);
    log(notes[notes.length - 1]!);
  } else if (selected.has('nginx')) add('nginx', ctx.track(await startNginx(ctx.work, ctx.serverCpus, upstream.port)), PATHS.public);
  if (gateway !== undefined) {
    add('public', gateway, PATHS.public);
    add('bearer-rs256', gateway, PATHS.bearer, { ...headers, authorization: rsAuthorization });
    add('bearer-es256', gateway, PATHS.bearer);
    add('mfa-session', gateway, PATHS.mfa);
    add('mfa-fresh-code', gateway, PATHS.mfa, {});
    add('forward-auth', gateway, PATHS.authRequest, { ...headers, 'x-original-method': 'GET', 'x-original-url': `http://127.0.0.1${PATHS.mfa}` });
    if ((selected.has('plugin-nginx') || selected.has('plugin-decided') || selected.has('plugin-floor')) && !hasCommand(NGINX)) {
      notes.push(`plugin-nginx, plugin-decided and plugin-floor rows skipped: ${NGINX} not found (apt-get install -y nginx-light)`);
      log(notes[notes.length - 1]!);
    } else {
      for (const name of ['plugin-nginx', 'plugin-decided'] as const) {
        if (!selected.has(name)) continue;
        const nginx = ctx.track(await startPluginNginx(ctx.work, ctx.serverCpus, gateway.port, upstream.port, `nginx-${name}`, name === 'plugin-nginx'));
        targets.push({ name, ...ROWS[name], group: 'gateway', url: url(nginx.port, PATHS.mfa), headers, proxy: nginx, companion: gateway });
      }
      if (selected.has('plugin-floor')) {
        const allow = ctx.track(await startNodeServer(ctx.work, ctx.serverCpus, 'allow', undefined, subject));
        const nginx = ctx.track(await startPluginNginx(ctx.work, ctx.serverCpus, allow.port, upstream.port, 'nginx-plugin-floor'));
        targets.push({ name: 'plugin-floor', ...ROWS['plugin-floor'], group: 'baseline', url: url(nginx.port, PATHS.mfa), headers, proxy: nginx, companion: allow });
      }
    }
  }

  // ---- check every row answers what it claims before timing anything
  for (const target of targets) await check(target, subject, fresh);
  log(`rows: ${targets.map((t) => t.name).join(', ')}`);

  // ---- measurement
  const samples: Sample[] = [];
  let scripts = 0;
  let lastFreshRps = 0;

  const runOnce = async (target: Target, connections: number, durationSec: number): Promise<WrkResult> => {
    if (target.name !== FRESH) return runWrk({ url: target.url, connections, durationSec, headers: target.headers, cpus: ctx.loadCpus });
    const now = stepOf(Date.now());
    const plan = planCodes(fresh, now, now + 1);
    // Each request spends one (user, step): never start a run the plan cannot cover.
    if (lastFreshRps > 0 && plan.length < lastFreshRps * durationSec * 1.15) {
      const fits = Math.floor(plan.length / (lastFreshRps * 1.15));
      if (fits < 2) throw new BenchError(`mfa-fresh-code: ${plan.length} unused codes cannot cover a run at ${fmt(lastFreshRps)} rps; raise --fresh-factors`);
      notes.push(`mfa-fresh-code: a run was shortened to ${fits} s to fit ${plan.length} unused codes (raise --fresh-factors)`);
      durationSec = fits;
    }
    const script = writeScript(ctx.work, `fresh-${scripts++}`, [], { authorizations: fresh.map((u) => u.authorization), plan, path: PATHS.mfa, every: 1 });
    const result = await runWrk({ url: target.url, connections, durationSec, script, cpus: ctx.loadCpus });
    markUsed(fresh, plan, result.script.codes ?? plan.length);
    lastFreshRps = Math.max(lastFreshRps, result.rps);
    return result;
  };

  const cpuOf = (proc: ManagedProcess | undefined): number => (proc === undefined ? 0 : cpuMicros(proc.pid));
  /** The row's own process trees: the proxy, and in plugin mode the service nginx asks. */
  const proxyCpuOf = (target: Target): number => cpuOf(target.proxy) + cpuOf(target.companion);

  /**
   * The share of the server CPU other processes took during a run (its busy time beyond `ours`, over
   * the run's wall time), and whether to repeat the run: past FOREIGN_LIMIT it is repeated up to
   * MAX_RETRIES times, then kept with a note.
   */
  const foreignUse = (label: string, busy: number, ours: number, wallUs: number, retries: number): { foreignShare: number; repeat: boolean } => {
    const foreignShare = ctx.serverCpus === undefined ? 0 : Math.max(0, busy - ours) / wallUs;
    if (foreignShare <= FOREIGN_LIMIT) return { foreignShare, repeat: false };
    if (retries < MAX_RETRIES) {
      log(`  ${label}: other processes used ${fmt(foreignShare * 100)} % of CPU 0, repeating the run`);
      return { foreignShare, repeat: true };
    }
    notes.push(`${label}: other processes used ${fmt(foreignShare * 100)} % of CPU 0 even after ${MAX_RETRIES} repeats; kept`);
    return { foreignShare, repeat: false };
  };
  /** wrk counts completed responses; up to one request per connection was still in flight when it stopped. */
  const checkServed = (label: string, served: number, requests: number, connections: number): void => {
    if (served < requests || served > requests + connections) throw new BenchError(`${label}: wrk completed ${requests} requests but the upstream served ${served}`);
  };

  const measure = async (target: Target, mode: Mode, round: number): Promise<Sample> => {
    const connections = mode === 'c50' ? options.connections : 1;
    const warmup = target.name === FRESH ? FRESH_WARMUP_SEC : mode === 'c50' ? options.warmup : Math.min(options.warmup, 1);
    const duration = target.name === FRESH ? Math.min(FRESH_DURATION_SEC, options.duration) : mode === 'c50' ? options.duration : options.c1Duration;
    const label = `${target.name} ${mode} run ${round + 1}`;
    for (let retries = 0; ; retries++) {
      // The fresh-code row measures the second factor with a warm validated-token cache, like every other gateway row.
      if (target.name === FRESH) await warmTokens(target.url, fresh);
      if (warmup > 0) assertClean(`${label} (warm-up)`, await runOnce(target, connections, warmup));
      // Let requests still in flight when the warm-up's wrk quit reach the upstream before counting.
      await sleep(250);
      const servedBefore = await upstreamServed(upstream.port);
      const proxyCpu = (): number => proxyCpuOf(target);
      // A row the gateway serves: its collections during the run, from its admin /metrics.
      const gcPort = gateway !== undefined && (target.proxy === gateway || target.companion === gateway) ? gatewayAdminPort : undefined;
      const gcBefore = gcPort === undefined ? undefined : await gcTally(gcPort);
      const [proxyBefore, upstreamBefore, busyBefore, started] = [proxyCpu(), cpuOf(upstream), cpuBusyMicros(0), Date.now()];
      const result = await runOnce(target, connections, duration);
      const wallUs = (Date.now() - started) * 1000;
      const busy = cpuBusyMicros(0) - busyBefore;
      const [proxyCpuUs, upstreamCpuUs] = [proxyCpu() - proxyBefore, cpuOf(upstream) - upstreamBefore];
      const gcAfter = gcPort === undefined ? undefined : await gcTally(gcPort);
      const gatewayGc = gcBefore === undefined || gcAfter === undefined ? undefined : gcDelta(gcBefore, gcAfter);
      const served = (await upstreamServed(upstream.port)) - servedBefore;
      assertClean(label, result);
      if (target.name !== 'forward-auth') checkServed(label, served, result.requests, connections);
      else if (served !== 0) throw new BenchError(`${label}: forward-auth must not reach the upstream, but it served ${served}`);
      const ours = proxyCpuUs + upstreamCpuUs;
      // Busy share over wrk's own timed run, not the wall clock around the process: the fresh-code
      // script reads its 40,000 tokens and codes before the clock starts, while nothing is served.
      const serverCpuShare = ours / (result.durationSec * 1e6);
      const { foreignShare, repeat } = foreignUse(label, busy, ours, wallUs, retries);
      if (repeat) continue;
      const { raw: _raw, script: _script, ...numbers } = result;
      const gcText = gatewayGc === undefined ? '' : `, gateway GC: ${gatewayGc.major} major (${fmt(gatewayGc.majorMs, 1)} ms), ${gatewayGc.minor} minor (${fmt(gatewayGc.minorMs, 1)} ms)`;
      log(`  ${label}: ${fmt(result.rps)} rps, p50 ${fmt(result.latencyMs.p50, 3)} ms, p99 ${fmt(result.latencyMs.p99, 2)} ms, server CPU ${fmt(serverCpuShare * 100)} %${gcText}`);
      return { ...numbers, target: target.name, mode, round, proxyCpuUs, upstreamCpuUs, foreignShare, serverCpuShare, upstreamServed: served, retries, ...(gatewayGc !== undefined ? { gatewayGc } : {}) };
    }
  };

  for (const [mode, list] of [['c50', targets], ['c1', targets.filter((t) => C1_ROWS.has(t.name))]] as const) {
    for (let round = 0; round < options.repeats; round++) {
      // Odd rounds in reverse order: slow drift (thermal, other tenants) spreads over all rows.
      const order = round % 2 === 0 ? list : [...list].reverse();
      log(`${mode} round ${round + 1}/${options.repeats}: ${order.map((t) => t.name).join(' → ')}`);
      for (const target of order) samples.push(await measure(target, mode, round));
    }
  }

  // ---- unloaded latency again, every one-connection row on the same seconds (bench/README.md, "Interleaved one-connection round")
  const c1Targets = targets.filter((t) => C1_ROWS.has(t.name));
  let interleaved: Interleaved | undefined;
  if (options.c1Interleaved > 0 && ['direct', 'undici'].every((name) => c1Targets.some((t) => t.name === name))) {
    log(`interleaved one-connection round, ${options.c1Interleaved} s: ${c1Targets.map((t) => t.name).join(', ')}`);
    const servedBefore = await upstreamServed(upstream.port);
    interleaved = await interleave(c1Targets, { durationSec: options.c1Interleaved, warmupSec: 1, block: INTERLEAVE_BLOCK, windows: INTERLEAVE_WINDOWS });
    const served = (await upstreamServed(upstream.port)) - servedBefore;
    if (served !== interleaved.sent) throw new BenchError(`interleaved one-connection round: ${interleaved.sent} requests answered but the upstream served ${served}`);
    for (const t of interleaved.targets) log(`  ${t.target}: ${fmt(t.requests)} requests, p50 ${fmt(t.p50Us / 1000, 3)} ms, p99 ${fmt(t.p99Us / 1000, 3)} ms`);
  }

  // ---- CPU ratios with the undici proxy running beside the row (bench/README.md, "Paired rounds")
  const paired: PairedSample[] = [];
  const undiciTarget = targets.find((t) => t.name === 'undici');
  const pairedTargets = undiciTarget === undefined ? [] : targets.filter((t) => PAIRED_ROWS.has(t.name));
  const measurePaired = async (target: Target, baseline: Target, round: number): Promise<PairedSample> => {
    const pair = [baseline, target] as const;
    const label = `${target.name} paired run ${round + 1}`;
    const runBoth = (durationSec: number): Promise<WrkResult[]> => Promise.all(pair.map((t) => runOnce(t, options.connections, durationSec)));
    for (let retries = 0; ; retries++) {
      if (options.warmup > 0) (await runBoth(options.warmup)).forEach((result, i) => assertClean(`${label} (warm-up, ${pair[i]!.name})`, result));
      await sleep(250);
      const servedBefore = await upstreamServed(upstream.port);
      const [cpuBefore, upstreamBefore, busyBefore, started] = [pair.map(proxyCpuOf), cpuOf(upstream), cpuBusyMicros(0), Date.now()];
      const results = await runBoth(options.duration);
      const wallUs = (Date.now() - started) * 1000;
      const busy = cpuBusyMicros(0) - busyBefore;
      const cpu = pair.map((t, i) => proxyCpuOf(t) - cpuBefore[i]!);
      const upstreamCpuUs = cpuOf(upstream) - upstreamBefore;
      const served = (await upstreamServed(upstream.port)) - servedBefore;
      results.forEach((result, i) => assertClean(`${label} (${pair[i]!.name})`, result));
      checkServed(label, served, results[0]!.requests + results[1]!.requests, 2 * options.connections);
      if (foreignUse(label, busy, cpu[0]! + cpu[1]! + upstreamCpuUs, wallUs, retries).repeat) continue;
      const [undiciCpuUsPerRequest, cpuUsPerRequest] = [cpu[0]! / results[0]!.requests, cpu[1]! / results[1]!.requests];
      log(`  ${label}: ${fmt(cpuUsPerRequest, 1)} µs/req at ${fmt(results[1]!.rps)} rps beside undici ${fmt(undiciCpuUsPerRequest, 1)} µs/req at ${fmt(results[0]!.rps)} rps: ${fmt(cpuUsPerRequest / undiciCpuUsPerRequest, 3)}×`);
      return { target: target.name, round, cpuUsPerRequest, undiciCpuUsPerRequest, rps: results[1]!.rps, undiciRps: results[0]!.rps, retries };
    }
  };
  for (let round = 0; round < options.paired && pairedTargets.length > 0; round++) {
    const order = round % 2 === 0 ? pairedTargets : [...pairedTargets].reverse();
    log(`paired round ${round + 1}/${options.paired}, each beside undici: ${order.map((t) => t.name).join(' → ')}`);
    for (const target of order) paired.push(await measurePaired(target, undiciTarget!, round));
  }

  // ---- memory at many connections
  const rss: RssRow[] = [];
  // The proxies alone: a row with a companion process (plugin mode) would show half its memory.
  for (const target of targets.filter((t) => t.proxy !== undefined && t.companion === undefined && (t.group === 'baseline' || t.name === 'mfa-session'))) {
    const pid = target.proxy!.pid;
    const idleRssBytes = rssBytes(pid);
    const sampler = sampleRss(pid, 100);
    const result = await runWrk({ url: target.url, connections: options.rssConnections, durationSec: options.rssDuration, headers: target.headers, timeoutSec: 10, cpus: ctx.loadCpus });
    const peakRssBytes = Math.max(...sampler.stop().map((p) => p.rss));
    assertClean(`${target.name} at ${options.rssConnections} connections`, result);
    const startRssBytes = ctx.startRss.get(target.proxy!.name) ?? 0;
    rss.push({ target: target.name, label: target.label, connections: options.rssConnections, startRssBytes, idleRssBytes, peakRssBytes, rps: result.rps, p99Ms: result.latencyMs.p99 });
    log(`  ${target.name} at ${options.rssConnections} connections: RSS ${fmt(idleRssBytes / 2 ** 20, 1)} → peak ${fmt(peakRssBytes / 2 ** 20, 1)} MB, ${fmt(result.rps)} rps`);
  }

  // ---- what a verification costs at least, on this machine (nothing else runs now)
  const floor = selected.has(FRESH) ? measureVerificationFloor() : undefined;
  if (floor !== undefined) log(`verification floor: ${floor.map((step) => `${step.name} ${fmt(step.micros, 1)} µs`).join('; ')}`);

  // ---- results
  const infos: TargetInfo[] = targets.map(({ name, label, description, group }) => ({ name, label, description, group }));
  const [c50, c1, pairedRows] = [aggregate(samples, infos, 'c50'), aggregate(samples, infos, 'c1'), aggregatePaired(paired, infos)];
  const interleavedRows = interleaved === undefined ? [] : aggregateInterleaved(interleaved, infos);
  if (selected.has('forward-auth')) notes.push('forward-auth answers without an upstream hop: its "CPU vs direct" column is its own cost minus the upstream\'s, so it can be negative');
  const { duration, warmup, repeats, connections, c1Duration, c1Interleaved, rssConnections, rssDuration, freshFactors, cpuProf } = options;
  const settings = { duration, warmup, repeats, paired: options.paired, connections, c1Duration, c1Interleaved, rssConnections, rssDuration, freshFactors, freshWarmupSec: FRESH_WARMUP_SEC, freshDurationSec: Math.min(FRESH_DURATION_SEC, duration), pinning: pinning(ctx), cpuProf };
  const interleavedReport = interleaved === undefined ? undefined : { block: interleaved.block, durationSec: interleaved.durationSec, cycles: interleaved.cycles, rows: interleavedRows };
  const report = {
    startedAt: startedAt.toISOString(), settings, machine: ctx.machine, targets: infos, notes, c50, c1, paired: pairedRows, rss, floor,
    ...(interleavedReport !== undefined ? { interleaved: interleavedReport } : {}),
    verdicts: verdicts(c50, c1, rss, floor, pairedRows, interleavedRows),
  };
  return { name: 'run', markdown: renderRun(report), json: { ...report, finishedAt: new Date().toISOString(), samples, pairedSamples: paired, interleavedSamples: interleaved }, exitCode: 0 };
}

/** Every fresh-code user's bearer token once through the bearer route, so its validation is cached. */
async function warmTokens(rowUrl: string, users: readonly User[]): Promise<void> {
  const pool = new Pool(new URL(rowUrl).origin, { connections: 50 });
  try {
    await inParallel(users.length, 50, async (i) => {
      const reply = await pool.request({ method: 'GET', path: PATHS.bearer, headers: { authorization: users[i]!.authorization } });
      await reply.body.text();
      if (reply.statusCode !== 200) throw new BenchError(`warming the token of ${users[i]!.subject}: ${reply.statusCode}`);
    });
  } finally {
    await pool.close();
  }
}

/**
 * The gateway under steady load for `--soak` (a rotation over users and routes — public, bearer
 * RS256/ES256, mfa + session, forward-auth — with fresh TOTP verifications mixed in, so caches,
 * sessions and replay records all see traffic), its RSS sampled. Passes when RSS after warm-up
 * grows by less than 5 %: exit code 0, else 3.
 */
async function runSoak(ctx: Context, startedAt: Date): Promise<Outcome> {
  const { options } = ctx;
  const durationSec = options.soak!;
  // Warm-up: JIT, caches and pools fill in the first minute (a tenth of a short soak); growth
  // compares the window right after warm-up with the last window, each as long as the warm-up.
  const warmupSec = Math.min(60, Math.max(5, Math.round(durationSec / 10)));
  const gateway = await startGateway(ctx, { maxQueued: 1000, tokenCacheEntries: 10_000 }, 0);
  log(`enrolling ${options.soakUsers} users`);
  const pool = new Pool(`http://127.0.0.1:${gateway.process.port}`, { connections: 16 });
  const users = await enrolMany(pool, gateway.workspace, 'soak-', options.soakUsers);
  const rotation: ScriptRequest[] = [];
  for (const user of users) {
    const common = { authorization: user.authorization, 'x-session-token': await openSession(pool, user) };
    const rs = await bearer(gateway.workspace, 'RS256', user.subject);
    rotation.push(
      { path: PATHS.public, headers: common },
      { path: PATHS.bearer, headers: { ...common, authorization: rs } },
      { path: PATHS.bearer, headers: common },
      { path: PATHS.mfa, headers: common },
      { path: PATHS.authRequest, headers: { ...common, 'x-original-method': 'GET', 'x-original-url': `http://127.0.0.1${PATHS.mfa}` } },
    );
  }
  await pool.close();
  // Fresh codes for every user and every step of the soak (each once, after its last used step).
  const plan = planCodes(users, stepOf(Date.now()), stepOf(Date.now() + (durationSec + 60) * 1000));
  const codes = { authorizations: users.map((u) => u.authorization), plan, path: PATHS.mfa, every: 10, clockPeriod: TOTP_PERIOD_SECONDS };
  const script = writeScript(ctx.work, 'soak', rotation, codes);

  log(`soak: wrk -t1 -c${options.connections} -d${durationSec}s, ${rotation.length} requests in rotation + fresh codes, RSS every ${options.soakSampleMs} ms`);
  const sampler = sampleRss(gateway.process.pid, options.soakSampleMs);
  const progress = setInterval(() => log(`  ${Math.round((Date.now() - startedAt.getTime()) / 60_000)} min`), 60_000);
  const result = await runWrk({ url: `http://127.0.0.1:${gateway.process.port}${PATHS.public}`, connections: options.connections, durationSec, script, timeoutSec: 10, cpus: ctx.loadCpus }).finally(() => clearInterval(progress));
  const points = sampler.stop();
  assertClean('soak', result);

  const { machine } = ctx;
  const mix = `wrk -t1 -c${options.connections} for ${fmt(durationSec / 60, 1)} min over ${rotation.length} requests (${options.soakUsers} users × public, bearer RS256, bearer ES256, mfa + session, forward-auth), one in 10 a fresh X-MFA-Token while the user has an unused TOTP step; pinning: ${pinning(ctx)}`;
  const { markdown, rss } = soakSummary(startedAt.toISOString(), machine, mix, result, points, warmupSec);
  const settings = { durationSec, warmupSec, windowSec: warmupSec, connections: options.connections, users: options.soakUsers, sampleMs: options.soakSampleMs, pinning: pinning(ctx) };
  const { raw: _raw, ...wrk } = result;
  const json = { startedAt: startedAt.toISOString(), finishedAt: new Date().toISOString(), settings, machine, wrk, rss, samples: points };
  return { name: 'soak', markdown, json, exitCode: rss.pass ? 0 : 3 };
}

async function main(): Promise<number> {
  const options = parseOptions(process.argv.slice(2), process.env);
  if (options === undefined) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  if (process.platform !== 'linux') throw new BenchError('the benchmark reads /proc and uses taskset: Linux only');
  if (!hasCommand('wrk')) throw new BenchError('wrk not found (apt-get install -y wrk)');
  const startedAt = new Date();
  const stamp = startedAt.toISOString().replace(/[:]/g, '').replace(/\..*$/, 'Z');
  const notes: string[] = [];
  const machine = await machineFacts(REPO_ROOT);
  const outDir = resolve(options.out ?? join(REPO_ROOT, 'bench', 'results'));
  // Raw JSON and profiles: bench/results/tmp/ is git-ignored; only the Markdown summary is committed.
  const tmpOut = join(outDir, 'tmp');
  const profileDir = options.cpuProf ? join(tmpOut, `profiles-${stamp}`) : undefined;
  mkdirSync(profileDir ?? tmpOut, { recursive: true });

  // Pinning: servers on CPU 0, wrk and this process on CPU 1.
  let pin: { serverCpus?: string; loadCpus?: string } = {};
  if (!options.pin) notes.push('pinning disabled (--no-pin): rows compete for all CPUs; CPU/request columns are not meaningful');
  else if (!hasCommand('taskset')) notes.push('taskset not found (util-linux): running unpinned');
  else if (cpus().length < 2) notes.push(`only ${cpus().length} CPU: running unpinned, wrk shares the CPU with the servers`);
  else {
    pin = { serverCpus: '0', loadCpus: '1' };
    spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  }
  if (cpus().length > 2) notes.push(`${cpus().length} CPUs: only CPU 0 (servers) and CPU 1 (wrk) are used`);
  const [loadAtStart] = machine.loadAverageAtStart;
  if (loadAtStart! > 0.5) {
    log(`warning: load average ${fmt(loadAtStart, 2)} before the run; other work on this machine makes the numbers noisy`);
    notes.push(`load average ${fmt(loadAtStart, 2)} at start: the machine was not idle`);
  }
  if (options.soak === undefined && options.repeats < 5) notes.push(`only ${options.repeats} run(s) per row: fewer than the 5 a published run uses`);
  if (profileDir !== undefined) notes.push('--cpu-prof: the gateway ran under the V8 profiler for the whole run; its rows carry the profiler\'s overhead');

  const work = mkdtempSync(join(tmpdir(), 'mfa-bench-'));
  log(`work folder ${work}`);
  const running: ManagedProcess[] = [];
  const startRss = new Map<string, number>();
  const track = (proc: ManagedProcess): ManagedProcess => {
    running.push(proc);
    startRss.set(proc.name, rssBytes(proc.pid));
    return proc;
  };
  let failed = true;
  let shared: SharedStore | undefined;
  try {
    if (options.shared) {
      shared = await prepareSharedStore();
      notes.push('--shared: the gateway ran on PostgreSQL + Redis (this machine\'s servers, unpinned: their CPU is not in the gateway\'s per-request figures)');
    }
    const upstream = track(await startNodeServer(work, pin.serverCpus, 'upstream'));
    log(`upstream on :${upstream.port}`);
    const ctx: Context = { options, work, ...pin, upstream, notes, profileDir, track, startRss, machine, ...(shared !== undefined ? { shared } : {}) };
    const outcome = options.soak === undefined ? await runRows(ctx, startedAt) : await runSoak(ctx, startedAt);
    const markdownFile = join(outDir, `${outcome.name}.md`);
    const jsonFile = join(tmpOut, `${outcome.name}-${stamp}.json`);
    writeFileSync(markdownFile, outcome.markdown);
    writeFileSync(jsonFile, `${JSON.stringify(outcome.json, null, 2)}\n`);
    process.stdout.write(`\n${outcome.markdown}\n`);
    log(`results: ${markdownFile} (every single run: ${jsonFile})`);
    failed = false;
    return outcome.exitCode;
  } finally {
    // The gateway writes its CPU profile while it stops.
    for (const proc of running.reverse()) await proc.stop();
    await shared?.dispose();
    if (profileDir !== undefined) {
      const files = readdirSync(profileDir).filter((file) => file.endsWith('.cpuprofile'));
      log(`CPU profile of the gateway: ${files.map((file) => join(profileDir, file)).join(', ') || `none written to ${profileDir}`} (bench/README.md says how to read it)`);
    }
    // Keep the policy and the logs of a failed run: they say why.
    if (failed || options.keepTmp) log(`work folder kept: ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(error instanceof BenchOptionError ? `bench: ${message}\n` : `\nBENCHMARK FAILED: ${message}\n`);
    process.exitCode = error instanceof BenchOptionError ? 2 : 1;
  },
);
