/**
 * Command-line flags and environment variables of `npm run bench` / `npm run bench:soak`.
 * A flag wins over its environment variable; every value is validated before anything starts.
 */

export class BenchOptionError extends Error {
  readonly option: string;
  constructor(option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = 'BenchOptionError';
    this.option = option;
  }
}

interface Spec {
  readonly flag: string;
  readonly env: string;
  readonly kind: 'int' | 'number' | 'string' | 'bool' | 'list';
  readonly help: string;
}

export type RawOptions = Map<string, string | boolean>;

/** Parses `--name value`, `--name=value` and boolean `--name` against a closed set of specs. */
export function parseFlags(argv: readonly string[], specs: readonly Spec[], env: NodeJS.ProcessEnv): RawOptions {
  const byFlag = new Map(specs.map((spec) => [spec.flag, spec]));
  const values: RawOptions = new Map();
  for (const spec of specs) {
    const fromEnv = env[spec.env];
    if (fromEnv !== undefined && fromEnv !== '') values.set(spec.flag, spec.kind === 'bool' ? fromEnv !== '0' && fromEnv !== 'false' : fromEnv);
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new BenchOptionError(arg, 'unexpected argument (flags start with --; see --help)');
    const eq = arg.indexOf('=');
    const name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    if (name === 'help') {
      values.set('help', true);
      continue;
    }
    const negated = name.startsWith('no-') && byFlag.get(name.slice(3))?.kind === 'bool';
    const spec = byFlag.get(negated ? name.slice(3) : name);
    if (spec === undefined) throw new BenchOptionError(`--${name}`, 'unknown flag (see --help)');
    if (spec.kind === 'bool') {
      if (eq !== -1) throw new BenchOptionError(`--${name}`, 'is a switch and takes no value');
      values.set(spec.flag, !negated);
      continue;
    }
    const value = eq === -1 ? argv[++i] : arg.slice(eq + 1);
    if (value === undefined) throw new BenchOptionError(`--${name}`, 'needs a value');
    values.set(spec.flag, value);
  }
  return values;
}

export function usage(title: string, specs: readonly Spec[]): string {
  const lines = [title, '', 'flags (environment variable in brackets):'];
  for (const spec of specs) {
    const shown = spec.kind === 'bool' ? `--${spec.flag}` : `--${spec.flag} ${spec.kind === 'list' ? 'a,b' : spec.kind === 'string' ? 'DIR' : 'N'}`;
    lines.push(`  ${shown.padEnd(26)} ${spec.help} [${spec.env}]`);
  }
  return lines.join('\n');
}

function intOption(raw: RawOptions, flag: string, fallback: number, min: number, max: number): number {
  const value = raw.get(flag);
  if (value === undefined) return fallback;
  const text = String(value);
  if (!/^\d+$/.test(text)) throw new BenchOptionError(`--${flag}`, `not a whole number: ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n < min || n > max) throw new BenchOptionError(`--${flag}`, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function numberOption(raw: RawOptions, flag: string, fallback: number, min: number, max: number): number {
  const value = raw.get(flag);
  if (value === undefined) return fallback;
  const n = Number(String(value));
  if (!Number.isFinite(n) || n < min || n > max) throw new BenchOptionError(`--${flag}`, `must be a number between ${min} and ${max}, got ${JSON.stringify(String(value))}`);
  return n;
}

function listOption(raw: RawOptions, flag: string): string[] {
  const value = raw.get(flag);
  if (value === undefined || value === true) return [];
  return String(value)
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function boolOption(raw: RawOptions, flag: string, fallback: boolean): boolean {
  const value = raw.get(flag);
  return value === undefined ? fallback : value === true;
}

function stringOption(raw: RawOptions, flag: string): string | undefined {
  const value = raw.get(flag);
  return value === undefined || typeof value === 'boolean' ? undefined : value;
}

// ---------------------------------------------------------------------------------------------
// npm run bench

export const RUN_SPECS: readonly Spec[] = [
  { flag: 'duration', env: 'BENCH_DURATION', kind: 'int', help: 'seconds of each measured wrk run at -c50 (default 8)' },
  { flag: 'warmup', env: 'BENCH_WARMUP', kind: 'int', help: 'seconds of wrk warm-up before each measured run (default 2)' },
  { flag: 'repeats', env: 'BENCH_REPEATS', kind: 'int', help: 'measured runs per configuration, in alternating order (default 3, min 3 for a publishable run)' },
  { flag: 'connections', env: 'BENCH_CONNECTIONS', kind: 'int', help: 'wrk connections of the main rows (default 50)' },
  { flag: 'c1-duration', env: 'BENCH_C1_DURATION', kind: 'int', help: 'seconds of each -c1 (unloaded latency) run (default 4)' },
  { flag: 'rss-connections', env: 'BENCH_RSS_CONNECTIONS', kind: 'int', help: 'keep-alive connections of the peak-RSS run (default 1000)' },
  { flag: 'rss-duration', env: 'BENCH_RSS_DURATION', kind: 'int', help: 'seconds of the peak-RSS run (default 8)' },
  { flag: 'fresh-factors', env: 'BENCH_FRESH_FACTORS', kind: 'int', help: 'users provisioned for the fresh X-MFA-Token row (default 12000, at least 4 × connections)' },
  { flag: 'http-enrolments', env: 'BENCH_HTTP_ENROLMENTS', kind: 'int', help: 'users enrolled through the HTTP endpoints to report their rate (default 100; 0 skips)' },
  { flag: 'only', env: 'BENCH_ONLY', kind: 'list', help: 'run only these targets (direct is always kept)' },
  { flag: 'skip', env: 'BENCH_SKIP', kind: 'list', help: 'leave these targets out' },
  { flag: 'out', env: 'BENCH_OUT', kind: 'string', help: 'results folder (default bench/results)' },
  { flag: 'pin', env: 'BENCH_PIN', kind: 'bool', help: 'pin upstream+proxy to CPU 0 and wrk to CPU 1 with taskset (default on; --no-pin)' },
  { flag: 'cpu-prof', env: 'BENCH_CPU_PROF', kind: 'bool', help: 'profile the gateway (V8 profiler over --inspect) during the first round of each gateway row; profiles and SUMMARY.md in <out>/profiles-<stamp>/' },
  { flag: 'keep-tmp', env: 'BENCH_KEEP_TMP', kind: 'bool', help: 'keep the temp folder (policy, keys, logs) for inspection' },
];

export interface RunOptions {
  readonly durationSec: number;
  readonly warmupSec: number;
  readonly repeats: number;
  readonly connections: number;
  readonly c1DurationSec: number;
  readonly rssConnections: number;
  readonly rssDurationSec: number;
  readonly freshFactors: number;
  readonly httpEnrolments: number;
  readonly only: readonly string[];
  readonly skip: readonly string[];
  readonly out?: string;
  readonly pin: boolean;
  readonly cpuProf: boolean;
  readonly keepTmp: boolean;
  readonly help: boolean;
}

export function parseRunOptions(argv: readonly string[], env: NodeJS.ProcessEnv): RunOptions {
  const raw = parseFlags(argv, RUN_SPECS, env);
  const out = stringOption(raw, 'out');
  return {
    durationSec: intOption(raw, 'duration', 8, 1, 3600),
    warmupSec: intOption(raw, 'warmup', 2, 0, 600),
    repeats: intOption(raw, 'repeats', 3, 1, 100),
    connections: intOption(raw, 'connections', 50, 1, 10_000),
    c1DurationSec: intOption(raw, 'c1-duration', 4, 1, 3600),
    rssConnections: intOption(raw, 'rss-connections', 1000, 1, 16_000),
    rssDurationSec: intOption(raw, 'rss-duration', 8, 1, 3600),
    freshFactors: intOption(raw, 'fresh-factors', 12_000, 10, 1_000_000),
    httpEnrolments: intOption(raw, 'http-enrolments', 100, 0, 100_000),
    only: listOption(raw, 'only'),
    skip: listOption(raw, 'skip'),
    ...(out !== undefined ? { out } : {}),
    pin: boolOption(raw, 'pin', true),
    cpuProf: boolOption(raw, 'cpu-prof', false),
    keepTmp: boolOption(raw, 'keep-tmp', false),
    help: boolOption(raw, 'help', false),
  };
}

// ---------------------------------------------------------------------------------------------
// npm run bench:soak

export const SOAK_SPECS: readonly Spec[] = [
  { flag: 'minutes', env: 'SOAK_MINUTES', kind: 'number', help: 'length of the soak in minutes (default 10)' },
  { flag: 'connections', env: 'SOAK_CONNECTIONS', kind: 'int', help: 'wrk connections (default 50)' },
  { flag: 'users', env: 'SOAK_USERS', kind: 'int', help: 'distinct users (tokens, sessions) the load rotates through (default 200)' },
  { flag: 'sample-ms', env: 'SOAK_SAMPLE_MS', kind: 'int', help: 'RSS sampling interval in ms (default 1000)' },
  { flag: 'out', env: 'BENCH_OUT', kind: 'string', help: 'results folder (default bench/results)' },
  { flag: 'pin', env: 'BENCH_PIN', kind: 'bool', help: 'pin upstream+gateway to CPU 0 and wrk to CPU 1 (default on; --no-pin)' },
  { flag: 'keep-tmp', env: 'BENCH_KEEP_TMP', kind: 'bool', help: 'keep the temp folder (policy, keys, logs) for inspection' },
];

export interface SoakOptions {
  readonly minutes: number;
  readonly connections: number;
  readonly users: number;
  readonly sampleMs: number;
  readonly out?: string;
  readonly pin: boolean;
  readonly keepTmp: boolean;
  readonly help: boolean;
}

export function parseSoakOptions(argv: readonly string[], env: NodeJS.ProcessEnv): SoakOptions {
  const raw = parseFlags(argv, SOAK_SPECS, env);
  const out = stringOption(raw, 'out');
  return {
    minutes: numberOption(raw, 'minutes', 10, 0.25, 24 * 60),
    connections: intOption(raw, 'connections', 50, 1, 10_000),
    users: intOption(raw, 'users', 200, 1, 100_000),
    sampleMs: intOption(raw, 'sample-ms', 1000, 50, 60_000),
    ...(out !== undefined ? { out } : {}),
    pin: boolOption(raw, 'pin', true),
    keepTmp: boolOption(raw, 'keep-tmp', false),
    help: boolOption(raw, 'help', false),
  };
}
