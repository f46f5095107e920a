/**
 * In-memory stand-ins for the decision's I/O stages (bearer, second factor, rate limit), a request-view builder and the policy
 * texts the decision tests compile. No sockets, no store, no clock: `now` is a constant.
 */
import type { Principal } from '../../src/auth/principal.js';
import type { VerifyResult } from '../../src/auth/jwt.js';
import { parsePolicy } from '../../src/config/load.js';
import type { GatewayPolicy } from '../../src/config/types.js';
import type { Awaitable } from '../../src/async/awaitable.js';
import type { BearerVerifier, RateLimiter, RateLimitInput, SecondFactorChecker, SecondFactorInput, SecondFactorResult } from '../../src/decision/engine.js';
import type { Problem } from '../../src/errors/problems.js';
import type { RequestView } from '../../src/request/view.js';

/** The request's pinned clock reading: far from the real time and not a whole second, so a stray Date.now() shows. */
export const NOW = Date.UTC(2031, 4, 6, 7, 8, 9, 123);
/** Unix seconds of a second-factor check one minute before NOW. */
export const MFA_TIME = Math.floor(NOW / 1000) - 60;

const SECRET = 'decision-test-secret-of-at-least-32-characters';

const HEAD = `auth:
  jwt:
    issuer: https://idp.test/
    audience: api
    hmac_secret: ${SECRET}
upstreams:
  app: { url: http://127.0.0.1:9000 }
`;

/**
 * The main policy, written as a user would. Session TTL 2h (challenge max_age 7200), step_up 5m (300).
 * The order matters: `docs` shadows `docs-secret`, `pay` comes before `pay-other`, and `mfa-shadow`
 * is a user route that would match the reserved prefix if the gateway let it.
 */
export const MAIN_POLICY_TEXT = `${HEAD}mfa:
  session: { ttl: 2h }
routes:
  - { name: health, match: { path: /healthz }, upstream: app, policy: public }
  - { name: docs, match: { path_prefix: /docs/ }, upstream: app, policy: public }
  - { name: docs-secret, match: { path: /docs/secret }, policy: deny }
  - { name: pay, match: { path_prefix: /payments/, methods: [POST] }, upstream: app, policy: step_up, max_age: 5m, scopes: [payments:write] }
  - { name: pay-other, match: { path_prefix: /payments/ }, upstream: app, policy: bearer }
  - { name: orders-read, match: { path_prefix: /orders, methods: [GET, head] }, upstream: app, policy: bearer, scopes: [orders:read] }
  - { name: orders-write, match: { path_prefix: /orders }, upstream: app, policy: mfa }
  - { name: api, match: { host: "API.Example.COM.:443", path_prefix: /v1/ }, upstream: app, policy: bearer }
  - { name: api-8443, match: { host: "api.example.com:8443", path_prefix: /v1/ }, upstream: app, policy: public }
  - { name: item, match: { path_regex: '/items/\\d+' }, upstream: app, policy: bearer, scopes: [items:read, items:list] }
  - { name: reports, match: { path_prefix: /reports/ }, upstream: app, policy: bearer, roles: [auditor, admin] }
  - { name: admin, match: { path_prefix: /admin/ }, policy: deny }
  - { name: mfa-shadow, match: { path_regex: '/\\.mfa/.*' }, upstream: app, policy: public }
default: deny
`;

/** A second policy: reserved prefix moved to /_gw/, session TTL 30m (1800), one catch-all mfa route. */
export const ALT_POLICY_TEXT = `${HEAD}mfa:
  session: { ttl: 30m }
  path_prefix: /_gw/
routes:
  - { name: everything, match: { path_prefix: / }, upstream: app, policy: mfa }
`;

/**
 * Rate-limited routes, one per place the stage can sit: a public route by address, bearer routes
 * by address and by subject, an mfa route by subject; and one route without a limit.
 */
export const LIMITED_POLICY_TEXT = `${HEAD}mfa:
  session: { ttl: 2h }
routes:
  - { name: feed, match: { path_prefix: /feed/ }, upstream: app, policy: public, rate_limit: { requests: 5, per: 1m } }
  - { name: search, match: { path_prefix: /search/ }, upstream: app, policy: bearer, scopes: [orders:read], rate_limit: { requests: 5, per: 1m, key: ip } }
  - { name: export, match: { path_prefix: /export/ }, upstream: app, policy: bearer, scopes: [orders:read], rate_limit: { requests: 5, per: 1m, key: subject } }
  - { name: transfer, match: { path_prefix: /transfer/ }, upstream: app, policy: mfa, rate_limit: { requests: 5, per: 1m, key: subject } }
  - { name: plain, match: { path_prefix: / }, upstream: app, policy: public }
default: deny
`;

/** Real loader: YAML → schema → compile → deep-frozen policy. */
export function compile(text: string, source: string): GatewayPolicy {
  return parsePolicy(text, source, '/nonexistent', { env: {} });
}

export function principal(subject: string, scopes: readonly string[], roles: readonly string[]): Principal {
  return Object.freeze({
    subject,
    scopes: new Set(scopes),
    roles: new Set(roles),
    expiresAt: Math.floor(NOW / 1000) + 3600,
    amr: Object.freeze(['pwd']),
    tokenHash: subject.charAt(0).repeat(64),
  });
}

/** Callers the fake verifier knows, by subject. Scopes in claim order (identity keeps that order). */
export const PRINCIPALS = Object.freeze({
  alice: principal('alice', ['orders:read', 'items:read', 'profile'], ['user']),
  bob: principal('bob', [], ['auditor']),
  carol: principal('carol', ['items:read', 'items:list', 'payments:write'], ['admin']),
});
export type Subject = keyof typeof PRINCIPALS;

export const EXPIRED: Problem = Object.freeze({ code: 'invalid_token', detail: 'token expired' });
export const TOO_LARGE: Problem = Object.freeze({ code: 'header_too_large', detail: 'the bearer token is larger than this gateway accepts' });
export const UNKNOWN: Problem = Object.freeze({ code: 'invalid_token', detail: 'token signature or format invalid' });

/** Authorization header value → what the real verifier would answer. Anything else is UNKNOWN. */
export const TOKENS: ReadonlyMap<string, VerifyResult> = new Map<string, VerifyResult>([
  ['Bearer alice', { ok: true, principal: PRINCIPALS.alice }],
  ['Bearer bob', { ok: true, principal: PRINCIPALS.bob }],
  ['Bearer carol', { ok: true, principal: PRINCIPALS.carol }],
  ['Bearer expired', { ok: false, problem: EXPIRED }],
  ['Bearer huge', { ok: false, problem: TOO_LARGE }],
]);

/**
 * How a fake answers: through a promise (`later`, as a store read or a key fetch does) or at once
 * (`now`, as the real stages do when the answer is cached in memory).
 */
export type Timing = 'later' | 'now';

function answered<T>(value: T, timing: Timing): Awaitable<T> {
  return timing === 'now' ? value : Promise.resolve(value);
}

export interface FakeBearer extends BearerVerifier {
  /** Every header value verify() was given, in order. */
  readonly calls: string[];
}

export function fakeBearer(tokens: ReadonlyMap<string, VerifyResult> = TOKENS, timing: Timing = 'later'): FakeBearer {
  const calls: string[] = [];
  return {
    calls,
    verify(authorizationHeader) {
      calls.push(authorizationHeader);
      return answered(tokens.get(authorizationHeader) ?? { ok: false, problem: UNKNOWN }, timing);
    },
  };
}

export interface FakeSecondFactor extends SecondFactorChecker {
  /** Every input checkSecondFactor() was given, in order (the very objects, not copies). */
  readonly inputs: SecondFactorInput[];
}

export function fakeSecondFactor(result: SecondFactorResult, timing: Timing = 'later'): FakeSecondFactor {
  const inputs: SecondFactorInput[] = [];
  return {
    inputs,
    checkSecondFactor(input) {
      inputs.push(input);
      return answered(result, timing);
    },
  };
}

/** What the fake limiter answers: a token left (4 remain), none left, or no answer from the store. */
export type LimiterAnswer = 'left' | 'used up' | 'unavailable';

/** Seconds until the fake limiter's window ends. */
export const RESET_SECONDS = 42;

export interface FakeLimiter extends RateLimiter {
  /** Every input take() was given, in order. */
  readonly inputs: RateLimitInput[];
}

export function fakeLimiter(answer: LimiterAnswer): FakeLimiter {
  const inputs: RateLimitInput[] = [];
  return {
    inputs,
    async take(input) {
      inputs.push(input);
      if (answer === 'unavailable') return undefined;
      const { route, limit } = input;
      const remaining = answer === 'left' ? limit.requests - 1 : 0;
      return { allowed: answer === 'left', state: { policy: route.name, quota: limit.requests, windowSeconds: limit.perMs / 1000, remaining, resetSeconds: RESET_SECONDS } };
    },
  };
}

export interface RequestSpec {
  readonly method: string;
  /** As the client sent it; the canonicaliser would normalise it, and route matching normalises again. */
  readonly host?: string;
  readonly path: string;
  readonly authorization?: string;
  readonly mfaToken?: string;
  readonly sessionToken?: string;
}

/** A frozen view, so a decide() that wrote to it would throw. */
export function viewOf(spec: RequestSpec, requestId = 'req-1'): RequestView {
  const host = spec.host ?? 'gw.example.com';
  return Object.freeze({
    method: spec.method,
    path: spec.path,
    search: '',
    host,
    proto: 'https',
    clientIp: '192.0.2.7',
    forwardedFor: '192.0.2.7',
    peerTrusted: false,
    forwardedHost: host,
    ...(spec.authorization !== undefined ? { authorization: spec.authorization } : {}),
    ...(spec.mfaToken !== undefined ? { mfaToken: spec.mfaToken } : {}),
    ...(spec.sessionToken !== undefined ? { sessionToken: spec.sessionToken } : {}),
    requestId,
  });
}
