import type { FloorStep } from './floor.js';
import type { Interleaved } from './interleave.js';
import type { MachineFacts, RssPoint } from './proc.js';
import type { WrkResult } from './wrk.js';

/** The tables of a run from the repeated samples, the target verdicts (issue 11), and the Markdown of a run and a soak. */

export type Mode = 'c50' | 'c1';

export interface Sample extends Omit<WrkResult, 'raw' | 'script'> {
  readonly target: string;
  readonly mode: Mode;
  readonly round: number;
  /** CPU time of the proxy process tree during the run (0 for direct), µs. */
  readonly proxyCpuUs: number;
  readonly upstreamCpuUs: number;
  /** user+system time on the server CPU not spent by our processes, as a share of the run. */
  readonly foreignShare: number;
  /** Share of the server CPU our processes used (about 1 when the proxy is the bottleneck). */
  readonly serverCpuShare: number;
  readonly upstreamServed: number;
  /** Measured runs thrown away because something else used the server CPU. */
  readonly retries: number;
  /** The gateway's garbage collections during the run (its admin /metrics), on rows the gateway serves. */
  readonly gatewayGc?: GcTally;
}

/** Collections by kind (prom-client's nodejs_gc_duration_seconds): how many, and ms spent. */
export interface GcTally {
  readonly major: number;
  readonly majorMs: number;
  readonly minor: number;
  readonly minorMs: number;
}

/**
 * One round of a row run at the same time as the minimal undici proxy, both on the server CPU with
 * the upstream (bench/run.ts): each process tree's own CPU per request over the same seconds.
 */
export interface PairedSample {
  readonly target: string;
  readonly round: number;
  readonly cpuUsPerRequest: number;
  readonly undiciCpuUsPerRequest: number;
  readonly rps: number;
  readonly undiciRps: number;
  /** Measured runs thrown away because something else used the server CPU. */
  readonly retries: number;
}

export interface TargetInfo {
  readonly name: string;
  readonly label: string;
  readonly description: string;
  readonly group: 'baseline' | 'gateway';
}

export interface RssRow {
  readonly target: string;
  readonly label: string;
  readonly connections: number;
  /** Right after start, before any load. */
  readonly startRssBytes: number;
  /** After all the throughput rows, just before this row. */
  readonly idleRssBytes: number;
  readonly peakRssBytes: number;
  readonly rps: number;
  readonly p99Ms: number;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length === 0 ? NaN : sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** `digits` decimals with thousands separators; '–' for a missing value. */
export function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
const MB = 2 ** 20;

/**
 * What a row costs against the minimal undici proxy, round by round: each round runs every row once
 * (bench/run.ts alternates their order), so a row, direct and undici measured minutes apart on a
 * VM whose speed drifts are compared within their own round. `cost` is what a sample adds to
 * direct's sample of the same round; rounds missing either baseline are left out.
 */
function perRound(list: readonly Sample[], direct: readonly Sample[], undici: readonly Sample[], cost: (own: Sample, base: Sample) => number): number[] {
  const ratios: number[] = [];
  for (const own of list) {
    const base = direct.find((s) => s.round === own.round);
    const reference = undici.find((s) => s.round === own.round);
    if (base === undefined || reference === undefined) continue;
    const ratio = cost(own, base) / cost(reference, base);
    if (Number.isFinite(ratio)) ratios.push(ratio);
  }
  return ratios;
}

/** CPU µs a loaded request adds to direct: the server CPU is saturated, so 1/rps is its cost. */
const addedCpu = (own: Sample, base: Sample): number => (1 / own.rps - 1 / base.rps) * 1e6;
/** µs of p50 latency a one-connection request adds to direct. */
const addedLatency = (own: Sample, base: Sample): number => (own.latencyMs.p50 - base.latencyMs.p50) * 1000;

export function aggregate(samples: readonly Sample[], targets: readonly TargetInfo[], mode: Mode) {
  const pick = (name: string): Sample[] => samples.filter((s) => s.target === name && s.mode === mode);
  const [direct, undiciSamples] = [pick('direct'), pick('undici')];
  const [directRps, directP50] = [median(direct.map((s) => s.rps)), median(direct.map((s) => s.latencyMs.p50))];
  // What a row adds to direct from the medians: CPU µs per request, 1/rps − 1/rps(direct) (the server
  // CPU is saturated in the loaded rows), and µs of p50 latency (reported for the one-connection rows).
  const vsDirect = (name: string): { cpu?: number; added?: number } => {
    const list = pick(name);
    if (list.length === 0 || direct.length === 0 || name === 'direct') return {};
    return { cpu: (1 / median(list.map((s) => s.rps)) - 1 / directRps) * 1e6, added: (median(list.map((s) => s.latencyMs.p50)) - directP50) * 1000 };
  };
  const undici = { rps: median(undiciSamples.map((s) => s.rps)), ...vsDirect('undici') };
  const ratio = (value: number | undefined, base: number | undefined): number | undefined => (value === undefined || base === undefined || !(base > 0) ? undefined : value / base);
  return targets
    .filter((target) => pick(target.name).length > 0)
    .map((target) => {
      const list = pick(target.name);
      const rps = list.map((s) => s.rps);
      const own = vsDirect(target.name);
      const requests = sum(list.map((s) => s.requests));
      const baseline = target.name === 'direct';
      const cpuRounds = baseline ? [] : perRound(list, direct, undiciSamples, addedCpu);
      const addedRounds = baseline || mode !== 'c1' ? [] : perRound(list, direct, undiciSamples, addedLatency);
      return {
        target: target.name,
        label: target.label,
        rps: { median: median(rps), min: Math.min(...rps), max: Math.max(...rps) },
        p50Ms: median(list.map((s) => s.latencyMs.p50)),
        p99Ms: median(list.map((s) => s.latencyMs.p99)),
        p99MaxMs: Math.max(...list.map((s) => s.latencyMs.p99)),
        cpuUsPerRequest: own.cpu,
        /** Per-round CPU ratios against undici, in round order; their median is `cpuVsUndici`. */
        cpuVsUndiciRounds: cpuRounds,
        cpuVsUndici: cpuRounds.length > 0 ? median(cpuRounds) : ratio(own.cpu, undici.cpu),
        rpsVsUndici: ratio(median(rps), undici.rps),
        // The proxy process tree's own CPU per request, from /proc.
        measuredProxyCpuUs: baseline || requests === 0 ? undefined : sum(list.map((s) => s.proxyCpuUs)) / requests,
        addedP50Us: mode === 'c1' ? own.added : undefined,
        addedVsUndiciRounds: addedRounds,
        addedVsUndici: mode !== 'c1' ? undefined : addedRounds.length > 0 ? median(addedRounds) : ratio(own.added, undici.added),
        serverCpuShare: median(list.map((s) => s.serverCpuShare)),
        foreignShareMax: Math.max(...list.map((s) => s.foreignShare)),
        retries: sum(list.map((s) => s.retries)),
      };
    });
}

type Row = ReturnType<typeof aggregate>[number];

/** Per row: the per-round ratios of its CPU per request to the undici proxy's beside it, and their median. */
export function aggregatePaired(samples: readonly PairedSample[], targets: readonly TargetInfo[]) {
  return targets
    .filter((target) => samples.some((s) => s.target === target.name))
    .map((target) => {
      const list = samples.filter((s) => s.target === target.name);
      const ratioRounds = list.map((s) => s.cpuUsPerRequest / s.undiciCpuUsPerRequest);
      return {
        target: target.name,
        label: target.label,
        ratioRounds,
        ratio: median(ratioRounds),
        cpuUsPerRequest: median(list.map((s) => s.cpuUsPerRequest)),
        undiciCpuUsPerRequest: median(list.map((s) => s.undiciCpuUsPerRequest)),
        rps: median(list.map((s) => s.rps)),
        undiciRps: median(list.map((s) => s.undiciRps)),
        retries: sum(list.map((s) => s.retries)),
      };
    });
}

type PairedRow = ReturnType<typeof aggregatePaired>[number];

/**
 * The interleaved one-connection rows (bench/lib/interleave.ts): p50 added to direct's, and against
 * the undici proxy's, window by window (every row sampled each window's seconds), median of the windows.
 */
export function aggregateInterleaved(result: Interleaved, targets: readonly TargetInfo[]) {
  const find = (name: string) => result.targets.find((t) => t.target === name);
  const [direct, undici] = [find('direct'), find('undici')];
  return targets
    .filter((target) => find(target.name) !== undefined)
    .map((target) => {
      const own = find(target.name)!;
      const added = direct === undefined || target.name === 'direct' ? undefined : own.p50Us - direct.p50Us;
      const windowRatios =
        direct === undefined || undici === undefined || target.name === 'direct'
          ? []
          : own.windowP50Us.map((p50, w) => (p50 - direct.windowP50Us[w]!) / (undici.windowP50Us[w]! - direct.windowP50Us[w]!)).filter(Number.isFinite);
      return {
        target: target.name,
        label: target.label,
        requests: own.requests,
        p50Ms: own.p50Us / 1000,
        p99Ms: own.p99Us / 1000,
        addedP50Us: added,
        addedVsUndiciWindows: windowRatios,
        addedVsUndici: windowRatios.length > 0 ? median(windowRatios) : undefined,
      };
    });
}

type InterleavedRow = ReturnType<typeof aggregateInterleaved>[number];

/** The most verifications/s one core can do here: minimal undici proxy + upstream, plus the floor's steps. */
function floorBound(c50: readonly Row[], floor: readonly FloorStep[]): { baseMicros: number; workMicros: number; rps: number } | undefined {
  const undici = c50.find((r) => r.target === 'undici');
  if (undici === undefined) return undefined;
  const baseMicros = 1e6 / undici.rps.median;
  const workMicros = sum(floor.map((step) => step.micros));
  return { baseMicros, workMicros, rps: 1e6 / (baseMicros + workMicros) };
}

/** "per round a / b / c×, median m×", or just "m×" when the rounds could not be paired. */
function rounds(ratios: readonly number[], value: number, digits = 2): string {
  return ratios.length > 0 ? `per round ${ratios.map((r) => fmt(r, digits)).join(' / ')}×, median ${fmt(value, digits)}×` : `${fmt(value, digits)}×`;
}

/** "N windows a–b×, median m×": the windows' range and their median. */
function windows(ratios: readonly number[], value: number): string {
  return `${ratios.length} windows ${fmt(Math.min(...ratios), 2)}–${fmt(Math.max(...ratios), 2)}×, median ${fmt(value, 2)}×`;
}

interface Verdict {
  readonly target: string;
  readonly measured: string;
  readonly status: 'met' | 'missed' | 'not measured';
}

/** The contract-floor row as the verdicts name it, and who cannot beat it when it is past the target. */
const CONTRACT_FLOOR = ['undici + the header contract', 'no node:http + undici proxy keeping the header contract'] as const;

/** The targets of issue 11, each with what this run measured and whether it meets it. */
export function verdicts(c50: readonly Row[], c1: readonly Row[], rss: readonly RssRow[], floor: readonly FloorStep[] | undefined, paired: readonly PairedRow[] = [], interleaved: readonly InterleavedRow[] = []): Verdict[] {
  const find = <T extends { target: string }>(rows: readonly T[], name: string): T | undefined => rows.find((r) => r.target === name);
  const [undici, pub, fresh, forwardAuth] = ['undici', 'public', 'mfa-fresh-code', 'forward-auth'].map((name) => find(c50, name));
  const [sessionC1, undiciC1, contractFloorC1] = [find(c1, 'mfa-session'), find(c1, 'undici'), find(c1, 'contract-floor')];
  const [gatewayRss, undiciRss] = [find(rss, 'mfa-session'), find(rss, 'undici')];
  /** `measure` answers what was measured and whether it meets the target (undefined: not measured). */
  const check = (target: string, missing: string, measure: () => [string, boolean | undefined] | undefined): Verdict => {
    const [measured, met] = measure() ?? [missing, undefined];
    return { target, measured, status: met === undefined ? 'not measured' : met ? 'met' : 'missed' };
  };
  /** The row's CPU per request against the undici proxy's from the one-at-a-time rounds: the ratio and its text. */
  const alone = (row: Row | undefined): { ratio: number; text: string } | undefined =>
    row?.cpuVsUndici === undefined || row.cpuUsPerRequest === undefined || undici?.cpuUsPerRequest === undefined
      ? undefined
      : { ratio: row.cpuVsUndici, text: `${fmt(row.cpuUsPerRequest, 1)} µs vs ${fmt(undici.cpuUsPerRequest, 1)} µs (medians); ${rounds(row.cpuVsUndiciRounds, row.cpuVsUndici)}` };
  /**
   * The row's CPU per request against the minimal undici proxy's, within `limit`. A row also run
   * paired with the proxy is judged on the paired rounds (both measured over the same seconds, so a
   * slower or busier host moves both alike); the one-at-a-time figure is shown beside it.
   */
  const cpuRatio = (name: string, limit: number): [string, boolean] | undefined => {
    const both = find(paired, name);
    const sequential = alone(find(c50, name));
    if (both !== undefined) {
      const text = `paired with undici: ${fmt(both.cpuUsPerRequest, 1)} µs vs ${fmt(both.undiciCpuUsPerRequest, 1)} µs (medians); ${rounds(both.ratioRounds, both.ratio, 3)}`;
      return [sequential === undefined ? text : `${text}; one at a time: ${sequential.text}`, both.ratio <= limit];
    }
    return sequential === undefined ? undefined : [sequential.text, sequential.ratio <= limit];
  };
  /** Another row's ratio measured the way `name` was judged (paired when `name` was), for text beside it. */
  const sameWay = (name: string, other: string): number | undefined => (find(paired, name) !== undefined ? find(paired, other)?.ratio : find(c50, other)?.cpuVsUndici);
  /**
   * A measured target beside its floor row (`what` it is): the least the floor's stack can do on this
   * machine, so a floor already past `limit` shows the target cannot be met on that stack here.
   */
  const beside = (measured: [string, boolean] | undefined, floor: number | undefined, limit: number, what: string, unreachable: string): [string, boolean] | undefined => {
    if (measured === undefined || floor === undefined) return measured;
    return [`${measured[0]} (floor, ${what}: ${fmt(floor, 2)}×${floor > limit ? `; the floor itself is above ${fmt(limit, 2)}× here, so ${unreachable} reaches the target on this machine` : ''})`, measured[1]];
  };
  return [
    check('public route: CPU/request ≤ 1.08 × minimal undici proxy', 'public or undici row missing', () => cpuRatio('public', 1.08)),
    check('mfa + session route: CPU/request ≤ 1.15 × minimal undici proxy', 'mfa-session or undici row missing', () =>
      beside(cpuRatio('mfa-session', 1.15), sameWay('mfa-session', 'contract-floor'), 1.15, ...CONTRACT_FLOOR),
    ),
    check('bearer ES256 (cache warm): CPU/request within 5 % of the mfa + session route', 'bearer-es256 or mfa-session row missing', () => {
      const percent = (diff: number): string => `${diff >= 0 ? '+' : ''}${fmt(diff * 100, 1)} %`;
      // Both against undici in the same round, so their quotient is the two rows compared within it.
      const sameRound = (es: readonly number[], session: readonly number[]): number[] => (es.length > 0 && es.length === session.length ? es.map((r, i) => r / session[i]! - 1) : []);
      const perRound = (diffs: readonly number[]): string => `per round ${diffs.map(percent).join(' / ')}, median ${percent(median(diffs))}`;
      const [esPaired, sessionPaired] = [find(paired, 'bearer-es256'), find(paired, 'mfa-session')];
      const pairedDiffs = esPaired === undefined || sessionPaired === undefined ? [] : sameRound(esPaired.ratioRounds, sessionPaired.ratioRounds);
      if (esPaired !== undefined && sessionPaired !== undefined && pairedDiffs.length > 0) {
        return [`paired with undici: ${fmt(esPaired.ratio, 3)}× vs ${fmt(sessionPaired.ratio, 3)}× (medians); ${perRound(pairedDiffs)}`, Math.abs(median(pairedDiffs)) <= 0.05];
      }
      const [es, session] = [find(c50, 'bearer-es256'), find(c50, 'mfa-session')];
      if (es?.cpuUsPerRequest === undefined || session?.cpuUsPerRequest === undefined) return undefined;
      const diffs = sameRound(es.cpuVsUndiciRounds, session.cpuVsUndiciRounds);
      const diff = diffs.length > 0 ? median(diffs) : (es.cpuUsPerRequest - session.cpuUsPerRequest) / session.cpuUsPerRequest;
      return [`${fmt(es.cpuUsPerRequest, 1)} µs vs ${fmt(session.cpuUsPerRequest, 1)} µs (medians)${diffs.length > 0 ? `; ${perRound(diffs)}` : ` = ${percent(diff)}`}`, Math.abs(diff) <= 0.05];
    }),
    check('fresh X-MFA-Token: requests/s ≥ 25 % of the minimal undici proxy, p99 < 50 ms at 50 connections', 'mfa-fresh-code or undici row missing', () => {
      if (fresh === undefined || undici === undefined) return undefined;
      const share = fresh.rps.median / undici.rps.median;
      const bound = floor === undefined ? undefined : floorBound(c50, floor);
      const floorText = bound === undefined ? '' : `; floor on this machine: ${fmt(bound.rps)} /s = ${fmt((100 * bound.rps) / undici.rps.median)} % (see "Verification floor")`;
      return [`${fmt(fresh.rps.median)} /s = ${fmt(share * 100, 1)} % of ${fmt(undici.rps.median)}, p99 ${fmt(fresh.p99Ms, 2)} ms (worst run ${fmt(fresh.p99MaxMs, 2)} ms)${floorText}`, share >= 0.25 && fresh.p99Ms < 50];
    }),
    check('forward-auth endpoint: requests/s ≥ 1.5 × the public proxy route', 'forward-auth or public row missing', () => {
      if (forwardAuth === undefined || pub === undefined) return undefined;
      const ratio = forwardAuth.rps.median / pub.rps.median;
      return [`${fmt(forwardAuth.rps.median)} vs ${fmt(pub.rps.median)} rps = ${fmt(ratio, 2)}×`, ratio >= 1.5];
    }),
    check('peak RSS at 1,000 keep-alive connections ≤ 1.15 × minimal undici proxy', 'mfa-session or undici RSS row missing', () => {
      if (gatewayRss === undefined || undiciRss === undefined) return undefined;
      const ratio = gatewayRss.peakRssBytes / undiciRss.peakRssBytes;
      const text = `${fmt(gatewayRss.peakRssBytes / MB, 1)} MB vs ${fmt(undiciRss.peakRssBytes / MB, 1)} MB = ${fmt(ratio, 2)}× at ${gatewayRss.connections} connections (gateway ${fmt(gatewayRss.startRssBytes / MB, 1)} MB after start)`;
      return [text, gatewayRss.connections < 1000 ? undefined : ratio <= 1.15];
    }),
    { target: 'RSS flat (< 5 % growth after warm-up) over the soak', measured: 'measured by npm run bench:soak, see soak.md', status: 'not measured' },
    check('unloaded added latency (p50, one connection) of the mfa + session route ≤ 1.2 × minimal undici proxy', 'c1 rows for mfa-session, undici or direct missing', () => {
      const sequential =
        sessionC1?.addedP50Us === undefined || undiciC1?.addedP50Us === undefined || sessionC1.addedVsUndici === undefined
          ? undefined
          : { ratio: sessionC1.addedVsUndici, text: `+${fmt(sessionC1.addedP50Us)} µs vs +${fmt(undiciC1.addedP50Us)} µs (medians); ${rounds(sessionC1.addedVsUndiciRounds, sessionC1.addedVsUndici)}` };
      // Interleaved, when it ran, decides: its rows shared every second of the machine (bench/README.md).
      const [sessionMixed, undiciMixed, floorMixed] = ['mfa-session', 'undici', 'contract-floor'].map((name) => find(interleaved, name));
      if (sessionMixed?.addedVsUndici !== undefined && sessionMixed.addedP50Us !== undefined && undiciMixed?.addedP50Us !== undefined) {
        const text = `interleaved: +${fmt(sessionMixed.addedP50Us)} µs vs +${fmt(undiciMixed.addedP50Us)} µs (p50s); ${windows(sessionMixed.addedVsUndiciWindows, sessionMixed.addedVsUndici)}`;
        const measured: [string, boolean] = [sequential === undefined ? text : `${text}; one at a time: ${sequential.text}`, sessionMixed.addedVsUndici <= 1.2];
        return beside(measured, floorMixed?.addedVsUndici, 1.2, ...CONTRACT_FLOOR);
      }
      if (sequential === undefined) return undefined;
      return beside([sequential.text, sequential.ratio <= 1.2], contractFloorC1?.addedVsUndici, 1.2, ...CONTRACT_FLOOR);
    }),
    check('plugin mode (nginx auth_request + gateway on one core): CPU/request ≤ 1.0 × minimal undici proxy', 'plugin-nginx or undici row missing', () => {
      const measured = cpuRatio('plugin-nginx', 1.0);
      if (measured === undefined) return undefined;
      // Beside it, what asking on every request costs: the gateway doing so, and a Node server that
      // decides nothing (no decision service asked on every request can be cheaper than that).
      const [decidedRatio, floorRatio] = [sameWay('plugin-nginx', 'plugin-decided'), sameWay('plugin-nginx', 'plugin-floor')];
      const decided = decidedRatio === undefined ? '' : `; every request decided by the gateway: ${fmt(decidedRatio, 2)}×`;
      const floorText = floorRatio === undefined ? '' : `; floor, nginx asking a constant Node answer on every request: ${fmt(floorRatio, 2)}×`;
      return [`${measured[0]}${decided}${floorText}`, measured[1]];
    }),
  ];
}

// ---------------------------------------------------------------------------------------------
// Markdown

interface RunReport {
  readonly startedAt: string;
  readonly settings: { readonly [key: string]: number | string | boolean };
  readonly machine: MachineFacts;
  readonly targets: readonly TargetInfo[];
  readonly notes: readonly string[];
  readonly c50: readonly Row[];
  readonly c1: readonly Row[];
  readonly rss: readonly RssRow[];
  readonly floor?: readonly FloorStep[];
  readonly paired?: readonly PairedRow[];
  readonly interleaved?: { readonly block: number; readonly durationSec: number; readonly cycles: number; readonly rows: readonly InterleavedRow[] };
  readonly verdicts: readonly Verdict[];
}

/** First `textColumns` columns left-aligned, numbers right-aligned. */
function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, textColumns = 1): string[] {
  return [header, header.map((_, i) => (i < textColumns ? '---' : '---:')), ...rows].map((cells) => `| ${cells.join(' | ')} |`).concat('');
}

const times = (value: number | undefined, digits = 2): string => (value === undefined ? '–' : `${fmt(value, digits)}×`);
/** The median of the per-round ratios with their range: how much the rounds agreed. */
const withSpread = (value: number | undefined, rounds: readonly number[], digits = 2): string =>
  rounds.length < 2 ? times(value, digits) : `${times(value, digits)} (${fmt(Math.min(...rounds), digits)}–${fmt(Math.max(...rounds), digits)})`;

function machineLines(m: MachineFacts): string[] {
  return [
    `- CPU: ${m.cpuModel}, ${m.cores} cores (${m.virtualization}), ${m.memoryGiB} GiB; ${m.os}, Linux ${m.kernel}`,
    `- Node ${m.node}, wrk ${m.wrk}, nginx ${m.nginx}; ${m.packages}`,
    `- mfa-gateway commit ${m.gitCommit}${m.gitDirty ? ' (src/ had uncommitted changes)' : ''}; load average at start ${m.loadAverageAtStart.join(' / ')}`,
    `- kernel cost here: one system call ${fmt(m.kernelCost.syscallNs)} ns (fstat), one loopback HTTP round trip ${fmt(m.kernelCost.loopbackRoundTripUs, 1)} µs (node:http both ends, keep-alive): the ratios below move with these`,
  ];
}

function pairedSection(report: RunReport): string[] {
  if (report.paired === undefined || report.paired.length === 0) return [];
  const s = report.settings;
  return [
    '## CPU per request, paired with the minimal undici proxy',
    '',
    `Each round runs the row and the minimal undici proxy at the same time, both on the server CPU with the upstream, ` +
      `each under its own wrk -t1 -c${s.connections} (${s.warmup} s warm-up, ${s.duration} s measured), ${s.paired} rounds in alternating order. ` +
      'The ratio is each process tree\'s own CPU per request over the same seconds, so whatever slows the host slows both alike. ' +
      'The CPU-ratio targets below are judged on it (bench/README.md, "Paired rounds").',
    '',
    ...table(
      ['target', 'CPU ×undici (rounds min–max)', 'CPU µs/req', 'undici CPU µs/req beside it', 'rps', 'undici rps beside it'],
      report.paired.map((r) => [r.label, withSpread(r.ratio, r.ratioRounds, 3), fmt(r.cpuUsPerRequest, 1), fmt(r.undiciCpuUsPerRequest, 1), fmt(r.rps), fmt(r.undiciRps)]),
    ),
  ];
}

function interleavedSection(report: RunReport): string[] {
  const mixed = report.interleaved;
  if (mixed === undefined || mixed.rows.length === 0) return [];
  return [
    '## Unloaded latency, interleaved (one connection)',
    '',
    `The one-connection rows again, sharing the same ${fmt(mixed.durationSec)} s: one keep-alive connection each from this harness (a plain HTTP/1.1 client on the load CPU, bench/lib/interleave.ts), ` +
      `one request in flight over all of them, ${mixed.block} requests to one row, then the next, the order rotated every cycle (${fmt(mixed.cycles)} cycles). ` +
      'Latency is the harness\'s own clock around each request, so it includes the client\'s time, which the "added" columns take out with direct\'s. ' +
      'The ratio is taken window by window and the unloaded-latency target is judged on it (bench/README.md, "Interleaved one-connection round").',
    '',
    ...table(
      ['target', 'requests', 'p50 ms', 'p99 ms', 'added p50 µs vs direct', 'added ×undici (windows min–max)'],
      mixed.rows.map((r) => [r.label, fmt(r.requests), fmt(r.p50Ms, 3), fmt(r.p99Ms, 3), fmt(r.addedP50Us), withSpread(r.addedVsUndici, r.addedVsUndiciWindows)]),
    ),
  ];
}

function floorSection(report: RunReport): string[] {
  if (report.floor === undefined) return [];
  const bound = floorBound(report.c50, report.floor);
  return [
    '## Verification floor',
    '',
    'The least work a fresh X-MFA-Token verification does, each step timed alone in this process (bench/lib/floor.ts):',
    '',
    ...table(['step', 'µs'], [...report.floor.map((step) => [step.name, fmt(step.micros, 1)]), ['total', fmt(sum(report.floor.map((step) => step.micros)), 1)]]),
    ...(bound === undefined
      ? []
      : [
          `Minimal undici proxy + upstream on one core: ${fmt(bound.baseMicros, 1)} µs per request (1/rps). Adding the floor: ` +
            `${fmt(bound.baseMicros + bound.workMicros, 1)} µs, so at most **${fmt(bound.rps)} verifications/s** on this core, for any Node gateway that forwards ` +
            `and keeps replay records and sessions in SQLite. wrk's 50 connections are a closed loop: mean latency = 50 / rps ≥ ${fmt(50_000 / bound.rps, 1)} ms at that bound ` +
            `(p99 < 10 ms at 50 connections needs ≥ 5,000 responses/s).`,
          '',
        ]),
  ];
}

export function renderRun(report: RunReport): string {
  const s = report.settings;
  const lines = [
    `# mfa-gateway benchmark — ${report.startedAt}`,
    '',
    ...machineLines(report.machine),
    `- wrk -t1 -c${s.connections} -d${s.duration}s after ${s.warmup} s warm-up, ${s.repeats} runs per row in alternating order; -c1 rows ${s.c1Duration} s; pinning: ${s.pinning}`,
    '',
    `## Throughput at ${s.connections} connections`,
    '',
    ...table(
      ['target', 'rps median', 'rps min', 'rps max', 'p50 ms', 'p99 ms', 'CPU µs/req vs direct', 'CPU ×undici (rounds min–max)', 'rps ×undici', 'proxy CPU µs/req (measured)', 'server CPU busy'],
      report.c50.map((r) => [r.label, fmt(r.rps.median), fmt(r.rps.min), fmt(r.rps.max), fmt(r.p50Ms, 2), fmt(r.p99Ms, 2), fmt(r.cpuUsPerRequest, 1), withSpread(r.cpuVsUndici, r.cpuVsUndiciRounds), times(r.rpsVsUndici), fmt(r.measuredProxyCpuUs, 1), `${fmt(r.serverCpuShare * 100)} %`]),
    ),
    ...pairedSection(report),
    '## Unloaded latency (one connection)',
    '',
    ...table(
      ['target', 'rps median', 'p50 ms', 'p99 ms', 'added p50 µs vs direct', 'added ×undici (rounds min–max)', 'proxy CPU µs/req (measured)'],
      report.c1.map((r) => [r.label, fmt(r.rps.median), fmt(r.p50Ms, 3), fmt(r.p99Ms, 3), fmt(r.addedP50Us), withSpread(r.addedVsUndici, r.addedVsUndiciRounds), fmt(r.measuredProxyCpuUs, 1)]),
    ),
    ...interleavedSection(report),
    '## Memory at many keep-alive connections',
    '',
    ...table(
      ['target', 'connections', 'RSS after start MB', 'RSS before MB', 'RSS peak MB', 'rps', 'p99 ms'],
      report.rss.map((r) => [r.label, String(r.connections), fmt(r.startRssBytes / MB, 1), fmt(r.idleRssBytes / MB, 1), fmt(r.peakRssBytes / MB, 1), fmt(r.rps), fmt(r.p99Ms, 1)]),
    ),
    ...floorSection(report),
    '## Targets of issue 11',
    '',
    ...table(['target', 'measured', 'verdict'], report.verdicts.map((v) => [v.target, v.measured, v.status === 'missed' ? '**missed**' : v.status]), 3),
    '## Rows',
    '',
    ...report.targets.map((t) => `- **${t.label}** — ${t.description}`),
    ...(report.notes.length > 0 ? ['', '## Notes', '', ...report.notes.map((note) => `- ${note}`)] : []),
    '',
    'How to read this: bench/README.md. Every single run: the JSON file of the same time in bench/results/tmp/ (not committed).',
    '',
  ];
  return lines.join('\n');
}

/**
 * The soak's verdict and its Markdown. Growth compares the median RSS of the window right after
 * warm-up with the median of the last window (each as long as the warm-up); the least-squares
 * trend after warm-up catches a steady leak that a small growth hides.
 */
export function soakSummary(startedAt: string, machine: MachineFacts, mix: string, wrk: WrkResult, points: readonly RssPoint[], warmupSec: number) {
  const after = points.filter((p) => p.t >= warmupSec * 1000);
  const [mt, mr] = [sum(after.map((p) => p.t)) / after.length, sum(after.map((p) => p.rss)) / after.length];
  const den = sum(after.map((p) => (p.t - mt) ** 2));
  const end = points[points.length - 1]!.t;
  const baselineBytes = median(after.filter((p) => p.t < 2 * warmupSec * 1000).map((p) => p.rss));
  const finalBytes = median(after.filter((p) => p.t > end - warmupSec * 1000).map((p) => p.rss));
  const growth = (finalBytes - baselineBytes) / baselineBytes;
  const rss = { baselineBytes, finalBytes, growth, slopeBytesPerMinute: den === 0 ? 0 : (sum(after.map((p) => (p.t - mt) * (p.rss - mr))) / den) * 60_000, peakBytes: Math.max(...points.map((p) => p.rss)), pass: growth < 0.05 };
  const every = Math.max(1, Math.round(points.length / 20));
  const signed = (value: number, digits: number): string => `${value >= 0 ? '+' : ''}${fmt(value, digits)}`;
  const markdown = [
    `# mfa-gateway soak — ${startedAt}`,
    '',
    ...machineLines(machine),
    `- ${mix}`,
    '',
    ...table(
      ['measure', 'value'],
      [
        ['requests', `${fmt(wrk.requests)} (${fmt(wrk.rps)} rps, p50 ${fmt(wrk.latencyMs.p50, 2)} ms, p99 ${fmt(wrk.latencyMs.p99, 2)} ms)`],
        ['fresh TOTP verifications', fmt(wrk.script.codes)],
        [`RSS, median of the ${warmupSec} s after a ${warmupSec} s warm-up`, `${fmt(baselineBytes / MB, 1)} MB`],
        [`RSS, median of the last ${warmupSec} s`, `${fmt(finalBytes / MB, 1)} MB`],
        ['growth after warm-up', `${signed(growth * 100, 2)} %`],
        ['trend after warm-up (least squares)', `${signed(rss.slopeBytesPerMinute / MB, 2)} MB/min`],
        ['peak RSS', `${fmt(rss.peakBytes / MB, 1)} MB`],
        ['target: < 5 % growth after warm-up', rss.pass ? 'met' : '**missed**'],
      ],
    ),
    `RSS every ${every} samples (MB): ${points
      .filter((_, i) => i % every === 0)
      .map((p) => fmt(p.rss / MB, 1))
      .join(' ')}`,
    '',
  ].join('\n');
  return { markdown, rss };
}
