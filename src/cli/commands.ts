import type { IncomingMessage } from 'node:http';
import { loadPolicyFile } from '../config/load.js';
import type { GatewayPolicy } from '../config/types.js';
import { issueDevToken } from '../auth/dev-token.js';
import { challengeMaxAge, selectRoute } from '../decision/engine.js';
import { startDemoBackend } from '../demo/backend.js';
import { canonicalizeRequest } from '../request/canonical.js';
import { createTrustList } from '../request/trust.js';
import { findWeakerRules, formatRouteTable } from '../routes/table.js';
import { PROBLEMS } from '../errors/problems.js';
import { startGateway } from '../server/gateway.js';
import { boundHeapGrowth } from '../server/heap.js';
import { serveCluster } from '../cluster/primary.js';
import { parseWorkersOption } from '../cluster/workers-option.js';
import { ensureDemoKeyFile } from '../crypto/keyring.js';
import { formatDuration, parseDuration } from '../time/duration.js';
import { serverName } from '../time/sntp.js';
import { runFactorsCommand, runKeysCommand } from './offline.js';
import { checkHealth } from './healthcheck.js';
import { EXIT_FAILED, UsageError, type CliValues } from './options.js';
import { adminExposureWarning } from '../server/admin.js';
import { createKeyFile } from '../crypto/keyring.js';

const USAGE = `usage: mfa-gateway <command> [options]
  (--config F defaults to $MFA_GATEWAY_CONFIG, else config/gateway.yaml)

  serve   --config F [--demo] [--workers N|auto]
                                     run the gateway (--demo also starts the demo backend and a demo key file;
                                     --workers: N processes share the port, the store and one admin listener;
                                     auto = one per CPU; default 1, see docs/workers.md)
  check   --config F [--strict]      validate the policy file, print the route table, warn on shadowed rules
                                     (--strict: exit 1 when a stricter rule sits below a weaker one that takes its requests)
  explain --config F METHOD URL      which rule and policy would apply to a request
  dev-token --config F --sub SUB [--scope "a b"] [--roles "r"] [--ttl 1h] [--amr mfa]
                                     mint a token from the demo HS256 issuer (hmac_secret in the policy)
  factors enroll --user SUB [--type totp|hotp] [--secret B32 --counter N] [--label L]
  factors list   --user SUB
  factors remove --user SUB --id FACTOR_ID       (also ends the user's sessions)
  factors revoke-sessions --user SUB             end every MFA session of the user
  factors invite --user SUB                      print a single-use link to the setup page (10 minutes)
  keys init [--file PATH]            write a new key file (one primary key, mode 0600; default: keys.file
                                     of the policy); never overwrites an existing file (docs/keys.md)
  keys status | rotate | rewrap      inspect the secret-encryption keys, add a new primary, re-encrypt secrets
  healthcheck --config F             GET /healthz on the policy's admin listener: exit 0 healthy, 1 not
                                     (the container's HEALTHCHECK)
  store status | migrate             the durable store's schema version (status exits 3 while migrations are pending)
  store export --out F | import --in F [--replace]
                                     copy factors and recovery codes between stores (e.g. SQLite → PostgreSQL)

exit codes: 0 done, 1 the operation failed, 2 the command line was wrong (store status: 3 = migrations pending)
`;

function out(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function describeRequirement(policy: GatewayPolicy, routeIndex: number): string {
  const route = policy.routes[routeIndex]!;
  switch (route.policy) {
    case 'public':
      return 'no credentials checked';
    case 'deny':
      return 'always refused (403 forbidden)';
    case 'bearer':
      return 'valid bearer JWT' + (route.scopes.length ? ` with scopes [${route.scopes.join(' ')}]` : '') + (route.roles.length ? ` and a role of [${route.roles.join(' ')}]` : '');
    case 'mfa':
      return `valid bearer JWT + second factor${accepted(route)} within the session (max_age=${challengeMaxAge(policy, route)}s)`;
    case 'step_up':
      return `valid bearer JWT + second factor${accepted(route)} not older than ${formatDuration(route.maxAgeMs ?? 0)} (max_age=${challengeMaxAge(policy, route)}s)`;
  }
}

/** The route's second-factor methods, when it restricts them. */
function accepted(route: GatewayPolicy['routes'][number]): string {
  return route.mfaMethods === undefined ? '' : ` by ${route.mfaMethods.join(' or ')}`;
}

/** `explain` runs the very canonicalisation and matching the server runs, on a synthetic request. */
export function explain(policy: GatewayPolicy, method: string, url: string): string {
  const parsed = /^(https?):\/\/([^/?#]*)(.*)$/i.exec(url);
  const host = parsed ? parsed[2]! : '';
  const target = parsed ? parsed[3] || '/' : url;
  const fakeRequest = {
    method: method.toUpperCase(),
    url: target,
    httpVersion: '1.1',
    rawHeaders: host === '' ? [] : ['Host', host],
    headers: host === '' ? {} : { host },
    socket: { remoteAddress: '127.0.0.1' },
  } as unknown as IncomingMessage;
  const canonical = canonicalizeRequest(fakeRequest, { trustedProxies: createTrustList([]), maxTokenBytes: policy.auth.jwt.maxTokenBytes });
  if (!canonical.ok) return `rejected before routing: ${PROBLEMS[canonical.problem.code].status} ${canonical.problem.code} (${canonical.problem.detail})`;
  const view = canonical.view;
  const selected = selectRoute(policy, view);
  const lines = [`request: ${view.method} host=${view.host || '(none)'} path=${view.path}${view.search}`];
  if (!('policy' in selected)) {
    lines.push('rule:    none matches', 'policy:  default deny (404 route_not_found)');
    return lines.join('\n');
  }
  lines.push(
    `rule:    #${selected.index + 1} ${selected.name} (line ${selected.line})`,
    `policy:  ${selected.policy}${selected.maxAgeMs !== undefined ? ` max_age=${formatDuration(selected.maxAgeMs)}` : ''}`,
    `needs:   ${describeRequirement(policy, selected.index)}`,
    `forward: ${selected.upstream ?? '(none)'}${selected.forwardAuthorization ? '' : ' (Authorization not forwarded)'}`,
  );
  const limit = selected.rateLimit;
  if (limit !== undefined) {
    const by = limit.key === 'ip' ? 'client address, before authentication' : 'token subject, after authentication';
    lines.push(`limit:   ${limit.requests} per ${formatDuration(limit.perMs)} per ${by} (then 429 rate_limited)`);
  }
  return lines.join('\n');
}

async function serve(configPath: string, demo: boolean, workers: number): Promise<number | undefined> {
  let demoBackend: Awaited<ReturnType<typeof startDemoBackend>> | undefined;
  if (demo) {
    const policy = loadPolicyFile(configPath);
    if (policy.keys.file !== undefined && ensureDemoKeyFile(policy.keys.file)) {
      process.stderr.write(`demo: created a new encryption key file at ${policy.keys.file} (keep it secret)\n`);
    }
    const upstream = policy.upstreams.get('demo');
    if (upstream === undefined) throw new Error('--demo needs an upstream named "demo" in the policy file');
    demoBackend = await startDemoBackend(Number(upstream.url.port || 80), upstream.url.hostname);
  }
  if (workers > 1) {
    try {
      return await serveCluster({ configPath, workers });
    } finally {
      demoBackend?.server.close();
    }
  }
  boundHeapGrowth();
  const gateway = await startGateway({ configPath });
  process.on('SIGHUP', () => gateway.reload());
  let stopping = false;
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    gateway
      .stop()
      .then(() => demoBackend?.server.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  return undefined;
}

async function devToken(policy: GatewayPolicy, values: CliValues): Promise<string> {
  const jwt = policy.auth.jwt;
  if (jwt.hmacSecret === undefined) throw new Error('dev-token works only with the demo issuer (auth.jwt.hmac_secret)');
  if (values.sub === undefined) throw new UsageError('dev-token needs --sub SUBJECT');
  const ttlMs = parseDuration(values.ttl ?? '1h');
  if (ttlMs === undefined) throw new UsageError(`--ttl: not a duration: ${values.ttl}`);
  const split = (text: string | undefined): string[] => (text ?? '').split(/[\s,]+/).filter(Boolean);
  const amr = split(values.amr);
  return issueDevToken({
    secret: jwt.hmacSecret,
    issuer: jwt.issuer,
    audience: jwt.audience[0]!,
    subject: values.sub,
    scopes: split(values.scope),
    roles: split(values.roles),
    ttlSeconds: Math.floor(ttlMs / 1000),
    ...(amr.length > 0 ? { amr, authTime: Math.floor(Date.now() / 1000) } : {}),
  });
}

/** A command that takes no positional arguments refuses extra ones rather than ignore them. */
function noArguments(command: string, rest: readonly string[]): void {
  if (rest.length > 0) throw new UsageError(`${command} takes no argument "${rest[0]}"; mfa-gateway --help lists the commands`);
}

/** `keys init`: the first key file, outside demo mode. --file wins; else the policy's keys.file. */
function keysInit(values: CliValues, configPath: string, extra: readonly string[]): number {
  noArguments('keys init', extra);
  let path = values.file;
  if (path === undefined) {
    const file = loadPolicyFile(configPath).keys.file;
    if (file === undefined) throw new UsageError(`keys init needs --file PATH (${configPath} sets no keys.file)`);
    path = file;
  }
  if (path === '') throw new UsageError('keys init needs --file PATH');
  const { kid } = createKeyFile(path);
  out(`created key file ${path} (mode 0600) with primary key ${kid}; keep it secret and back it up: without it the stored secrets cannot be opened`);
  return 0;
}

export async function runCommand(positionals: readonly string[], values: CliValues): Promise<number | undefined> {
  const [command, ...rest] = positionals;
  // The container sets MFA_GATEWAY_CONFIG once, so `serve` and its HEALTHCHECK read the same file.
  const configPath = values.config ?? (process.env.MFA_GATEWAY_CONFIG || 'config/gateway.yaml');
  if (values.help === true || command === 'help') {
    out(USAGE);
    return 0;
  }
  switch (command) {
    case undefined:
      throw new UsageError('no command given; mfa-gateway --help lists the commands');
    case 'serve': {
      noArguments('serve', rest);
      const workers = parseWorkersOption(values.workers);
      if (!workers.ok) throw new UsageError(workers.error);
      return serve(configPath, values.demo === true, workers.workers);
    }
    case 'check': {
      noArguments('check', rest);
      const policy = loadPolicyFile(configPath);
      out(`${configPath}: ok, ${policy.routes.length} routes, ${policy.upstreams.size} upstreams`);
      const tls = policy.listen.tls;
      if (tls !== undefined) {
        // What an operator checks after a rotation: which certificate, until when.
        const c = tls.credentials;
        out(`tls: ${tls.minVersion === 'TLSv1.3' ? 'TLSv1.3' : 'TLSv1.2 and TLSv1.3'}, certificate ${c.subject}, sha256 ${c.fingerprint256}, valid until ${new Date(c.validToMs).toISOString()}`);
      }
      const clock = policy.clock;
      // Which NTP server the clock is checked against, so a typo is seen before the first warning.
      if (clock !== undefined) out(`clock: NTP server ${serverName(clock.server)}, asked every ${formatDuration(clock.intervalMs)}, ${formatDuration(clock.timeoutMs)} to answer`);
      const exposure = adminExposureWarning(policy.admin.host);
      if (exposure !== undefined) out(`warning: ${exposure}`);
      out(formatRouteTable(policy));
      const weaker = findWeakerRules(policy.routes);
      if (values.strict === true && weaker.length > 0) {
        process.stderr.write(`mfa-gateway: check --strict: ${weaker.length} stricter rule${weaker.length === 1 ? '' : 's'} below a weaker one (see the warnings above)\n`);
        return EXIT_FAILED;
      }
      return 0;
    }
    case 'explain': {
      const [method, url, ...extra] = rest;
      if (method === undefined || url === undefined || extra.length > 0) throw new UsageError('explain needs METHOD URL, e.g. explain GET http://localhost/orders/1');
      out(explain(loadPolicyFile(configPath), method, url));
      return 0;
    }
    case 'dev-token':
      noArguments('dev-token', rest);
      out(await devToken(loadPolicyFile(configPath), values));
      return 0;
    case 'healthcheck': {
      noArguments('healthcheck', rest);
      const result = await checkHealth(loadPolicyFile(configPath));
      if (!result.healthy) throw new Error(`healthcheck: ${result.line}`);
      out(result.line);
      return 0;
    }
    case 'factors':
      return runFactorsCommand(loadPolicyFile(configPath), rest, values, out);
    case 'keys':
      // keys init --file works without a loadable policy: it makes what the policy needs to load.
      if (rest[0] === 'init') return keysInit(values, configPath, rest.slice(1));
      return runKeysCommand(loadPolicyFile(configPath), rest, out);
    case 'store': {
      // The store admin loads the PostgreSQL client: only this command needs it, not `serve`.
      const { runStoreCommand } = await import('./store.js');
      return runStoreCommand(loadPolicyFile(configPath), rest, values, out);
    }
    default:
      throw new UsageError(`unknown command "${command}"; mfa-gateway --help lists the commands`);
  }
}
