/**
 * Errors of the MFA layer that are programming or configuration mistakes (bad factory options,
 * bad enrollment input). Refusals of a request are `Problem` values, never exceptions.
 */
export type MfaErrorCode =
  /** A factory or function was called with a bad option; the message names it. */
  | 'invalid_option'
  /** Input from an operator (CLI) or a client that cannot be used, e.g. a short HOTP secret. */
  | 'invalid_input';

const BRAND = Symbol.for('mfa-gateway.MfaError');

export class MfaError extends Error {
  override readonly name = 'MfaError';
  readonly code: MfaErrorCode;
  readonly [BRAND] = true;

  constructor(code: MfaErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  /** Works across copies of the package, unlike `instanceof`. */
  static is(value: unknown): value is MfaError {
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }
}
