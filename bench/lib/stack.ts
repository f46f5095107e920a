import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { createGatewayWorkspace, type GatewayWorkspace } from './gateway-setup.js';
import { freePort, nginxArgs, NGINX_BINARY, writeNginxConfig } from './nginx.js';
import { BenchError, canConnect, startProcess, type ManagedProcess } from './proc.js';

/** Starting the processes under test, shared by bench/run.ts and bench/soak.ts. */

/** dist/bench/lib/ → the repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SERVERS = fileURLToPath(new URL('../servers/', import.meta.url));
export const GATEWAY_CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');

function portOf(process: ManagedProcess): number {
  const port = process.info.port;
  if (typeof port !== 'number') throw new BenchError(`${process.name} did not report its port`);
  return port;
}

export interface Started {
  readonly process: ManagedProcess;
  readonly port: number;
}

export async function startUpstream(work: string, cpus: string | undefined): Promise<Started> {
  const process = await startProcess({
    name: 'upstream',
    command: globalThis.process.execPath,
    args: [join(SERVERS, 'upstream.js')],
    cpus,
    logFile: join(work, 'upstream.log'),
  });
  return { process, port: portOf(process) };
}

/** How many requests the upstream has served (its own count endpoint excluded). */
export async function upstreamServed(port: number): Promise<number> {
  const reply = await request(`http://127.0.0.1:${port}/__bench/count`);
  const body = (await reply.body.json()) as { served: number };
  return body.served;
}

export async function startNodeBaseline(work: string, cpus: string | undefined, kind: 'undici-proxy' | 'http-proxy', upstreamPort: number): Promise<Started> {
  const process = await startProcess({
    name: kind,
    command: globalThis.process.execPath,
    args: [join(SERVERS, `${kind}.js`), `http://127.0.0.1:${upstreamPort}`],
    cpus,
    logFile: join(work, `${kind}.log`),
  });
  return { process, port: portOf(process) };
}

export async function startNginx(work: string, cpus: string | undefined, upstreamPort: number): Promise<Started> {
  const dir = join(work, 'nginx');
  const port = await freePort();
  const config = writeNginxConfig(dir, port, upstreamPort);
  const process = await startProcess({
    name: 'nginx',
    command: NGINX_BINARY,
    args: nginxArgs(dir, config),
    cpus,
    logFile: join(work, 'nginx.log'),
    probe: () => canConnect(port),
  });
  return { process, port };
}

export interface GatewayPrepared {
  readonly dir: string;
  readonly listenPort: number;
  readonly workspace: GatewayWorkspace;
}

/** Policy, signing keys and secret-encryption key file, before the gateway starts (users can be provisioned now). */
export async function prepareGateway(work: string, upstreamPort: number, limits: { maxQueued: number; tokenCacheEntries: number }): Promise<GatewayPrepared> {
  const dir = join(work, 'gateway');
  mkdirSync(dir, { recursive: true });
  const listenPort = await freePort();
  const adminPort = await freePort();
  const workspace = await createGatewayWorkspace({ dir, upstreamUrl: `http://127.0.0.1:${upstreamPort}`, listenPort, adminPort, ...limits });
  return { dir, listenPort, workspace };
}

export interface GatewayStarted extends Started {
  readonly workspace: GatewayWorkspace;
}

/** The admin API is not used here: an admin token from the caller's environment stays out of the child. */
function gatewayEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...globalThis.process.env, LOG_LEVEL: globalThis.process.env.BENCH_GATEWAY_LOG_LEVEL ?? 'info' };
  delete env.MFA_GATEWAY_ADMIN_TOKEN;
  return env;
}

/**
 * The gateway as users run it: `node dist/src/cli/main.js serve --config F`, logs (info) to a file.
 * With `inspect`, node listens for the DevTools protocol on a random loopback port (bench/lib/inspector.ts).
 * BENCH_GATEWAY_ENTRY=module starts it through startGateway() (bench/servers/gateway.ts) instead.
 */
export async function launchGateway(work: string, cpus: string | undefined, prepared: GatewayPrepared, inspect = false): Promise<GatewayStarted> {
  const viaModule = globalThis.process.env.BENCH_GATEWAY_ENTRY === 'module';
  if (!viaModule && !existsSync(GATEWAY_CLI)) throw new BenchError(`${GATEWAY_CLI} is missing: run npm run build first`);
  const configPath = prepared.workspace.configPath;
  const entry = viaModule ? [join(SERVERS, 'gateway.js'), configPath] : [GATEWAY_CLI, 'serve', '--config', configPath];
  const nodeFlags = inspect ? ['--inspect=127.0.0.1:0'] : [];
  const process = await startProcess({
    name: 'mfa-gateway',
    command: globalThis.process.execPath,
    args: [...nodeFlags, ...entry],
    cpus,
    cwd: prepared.dir,
    env: gatewayEnv(),
    logFile: join(work, 'gateway.log'),
    probe: () => canConnect(prepared.listenPort),
  });
  return { process, port: prepared.listenPort, workspace: prepared.workspace };
}
