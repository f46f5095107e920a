import type { FloorStep } from './floor.js';
import type { MachineFacts } from './machine.js';
import { fmt, max, median, min } from './stats.js';

/** Aggregation of repeated samples into the table of issue 5, the target verdicts, and the files. */

export type Mode = 'c50' | 'c1';

export interface Sample {
  readonly target: string;
  readonly mode: Mode;
  readonly round: number;
  readonly connections: number;
  readonly requests: number;
  readonly durationSec: number;
  readonly rps: number;
  readonly p50Ms: number;
  readonly p75Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** CPU time of the proxy process tree during the run (0 for direct), µs. */
  readonly proxyCpuUs: number;
  readonly upstreamCpuUs: number;
  /** user+system time on the server CPU not spent by our processes, as a share of the run. */
  readonly foreignShare: number;
  /** Share of the server CPU our processes used (about 1 when the proxy is the bottleneck). */
  readonly serverCpuShare: number;
  readonly upstreamServed: number;
  readonly rssBytesAfter: number;
  /** Measured runs thrown away because something else used the server CPU. */
  readonly retries: number;
}

export interface TargetInfo {
  readonly name: string;
  readonly label: string;
  readonly description: string;
  readonly group: 'baseline' | 'gateway';
}

export interface Row {
  readonly target: string;
  readonly label: string;
  readonly mode: Mode;
  readonly runs: number;
  readonly rps: { readonly median: number; readonly min: number; readonly max: number };
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly p99MaxMs: number;
  /** 1/rps(target) − 1/rps(direct), µs; the server CPU is saturated in the c50 rows. */
  readonly cpuUsPerRequest?: number;
  readonly cpuVsUndici?: number;
  readonly rpsVsUndici?: number;
  /** The proxy process's own CPU per request (from /proc), µs. */
  readonly measuredProxyCpuUs?: number;
  /** c1 only: p50 − p50(direct), µs. */
  readonly addedP50Us?: number;
  readonly addedVsUndici?: number;
  readonly serverCpuShare: number;
  readonly foreignShareMax: number;
  readonly retries: number;
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

export interface Verdict {
  readonly target: string;
  readonly measured: string;
  readonly status: 'met' | 'missed' | 'not measured';
}

export function aggregate(samples: readonly Sample[], targets: readonly TargetInfo[], mode: Mode): Row[] {
  const rows: Row[] = [];
  const pick = (name: string): Sample[] => samples.filter((s) => s.target === name && s.mode === mode);
  const direct = pick('direct');
  const directRps = median(direct.map((s) => s.rps));
  const directP50 = median(direct.map((s) => s.p50Ms));
  const base = (name: string): { cpu?: number; rps: number; added?: number } => {
    const list = pick(name);
    const rps = median(list.map((s) => s.rps));
    return {
      rps,
      ...(list.length > 0 && direct.length > 0 ? { cpu: (1 / rps - 1 / directRps) * 1e6, added: (median(list.map((s) => s.p50Ms)) - directP50) * 1000 } : {}),
    };
  };
  const undici = base('undici');
  for (const target of targets) {
    const list = pick(target.name);
    if (list.length === 0) continue;
    const rps = list.map((s) => s.rps);
    const rpsMedian = median(rps);
    const p50 = median(list.map((s) => s.p50Ms));
    const cpu = target.name === 'direct' || direct.length === 0 ? undefined : (1 / rpsMedian - 1 / directRps) * 1e6;
    const added = target.name === 'direct' || direct.length === 0 ? undefined : (p50 - directP50) * 1000;
    const requests = list.reduce((sum, s) => sum + s.requests, 0);
    const proxyCpu = list.reduce((sum, s) => sum + s.proxyCpuUs, 0);
    rows.push({
      target: target.name,
      label: target.label,
      mode,
      runs: list.length,
      rps: { median: rpsMedian, min: min(rps), max: max(rps) },
      p50Ms: p50,
      p99Ms: median(list.map((s) => s.p99Ms)),
      p99MaxMs: max(list.map((s) => s.p99Ms)),
      ...(cpu !== undefined ? { cpuUsPerRequest: cpu } : {}),
      ...(cpu !== undefined && undici.cpu !== undefined ? { cpuVsUndici: cpu / undici.cpu } : {}),
      ...(undici.rps > 0 && Number.isFinite(undici.rps) ? { rpsVsUndici: rpsMedian / undici.rps } : {}),
      ...(target.name !== 'direct' && requests > 0 ? { measuredProxyCpuUs: proxyCpu / requests } : {}),
      ...(mode === 'c1' && added !== undefined ? { addedP50Us: added } : {}),
      ...(mode === 'c1' && added !== undefined && undici.added !== undefined && undici.added > 0 ? { addedVsUndici: added / undici.added } : {}),
      serverCpuShare: median(list.map((s) => s.serverCpuShare)),
      foreignShareMax: max(list.map((s) => s.foreignShare)),
      retries: list.reduce((sum, s) => sum + s.retries, 0),
    });
  }
  return rows;
}

const MB = 1024 * 1024;

/** The most verifications/s one core can do here: minimal undici proxy + upstream, plus the floor's steps. */
export function floorBound(c50: readonly Row[], floor: readonly FloorStep[]): { readonly baseMicros: number; readonly workMicros: number; readonly rps: number } | undefined {
  const undici = c50.find((r) => r.target === 'undici');
  if (undici === undefined) return undefined;
  const baseMicros = 1e6 / undici.rps.median;
  const workMicros = floor.reduce((sum, step) => sum + step.micros, 0);
  return { baseMicros, workMicros, rps: 1e6 / (baseMicros + workMicros) };
}

export function verdicts(c50: readonly Row[], c1: readonly Row[], rss: readonly RssRow[], floor?: readonly FloorStep[]): Verdict[] {
  const row = (rows: readonly Row[], name: string): Row | undefined => rows.find((r) => r.target === name);
  const out: Verdict[] = [];
  const session = row(c50, 'mfa-session');
  const undici = row(c50, 'undici');
  const httpProxy = row(c50, 'http-proxy');
  const none = (target: string, why: string): Verdict => ({ target, measured: why, status: 'not measured' });

  const t1 = 'mfa session route: CPU/request ≤ 1.15 × minimal undici proxy';
  if (session?.cpuVsUndici !== undefined && session.cpuUsPerRequest !== undefined && undici?.cpuUsPerRequest !== undefined) {
    out.push({ target: t1, measured: `${fmt(session.cpuUsPerRequest, 1)} µs vs ${fmt(undici.cpuUsPerRequest, 1)} µs = ${fmt(session.cpuVsUndici, 2)}×`, status: session.cpuVsUndici <= 1.15 ? 'met' : 'missed' });
  } else out.push(none(t1, 'mfa-session or undici row missing'));

  const t2 = 'mfa session route: requests/s ≥ 2 × http-proxy';
  if (session !== undefined && httpProxy !== undefined) {
    const ratio = session.rps.median / httpProxy.rps.median;
    // The gateway does strictly more than the minimal undici proxy: its ratio bounds the gateway's.
    const undiciRatio = undici === undefined ? '' : `; the minimal undici proxy itself reaches ${fmt(undici.rps.median / httpProxy.rps.median, 2)}× here`;
    out.push({ target: t2, measured: `${fmt(session.rps.median)} vs ${fmt(httpProxy.rps.median)} rps = ${fmt(ratio, 2)}×${undiciRatio}`, status: ratio >= 2 ? 'met' : 'missed' });
  } else out.push(none(t2, 'mfa-session or http-proxy row missing'));

  const t3 = 'bearer ES256 (cache warm): within 5 % of the mfa session route (requests/s)';
  const es = row(c50, 'bearer-es256');
  if (es !== undefined && session !== undefined) {
    const diff = (es.rps.median - session.rps.median) / session.rps.median;
    out.push({ target: t3, measured: `${fmt(es.rps.median)} vs ${fmt(session.rps.median)} rps = ${diff >= 0 ? '+' : ''}${fmt(diff * 100, 1)} %`, status: Math.abs(diff) <= 0.05 ? 'met' : 'missed' });
  } else out.push(none(t3, 'bearer-es256 or mfa-session row missing'));

  const t4 = 'fresh X-MFA-Token: ≥ 3,000 verifications/s on one core, p99 < 10 ms at 50 connections';
  const fresh = row(c50, 'mfa-fresh-code');
  if (fresh !== undefined) {
    const bound = floor === undefined ? undefined : floorBound(c50, floor);
    out.push({
      target: t4,
      measured:
        `${fmt(fresh.rps.median)} /s (min ${fmt(fresh.rps.min)}), p99 ${fmt(fresh.p99Ms, 2)} ms (worst run ${fmt(fresh.p99MaxMs, 2)} ms)` +
        (bound === undefined ? '' : `; floor on this machine: ${fmt(bound.rps)} /s (see "Verification floor")`),
      status: fresh.rps.median >= 3000 && fresh.p99Ms < 10 ? 'met' : 'missed',
    });
  } else out.push(none(t4, 'mfa-fresh-code row missing'));

  const t5 = 'unloaded added latency (p50, -c1) of the mfa session route ≤ 1.2 × minimal undici proxy';
  const sessionC1 = row(c1, 'mfa-session');
  const undiciC1 = row(c1, 'undici');
  if (sessionC1?.addedP50Us !== undefined && undiciC1?.addedP50Us !== undefined) {
    const ratio = sessionC1.addedP50Us / undiciC1.addedP50Us;
    out.push({ target: t5, measured: `+${fmt(sessionC1.addedP50Us)} µs vs +${fmt(undiciC1.addedP50Us)} µs = ${fmt(ratio, 2)}×`, status: ratio <= 1.2 ? 'met' : 'missed' });
  } else out.push(none(t5, 'c1 rows for mfa-session, undici or direct missing'));

  const t6 = 'gateway RSS ≤ 150 MB at 1,000 concurrent keep-alive connections';
  const gatewayRss = rss.find((r) => r.target === 'mfa-session');
  const undiciRss = rss.find((r) => r.target === 'undici');
  if (gatewayRss !== undefined) {
    out.push({
      target: t6,
      measured:
        `peak ${fmt(gatewayRss.peakRssBytes / MB, 1)} MB at ${gatewayRss.connections} connections (${fmt(gatewayRss.startRssBytes / MB, 1)} MB after start, ${fmt(gatewayRss.idleRssBytes / MB, 1)} MB before the row)` +
        (undiciRss === undefined ? '' : `; minimal undici proxy: peak ${fmt(undiciRss.peakRssBytes / MB, 1)} MB`),
      status: gatewayRss.connections >= 1000 && gatewayRss.peakRssBytes <= 150 * MB ? 'met' : gatewayRss.connections >= 1000 ? 'missed' : 'not measured',
    });
  } else out.push(none(t6, 'RSS row missing'));
  out.push(none('RSS flat (< 5 % growth after warm-up) over a 10-minute soak', 'measured by npm run bench:soak, see soak-*.md'));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Markdown

export interface RunReport {
  readonly kind: 'bench';
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly settings: Readonly<Record<string, unknown>>;
  readonly machine: MachineFacts;
  readonly targets: readonly TargetInfo[];
  readonly notes: readonly string[];
  readonly c50: readonly Row[];
  readonly c1: readonly Row[];
  readonly rss: readonly RssRow[];
  readonly floor?: readonly FloorStep[];
  readonly verdicts: readonly Verdict[];
  readonly samples: readonly Sample[];
}

/** First column left-aligned, numbers right-aligned; `textColumns` stay left-aligned too. */
function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>, textColumns = 1): string {
  const align = header.map((_, i) => (i < textColumns ? '---' : '---:'));
  return [header, align, ...rows].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}

const ratio = (value: number | undefined): string => (value === undefined ? '–' : `${fmt(value, 2)}×`);

export function machineLines(machine: MachineFacts): string[] {
  return [
    `- CPU: ${machine.cpuModel}, ${machine.cores} cores (${machine.virtualization}), ${machine.memoryGiB} GiB; ${machine.os}, Linux ${machine.kernel}`,
    `- Node ${machine.node}, wrk ${machine.wrk}, nginx ${machine.nginx}; ${Object.entries(machine.packages).map(([name, version]) => `${name} ${version}`).join(', ')}`,
    `- mfa-gateway commit ${machine.gitCommit}${machine.gitDirty ? ' (src/ had uncommitted changes)' : ''}; load average at start ${machine.loadAverageAtStart.join(' / ')}`,
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
    table(['step', 'µs'], [...report.floor.map((step) => [step.name, fmt(step.micros, 1)]), ['total', fmt(report.floor.reduce((sum, step) => sum + step.micros, 0), 1)]]),
    '',
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

export function renderMarkdown(report: RunReport): string {
  const s = report.settings;
  const lines: string[] = [
    `# mfa-gateway benchmark — ${report.startedAt}`,
    '',
    ...machineLines(report.machine),
    `- wrk -t1 -c${String(s.connections)} -d${String(s.durationSec)}s after ${String(s.warmupSec)} s warm-up, ${String(s.repeats)} runs per row in alternating order; ` +
      `-c1 rows ${String(s.c1DurationSec)} s; pinning: ${String(s.pinning)}`,
    '',
    `## Throughput at ${String(s.connections)} connections`,
    '',
    table(
      ['target', 'rps median', 'rps min', 'rps max', 'p50 ms', 'p99 ms', 'CPU µs/req vs direct', 'CPU ×undici', 'rps ×undici', 'proxy CPU µs/req (measured)', 'server CPU busy'],
      report.c50.map((r) => [
        r.label,
        fmt(r.rps.median),
        fmt(r.rps.min),
        fmt(r.rps.max),
        fmt(r.p50Ms, 2),
        fmt(r.p99Ms, 2),
        fmt(r.cpuUsPerRequest, 1),
        ratio(r.cpuVsUndici),
        ratio(r.rpsVsUndici),
        fmt(r.measuredProxyCpuUs, 1),
        `${fmt(r.serverCpuShare * 100)} %`,
      ]),
    ),
    '',
    '## Unloaded latency (one connection)',
    '',
    table(
      ['target', 'rps median', 'p50 ms', 'p99 ms', 'added p50 µs vs direct', 'added ×undici', 'proxy CPU µs/req (measured)'],
      report.c1.map((r) => [r.label, fmt(r.rps.median), fmt(r.p50Ms, 3), fmt(r.p99Ms, 3), fmt(r.addedP50Us), ratio(r.addedVsUndici), fmt(r.measuredProxyCpuUs, 1)]),
    ),
    '',
    '## Memory at many keep-alive connections',
    '',
    table(
      ['target', 'connections', 'RSS after start MB', 'RSS before MB', 'RSS peak MB', 'rps', 'p99 ms'],
      report.rss.map((r) => [r.label, String(r.connections), fmt(r.startRssBytes / MB, 1), fmt(r.idleRssBytes / MB, 1), fmt(r.peakRssBytes / MB, 1), fmt(r.rps), fmt(r.p99Ms, 1)]),
    ),
    '',
    ...floorSection(report),
    '## Targets of issue 5',
    '',
    table(
      ['target', 'measured', 'verdict'],
      report.verdicts.map((v) => [v.target, v.measured, v.status === 'met' ? 'met' : v.status === 'missed' ? '**missed**' : v.status]),
      3,
    ),
    '',
    '## Rows',
    '',
    ...report.targets.map((t) => `- **${t.label}** — ${t.description}`),
  ];
  if (report.notes.length > 0) lines.push('', '## Notes', '', ...report.notes.map((note) => `- ${note}`));
  lines.push('', 'How to read this: bench/README.md. Raw per-run numbers: the JSON file of the same name.', '');
  return lines.join('\n');
}
