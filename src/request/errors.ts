/**
 * Configuration faults of the request layer (trust list, listener options). Thrown by factories at
 * creation, never per request: a request fault is a `CanonicalResult` value, not an exception.
 */
import { OptionError } from '../errors/gateway-error.js';

/** A bad option; `option` names it (e.g. `trusted_proxies[2]`, `limits.maxHeaderBytes`). */
export class RequestConfigError extends OptionError<'ERR_REQUEST_INVALID_OPTION'> {
  static override readonly codes = ['ERR_REQUEST_INVALID_OPTION'] as const;
}
