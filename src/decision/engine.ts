import { FrozenSet } from '../config/freeze.js';
import type { GatewayPolicy, Route, RouteRateLimit } from '../config/types.js';
import { then, type Awaitable } from '../async/awaitable.js';
import type { Principal } from '../auth/principal.js';
import { problem, type Problem } from '../errors/problems.js';
import type { RateLimitState } from '../errors/ratelimit.js';
import type { RequestView } from '../request/view.js';
import type { VerifyResult } from '../auth/jwt.js';
import { matchRoute } from '../routes/match.js';
import { ANSWER_HOLD_MS } from './hold.js';
import type { Allow, Decision, Deny, Identity, IssuedSession, MfaMethod, ReservedEndpoint } from './types.js';

/**
 * The one decision path shared by every front door (reverse proxy, WebSocket upgrade, forward-auth,
 * the middleware, and the gateway's own endpoints). Stages run in a fixed order and stop at the
 * first refusal:
 *
 *   match route ─► deny ─► rate limit ─► public ─► authenticate ─► rate limit ─► authorize ─► second factor
 *                          (key: ip)                  (JWT)         (key: subject) (scopes,
 *                                                                                   roles)
 *   404/403         403      429            allow     401 / 431      429            403          401/403/429/503
 *
 * The reserved prefix is matched first, by built-in routes (public setup page and forward-auth,
 * bearer for the MFA API), so a user route can neither shadow it nor forward it.
 * Matching and authorization are pure functions of the request view and the policy; the stages
 * that need I/O (JWT keys, the MFA store, the rate-limit store) are injected, and the policy and
 * `now` come from the caller, pinned for the whole request, so `explain` and tests reuse the rest.
 * Every answer after a rate-limit token was taken, allow or refusal, carries the quota it left
 * (`RateLimit` headers).
 */

export type SecondFactorResult =
  | {
      readonly ok: true;
      readonly method: MfaMethod;
      readonly mfaTime: number;
      readonly session?: IssuedSession;
      /** With `forCache`: until when (ms) the same credentials pass the same way; absent: never hold. */
      readonly holdUntil?: number;
    }
  | { readonly ok: false; readonly problem: Problem };

export interface BearerVerifier {
  verify(authorizationHeader: string): Awaitable<VerifyResult>;
}

/** What the second-factor stage is given: the request's own pinned policy and clock reading. */
export interface SecondFactorInput {
  readonly principal: Principal;
  readonly route: Route;
  readonly view: RequestView;
  readonly policy: GatewayPolicy;
  /** Milliseconds, read once when the request was admitted. */
  readonly now: number;
  /** The answer may be held by a cache in front: read sessions from the store and say how long they hold. */
  readonly forCache?: boolean;
}

export interface SecondFactorChecker {
  checkSecondFactor(input: SecondFactorInput): Awaitable<SecondFactorResult>;
}

/** The rate-limit stage's answer: whether a token was left, and the quota after taking it. */
export interface RateLimitVerdict {
  readonly allowed: boolean;
  readonly state: RateLimitState;
}

export interface RateLimitInput {
  readonly route: Route;
  readonly limit: RouteRateLimit;
  /** The client address (`key: ip`) or the bearer's subject (`key: subject`). */
  readonly partition: string;
  /** Milliseconds; the request's one clock reading. */
  readonly now: number;
}

export interface RateLimiter {
  /** Takes one token of the route's quota; undefined when the store could not answer (the limit is then skipped). */
  take(input: RateLimitInput): Promise<RateLimitVerdict | undefined>;
}

export interface DecisionDeps {
  readonly policy: GatewayPolicy;
  readonly bearer: BearerVerifier;
  /** Absent until an MFA store is configured: mfa/step_up routes then always challenge. */
  readonly secondFactor?: SecondFactorChecker;
  /** Absent (e.g. in `explain`): routes' `rate_limit` is not enforced. */
  readonly limiter?: RateLimiter;
  /** Milliseconds; one reading for the whole request. */
  readonly now: number;
  /**
   * Decide the reserved prefix as the gateway's own endpoints (default true). False for a request
   * rebuilt by forward-auth: it is the proxy's question about its own backend, decided by routes only.
   */
  readonly reserved?: boolean;
  /**
   * The answer may be held by a cache in front of the gateway (nginx auth_request): an allow then
   * carries `holdUntil`, and sessions are read from the store rather than this process's cache.
   */
  readonly forCache?: boolean;
}

/** Route selection, including the default-deny answer. Pure. */
export function selectRoute(policy: GatewayPolicy, view: Pick<RequestView, 'method' | 'host' | 'path'>): Route | Problem {
  return matchRoute(policy.routes, view.method, view.host, view.path) ?? problem('route_not_found', 'no route matches this request');
}

/** Scope and role checks against the route; the same on a token-cache hit as on a fresh verify. Pure. */
export function authorize(route: Route, principal: Principal): Problem | undefined {
  for (let i = 0; i < route.scopes.length; i++) {
    if (!principal.scopes.has(route.scopes[i]!)) return problem('insufficient_scope', 'the token lacks a scope this route requires', { scope: route.scopes.join(' ') });
  }
  if (route.roles.length > 0 && !route.roles.some((role) => principal.roles.has(role))) {
    return problem('forbidden', 'the token lacks a role this route requires');
  }
  return undefined;
}

/** The RFC 9470 max_age of a route's second-factor challenge, in seconds. */
export function challengeMaxAge(policy: GatewayPolicy, route: Route): number {
  const ms = route.policy === 'step_up' && route.maxAgeMs !== undefined ? route.maxAgeMs : policy.mfa.session.ttlMs;
  return Math.floor(ms / 1000);
}

/**
 * One frozen array per sealed scope set: verified tokens share interned FrozenSets
 * (src/auth/claims.ts), so every identity of the same scopes gets the same array, and the header
 * contract keeps its rendering (src/contract/headers.ts) instead of a Set spread per request. Any
 * other Set could still change, so it is spread afresh.
 */
const scopeLists = new WeakMap<ReadonlySet<string>, readonly string[]>();

function scopeList(scopes: ReadonlySet<string>): readonly string[] {
  let list = scopeLists.get(scopes);
  if (list === undefined) {
    list = Object.freeze([...scopes]);
    if (scopes instanceof FrozenSet) scopeLists.set(scopes, list);
  }
  return list;
}

function identityOf(principal: Principal, mfa: MfaMethod, mfaTime?: number): Identity {
  const scopes = scopeList(principal.scopes);
  return mfaTime === undefined ? { subject: principal.subject, scopes, mfa } : { subject: principal.subject, scopes, mfa, mfaTime };
}

function deny(problemValue: Problem, route?: Route): Deny {
  return route === undefined ? { kind: 'deny', problem: problemValue } : { kind: 'deny', route, problem: problemValue };
}

function builtInRoute(name: string, policy: 'public' | 'bearer'): Route {
  return Object.freeze({ index: -1, name, line: 0, match: Object.freeze({}), policy, scopes: Object.freeze([]), roles: Object.freeze([]), forwardAuthorization: false, websocket: false });
}

/** The reserved prefix's built-in routes; their names are the metric labels of the gateway's own answers. */
export const RESERVED_ROUTES = Object.freeze({
  forwardAuth: builtInRoute('(forward-auth)', 'public'),
  setup: builtInRoute('(setup)', 'public'),
  mfaApi: builtInRoute('(mfa-api)', 'bearer'),
});

const SETUP_FILES: ReadonlySet<string> = new Set(['setup', 'setup.js', 'webauthn-browser.js']);

/** Which reserved endpoint a path under the prefix names, and the built-in route that decides it. */
export function reservedEndpoint(policy: GatewayPolicy, view: Pick<RequestView, 'method' | 'path'>): { endpoint: ReservedEndpoint; route: Route } | undefined {
  const prefix = policy.mfa.pathPrefix;
  if (!view.path.startsWith(prefix)) return undefined;
  const subpath = view.path.slice(prefix.length);
  if (subpath.startsWith('authz/')) return { endpoint: { kind: 'forward-auth', subpath: subpath.slice('authz/'.length) }, route: RESERVED_ROUTES.forwardAuth };
  // The setup page and its two scripts are static; a browser loading them has no bearer (it never
  // needs one). `setup/…` are the page's sign-in and session endpoints: they check their own
  // credential (the setup session cookie, an invite, the issuer's callback), any method.
  if (SETUP_FILES.has(subpath) && view.method === 'GET') return { endpoint: { kind: 'setup', subpath }, route: RESERVED_ROUTES.setup };
  if (subpath.startsWith('setup/')) return { endpoint: { kind: 'setup', subpath }, route: RESERVED_ROUTES.setup };
  return { endpoint: { kind: 'mfa-api', subpath }, route: RESERVED_ROUTES.mfaApi };
}

/**
 * Every stage whose answer is in memory (a cached token, a cached session, no rate limit) answers
 * at once, so a request decided from memory is decided without a promise (src/async/awaitable.ts).
 */
export function decide(view: RequestView, deps: DecisionDeps): Awaitable<Decision> {
  const reserved = deps.reserved === false ? undefined : reservedEndpoint(deps.policy, view);
  if (reserved !== undefined) {
    const { endpoint, route } = reserved;
    if (route.policy === 'public') return { kind: 'allow', route, endpoint };
    return then(authenticate(view, deps.bearer, route), (authenticated): Decision => {
      if (authenticated.kind === 'deny') return authenticated;
      return { kind: 'allow', route, principal: authenticated.principal, identity: identityOf(authenticated.principal, 'none'), endpoint };
    });
  }

  const selected = selectRoute(deps.policy, view);
  if (!('policy' in selected)) return deny(selected);
  const route = selected;

  if (route.policy === 'deny') return deny(problem('forbidden', 'this route is closed by policy'), route);
  return decideRoute(view, deps, route);
}

/** The 429 of a used-up quota; Retry-After is the end of the window (never earlier, as the draft asks). */
function rateLimited(state: RateLimitState): Problem {
  return problem('rate_limited', "this route's request quota is used up; retry after the time given", { retryAfter: state.resetSeconds, rateLimit: state });
}

/** Attaches the quota left to an answer: the allow's headers, or the refusal's problem. */
function withQuota(decision: Decision, quota: RateLimitState | undefined): Decision {
  if (quota === undefined) return decision;
  return decision.kind === 'allow' ? { ...decision, rateLimit: quota } : { ...decision, problem: { ...decision.problem, rateLimit: quota } };
}

/** One token of the route's quota for `key`; undefined when the route has no limit or no limiter is injected. */
function takeToken(deps: DecisionDeps, route: Route, key: RouteRateLimit['key'], partition: string): Awaitable<RateLimitVerdict | undefined> {
  const limit = route.rateLimit;
  if (limit === undefined || limit.key !== key || deps.limiter === undefined) return undefined;
  return deps.limiter.take({ route, limit, partition, now: deps.now });
}

/** A user route that is not `deny`: rate limits around authentication, then the policy's checks. */
function decideRoute(view: RequestView, deps: DecisionDeps, route: Route): Awaitable<Decision> {
  // By address before authentication: a flood is turned away without a signature check.
  return then(takeToken(deps, route, 'ip', view.clientIp), (byAddress) => {
    if (byAddress?.allowed === false) return deny(rateLimited(byAddress.state), route);
    if (route.policy === 'public') return withQuota(held(deps, { kind: 'allow', route }, Infinity), byAddress?.state);

    return then(authenticate(view, deps.bearer, route), (authenticated) => {
      if (authenticated.kind === 'deny') return withQuota(authenticated, byAddress?.state);
      const principal = authenticated.principal;

      // By subject as soon as there is one: whatever the rest decides, the request counted.
      return then(takeToken(deps, route, 'subject', principal.subject), (bySubject) => {
        if (bySubject?.allowed === false) return deny(rateLimited(bySubject.state), route);
        return then(decideAuthenticated(view, deps, route, principal), (decision) => withQuota(decision, bySubject?.state ?? byAddress?.state));
      });
    });
  });
}

function decideAuthenticated(view: RequestView, deps: DecisionDeps, route: Route, principal: Principal): Awaitable<Decision> {
  const refused = authorize(route, principal);
  if (refused !== undefined) return deny(refused, route);

  const tokenExpiry = principal.expiresAt * 1000;
  if (route.policy === 'bearer') return held(deps, { kind: 'allow', route, principal, identity: identityOf(principal, 'none') }, tokenExpiry);

  if (deps.secondFactor === undefined) {
    const code = route.policy === 'step_up' ? 'step_up_required' : 'mfa_required';
    return deny(problem(code, 'a second factor is required for this route', { maxAge: challengeMaxAge(deps.policy, route) }), route);
  }
  const asked: SecondFactorInput = { principal, route, view, policy: deps.policy, now: deps.now };
  return then(deps.secondFactor.checkSecondFactor(deps.forCache === true ? { ...asked, forCache: true } : asked), (second) => {
    if (!second.ok) return deny(second.problem, route);
    const allowed: Allow = { kind: 'allow', route, principal, identity: identityOf(principal, second.method, second.mfaTime) };
    if (second.session !== undefined) return { ...allowed, session: second.session };
    return held(deps, allowed, second.holdUntil === undefined ? undefined : Math.min(second.holdUntil, tokenExpiry));
  });
}

/**
 * With `forCache`, the instant the allow stops holding: `until` (what the token and the second
 * factor allow), within the hold bound. Never on a rate-limited route, where every request must
 * take a token, nor when `until` is undefined (a code was spent: the next request is another).
 */
function held(deps: DecisionDeps, allow: Allow, until: number | undefined): Allow {
  if (deps.forCache !== true || until === undefined || allow.route.rateLimit !== undefined) return allow;
  return { ...allow, holdUntil: Math.min(until, deps.now + ANSWER_HOLD_MS) };
}

function authenticate(view: RequestView, bearer: BearerVerifier, route: Route): Awaitable<{ kind: 'ok'; principal: Principal } | Deny> {
  if (view.authorization === undefined) return deny(problem('invalid_token', 'a bearer token is required'), route);
  return then(bearer.verify(view.authorization), (verified) => (verified.ok ? { kind: 'ok', principal: verified.principal } : deny(verified.problem, route)));
}
