import { spawn } from 'node:child_process';
import { BenchError, pinned } from './proc.js';

/** One wrk run (Debian `wrk` 4.x) and the numbers parsed from its `--latency` report. */

export interface WrkOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationSec: number;
  readonly threads?: number;
  /** Static request headers (`-H`). Ignored by wrk for requests a Lua `request()` builds itself. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A Lua script file (`-s`). */
  readonly script?: string;
  readonly timeoutSec?: number;
  readonly cpus?: string | undefined;
}

export interface WrkResult {
  readonly requests: number;
  readonly durationSec: number;
  readonly rps: number;
  /** Milliseconds, from the `Latency Distribution` block. */
  readonly latencyMs: { readonly p50: number; readonly p75: number; readonly p90: number; readonly p99: number; readonly avg: number; readonly max: number };
  readonly non2xx: number;
  readonly socketErrors: { readonly connect: number; readonly read: number; readonly write: number; readonly timeout: number };
  /** Lines a Lua `done()` printed with a `BENCH ` prefix (key=value). */
  readonly scriptReport: Readonly<Record<string, string>>;
  readonly raw: string;
}

const TIME_UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

export function parseTime(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text.trim());
  if (match === null) throw new BenchError(`wrk: cannot read the time ${JSON.stringify(text)}`);
  return Number(match[1]) * TIME_UNITS[match[2]!]!;
}

export function parseWrkOutput(raw: string): WrkResult {
  const need = (pattern: RegExp, what: string): RegExpExecArray => {
    const match = pattern.exec(raw);
    if (match === null) throw new BenchError(`wrk output has no ${what}:\n${raw}`);
    return match;
  };
  const percentile = (p: number): number => parseTime(need(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm'), `${p}% latency`)[1]!);
  const latencyLine = need(/^\s+Latency\s+(\S+)\s+(\S+)\s+(\S+)/m, 'latency line');
  const total = need(/^\s+(\d+) requests in ([\d.]+\w+),/m, 'request count');
  const rps = Number(need(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')[1]);
  const non2xx = /^\s+Non-2xx or 3xx responses: (\d+)/m.exec(raw);
  const socket = /^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/m.exec(raw);
  const scriptReport: Record<string, string> = {};
  for (const match of raw.matchAll(/^BENCH (\w+)=(.*)$/gm)) scriptReport[match[1]!] = match[2]!.trim();
  return {
    requests: Number(total[1]),
    durationSec: parseTime(total[2]!) / 1000,
    rps,
    latencyMs: { p50: percentile(50), p75: percentile(75), p90: percentile(90), p99: percentile(99), avg: parseTime(latencyLine[1]!), max: parseTime(latencyLine[3]!) },
    non2xx: non2xx === null ? 0 : Number(non2xx[1]),
    socketErrors: {
      connect: socket === null ? 0 : Number(socket[1]),
      read: socket === null ? 0 : Number(socket[2]),
      write: socket === null ? 0 : Number(socket[3]),
      timeout: socket === null ? 0 : Number(socket[4]),
    },
    scriptReport,
    raw,
  };
}

export function wrkArgs(options: WrkOptions): string[] {
  const args = ['-t', String(options.threads ?? 1), '-c', String(options.connections), '-d', `${options.durationSec}s`, '--latency', '--timeout', `${options.timeoutSec ?? 5}s`];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`);
  if (options.script !== undefined) args.push('-s', options.script);
  args.push(options.url);
  return args;
}

export function runWrk(options: WrkOptions): Promise<WrkResult> {
  const { command, args } = pinned(options.cpus, 'wrk', wrkArgs(options));
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.once('error', (error) => reject(new BenchError(`wrk could not start: ${error.message}`)));
    child.once('exit', (code) => {
      if (code !== 0) {
        reject(new BenchError(`wrk exited with code ${code}: ${stderr.trim() || stdout.trim()}`));
        return;
      }
      try {
        resolve(parseWrkOutput(stdout));
      } catch (error) {
        reject(error instanceof Error ? error : new BenchError(String(error)));
      }
    });
  });
}

/** Throws unless every response was 2xx and no socket failed: a fast wrong answer is not speed. */
export function assertClean(label: string, result: WrkResult): void {
  const errors = result.socketErrors;
  const socketTotal = errors.connect + errors.read + errors.write + errors.timeout;
  const problems: string[] = [];
  if (result.requests === 0) problems.push('no request completed');
  if (result.non2xx > 0) problems.push(`${result.non2xx} of ${result.requests} responses were not 2xx/3xx`);
  if (socketTotal > 0) problems.push(`socket errors: connect ${errors.connect}, read ${errors.read}, write ${errors.write}, timeout ${errors.timeout}`);
  const scriptBad = Number(result.scriptReport.bad ?? '0');
  if (scriptBad > 0) problems.push(`${scriptBad} responses were not 2xx (Lua counter${result.scriptReport.statuses ? `: ${result.scriptReport.statuses}` : ''})`);
  if (result.scriptReport.exhausted !== undefined && result.scriptReport.exhausted !== '0') {
    problems.push(`the pre-computed code pool ran out ${result.scriptReport.exhausted} times (raise --fresh-factors)`);
  }
  if (problems.length > 0) throw new BenchError(`${label}: ${problems.join('; ')}\n--- wrk output ---\n${result.raw}`);
}
