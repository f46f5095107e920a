import { parseArgs } from 'node:util';

/**
 * Flags of `npm run bench` (node:util parseArgs). Each flag also reads an environment variable,
 * BENCH_ + its name in capitals (--c1-duration: BENCH_C1_DURATION); a flag wins over its variable.
 * Every value is checked before anything starts; a bad one exits with code 2.
 */

export class BenchOptionError extends Error {}

const TARGETS = ['direct', 'undici', 'contract-floor', 'http-proxy', 'nginx', 'public', 'bearer-rs256', 'bearer-es256', 'mfa-session', 'mfa-fresh-code', 'forward-auth', 'plugin-nginx', 'plugin-decided', 'plugin-floor'] as const;
export type TargetName = (typeof TARGETS)[number];

type Kind = 'int' | 'bool' | 'list' | 'dir' | 'duration';
interface Spec {
  readonly kind: Kind;
  readonly help: string;
  readonly def?: number | boolean;
  readonly range?: readonly [number, number];
}

const SPECS = {
  duration: { kind: 'int', def: 8, range: [1, 3600], help: 'seconds of each measured wrk run at --connections' },
  warmup: { kind: 'int', def: 2, range: [0, 600], help: 'seconds of wrk warm-up before each measured run' },
  repeats: { kind: 'int', def: 5, range: [1, 100], help: 'measured runs per row, rounds in alternating order (5 for a publishable run)' },
  connections: { kind: 'int', def: 50, range: [1, 10_000], help: 'wrk connections of the loaded rows and of the soak' },
  paired: { kind: 'int', def: 5, range: [0, 100], help: 'rounds of each CPU-ratio row run at the same time as the minimal undici proxy, on the same CPU (0: off; see bench/README.md)' },
  c1Duration: { kind: 'int', def: 4, range: [1, 3600], help: 'seconds of each one-connection (unloaded latency) run' },
  c1Interleaved: { kind: 'int', def: 40, range: [0, 3600], help: 'seconds of the interleaved one-connection round: every -c1 row in turn, 50 requests at a time, on one clock (0: off; see bench/README.md)' },
  rssConnections: { kind: 'int', def: 1000, range: [1, 16_000], help: 'keep-alive connections of the peak-RSS rows' },
  rssDuration: { kind: 'int', def: 8, range: [1, 3600], help: 'seconds of the peak-RSS rows' },
  freshFactors: { kind: 'int', def: 40_000, range: [10, 1_000_000], help: 'users provisioned for the fresh-code row (at least 4 × connections)' },
  httpEnrolments: { kind: 'int', def: 100, range: [0, 100_000], help: 'users enrolled through the HTTP endpoints to report that rate (0 skips)' },
  only: { kind: 'list', help: 'run only these rows (direct always runs)' },
  skip: { kind: 'list', help: 'leave these rows out' },
  soak: { kind: 'duration', range: [15, 86_400], help: 'soak instead of the rows: the gateway under load this long (10m, 600s, 1h), RSS sampled' },
  soakUsers: { kind: 'int', def: 200, range: [1, 100_000], help: 'soak: users (tokens, sessions) the load rotates through' },
  soakSampleMs: { kind: 'int', def: 1000, range: [50, 60_000], help: 'soak: RSS sampling interval in ms' },
  out: { kind: 'dir', help: 'folder of the Markdown summary (default bench/results; JSON and profiles in <out>/tmp/)' },
  pin: { kind: 'bool', def: true, help: 'pin upstream+proxies to CPU 0 and wrk to CPU 1 with taskset (--no-pin: off)' },
  cpuProf: { kind: 'bool', def: false, help: 'run the gateway under node --cpu-prof; the .cpuprofile goes to <out>/tmp/' },
  shared: { kind: 'bool', def: false, help: 'the gateway on the shared store: PostgreSQL (BENCH_POSTGRES_URL) and Redis (BENCH_REDIS_URL), a schema and key prefix of its own' },
  keepTmp: { kind: 'bool', def: false, help: 'keep the temp folder (policy, keys, logs, wrk scripts)' },
} as const satisfies Record<string, Spec>;

type Value<S extends Spec> = S['kind'] extends 'int' ? number : S['kind'] extends 'bool' ? boolean : S['kind'] extends 'list' ? string[] : S['kind'] extends 'duration' ? number | undefined : string | undefined;
export type Options = { readonly [K in keyof typeof SPECS]: Value<(typeof SPECS)[K]> } & { readonly targets: ReadonlySet<TargetName> };

const flagOf = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
const envOf = (key: string): string => `BENCH_${flagOf(key).toUpperCase().replace(/-/g, '_')}`;

export function usage(): string {
  const lines = Object.entries(SPECS as Record<string, Spec>).map(([key, spec]) => {
    const shown = `--${flagOf(key)}${{ int: ' N', bool: '', list: ' a,b', dir: ' DIR', duration: ' TIME' }[spec.kind]}`;
    return `  ${shown.padEnd(24)} ${spec.help}${spec.def !== undefined && spec.kind !== 'bool' ? ` (default ${spec.def})` : ''} [${envOf(key)}]`;
  });
  return ['npm run bench [-- flags]    (how to read the results: bench/README.md)', '', ...lines, `  ${'--help'.padEnd(24)} this text`, '', `rows: ${TARGETS.join(' ')}`].join('\n');
}

/** Returns undefined for --help. */
export function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): Options | undefined {
  const config = Object.fromEntries(Object.entries(SPECS as Record<string, Spec>).map(([key, spec]) => [flagOf(key), { type: spec.kind === 'bool' ? 'boolean' : 'string' } as const]));
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ args: [...argv], options: { ...config, help: { type: 'boolean' } }, allowNegative: true, strict: true }).values;
  } catch (error) {
    // parseArgs says "Unknown option '--x'. To specify a positional argument …": the first sentence is the point.
    throw new BenchOptionError(`${(error as Error).message.split('. ')[0]} (see --help)`);
  }
  if (values.help === true) return undefined;
  const options: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(SPECS as Record<string, Spec>)) {
    const fromEnv = env[envOf(key)];
    const flag = values[flagOf(key)] === undefined ? envOf(key) : `--${flagOf(key)}`;
    const raw = values[flagOf(key)] ?? (fromEnv === undefined || fromEnv === '' ? undefined : spec.kind === 'bool' ? !['0', 'false', 'no'].includes(fromEnv) : fromEnv);
    const [min, max] = spec.range ?? [0, 0];
    if (typeof raw === 'boolean' || raw === undefined) options[key] = raw ?? spec.def ?? (spec.kind === 'list' ? [] : undefined);
    else if (spec.kind === 'list') options[key] = raw.split(',').map((item) => item.trim()).filter((item) => item !== '');
    else if (spec.kind === 'int') {
      if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) throw new BenchOptionError(`${flag}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`);
      options[key] = Number(raw);
    } else if (spec.kind === 'duration') {
      const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(raw);
      const seconds = match === null ? NaN : Number(match[1]) * { s: 1, m: 60, h: 3600 }[match[2] ?? 'm']!;
      if (!(seconds >= min && seconds <= max)) throw new BenchOptionError(`${flag}: expected a time like 10m, 90s or 1h (bare number: minutes) from ${min} s to ${max / 3600} h, got ${JSON.stringify(raw)}`);
      options[key] = Math.round(seconds);
    } else options[key] = raw;
  }
  const only = options.only as string[];
  const skip = options.skip as string[];
  for (const name of [...only, ...skip]) {
    if (!(TARGETS as readonly string[]).includes(name)) throw new BenchOptionError(`--only/--skip: unknown row ${JSON.stringify(name)} (rows: ${TARGETS.join(', ')})`);
  }
  // Every relative column is relative to direct.
  const targets = new Set<TargetName>(['direct', ...TARGETS.filter((name) => (only.length === 0 || only.includes(name)) && !skip.includes(name))]);
  // Each user's next-step code is sent a whole pass after its current-step code: with fewer users
  // than a few connections' worth, both could be in flight at once and arrive out of order.
  if (options.soak === undefined && targets.has('mfa-fresh-code') && (options.freshFactors as number) < 4 * (options.connections as number)) {
    throw new BenchOptionError(`--fresh-factors: must be at least 4 × --connections (${4 * (options.connections as number)}) for the mfa-fresh-code row`);
  }
  return { ...(options as Omit<Options, 'targets'>), targets };
}
