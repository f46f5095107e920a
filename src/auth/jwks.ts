import { createLocalJWKSet, type JSONWebKeySet, type JWK, type LocalJWKSet } from 'jose';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Clock } from '../time/clock.js';
import { AuthConfigError } from './errors.js';

/** Backoff between attempts while the issuer fails: 1 s, 2 s, 4 s, … capped at 5 min. */
export const JWKS_BACKOFF_INITIAL_MS = 1_000;
export const JWKS_BACKOFF_MAX_MS = 5 * 60_000;
/** A key set is a few KiB; anything this large is not one, and is not read further. */
export const JWKS_MAX_BYTES = 512 * 1024;

export interface JwksCacheOptions {
  readonly uri: string;
  readonly timeoutMs: number;
  readonly cooldownMs: number;
  readonly cacheMaxAgeMs: number;
  readonly clock: Clock;
  readonly fetch: typeof fetch;
  readonly metrics?: Metrics;
  readonly logger?: Logger;
}

export interface JwksCache {
  /**
   * The last good key set; fetches one (and waits) only when none was ever fetched. A stale set
   * starts a refresh in the background and is still returned: an issuer outage never stops
   * tokens signed with known keys.
   */
  current(): Promise<LocalJWKSet | undefined>;
  /**
   * For a `kid` that `tried` lacks: a newer set if there is one or a refetch was allowed (at most
   * one fetch per cooldown, none during backoff; a fetch already in flight is shared), else undefined.
   */
  refetchForUnknownKid(tried: LocalJWKSet): Promise<LocalJWKSet | undefined>;
  /** Resolves when no fetch is in flight. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

export function backoffDelay(failures: number): number {
  return Math.min(JWKS_BACKOFF_INITIAL_MS * 2 ** Math.max(0, failures - 1), JWKS_BACKOFF_MAX_MS);
}

function positive(value: unknown, option: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new AuthConfigError(option, 'must be a positive number of milliseconds');
  return value;
}

/** Only public signature keys of asymmetric types: an `oct` key in a JWKS would be a shared secret in public. */
function usableKeys(body: unknown): JWK[] {
  if (typeof body !== 'object' || body === null || !Array.isArray((body as { keys?: unknown }).keys)) {
    throw new Error('response is not a JSON Web Key Set');
  }
  const keys = (body as { keys: unknown[] }).keys.filter((key): key is JWK => {
    if (typeof key !== 'object' || key === null) return false;
    const jwk = key as Record<string, unknown>;
    return (jwk.kty === 'RSA' || jwk.kty === 'EC' || jwk.kty === 'OKP') && !('d' in jwk) && (jwk.use === undefined || jwk.use === 'sig');
  });
  if (keys.length === 0) throw new Error('key set holds no usable signature key');
  return keys;
}

async function readCapped(response: Response): Promise<string> {
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > JWKS_MAX_BYTES) throw new Error('response too large');
  if (response.body === null) return '';
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > JWKS_MAX_BYTES) {
      await reader.cancel();
      throw new Error('response too large');
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Where to fetch from, as logs may show it: no userinfo, no query. */
function loggable(uri: URL): string {
  return `${uri.protocol}//${uri.host}${uri.pathname}`;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return 'unknown error';
  if (error.name === 'TimeoutError') return 'timed out';
  const cause = (error as { cause?: unknown }).cause;
  const code = typeof cause === 'object' && cause !== null ? (cause as { code?: unknown }).code : undefined;
  return typeof code === 'string' ? `${error.message} (${code})` : error.message;
}

/**
 * Our own JWKS cache (jose's remote set drops its keys when a refresh fails; this one keeps the last
 * good set through an outage). No timers: refreshes are started by requests and paced by the clock,
 * so every decision is testable with a fake clock. At most one fetch is ever in flight.
 */
export function createJwksCache(options: JwksCacheOptions): JwksCache {
  let uri: URL;
  try {
    uri = new URL(options.uri);
  } catch {
    throw new AuthConfigError('auth.jwt.jwksUri', 'not a valid URL');
  }
  if (uri.protocol !== 'https:' && uri.protocol !== 'http:') throw new AuthConfigError('auth.jwt.jwksUri', 'must be an http(s) URL');
  const timeoutMs = positive(options.timeoutMs, 'auth.jwt.jwks.timeoutMs');
  const cooldownMs = positive(options.cooldownMs, 'auth.jwt.jwks.cooldownMs');
  const maxAgeMs = positive(options.cacheMaxAgeMs, 'auth.jwt.jwks.cacheMaxAgeMs');
  const { clock, metrics, logger } = options;
  const doFetch = options.fetch;
  const where = loggable(uri);

  let keySet: LocalJWKSet | undefined;
  let fetchedAt = 0;
  let lastAttemptAt = Number.NEGATIVE_INFINITY;
  let failures = 0;
  let nextAttemptAt = Number.NEGATIVE_INFINITY;
  let inFlight: Promise<void> | undefined;
  let closed = false;
  const closing = new AbortController();

  async function fetchOnce(): Promise<void> {
    try {
      const response = await doFetch(uri, {
        headers: { accept: 'application/jwk-set+json, application/json' },
        redirect: 'error',
        signal: AbortSignal.any([AbortSignal.timeout(timeoutMs), closing.signal]),
      });
      if (response.status !== 200) {
        await response.body?.cancel();
        throw new Error(`status ${response.status}`);
      }
      let body: unknown;
      try {
        body = JSON.parse(await readCapped(response));
      } catch (error) {
        // The body itself is never logged: only that it was not a key set.
        if (error instanceof SyntaxError) throw new Error('response is not JSON');
        throw error;
      }
      const set = createLocalJWKSet({ keys: usableKeys(body) } satisfies JSONWebKeySet);
      keySet = set;
      fetchedAt = clock();
      failures = 0;
      nextAttemptAt = Number.NEGATIVE_INFINITY;
      metrics?.jwksFetches.inc({ result: 'success' });
    } catch (error) {
      if (closed) return;
      failures++;
      const delay = backoffDelay(failures);
      nextAttemptAt = clock() + delay;
      metrics?.jwksFetches.inc({ result: 'failure' });
      logger?.warn(
        { event: 'jwks_fetch_failed', jwks_uri: where, error: describe(error), failures, retry_in_ms: delay, has_cached_keys: keySet !== undefined },
        'JWKS fetch failed',
      );
    }
  }

  function start(): Promise<void> {
    if (inFlight === undefined) {
      lastAttemptAt = clock();
      inFlight = fetchOnce().finally(() => {
        inFlight = undefined;
      });
    }
    return inFlight;
  }

  const mayAttempt = (now: number): boolean => !closed && now >= nextAttemptAt;

  return {
    async current() {
      const now = clock();
      if (keySet === undefined) {
        if (inFlight !== undefined) await inFlight;
        else if (mayAttempt(now)) await start();
        return keySet;
      }
      if (now - fetchedAt >= maxAgeMs && inFlight === undefined && mayAttempt(now)) void start();
      return keySet;
    },
    async refetchForUnknownKid(tried) {
      if (keySet !== undefined && keySet !== tried) return keySet;
      if (inFlight !== undefined) {
        await inFlight;
      } else {
        const now = clock();
        if (!mayAttempt(now) || now - lastAttemptAt < cooldownMs) return undefined;
        await start();
      }
      return keySet !== tried ? keySet : undefined;
    },
    async idle() {
      while (inFlight !== undefined) await inFlight;
    },
    async close() {
      closed = true;
      closing.abort();
      await inFlight;
    },
  };
}
