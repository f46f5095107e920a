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

/**
 * The simulated caches of `--simulate`: valgrind's own first-level caches (read from CPUID), and a
 * last level given here, because the guests of this machine kind report a 512 MB two-way L3, which
 * would make every miss of the first level a hit. 32 MB, 16-way is the L3 an AMD EPYC core of this
 * generation shares with its neighbours.
 */
export const SIMULATED_LAST_LEVEL = '--LL=33554432,16,64';

/**
 * The launch that runs a server under callgrind, its dumps named after `outFile`. `simulate` adds
 * callgrind's cache and branch-predictor simulation: the misses a machine without hardware counters
 * cannot report, at about twice the run time.
 */
export function callgrindLaunch(outFile: string, simulate = false): Launch {
  const simulation = simulate ? ['--cache-sim=yes', '--branch-sim=yes', SIMULATED_LAST_LEVEL] : [];
  // Startup under valgrind takes tens of seconds; the gateway's key and policy loading more.
  return { wrapper: ['valgrind', '--tool=callgrind', ...simulation, `--callgrind-out-file=${outFile}`], readyTimeoutMs: 300_000 };
}

/** Event name (Ir, I1mr, Bcm, …) to its total, from the `events:` and `summary:` lines of a callgrind dump. */
export type EventTotals = Readonly<Record<string, number>>;

export function dumpEvents(text: string): EventTotals {
  const names = /^events: (.+)$/m.exec(text)?.[1]?.trim().split(/\s+/) ?? [];
  if (!names.includes('Ir')) throw new BenchError('callgrind dump without the Ir event');
  const values = /^summary: ([\d ]+)$/m.exec(text)?.[1]?.trim().split(/\s+/).map(Number);
  if (values === undefined || values.length !== names.length) throw new BenchError('callgrind dump without a summary line of one total per event');
  return Object.fromEntries(names.map((name, i) => [name, values[i]!]));
}

function control(pid: number, command: '--zero' | '--dump'): void {
  const result = spawnSync('callgrind_control', [command, String(pid)], { encoding: 'utf8' });
  if (result.status !== 0 || !/OK/.test(result.stdout)) throw new BenchError(`callgrind_control ${command} ${pid} failed: ${`${result.stdout}${result.stderr}`.trim()}`);
}

/** Zeroes the counters of the callgrind process `pid`, runs `work`, dumps and returns the events counted meanwhile. */
export async function countEvents(pid: number, outFile: string, work: () => Promise<void>): Promise<EventTotals> {
  const dir = dirname(outFile);
  const prefix = `${basename(outFile)}.`;
  const dumps = (): Set<string> => new Set(readdirSync(dir).filter((file) => file.startsWith(prefix)));
  const before = dumps();
  control(pid, '--zero');
  await work();
  control(pid, '--dump');
  const written = [...dumps()].filter((file) => !before.has(file));
  if (written.length !== 1) throw new BenchError(`expected one new callgrind dump of ${outFile}, found ${written.length}`);
  return dumpEvents(readFileSync(join(dir, written[0]!), 'utf8'));
}

export interface InstructionRow {
  readonly name: string;
  readonly label: string;
  /** Instructions per request, one entry per window. */
  readonly perRequest: readonly number[];
  /** With `--simulate`: the simulated misses per request, one entry per window. */
  readonly simulated?: readonly SimulatedCosts[];
}

/** Per request, from callgrind's cache and branch simulation. */
export interface SimulatedCosts {
  /** First-level instruction cache misses (I1mr). */
  readonly instructionMisses: number;
  /** First-level data cache misses, reads and writes (D1mr + D1mw). */
  readonly dataMisses: number;
  /** Last-level misses, instructions and data (ILmr + DLmr + DLmw): trips to memory. */
  readonly lastLevelMisses: number;
  /** Mispredicted conditional and indirect branches (Bcm + Bim). */
  readonly mispredicts: number;
  /**
   * Ir + 10 × first-level misses + 10 × mispredicts: the valgrind manual's rough costs ("an L1 miss
   * around 10 cycles, a mispredicted branch 10 to 30"), at their low end. Last-level misses are left
   * out: under valgrind they follow the young generation's size, not the code (bench/README.md).
   * A way to weigh the counts, not a measurement.
   */
  readonly estimatedCycles: number;
}

export function simulatedCosts(events: EventTotals, requests: number): SimulatedCosts {
  const event = (name: string): number => {
    const value = events[name];
    if (value === undefined) throw new BenchError(`callgrind dump without the ${name} event (was the server started with --simulate?)`);
    return value;
  };
  const instructionMisses = event('I1mr');
  const dataMisses = event('D1mr') + event('D1mw');
  const lastLevelMisses = event('ILmr') + event('DLmr') + event('DLmw');
  const mispredicts = event('Bcm') + event('Bim');
  const estimatedCycles = event('Ir') + 10 * (instructionMisses + dataMisses + mispredicts);
  return {
    instructionMisses: instructionMisses / requests,
    dataMisses: dataMisses / requests,
    lastLevelMisses: lastLevelMisses / requests,
    mispredicts: mispredicts / requests,
    estimatedCycles: estimatedCycles / requests,
  };
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

/**
 * The simulation's table: per request, the median over the windows of each count, and the
 * estimated cycles as a multiple of `baseline`'s beside the instructions' multiple, so a row whose
 * cycles grow faster than its instructions shows it. Rows counted without `--simulate` are left out.
 */
export function renderSimulatedRows(rows: readonly InstructionRow[], baseline: string): string {
  const base = rows.find((row) => row.name === baseline);
  const baseMedian = (pick: (costs: SimulatedCosts) => number): number | undefined => (base?.simulated === undefined ? undefined : median(base.simulated.map(pick)));
  const times = (value: number, of: number | undefined): string => (of === undefined ? '–' : `${(value / of).toFixed(3)}×`);
  const lines = [
    `| target | I1 misses | D1 misses | LL misses | mispredicted branches | estimated cycles | cycles × ${base?.label ?? baseline} | instructions × ${base?.label ?? baseline} |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const row of rows) {
    if (row.simulated === undefined) continue;
    const mid = (pick: (costs: SimulatedCosts) => number): number => median(row.simulated!.map(pick));
    const cycles = mid((c) => c.estimatedCycles);
    const instructions = base === undefined ? '–' : times(median(row.perRequest), median(base.perRequest));
    lines.push(
      `| ${row.label} | ${fmt(mid((c) => c.instructionMisses))} | ${fmt(mid((c) => c.dataMisses))} | ${fmt(mid((c) => c.lastLevelMisses), 1)} | ${fmt(mid((c) => c.mispredicts))} | ${fmt(cycles)} | ${times(cycles, baseMedian((c) => c.estimatedCycles))} | ${instructions} |`,
    );
  }
  return lines.join('\n');
}
