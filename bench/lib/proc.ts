import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, readFileSync, readdirSync, type WriteStream } from 'node:fs';
import { connect } from 'node:net';

/**
 * Child processes of the benchmark: started pinned to a CPU set with taskset, ready when they say
 * so (a `BENCH_READY {json}` line on stderr) or when a probe succeeds, measured from /proc, and
 * stopped by their own pid only.
 */

export const READY_MARKER = 'BENCH_READY ';

export class BenchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BenchError';
  }
}

export interface Pinning {
  /** CPU list for upstream and proxies (taskset -c syntax), or undefined when not pinning. */
  readonly servers?: string;
  /** CPU list for wrk. */
  readonly load?: string;
}

export function hasCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

/** `taskset -c CPUS cmd args` when pinning, else the command itself. */
export function pinned(cpus: string | undefined, command: string, args: readonly string[]): { command: string; args: string[] } {
  return cpus === undefined ? { command, args: [...args] } : { command: 'taskset', args: ['-c', cpus, command, ...args] };
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** What the child printed after READY_MARKER (parsed JSON), or {} for probe-ready processes. */
  readonly info: Record<string, unknown>;
  readonly logFile: string;
  exited(): boolean;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export interface StartOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cpus?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** stdout and stderr of the child go here (logs are kept for a failed run). */
  readonly logFile: string;
  /** Without a probe the child must print READY_MARKER + JSON on stderr. */
  readonly probe?: () => Promise<boolean>;
  readonly readyTimeoutMs?: number;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

export async function startProcess(options: StartOptions): Promise<ManagedProcess> {
  const { command, args } = pinned(options.cpus, options.command, options.args);
  const log: WriteStream = createWriteStream(options.logFile, { flags: 'a' });
  const child: ChildProcess = spawn(command, args, {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let exitedFlag = false;
  let exitDescription = '';
  const exitPromise = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exitedFlag = true;
      exitDescription = signal !== null ? `signal ${signal}` : `code ${code}`;
      resolve();
    });
  });
  child.stdout?.pipe(log, { end: false });

  let info: Record<string, unknown> | undefined;
  let buffered = '';
  let onReadyLine: ((value: Record<string, unknown>) => void) | undefined;
  child.stderr?.on('data', (chunk: Buffer) => {
    log.write(chunk);
    if (info !== undefined) return;
    buffered += chunk.toString('utf8');
    let newline: number;
    while ((newline = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line.startsWith(READY_MARKER)) {
        info = JSON.parse(line.slice(READY_MARKER.length)) as Record<string, unknown>;
        onReadyLine?.(info);
        buffered = '';
        return;
      }
    }
  });

  const timeoutMs = options.readyTimeoutMs ?? 30_000;
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new BenchError(`${options.name} did not become ready within ${timeoutMs} ms; log ${options.logFile}:\n${tail(options.logFile)}`)), timeoutMs);
    const done = (value: Record<string, unknown>): void => {
      clearTimeout(timer);
      resolve(value);
    };
    void exitPromise.then(() => {
      clearTimeout(timer);
      // Give the log stream a moment to flush what the child said before dying.
      setTimeout(() => reject(new BenchError(`${options.name} exited (${exitDescription}) before it was ready; log ${options.logFile}:\n${tail(options.logFile)}`)), 100);
    });
    if (options.probe !== undefined) {
      const probe = options.probe;
      const poll = (): void => {
        if (exitedFlag) return;
        probe().then(
          (ok) => (ok ? done({}) : setTimeout(poll, 50)),
          () => setTimeout(poll, 50),
        );
      };
      poll();
    } else {
      onReadyLine = done;
    }
  });
  child.once('error', (error) => log.write(`spawn error: ${error.message}\n`));

  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<void> => {
    if (!exitedFlag && child.pid !== undefined) {
      child.kill(signal);
      const killTimer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exitPromise;
      clearTimeout(killTimer);
    }
    await new Promise<void>((resolve) => log.end(resolve));
  };

  try {
    info = await ready;
  } catch (error) {
    await stop('SIGKILL');
    throw error;
  }
  if (child.pid === undefined) throw new BenchError(`${options.name}: no pid`);
  return { name: options.name, pid: child.pid, info, logFile: options.logFile, exited: () => exitedFlag, stop };
}

/** Resolves true when a TCP connection to the port succeeds. */
export function canConnect(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// ---------------------------------------------------------------------------------------------
// /proc readers (Linux)

/** Fields of /proc/PID/stat after the command name (which may contain spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** The pid and every descendant (nginx: master and workers). */
export function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const fields = statFields(Number(entry));
    if (fields !== undefined) parentOf.set(Number(entry), Number(fields[1]));
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i] && !tree.includes(child)) tree.push(child);
  }
  return tree.filter((p) => existsSync(`/proc/${p}`));
}

const CLOCK_TICKS = (() => {
  const result = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(result.stdout?.trim());
  return Number.isFinite(n) && n > 0 ? n : 100;
})();

/** User + system CPU time of the process tree, in microseconds. */
export function cpuMicros(pid: number): number {
  let ticks = 0;
  for (const p of processTree(pid)) {
    const fields = statFields(p);
    if (fields !== undefined) ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1e6) / CLOCK_TICKS;
}

function statusKb(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  try {
    const match = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match === null ? 0 : Number(match[1]);
  } catch {
    return 0;
  }
}

/** Resident set of the process tree, in bytes. */
export function rssBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKb(p, 'VmRSS') * 1024, 0);
}

/** Peak resident set (VmHWM) of the process tree, in bytes (sum of each process's own peak). */
export function peakRssBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => sum + statusKb(p, 'VmHWM') * 1024, 0);
}

/** Samples the RSS of a process tree until stopped; returns the samples (bytes) with their time (ms since start). */
export function sampleRss(pid: number, intervalMs: number): { stop(): Array<{ t: number; rss: number }> } {
  const started = Date.now();
  const samples: Array<{ t: number; rss: number }> = [];
  const take = (): void => {
    samples.push({ t: Date.now() - started, rss: rssBytes(pid) });
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}
