import { rateLimitFields, type RateLimitState } from './ratelimit.js';

/**
 * The one table of deny reasons: every problem the gateway answers with is a row here, and
 * `docs/errors.md` documents each code (a test checks that they agree).
 */

export type ProblemCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'mfa_required'
  | 'mfa_invalid'
  | 'step_up_required'
  | 'mfa_locked'
  | 'rate_limited'
  | 'mfa_not_enrolled'
  | 'mfa_method_not_accepted'
  | 'factor_expired'
  | 'session_invalid'
  | 'forbidden'
  | 'route_not_found'
  | 'header_too_large'
  | 'method_not_allowed'
  | 'not_found'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'delivery_failed'
  | 'overloaded'
  | 'store_unavailable'
  | 'internal_error';

interface ProblemKind {
  readonly status: number;
  readonly title: string;
  /** Which RFC 6750 / RFC 9470 `error` the WWW-Authenticate challenge carries, if any. */
  readonly bearerError?: 'invalid_request' | 'invalid_token' | 'insufficient_scope' | 'insufficient_user_authentication';
}

export const PROBLEMS: Readonly<Record<ProblemCode, ProblemKind>> = Object.freeze({
  invalid_request: { status: 400, title: 'Bad request' },
  invalid_token: { status: 401, title: 'Invalid bearer token', bearerError: 'invalid_token' },
  insufficient_scope: { status: 403, title: 'Insufficient scope', bearerError: 'insufficient_scope' },
  mfa_required: { status: 401, title: 'Second factor required', bearerError: 'insufficient_user_authentication' },
  mfa_invalid: { status: 401, title: 'Second factor rejected', bearerError: 'insufficient_user_authentication' },
  step_up_required: { status: 401, title: 'Fresh second factor required', bearerError: 'insufficient_user_authentication' },
  mfa_locked: { status: 429, title: 'Second factor locked' },
  rate_limited: { status: 429, title: 'Too many requests' },
  mfa_not_enrolled: { status: 403, title: 'No second factor enrolled' },
  mfa_method_not_accepted: { status: 401, title: 'Second factor method not accepted here', bearerError: 'insufficient_user_authentication' },
  factor_expired: { status: 403, title: 'Second factor past its lifetime' },
  session_invalid: { status: 401, title: 'MFA session invalid', bearerError: 'insufficient_user_authentication' },
  forbidden: { status: 403, title: 'Forbidden' },
  route_not_found: { status: 404, title: 'No route' },
  header_too_large: { status: 431, title: 'Request header fields too large' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  not_found: { status: 404, title: 'Not found' },
  upstream_unavailable: { status: 502, title: 'Upstream unavailable' },
  upstream_timeout: { status: 504, title: 'Upstream timeout' },
  delivery_failed: { status: 502, title: 'Code delivery failed' },
  overloaded: { status: 503, title: 'Overloaded' },
  store_unavailable: { status: 503, title: 'Store unavailable' },
  internal_error: { status: 500, title: 'Internal error' },
});

export const PROBLEM_TYPE_BASE = 'https://mfa-gateway.dev/problems/';

/** A decided refusal: data, not an exception. Front doors turn it into a response. */
export interface Problem {
  readonly code: ProblemCode;
  /** Safe for the client: never a secret, a code, a token, or which half of a credential failed. */
  readonly detail: string;
  readonly hint?: string;
  /** insufficient_scope: the scopes the route needs. */
  readonly scope?: string;
  /** RFC 9470 max_age in seconds for second-factor challenges. */
  readonly maxAge?: number;
  /**
   * The second-factor methods the route accepts, when it restricts them (a route's `methods:`):
   * `methods` in the body and `mfa_methods="…"` in the RFC 9470 challenge.
   */
  readonly methods?: readonly string[];
  /** mfa_locked / rate_limited / overloaded / store_unavailable: seconds until a retry may succeed. */
  readonly retryAfter?: number;
  /**
   * The route's quota, on every answer of a rate-limited route (rate_limited, and refusals after
   * the token was taken): sent as `RateLimit` / `RateLimit-Policy`.
   */
  readonly rateLimit?: RateLimitState;
}

export function problem(code: ProblemCode, detail: string, extra: Omit<Problem, 'code' | 'detail'> = {}): Problem {
  return { code, detail, ...extra };
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: ProblemCode;
  hint?: string;
  methods?: string[];
  request_id?: string;
}

export interface RenderedProblem {
  status: number;
  headers: Record<string, string>;
  body: string;
}

function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&').replace(/[\r\n]/g, ' ')}"`;
}

export function wwwAuthenticate(p: Problem): string | undefined {
  const bearerError = PROBLEMS[p.code].bearerError;
  if (bearerError === undefined) return undefined;
  const parts = [`error=${quote(bearerError)}`];
  if (bearerError === 'insufficient_scope' && p.scope !== undefined) parts.push(`scope=${quote(p.scope)}`);
  parts.push(`error_description=${quote(p.detail)}`);
  if (bearerError === 'insufficient_user_authentication' && p.maxAge !== undefined) parts.push(`max_age=${p.maxAge}`);
  // An auth-param of our own (RFC 9110 §11.2 allows them): which second factors would do.
  if (bearerError === 'insufficient_user_authentication' && p.methods !== undefined) parts.push(`mfa_methods=${quote(p.methods.join(' '))}`);
  return `Bearer ${parts.join(', ')}`;
}

/** Status, headers and JSON body of a problem; the same for every front door. */
export function renderProblem(p: Problem, requestId?: string): RenderedProblem {
  const kind = PROBLEMS[p.code];
  const body: ProblemBody = {
    type: PROBLEM_TYPE_BASE + p.code,
    title: kind.title,
    status: kind.status,
    detail: p.detail,
    code: p.code,
  };
  if (p.hint !== undefined) body.hint = p.hint;
  if (p.methods !== undefined) body.methods = [...p.methods];
  if (requestId !== undefined) body.request_id = requestId;
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
  };
  const challenge = wwwAuthenticate(p);
  if (challenge !== undefined) headers['www-authenticate'] = challenge;
  if (p.retryAfter !== undefined) headers['retry-after'] = String(Math.max(1, Math.ceil(p.retryAfter)));
  if (p.rateLimit !== undefined) Object.assign(headers, rateLimitFields(p.rateLimit));
  return { status: kind.status, headers, body: JSON.stringify(body) };
}
