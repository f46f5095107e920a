import { join } from 'node:path';
import type { Principal } from '../../src/auth/principal.js';
import type { EventsConfig, GatewayPolicy, MfaConfig, Route } from '../../src/config/types.js';
import { loadKeyring, type Keyring } from '../../src/crypto/keyring.js';
import type { SecondFactorInput } from '../../src/decision/engine.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { createMfaService, type Caller, type MfaService } from '../../src/mfa/service.js';
import type { RequestView } from '../../src/request/view.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite.js';
import { fakeClock, T0, type FakeClock } from '../support/clock.js';
import { createWorkspace } from '../support/fixture.js';
import { captureLog, type LogCapture } from '../support/log.js';
import { TEST_AUDIENCE, TEST_HMAC_SECRET, TEST_ISSUER } from '../support/tokens.js';

/** The MFA service on its real stores, for the tests in test/mfa and test/doors/mfa-api. */

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
    codes: { ttlMs: 10 * 60_000, maxAttempts: 5, message: '{code} is your {issuer} verification code. It expires in {minutes} minutes.', sendLimits: { perUser: { sends: 5, perMs: 15 * 60_000 }, perDestination: { sends: 3, perMs: 15 * 60_000 } } },
    email: { factor: false, subject: 'Your {issuer} verification code' },
    sms: { factor: true },
    backupContact: { enabled: false },
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

/** The schema's `events:` defaults, as compiled, with every rule off unless a test turns it on. */
export function eventsConfig(overrides: Partial<EventsConfig> = {}): EventsConfig {
  const off = { enabled: false };
  return {
    audit: { enabled: true, retentionMs: 90 * 86_400_000, flushIntervalMs: 200 },
    signals: { deviceHeader: 'x-device-id' },
    rules: {
      countryChange: false,
      newDevice: false,
      recoveryCodeUsed: false,
      lockout: false,
      twoCountries: { ...off, windowMs: 3_600_000 },
      ipFailures: { ...off, users: 5, windowMs: 300_000 },
      backupSwitching: { ...off, switches: 3, windowMs: 86_400_000 },
    },
    notify: {},
    delivery: { timeoutMs: 5000, retryWindowMs: 72 * 3_600_000, pollIntervalMs: 1000 },
    webhooks: [],
    ...overrides,
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
        issuer: TEST_ISSUER,
        audience: [TEST_AUDIENCE],
        algorithms: ['HS256'],
        clockToleranceMs: 30_000,
        hmacSecret: TEST_HMAC_SECRET,
        jwks: { cooldownMs: 30_000, timeoutMs: 5000, cacheMaxAgeMs: 600_000 },
        cache: { maxEntries: 100, maxTtlMs: 60_000 },
        maxTokenBytes: 8192,
        scopeClaim: 'scope',
        rolesClaim: 'roles',
        acceptIdpMfa: options.acceptIdpMfa ?? false,
      },
    },
    mfa: mfaConfig(options.mfa),
    events: eventsConfig(),
    store: { kind: 'sqlite', path: options.dbPath ?? ':memory:' },
    keys: { rotationMs: 90 * 86_400_000 },
    upstreams: new Map(),
    routes: [route('mfa'), route('step_up', 5 * 60_000)],
    default: 'deny',
    limits: { maxHeaderBytes: 16384, maxQueued: 100, drainTimeoutMs: 1000, maxUpstreamConnections: 100 },
    authz: { trustedProxies: [] },
    setup: {},
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

/** A temp dir with a key file, the real keyring and the real SQLite store, all on one fake clock at T0. */
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

export function createRig(options: { mfa?: Partial<MfaConfig>; acceptIdpMfa?: boolean } = {}): Rig {
  const ws = createWorkspace({ keyCreated: '2026-01-01' });
  const dbPath = join(ws.dir, 'mfa.db');
  const clock = fakeClock();
  const keyring = loadKeyring({ file: ws.keyFile, rotationMs: 90 * 86_400_000, clock });
  const store = openSqliteStore({ path: dbPath, clock });
  const metrics = createMetrics();
  const log = captureLog('mfa-gateway');
  const auditLog = captureLog('audit');
  const service = createMfaService({
    durable: store.durable,
    ttl: store.ttl,
    keyring,
    metrics,
    logger: log.logger,
    audit: auditLog.logger,
  });
  const rig: Rig = {
    dir: ws.dir,
    dbPath,
    keyFile: ws.keyFile,
    clock,
    keyring,
    store,
    metrics,
    log,
    auditLog,
    policy: makePolicy({ ...options, dbPath }),
    service,
    caller(subject, headers = {}, extra = {}) {
      return { principal: principal(subject, extra), view: view(headers), policy: rig.policy, now: clock() };
    },
    check(subject, headers, route, extra = {}) {
      const input: SecondFactorInput = { ...rig.caller(subject, headers, extra), route };
      return rig.service.checkSecondFactor(input);
    },
    async close() {
      await store.close();
      ws.remove();
    },
  };
  return rig;
}
