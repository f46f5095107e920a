import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, parseDocument } from 'yaml';
import { signingKey, startJwksServer, type JwksServer, type SigningKey } from '../auth/helpers.js';
import { missingBinary, OATHTOOL, PROMTOOL, waitForListen } from '../support/binaries.js';
import { call, freePort } from '../support/http.js';
import { oathHotp } from '../support/otp.js';
import { createTestSchema, type TestSchema } from '../support/postgres.js';
import { deleteKeys, testPrefix } from '../support/redis-server.js';
import { CLI, REPO, startServe, type ServeProcess } from '../support/serve.js';
import { postgresOrSkip, REDIS_URL, redisOrSkip } from '../support/services.js';
import { signRaw } from '../support/tokens.js';
import { eventually } from '../support/wait.js';

/**
 * compose.yaml and the Dockerfile, checked without Docker: the files are parsed and held against
 * the repository (every config, command, port and healthcheck they name), then the same topology
 * runs as local processes: the real CLI with the config and environment compose gives it, the
 * demo backend by the very command compose runs, and Prometheus when it is installed. What differs
 * is only what a container network changes: service names become 127.0.0.1, fixed ports free ones,
 * /app becomes a temp dir.
 */

const PROMETHEUS = '/usr/bin/prometheus';
const AUDIENCE = 'orders-api';

type Env = Record<string, string>;

interface Service {
  readonly image?: string;
  readonly build?: unknown;
  readonly command?: readonly string[];
  readonly entrypoint?: readonly string[];
  readonly environment?: Readonly<Record<string, string>>;
  readonly ports?: readonly string[];
  readonly volumes?: readonly string[];
  readonly healthcheck?: { readonly test?: readonly string[]; readonly disable?: boolean };
  readonly depends_on?: Readonly<Record<string, unknown>>;
  readonly profiles?: readonly string[];
}

interface Compose {
  readonly services: Readonly<Record<string, Service>>;
  readonly volumes?: Readonly<Record<string, unknown>>;
}

const compose = parseDocument(readFileSync(join(REPO, 'compose.yaml'), 'utf8'), { merge: true }).toJS() as Compose;
const services = compose.services;
const GATEWAY_IMAGE = 'mfa-gateway:local';

/** Compose's own interpolation (`${X:?message}`, `${X:-default}`, `${X}`), from `given`. */
function interpolate(value: string, given: Env): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::([?-])([^}]*))?\}/g, (_whole, name: string, kind: string | undefined, rest: string) => {
    const found = given[name];
    if (found !== undefined && found !== '') return found;
    if (kind === '-') return rest;
    throw new Error(`compose.yaml needs ${name}${kind === '?' ? `: ${rest}` : ''}`);
  });
}

/** `${NAME}` references of a policy file that have no `:-default`: the variables it cannot load without. */
function requiredVariables(policyText: string): string[] {
  const names = new Set<string>();
  for (const line of policyText.split('\n')) {
    if (line.trimStart().startsWith('#')) continue;
    for (const match of line.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g)) if (match[2] === undefined) names.add(match[1]!);
  }
  return [...names].sort();
}

/** The policy a gateway service runs: --config in its command, else MFA_GATEWAY_CONFIG, else the image's. */
function policyOf(service: Service): string {
  const command = service.command ?? [];
  const flag = command.indexOf('--config');
  if (flag >= 0) return command[flag + 1]!;
  return service.environment?.MFA_GATEWAY_CONFIG ?? imageEnv().MFA_GATEWAY_CONFIG!;
}

/** The Dockerfile's instructions of the final stage, continuation lines joined. */
function dockerfile(): { readonly from: string[]; readonly final: Map<string, string[]> } {
  const text = readFileSync(join(REPO, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const from: string[] = [];
  let final = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const [instruction, ...rest] = line.split(/\s+/);
    const upper = instruction!.toUpperCase();
    if (upper === 'FROM') {
      from.push(rest[0]!);
      final = new Map();
    }
    final.set(upper, [...(final.get(upper) ?? []), rest.join(' ')]);
  }
  return { from, final };
}

/** `ENV A=1 B=2` of the final stage. */
function imageEnv(): Env {
  const env: Env = {};
  for (const line of dockerfile().final.get('ENV') ?? []) for (const [, name, value] of line.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) env[name!] = value!;
  return env;
}

/** The exec form `["a", "b"]` of an instruction, after any `--interval=…` options. */
function execForm(text: string): string[] {
  return JSON.parse(text.slice(text.indexOf('['))) as string[];
}

function run(args: readonly string[], env: Env, cwd = REPO): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The host:port a published `"8080:8080"` maps, as [host, container]. */
function published(port: string): [number, number] {
  const [host, container] = port.split(':').map(Number) as [number, number];
  return [host, container];
}

/** A policy file's listen and admin ports. */
function listenPorts(policyText: string): { listen: number; admin: number } {
  const policy = parse(policyText) as { listen: { port: number }; admin: { port: number } };
  return { listen: policy.listen.port, admin: policy.admin.port };
}

describe('compose.yaml is consistent with the repository', () => {
  test('every gateway service runs a policy file of the repository, and its environment gives every variable that file needs', () => {
    const gateways = Object.entries(services).filter(([, s]) => s.image === GATEWAY_IMAGE && s.entrypoint === undefined);
    assert.deepEqual(gateways.map(([name]) => name).sort(), ['gateway', 'gateway-1', 'gateway-2', 'gateway-3']);
    for (const [name, service] of gateways) {
      assert.deepEqual(service.command, ['serve'], `${name} runs serve (the policy from MFA_GATEWAY_CONFIG, which its healthcheck reads too)`);
      const policy = policyOf(service);
      assert.ok(existsSync(join(REPO, policy)), `${name}: ${policy} exists`);
      const environment = service.environment ?? {};
      for (const variable of requiredVariables(readFileSync(join(REPO, policy), 'utf8'))) assert.ok(variable in environment, `${name}: ${policy} needs ${variable}`);
      assert.deepEqual(service.healthcheck?.test, ['CMD', 'node', 'dist/src/cli/main.js', 'healthcheck'], `${name}'s healthcheck is mfa-gateway healthcheck`);
      const { listen } = listenPorts(readFileSync(join(REPO, policy), 'utf8'));
      for (const port of service.ports ?? []) assert.equal(published(port)[1], listen, `${name} publishes the policy's listen port`);
      // The admin listener is for the compose network only: never published on the host.
      assert.ok(!(service.ports ?? []).some((port) => published(port)[1] === listenPorts(readFileSync(join(REPO, policy), 'utf8')).admin), `${name} does not publish the admin port`);
      assert.equal(environment.MFA_GATEWAY_UPSTREAM, 'http://demo-backend:9000');
      assert.equal(environment.MFA_GATEWAY_ADMIN_HOST, '0.0.0.0', `${name} binds its admin listener for Prometheus, explicitly`);
    }
    assert.deepEqual(services.gateway!.volumes, ['gateway-data:/app/data'], 'the single gateway keeps its SQLite file and key file in a named volume at /app/data');
  });

  test('no published host port is taken twice within a profile, and depends_on names defined services', () => {
    for (const profile of [undefined, 'shared']) {
      const active = Object.entries(services).filter(([, s]) => s.profiles === undefined || (profile !== undefined && s.profiles.includes(profile)));
      const used = new Map<number, string>();
      for (const [name, service] of active) {
        for (const port of service.ports ?? []) {
          const host = published(port)[0];
          assert.equal(used.get(host), undefined, `host port ${host} of ${name} is also ${used.get(host)}'s (profile ${profile ?? 'default'})`);
          used.set(host, name);
        }
      }
    }
    for (const [name, service] of Object.entries(services)) {
      for (const dependency of Object.keys(service.depends_on ?? {})) assert.ok(dependency in services, `${name} depends on ${dependency}`);
      for (const volume of service.volumes ?? []) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) assert.ok(existsSync(join(REPO, source)), `${name} mounts ${source}`);
        else assert.ok(compose.volumes !== undefined && source in compose.volumes, `${name}'s volume ${source} is declared`);
      }
    }
  });

  test('the demo backend runs a module the build produces, and Prometheus a config and rules of the repository that scrape the gateways', () => {
    const demo = services['demo-backend']!;
    const script = demo.entrypoint!.at(-1)!;
    const module = /import\('\.\/(dist\/src\/[^']+)\.js'\)/.exec(script)?.[1];
    assert.ok(module !== undefined, script);
    assert.ok(existsSync(join(REPO, module.replace(/^dist\//, '') + '.ts')), `${module}.js is built from the repository`);
    for (const [name, gateways] of [
      ['prometheus', ['gateway']],
      ['prometheus-shared', ['gateway-1', 'gateway-2', 'gateway-3']],
    ] as const) {
      const service = services[name]!;
      const [mount] = service.volumes!;
      const [source, target] = mount!.split(':') as [string, string];
      const file = service.command!.find((arg) => arg.startsWith('--config.file='))!.slice('--config.file='.length);
      assert.ok(file.startsWith(`${target}/`), `${name}: ${file} is in the mount`);
      const local = join(REPO, source, file.slice(target.length + 1));
      const config = parse(readFileSync(local, 'utf8')) as { rule_files: string[]; scrape_configs: { static_configs: { targets: string[] }[] }[] };
      for (const rules of config.rule_files) assert.ok(existsSync(join(REPO, source, rules)), `${name}: rule file ${rules}`);
      const targets = config.scrape_configs.flatMap((job) => job.static_configs.flatMap((s) => s.targets));
      const adminPort = listenPorts(readFileSync(join(REPO, policyOf(services[gateways[0]]!)), 'utf8')).admin;
      assert.deepEqual(targets, gateways.map((gateway) => `${gateway}:${adminPort}`), `${name} scrapes each gateway's admin listener`);
    }
  });

  test('promtool accepts both Prometheus configurations and their rules', { skip: missingBinary(PROMTOOL, 'prometheus') }, () => {
    for (const file of ['prometheus.yml', 'prometheus-shared.yml']) {
      const result = spawnSync(PROMTOOL, ['check', 'config', join(REPO, 'config/prometheus', file)], { encoding: 'utf8' });
      assert.equal(result.status, 0, result.stdout + result.stderr);
    }
  });
});

describe('the Dockerfile', () => {
  const { from, final } = dockerfile();

  test('builds on a current LTS Node, runs as a non-root user, and probes with mfa-gateway healthcheck', () => {
    assert.ok(from.every((image) => /^node:24-/.test(image)), from.join(', '));
    const user = final.get('USER')?.at(-1);
    assert.ok(user !== undefined && user !== 'root' && user !== '0', `USER ${user}`);
    const probe = final.get('HEALTHCHECK')!.at(-1)!;
    assert.match(probe, /--timeout=3s .*CMD \[/, 'a probe of at most 3 s (healthcheck gives up after 2 s) in exec form');
    assert.deepEqual(execForm(probe), ['node', 'dist/src/cli/main.js', 'healthcheck']);
    assert.deepEqual(execForm(final.get('ENTRYPOINT')!.at(-1)!), ['node', 'dist/src/cli/main.js']);
    assert.deepEqual(execForm(final.get('CMD')!.at(-1)!), ['serve'], 'no --demo by default');
  });

  test("the image's policy exists, carries no HMAC secret, and passes check with the environment compose gives", () => {
    const policy = imageEnv().MFA_GATEWAY_CONFIG!;
    assert.equal(policy, 'config/docker.yaml');
    const text = readFileSync(join(REPO, policy), 'utf8');
    assert.doesNotMatch(text.replace(/#.*$/gm, ''), /hmac_secret/);
    const env = { MFA_GATEWAY_ISSUER: 'https://idp.example.com/', MFA_GATEWAY_AUDIENCE: AUDIENCE, MFA_GATEWAY_JWKS_URI: 'https://idp.example.com/.well-known/jwks.json' };
    const given = Object.fromEntries(Object.entries(services.gateway!.environment!).map(([name, value]) => [name, interpolate(value, env)]));
    const checked = run(['check', '--config', policy], given);
    assert.equal(checked.status, 0, checked.stderr);
    assert.match(checked.stdout, /^warning: the admin listener is bound to 0\.0\.0\.0, beyond loopback/m);
    const unset = run(['check', '--config', policy], { MFA_GATEWAY_ISSUER: '', MFA_GATEWAY_AUDIENCE: AUDIENCE, MFA_GATEWAY_JWKS_URI: env.MFA_GATEWAY_JWKS_URI, MFA_GATEWAY_UPSTREAM: 'http://127.0.0.1:9' });
    assert.equal(unset.status, 1);
    assert.equal(
      unset.stderr,
      `mfa-gateway: ${policy}:23: auth.jwt.issuer: environment variable MFA_GATEWAY_ISSUER is empty (referenced as \${MFA_GATEWAY_ISSUER}; give it a value or write \${MFA_GATEWAY_ISSUER:-default})\n`,
    );
  });
});

/** What runs in place of a compose service. */
interface Topology {
  readonly jwks: JwksServer;
  readonly key: SigningKey;
  readonly backend: ChildProcess;
  readonly backendPort: number;
  readonly dir: string;
}

/** The demo backend by compose's own entrypoint, on a free port. */
async function startTopology(): Promise<Topology> {
  const key = await signingKey('RS256', 'k1');
  const jwks = await startJwksServer([key.publicJwk]);
  const demo = services['demo-backend']!;
  const backendPort = await freePort();
  const [program, ...args] = demo.entrypoint!;
  assert.equal(program, 'node');
  let output = '';
  const backend = spawn(process.execPath, args, { cwd: REPO, env: { ...process.env, ...demo.environment, DEMO_BACKEND_PORT: String(backendPort) }, stdio: ['ignore', 'pipe', 'pipe'] });
  backend.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  backend.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await waitForListen(backend, 'demo backend', backendPort, () => output, 10_000);
  return { jwks, key, backend, backendPort, dir: mkdtempSync(join(tmpdir(), 'mfa-gw-compose-')) };
}

async function stopTopology(topology: Topology | undefined): Promise<void> {
  if (topology === undefined) return;
  topology.backend.kill('SIGTERM');
  await topology.jwks.close();
  rmSync(topology.dir, { recursive: true, force: true });
}

/** A service's environment as compose would pass it, with the other services reached on loopback. */
function localEnv(service: Service, topology: Topology, extra: Env = {}): Env {
  // What the operator exports before `docker compose up` (the shared profile's keys come in `extra`).
  const given: Env = { MFA_GATEWAY_ISSUER: 'https://idp.test.example/', MFA_GATEWAY_AUDIENCE: AUDIENCE, MFA_GATEWAY_JWKS_URI: topology.jwks.url, ...extra };
  const env: Env = {};
  for (const [name, value] of Object.entries(service.environment ?? {})) {
    env[name] = interpolate(value, given).replace('http://demo-backend:9000', `http://127.0.0.1:${topology.backendPort}`);
  }
  // The test's own database and Redis prefix replace the compose network's.
  return { ...env, ...extra };
}

/** The service's policy with its fixed ports swapped for free ones (the only edit), written to `dir`. */
async function localPolicy(service: Service, dir: string, name: string): Promise<{ path: string; port: number; adminPort: number }> {
  const text = readFileSync(join(REPO, policyOf(service)), 'utf8');
  const { listen, admin } = listenPorts(text);
  const [port, adminPort] = [await freePort(), await freePort()];
  const edited = text.replace(`port: ${listen} }`, `port: ${port} }`).replace(`port: ${admin},`, `port: ${adminPort},`);
  assert.deepEqual(listenPorts(edited), { listen: port, admin: adminPort });
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, edited);
  return { path, port, adminPort };
}

function bearer(topology: Topology, subject: string): string {
  const now = Math.floor(Date.now() / 1000);
  return signRaw({ alg: 'RS256', typ: 'JWT', kid: topology.key.kid }, { iss: 'https://idp.test.example/', aud: AUDIENCE, sub: subject, iat: now, exp: now + 600 }, topology.key.privateKey);
}

/** Enrols an HOTP factor with the operator CLI (same policy and environment), counter 0; returns its secret. */
function enrollHotp(policy: string, env: Env, cwd: string, subject: string): string {
  const secret = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';
  const enrolled = run(['factors', 'enroll', '--user', subject, '--type', 'hotp', '--secret', secret, '--counter', '0', '--config', policy], env, cwd);
  assert.equal(enrolled.status, 0, enrolled.stderr);
  assert.match(enrolled.stdout, new RegExp(`^factor \\S+ \\(hotp, active\\) for ${subject}$`, 'm'));
  return secret;
}

/** The healthcheck exactly as the compose service runs it (argv after CMD), for the policy in `env`. */
function healthcheck(service: Service, env: Env, policy: string): { status: number | null; stdout: string; stderr: string } {
  const [kind, program, ...args] = service.healthcheck!.test!;
  assert.equal(kind, 'CMD');
  assert.equal(program, 'node');
  const result = spawnSync(process.execPath, args, { cwd: REPO, env: { ...process.env, ...env, MFA_GATEWAY_CONFIG: policy }, encoding: 'utf8', timeout: 10_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the default topology as local processes: gateway, demo backend, Prometheus', { skip: missingBinary(OATHTOOL, 'oathtool') }, () => {
  let topology: Topology | undefined;
  let gateway: ServeProcess | undefined;
  let prometheus: ChildProcess | undefined;
  before(async () => {
    topology = await startTopology();
  });
  after(async () => {
    prometheus?.kill('SIGTERM');
    gateway?.kill();
    await stopTopology(topology);
  });

  test('keys init in the data directory, then serve: healthcheck passes, a request flows end to end, Prometheus scrapes it', async (t) => {
    const top = topology!;
    const service = services.gateway!;
    const { path: policy, port, adminPort } = await localPolicy(service, top.dir, 'gateway');
    const env = localEnv(service, top);
    // /app in the image is the working directory: the policy's ./data is the volume.
    const refused = run(['serve', '--config', policy], env, top.dir);
    assert.equal(refused.status, 1);
    assert.equal(refused.stderr, 'mfa-gateway: key file ./data/keys does not exist; the gateway does not start without an encryption key: create one with `mfa-gateway keys init --file ./data/keys` (see docs/keys.md)\n');
    const init = run(['keys', 'init', '--config', policy], env, top.dir);
    assert.equal(init.status, 0, init.stderr);
    assert.equal(statSync(join(top.dir, 'data', 'keys')).mode & 0o777, 0o600);

    gateway = await startServe(['--config', policy], { env, cwd: top.dir });
    assert.equal(gateway.port, port);
    assert.equal(gateway.adminPort, adminPort);
    const warning = await gateway.waitFor((event) => event.event === 'admin_exposed');
    assert.equal(warning.admin, `0.0.0.0:${adminPort}`);

    const healthy = healthcheck(service, env, policy);
    assert.deepEqual(healthy, { status: 0, stdout: `http://127.0.0.1:${adminPort}/healthz: 200 {"status":"ok"}\n`, stderr: '' });

    const health = await call(port, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.equal(health.json().backend, 'demo');
    const jwt = bearer(top, 'alice');
    // The token is checked against the JWKS of the environment's issuer; alice has no factor yet.
    const unenrolled = await call(port, 'GET', '/orders/1', { authorization: `Bearer ${jwt}` });
    assert.equal(unenrolled.status, 403, unenrolled.text);
    assert.equal(unenrolled.json().code, 'mfa_not_enrolled');
    const forged = await call(port, 'GET', '/orders/1', { authorization: `Bearer ${jwt.slice(0, -4)}AAAA` });
    assert.equal(forged.status, 401, forged.text);

    const secret = enrollHotp(policy, env, top.dir, 'alice');
    const verified = await call(port, 'POST', '/.mfa/verify', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathHotp(secret, 0) });
    assert.equal(verified.status, 200, verified.text);
    const session = verified.json<{ session_token: string }>().session_token;
    const through = await call(port, 'GET', '/orders/1', { authorization: `Bearer ${jwt}`, 'x-session-token': session });
    assert.equal(through.status, 200, through.text);
    assert.deepEqual([through.json().backend, through.json().path], ['demo', '/orders/1']);

    if (existsSync(PROMETHEUS)) {
      const promPort = await freePort();
      const config = readFileSync(join(REPO, 'config/prometheus/prometheus.yml'), 'utf8').replace('targets: [gateway:9090]', `targets: ['127.0.0.1:${adminPort}']`).replace('scrape_interval: 15s', 'scrape_interval: 1s');
      writeFileSync(join(top.dir, 'prometheus.yml'), config);
      writeFileSync(join(top.dir, 'mfa-gateway.rules.yml'), readFileSync(join(REPO, 'config/prometheus/mfa-gateway.rules.yml')));
      let output = '';
      prometheus = spawn(PROMETHEUS, [`--config.file=${join(top.dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(top.dir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: ['ignore', 'pipe', 'pipe'] });
      prometheus.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
      await waitForListen(prometheus, 'prometheus', promPort, () => output, 20_000);
      let health = '';
      await eventually(async () => {
        // Until it is ready, Prometheus answers 503 with a text body: keep asking.
        const targets = await call(promPort, 'GET', '/api/v1/targets');
        if (targets.status !== 200) {
          health = `HTTP ${targets.status}`;
          return false;
        }
        const active = targets.json<{ data: { activeTargets: { health: string; labels: { job: string } }[] } }>().data.activeTargets;
        health = active.map((target) => `${target.labels.job}=${target.health}`).join(',');
        return health === 'mfa-gateway=up';
      }, 30_000).catch((error: unknown) => assert.fail(`Prometheus did not scrape the gateway: ${health} (${String(error)}; ${output.slice(-500)})`));
      const rules = await call(promPort, 'GET', '/api/v1/rules');
      assert.ok(rules.json<{ data: { groups: unknown[] } }>().data.groups.length > 0, 'the shipped rules are loaded');
    } else {
      if (process.env.CI === 'true') assert.fail(`prometheus not found at ${PROMETHEUS}, and CI=true: install it (apt-get install prometheus)`);
      t.diagnostic(`Prometheus not run: not found at ${PROMETHEUS} (its configuration is checked with promtool above)`);
      console.log(`# Prometheus not run: not found at ${PROMETHEUS} (install the Debian package "prometheus")`);
    }

    gateway.child.kill('SIGTERM');
    assert.equal((await gateway.exited).code, 0);
    const down = healthcheck(service, env, policy);
    assert.equal(down.status, 1);
    assert.equal(down.stderr, `mfa-gateway: healthcheck: http://127.0.0.1:${adminPort}/healthz: unreachable (ECONNREFUSED)\n`);
  });
});

describe('the "shared" profile as local processes: three gateways on one PostgreSQL and Redis', () => {
  let topology: Topology | undefined;
  let schema: TestSchema | undefined;
  const prefix = testPrefix();
  const gateways: ServeProcess[] = [];
  before(async () => {
    topology = await startTopology();
  });
  after(async () => {
    for (const gateway of gateways) gateway.kill();
    await schema?.drop();
    await deleteKeys(REDIS_URL, prefix).catch(() => 0);
    await stopTopology(topology);
  });

  test('each passes its healthcheck; a session opened on gateway-1 is honoured by gateway-3', { skip: missingBinary(OATHTOOL, 'oathtool') }, async (t) => {
    const unavailable = (await postgresOrSkip()) ?? (await redisOrSkip());
    if (unavailable !== undefined) {
      t.skip(unavailable);
      return;
    }
    const top = topology!;
    schema = await createTestSchema();
    const keyLine = `k1 ${randomBytes(32).toString('base64')} 2026-01-01 primary`;
    const extra: Env = { MFA_GATEWAY_POSTGRES_URL: schema.url, MFA_GATEWAY_REDIS_URL: REDIS_URL, MFA_GATEWAY_REDIS_PREFIX: prefix, MFA_GATEWAY_KEYS: keyLine };
    const started: { port: number; adminPort: number; env: Env; policy: string; service: Service }[] = [];
    for (const name of ['gateway-1', 'gateway-2', 'gateway-3']) {
      const service = services[name]!;
      const env = localEnv(service, top, extra);
      assert.equal(env.MFA_GATEWAY_POSTGRES_URL, schema.url, 'the compose URL is replaced by the test database');
      const local = await localPolicy(service, top.dir, name);
      gateways.push(await startServe(['--config', local.path], { env, cwd: top.dir }));
      started.push({ ...local, policy: local.path, env, service });
    }
    for (const gateway of started) {
      const result = healthcheck(gateway.service, gateway.env, gateway.policy);
      assert.equal(result.status, 0, result.stderr);
    }
    const [first, , third] = started as [(typeof started)[0], (typeof started)[0], (typeof started)[0]];
    const secret = enrollHotp(first.policy, first.env, top.dir, 'bob');
    const jwt = bearer(top, 'bob');
    const verified = await call(first.port, 'POST', '/.mfa/verify', { authorization: `Bearer ${jwt}`, 'x-mfa-token': oathHotp(secret, 0) });
    assert.equal(verified.status, 200, verified.text);
    const session = verified.json<{ session_token: string }>().session_token;
    const elsewhere = await call(third.port, 'GET', '/orders/7', { authorization: `Bearer ${jwt}`, 'x-session-token': session });
    assert.equal(elsewhere.status, 200, elsewhere.text);
    assert.deepEqual([elsewhere.json().backend, elsewhere.json().path], ['demo', '/orders/7']);
  });
});
