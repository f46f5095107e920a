/**
 * A route as the gateway uses it: compiled from the policy file's `routes:` (routes/compile.ts),
 * matched on every request (routes/match.ts), printed by `check` (routes/table.ts).
 */
import type { FactorMethod } from './factor-methods.js';
import type { PathRegex } from './path-regex.js';

export type PolicyName = 'public' | 'bearer' | 'mfa' | 'step_up' | 'deny';

export interface RouteMatch {
  /** Lower-cased, no trailing dot, no default port. */
  readonly host?: string;
  readonly path?: string;
  /** Ends with '/', or matches on a segment boundary. */
  readonly pathPrefix?: string;
  /** Matches the whole path (as ^(?:…)$ would), in time linear in its length. */
  readonly pathRegex?: PathRegex;
  /** Upper-case; undefined means any method. */
  readonly methods?: ReadonlySet<string>;
  /**
   * Compare the path ignoring case, for backends that route that way (Express by default, IIS):
   * `path`/`pathPrefix` are stored lower-case and compared with the lower-cased request path, and
   * `pathRegex` sees the lower-cased path.
   */
  readonly caseInsensitive?: true;
}

/** A route's own request quota (`rate_limit:`), answered 429 `rate_limited` once used up. */
export interface RouteRateLimit {
  /** Requests allowed per window. */
  readonly requests: number;
  /** The window, in milliseconds (whole seconds: RateLimit-Policy's `w` has no fractions). */
  readonly perMs: number;
  /**
   * What is counted: `ip`, the client address (an IPv6 /64), checked before authentication so a
   * flood costs no token verification; `subject`, the bearer's `sub`, checked right after it.
   */
  readonly key: 'ip' | 'subject';
}

export interface Route {
  /** Position in the file, 0-based; first match wins. */
  readonly index: number;
  /** `name:` if given, else `route_<index>`. Bounded: used as a metric label. */
  readonly name: string;
  /** 1-based line of the route in the policy file, for messages. */
  readonly line: number;
  readonly match: RouteMatch;
  readonly policy: PolicyName;
  readonly upstream?: string;
  /** step_up only: how old the last second factor may be. */
  readonly maxAgeMs?: number;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  readonly forwardAuthorization: boolean;
  /** Allow WebSocket upgrades on this route (decided first, then tunnelled). */
  readonly websocket: boolean;
  readonly rateLimit?: RouteRateLimit;
  /**
   * mfa / step_up only, from the route's own `methods:` (not `match.methods`, which are HTTP
   * methods): the second-factor methods that satisfy it. Undefined: any.
   */
  readonly mfaMethods?: readonly FactorMethod[];
}

/** The rules in match order and what happens when none matches (a GatewayPolicy is one). */
export interface RouteTable {
  readonly routes: readonly Route[];
  readonly default: 'deny';
}
