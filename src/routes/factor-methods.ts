/**
 * The second-factor methods, by the names the policy file, the session store and the backend's
 * `X-Auth-MFA` header use. The one list of them: a route's `methods:` is checked against it, the
 * decision types derive from it, and a new kind of factor is added here.
 *
 * Not to be confused with `match.methods`, which lists HTTP methods (GET, POST…): a route's own
 * `methods:` says which second factors satisfy it.
 */
export const FACTOR_METHODS = ['totp', 'hotp', 'recovery', 'webauthn', 'email', 'sms', 'idp'] as const;

export type FactorMethod = (typeof FACTOR_METHODS)[number];

/** The methods whose proof arrives as a code in X-MFA-Token. */
export const CODE_METHODS: readonly FactorMethod[] = ['totp', 'hotp', 'email', 'sms', 'recovery'];

export function isFactorMethod(name: unknown): name is FactorMethod {
  return typeof name === 'string' && (FACTOR_METHODS as readonly string[]).includes(name);
}
