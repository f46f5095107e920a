import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Principal } from '../../src/auth/principal.js';
import type { GatewayPolicy, MfaConfig, OtpAlgorithm, Route } from '../../src/config/types.js';
import { loadKeyring, type Keyring } from '../../src/crypto/keyring.js';
import { createLogger, type Logger } from '../../src/log/logger.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import type { RequestView } from '../../src/request/view.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite.js';
import { createMfaService, type Caller, type MfaService } from '../../src/mfa/service.js';
import type { SecondFactorInput } from '../../src/decision/engine.js';
import { base32Decode } from '../../src/mfa/base32.js';
import { totpCode, totpStep } from '../../src/mfa/totp.js';

/** 2026-01-01T00:00:00Z, on a 30 s step boundary. */
export const T0 = Date.UTC(2026, 0, 1);

export interface FakeClock {
  (): number;
  set(ms: number): void;
  advance(ms: number): void;
}

export function fakeClock(start = T0): FakeClock {
  let now = start;
  const clock = (() => now) as FakeClock;
  clock.set = (ms) => {
    now = ms;
  };
  clock.advance = (ms) => {
    now += ms;
  };
  return clock;
}

/** A pino destination that keeps every line, to assert that no secret was ever logged. */
export interface LogCapture {
  readonly logger: Logger;
  readonly lines: string[];
  text(): string;
  events(): Record<string, unknown>[];
}

export function captureLog(name: string): LogCapture {
  const lines: string[] = [];
  const logger = createLogger({ name, level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  return {
    logger,
    lines,
    text: () => lines.join(''),
    events: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export function mfaConfig(overrides: Partial<MfaConfig> = {}): MfaConfig {
  return {
    issuer: 'Test Gateway',
    totp: { algorithm: 'SHA1', digits: 6, periodSeconds: 30, window: 1 },
    hotp: { lookAhead: 5 },
    session: { ttlMs: 12 * 3_600_000, maxPerSubject: 20 },
    lockout: { maxFailures: 3, findTimeMs: 5 * 60_000, backoffMs: [30_000, 60_000, 120_000, 300_000] },
    ipThrottle: { enabled: true, maxFailures: 20, findTimeMs: 5 * 60_000, blockMs: 15 * 60_000 },
    recoveryCodes: { count: 10 },
    enrollment: { pendingTtlMs: 10 * 60_000 },
    pathPrefix: '/.mfa/',
    ...overrides,
  };
}

export function route(policy: Route['policy'], maxAgeMs?: number): Route {
  return {
    index: 0,
    name: policy,
    line: 1,
    match: { pathPrefix: '/' },
    policy,
    upstream: 'app',
    ...(maxAgeMs !== undefined ? { maxAgeMs } : {}),
    scopes: [],
    roles: [],
    forwardAuthorization: true,
    websocket: false,
  };
}

export function makePolicy(options: { mfa?: Partial<MfaConfig>; acceptIdpMfa?: boolean; dbPath?: string } = {}): GatewayPolicy {
  return {
    source: 'test',
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    untrustedPeerHeaders: new Set<string>(),
    trustedProxies: [],
    auth: {
      jwt: {
        issuer: 'http://localhost/test-issuer',
        audience: ['test-api'],
        algorithms: ['HS256'],
        clockToleranceMs: 30_000,
        hmacSecret: 'test-only-hmac-secret-of-at-least-32-characters',
        jwks: { cooldownMs: 30_000, timeoutMs: 5000, cacheMaxAgeMs: 600_000 },
        cache: { maxEntries: 100, maxTtlMs: 60_000 },
        maxTokenBytes: 8192,
        scopeClaim: 'scope',
        rolesClaim: 'roles',
        acceptIdpMfa: options.acceptIdpMfa ?? false,
      },
    },
    mfa: mfaConfig(options.mfa),
    store: { kind: 'sqlite', path: options.dbPath ?? ':memory:' },
    keys: { rotationMs: 90 * 86_400_000 },
    upstreams: new Map(),
    routes: [route('mfa'), route('step_up', 5 * 60_000)],
    default: 'deny',
    limits: { maxHeaderBytes: 16384, maxQueued: 100, drainTimeoutMs: 1000, maxUpstreamConnections: 100 },
    authz: { trustedProxies: [] },
  };
}

export function principal(subject: string, extra: Partial<Principal> = {}): Principal {
  return {
    subject,
    scopes: new Set(),
    roles: new Set(),
    expiresAt: Math.floor(T0 / 1000) + 86_400 * 365,
    amr: [],
    tokenHash: 'f'.repeat(64),
    ...extra,
  };
}

let requestCounter = 0;

export function view(headers: { mfaToken?: string; sessionToken?: string; method?: string; path?: string } = {}): RequestView {
  requestCounter++;
  return {
    method: headers.method ?? 'GET',
    path: headers.path ?? '/orders/1',
    search: '',
    host: 'localhost',
    peerTrusted: false,
    proto: 'http',
    clientIp: '127.0.0.1',
    forwardedFor: '127.0.0.1',
    forwardedHost: 'localhost',
    authorization: 'Bearer test',
    ...(headers.mfaToken !== undefined ? { mfaToken: headers.mfaToken } : {}),
    ...(headers.sessionToken !== undefined ? { sessionToken: headers.sessionToken } : {}),
    requestId: `req-${requestCounter}`,
  };
}

/** `oathtool` (an independent implementation) as the authenticator app. */
function oathDate(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d{3}Z$/, ' UTC');
}

export function oathTotp(secretBase32: string, atMs: number, options: { algorithm?: OtpAlgorithm; digits?: number; period?: number } = {}): string {
  const algorithm = (options.algorithm ?? 'SHA1').toLowerCase();
  const args = [`--totp=${algorithm}`, '-b', '-d', String(options.digits ?? 6), '-s', `${options.period ?? 30}s`, '--now', oathDate(atMs), secretBase32];
  return execFileSync('/usr/bin/oathtool', args, { encoding: 'utf8' }).trim();
}

export function oathHotp(secretBase32: string, counter: number, digits = 6): string {
  return execFileSync('/usr/bin/oathtool', ['-b', '-d', String(digits), '-c', String(counter), secretBase32], { encoding: 'utf8' }).trim();
}

export function oathHotpHex(hexSecret: string, counter: number, digits = 6): string {
  return execFileSync('/usr/bin/oathtool', ['-d', String(digits), '-c', String(counter), hexSecret], { encoding: 'utf8' }).trim();
}

/** A temp dir with a key file, the real keyring and the real SQLite store, all on one fake clock. */
export interface Rig {
  readonly dir: string;
  readonly dbPath: string;
  readonly keyFile: string;
  readonly clock: FakeClock;
  readonly keyring: Keyring;
  readonly store: SqliteStore;
  readonly metrics: Metrics;
  readonly log: LogCapture;
  readonly auditLog: LogCapture;
  policy: GatewayPolicy;
  readonly service: MfaService;
  /** A caller with the rig's current policy and clock, as a request pins them. */
  caller(subject: string, headers?: ViewHeaders, extra?: Partial<Principal>): Caller;
  /** The second-factor check a request on `route` runs. */
  check(subject: string, headers: ViewHeaders, route: Route, extra?: Partial<Principal>): ReturnType<MfaService['checkSecondFactor']>;
  close(): Promise<void>;
}

type ViewHeaders = Parameters<typeof view>[0];

export function writeKeyFile(path: string, kid = 'k1'): void {
  writeFileSync(path, `${kid} ${randomBytes(32).toString('base64')} 2026-01-01 primary\n`, { mode: 0o600 });
}

export function createRig(options: { mfa?: Partial<MfaConfig>; acceptIdpMfa?: boolean } = {}): Rig {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-test-'));
  const dbPath = join(dir, 'mfa.db');
  const keyFile = join(dir, 'keys');
  writeKeyFile(keyFile);
  const clock = fakeClock();
  const keyring = loadKeyring({ file: keyFile, rotationMs: 90 * 86_400_000, clock });
  const store = openSqliteStore({ path: dbPath, clock });
  const metrics = createMetrics();
  const log = captureLog('mfa-gateway');
  const auditLog = captureLog('audit');
  const rig: Rig = {
    dir,
    dbPath,
    keyFile,
    clock,
    keyring,
    store,
    metrics,
    log,
    auditLog,
    policy: makePolicy({ ...options, dbPath }),
    service: undefined as unknown as MfaService,
    caller(subject, headers = {}, extra = {}) {
      return { principal: principal(subject, extra), view: view(headers), policy: rig.policy, now: clock() };
    },
    check(subject, headers, route, extra = {}) {
      const input: SecondFactorInput = { ...rig.caller(subject, headers, extra), route };
      return rig.service.checkSecondFactor(input);
    },
    async close() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const service = createMfaService({
    durable: store.durable,
    ttl: store.ttl,
    keyring,
    metrics,
    logger: log.logger,
    audit: auditLog.logger,
  });
  Object.assign(rig, { service });
  return rig;
}

/** Enrolls and confirms a TOTP factor for `subject` through the service, with oathtool as the app. */
export async function enrollTotp(rig: Rig, subject: string): Promise<{ factorId: string; secret: string; recoveryCodes: string[] }> {
  const enrolled = await rig.service.enroll(rig.caller(subject, { method: 'POST' }), { type: 'totp' });
  if (!enrolled.ok) throw new Error(`enroll failed: ${enrolled.problem.code}`);
  const secret = enrolled.enrollment.secretBase32;
  const code = oathTotp(secret, rig.clock());
  const confirmed = await rig.service.confirm(rig.caller(subject, { method: 'POST' }), enrolled.enrollment.factorId, code);
  if (!confirmed.ok) throw new Error(`confirm failed: ${confirmed.problem.code}`);
  return { factorId: enrolled.enrollment.factorId, secret, recoveryCodes: confirmed.recoveryCodes ?? [] };
}

/** A 6-digit code that matches no step within ±20 of `atMs` (so it is "wrong", never "drift" by chance). */
export function wrongTotp(secretBase32: string, atMs: number): string {
  const secret = base32Decode(secretBase32);
  const step = totpStep(atMs, 30);
  const near = new Set<string>();
  for (let offset = -20; offset <= 20; offset++) near.add(totpCode(secret, step + offset, { algorithm: 'SHA1', digits: 6, periodSeconds: 30 }));
  for (let n = 0; ; n++) {
    const candidate = String(n).padStart(6, '0');
    if (!near.has(candidate)) return candidate;
  }
}
