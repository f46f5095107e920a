import type { TtlStore } from '../store/types.js';

/**
 * The lockout ladder. Failures are counted per user across every factor type; `maxFailures` within
 * `findTimeMs` lock the user for backoff[level] (level = locks since the last success, capped at
 * the last rung). While locked nothing is verified. When a lock ends the user is on probation for
 * `findTimeMs`: the next failure re-locks at once, one rung higher (no free retries). A success
 * clears everything; a quiet probation forgets the ladder.
 */

export interface LockoutConfig {
  readonly maxFailures: number;
  readonly findTimeMs: number;
  readonly backoffMs: readonly number[];
}

export interface LockState {
  /** Unix ms of the failures in the current window (only while not on the ladder). */
  readonly failures: readonly number[];
  /** Locks imposed since the last success. */
  readonly level: number;
  /** Unix ms; 0 when never locked. */
  readonly lockedUntil: number;
}

export type LockEvent = 'failure' | 'success';

/** True once a past lock and its probation are both over: the state no longer matters. */
function forgotten(state: LockState, now: number, cfg: LockoutConfig): boolean {
  if (state.level > 0) return now >= state.lockedUntil + cfg.findTimeMs;
  return state.failures.every((t) => now - t >= cfg.findTimeMs);
}

/** Pure: the state after `event` at `now`; undefined means "nothing to remember". */
export function nextLockState(state: LockState | undefined, event: LockEvent, now: number, cfg: LockoutConfig): LockState | undefined {
  if (event === 'success') return undefined;
  const current = state !== undefined && !forgotten(state, now, cfg) ? state : undefined;
  // A failure during a lock was never evaluated (callers refuse first); it changes nothing.
  if (current !== undefined && current.lockedUntil > now) return current;
  const level = current?.level ?? 0;
  const recent = [...(current?.failures ?? []).filter((t) => now - t < cfg.findTimeMs), now];
  const onProbation = level > 0;
  if (onProbation || recent.length >= cfg.maxFailures) {
    const rung = cfg.backoffMs[Math.min(level, cfg.backoffMs.length - 1)]!;
    return { failures: [], level: level + 1, lockedUntil: now + rung };
  }
  return { failures: recent.slice(-cfg.maxFailures), level, lockedUntil: current?.lockedUntil ?? 0 };
}

/** Milliseconds left on the lock, 0 when not locked. Pure. */
export function lockRemainingMs(state: LockState | undefined, now: number): number {
  return state !== undefined && state.lockedUntil > now ? state.lockedUntil - now : 0;
}

/** How long the store must keep a state: to the end of its window, or of the lock plus probation. Pure. */
export function lockStateTtlMs(state: LockState, now: number, cfg: LockoutConfig): number {
  const until = state.level > 0 ? state.lockedUntil + cfg.findTimeMs : Math.max(...state.failures, now) + cfg.findTimeMs;
  return Math.max(1, until - now);
}

export interface FailureOutcome {
  /** This failure started a lock. */
  readonly lockedNow: boolean;
  /** Milliseconds until a retry may succeed (0 when not locked). */
  readonly retryAfterMs: number;
  readonly level: number;
}

export interface Lockout {
  /** Milliseconds left on the subject's lock, 0 when free. */
  remainingMs(subject: string, now: number): Promise<number>;
  /** `cfg` is the request's pinned policy's, so a reload never mixes two ladders in one request. */
  recordFailure(subject: string, now: number, cfg: LockoutConfig): Promise<FailureOutcome>;
  recordSuccess(subject: string, now: number): Promise<void>;
  /** Subjects locked right now (counted from short-lived markers, so it is exact across replicas). */
  activeLocks(): Promise<number>;
}

export const LOCK_PREFIX = 'lock:';
/** One marker per lock, living exactly as long as the lock: what the active-locks gauge counts. */
export const LOCKED_MARKER_PREFIX = 'locked:';

/** The ladder on the TTL store; only the TTL-store methods it needs. */
export function createLockout(deps: { ttl: Pick<TtlStore, 'get' | 'set' | 'update' | 'delete' | 'countPrefix'> }): Lockout {
  const { ttl } = deps;
  return {
    async remainingMs(subject, now) {
      return lockRemainingMs(await ttl.get<LockState>(LOCK_PREFIX + subject), now);
    },
    async recordFailure(subject, now, cfg) {
      let before: LockState | undefined;
      const after = await ttl.update<LockState>(LOCK_PREFIX + subject, (current) => {
        // The last call is the one the store committed (optimistic backends may call it again).
        before = current;
        const next = nextLockState(current, 'failure', now, cfg);
        return next === undefined ? undefined : { value: next, ttlMs: lockStateTtlMs(next, now, cfg) };
      });
      const retryAfterMs = lockRemainingMs(after, now);
      const lockedNow = retryAfterMs > 0 && lockRemainingMs(before, now) === 0;
      if (lockedNow) await ttl.set(LOCKED_MARKER_PREFIX + subject, { until: now + retryAfterMs }, retryAfterMs);
      return { lockedNow, retryAfterMs, level: after?.level ?? 0 };
    },
    async recordSuccess(subject) {
      await ttl.delete(LOCK_PREFIX + subject);
    },
    activeLocks: () => ttl.countPrefix(LOCKED_MARKER_PREFIX),
  };
}
