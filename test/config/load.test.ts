import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPolicyFile, parsePolicy, PolicyError } from '../../src/config/load.js';
import type { GatewayPolicy, Route } from '../../src/config/types.js';
import { HEAD, ROUTE, SECRET, issuesOf, parse, tempDir } from './support.js';

/** The compiled `events:` block when the file has none: the source document's rules, all on. */
const EVENTS_DEFAULTS = {
  audit: { enabled: true, retentionMs: 90 * 86_400_000, flushIntervalMs: 200 },
  signals: { deviceHeader: 'x-device-id' },
  rules: {
    countryChange: true,
    newDevice: true,
    recoveryCodeUsed: true,
    lockout: true,
    twoCountries: { enabled: true, windowMs: 3_600_000 },
    ipFailures: { enabled: true, users: 5, windowMs: 300_000 },
    backupSwitching: { enabled: true, switches: 3, windowMs: 86_400_000 },
  },
  notify: {},
  delivery: { timeoutMs: 5000, retryWindowMs: 72 * 3_600_000, pollIntervalMs: 1000 },
  webhooks: [],
};

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** The policy as plain JSON: Maps, Sets, URLs and RegExps spelled out, for exact comparisons. */
function plain(policy: GatewayPolicy): unknown {
  return JSON.parse(
    JSON.stringify(policy, (_key, value: unknown) => {
      if (value instanceof Map) return { map: Object.fromEntries(value) };
      if (value instanceof Set) return { set: [...value] };
      if (value instanceof RegExp) return { regex: value.source };
      return value;
    }),
  );
}

/** The e-mail/SMS settings of a file that says nothing about them. */
const OOB_DEFAULTS = {
  codes: {
    ttlMs: 600_000,
    maxAttempts: 5,
    message: '{code} is your {issuer} verification code. It expires in {minutes} minutes.',
    sendLimits: { perUser: { sends: 5, perMs: 900_000 }, perDestination: { sends: 3, perMs: 900_000 } },
  },
  email: { factor: false, subject: 'Your {issuer} verification code' },
  sms: { factor: true },
  backupContact: { enabled: false },
};

describe('parsePolicy: a valid file', () => {
  test('applies every default and converts to camelCase and milliseconds', () => {
    const policy = parse(HEAD + ROUTE);
    assert.deepEqual(plain(policy), {
      source: 't.yaml',
      listen: { host: '0.0.0.0', port: 8080 },
      admin: { host: '127.0.0.1', port: 9090 },
      trustedProxies: [],
      untrustedPeerHeaders: { set: ['x-real-ip', 'x-client-ip', 'true-client-ip', 'cf-connecting-ip', 'fastly-client-ip', 'x-cluster-client-ip', 'client-ip', 'x-original-forwarded-for', 'x-proxyuser-ip', 'x-envoy-external-address', 'remote-user', 'x-remote-user', 'x-user', 'x-authenticated-user', 'x-original-uri', 'x-original-host', 'x-original-method', 'x-envoy-original-path'] },
      auth: {
        jwt: {
          issuer: 'https://idp.test/',
          audience: ['api'],
          algorithms: ['HS256'],
          clockToleranceMs: 30_000,
          hmacSecret: SECRET,
          jwks: { cooldownMs: 30_000, timeoutMs: 5_000, cacheMaxAgeMs: 600_000 },
          cache: { maxEntries: 10_000, maxTtlMs: 300_000 },
          maxTokenBytes: 8192,
          scopeClaim: 'scope',
          rolesClaim: 'roles',
          acceptIdpMfa: false,
        },
      },
      mfa: {
        issuer: 'mfa-gateway',
        totp: { algorithm: 'SHA1', digits: 6, periodSeconds: 30, window: 1 },
        hotp: { lookAhead: 10 },
        session: { ttlMs: 12 * 3_600_000, maxPerSubject: 20 },
        lockout: { maxFailures: 3, findTimeMs: 300_000, backoffMs: [30_000, 60_000, 120_000, 300_000] },
        ipThrottle: { enabled: true, maxFailures: 20, findTimeMs: 300_000, blockMs: 900_000 },
        recoveryCodes: { count: 10 },
        enrollment: { pendingTtlMs: 600_000 },
        pathPrefix: '/.mfa/',
        ...OOB_DEFAULTS,
      },
      events: EVENTS_DEFAULTS,
      store: { kind: 'sqlite', path: './data/mfa.db' },
      keys: { file: './data/keys', env: 'MFA_GATEWAY_KEYS', rotationMs: 90 * 86_400_000 },
      upstreams: {
        map: {
          app: {
            name: 'app',
            url: 'http://127.0.0.1:9000/',
            pool: { connections: 100, keepAliveMs: 60_000, keepAliveMaxMs: 300_000 },
            timeoutMs: 10_000,
            connectTimeoutMs: 5_000,
            retries: { max: 3, initialMs: 1_000, multiplier: 2, jitterMs: 500 },
          },
        },
      },
      routes: [
        {
          index: 0,
          name: 'r0',
          line: 9,
          match: { path: '/x' },
          policy: 'public',
          upstream: 'app',
          scopes: [],
          roles: [],
          forwardAuthorization: true,
          websocket: false,
        },
      ],
      default: 'deny',
      limits: { maxHeaderBytes: 16384, maxQueued: 1000, drainTimeoutMs: 30_000, maxUpstreamConnections: 1000 },
      authz: { trustedProxies: ['127.0.0.1/32', '::1/128'] },
      setup: {},
    });
  });

  test('round-trips every setting written out in full', () => {
    const text = `listen: { host: 127.0.0.1, port: 8443 }
admin: { host: ::1, port: 9443, token_env: GW_ADMIN }
trusted_proxies: [10.0.0.0/8, 192.168.1.1, fd00::/8]
untrusted_peer_headers: [X_Real_IP, Remote.User, CF-Connecting-IP]
auth:
  jwt:
    issuer: https://idp.test/
    audience: [api, other]
    algorithms: [HS384, HS512]
    clock_tolerance: 10s
    hmac_secret: ${SECRET}
    jwks: { cooldown: 1m, timeout: 2s, cache_max_age: 1h }
    cache: { max_entries: 50, max_ttl: 30s }
    max_token_bytes: 4096
    scope_claim: scp
    roles_claim: groups
    accept_idp_mfa: true
mfa:
  issuer: Example Orders
  totp: { algorithm: SHA512, digits: 8, period: 60, window: 2 }
  hotp: { look_ahead: 5 }
  session: { ttl: 24h, max_per_subject: 5 }
  lockout: { max_failures: 5, find_time: 10m, backoff: [1s, 1s, 1h] }
  ip_throttle: { enabled: false, max_failures: 50, find_time: 1h, block: 2h }
  recovery_codes: { count: 16 }
  enrollment: { pending_ttl: 5m }
  path_prefix: /_mfa/v1/
store: { kind: shared, migrate: manual, postgres: { url: "postgres://db/mfa", pool: { max: 4, idle_timeout: 10s }, connect_timeout: 2s, statement_timeout: 500ms }, redis: { url: "rediss://cache:6380", key_prefix: "gw1:", connect_timeout: 3s, command_timeout: 250ms } }
keys: { env: KEYS, rotation: 30d }
upstreams:
  orders:
    url: https://orders.internal:8443/api/v1/
    pool: { connections: 10, keep_alive: 30s, keep_alive_max: 120s }
    timeout: 30s
    connect_timeout: 250ms
    retries: { max: 10, initial: 100ms, multiplier: 1.5, jitter: 0ms }
routes:
  - name: ws.Chat_1
    match: { host: API.Example.COM.:443, path_regex: '/chat/[a-z]+', methods: [get, Post] }
    upstream: orders
    policy: step_up
    max_age: 90s
    scopes: [chat, chat]
    roles: [admin]
    forward_authorization: false
    websocket: true
    rate_limit: { requests: 5, per: 2m, key: subject }
  - { match: { path_prefix: /x }, policy: deny }
default: deny
limits: { max_header_bytes: 8192, max_queued: 0, drain_timeout: 0s, max_upstream_connections: 10 }
authz: { trusted_proxies: [] }
`;
    const policy = parse(text, { GW_ADMIN: 'an-admin-token-of-some-length' });
    assert.deepEqual(plain(policy), {
      source: 't.yaml',
      listen: { host: '127.0.0.1', port: 8443 },
      admin: { host: '::1', port: 9443, token: 'an-admin-token-of-some-length' },
      trustedProxies: ['10.0.0.0/8', '192.168.1.1', 'fd00::/8'],
      untrustedPeerHeaders: { set: ['x-real-ip', 'remote-user', 'cf-connecting-ip'] },
      auth: {
        jwt: {
          issuer: 'https://idp.test/',
          audience: ['api', 'other'],
          algorithms: ['HS384', 'HS512'],
          clockToleranceMs: 10_000,
          hmacSecret: SECRET,
          jwks: { cooldownMs: 60_000, timeoutMs: 2_000, cacheMaxAgeMs: 3_600_000 },
          cache: { maxEntries: 50, maxTtlMs: 30_000 },
          maxTokenBytes: 4096,
          scopeClaim: 'scp',
          rolesClaim: 'groups',
          acceptIdpMfa: true,
        },
      },
      mfa: {
        issuer: 'Example Orders',
        totp: { algorithm: 'SHA512', digits: 8, periodSeconds: 60, window: 2 },
        hotp: { lookAhead: 5 },
        session: { ttlMs: 86_400_000, maxPerSubject: 5 },
        lockout: { maxFailures: 5, findTimeMs: 600_000, backoffMs: [1_000, 1_000, 3_600_000] },
        ipThrottle: { enabled: false, maxFailures: 50, findTimeMs: 3_600_000, blockMs: 7_200_000 },
        recoveryCodes: { count: 16 },
        enrollment: { pendingTtlMs: 300_000 },
        pathPrefix: '/_mfa/v1/',
        ...OOB_DEFAULTS,
      },
      events: EVENTS_DEFAULTS,
      store: {
        kind: 'shared',
        migrate: 'manual',
        postgres: { url: 'postgres://db/mfa', poolMax: 4, idleTimeoutMs: 10_000, connectTimeoutMs: 2_000, statementTimeoutMs: 500 },
        redis: { url: 'rediss://cache:6380', topology: { mode: 'single' }, keyPrefix: 'gw1:', connectTimeoutMs: 3_000, commandTimeoutMs: 250 },
      },
      keys: { env: 'KEYS', rotationMs: 30 * 86_400_000 },
      upstreams: {
        map: {
          orders: {
            name: 'orders',
            url: 'https://orders.internal:8443/api/v1',
            pool: { connections: 10, keepAliveMs: 30_000, keepAliveMaxMs: 120_000 },
            timeoutMs: 30_000,
            connectTimeoutMs: 250,
            retries: { max: 10, initialMs: 100, multiplier: 1.5, jitterMs: 0 },
          },
        },
      },
      routes: [
        {
          index: 0,
          name: 'ws.Chat_1',
          line: 38,
          match: { host: 'api.example.com', pathRegex: { source: '/chat/[a-z]+' }, methods: { set: ['GET', 'POST'] } },
          policy: 'step_up',
          upstream: 'orders',
          maxAgeMs: 90_000,
          scopes: ['chat'],
          roles: ['admin'],
          forwardAuthorization: false,
          websocket: true,
          rateLimit: { requests: 5, perMs: 120_000, key: 'subject' },
        },
        {
          index: 1,
          name: 'route_2',
          line: 48,
          match: { pathPrefix: '/x' },
          policy: 'deny',
          scopes: [],
          roles: [],
          forwardAuthorization: true,
          websocket: false,
        },
      ],
      default: 'deny',
      limits: { maxHeaderBytes: 8192, maxQueued: 0, drainTimeoutMs: 0, maxUpstreamConnections: 10 },
      authz: { trustedProxies: [] },
      setup: {},
    });
  });

  test('the result is deep-frozen: objects, arrays, the upstream map, method sets, URLs', () => {
    const policy = parse(HEAD + "  - { match: { path_regex: '/a', methods: [GET] }, upstream: app, policy: bearer, scopes: [s] }\n");
    const route = policy.routes[0]!;
    const upstream = policy.upstreams.get('app')!;
    for (const value of [policy, policy.auth.jwt, policy.auth.jwt.audience, policy.routes, route, route.match, route.scopes, upstream, upstream.pool, policy.mfa.lockout.backoffMs, route.match.pathRegex]) {
      assert.ok(Object.isFrozen(value));
    }
    const mutable = policy as unknown as Record<string, unknown>;
    assert.throws(() => {
      mutable.default = 'allow';
    }, TypeError);
    assert.throws(() => (policy.routes as Route[]).push(route), TypeError);
    assert.throws(() => (policy.upstreams as Map<string, unknown>).set('evil', upstream), TypeError);
    assert.throws(() => (policy.upstreams as Map<string, unknown>).delete('app'), TypeError);
    assert.throws(() => (policy.upstreams as Map<string, unknown>).clear(), TypeError);
    assert.throws(() => (route.match.methods as Set<string>).add('DELETE'), TypeError);
    assert.throws(() => {
      upstream.url.host = 'evil.example';
    }, TypeError);
    assert.throws(() => {
      upstream.url.href = 'http://evil.example/';
    }, TypeError);
    upstream.url.searchParams.append('x', '1');
    assert.equal(upstream.url.href, 'http://127.0.0.1:9000/');
    assert.equal(policy.upstreams.size, 1);
    assert.deepEqual([...route.match.methods!], ['GET']);
    // A frozen regex still matches (its scratch state is private, out of freeze's reach).
    assert.equal(route.match.pathRegex!.test('/a'), true);
    assert.equal(route.match.pathRegex!.test('/a/b'), false);
  });

  test('admin token: read from the named variable; unset or empty means none', () => {
    assert.equal(parse(HEAD + ROUTE).admin.token, undefined);
    assert.equal(parse(HEAD + ROUTE, { MFA_GATEWAY_ADMIN_TOKEN: '' }).admin.token, undefined);
    assert.equal(parse(HEAD + ROUTE, { MFA_GATEWAY_ADMIN_TOKEN: 'sixteen-chars-ok' }).admin.token, 'sixteen-chars-ok');
  });

  test('algorithms default to HS256 with hmac_secret and to RS256, ES256 with a JWKS', () => {
    const jwks = HEAD.replace(`hmac_secret: ${SECRET}`, 'jwks_uri: https://idp.test/jwks.json');
    assert.deepEqual(parse(HEAD + ROUTE).auth.jwt.algorithms, ['HS256']);
    const policy = parse(jwks + ROUTE);
    assert.deepEqual(policy.auth.jwt.algorithms, ['RS256', 'ES256']);
    assert.equal(policy.auth.jwt.jwksUri, 'https://idp.test/jwks.json');
    assert.equal(policy.auth.jwt.hmacSecret, undefined);
  });

  test('an upstream base path loses its trailing slash; http on loopback is allowed for a JWKS', () => {
    const text = HEAD.replace('http://127.0.0.1:9000', 'http://backend:81/base//').replace(`hmac_secret: ${SECRET}`, 'jwks_uri: http://localhost:8080/jwks');
    const policy = parse(text + ROUTE);
    assert.equal(policy.upstreams.get('app')!.url.href, 'http://backend:81/base');
    assert.equal(policy.auth.jwt.jwksUri, 'http://localhost:8080/jwks');
  });
});

describe('parsePolicy: the shipped files', () => {
  test('config/gateway.yaml is the documented demo policy', () => {
    const policy = loadPolicyFile(join(REPO, 'config/gateway.yaml'), { env: {} });
    assert.deepEqual(
      { listen: policy.listen, admin: policy.admin, store: policy.store, keys: policy.keys },
      {
        listen: { host: '0.0.0.0', port: 8080 },
        admin: { host: '127.0.0.1', port: 9090 },
        store: { kind: 'sqlite', path: './data/mfa.db' },
        keys: { file: './data/keys', rotationMs: 90 * 86_400_000 },
      },
    );
    const jwt = policy.auth.jwt;
    assert.deepEqual([jwt.issuer, jwt.audience, jwt.algorithms], ['http://localhost:8080/demo-issuer', ['demo-api'], ['HS256']]);
    assert.ok(jwt.hmacSecret !== undefined && jwt.hmacSecret.length >= 32 && /DEMO/.test(jwt.hmacSecret));
    assert.deepEqual([...policy.upstreams.keys()], ['demo']);
    assert.equal(policy.upstreams.get('demo')!.url.href, 'http://127.0.0.1:9000/');
    assert.deepEqual(
      policy.routes.map((r) => [r.match.path ?? r.match.pathPrefix, r.match.methods ? [...r.match.methods] : '*', r.policy, r.maxAgeMs ?? '', r.scopes]),
      [
        ['/healthz', '*', 'public', '', []],
        ['/public/', '*', 'public', '', []],
        ['/orders/', ['GET'], 'bearer', '', ['orders:read']],
        ['/orders/', '*', 'mfa', '', []],
        ['/payments/', ['POST'], 'step_up', 300_000, []],
        ['/vault/', '*', 'step_up', 300_000, []],
        ['/admin/', '*', 'deny', '', []],
      ],
    );
    assert.deepEqual(policy.routes[5]!.mfaMethods, ['webauthn']);
    assert.deepEqual(policy.mfa.webauthn?.origins, ['http://localhost:8080']);
    assert.equal(policy.default, 'deny');
  });

  test('config/examples/minimal.yaml loads (JWKS based)', () => {
    const policy = loadPolicyFile(join(REPO, 'config/examples/minimal.yaml'), { env: {} });
    assert.equal(policy.auth.jwt.jwksUri, 'https://idp.example.com/.well-known/jwks.json');
    assert.deepEqual(policy.auth.jwt.algorithms, ['RS256', 'ES256']);
    assert.equal(policy.routes.length, 4);
  });

  test('config/examples/replicas.yaml loads, its URLs from the environment, and names them when they are missing', () => {
    const env = { MFA_GATEWAY_POSTGRES_URL: 'postgres://gw:pw@db.internal:5432/mfa', MFA_GATEWAY_REDIS_URL: 'rediss://:pw@cache.internal:6380/0' };
    const policy = loadPolicyFile(join(REPO, 'config/examples/replicas.yaml'), { env });
    assert.deepEqual(policy.store, {
      kind: 'shared',
      migrate: 'on_start',
      postgres: { url: env.MFA_GATEWAY_POSTGRES_URL, poolMax: 10, idleTimeoutMs: 30_000, connectTimeoutMs: 5_000, statementTimeoutMs: 2_000 },
      redis: { url: env.MFA_GATEWAY_REDIS_URL, topology: { mode: 'single' }, keyPrefix: 'orders-mfa:', connectTimeoutMs: 5_000, commandTimeoutMs: 500 },
    });
    assert.throws(() => loadPolicyFile(join(REPO, 'config/examples/replicas.yaml'), { env: {} }), (error: unknown) => {
      const message = (error as Error).message;
      assert.match(message, /replicas\.yaml:18: store\.postgres\.url_env: environment variable MFA_GATEWAY_POSTGRES_URL is not set/);
      assert.match(message, /replicas\.yaml:22: store\.redis\.url_env: environment variable MFA_GATEWAY_REDIS_URL is not set/);
      return true;
    });
  });
});

describe('parsePolicy: every error names the file and line', () => {
  const cases: { name: string; text: string; issues: string[] }[] = [
    {
      name: 'YAML syntax error',
      text: HEAD + '  - { name: r0, match: { path: /x }\n',
      issues: ['t.yaml:9: YAML: Flow map in block collection must be sufficiently indented and end with a }'],
    },
    {
      name: 'duplicate keys, block and flow',
      text: HEAD + ROUTE + 'default: deny\nlisten: { port: 1, port: 2 }\ndefault: deny\n',
      issues: ['t.yaml:11: duplicate key "port"', 't.yaml:12: duplicate key "default"'],
    },
    {
      name: 'unknown keys at several depths, with a suggestion',
      text: HEAD.replace('    audience: api\n', '    audience: api\n    audiences: [x]\n') + '  - { name: r0, match: { path: /x, methods: [GET], hots: a }, upstream: app, policy: public }\nlimit: {}\n',
      issues: [
        't.yaml:5: auth.jwt.audiences: unknown key (did you mean "audience"?)',
        't.yaml:10: route 1 (routes[0]).match.hots: unknown key (did you mean "host"?)',
        't.yaml:11: limit: unknown key (did you mean "limits"?)',
      ],
    },
    {
      name: 'a required key is missing',
      text: 'auth:\n  jwt:\n    issuer: x\n',
      issues: ['t.yaml:1: routes: required key is missing', 't.yaml:2: auth.jwt.audience: required key is missing'],
    },
    {
      name: 'bad durations',
      text: HEAD + ROUTE + 'mfa:\n  session: { ttl: 12 hours }\n  lockout: { backoff: [30s, 5x] }\n',
      issues: [
        't.yaml:11: mfa.session.ttl: not a duration "12 hours": write a whole number and a unit (ms, s, m, h or d), e.g. 30s',
        't.yaml:12: mfa.lockout.backoff[1]: not a duration "5x": write a whole number and a unit (ms, s, m, h or d), e.g. 30s',
      ],
    },
    {
      name: 'untrusted_peer_headers naming a header the gateway handles itself',
      text: HEAD + ROUTE + 'untrusted_peer_headers: [X-Real-IP, authorization, X_MFA_Token]\n',
      issues: [
        't.yaml:10: untrusted_peer_headers[1]: "authorization" is a header the gateway itself handles; it cannot be listed here',
        't.yaml:10: untrusted_peer_headers[2]: "X_MFA_Token" is a header the gateway itself handles; it cannot be listed here',
      ],
    },
    {
      name: 'a duration with too many digits',
      text: HEAD + ROUTE + 'limits: { drain_timeout: 9999999999s }\n',
      issues: ['t.yaml:10: limits.drain_timeout: not a duration "9999999999s": write a whole number and a unit (ms, s, m, h or d), e.g. 30s'],
    },
    {
      name: 'durations out of range',
      text: HEAD.replace('{ url: http://127.0.0.1:9000 }', '{ url: http://127.0.0.1:9000, timeout: 31s, pool: { keep_alive: 200s, keep_alive_max: 100s } }') + ROUTE + 'mfa: { session: { ttl: 25h } }\n',
      issues: [
        't.yaml:7: upstreams.app.pool.keep_alive: must not exceed keep_alive_max (100s)',
        't.yaml:7: upstreams.app.timeout: must be at most 30s',
        't.yaml:10: mfa.session.ttl: must be at most 1d',
      ],
    },
    {
      name: 'wrong types and values',
      text: HEAD + ROUTE + 'listen: { port: "80" }\nmfa: { totp: { digits: 7, window: 11 }, recovery_codes: { count: 7 }, path_prefix: /mfa }\nstore: { kind: mysql }\n',
      issues: [
        't.yaml:10: listen.port: must be an integer',
        't.yaml:11: mfa.totp.digits: must be one of: 6, 8',
        't.yaml:11: mfa.totp.window: must be at most 10',
        't.yaml:11: mfa.recovery_codes.count: must be at least 8',
        "t.yaml:11: mfa.path_prefix: must start and end with '/' and hold plain path segments, e.g. /.mfa/",
        't.yaml:12: store.kind: must be one of: sqlite, shared',
      ],
    },
    {
      name: "paths that do not start with '/'",
      text: HEAD + '  - { match: { path: x }, upstream: app, policy: public }\n  - { match: { path_prefix: "orders/" }, upstream: app, policy: public }\n',
      issues: ["t.yaml:9: route 1 (routes[0]).match.path: must start with '/'", "t.yaml:10: route 2 (routes[1]).match.path_prefix: must start with '/'"],
    },
    {
      name: 'pool connections beyond limits.max_upstream_connections',
      text: HEAD.replace('  app: { url: http://127.0.0.1:9000 }\n', '  app: { url: http://127.0.0.1:9000, pool: { connections: 60 } }\n  two: { url: http://127.0.0.1:9001, pool: { connections: 50 } }\n') + ROUTE + 'limits: { max_upstream_connections: 100 }\n',
      issues: ['t.yaml:6: upstreams: the pools hold 110 connections in total, more than limits.max_upstream_connections (100)'],
    },
    {
      name: 'route names must be usable as metric labels',
      text: HEAD + ROUTE + '  - { name: "bad name", match: { path: /z }, upstream: app, policy: public }\n',
      issues: ['t.yaml:10: route 2 (routes[1]).name: must be 1 to 64 characters from A-Z a-z 0-9 _ . -'],
    },
    {
      name: 'key sources: none, or more than one',
      text: HEAD.replace(`    hmac_secret: ${SECRET}\n`, '') + ROUTE,
      issues: ['t.yaml:2: auth.jwt: needs one key source: jwks_uri, public_keys or hmac_secret'],
    },
    {
      name: 'two key sources',
      text: HEAD.replace('    audience: api\n', '    audience: api\n    jwks_uri: https://idp.test/jwks\n') + ROUTE,
      issues: ['t.yaml:6: auth.jwt.hmac_secret: only one key source is allowed; jwks_uri is already set'],
    },
    {
      name: 'HS algorithms mixed with asymmetric ones; HS without a secret',
      text: HEAD.replace('    audience: api\n', '    audience: api\n    algorithms: [HS256, RS256]\n') + ROUTE,
      issues: ['t.yaml:5: auth.jwt.algorithms: HS* algorithms must not be mixed with asymmetric ones (it invites key confusion)'],
    },
    {
      name: 'HS algorithms with a JWKS',
      text: HEAD.replace(`hmac_secret: ${SECRET}`, 'jwks_uri: https://idp.test/jwks\n    algorithms: [HS256]') + ROUTE,
      issues: ['t.yaml:6: auth.jwt.algorithms: HS256 needs hmac_secret; with jwks_uri or public_keys use asymmetric algorithms'],
    },
    {
      name: 'an hmac_secret that is too short is refused without being shown',
      text: HEAD.replace(SECRET, 'hunter2-short') + ROUTE,
      issues: ['t.yaml:5: auth.jwt.hmac_secret: must be at least 32 characters'],
    },
    {
      name: 'a JWKS over plain http to another host',
      text: HEAD.replace(`hmac_secret: ${SECRET}`, 'jwks_uri: http://idp.test/jwks') + ROUTE,
      issues: ['t.yaml:5: auth.jwt.jwks_uri: must use https (http only for localhost)'],
    },
    {
      name: 'upstream URLs with credentials, a query, or another scheme',
      text:
        HEAD.replace('  app: { url: http://127.0.0.1:9000 }\n', '  app: { url: "http://user:pw@10.0.0.1/" }\n  b: { url: "http://10.0.0.1/?x=1" }\n  c: { url: "ftp://10.0.0.1/" }\n') +
        ROUTE,
      issues: [
        't.yaml:7: upstreams.app.url: must be an http:// or https:// URL with no query, fragment or user info',
        't.yaml:8: upstreams.b.url: must be an http:// or https:// URL with no query, fragment or user info',
        't.yaml:9: upstreams.c.url: must be an http:// or https:// URL with no query, fragment or user info',
      ],
    },
    {
      name: 'trusted proxies that are not IPs or CIDRs',
      text: HEAD + ROUTE + 'trusted_proxies: [10.0.0.0/33, 1.2.3]\nauthz: { trusted_proxies: ["::1/129"] }\n',
      issues: [
        't.yaml:10: trusted_proxies[0]: not an IP address or CIDR, e.g. 10.0.0.0/8 or ::1/128',
        't.yaml:10: trusted_proxies[1]: not an IP address or CIDR, e.g. 10.0.0.0/8 or ::1/128',
        't.yaml:11: authz.trusted_proxies[0]: not an IP address or CIDR, e.g. 10.0.0.0/8 or ::1/128',
      ],
    },
    {
      name: 'trusted proxies the gateway could not build a trust list from',
      text: HEAD + ROUTE + 'trusted_proxies: [10.0.0.0/08, "::ffff:10.0.0.0/64", "::ffff:10.0.0.0/104"]\n',
      issues: [
        't.yaml:10: trusted_proxies[0]: not an IP address or CIDR, e.g. 10.0.0.0/8 or ::1/128',
        't.yaml:10: trusted_proxies[1]: not an IP address or CIDR, e.g. 10.0.0.0/8 or ::1/128',
      ],
    },
    {
      name: 'keys without file or env; a store missing its URLs',
      text: HEAD + ROUTE + 'keys: { rotation: 30d }\nstore:\n  kind: shared\n  postgres: "mysql://u:hunter2@db/x"\n',
      issues: ['t.yaml:10: keys: needs file, env or both', 't.yaml:11: store.redis: required key is missing', 't.yaml:13: store.postgres: must be a mapping'],
    },
    {
      name: 'the admin listener on the public address; a short admin token',
      text: HEAD + ROUTE + 'listen: { host: 127.0.0.1, port: 9000 }\nadmin: { port: 9000, token_env: TOK }\n',
      issues: ["t.yaml:11: admin.port: the admin listener must not share the public listener’s address", 't.yaml:11: admin.token_env: the admin token in $TOK is shorter than 16 characters'],
    },
    {
      name: 'a token limit above the header limit',
      text: HEAD.replace('    audience: api\n', '    audience: api\n    max_token_bytes: 20000\n') + ROUTE,
      issues: ['t.yaml:5: auth.jwt.max_token_bytes: must not exceed limits.max_header_bytes (16384)'],
    },
    {
      name: 'default other than deny',
      text: HEAD + ROUTE + 'default: allow\n',
      issues: ['t.yaml:10: default: must be deny'],
    },
    {
      name: 'not a mapping',
      text: '- a\n- b\n',
      issues: ['t.yaml:1: the policy file must be a mapping of settings (listen:, auth:, routes: …)'],
    },
    {
      name: 'only comments',
      text: '# nothing here\n',
      issues: ['t.yaml:1: the policy file is empty (only comments)'],
    },
    {
      name: 'empty',
      text: ' \n',
      issues: ['t.yaml:1: the policy file is empty'],
    },
  ];
  for (const { name, text, issues } of cases) {
    test(name, () => {
      assert.deepEqual(issuesOf(text, { env: { TOK: 'short' } }), issues);
    });
  }

  test('the admin token is checked when set and never shown', () => {
    const lines = issuesOf(HEAD + ROUTE, { env: { MFA_GATEWAY_ADMIN_TOKEN: 'hunter2' } });
    assert.deepEqual(lines, ['t.yaml:1: admin.token_env: the admin token in $MFA_GATEWAY_ADMIN_TOKEN is shorter than 16 characters']);
  });

  test('secrets never appear in messages, even when the YAML around them is broken', () => {
    const broken = HEAD.replace(`hmac_secret: ${SECRET}`, `hmac_secret: [${SECRET}`) + ROUTE;
    const all = [
      ...issuesOf(broken),
      ...issuesOf(HEAD.replace(SECRET, 'hunter2-short') + ROUTE),
      ...issuesOf(HEAD + ROUTE + 'store: { kind: shared, postgres: "mysql://u:hunter2@db/x", redis: "x://:hunter2@r" }\n'),
    ].join('\n');
    assert.ok(!all.includes(SECRET) && !all.includes('hunter2'), all);
  });

  test('all issues are collected, in line order, not only the first', () => {
    const text = HEAD + '  - { match: { path_regex: "(" }, upstream: a1, policy: step_up }\n  - { match: { path: /b }, upstream: a2, policy: public, max_age: 1m }\n';
    assert.deepEqual(issuesOf(text), [
      't.yaml:9: route 1 (routes[0]).match.path_regex: invalid regular expression: Unterminated group',
      't.yaml:9: route 1 (routes[0]).policy: step_up needs max_age: how old the last second factor may be, e.g. 5m',
      't.yaml:9: route 1 (routes[0]).upstream: unknown upstream "a1" (defined: app)',
      't.yaml:10: route 2 (routes[1]).max_age: applies to step_up only, not to public',
      't.yaml:10: route 2 (routes[1]).upstream: unknown upstream "a2" (defined: app)',
    ]);
  });

  test('PolicyError carries structured issues and is recognised across copies', () => {
    try {
      parsePolicy(HEAD + '  - { match: { path: /b }, upstream: nowhere, policy: mfa }\n', 'config/gateway.yaml', '/');
      assert.fail('accepted');
    } catch (error) {
      assert.ok(PolicyError.is(error));
      assert.deepEqual(error.issues, [{ line: 9, path: 'routes[0].upstream', message: 'unknown upstream "nowhere" (defined: app)' }]);
      assert.equal(error.message, 'config/gateway.yaml:9: route 1 (routes[0]).upstream: unknown upstream "nowhere" (defined: app)');
      assert.ok(Object.isFrozen(error.issues));
    }
  });
});

describe('loadPolicyFile', () => {
  test('names the file as given; empty, missing, a directory, a dangling symlink and bad UTF-8 are errors', () => {
    using tmp = tempDir();
    const file = (name: string, content: string | Buffer): string => {
      writeFileSync(join(tmp.dir, name), content);
      return join(tmp.dir, name);
    };
    const messageOf = (path: string): string => {
      try {
        loadPolicyFile(path, { env: {} });
      } catch (error) {
        assert.ok(error instanceof PolicyError);
        return error.message;
      }
      return 'accepted';
    };
    const empty = file('empty.yaml', '');
    assert.equal(messageOf(empty), `${empty}:1: the policy file is empty`);
    const missing = join(tmp.dir, 'missing.yaml');
    assert.equal(messageOf(missing), `${missing}: cannot read the policy file: no such file (or a symlink to nothing)`);
    symlinkSync(join(tmp.dir, 'nowhere.yaml'), join(tmp.dir, 'dangling.yaml'));
    assert.equal(messageOf(join(tmp.dir, 'dangling.yaml')), `${join(tmp.dir, 'dangling.yaml')}: cannot read the policy file: no such file (or a symlink to nothing)`);
    assert.equal(messageOf(tmp.dir), `${tmp.dir}: cannot read the policy file: it is a directory`);
    const latin1 = file('latin1.yaml', Buffer.from('mfa: { issuer: "caf\xe9" }\n', 'latin1'));
    assert.equal(messageOf(latin1), `${latin1}:1: the policy file is not valid UTF-8`);
    const good = file('good.yaml', HEAD + ROUTE);
    assert.equal(loadPolicyFile(good, { env: {} }).source, good);
  });
});
