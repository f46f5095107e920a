import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { eventually } from './wait.js';

/** The built CLI and the repository it runs in (for relative paths in the shipped policy). */
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** One JSON log line of the gateway, parsed. */
export type LogEvent = Record<string, unknown>;

export interface ServeProcess {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  /** The public port and the admin port, from the `mfa-gateway ready` line. */
  readonly port: number;
  readonly adminPort: number;
  /** Every JSON line written to stdout so far. */
  events(): LogEvent[];
  stderr(): string;
  /** Resolves with the first log event that `match` accepts, waiting up to `ms`. */
  waitFor(match: (event: LogEvent) => boolean, ms?: number): Promise<LogEvent>;
  /** Settles when the process has exited and its output has been read. */
  readonly exited: Promise<{ readonly code: number | null; readonly signal: NodeJS.Signals | null }>;
  /** SIGKILLs the process if it still runs (for `after` hooks). */
  kill(): void;
}

/**
 * `mfa-gateway serve ARGS` as a child process, resolved once it logs `mfa-gateway ready` with an
 * admin address (with --workers N: the primary's line, once every worker is up). Rejects with its
 * stderr if it exits first.
 */
export function startServe(args: readonly string[], options: { readonly env?: NodeJS.ProcessEnv; readonly timeoutMs?: number; readonly cwd?: string } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', ...args], { cwd: options.cwd ?? REPO, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: LogEvent[] = [];
  let partial = '';
  let errors = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (errors += chunk));
  // 'close', not 'exit': by then every line it wrote has been read.
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code: number | null, signal: NodeJS.Signals | null) => resolve({ code, signal })));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not get ready: ${errors}`)), options.timeoutMs ?? 20_000);
    child.stdout.on('data', (chunk: string) => {
      partial += chunk;
      const complete = partial.split('\n');
      partial = complete.pop()!;
      for (const line of complete) {
        if (line.trim() === '') continue;
        const event = JSON.parse(line) as LogEvent;
        lines.push(event);
        if (event.event === 'listening' && typeof event.admin === 'string' && typeof event.address === 'string') {
          clearTimeout(timer);
          resolve({
            child,
            port: Number(event.address.split(':').at(-1)),
            adminPort: Number(event.admin.split(':').at(-1)),
            events: () => [...lines],
            stderr: () => errors,
            async waitFor(match, ms = 5_000) {
              let found: LogEvent | undefined;
              await eventually(() => (found = lines.find(match)) !== undefined, ms);
              return found!;
            },
            exited,
            kill: () => {
              if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
            },
          });
        }
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code ?? signal}) before it was ready: ${errors}`));
    });
  });
}
