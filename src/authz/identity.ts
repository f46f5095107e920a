import type { Identity } from '../decision/types.js';

/** The verified-identity headers (DESIGN §3), lower-case, as the forward-auth answer and the guard set them. */
export function identityHeaders(identity: Identity | undefined, requestId: string): Record<string, string> {
  const headers: Record<string, string> = {};
  if (identity !== undefined) {
    headers['x-auth-subject'] = identity.subject;
    headers['x-auth-scopes'] = identity.scopes.join(' ');
    headers['x-auth-mfa'] = identity.mfa;
    if (identity.mfaTime !== undefined) headers['x-auth-mfa-time'] = String(identity.mfaTime);
  }
  headers['x-request-id'] = requestId;
  return headers;
}

const IDENTITY_NAME = /^x[-_.]auth[-_.]/i;

/**
 * True for any spelling of a client-sent identity header: `X-Auth-Subject`, `x_auth_subject`,
 * `x.auth.subject`, in any case and any mix of separators.
 */
export function isIdentityHeaderName(name: string): boolean {
  return IDENTITY_NAME.test(name);
}
