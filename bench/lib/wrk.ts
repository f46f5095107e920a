import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { PlannedCode } from './gateway-setup.js';
import { BenchError, pinned } from './proc.js';

/** One wrk run (Debian `wrk` 4.x), the numbers of its `--latency` report, and its Lua scripts. */

interface WrkOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationSec: number;
  /** Static request headers (`-H`). Ignored by wrk for requests a Lua `request()` builds itself. */
  readonly headers?: Readonly<Record<string, string>>;
  /** A Lua script file (`-s`). */
  readonly script?: string;
  readonly timeoutSec?: number;
  readonly cpus: string | undefined;
}

export interface WrkResult {
  readonly requests: number;
  readonly durationSec: number;
  readonly rps: number;
  /** Milliseconds, from the `Latency Distribution` block. */
  readonly latencyMs: { readonly p50: number; readonly p75: number; readonly p90: number; readonly p99: number; readonly max: number };
  readonly non2xx: number;
  /** connect, read, write, timeout. */
  readonly socketErrors: readonly number[];
  /** Lines a Lua `done()` printed as `BENCH key=value`. */
  readonly script: Readonly<Record<string, number>>;
  readonly raw: string;
}

const run = promisify(execFile);
const UNITS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function parseWrk(raw: string): WrkResult {
  const need = (pattern: RegExp, what: string): RegExpExecArray => {
    const match = pattern.exec(raw);
    if (match === null) throw new BenchError(`wrk output has no ${what}:\n${raw}`);
    return match;
  };
  const ms = (text: string): number => {
    const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text);
    if (match === null) throw new BenchError(`wrk: cannot read the time ${JSON.stringify(text)}`);
    return Number(match[1]) * UNITS[match[2]!]!;
  };
  const percentile = (p: number): number => ms(need(new RegExp(`^\\s+${p}%\\s+(\\S+)`, 'm'), `${p}% latency`)[1]!);
  const total = need(/^\s+(\d+) requests in ([\d.]+\w+),/m, 'request count');
  const socket = /^\s+Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/m.exec(raw);
  return {
    requests: Number(total[1]),
    durationSec: ms(total[2]!) / 1000,
    rps: Number(need(/^Requests\/sec:\s+([\d.]+)/m, 'Requests/sec')[1]),
    latencyMs: { p50: percentile(50), p75: percentile(75), p90: percentile(90), p99: percentile(99), max: ms(need(/^\s+Latency\s+\S+\s+\S+\s+(\S+)/m, 'latency line')[1]!) },
    non2xx: Number(/^\s+Non-2xx or 3xx responses: (\d+)/m.exec(raw)?.[1] ?? 0),
    socketErrors: socket === null ? [0, 0, 0, 0] : socket.slice(1, 5).map(Number),
    script: Object.fromEntries([...raw.matchAll(/^BENCH (\w+)=(\d+)$/gm)].map((m) => [m[1]!, Number(m[2])])),
    raw,
  };
}

export async function runWrk(options: WrkOptions): Promise<WrkResult> {
  const args = ['-t1', '-c', String(options.connections), '-d', `${options.durationSec}s`, '--latency', '--timeout', `${options.timeoutSec ?? 5}s`];
  for (const [name, value] of Object.entries(options.headers ?? {})) args.push('-H', `${name}: ${value}`);
  if (options.script !== undefined) args.push('-s', options.script);
  const [command, argv] = pinned(options.cpus, 'wrk', [...args, options.url]);
  const { stdout } = await run(command, argv).catch((error: Error) => {
    throw new BenchError(`wrk failed: ${error.message}`);
  });
  return parseWrk(stdout);
}

/** Throws unless every response was 2xx/3xx and no socket failed: a fast wrong answer is not speed. */
export function assertClean(label: string, result: WrkResult): void {
  const problems: string[] = [];
  if (result.requests === 0) problems.push('no request completed');
  if (result.non2xx > 0) problems.push(`${result.non2xx} of ${result.requests} responses were not 2xx/3xx`);
  const [connect, read, write, timeout] = result.socketErrors;
  if (result.socketErrors.some((n) => n > 0)) problems.push(`socket errors: connect ${connect}, read ${read}, write ${write}, timeout ${timeout}`);
  if ((result.script.exhausted ?? 0) > 0) problems.push(`the pre-computed code plan ran out ${result.script.exhausted} times (raise --fresh-factors)`);
  if (problems.length > 0) throw new BenchError(`${label}: ${problems.join('; ')}\n--- wrk output ---\n${result.raw}`);
}

// ---------------------------------------------------------------------------------------------
// Lua

export interface ScriptRequest {
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
}

interface ScriptCodes {
  /** `Bearer …` per user. */
  readonly authorizations: readonly string[];
  readonly plan: readonly PlannedCode[];
  readonly path: string;
  /** One request in `every` presents a fresh X-MFA-Token. */
  readonly every: number;
  /** With a TOTP period (s): only codes of the current step (wall clock, as the gateway's). Else the plan in order. */
  readonly clockPeriod?: number;
}

function luaString(text: string): string {
  if (!/^[\x20-\x7e]*$/.test(text)) throw new BenchError(`not a plain ASCII Lua string: ${JSON.stringify(text)}`);
  return `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * A wrk script that cycles through `rotation` and, one request in `codes.every`, presents the next
 * unused code of the plan. The fresh-code row is every = 1 with no rotation: when its plan runs
 * out it sends a code that must fail, so the run fails loudly and `exhausted` says why. The soak
 * is the rotation of routes and users with a fresh code for the current step one request in ten.
 *
 * Bulk data goes in plain files read once with io.lines: LuaJIT caps the constants of one chunk,
 * and a script with tens of thousands of literal strings would hit it. Counters are globals so
 * done() can read them from the thread with thread:get().
 */
export function writeScript(dir: string, name: string, rotation: readonly ScriptRequest[], codes: ScriptCodes): string {
  const file = (suffix: string, lines: readonly string[]): string => {
    writeFileSync(join(dir, `${name}.${suffix}`), lines.join('\n') + '\n');
    return luaString(join(dir, `${name}.${suffix}`));
  };
  // One request per line: path, then name=value pairs, tab-separated.
  const rotationFile = file('requests', rotation.map((r) => [r.path, ...Object.entries(r.headers).map(([key, value]) => `${key}=${value}`)].join('\t')));
  const tokensFile = file('tokens', codes.authorizations);
  const codesFile = file('codes', codes.plan.map((c) => `${codes.clockPeriod !== undefined ? c.step : 0} ${c.user + 1} ${c.code}`));
  const script = `-- Generated by bench/run.ts (see bench/lib/wrk.ts and bench/README.md).
local lines, formatted, tokens, byStep, cursor = {}, {}, {}, {}, {}
for line in io.lines(${rotationFile}) do if line ~= "" then lines[#lines + 1] = line end end
for line in io.lines(${tokensFile}) do tokens[#tokens + 1] = line end
for line in io.lines(${codesFile}) do
  local s, u, c = line:match("^(%d+) (%d+) (%d+)$")
  if s ~= nil then
    s = tonumber(s)
    if byStep[s] == nil then byStep[s] = {}; cursor[s] = 1 end
    table.insert(byStep[s], { tonumber(u), c })
  end
end
-- Formatted in init(): wrk adds the Host header to wrk.headers only then, and wrk.format copies it.
function init(args)
  for _, line in ipairs(lines) do
    local fields, headers = {}, {}
    for field in line:gmatch("[^\\t]+") do fields[#fields + 1] = field end
    for i = 2, #fields do
      local key, value = fields[i]:match("^([^=]+)=(.*)$")
      headers[key] = value
    end
    formatted[#formatted + 1] = wrk.format("GET", fields[1], headers)
  end
end
local path, n = ${luaString(codes.path)}, 0
codes, exhausted = 0, 0
function request()
  n = n + 1
  if n % ${codes.every} == 0 then
    local s = ${codes.clockPeriod !== undefined ? `math.floor(os.time() / ${codes.clockPeriod})` : '0'}
    local list = byStep[s]
    if list ~= nil and cursor[s] <= #list then
      local item = list[cursor[s]]
      cursor[s] = cursor[s] + 1
      codes = codes + 1
      return wrk.format("GET", path, { ["Authorization"] = tokens[item[1]], ["X-MFA-Token"] = item[2] })
    end
  end
  if #formatted == 0 then
    exhausted = exhausted + 1
    return wrk.format("GET", path, { ["Authorization"] = "Bearer plan.exhausted.x", ["X-MFA-Token"] = "000000" })
  end
  return formatted[n % #formatted + 1]
end
local threads = {}
function setup(thread) table.insert(threads, thread) end
function done(summary, latency, requests)
  for _, name in ipairs({ "codes", "exhausted" }) do
    local sum = 0
    for _, t in ipairs(threads) do sum = sum + (t:get(name) or 0) end
    io.write("BENCH " .. name .. "=" .. sum .. "\\n")
  end
end
`;
  writeFileSync(join(dir, `${name}.lua`), script);
  return join(dir, `${name}.lua`);
}
