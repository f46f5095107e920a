/**
 * Semantic checks and the step from the schema-valid YAML (snake_case, duration strings) to the
 * frozen GatewayPolicy (camelCase, milliseconds, compiled regexes). Runs only on data the schema
 * accepted, with every default already filled in. The sections are compiled here, except `routes:`
 * (routes/compile.ts) and the files of `auth.jwt.public_keys` (jwt-public-keys.ts); this module
 * gives them the issue reporting, then freezes the whole policy.
 */
import { compileSetup, type RawSetup } from './setup.js';
import { resolve } from 'node:path';
import { RequestConfigError } from '../request/errors.js';
import { createTrustList } from '../request/trust.js';
import { formatDuration, parseDuration } from '../time/duration.js';
import { compileRoutes, type RawRoute } from '../routes/compile.js';
import type { Route } from '../routes/types.js';
import { checkTlsCredentials, TlsCredentials, type TlsMinVersion } from '../tls/credentials.js';
import type { ClockConfig, GatewayPolicy, JwtAlgorithm, JwtConfig, OtpAlgorithm, TlsConfig, UpstreamConfig, UserVerification, WebAuthnConfig } from './types.js';
import { DURATION_BOUNDS, type DurationBounds } from './bounds.js';
import type { PolicyIssue } from './errors.js';
import { deepFreeze, FrozenMap, FrozenSet, readonlyUrl } from './freeze.js';
import { parseJwtPublicKeyFile } from './jwt-public-keys.js';
import { compileEvents, type RawEvents } from './events.js';
import { compileOob, type RawOob } from './oob.js';
import { compileStore, type RawStore } from './store.js';
import { formatPath, parsedUrl, type Add, type Locator, type Segment } from './locate.js';
import { DURATION_HINT } from './schema.js';

/** Headers whose treatment is part of the gateway's contract (DESIGN §3), never configurable. */
const GATEWAY_OWNED_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'x-mfa-token',
  'x-session-token',
  'x-request-id',
  'x-auth-subject',
  'x-auth-scopes',
  'x-auth-mfa',
  'x-auth-mfa-time',
]);

/** The file as the schema describes it, after ajv filled in the defaults. */
export interface RawPolicy {
  readonly listen: { readonly host: string; readonly port: number; readonly tls?: RawTls };
  readonly admin: { readonly host: string; readonly port: number; readonly token_env: string };
  readonly trusted_proxies: readonly string[];
  readonly untrusted_peer_headers: readonly string[];
  readonly case_insensitive: boolean;
  readonly auth: { readonly jwt: RawJwt };
  readonly mfa: RawMfa;
  readonly events: RawEvents;
  readonly store: RawStore;
  readonly keys: { readonly file?: string; readonly env?: string; readonly rotation: string };
  readonly upstreams: Readonly<Record<string, RawUpstream>>;
  readonly routes: readonly RawRoute[];
  readonly default: 'deny';
  readonly limits: {
    readonly max_header_bytes: number;
    readonly max_queued: number;
    readonly drain_timeout: string;
    readonly max_upstream_connections: number;
  };
  readonly authz: { readonly trusted_proxies: readonly string[] };
  readonly setup: RawSetup;
  readonly clock: { readonly ntp_server?: string; readonly interval: string; readonly timeout: string };
}

interface RawTls {
  readonly cert: string;
  readonly key: string;
  readonly min_version: TlsMinVersion;
  readonly hsts?: { readonly max_age: string; readonly include_subdomains: boolean; readonly preload: boolean };
}

interface RawJwt {
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly algorithms?: readonly JwtAlgorithm[];
  readonly clock_tolerance: string;
  readonly jwks_uri?: string;
  readonly public_keys?: readonly string[];
  readonly hmac_secret?: string;
  readonly jwks: { readonly cooldown: string; readonly timeout: string; readonly cache_max_age: string };
  readonly cache: { readonly max_entries: number; readonly max_ttl: string };
  readonly max_token_bytes: number;
  readonly scope_claim: string;
  readonly roles_claim: string;
  readonly accept_idp_mfa: boolean;
}

interface RawMfa extends RawOob {
  readonly issuer: string;
  readonly totp: { readonly algorithm: OtpAlgorithm; readonly digits: 6 | 8; readonly period: number; readonly window: number; readonly max_age?: string };
  readonly hotp: { readonly look_ahead: number; readonly max_age?: string };
  readonly webauthn?: RawWebAuthn;
  readonly session: { readonly ttl: string; readonly max_per_subject: number };
  readonly lockout: { readonly max_failures: number; readonly find_time: string; readonly backoff: readonly string[] };
  readonly ip_throttle: { readonly enabled: boolean; readonly max_failures: number; readonly find_time: string; readonly block: string };
  readonly recovery_codes: { readonly count: number };
  readonly enrollment: { readonly pending_ttl: string };
  readonly path_prefix: string;
}

interface RawWebAuthn {
  readonly rp_id: string;
  readonly rp_name?: string;
  readonly origins: readonly string[];
  readonly user_verification: UserVerification;
  readonly timeout: string;
  readonly max_age: { readonly security_key: string; readonly platform: string };
}

interface RawUpstream {
  readonly url: string;
  readonly pool: { readonly connections: number; readonly keep_alive: string; readonly keep_alive_max: string };
  readonly timeout: string;
  readonly connect_timeout: string;
  readonly retries: { readonly max: number; readonly initial: string; readonly multiplier: number; readonly jitter: string };
}

export interface CompileContext {
  readonly source: string;
  /** public_keys files are relative to this directory (the policy file's). */
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readFile: (path: string) => string;
}

export const MIN_ADMIN_TOKEN_LENGTH = 16;
const DEFAULT_ASYMMETRIC: readonly JwtAlgorithm[] = ['RS256', 'ES256'];
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * Checked by the very parser the gateway builds its trust lists with (request/trust.ts), so `check`
 * refuses exactly what a start would: `/08`, or an IPv4-mapped range shorter than /96, included.
 */
function validCidr(text: string): boolean {
  try {
    createTrustList([text]);
    return true;
  } catch (error) {
    if (RequestConfigError.is(error)) return false;
    throw error;
  }
}

export function compilePolicy(raw: RawPolicy, ctx: CompileContext, locator: Locator): { policy?: GatewayPolicy; issues: PolicyIssue[] } {
  const issues: PolicyIssue[] = [];
  const add = (path: readonly Segment[], message: string): void => {
    issues.push({ line: locator.keyLine(path), path: formatPath(path), message });
  };
  const duration = (path: readonly Segment[], text: string, { min, max }: DurationBounds): number => {
    const ms = parseDuration(text);
    if (ms === undefined) {
      add(path, `not a duration "${text}": write ${DURATION_HINT}`);
      return min;
    }
    if (ms < min) add(path, min === 1 ? 'must be more than 0' : `must be at least ${formatDuration(min)}`);
    if (ms > max) add(path, `must be at most ${formatDuration(max)}`);
    return ms;
  };
  const cidrs = (path: readonly Segment[], list: readonly string[]): string[] => {
    list.forEach((entry, i) => {
      if (!validCidr(entry)) add([...path, i], 'not an IP address or CIDR, e.g. 10.0.0.0/8 or ::1/128');
    });
    return [...list];
  };

  // Listeners.
  if (raw.admin.port !== 0 && raw.admin.port === raw.listen.port && raw.admin.host === raw.listen.host) {
    add(['admin', 'port'], 'the admin listener must not share the public listener’s address');
  }
  const tls = raw.listen.tls !== undefined ? compileTls(raw.listen.tls, ctx, add, duration) : undefined;
  const tokenText = ctx.env[raw.admin.token_env];
  const adminToken = tokenText === undefined || tokenText === '' ? undefined : tokenText;
  if (adminToken !== undefined && adminToken.length < MIN_ADMIN_TOKEN_LENGTH) {
    add(['admin', 'token_env'], `the admin token in $${raw.admin.token_env} is shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters`);
  }

  const trustedProxies = cidrs(['trusted_proxies'], raw.trusted_proxies);
  const untrustedPeerHeaders = new FrozenSet(
    raw.untrusted_peer_headers.map((name, i) => {
      const normal = name.toLowerCase().replace(/[_.]/g, '-');
      // Stripping these would break every request (all peers are untrusted by default); the gateway
      // already decides what happens to them.
      if (GATEWAY_OWNED_HEADERS.has(normal)) add(['untrusted_peer_headers', i], `"${name}" is a header the gateway itself handles; it cannot be listed here`);
      return normal;
    }),
  );
  const authzTrustedProxies = cidrs(['authz', 'trusted_proxies'], raw.authz.trusted_proxies);

  const jwt = compileJwt(raw.auth.jwt, ctx, add, duration);

  // Second factor.
  const mfaRaw = raw.mfa;
  const backoffMs = mfaRaw.lockout.backoff.map((text, i) => duration(['mfa', 'lockout', 'backoff', i], text, DURATION_BOUNDS['mfa.lockout.backoff[]']));
  backoffMs.forEach((ms, i) => {
    if (i > 0 && ms < backoffMs[i - 1]!) add(['mfa', 'lockout', 'backoff', i], 'the backoff ladder must not get shorter');
  });
  const optionalDuration = (path: readonly Segment[], text: string | undefined, bounds: DurationBounds): { maxAgeMs?: number } =>
    text === undefined ? {} : { maxAgeMs: duration(path, text, bounds) };
  const webauthn = mfaRaw.webauthn === undefined ? undefined : compileWebAuthn(mfaRaw.webauthn, mfaRaw.issuer, add, duration);
  const mfa = {
    issuer: mfaRaw.issuer,
    totp: {
      algorithm: mfaRaw.totp.algorithm,
      digits: mfaRaw.totp.digits,
      periodSeconds: mfaRaw.totp.period,
      window: mfaRaw.totp.window,
      ...optionalDuration(['mfa', 'totp', 'max_age'], mfaRaw.totp.max_age, DURATION_BOUNDS['mfa.totp.max_age']),
    },
    hotp: { lookAhead: mfaRaw.hotp.look_ahead, ...optionalDuration(['mfa', 'hotp', 'max_age'], mfaRaw.hotp.max_age, DURATION_BOUNDS['mfa.hotp.max_age']) },
    ...(webauthn !== undefined ? { webauthn } : {}),
    session: { ttlMs: duration(['mfa', 'session', 'ttl'], mfaRaw.session.ttl, DURATION_BOUNDS['mfa.session.ttl']), maxPerSubject: mfaRaw.session.max_per_subject },
    lockout: {
      maxFailures: mfaRaw.lockout.max_failures,
      findTimeMs: duration(['mfa', 'lockout', 'find_time'], mfaRaw.lockout.find_time, DURATION_BOUNDS['mfa.lockout.find_time']),
      backoffMs,
    },
    ipThrottle: {
      enabled: mfaRaw.ip_throttle.enabled,
      maxFailures: mfaRaw.ip_throttle.max_failures,
      findTimeMs: duration(['mfa', 'ip_throttle', 'find_time'], mfaRaw.ip_throttle.find_time, DURATION_BOUNDS['mfa.ip_throttle.find_time']),
      blockMs: duration(['mfa', 'ip_throttle', 'block'], mfaRaw.ip_throttle.block, DURATION_BOUNDS['mfa.ip_throttle.block']),
    },
    recoveryCodes: { count: mfaRaw.recovery_codes.count },
    enrollment: { pendingTtlMs: duration(['mfa', 'enrollment', 'pending_ttl'], mfaRaw.enrollment.pending_ttl, DURATION_BOUNDS['mfa.enrollment.pending_ttl']) },
    pathPrefix: mfaRaw.path_prefix,
    ...compileOob(mfaRaw, ctx, add, duration),
  };

  const events = compileEvents(raw.events, ctx, add, duration);
  if (events.notify.adminEmail !== undefined && mfa.email.smtp === undefined) {
    add(['events', 'notify', 'admin_email'], 'needs mfa.email.smtp to send the e-mails');
  }

  const store = compileStore(raw.store, ctx, add, duration);

  const keys = {
    ...(raw.keys.file !== undefined ? { file: raw.keys.file } : {}),
    ...(raw.keys.env !== undefined ? { env: raw.keys.env } : {}),
    rotationMs: duration(['keys', 'rotation'], raw.keys.rotation, DURATION_BOUNDS['keys.rotation']),
  };

  const limits = {
    maxHeaderBytes: raw.limits.max_header_bytes,
    maxQueued: raw.limits.max_queued,
    drainTimeoutMs: duration(['limits', 'drain_timeout'], raw.limits.drain_timeout, DURATION_BOUNDS['limits.drain_timeout']),
    maxUpstreamConnections: raw.limits.max_upstream_connections,
  };
  if (jwt.maxTokenBytes > limits.maxHeaderBytes) {
    add(['auth', 'jwt', 'max_token_bytes'], `must not exceed limits.max_header_bytes (${limits.maxHeaderBytes})`);
  }

  // Upstreams.
  const upstreams = new Map<string, UpstreamConfig>();
  let totalConnections = 0;
  for (const [name, up] of Object.entries(raw.upstreams)) {
    const base: Segment[] = ['upstreams', name];
    const url = upstreamUrl(up.url, [...base, 'url'], add);
    const keepAliveMaxMs = duration([...base, 'pool', 'keep_alive_max'], up.pool.keep_alive_max, DURATION_BOUNDS['upstreams.*.pool.keep_alive_max']);
    const keepAliveMs = duration([...base, 'pool', 'keep_alive'], up.pool.keep_alive, DURATION_BOUNDS['upstreams.*.pool.keep_alive']);
    if (keepAliveMs > keepAliveMaxMs) add([...base, 'pool', 'keep_alive'], `must not exceed keep_alive_max (${formatDuration(keepAliveMaxMs)})`);
    totalConnections += up.pool.connections;
    upstreams.set(name, {
      name,
      // Without a URL an issue is already recorded and no policy comes out; the placeholder never escapes.
      url: url ?? new URL('http://invalid.invalid/'),
      pool: { connections: up.pool.connections, keepAliveMs, keepAliveMaxMs },
      timeoutMs: duration([...base, 'timeout'], up.timeout, DURATION_BOUNDS['upstreams.*.timeout']),
      connectTimeoutMs: duration([...base, 'connect_timeout'], up.connect_timeout, DURATION_BOUNDS['upstreams.*.connect_timeout']),
      retries: {
        max: up.retries.max,
        initialMs: duration([...base, 'retries', 'initial'], up.retries.initial, DURATION_BOUNDS['upstreams.*.retries.initial']),
        multiplier: up.retries.multiplier,
        jitterMs: duration([...base, 'retries', 'jitter'], up.retries.jitter, DURATION_BOUNDS['upstreams.*.retries.jitter']),
      },
    });
  }
  if (totalConnections > limits.maxUpstreamConnections) {
    add(['upstreams'], `the pools hold ${totalConnections} connections in total, more than limits.max_upstream_connections (${limits.maxUpstreamConnections})`);
  }

  const clock = compileClock(raw.clock, add, duration);
  const setup = compileSetup(raw.setup, raw.auth.jwt.issuer, ctx.env, add);

  const routes = compileRoutes(raw.routes, {
    upstreams: [...upstreams.keys()],
    mfaPathPrefix: mfa.pathPrefix,
    caseInsensitive: raw.case_insensitive,
    report: add,
    lineOf: (path) => locator.line(path),
    duration,
  });

  // A route may only ask for a factor the policy can offer.
  routes.forEach((route, i) => {
    route.mfaMethods?.forEach((method, j) => {
      if (method === 'webauthn' && mfaRaw.webauthn === undefined) add(['routes', i, 'methods', j], 'webauthn needs mfa.webauthn (rp_id and origins) in the policy');
      if (method === 'idp' && !jwt.acceptIdpMfa) add(['routes', i, 'methods', j], 'idp needs auth.jwt.accept_idp_mfa: true');
    });
  });

  if (issues.length > 0 || store === undefined) return { issues };
  const policy: GatewayPolicy = {
    source: ctx.source,
    listen: { host: raw.listen.host, port: raw.listen.port, ...(tls !== undefined ? { tls } : {}) },
    admin: { host: raw.admin.host, port: raw.admin.port, ...(adminToken !== undefined ? { token: adminToken } : {}) },
    trustedProxies,
    untrustedPeerHeaders,
    auth: { jwt },
    mfa,
    events,
    store,
    keys,
    upstreams: new FrozenMap([...upstreams].map(([name, up]) => [name, { ...up, url: readonlyUrl(up.url) }] as const)),
    routes: routes.map(withFrozenMethods),
    default: raw.default,
    limits,
    authz: { trustedProxies: authzTrustedProxies },
    setup,
    ...(clock !== undefined ? { clock } : {}),
  };
  return { policy: deepFreeze(policy), issues };
}

type Duration = (path: readonly Segment[], text: string, bounds: DurationBounds) => number;

const SECOND = 1000;
/** hstspreload.org refuses a shorter max-age for the preload list. */
const HSTS_PRELOAD_MIN_MS = 365 * 24 * 60 * 60 * SECOND;

function compileTls(raw: RawTls, ctx: CompileContext, add: Add, duration: Duration): TlsConfig | undefined {
  const base: Segment[] = ['listen', 'tls'];
  const certFile = resolve(ctx.baseDir, raw.cert);
  const keyFile = resolve(ctx.baseDir, raw.key);
  const read = (key: 'cert' | 'key', file: string, shown: string): string | undefined => {
    try {
      return ctx.readFile(file);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      add([...base, key], `cannot read ${key === 'cert' ? 'certificate' : 'key'} file "${shown}" (${code === 'ENOENT' ? 'no such file' : code})`);
      return undefined;
    }
  };
  const cert = read('cert', certFile, raw.cert);
  const key = read('key', keyFile, raw.key);

  let hsts: TlsConfig['hsts'];
  if (raw.hsts !== undefined) {
    const path = [...base, 'hsts'];
    const maxAgeMs = duration([...path, 'max_age'], raw.hsts.max_age, DURATION_BOUNDS['listen.tls.hsts.max_age']);
    if (maxAgeMs % SECOND !== 0) add([...path, 'max_age'], 'must be whole seconds (max-age counts seconds)');
    if (raw.hsts.preload && !raw.hsts.include_subdomains) add([...path, 'preload'], 'needs include_subdomains: true');
    if (raw.hsts.preload && maxAgeMs < HSTS_PRELOAD_MIN_MS) add([...path, 'preload'], 'needs a max_age of at least 365d');
    hsts = { maxAgeSeconds: Math.floor(maxAgeMs / SECOND), includeSubdomains: raw.hsts.include_subdomains, preload: raw.hsts.preload };
  }

  if (cert === undefined || key === undefined) return undefined;
  const checked = checkTlsCredentials(cert, key, raw.min_version);
  if (!(checked instanceof TlsCredentials)) {
    add([...base, checked.file], `${checked.file === 'cert' ? 'certificate' : 'key'} file "${checked.file === 'cert' ? raw.cert : raw.key}" ${checked.message}`);
    return undefined;
  }
  return { certFile, keyFile, minVersion: raw.min_version, ...(hsts !== undefined ? { hsts } : {}), credentials: checked };
}

function compileJwt(raw: RawJwt, ctx: CompileContext, add: Add, duration: Duration): JwtConfig {
  const base: Segment[] = ['auth', 'jwt'];
  const sources = (['jwks_uri', 'public_keys', 'hmac_secret'] as const).filter((key) => raw[key] !== undefined);
  if (sources.length === 0) add(base, 'needs one key source: jwks_uri, public_keys or hmac_secret');
  if (sources.length > 1) add([...base, sources[1]!], `only one key source is allowed; ${sources[0]} is already set`);

  const hmac = raw.hmac_secret !== undefined;
  const algorithms = raw.algorithms ?? (hmac ? ['HS256'] : DEFAULT_ASYMMETRIC);
  const symmetric = algorithms.filter((alg) => alg.startsWith('HS'));
  if (symmetric.length > 0 && symmetric.length < algorithms.length) {
    add([...base, 'algorithms'], 'HS* algorithms must not be mixed with asymmetric ones (it invites key confusion)');
  } else if (hmac && symmetric.length === 0) {
    add([...base, 'algorithms'], 'hmac_secret verifies HS256/HS384/HS512 only; list one of those');
  } else if (!hmac && symmetric.length > 0) {
    add([...base, 'algorithms'], `${symmetric.join(', ')} needs hmac_secret; with jwks_uri or public_keys use asymmetric algorithms`);
  }

  let jwksUri: string | undefined;
  if (raw.jwks_uri !== undefined) {
    const uri = parsedUrl(raw.jwks_uri, [...base, 'jwks_uri'], add);
    if (uri !== undefined) {
      // Keys fetched in clear text could be swapped in transit; plain http only to this machine.
      if (uri.protocol === 'http:' && !LOOPBACK.has(uri.hostname)) add([...base, 'jwks_uri'], 'must use https (http only for localhost)');
      else if (uri.username !== '' || uri.password !== '') add([...base, 'jwks_uri'], 'must not carry user info');
      else jwksUri = uri.href;
    }
  }

  let staticKeys: string[] | undefined;
  if (raw.public_keys !== undefined) {
    staticKeys = [];
    raw.public_keys.forEach((file, i) => {
      const path = [...base, 'public_keys', i];
      let text: string;
      try {
        text = ctx.readFile(resolve(ctx.baseDir, file));
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
        add(path, `cannot read key file "${file}" (${code === 'ENOENT' ? 'no such file' : code})`);
        return;
      }
      const parsed = parseJwtPublicKeyFile(text);
      if (typeof parsed === 'string') add(path, `key file "${file}" ${parsed}`);
      else staticKeys!.push(...parsed);
    });
  }

  return {
    issuer: raw.issuer,
    audience: typeof raw.audience === 'string' ? [raw.audience] : [...raw.audience],
    algorithms: [...algorithms],
    clockToleranceMs: duration([...base, 'clock_tolerance'], raw.clock_tolerance, DURATION_BOUNDS['auth.jwt.clock_tolerance']),
    ...(jwksUri !== undefined ? { jwksUri } : {}),
    ...(staticKeys !== undefined ? { staticKeys } : {}),
    ...(raw.hmac_secret !== undefined ? { hmacSecret: raw.hmac_secret } : {}),
    jwks: {
      cooldownMs: duration([...base, 'jwks', 'cooldown'], raw.jwks.cooldown, DURATION_BOUNDS['auth.jwt.jwks.cooldown']),
      timeoutMs: duration([...base, 'jwks', 'timeout'], raw.jwks.timeout, DURATION_BOUNDS['auth.jwt.jwks.timeout']),
      cacheMaxAgeMs: duration([...base, 'jwks', 'cache_max_age'], raw.jwks.cache_max_age, DURATION_BOUNDS['auth.jwt.jwks.cache_max_age']),
    },
    cache: { maxEntries: raw.cache.max_entries, maxTtlMs: duration([...base, 'cache', 'max_ttl'], raw.cache.max_ttl, DURATION_BOUNDS['auth.jwt.cache.max_ttl']) },
    maxTokenBytes: raw.max_token_bytes,
    scopeClaim: raw.scope_claim,
    rolesClaim: raw.roles_claim,
    acceptIdpMfa: raw.accept_idp_mfa,
  };
}

/**
 * `mfa.webauthn`. The browser enforces that an RP id is the origin's host or a parent domain of it,
 * and that WebAuthn runs in a secure context: a policy that breaks either could never register a
 * credential, so it is refused here, naming the origin.
 */
function compileWebAuthn(raw: RawWebAuthn, issuer: string, add: Add, duration: Duration): WebAuthnConfig {
  const base: Segment[] = ['mfa', 'webauthn'];
  const rpId = raw.rp_id;
  const validRpId = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/.test(rpId);
  if (!validRpId) {
    add([...base, 'rp_id'], 'must be a lower-case domain name without scheme, port or path, e.g. example.com');
  }
  const origins = raw.origins.map((text, i) => {
    const path = [...base, 'origins', i];
    const url = parsedUrl(text, path, add);
    if (url === undefined) return text;
    if (url.origin !== text.replace(/\/$/, '')) {
      add(path, `must be an origin only (scheme://host[:port]), without path, query, user info or upper case: ${url.origin}`);
    } else if (url.protocol === 'http:' && !['localhost', '127.0.0.1', '[::1]'].includes(url.hostname)) {
      add(path, 'must use https (browsers allow WebAuthn over http only on localhost)');
    } else if (validRpId && url.hostname !== rpId && !url.hostname.endsWith(`.${rpId}`)) {
      add(path, `host ${url.hostname} is neither rp_id (${rpId}) nor under it, so browsers would refuse every ceremony from it`);
    }
    return url.origin;
  });
  return {
    rpId,
    rpName: raw.rp_name ?? issuer,
    origins,
    userVerification: raw.user_verification,
    timeoutMs: duration([...base, 'timeout'], raw.timeout, DURATION_BOUNDS['mfa.webauthn.timeout']),
    maxAgeMs: {
      securityKey: duration([...base, 'max_age', 'security_key'], raw.max_age.security_key, DURATION_BOUNDS['mfa.webauthn.max_age.security_key']),
      platform: duration([...base, 'max_age', 'platform'], raw.max_age.platform, DURATION_BOUNDS['mfa.webauthn.max_age.platform']),
    },
  };
}

/** `clock:` — undefined (off) without ntp_server. The schema checked the shape of host[:port]. */
function compileClock(raw: RawPolicy['clock'], add: Add, duration: Duration): ClockConfig | undefined {
  const intervalMs = duration(['clock', 'interval'], raw.interval, DURATION_BOUNDS['clock.interval']);
  const timeoutMs = duration(['clock', 'timeout'], raw.timeout, DURATION_BOUNDS['clock.timeout']);
  if (raw.ntp_server === undefined) return undefined;
  const m = /^(?:\[([^\]]+)\]|([^:]+))(?::(\d+))?$/.exec(raw.ntp_server);
  const port = m?.[3] === undefined ? 123 : Number(m[3]);
  if (m === null || port < 1 || port > 65535) {
    add(['clock', 'ntp_server'], 'the port must be from 1 to 65535');
    return undefined;
  }
  return { server: { host: m[1] ?? m[2]!, port }, intervalMs, timeoutMs };
}

function upstreamUrl(text: string, path: readonly Segment[], add: Add): URL | undefined {
  const url = parsedUrl(text, path, add);
  if (url === undefined) return undefined;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') add(path, 'must be an http:// or https:// URL');
  else if (url.username !== '' || url.password !== '') add(path, 'must not carry user info');
  else if (text.includes('?') || text.includes('#')) add(path, 'must not carry a query or fragment');
  else if (url.hostname === '') add(path, 'needs a host');
  else {
    // Origin plus an optional base path, never with a trailing slash (the request path brings its own).
    url.pathname = url.pathname.replace(/\/+$/, '') || '/';
    return url;
  }
  return undefined;
}

/** Route compile builds plain method Sets; the policy every request shares gets read-only ones. */
function withFrozenMethods(route: Route): Route {
  const methods = route.match.methods;
  return methods === undefined ? route : { ...route, match: { ...route.match, methods: new FrozenSet(methods) } };
}
