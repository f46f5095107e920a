import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The built CLI and the repository root, from dist/test/support/. */
export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

/** A real `mfa-gateway serve` process: its ports (read from its "listening" log line) and its output. */
export interface GatewayProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly adminPort: number;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export async function startGatewayProcess(configPath: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--config', configPath, ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let log = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ports = await new Promise<{ port: number; adminPort: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no "listening" line within 15 s:\n${log}`)), 15_000);
    const read = (chunk: Buffer): void => {
      log += chunk.toString();
      const match = /"event":"listening","address":"127\.0\.0\.1:(\d+)".*?"admin":"127\.0\.0\.1:(\d+)"/.exec(log);
      if (match) {
        clearTimeout(timer);
        resolve({ port: Number(match[1]), adminPort: Number(match[2]) });
      }
    };
    child.stdout!.on('data', read);
    child.stderr!.on('data', read);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code} before listening:\n${log}`));
    });
  });
  return {
    child,
    ...ports,
    output: () => log,
    async stop() {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      const code = await exited;
      clearTimeout(kill);
      return code;
    },
  };
}
