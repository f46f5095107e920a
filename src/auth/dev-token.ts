import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { AuthConfigError } from './errors.js';
import { MAX_SUBJECT_LENGTH } from './claims.js';
import { loadHmacSecret } from './keys.js';

export interface DevTokenOptions {
  /** The demo issuer's `hmac_secret` (at least 32 bytes). */
  readonly secret: string;
  readonly issuer: string;
  readonly audience: string;
  readonly subject: string;
  /** Written as the space-separated `scope` claim (the default scope claim). */
  readonly scopes?: readonly string[];
  /** Written as the `roles` array (the default roles claim). */
  readonly roles?: readonly string[];
  /** Lifetime in seconds; default 3600. */
  readonly ttlSeconds?: number;
  readonly amr?: readonly string[];
  /** Unix seconds of the IdP's authentication, as `auth_time`. */
  readonly authTime?: number;
  /** Issue time in epoch milliseconds (a Clock reading); default Date.now(). */
  readonly now?: number;
}

export const DEFAULT_DEV_TOKEN_TTL_SECONDS = 3600;

function stringList(value: readonly string[] | undefined, option: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string' && item !== '')) {
    throw new AuthConfigError(option, 'must be a list of non-empty strings');
  }
  return [...value];
}

/**
 * An HS256 token from the demo issuer, for `mfa-gateway dev-token` and tests. Never for production
 * issuers: anyone holding the shared secret can mint any identity.
 */
export async function issueDevToken(options: DevTokenOptions): Promise<string> {
  const secret = loadHmacSecret(options.secret);
  for (const [option, value] of [['issuer', options.issuer], ['audience', options.audience], ['subject', options.subject]] as const) {
    if (typeof value !== 'string' || value === '') throw new AuthConfigError(option, 'must be a non-empty string');
  }
  if (options.subject.length > MAX_SUBJECT_LENGTH) throw new AuthConfigError('subject', `must be at most ${MAX_SUBJECT_LENGTH} characters`);
  const scopes = stringList(options.scopes, 'scopes');
  if (scopes.some((scope) => scope.includes(' '))) throw new AuthConfigError('scopes', 'a scope cannot contain a space');
  const roles = stringList(options.roles, 'roles');
  const amr = options.amr === undefined ? undefined : stringList(options.amr, 'amr');
  const ttl = options.ttlSeconds ?? DEFAULT_DEV_TOKEN_TTL_SECONDS;
  if (!Number.isInteger(ttl) || ttl <= 0) throw new AuthConfigError('ttlSeconds', 'must be a positive integer');
  const nowMs = options.now ?? Date.now();
  if (!Number.isFinite(nowMs)) throw new AuthConfigError('now', 'must be epoch milliseconds');
  if (options.authTime !== undefined && (!Number.isFinite(options.authTime) || options.authTime < 0)) {
    throw new AuthConfigError('authTime', 'must be unix seconds');
  }

  const iat = Math.floor(nowMs / 1000);
  const claims: Record<string, unknown> = {};
  if (scopes.length > 0) claims.scope = scopes.join(' ');
  if (roles.length > 0) claims.roles = roles;
  if (amr !== undefined) claims.amr = amr;
  if (options.authTime !== undefined) claims.auth_time = Math.floor(options.authTime);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(options.issuer)
    .setAudience(options.audience)
    .setSubject(options.subject)
    .setIssuedAt(iat)
    .setExpirationTime(iat + ttl)
    .setJti(randomUUID())
    .sign(secret);
}
