/**
 * Errors of the MFA layer that are programming or configuration mistakes (bad factory options,
 * bad enrollment input). Refusals of a request are `Problem` values, never exceptions.
 */
import { GatewayError } from '../errors/gateway-error.js';

const CODES = [
  // A factory or function was called with a bad option; the message names it.
  'ERR_MFA_INVALID_OPTION',
  // Input from an operator (CLI) or a client that cannot be used, e.g. a short HOTP secret.
  'ERR_MFA_INVALID_INPUT',
] as const;

export type MfaErrorCode = (typeof CODES)[number];

export class MfaError extends GatewayError<MfaErrorCode> {
  static override readonly codes = CODES;
}
