/**
 * Configuration faults of the request layer (trust list, listener options). Thrown by factories at
 * creation, never per request: a request fault is a `CanonicalResult` value, not an exception.
 */

const REQUEST_CONFIG_ERROR = Symbol.for('mfa-gateway.RequestConfigError');

/** A bad option; `option` names it (e.g. `trusted_proxies[2]`, `limits.maxHeaderBytes`). */
export class RequestConfigError extends Error {
  readonly code = 'ERR_REQUEST_CONFIG';
  readonly option: string;
  readonly [REQUEST_CONFIG_ERROR] = true;

  constructor(option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = 'RequestConfigError';
    this.option = option;
  }

  /** Works across copies of the package, where `instanceof` would not. */
  static is(value: unknown): value is RequestConfigError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[REQUEST_CONFIG_ERROR] === true;
  }
}
