import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { createWorkspace, provisionUsers, type User, type Workspace } from './gateway-setup.js';
import { BenchError, freePort, log, startProcess, type Launch, type ManagedProcess } from './proc.js';

/** The processes under test: upstream, the baselines (Node proxies, nginx) and mfa-gateway. */

/** dist/bench/lib/ → the repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const SERVERS = fileURLToPath(new URL('../servers/', import.meta.url));
const GATEWAY_CLI = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
export const NGINX = '/usr/sbin/nginx';
const TEMP_DIRS = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'];

/** A script from bench/servers/: upstream, undici-proxy and http-proxy take the upstream URL as argument, allow the subject it answers. */
export async function startNodeServer(work: string, cpus: string | undefined, script: 'upstream' | 'undici-proxy' | 'contract-floor' | 'http-proxy' | 'allow', upstreamPort?: number, subject?: string, launch?: Launch): Promise<ManagedProcess> {
  const port = await freePort();
  const args = [join(SERVERS, `${script}.js`), String(port), ...(upstreamPort === undefined ? [] : [`http://127.0.0.1:${upstreamPort}`]), ...(subject === undefined ? [] : [subject])];
  return startProcess(script, process.execPath, args, port, { cpus, logFile: join(work, `${script}.log`), launch });
}

/** How many requests the upstream has served (its own count endpoint excluded). */
export async function upstreamServed(port: number): Promise<number> {
  const reply = await request(`http://127.0.0.1:${port}/__bench/count`);
  return ((await reply.body.json()) as { served: number }).served;
}

/**
 * nginx with one worker and no access log, its `http {}` block holding `http` (written with the
 * temp folder's paths), started from `<work>/<name>/nginx.conf` on `port`.
 */
async function runNginx(work: string, name: string, cpus: string | undefined, port: number, http: (dir: string) => string): Promise<ManagedProcess> {
  const dir = join(work, name);
  for (const sub of TEMP_DIRS) mkdirSync(join(dir, sub), { recursive: true });
  // Running as root, nginx would hand the worker to "nobody"; keep it the same user as the other targets.
  const config = `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
daemon off;
master_process on;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  ${TEMP_DIRS.map((sub) => `${sub}_temp_path ${join(dir, sub)};`).join('\n  ')}
  keepalive_requests 1000000;
${http(dir)}}
`;
  writeFileSync(join(dir, 'nginx.conf'), config);
  return startProcess(name, NGINX, ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf')], port, { cpus, logFile: join(work, `${name}.log`) });
}

/** nginx, one worker, HTTP/1.1 keep-alive pool of 100 to the upstream, no access log. */
export async function startNginx(work: string, cpus: string | undefined, upstreamPort: number): Promise<ManagedProcess> {
  const port = await freePort();
  return runNginx(
    work,
    'nginx',
    cpus,
    port,
    () => `  keepalive_timeout 120s;
  upstream bench_upstream {
    server 127.0.0.1:${upstreamPort};
    keepalive 100;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
`,
  );
}

/**
 * Plugin mode: nginx running the shipped config/examples/nginx.conf (auth_request to the gateway,
 * then proxy_pass to the backend), its listen and upstream addresses pointed at this run's servers;
 * one worker, no access log. Everything else is the example as shipped.
 */
export async function startPluginNginx(work: string, cpus: string | undefined, gatewayPort: number, upstreamPort: number, name = 'nginx-plugin', holdAnswers = true): Promise<ManagedProcess> {
  const port = await freePort();
  let example = readFileSync(join(REPO_ROOT, 'config', 'examples', 'nginx.conf'), 'utf8');
  for (const [from, to] of [
    ['listen 80;', `listen 127.0.0.1:${port} backlog=4096;`],
    ['server 127.0.0.1:8080;', `server 127.0.0.1:${gatewayPort};`],
    ['server 127.0.0.1:9000;', `server 127.0.0.1:${upstreamPort};`],
    ['/dev/shm/nginx-mfa-authz', join(work, name, 'authz-cache')],
    // The example's own way to have every request decided by the gateway: no cache in /_mfa_auth.
    ['proxy_cache mfa_authz;', holdAnswers ? 'proxy_cache mfa_authz;' : ''],
    ['proxy_set_header X-Auth-Request-Cache on;', holdAnswers ? 'proxy_set_header X-Auth-Request-Cache on;' : ''],
  ] as const) {
    if (example.split(from).length !== 2) throw new BenchError(`config/examples/nginx.conf must contain "${from}" exactly once`);
    example = example.replace(from, to);
  }
  return runNginx(work, name, cpus, port, (dir) => {
    writeFileSync(join(dir, 'mfa-gateway.conf'), example);
    return `  include ${join(dir, 'mfa-gateway.conf')};\n`;
  });
}

/**
 * The gateway as users run it: `node dist/src/cli/main.js serve --config F`, logs (info) to a file;
 * BENCH_GATEWAY_ENTRY=module starts it through startGateway() (bench/servers/gateway.ts) instead;
 * BENCH_GATEWAY_NODE_FLAGS (space-separated) go to node for the gateway alone, before `nodeFlags`.
 * Policy, signing keys and key file are written first, then `provision` users are enrolled offline
 * (bench/lib/gateway-setup.ts) before it starts. `nodeFlags` go to node itself (--cpu-prof …).
 */
export async function startGateway(
  work: string,
  cpus: string | undefined,
  upstreamPort: number,
  limits: { maxQueued: number; tokenCacheEntries: number },
  provision: number,
  nodeFlags: readonly string[],
  storeYaml?: string,
  launch?: Launch,
): Promise<{ process: ManagedProcess; workspace: Workspace; provisioned: User[] }> {
  const viaModule = process.env.BENCH_GATEWAY_ENTRY === 'module';
  if (!viaModule && !existsSync(GATEWAY_CLI)) throw new BenchError(`${GATEWAY_CLI} is missing: run npm run build first`);
  const dir = join(work, 'gateway');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const workspace = await createWorkspace(dir, `http://127.0.0.1:${upstreamPort}`, { listen: port, admin: await freePort() }, limits, storeYaml);
  const started = Date.now();
  const provisioned = provision > 0 ? await provisionUsers(workspace, 'bench-fresh-', provision) : [];
  if (provision > 0) log(`provisioned ${provision} users with an active TOTP factor in ${((Date.now() - started) / 1000).toFixed(1)} s (before start, like \`mfa-gateway factors enroll\`)`);
  const entry = viaModule ? [join(SERVERS, 'gateway.js'), workspace.configPath] : [GATEWAY_CLI, 'serve', '--config', workspace.configPath];
  // The admin API is not used here: an admin token from the caller's environment stays out of the child.
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: process.env.BENCH_GATEWAY_LOG_LEVEL ?? 'info' };
  delete env.MFA_GATEWAY_ADMIN_TOKEN;
  const benchFlags = (process.env.BENCH_GATEWAY_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const gateway = await startProcess('mfa-gateway', process.execPath, [...benchFlags, ...nodeFlags, ...entry], port, { cpus, cwd: dir, env, logFile: join(work, 'gateway.log'), launch });
  return { process: gateway, workspace, provisioned };
}
