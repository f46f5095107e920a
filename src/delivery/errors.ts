import { GatewayError } from '../errors/gateway-error.js';

const CODES = [
  // A code could not be handed to the SMTP server or the SMS provider. The message says why in
  // words of our own (never the destination, the code or a provider's text, which may quote either).
  'ERR_DELIVERY_FAILED',
] as const;

export type DeliveryErrorCode = (typeof CODES)[number];

export class DeliveryError extends GatewayError<DeliveryErrorCode> {
  static override readonly codes = CODES;
}

/** A transport failure as a DeliveryError: its errno-style code at most, never its message. */
export function deliveryFailure(what: string, error: unknown): DeliveryError {
  if (DeliveryError.is(error)) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const name = (error as { name?: unknown } | null)?.name;
  const shown = typeof code === 'string' && /^[A-Z][A-Z0-9_]{1,40}$/.test(code) ? code : name === 'TimeoutError' || name === 'AbortError' ? 'timeout' : 'error';
  return new DeliveryError('ERR_DELIVERY_FAILED', `${what} failed (${shown})`);
}
