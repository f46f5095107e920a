import type { RetryConfig } from '../config/types.js';

/** RFC 9110 §9.2.2 idempotent methods we retry (TRACE left out: nobody should proxy it twice). */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);

/** Errors raised before the connection existed: nothing can have reached the upstream. */
const CONNECT_FAILURES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'EAI_AGAIN', 'UND_ERR_CONNECT_TIMEOUT', 'EHOSTUNREACH', 'ENETUNREACH']);

/** Socket failures that are only safe to retry when the request was not yet written. */
const SOCKET_FAILURES: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET']);

export interface RetryAttempt {
  readonly method: string;
  readonly hasBody: boolean;
  /** Retries already made (0 on the first failure). */
  readonly retriesDone: number;
  /** True once undici started writing this attempt on a socket. */
  readonly written: boolean;
  readonly now: number;
  /** The upstream timeout budget ends here (ms); a retry never starts past it. */
  readonly deadline: number;
}

/**
 * The retry policy as one pure function: how long to wait before the next attempt, or undefined
 * for "answer with this error now". Only idempotent, body-less requests, only for failures where no
 * byte reached the upstream, `initial × multiplier^n ± jitter`, at most `max`, within the budget.
 * `random` is in [0, 1).
 */
export function retryDelay(config: RetryConfig, attempt: RetryAttempt, error: Error, random: number): number | undefined {
  if (attempt.retriesDone >= config.max || attempt.hasBody || !IDEMPOTENT.has(attempt.method)) return undefined;
  const code = (error as NodeJS.ErrnoException).code ?? '';
  if (!CONNECT_FAILURES.has(code) && !(SOCKET_FAILURES.has(code) && !attempt.written)) return undefined;
  const base = config.initialMs * config.multiplier ** attempt.retriesDone;
  const delay = Math.max(0, Math.round(base + (random * 2 - 1) * config.jitterMs));
  // Leave the next attempt some of the budget, or it could only time out.
  return attempt.now + delay < attempt.deadline ? delay : undefined;
}
