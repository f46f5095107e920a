/**
 * decide() driven end to end with in-memory fakes: real policies compiled from YAML, a fake bearer
 * verifier and a fake second-factor checker, one table row per case. Each row asserts the whole
 * decision (deepEqual), that its route is the policy's own object, and exactly which fakes were
 * consulted with what.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FrozenSet } from '../../src/config/freeze.js';
import type { GatewayPolicy, Route } from '../../src/config/types.js';
import { decide, RESERVED_ROUTES, type DecisionDeps, type SecondFactorResult } from '../../src/decision/engine.js';
import type { Decision, Identity, IssuedSession, ReservedEndpoint } from '../../src/decision/types.js';
import type { Problem } from '../../src/errors/problems.js';
import type { RateLimitState } from '../../src/errors/ratelimit.js';
import {
  ALT_POLICY_TEXT,
  EXPIRED,
  LIMITED_POLICY_TEXT,
  MAIN_POLICY_TEXT,
  MFA_TIME,
  NOW,
  PRINCIPALS,
  TOKENS,
  TOO_LARGE,
  UNKNOWN,
  RESET_SECONDS,
  compile,
  fakeBearer,
  fakeLimiter,
  fakeSecondFactor,
  viewOf,
  type LimiterAnswer,
  type RequestSpec,
  type Timing,
} from './fakes.js';

const POLICIES = { main: compile(MAIN_POLICY_TEXT, 'main.yaml'), alt: compile(ALT_POLICY_TEXT, 'alt.yaml'), limited: compile(LIMITED_POLICY_TEXT, 'limited.yaml') };
type PolicyKey = keyof typeof POLICIES;

// The engine's own refusals, spelled out.
const BEARER_REQUIRED: Problem = { code: 'invalid_token', detail: 'a bearer token is required' };
const NO_ROUTE: Problem = { code: 'route_not_found', detail: 'no route matches this request' };
const CLOSED: Problem = { code: 'forbidden', detail: 'this route is closed by policy' };
const NO_ROLE: Problem = { code: 'forbidden', detail: 'the token lacks a role this route requires' };
const missingScope = (scope: string): Problem => ({ code: 'insufficient_scope', detail: 'the token lacks a scope this route requires', scope });
const challenge = (code: 'mfa_required' | 'step_up_required', maxAge: number): Problem => ({ code, detail: 'a second factor is required for this route', maxAge });

// What the second-factor checker may answer.
const TOTP_OK: SecondFactorResult = { ok: true, method: 'totp', mfaTime: MFA_TIME };
const IDP_OK: SecondFactorResult = { ok: true, method: 'idp', mfaTime: MFA_TIME - 3600 };
const SESSION: IssuedSession = { token: 'sess-token-1', expiresAt: Math.floor(NOW / 1000) + 7200 };
const TOTP_WITH_SESSION: SecondFactorResult = { ok: true, method: 'totp', mfaTime: Math.floor(NOW / 1000), session: SESSION };
const MFA_INVALID: Problem = { code: 'mfa_invalid', detail: 'the second factor was not accepted' };
const LOCKED: Problem = { code: 'mfa_locked', detail: 'too many failed second-factor attempts; try again later', retryAfter: 30 };
const TOO_OLD: Problem = { code: 'step_up_required', detail: 'the last second factor is too old for this route', maxAge: 300 };
const NOT_ENROLLED: Problem = { code: 'mfa_not_enrolled', detail: 'no second factor is enrolled', hint: 'enroll at /.mfa/setup' };
const refuse = (problem: Problem): SecondFactorResult => ({ ok: false, problem });

// What the rate-limit stage leaves (every limited route allows 5 per minute): a token was left, or none.
const quotaLeft = (route: string): RateLimitState => ({ policy: route, quota: 5, windowSeconds: 60, remaining: 4, resetSeconds: RESET_SECONDS });
const usedUp = (route: string): Problem => ({
  code: 'rate_limited',
  detail: "this route's request quota is used up; retry after the time given",
  retryAfter: RESET_SECONDS,
  rateLimit: { policy: route, quota: 5, windowSeconds: 60, remaining: 0, resetSeconds: RESET_SECONDS },
});
/** A refusal that came after the token was taken carries the quota it left. */
const counted = (problem: Problem, route: string): Problem => ({ ...problem, rateLimit: quotaLeft(route) });
/** The fake view's client address. */
const CLIENT = '192.0.2.7';

const alice = (mfa: Identity['mfa'] = 'none', mfaTime?: number): Identity => identity('alice', ['orders:read', 'items:read', 'profile'], mfa, mfaTime);
const bob = (mfa: Identity['mfa'] = 'none', mfaTime?: number): Identity => identity('bob', [], mfa, mfaTime);
const carol = (mfa: Identity['mfa'] = 'none', mfaTime?: number): Identity => identity('carol', ['items:read', 'items:list', 'payments:write'], mfa, mfaTime);
function identity(subject: string, scopes: string[], mfa: Identity['mfa'], mfaTime: number | undefined): Identity {
  return mfaTime === undefined ? { subject, scopes, mfa } : { subject, scopes, mfa, mfaTime };
}

/** Which fakes the decision may call: none, the bearer verifier only, or the verifier and then the checker. */
type Consults = 'none' | 'bearer' | 'bearer+2fa';

interface AllowExpect {
  /** Route name, or a reserved route's name: `(forward-auth)`, `(setup)`, `(mfa-api)`. */
  readonly allow: string;
  /** Present exactly on authenticated allows; the principal is then the verifier's for `subject`. */
  readonly identity?: Identity;
  readonly session?: IssuedSession;
  readonly endpoint?: ReservedEndpoint;
  /** The quota the allow carries, on rate-limited routes. */
  readonly rateLimit?: RateLimitState;
}

interface DenyExpect {
  readonly deny: Problem;
  /** Absent only for route_not_found. */
  readonly route?: string;
}

interface Row {
  readonly name: string;
  readonly policy?: PolicyKey;
  /** DecisionDeps.reserved; omitted from deps when undefined. */
  readonly reserved?: boolean;
  readonly request: RequestSpec;
  /** The checker's scripted answer (default TOTP_OK); 'absent' leaves deps.secondFactor undefined. */
  readonly secondFactor?: SecondFactorResult | 'absent';
  readonly consults: Consults;
  /** The limiter's scripted answer (default 'left'); 'absent' leaves deps.limiter undefined, as `explain` does. */
  readonly limiter?: LimiterAnswer | 'absent';
  /** The partition the limiter must be asked for (address or subject); absent: never asked. */
  readonly limited?: string;
  readonly expect: AllowExpect | DenyExpect;
}

const ROWS: readonly Row[] = [
  // ── route selection: order, methods ─────────────────────────────────────────────────────────────
  { name: 'first match wins: /docs/secret is served by the earlier public prefix, not the later deny', request: { method: 'GET', path: '/docs/secret' }, consults: 'none', expect: { allow: 'docs' } },
  { name: 'first match wins: GET /orders/7 takes the GET-only bearer route before the mfa route', request: { method: 'GET', path: '/orders/7', authorization: 'Bearer alice' }, consults: 'bearer', expect: { allow: 'orders-read', identity: alice() } },
  { name: 'method filter: POST /orders/7 skips the GET-only route and lands on the mfa route', request: { method: 'POST', path: '/orders/7', authorization: 'Bearer alice' }, consults: 'bearer+2fa', expect: { allow: 'orders-write', identity: alice('totp', MFA_TIME) } },
  { name: 'method filter: HEAD matches `methods: [GET, head]` (upper-cased by the loader)', request: { method: 'HEAD', path: '/orders/7', authorization: 'Bearer alice' }, consults: 'bearer', expect: { allow: 'orders-read', identity: alice() } },
  { name: 'method filter: methods are compared as sent, so `get` is not GET', request: { method: 'get', path: '/orders/7', authorization: 'Bearer alice' }, secondFactor: 'absent', consults: 'bearer', expect: { deny: challenge('mfa_required', 7200), route: 'orders-write' } },
  { name: 'method filter: GET /payments/1 skips the POST-only step_up route for the next one', request: { method: 'GET', path: '/payments/1', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: 'pay-other', identity: bob() } },

  // ── host rules (rule written `API.Example.COM.:443`) ────────────────────────────────────────────
  { name: 'host: the plain name', request: { method: 'GET', host: 'api.example.com', path: '/v1/x', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: 'api', identity: bob() } },
  { name: 'host: compared after lower-casing', request: { method: 'GET', host: 'API.EXAMPLE.COM', path: '/v1/x', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: 'api', identity: bob() } },
  { name: 'host: a trailing dot is the same host', request: { method: 'GET', host: 'api.example.com.', path: '/v1/x', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: 'api', identity: bob() } },
  { name: 'host: default port 443 is dropped', request: { method: 'GET', host: 'api.example.com:443', path: '/v1/x', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: 'api', identity: bob() } },
  { name: 'host: default port 80 is dropped too', request: { method: 'GET', host: 'Api.Example.Com.:80', path: '/v1/x', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: 'api', identity: bob() } },
  { name: 'host: another port is another host (the public :8443 rule)', request: { method: 'GET', host: 'api.example.com:8443', path: '/v1/x', authorization: 'Bearer bob' }, consults: 'none', expect: { allow: 'api-8443' } },
  { name: 'host: a subdomain is not the host → default deny', request: { method: 'GET', host: 'x.api.example.com', path: '/v1/x', authorization: 'Bearer bob' }, consults: 'none', expect: { deny: NO_ROUTE } },
  { name: 'host: no Host at all matches no host rule → default deny', request: { method: 'GET', host: '', path: '/v1/x', authorization: 'Bearer bob' }, consults: 'none', expect: { deny: NO_ROUTE } },

  // ── path, path_prefix, path_regex ───────────────────────────────────────────────────────────────
  { name: 'path: exact /healthz, public: the bearer is not consulted even when one is sent', request: { method: 'GET', path: '/healthz', authorization: 'Bearer expired' }, consults: 'none', expect: { allow: 'health' } },
  { name: 'path: /healthz/ is not /healthz → default deny', request: { method: 'GET', path: '/healthz/' }, consults: 'none', expect: { deny: NO_ROUTE } },
  { name: 'path_prefix: /orders matches /orders itself', request: { method: 'GET', path: '/orders', authorization: 'Bearer alice' }, consults: 'bearer', expect: { allow: 'orders-read', identity: alice() } },
  { name: 'path_prefix: segment boundary, /ordersx is not under /orders', request: { method: 'GET', path: '/ordersx', authorization: 'Bearer alice' }, consults: 'none', expect: { deny: NO_ROUTE } },
  { name: 'path_regex: /items/42 matches /items/\\d+; every listed scope held → allow', request: { method: 'GET', path: '/items/42', authorization: 'Bearer carol' }, consults: 'bearer', expect: { allow: 'item', identity: carol() } },
  { name: 'path_regex: anchored at the end, /items/42/x does not match', request: { method: 'GET', path: '/items/42/x', authorization: 'Bearer carol' }, consults: 'none', expect: { deny: NO_ROUTE } },
  { name: 'path_regex: /items/abc does not match \\d+', request: { method: 'GET', path: '/items/abc', authorization: 'Bearer carol' }, consults: 'none', expect: { deny: NO_ROUTE } },

  // ── default deny, deny policy ───────────────────────────────────────────────────────────────────
  { name: 'default deny: nothing matches → route_not_found without a route, bearer not consulted', request: { method: 'GET', path: '/nowhere', authorization: 'Bearer alice' }, consults: 'none', expect: { deny: NO_ROUTE } },
  { name: 'deny policy: /admin/x → forbidden, bearer not consulted even when valid', request: { method: 'DELETE', path: '/admin/x', authorization: 'Bearer carol' }, consults: 'none', expect: { deny: CLOSED, route: 'admin' } },

  // ── bearer: authentication and authorization ────────────────────────────────────────────────────
  { name: 'bearer: no Authorization header → invalid_token, verifier not called', request: { method: 'GET', path: '/orders/1' }, consults: 'none', expect: { deny: BEARER_REQUIRED, route: 'orders-read' } },
  { name: "bearer: an expired token → the verifier's problem", request: { method: 'GET', path: '/orders/1', authorization: 'Bearer expired' }, consults: 'bearer', expect: { deny: EXPIRED, route: 'orders-read' } },
  { name: "bearer: an oversized token → the verifier's header_too_large", request: { method: 'GET', path: '/orders/1', authorization: 'Bearer huge' }, consults: 'bearer', expect: { deny: TOO_LARGE, route: 'orders-read' } },
  { name: "bearer: an unknown token → the verifier's problem", request: { method: 'GET', path: '/orders/1', authorization: 'Bearer mallory' }, consults: 'bearer', expect: { deny: UNKNOWN, route: 'orders-read' } },
  { name: 'bearer: a scope missing → insufficient_scope naming the route scope', request: { method: 'GET', path: '/orders/1', authorization: 'Bearer bob' }, consults: 'bearer', expect: { deny: missingScope('orders:read'), route: 'orders-read' } },
  { name: 'bearer: one of two scopes is not enough; `scope` names all the route needs', request: { method: 'GET', path: '/items/42', authorization: 'Bearer alice' }, consults: 'bearer', expect: { deny: missingScope('items:read items:list'), route: 'item' } },
  { name: 'bearer: roles, any listed role admits (auditor)', request: { method: 'GET', path: '/reports/q1', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: 'reports', identity: bob() } },
  { name: 'bearer: roles, any listed role admits (admin)', request: { method: 'GET', path: '/reports/q1', authorization: 'Bearer carol' }, consults: 'bearer', expect: { allow: 'reports', identity: carol() } },
  { name: 'bearer: roles, a role not listed → forbidden', request: { method: 'GET', path: '/reports/q1', authorization: 'Bearer alice' }, consults: 'bearer', expect: { deny: NO_ROLE, route: 'reports' } },

  // ── mfa and step_up ─────────────────────────────────────────────────────────────────────────────
  { name: 'mfa: no checker configured → mfa_required, max_age = session TTL (2h)', request: { method: 'POST', path: '/orders/1', authorization: 'Bearer alice' }, secondFactor: 'absent', consults: 'bearer', expect: { deny: challenge('mfa_required', 7200), route: 'orders-write' } },
  { name: 'step_up: no checker configured → step_up_required, max_age = route max_age (5m)', request: { method: 'POST', path: '/payments/1', authorization: 'Bearer carol' }, secondFactor: 'absent', consults: 'bearer', expect: { deny: challenge('step_up_required', 300), route: 'pay' } },
  { name: "mfa: the checker's method and time become the identity", request: { method: 'POST', path: '/orders/1', authorization: 'Bearer alice', sessionToken: 'sess-old' }, secondFactor: IDP_OK, consults: 'bearer+2fa', expect: { allow: 'orders-write', identity: alice('idp', MFA_TIME - 3600) } },
  { name: 'mfa: a session the checker minted is returned on the allow', request: { method: 'POST', path: '/orders/1', authorization: 'Bearer alice', mfaToken: '123456' }, secondFactor: TOTP_WITH_SESSION, consults: 'bearer+2fa', expect: { allow: 'orders-write', identity: alice('totp', Math.floor(NOW / 1000)), session: SESSION } },
  { name: 'mfa: a refusal (mfa_invalid) passes through', request: { method: 'PUT', path: '/orders/1', authorization: 'Bearer alice', mfaToken: '000000' }, secondFactor: refuse(MFA_INVALID), consults: 'bearer+2fa', expect: { deny: MFA_INVALID, route: 'orders-write' } },
  { name: 'mfa: a lockout (mfa_locked, retryAfter) passes through', request: { method: 'PUT', path: '/orders/1', authorization: 'Bearer alice', mfaToken: '000000' }, secondFactor: refuse(LOCKED), consults: 'bearer+2fa', expect: { deny: LOCKED, route: 'orders-write' } },
  { name: 'mfa: mfa_not_enrolled (with hint) passes through', request: { method: 'POST', path: '/orders/1', authorization: 'Bearer alice' }, secondFactor: refuse(NOT_ENROLLED), consults: 'bearer+2fa', expect: { deny: NOT_ENROLLED, route: 'orders-write' } },
  { name: 'mfa: no bearer → invalid_token, neither fake consulted', request: { method: 'POST', path: '/orders/1', mfaToken: '123456' }, consults: 'none', expect: { deny: BEARER_REQUIRED, route: 'orders-write' } },
  { name: "mfa: a bad bearer → the verifier's problem, checker not consulted", request: { method: 'POST', path: '/orders/1', authorization: 'Bearer expired', mfaToken: '123456' }, consults: 'bearer', expect: { deny: EXPIRED, route: 'orders-write' } },
  { name: 'step_up: checker passes → allow, with the minted session', request: { method: 'POST', path: '/payments/1', authorization: 'Bearer carol', mfaToken: '123456' }, secondFactor: TOTP_WITH_SESSION, consults: 'bearer+2fa', expect: { allow: 'pay', identity: carol('totp', Math.floor(NOW / 1000)), session: SESSION } },
  { name: 'step_up: a too-old factor refusal passes through', request: { method: 'POST', path: '/payments/1', authorization: 'Bearer carol', sessionToken: 'sess-old' }, secondFactor: refuse(TOO_OLD), consults: 'bearer+2fa', expect: { deny: TOO_OLD, route: 'pay' } },
  { name: 'step_up: scopes are checked before the second factor', request: { method: 'POST', path: '/payments/1', authorization: 'Bearer alice', mfaToken: '123456' }, consults: 'bearer', expect: { deny: missingScope('payments:write'), route: 'pay' } },

  // ── the reserved prefix ─────────────────────────────────────────────────────────────────────────
  { name: 'reserved: /.mfa/authz/auth-request → forward-auth, bearer not consulted even when sent', request: { method: 'GET', path: '/.mfa/authz/auth-request', authorization: 'Bearer expired' }, consults: 'none', expect: { allow: '(forward-auth)', endpoint: { kind: 'forward-auth', subpath: 'auth-request' } } },
  { name: 'reserved: /.mfa/authz/ext-authz/… keeps the rest as the subpath, any method', request: { method: 'POST', path: '/.mfa/authz/ext-authz/orders/1' }, consults: 'none', expect: { allow: '(forward-auth)', endpoint: { kind: 'forward-auth', subpath: 'ext-authz/orders/1' } } },
  { name: 'reserved: GET /.mfa/setup is public', request: { method: 'GET', path: '/.mfa/setup' }, consults: 'none', expect: { allow: '(setup)', endpoint: { kind: 'setup', subpath: 'setup' } } },
  { name: 'reserved: POST /.mfa/setup needs a bearer', request: { method: 'POST', path: '/.mfa/setup' }, consults: 'none', expect: { deny: BEARER_REQUIRED, route: '(mfa-api)' } },
  { name: 'reserved: POST /.mfa/setup with a bearer → the MFA API', request: { method: 'POST', path: '/.mfa/setup', authorization: 'Bearer alice' }, consults: 'bearer', expect: { allow: '(mfa-api)', identity: alice(), endpoint: { kind: 'mfa-api', subpath: 'setup' } } },
  { name: 'reserved: only GET is the public setup page (HEAD needs a bearer)', request: { method: 'HEAD', path: '/.mfa/setup' }, consults: 'none', expect: { deny: BEARER_REQUIRED, route: '(mfa-api)' } },
  { name: 'reserved: POST /.mfa/verify without a bearer → invalid_token', request: { method: 'POST', path: '/.mfa/verify', mfaToken: '123456' }, consults: 'none', expect: { deny: BEARER_REQUIRED, route: '(mfa-api)' } },
  { name: "reserved: POST /.mfa/verify with a bad bearer → the verifier's problem", request: { method: 'POST', path: '/.mfa/verify', authorization: 'Bearer expired', mfaToken: '123456' }, consults: 'bearer', expect: { deny: EXPIRED, route: '(mfa-api)' } },
  { name: 'reserved: POST /.mfa/verify with a bearer → MFA API; the code is the endpoint’s job, not the checker’s', request: { method: 'POST', path: '/.mfa/verify', authorization: 'Bearer alice', mfaToken: '123456' }, consults: 'bearer', expect: { allow: '(mfa-api)', identity: alice(), endpoint: { kind: 'mfa-api', subpath: 'verify' } } },
  { name: 'reserved: the public user route matching /.mfa/… never wins (no bearer → invalid_token)', request: { method: 'GET', path: '/.mfa/factors' }, consults: 'none', expect: { deny: BEARER_REQUIRED, route: '(mfa-api)' } },
  { name: 'reserved: the public user route matching /.mfa/… never wins (bearer → MFA API)', request: { method: 'GET', path: '/.mfa/factors', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: '(mfa-api)', identity: bob(), endpoint: { kind: 'mfa-api', subpath: 'factors' } } },
  { name: 'reserved: the bare prefix /.mfa/ is the MFA API with an empty subpath', request: { method: 'GET', path: '/.mfa/', authorization: 'Bearer bob' }, consults: 'bearer', expect: { allow: '(mfa-api)', identity: bob(), endpoint: { kind: 'mfa-api', subpath: '' } } },
  { name: 'reserved: /.mfa without the slash is not under the prefix → routes (none match)', request: { method: 'GET', path: '/.mfa' }, consults: 'none', expect: { deny: NO_ROUTE } },
  { name: 'reserved: false → GET /.mfa/setup is decided by routes only', reserved: false, request: { method: 'GET', path: '/.mfa/setup' }, consults: 'none', expect: { allow: 'mfa-shadow' } },
  { name: 'reserved: false → /.mfa/authz/forward-auth is decided by routes only', reserved: false, request: { method: 'GET', path: '/.mfa/authz/forward-auth' }, consults: 'none', expect: { allow: 'mfa-shadow' } },
  { name: 'reserved: false → POST /.mfa/verify by routes only, bearer not consulted', reserved: false, request: { method: 'POST', path: '/.mfa/verify', authorization: 'Bearer alice' }, consults: 'none', expect: { allow: 'mfa-shadow' } },
  { name: 'reserved: true (explicit) is the default behaviour', reserved: true, request: { method: 'GET', path: '/.mfa/setup' }, consults: 'none', expect: { allow: '(setup)', endpoint: { kind: 'setup', subpath: 'setup' } } },

  // ── a policy with mfa.path_prefix: /_gw/ and a 30m session ──────────────────────────────────────
  { name: 'moved prefix: GET /_gw/setup is the setup page', policy: 'alt', request: { method: 'GET', path: '/_gw/setup' }, consults: 'none', expect: { allow: '(setup)', endpoint: { kind: 'setup', subpath: 'setup' } } },
  { name: 'moved prefix: /_gw/authz/forward-auth is forward-auth', policy: 'alt', request: { method: 'GET', path: '/_gw/authz/forward-auth' }, consults: 'none', expect: { allow: '(forward-auth)', endpoint: { kind: 'forward-auth', subpath: 'forward-auth' } } },
  { name: 'moved prefix: /.mfa/verify is an ordinary path → mfa route, max_age = 30m TTL', policy: 'alt', request: { method: 'POST', path: '/.mfa/verify', authorization: 'Bearer bob' }, secondFactor: 'absent', consults: 'bearer', expect: { deny: challenge('mfa_required', 1800), route: 'everything' } },
  { name: 'moved prefix, reserved: false → /_gw/setup by routes (mfa)', policy: 'alt', reserved: false, request: { method: 'GET', path: '/_gw/setup', authorization: 'Bearer bob' }, consults: 'bearer+2fa', expect: { allow: 'everything', identity: bob('totp', MFA_TIME) } },

  // ── rate limits (5 per minute); key: ip before authentication, key: subject right after it ─────────
  { name: 'rate limit, public by address: a token left → allow with the quota it left', policy: 'limited', request: { method: 'GET', path: '/feed/1' }, consults: 'none', limited: CLIENT, expect: { allow: 'feed', rateLimit: quotaLeft('feed') } },
  { name: 'rate limit, public by address: used up → 429 rate_limited, Retry-After = end of window', policy: 'limited', limiter: 'used up', request: { method: 'GET', path: '/feed/1' }, consults: 'none', limited: CLIENT, expect: { deny: usedUp('feed'), route: 'feed' } },
  { name: 'rate limit: the store does not answer → the limit is skipped (public goes on), no quota claimed', policy: 'limited', limiter: 'unavailable', request: { method: 'GET', path: '/feed/1' }, consults: 'none', limited: CLIENT, expect: { allow: 'feed' } },
  { name: 'rate limit: no limiter injected (explain) → not enforced', policy: 'limited', limiter: 'absent', request: { method: 'GET', path: '/feed/1' }, consults: 'none', expect: { allow: 'feed' } },
  { name: 'rate limit: a route without rate_limit never asks the limiter', policy: 'limited', request: { method: 'GET', path: '/other' }, consults: 'none', expect: { allow: 'plain' } },
  { name: 'rate limit, bearer by address: used up → 429 before the token is even verified', policy: 'limited', limiter: 'used up', request: { method: 'GET', path: '/search/q', authorization: 'Bearer alice' }, consults: 'none', limited: CLIENT, expect: { deny: usedUp('search'), route: 'search' } },
  { name: 'rate limit, bearer by address: a token left → allow with identity and quota', policy: 'limited', request: { method: 'GET', path: '/search/q', authorization: 'Bearer alice' }, consults: 'bearer', limited: CLIENT, expect: { allow: 'search', identity: alice(), rateLimit: quotaLeft('search') } },
  { name: 'rate limit, bearer by address: no bearer → invalid_token, and the request still counted', policy: 'limited', request: { method: 'GET', path: '/search/q' }, consults: 'none', limited: CLIENT, expect: { deny: counted(BEARER_REQUIRED, 'search'), route: 'search' } },
  { name: 'rate limit, bearer by address: a missing scope → insufficient_scope with the quota', policy: 'limited', request: { method: 'GET', path: '/search/q', authorization: 'Bearer bob' }, consults: 'bearer', limited: CLIENT, expect: { deny: counted(missingScope('orders:read'), 'search'), route: 'search' } },
  { name: 'rate limit, by subject: no bearer → invalid_token; nothing to count yet', policy: 'limited', request: { method: 'GET', path: '/export/all' }, consults: 'none', expect: { deny: BEARER_REQUIRED, route: 'export' } },
  { name: "rate limit, by subject: a bad bearer → the verifier's problem; nothing counted", policy: 'limited', limiter: 'used up', request: { method: 'GET', path: '/export/all', authorization: 'Bearer expired' }, consults: 'bearer', expect: { deny: EXPIRED, route: 'export' } },
  { name: "rate limit, by subject: a token left → allow, counted under the bearer's subject", policy: 'limited', request: { method: 'GET', path: '/export/all', authorization: 'Bearer alice' }, consults: 'bearer', limited: 'alice', expect: { allow: 'export', identity: alice(), rateLimit: quotaLeft('export') } },
  { name: 'rate limit, by subject: used up → 429 before authorization (a scope-less caller counts too)', policy: 'limited', limiter: 'used up', request: { method: 'GET', path: '/export/all', authorization: 'Bearer bob' }, consults: 'bearer', limited: 'bob', expect: { deny: usedUp('export'), route: 'export' } },
  { name: 'rate limit, mfa by subject: used up → 429, the second factor is not consulted', policy: 'limited', limiter: 'used up', request: { method: 'POST', path: '/transfer/1', authorization: 'Bearer carol', mfaToken: '123456' }, consults: 'bearer', limited: 'carol', expect: { deny: usedUp('transfer'), route: 'transfer' } },
  { name: 'rate limit, mfa by subject: a refused code carries the quota', policy: 'limited', request: { method: 'POST', path: '/transfer/1', authorization: 'Bearer carol', mfaToken: '000000' }, secondFactor: refuse(MFA_INVALID), consults: 'bearer+2fa', limited: 'carol', expect: { deny: counted(MFA_INVALID, 'transfer'), route: 'transfer' } },
  { name: 'rate limit, mfa by subject: a good code → allow with the session and the quota', policy: 'limited', request: { method: 'POST', path: '/transfer/1', authorization: 'Bearer carol', mfaToken: '123456' }, secondFactor: TOTP_WITH_SESSION, consults: 'bearer+2fa', limited: 'carol', expect: { allow: 'transfer', identity: carol('totp', Math.floor(NOW / 1000)), session: SESSION, rateLimit: quotaLeft('transfer') } },
];

const RESERVED_BY_NAME: ReadonlyMap<string, Route> = new Map(Object.values(RESERVED_ROUTES).map((route) => [route.name, route]));

function routeNamed(policy: GatewayPolicy, name: string): Route {
  const route = RESERVED_BY_NAME.get(name) ?? policy.routes.find((r) => r.name === name);
  assert.ok(route !== undefined, `no route named ${name}`);
  return route;
}

function principalOf(subject: string) {
  const principal = Object.values(PRINCIPALS).find((p) => p.subject === subject);
  assert.ok(principal !== undefined, `no principal ${subject}`);
  return principal;
}

/** The whole decision a row expects, with no undefined-valued keys (deepStrictEqual tells them apart). */
function expectedDecision(row: Row, policy: GatewayPolicy): Decision {
  const expect = row.expect;
  if ('deny' in expect) {
    return expect.route === undefined ? { kind: 'deny', problem: expect.deny } : { kind: 'deny', route: routeNamed(policy, expect.route), problem: expect.deny };
  }
  return {
    kind: 'allow',
    route: routeNamed(policy, expect.allow),
    ...(expect.identity !== undefined ? { principal: principalOf(expect.identity.subject), identity: expect.identity } : {}),
    ...(expect.session !== undefined ? { session: expect.session } : {}),
    ...(expect.endpoint !== undefined ? { endpoint: expect.endpoint } : {}),
    ...(expect.rateLimit !== undefined ? { rateLimit: expect.rateLimit } : {}),
  };
}

function setUp(row: Row, requestId = 'req-1', timing: Timing = 'later') {
  const policy = POLICIES[row.policy ?? 'main'];
  const view = viewOf(row.request, requestId);
  const bearer = fakeBearer(TOKENS, timing);
  const checker = row.secondFactor === 'absent' ? undefined : fakeSecondFactor(row.secondFactor ?? TOTP_OK, timing);
  const limiter = row.limiter === 'absent' ? undefined : fakeLimiter(row.limiter ?? 'left');
  const deps: DecisionDeps = {
    policy,
    bearer,
    now: NOW,
    ...(checker !== undefined ? { secondFactor: checker } : {}),
    ...(limiter !== undefined ? { limiter } : {}),
    ...(row.reserved !== undefined ? { reserved: row.reserved } : {}),
  };
  return { policy, view, bearer, checker, limiter, deps };
}

describe('decide: the table', () => {
  for (const row of ROWS) {
    test(row.name, async () => {
      const { policy, view, bearer, checker, limiter, deps } = setUp(row);
      const decision = await decide(view, deps);
      const expected = expectedDecision(row, policy);

      // Asked once, for the route's own limit, the right partition and the request's clock reading.
      if (row.limited === undefined) {
        assert.deepEqual(limiter?.inputs ?? [], []);
      } else {
        assert.ok(limiter !== undefined && expected.route !== undefined);
        assert.equal(limiter.inputs.length, 1);
        const input = limiter.inputs[0]!;
        assert.equal(input.route, expected.route);
        assert.equal(input.limit, expected.route.rateLimit);
        assert.deepEqual([input.partition, input.now], [row.limited, NOW]);
      }

      assert.deepEqual(decision, expected);
      // The very route object of the compiled policy (or the built-in one), not a look-alike.
      assert.equal(decision.route, expected.route);

      if (row.consults === 'none') {
        assert.deepEqual(bearer.calls, []);
      } else {
        assert.ok(row.request.authorization !== undefined, 'a row that consults the verifier sends a bearer');
        assert.deepEqual(bearer.calls, [row.request.authorization]);
      }

      if (row.consults === 'bearer+2fa') {
        assert.ok(checker !== undefined, 'a row that consults the checker configures one');
        assert.equal(checker.inputs.length, 1);
        const input = checker.inputs[0]!;
        const verified = TOKENS.get(row.request.authorization ?? '');
        assert.ok(verified?.ok === true);
        assert.deepEqual(input, { principal: verified.principal, route: expected.route, view, policy, now: NOW });
        // Identity, not just equality: the request's own pinned objects are handed on.
        assert.equal(input.principal, verified.principal);
        assert.equal(input.route, expected.route);
        assert.equal(input.view, view);
        assert.equal(input.policy, policy);
        assert.equal(input.now, NOW);
      } else if (checker !== undefined) {
        assert.deepEqual(checker.inputs, []);
      }

      if (decision.kind === 'allow' && decision.principal !== undefined) {
        const verified = TOKENS.get(row.request.authorization ?? '');
        assert.ok(verified?.ok === true);
        assert.equal(decision.principal, verified.principal);
      }
    });
  }
});

describe('decide: properties across the table', () => {
  test('deterministic: the same inputs twice give deepEqual decisions (same fakes, and fresh fakes)', async () => {
    for (const row of ROWS) {
      const first = setUp(row, 'req-det');
      const a = await decide(first.view, first.deps);
      const b = await decide(first.view, first.deps);
      const fresh = setUp(row, 'req-det');
      const c = await decide(fresh.view, fresh.deps);
      assert.deepEqual(b, a, row.name);
      assert.deepEqual(c, a, row.name);
      // The fakes saw the second call exactly like the first.
      assert.deepEqual(first.bearer.calls, [...fresh.bearer.calls, ...fresh.bearer.calls], row.name);
      assert.equal(first.checker?.inputs.length ?? 0, 2 * (fresh.checker?.inputs.length ?? 0), row.name);
    }
  });

  test('stages that answer at once decide at once, the same decision after the same calls; a rate limit (a store) needs a promise', async () => {
    let immediate = 0;
    for (const row of ROWS) {
      const later = setUp(row, 'req-now');
      const now = setUp(row, 'req-now', 'now');
      const awaited = await decide(later.view, later.deps);
      const decided = decide(now.view, now.deps);
      // Only a row whose route has a limit for this request asks the limiter, which always answers later.
      assert.equal(decided instanceof Promise, row.limited !== undefined, row.name);
      if (!(decided instanceof Promise)) immediate++;
      assert.deepEqual(await decided, awaited, row.name);
      assert.deepEqual(now.bearer.calls, later.bearer.calls, row.name);
      assert.deepEqual(now.checker?.inputs ?? [], later.checker?.inputs ?? [], row.name);
      assert.deepEqual(now.limiter?.inputs ?? [], later.limiter?.inputs ?? [], row.name);
    }
    assert.ok(immediate > 0 && immediate < ROWS.length, `${immediate} of ${ROWS.length} rows decided at once`);
  });

  test('every authenticated allow carries the principal and an identity; no other allow does', async () => {
    let authenticated = 0;
    for (const row of ROWS) {
      const { view, deps } = setUp(row);
      const decision = await decide(view, deps);
      if (decision.kind !== 'allow') continue;
      const authenticates = decision.route.policy !== 'public';
      assert.equal(decision.principal !== undefined, authenticates, row.name);
      assert.equal(decision.identity !== undefined, authenticates, row.name);
      if (authenticates) authenticated++;
    }
    assert.equal(authenticated, 24);
  });

  test("an identity's scope list: shared and frozen for a sealed scope set, spread afresh from any other Set", async () => {
    const identityFor = async (scopes: ReadonlySet<string>): Promise<Identity | undefined> => {
      const principal = { ...PRINCIPALS.alice, scopes };
      const deps: DecisionDeps = { policy: POLICIES.main, bearer: fakeBearer(new Map([['Bearer alice', { ok: true, principal }]]), 'now'), now: NOW };
      const decision = await decide(viewOf({ method: 'GET', path: '/orders/7', authorization: 'Bearer alice' }), deps);
      assert.equal(decision.kind, 'allow');
      return decision.kind === 'allow' ? decision.identity : undefined;
    };
    const sealed = new FrozenSet(['orders:read', 'profile']);
    const first = await identityFor(sealed);
    const second = await identityFor(sealed);
    assert.deepEqual(first?.scopes, ['orders:read', 'profile']);
    assert.equal(first?.scopes, second?.scopes);
    assert.ok(Object.isFrozen(first?.scopes));

    const open = new Set(['orders:read']);
    assert.deepEqual((await identityFor(open))?.scopes, ['orders:read']);
    open.add('items:read');
    assert.deepEqual((await identityFor(open))?.scopes, ['orders:read', 'items:read']);
  });

  test('the table reaches every policy kind and every reserved route', () => {
    const reached = new Set<string>();
    for (const row of ROWS) {
      const route = 'deny' in row.expect ? row.expect.route : row.expect.allow;
      if (route !== undefined) reached.add(routeNamed(POLICIES[row.policy ?? 'main'], route).policy + ' ' + route);
    }
    const policies = new Set([...reached].map((entry) => entry.split(' ')[0]));
    assert.deepEqual([...policies].sort(), ['bearer', 'deny', 'mfa', 'public', 'step_up']);
    for (const route of Object.values(RESERVED_ROUTES)) assert.ok([...reached].some((entry) => entry.endsWith(` ${route.name}`)), route.name);
    // Every route of the main policy is some row's answer, except the shadowed one.
    const names = new Set([...reached].map((entry) => entry.split(' ')[1]));
    assert.deepEqual(
      POLICIES.main.routes.map((r) => r.name).filter((name) => !names.has(name)),
      ['docs-secret'],
    );
  });
});

describe('decide: what the second-factor stage is handed', () => {
  test("the policy in deps, not another one compiled from the same text; the now in deps, not the wall clock", async () => {
    const twin = compile(MAIN_POLICY_TEXT, 'main.yaml');
    assert.notEqual(twin, POLICIES.main);
    for (const [policy, now] of [
      [twin, NOW + 1],
      [POLICIES.main, NOW - 86_400_000],
    ] as const) {
      const checker = fakeSecondFactor(TOTP_OK);
      const view = viewOf({ method: 'POST', path: '/orders/9', authorization: 'Bearer alice' });
      const decision = await decide(view, { policy, bearer: fakeBearer(), secondFactor: checker, now });
      const route = policy.routes.find((r) => r.name === 'orders-write');
      assert.ok(route !== undefined);
      assert.deepEqual(decision, { kind: 'allow', route, principal: PRINCIPALS.alice, identity: alice('totp', MFA_TIME) });
      assert.equal(decision.route, route);
      assert.equal(checker.inputs.length, 1);
      assert.equal(checker.inputs[0]!.policy, policy);
      assert.equal(checker.inputs[0]!.route, route);
      assert.equal(checker.inputs[0]!.now, now);
    }
  });

  test("refusals pass through as the very problem objects the verifier and the checker returned", async () => {
    const fromVerifier = await decide(viewOf({ method: 'GET', path: '/orders/1', authorization: 'Bearer expired' }), { policy: POLICIES.main, bearer: fakeBearer(), now: NOW });
    assert.equal(fromVerifier.kind, 'deny');
    assert.equal(fromVerifier.kind === 'deny' ? fromVerifier.problem : undefined, EXPIRED);

    const refusal = refuse(LOCKED);
    const fromChecker = await decide(viewOf({ method: 'POST', path: '/orders/1', authorization: 'Bearer alice' }), {
      policy: POLICIES.main,
      bearer: fakeBearer(),
      secondFactor: fakeSecondFactor(refusal),
      now: NOW,
    });
    assert.equal(fromChecker.kind, 'deny');
    assert.equal(fromChecker.kind === 'deny' ? fromChecker.problem : undefined, LOCKED);
  });
});
