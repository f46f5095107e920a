import type { LockFailure, LockoutRule, TtlStore } from '../store/types.js';

/**
 * The lockout ladder, as the MFA code sees it: the rules live with the store verb that applies
 * them atomically (store/lock-ladder.ts); this is the narrow face the attempt bookkeeping uses.
 */

export type LockoutConfig = LockoutRule;
export type FailureOutcome = LockFailure;

export interface Lockout {
  /** Milliseconds left on the subject's lock, 0 when free. */
  remainingMs(subject: string, now: number): Promise<number>;
  /** `cfg` is the request's pinned policy's, so a reload never mixes two ladders in one request. */
  recordFailure(subject: string, now: number, cfg: LockoutConfig): Promise<FailureOutcome>;
  recordSuccess(subject: string): Promise<void>;
  /** Subjects locked right now (exact across replicas). */
  activeLocks(now: number): Promise<number>;
}

export function createLockout(deps: { ttl: Pick<TtlStore, 'lockRemainingMs' | 'recordLockFailure' | 'clearLock' | 'activeLocks'> }): Lockout {
  const { ttl } = deps;
  return {
    remainingMs: (subject, now) => ttl.lockRemainingMs(subject, now),
    recordFailure: (subject, now, cfg) => ttl.recordLockFailure(subject, now, cfg),
    recordSuccess: (subject) => ttl.clearLock(subject),
    activeLocks: (now) => ttl.activeLocks(now),
  };
}
