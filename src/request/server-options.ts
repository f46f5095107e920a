import type { ServerOptions } from 'node:http';
import { RequestConfigError } from './errors.js';

export interface PublicListenerLimits {
  /** Total bytes of the request line plus headers; past it Node answers 431 itself. */
  readonly maxHeaderBytes: number;
  /** Time allowed to receive the complete header block (default 10 s). */
  readonly headersTimeoutMs?: number;
  /** Time allowed to receive the complete request, body included (default 60 s). */
  readonly requestTimeoutMs?: number;
  /** How long an idle keep-alive connection is kept open (default 65 s). */
  readonly keepAliveTimeoutMs?: number;
}

const MIN_HEADER_BYTES = 1024;
const MAX_HEADER_BYTES = 1024 * 1024;

function positiveInt(option: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RequestConfigError(option, `must be an integer between ${min} and ${max}`);
  }
  return value;
}

/**
 * Options for the PUBLIC listener (`http.createServer(publicServerOptions(limits), handler)`).
 * Node's parser is the first line of defence against request smuggling; these settings keep it
 * strict so that `canonicalizeRequest` only has to cover what llhttp lets through.
 */
export function publicServerOptions(limits: PublicListenerLimits): ServerOptions {
  const maxHeaderSize = positiveInt('limits.maxHeaderBytes', limits.maxHeaderBytes, MIN_HEADER_BYTES, MAX_HEADER_BYTES);
  const headersTimeout = positiveInt('limits.headersTimeoutMs', limits.headersTimeoutMs ?? 10_000, 1, 600_000);
  const requestTimeout = positiveInt('limits.requestTimeoutMs', limits.requestTimeoutMs ?? 60_000, 1, 3_600_000);
  const keepAliveTimeout = positiveInt('limits.keepAliveTimeoutMs', limits.keepAliveTimeoutMs ?? 65_000, 1, 600_000);
  // Node itself throws at createServer when the header deadline is past the request deadline.
  if (headersTimeout > requestTimeout) {
    throw new RequestConfigError('limits.headersTimeoutMs', 'must not exceed limits.requestTimeoutMs');
  }
  return {
    // Bounds memory per connection and the size of every header we scan; Node answers 431 past it.
    maxHeaderSize,
    // Lenient parsing (bare LF, obs-fold, bad header bytes) is where smuggling starts: never.
    insecureHTTPParser: false,
    // Keep each duplicate line separate so duplicates stay visible instead of being merged into one value.
    joinDuplicateHeaders: false,
    // HTTP/1.1 without Host gets Node's 400 before our handler: no request without an authority.
    requireHostHeader: true,
    // Slowloris: the whole header block must arrive within this deadline (408 otherwise).
    headersTimeout,
    // A client may not hold a request open forever while trickling its body.
    requestTimeout,
    // Just above the 60 s idle timeout common to load balancers, so they close first and never
    // reuse a socket we are closing at the same moment.
    keepAliveTimeout,
    // The timeouts above are only enforced on this tick; keep it fine enough to be meaningful.
    connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(headersTimeout / 4))),
    // Small responses (401/403 challenges) must not wait for Nagle.
    noDelay: true,
  };
}
