import type { LockoutRule } from './types.js';

/**
 * The lockout ladder as a pure function: the one statement of its rules that every backend's
 * `recordLockFailure` must agree with (SQLite runs it inside its transaction; the Redis script is
 * tested against it). Failures are counted per subject; `maxFailures` within `findTimeMs` lock the
 * subject for backoff[level] (level = locks since the last success, capped at the last rung).
 * While locked nothing is verified. When a lock ends the subject is on probation for `findTimeMs`:
 * the next failure re-locks at once, one rung higher (no free retries). A success clears
 * everything; a quiet probation forgets the ladder.
 */

export interface LockState {
  /** Unix ms of the failures in the current window (only while not on the ladder). */
  readonly failures: readonly number[];
  /** Locks imposed since the last success. */
  readonly level: number;
  /** Unix ms; 0 when never locked. */
  readonly lockedUntil: number;
}

/** True once a past lock and its probation are both over: the state no longer matters. */
function forgotten(state: LockState, now: number, rule: LockoutRule): boolean {
  if (state.level > 0) return now >= state.lockedUntil + rule.findTimeMs;
  return state.failures.every((t) => now - t >= rule.findTimeMs);
}

/** The state after one failure at `now`. */
export function nextLockState(state: LockState | undefined, now: number, rule: LockoutRule): LockState {
  const current = state !== undefined && !forgotten(state, now, rule) ? state : undefined;
  // A failure during a lock was never evaluated (callers refuse first); it changes nothing.
  if (current !== undefined && current.lockedUntil > now) return current;
  const level = current?.level ?? 0;
  const recent = [...(current?.failures ?? []).filter((t) => now - t < rule.findTimeMs), now];
  const onProbation = level > 0;
  if (onProbation || recent.length >= rule.maxFailures) {
    const rung = rule.backoffMs[Math.min(level, rule.backoffMs.length - 1)]!;
    return { failures: [], level: level + 1, lockedUntil: now + rung };
  }
  return { failures: recent.slice(-rule.maxFailures), level, lockedUntil: current?.lockedUntil ?? 0 };
}

/** Milliseconds left on the lock, 0 when not locked. */
export function lockRemainingMs(state: LockState | undefined, now: number): number {
  return state !== undefined && state.lockedUntil > now ? state.lockedUntil - now : 0;
}

/** How long the store must keep a state: to the end of its window, or of the lock plus probation. */
export function lockStateTtlMs(state: LockState, now: number, rule: LockoutRule): number {
  const until = state.level > 0 ? state.lockedUntil + rule.findTimeMs : Math.max(...state.failures, now) + rule.findTimeMs;
  return Math.max(1, until - now);
}

/** A stored value read back: anything that is not a ladder state is treated as none. */
export function parseLockState(value: unknown): LockState | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const { failures, level, lockedUntil } = value as Partial<LockState>;
  if (!Array.isArray(failures) || !failures.every((t) => typeof t === 'number') || typeof level !== 'number' || typeof lockedUntil !== 'number') return undefined;
  return { failures, level, lockedUntil };
}
