import type { Principal } from '../auth/principal.js';
import type { Route } from '../config/types.js';
import type { Problem } from '../errors/problems.js';
import type { RateLimitState } from '../errors/ratelimit.js';
import type { FactorMethod } from '../routes/factor-methods.js';

/** The second factor that satisfied a request (routes/factor-methods.ts lists them), or none. */
export type MfaMethod = FactorMethod | 'none';

/** What the backend is told about the caller (becomes X-Auth-* headers). */
export interface Identity {
  readonly subject: string;
  readonly scopes: readonly string[];
  readonly mfa: MfaMethod;
  /** Unix seconds of the last second-factor check; undefined when none applies. */
  readonly mfaTime?: number;
}

/** A session minted because a code was verified on this request: returned to the client only. */
export interface IssuedSession {
  readonly token: string;
  /** Unix seconds. */
  readonly expiresAt: number;
  /** Set when a recovery code opened it: how many the user has left. */
  readonly recoveryCodesRemaining?: number;
  /** With two or fewer left: the suggestion to generate a new set. */
  readonly recoveryCodesHint?: string;
}

/**
 * The gateway's own endpoints under the reserved prefix (`/.mfa/` by default), decided like any
 * route: `forward-auth` and `setup` are public (the forward-auth door checks its peer itself),
 * everything else needs a valid bearer. `subpath` is what follows the prefix.
 */
export type ReservedEndpoint =
  | { readonly kind: 'forward-auth'; readonly subpath: string }
  | { readonly kind: 'setup'; readonly subpath: string }
  | { readonly kind: 'mfa-api'; readonly subpath: string };

export interface Allow {
  readonly kind: 'allow';
  readonly route: Route;
  readonly identity?: Identity;
  /** The verified bearer, on every route that authenticates. */
  readonly principal?: Principal;
  readonly session?: IssuedSession;
  /** The route's quota after this request, on rate-limited routes: `RateLimit` headers to the client. */
  readonly rateLimit?: RateLimitState;
  /** Set when the request is for the gateway itself: served, never forwarded. */
  readonly endpoint?: ReservedEndpoint;
  /** Asked with `forCache`: until when (ms) a cache in front may hold this allow (src/decision/hold.ts). */
  readonly holdUntil?: number;
}

export interface Deny {
  readonly kind: 'deny';
  readonly route?: Route;
  readonly problem: Problem;
}

export type Decision = Allow | Deny;
