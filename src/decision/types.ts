import type { Route } from '../config/types.js';
import type { Problem } from '../errors/problems.js';

export type MfaMethod = 'totp' | 'hotp' | 'recovery' | 'webauthn' | 'idp' | 'none';

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
}

export type Decision =
  | { readonly kind: 'allow'; readonly route: Route; readonly identity?: Identity; readonly session?: IssuedSession }
  | { readonly kind: 'deny'; readonly route?: Route; readonly problem: Problem };
