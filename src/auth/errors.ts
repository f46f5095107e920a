/**
 * Errors of the auth module. Configuration faults are exceptions thrown by factories at creation
 * (never per request); token faults are `Problem` values, never exceptions.
 */
import { OptionError } from '../errors/gateway-error.js';

/** A bad option given to an auth factory; `option` names it (e.g. `auth.jwt.algorithms`). */
export class AuthConfigError extends OptionError<'ERR_AUTH_INVALID_OPTION'> {
  static override readonly codes = ['ERR_AUTH_INVALID_OPTION'] as const;
}

/**
 * The only details a token refusal ever carries: stable, generic, and free of the token. They name
 * a category a legitimate client can act on (refresh, fix its clock, ask for the right audience),
 * never the exact check that failed.
 */
export const TOKEN_DETAIL = Object.freeze({
  header: 'the Authorization header must be "Bearer" followed by one space and one token',
  tooLarge: 'the bearer token is larger than this gateway accepts',
  format: 'token signature or format invalid',
  expired: 'token expired',
  notYetValid: 'token not yet valid',
  issuerAudience: 'token issuer or audience not accepted',
  claims: 'token claims invalid',
});
