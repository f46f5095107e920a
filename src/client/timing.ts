/**
 * How long to wait before trying again. Pure functions of their inputs (the random draw and the
 * clock are passed in), so a test can state the exact sequence.
 */

/** The source document's retry schedule: 1 s, ×2, ±500 ms jitter, 3 retries. */
export interface Backoff {
  readonly initialMs: number;
  readonly multiplier: number;
  /** The jitter is uniform in ±jitterMs. */
  readonly jitterMs: number;
}

export const SOURCE_BACKOFF: Backoff = Object.freeze({ initialMs: 1_000, multiplier: 2, jitterMs: 500 });

/**
 * The wait before retry number `retry` (1-based): initial × multiplier^(retry−1), plus a jitter
 * of (2·random − 1) × jitter, so random() = 0.5 is no jitter. Whole milliseconds, never negative.
 */
export function backoffDelay(retry: number, random: number, backoff: Backoff = SOURCE_BACKOFF): number {
  const base = backoff.initialMs * backoff.multiplier ** (retry - 1);
  return Math.max(0, Math.round(base + (2 * random - 1) * backoff.jitterMs));
}

// IMF-fixdate (RFC 9110 §5.6.7), the form servers must send; the obsolete forms are not waited on.
const IMF_FIXDATE = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * `Retry-After` (RFC 9110 §10.2.3) as milliseconds from `nowMs`: delay-seconds, or an HTTP-date
 * (a date already past is 0). Undefined when absent or unreadable: the caller falls back to its
 * own schedule rather than trusting a guess.
 */
export function retryAfterMs(field: string | null, nowMs: number): number | undefined {
  if (field === null) return undefined;
  const value = field.trim();
  if (/^\d{1,9}$/.test(value)) return Number(value) * 1_000;
  if (!IMF_FIXDATE.test(value)) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
