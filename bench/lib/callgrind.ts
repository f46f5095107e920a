import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BenchError, type Launch } from './proc.js';
import { fmt, median } from './report.js';

/**
 * A server under valgrind's callgrind, counting the instructions it executes (every thread, user
 * space only: the kernel's share of a system call is not in the count). Counting is zeroed and
 * dumped from outside with `callgrind_control`, so a window holds exactly the requests sent in it.
 * Counts depend on the program and its input, not on what else the machine runs: windows of one
 * run agree to about 0.5 %, separate runs of one tree to about 2 %, where CPU time on a shared VM
 * moves by tens of percent.
 */

/** The launch that runs a server under callgrind, its dumps named after `outFile`. */
export function callgrindLaunch(outFile: string): Launch {
  // Startup under valgrind takes tens of seconds; the gateway's key and policy loading more.
  return { wrapper: ['valgrind', '--tool=callgrind', `--callgrind-out-file=${outFile}`], readyTimeoutMs: 300_000 };
}

/** The `summary:` total (instructions, event Ir) of a callgrind dump. */
export function dumpTotal(text: string): number {
  if (!/^events: Ir\b/m.test(text)) throw new BenchError('callgrind dump without the Ir event');
  const summary = /^summary: (\d+)$/m.exec(text);
  if (summary === null) throw new BenchError('callgrind dump without a summary line');
  return Number(summary[1]);
}

function control(pid: number, command: '--zero' | '--dump'): void {
  const result = spawnSync('callgrind_control', [command, String(pid)], { encoding: 'utf8' });
  if (result.status !== 0 || !/OK/.test(result.stdout)) throw new BenchError(`callgrind_control ${command} ${pid} failed: ${`${result.stdout}${result.stderr}`.trim()}`);
}

/** Zeroes the counters of the callgrind process `pid`, runs `work`, dumps and returns the instructions counted meanwhile. */
export async function countInstructions(pid: number, outFile: string, work: () => Promise<void>): Promise<number> {
  const dir = dirname(outFile);
  const prefix = `${basename(outFile)}.`;
  const dumps = (): Set<string> => new Set(readdirSync(dir).filter((file) => file.startsWith(prefix)));
  const before = dumps();
  control(pid, '--zero');
  await work();
  control(pid, '--dump');
  const written = [...dumps()].filter((file) => !before.has(file));
  if (written.length !== 1) throw new BenchError(`expected one new callgrind dump of ${outFile}, found ${written.length}`);
  return dumpTotal(readFileSync(join(dir, written[0]!), 'utf8'));
}

export interface InstructionRow {
  readonly name: string;
  readonly label: string;
  /** Instructions per request, one entry per window. */
  readonly perRequest: readonly number[];
}

/**
 * The table: instructions per request per window, their median, the spread of the windows
 * (max/min − 1) and the median as a multiple of `baseline`'s.
 */
export function renderInstructionRows(rows: readonly InstructionRow[], baseline: string): string {
  const base = rows.find((row) => row.name === baseline);
  const lines = ['| target | instructions/request per window | median | spread | × ' + (base?.label ?? baseline) + ' |', '| --- | ---: | ---: | ---: | ---: |'];
  for (const row of rows) {
    const mid = median(row.perRequest);
    const spread = Math.max(...row.perRequest) / Math.min(...row.perRequest) - 1;
    const ratio = base === undefined ? '–' : `${(mid / median(base.perRequest)).toFixed(3)}×`;
    lines.push(`| ${row.label} | ${row.perRequest.map((n) => fmt(n)).join(' / ')} | ${fmt(mid)} | ${(spread * 100).toFixed(1)} % | ${ratio} |`);
  }
  return lines.join('\n');
}
