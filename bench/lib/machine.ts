import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { join } from 'node:path';

/** Facts about the machine and the software under test, stored with every result. */

export interface MachineFacts {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly os: string;
  readonly virtualization: string;
  readonly node: string;
  readonly wrk: string;
  readonly nginx: string;
  readonly packages: Readonly<Record<string, string>>;
  readonly gitCommit: string;
  readonly gitDirty: boolean;
  readonly loadAverageAtStart: readonly number[];
}

function run(command: string, args: readonly string[], cwd?: string): string {
  const result = spawnSync(command, args, { encoding: 'utf8', ...(cwd !== undefined ? { cwd } : {}) });
  return `${result.stdout ?? ''}${result.stderr ?? ''}`.trim();
}

function osName(): string {
  try {
    const match = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'));
    return match?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function packageVersion(root: string, name: string): string {
  try {
    return (JSON.parse(readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'missing';
  }
}

export function machineFacts(repoRoot: string): MachineFacts {
  const list = cpus();
  const lscpu = run('lscpu', []);
  const hypervisor = /^Hypervisor vendor:\s+(.*)$/m.exec(lscpu)?.[1];
  return {
    cpuModel: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    os: osName(),
    virtualization: hypervisor ?? 'none reported',
    node: process.version,
    wrk: /wrk\s+(\S+)/.exec(run('wrk', ['-v']))?.[1] ?? 'missing',
    nginx: /nginx\/(\S+)/.exec(run('/usr/sbin/nginx', ['-v']))?.[1] ?? 'missing',
    packages: Object.fromEntries(['undici', 'http-proxy-3', 'jose', 'better-sqlite3', 'otplib', 'lru-cache', 'pino', 'prom-client'].map((name) => [name, packageVersion(repoRoot, name)])),
    gitCommit: run('git', ['rev-parse', '--short', 'HEAD'], repoRoot) || 'unknown',
    gitDirty: run('git', ['status', '--porcelain', '--', 'src'], repoRoot) !== '',
    loadAverageAtStart: loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

/**
 * Time one CPU spent running processes (user + nice + system) from /proc/stat, in microseconds
 * (USER_HZ is 100 on Linux). Interrupt, softirq and steal time are left out so the figure compares
 * with the utime + stime of the processes pinned there.
 */
export function cpuProcessMicros(cpu: number): number {
  const line = new RegExp(`^cpu${cpu} (.*)$`, 'm').exec(readFileSync('/proc/stat', 'utf8'));
  if (line === null) return 0;
  const f = line[1]!.trim().split(/\s+/).map(Number);
  return (f[0]! + f[1]! + f[2]!) * 10_000;
}
