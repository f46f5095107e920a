/**
 * The MFA session the gateway hands back: `X-Session-Token` + `X-Session-Expires` on the answer to a
 * request that carried a good code, or `{session_token, expires_at}` from `/.mfa/verify` and
 * `/.mfa/session/refresh`. Only well-formed values are kept; anything else is ignored, never half-used.
 */

export interface MfaSession {
  readonly token: string;
  /** Unix seconds, as the gateway states it. */
  readonly expiresAt: number;
}

// A header value the client can send back as is: visible ASCII, bounded.
const SENDABLE = /^[\x21-\x7e]{1,1024}$/;
const UNIX_SECONDS = /^\d{1,12}$/;

export function sessionFrom(token: unknown, expiresAt: unknown): MfaSession | undefined {
  if (typeof token !== 'string' || !SENDABLE.test(token)) return undefined;
  const seconds = typeof expiresAt === 'number' ? expiresAt : typeof expiresAt === 'string' && UNIX_SECONDS.test(expiresAt) ? Number(expiresAt) : NaN;
  if (!Number.isSafeInteger(seconds) || seconds <= 0) return undefined;
  return Object.freeze({ token, expiresAt: seconds });
}

/** The session an answer carries in its headers, if any. */
export function sessionFromHeaders(headers: Headers): MfaSession | undefined {
  return sessionFrom(headers.get('x-session-token') ?? undefined, headers.get('x-session-expires') ?? undefined);
}

/** Whether `value` is a token or code that can go in a header: visible ASCII, no spaces, bounded. */
export function isSendable(value: unknown, maxLength: number): value is string {
  return typeof value === 'string' && value.length <= maxLength && SENDABLE.test(value);
}
