/**
 * The `RateLimit-Policy` and `RateLimit` response fields of draft-ietf-httpapi-ratelimit-headers-11
 * (May 2026; the syntax is unchanged since -08): each a Structured Field List (RFC 9651) of Items
 * whose value is a String naming the quota policy, with Integer parameters.
 *
 *   RateLimit-Policy: "orders-write";q=100;w=60     quota q per window of w seconds
 *   RateLimit: "orders-write";r=0;t=12              r left, for the next t seconds
 *
 * One policy per limited route, named after the route, so a client can tell two routes' quotas
 * apart. No `pk` (partition key) is sent: for `key: ip` it would echo the address, and the draft
 * (§6.1) asks servers not to return keys holding identifying information.
 */

/** Where a request stands with its route's quota, as both fields describe it. */
export interface RateLimitState {
  /** The policy's name: the route's. */
  readonly policy: string;
  /** `q`: requests per window. */
  readonly quota: number;
  /** `w`: the window, in whole seconds. */
  readonly windowSeconds: number;
  /** `r`: requests left in the current window after this one. */
  readonly remaining: number;
  /** `t`: seconds until the current window ends (at least 1 while it runs). */
  readonly resetSeconds: number;
}

export const RATELIMIT_FIELD = 'ratelimit';
export const RATELIMIT_POLICY_FIELD = 'ratelimit-policy';

/** An sf-string (RFC 9651 §4.1.6): printable ASCII only, `"` and `\` escaped. */
function sfString(value: string): string {
  return `"${value.replace(/[^\x20-\x7e]/g, '?').replace(/["\\]/g, '\\$&')}"`;
}

/** An sf-integer: a non-negative whole number (the draft's r, t, q and w are never negative). */
function sfInteger(value: number): number {
  return Math.max(0, Math.floor(value));
}

/** The two field values, keyed by lower-cased field name. */
export function rateLimitFields(state: RateLimitState): Readonly<Record<typeof RATELIMIT_FIELD | typeof RATELIMIT_POLICY_FIELD, string>> {
  const name = sfString(state.policy);
  return {
    [RATELIMIT_POLICY_FIELD]: `${name};q=${sfInteger(state.quota)};w=${sfInteger(state.windowSeconds)}`,
    [RATELIMIT_FIELD]: `${name};r=${sfInteger(state.remaining)};t=${sfInteger(state.resetSeconds)}`,
  };
}
