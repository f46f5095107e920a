import { spawn, spawnSync } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { Agent, request as httpRequest, createServer as createHttpServer } from 'node:http';
import { connect, createServer } from 'node:net';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';

/**
 * Child processes of the benchmark: started on a free port, pinned to a CPU set with taskset,
 * ready when the port accepts connections, measured from /proc, and stopped by their own pid only.
 */

export class BenchError extends Error {}

export const log = (message: string): void => void process.stdout.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);

export const hasCommand = (name: string): boolean => spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;

/** `taskset -c CPUS command args` when pinning, else the command itself. */
export function pinned(cpuList: string | undefined, command: string, args: readonly string[]): [string, string[]] {
  return cpuList === undefined ? [command, [...args]] : ['taskset', ['-c', cpuList, command, ...args]];
}

/** A port the kernel just had free, for the child to listen on (so the harness knows it in advance). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

const canConnect = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly port: number;
  stop(): Promise<void>;
}

/** How a server is started beyond its own command: under another program (valgrind), and how long it may take to listen. */
export interface Launch {
  /** Command and arguments put in front of the server's own command; it must exec it in the same process (pid). */
  readonly wrapper?: readonly string[];
  readonly readyTimeoutMs?: number;
}

/** Starts `command args` (stdout and stderr to `logFile`, kept for a failed run) and waits until `port` accepts connections. */
export async function startProcess(name: string, command: string, args: readonly string[], port: number, options: { cpus: string | undefined; logFile: string; cwd?: string; env?: NodeJS.ProcessEnv; launch?: Launch }): Promise<ManagedProcess> {
  const log = createWriteStream(options.logFile, { flags: 'a' });
  const [wrapper, ...wrapperArgs] = options.launch?.wrapper ?? [];
  const [program, programArgs] = wrapper === undefined ? [command, args] : [wrapper, [...wrapperArgs, command, ...args]];
  const child = spawn(...pinned(options.cpus, program, programArgs), { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.pipe(log, { end: false });
  child.stderr.pipe(log, { end: false });
  child.once('error', (error) => log.write(`spawn error: ${error.message}\n`));
  let running = true;
  const exited = new Promise<string>((resolve) => child.once('exit', (code, signal) => resolve(signal ?? `code ${code}`))).finally(() => (running = false));
  const stop = async (): Promise<void> => {
    if (running) {
      child.kill('SIGTERM');
      // A gateway started with --cpu-prof writes its profile on the way out: give it time.
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    }
    await new Promise<void>((resolve) => log.end(resolve));
  };
  const readyTimeoutMs = options.launch?.readyTimeoutMs ?? 30_000;
  const deadline = Date.now() + readyTimeoutMs;
  while (!(await canConnect(port))) {
    if (running && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      continue;
    }
    const why = running ? `did not listen within ${readyTimeoutMs / 1000} s` : `exited (${await exited}) before it listened`;
    child.kill('SIGKILL');
    await stop();
    const tail = existsSync(options.logFile) ? readFileSync(options.logFile, 'utf8').trimEnd().split('\n').slice(-20).join('\n') : '';
    throw new BenchError(`${name} ${why}; log ${options.logFile}:\n${tail}`);
  }
  return { name, pid: child.pid!, port, stop };
}

// ---------------------------------------------------------------------------------------------
// /proc readers (Linux). Times in /proc are in USER_HZ, which is 100 on Linux.

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
function processTree(pid: number): number[] {
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return [pid, ...(children === '' ? [] : children.split(' ').map(Number).flatMap(processTree))];
  } catch {
    return [];
  }
}

/** User + system CPU time of the process tree, in microseconds. */
export function cpuMicros(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    const fields = statFields(p);
    return fields === undefined ? sum : sum + (Number(fields[11]) + Number(fields[12])) * 10_000;
  }, 0);
}

/**
 * Time one CPU spent running processes (user + nice + system) from /proc/stat, in microseconds.
 * Interrupt, softirq and steal time are left out so the figure compares with the utime + stime of
 * the processes pinned there.
 */
export function cpuBusyMicros(cpu: number): number {
  const line = new RegExp(`^cpu${cpu} (.*)$`, 'm').exec(readFileSync('/proc/stat', 'utf8'));
  const f = (line?.[1] ?? '0 0 0').trim().split(/\s+/).map(Number);
  return (f[0]! + f[1]! + f[2]!) * 10_000;
}

/** Resident set (VmRSS) of the process tree, in bytes. */
export function rssBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    try {
      return sum + Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      return sum;
    }
  }, 0);
}

export interface RssPoint {
  /** ms since sampling started. */
  readonly t: number;
  readonly rss: number;
}

/** Samples the RSS of a process tree until stopped. */
export function sampleRss(pid: number, intervalMs: number): { stop(): RssPoint[] } {
  const started = Date.now();
  const points: RssPoint[] = [];
  const take = (): number => points.push({ t: Date.now() - started, rss: rssBytes(pid) });
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop: () => {
      clearInterval(timer);
      take();
      return points;
    },
  };
}

// ---------------------------------------------------------------------------------------------

function output(command: string, args: readonly string[], cwd?: string): string {
  const result = spawnSync(command, args, { encoding: 'utf8', cwd });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
}

/**
 * What the kernel costs on this machine, measured in this process before anything else runs: one
 * system call (`fstat`, median of 5 batches of 20,000), and one HTTP request and response over
 * loopback with node:http at both ends on one keep-alive connection (mean of 2,000 after 200). A
 * minimal proxy's cost per request is mostly the kernel's, so the targets' ratios move with these:
 * compare runs by them before comparing their ratios.
 */
async function kernelCost(repoRoot: string): Promise<{ readonly syscallNs: number; readonly loopbackRoundTripUs: number }> {
  const fd = openSync(join(repoRoot, 'package.json'), 'r');
  const batches: number[] = [];
  try {
    for (let batch = 0; batch < 6; batch++) {
      const started = process.hrtime.bigint();
      for (let i = 0; i < 20_000; i++) fstatSync(fd);
      // The first batch warms up and is not counted.
      if (batch > 0) batches.push(Number(process.hrtime.bigint() - started) / 20_000);
    }
  } finally {
    closeSync(fd);
  }
  batches.sort((a, b) => a - b);
  const server = createHttpServer((_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const once = (): Promise<void> =>
    new Promise((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port, agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
        .on('error', reject)
        .end();
    });
  try {
    for (let i = 0; i < 200; i++) await once();
    const started = process.hrtime.bigint();
    for (let i = 0; i < 2_000; i++) await once();
    const loopbackRoundTripUs = Number(process.hrtime.bigint() - started) / 2_000 / 1000;
    return { syscallNs: Math.round(batches[2]!), loopbackRoundTripUs: Math.round(loopbackRoundTripUs * 10) / 10 };
  } finally {
    agent.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

/** Facts about the machine and the software under test, stored with every result. */
export async function machineFacts(repoRoot: string) {
  const version = (name: string): string => {
    try {
      return (JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'missing';
    }
  };
  const osRelease = existsSync('/etc/os-release') ? readFileSync('/etc/os-release', 'utf8') : '';
  return {
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os: /^PRETTY_NAME="?([^"\n]*)"?/m.exec(osRelease)?.[1] ?? 'unknown',
    kernel: release(),
    virtualization: /^Hypervisor vendor:\s+(.*)$/m.exec(output('lscpu', []))?.[1] ?? 'none reported',
    node: process.version,
    wrk: /wrk\s+(\S+)/.exec(output('wrk', ['-v']))?.[1] ?? 'missing',
    nginx: /nginx\/(\S+)/.exec(output('/usr/sbin/nginx', ['-v']))?.[1] ?? 'missing',
    packages: ['undici', 'http-proxy-3', 'jose', 'better-sqlite3', '@otplib/core', 'lru-cache', 'pino', 'prom-client'].map((name) => `${name} ${version(name)}`).join(', '),
    gitCommit: output('git', ['rev-parse', '--short', 'HEAD'], repoRoot) || 'unknown',
    gitDirty: output('git', ['status', '--porcelain', '--', 'src'], repoRoot) !== '',
    loadAverageAtStart: loadavg().map((n) => Math.round(n * 100) / 100),
    kernelCost: await kernelCost(repoRoot),
  };
}

export type MachineFacts = Awaited<ReturnType<typeof machineFacts>>;
