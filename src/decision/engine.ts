import type { GatewayPolicy, Route } from '../config/types.js';
import type { Principal } from '../auth/principal.js';
import { problem, type Problem } from '../errors/problems.js';
import type { RequestView } from '../request/view.js';
import type { VerifyResult } from '../auth/jwt.js';
import { matchRoute } from '../routes/match.js';
import type { Decision, Identity, IssuedSession, MfaMethod } from './types.js';

/**
 * The one decision path shared by the reverse proxy, the forward-auth endpoints and the Node
 * middleware. Stages run in a fixed order and stop at the first refusal:
 *
 *   match route ─► policy deny/public ─► authenticate (JWT) ─► authorize (scopes, roles) ─► second factor
 *   404/403         403 / allow            401 / 431              403                          401 / 403 / 429
 *
 * Matching and authorization are pure functions of the request view and the policy; the two
 * stages that need I/O (JWT keys, the MFA store) are injected, so `explain` and tests reuse the rest.
 */

export type SecondFactorResult =
  | { readonly ok: true; readonly method: MfaMethod; readonly mfaTime: number; readonly session?: IssuedSession }
  | { readonly ok: false; readonly problem: Problem };

export interface BearerVerifier {
  verify(authorizationHeader: string): Promise<VerifyResult>;
}

export interface SecondFactorChecker {
  checkSecondFactor(input: { principal: Principal; route: Route; view: RequestView }): Promise<SecondFactorResult>;
}

export interface DecisionDeps {
  readonly policy: GatewayPolicy;
  readonly bearer: BearerVerifier;
  /** Absent until an MFA store is configured: mfa/step_up routes then always challenge. */
  readonly secondFactor?: SecondFactorChecker;
}

/** Route selection, including the default-deny answer. Pure. */
export function selectRoute(policy: GatewayPolicy, view: Pick<RequestView, 'method' | 'host' | 'path'>): Route | Problem {
  return matchRoute(policy.routes, view.method, view.host, view.path) ?? problem('route_not_found', 'no route matches this request');
}

/** Scope and role checks against the route; the same on a token-cache hit as on a fresh verify. Pure. */
export function authorize(route: Route, principal: Principal): Problem | undefined {
  const missingScopes = route.scopes.filter((scope) => !principal.scopes.has(scope));
  if (missingScopes.length > 0) {
    return problem('insufficient_scope', 'the token lacks a scope this route requires', { scope: route.scopes.join(' ') });
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

function identityOf(principal: Principal, mfa: MfaMethod, mfaTime?: number): Identity {
  return mfaTime === undefined
    ? { subject: principal.subject, scopes: [...principal.scopes], mfa }
    : { subject: principal.subject, scopes: [...principal.scopes], mfa, mfaTime };
}

function deny(problemValue: Problem, route?: Route): Decision {
  return route === undefined ? { kind: 'deny', problem: problemValue } : { kind: 'deny', route, problem: problemValue };
}

export async function decide(view: RequestView, deps: DecisionDeps): Promise<Decision> {
  const selected = selectRoute(deps.policy, view);
  if (!('policy' in selected)) return deny(selected);
  const route = selected;

  if (route.policy === 'deny') return deny(problem('forbidden', 'this route is closed by policy'), route);
  if (route.policy === 'public') return { kind: 'allow', route };

  if (view.authorization === undefined) {
    return deny(problem('invalid_token', 'a bearer token is required'), route);
  }
  const verified = await deps.bearer.verify(view.authorization);
  if (!verified.ok) return deny(verified.problem, route);
  const principal = verified.principal;

  const refused = authorize(route, principal);
  if (refused !== undefined) return deny(refused, route);

  if (route.policy === 'bearer') return { kind: 'allow', route, identity: identityOf(principal, 'none') };

  if (deps.secondFactor === undefined) {
    const code = route.policy === 'step_up' ? 'step_up_required' : 'mfa_required';
    return deny(problem(code, 'a second factor is required for this route', { maxAge: challengeMaxAge(deps.policy, route) }), route);
  }
  const second = await deps.secondFactor.checkSecondFactor({ principal, route, view });
  if (!second.ok) return deny(second.problem, route);
  const identity = identityOf(principal, second.method, second.mfaTime);
  return second.session === undefined
    ? { kind: 'allow', route, identity }
    : { kind: 'allow', route, identity, session: second.session };
}
