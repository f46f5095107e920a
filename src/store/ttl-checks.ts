import { StoreError } from './errors.js';
import type { FailureRule, LockoutRule, StoredSession, TokenWindow } from './types.js';

/**
 * The argument checks of the TTL verbs, shared by every backend so that a bad value is refused with
 * the same code and message whichever store sits behind (and before anything is sent to it).
 */

export function checkKey(key: unknown, name = 'key'): asserts key is string {
  if (typeof key !== 'string' || key === '') throw new StoreError('ERR_STORE_INVALID_OPTION', `${name} must be a non-empty string`);
}

export function checkDuration(ms: unknown, name: string): asserts ms is number {
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms <= 0) throw new StoreError('ERR_STORE_INVALID_OPTION', `${name} must be a positive integer of milliseconds`);
}

export function checkTime(now: unknown): asserts now is number {
  if (typeof now !== 'number' || !Number.isSafeInteger(now) || now < 0) throw new StoreError('ERR_STORE_INVALID_OPTION', 'now must be unix milliseconds');
}

export function checkCount(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new StoreError('ERR_STORE_INVALID_OPTION', `${name} must be a positive integer`);
}

export function checkWindow(window: TokenWindow): void {
  if (typeof window !== 'object' || window === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'window must be { limit, windowMs }');
  checkCount(window.limit, 'window.limit');
  checkDuration(window.windowMs, 'window.windowMs');
}

export function checkRule(rule: FailureRule): void {
  if (typeof rule !== 'object' || rule === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'rule must be { maxFailures, findTimeMs, blockMs }');
  checkCount(rule.maxFailures, 'rule.maxFailures');
  checkDuration(rule.findTimeMs, 'rule.findTimeMs');
  checkDuration(rule.blockMs, 'rule.blockMs');
}

export function checkLockoutRule(rule: LockoutRule): void {
  if (typeof rule !== 'object' || rule === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'rule must be { maxFailures, findTimeMs, backoffMs }');
  checkCount(rule.maxFailures, 'rule.maxFailures');
  checkDuration(rule.findTimeMs, 'rule.findTimeMs');
  if (!Array.isArray(rule.backoffMs) || rule.backoffMs.length === 0) throw new StoreError('ERR_STORE_INVALID_OPTION', 'rule.backoffMs must be a non-empty list');
  rule.backoffMs.forEach((ms, i) => checkDuration(ms, `rule.backoffMs[${i}]`));
}

export function checkSession(session: StoredSession, now: number): void {
  if (typeof session !== 'object' || session === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'session must be an object');
  checkKey(session.subject, 'session.subject');
  checkKey(session.method, 'session.method');
  for (const field of ['mfaTime', 'issuedAt', 'expiresAt'] as const) {
    if (!Number.isSafeInteger(session[field]) || session[field] < 0) throw new StoreError('ERR_STORE_INVALID_OPTION', `session.${field} must be a non-negative integer`);
  }
  if (!(session.expiresAt > now)) throw new StoreError('ERR_STORE_INVALID_OPTION', 'session.expiresAt must be later than now');
}

/** A TOTP time step (`useOtpStep` with a matched code). */
export function checkStep(step: unknown): asserts step is number {
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) throw new StoreError('ERR_STORE_INVALID_OPTION', 'step must be a non-negative integer');
}

/** A drift reading in seconds, or null for a code that was simply wrong. */
export function checkDriftSeconds(seconds: unknown): asserts seconds is number | null {
  if (seconds !== null && (typeof seconds !== 'number' || !Number.isSafeInteger(seconds))) throw new StoreError('ERR_STORE_INVALID_OPTION', 'seconds must be an integer or null');
}
