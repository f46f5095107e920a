import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { lockRemainingMs, lockStateTtlMs, nextLockState, parseLockState, type LockState } from '../../src/store/lock-ladder.js';
import type { LockoutRule } from '../../src/store/types.js';
import { T0 } from '../support/clock.js';

const cfg: LockoutRule = { maxFailures: 3, findTimeMs: 5 * 60_000, backoffMs: [30_000, 60_000, 120_000, 300_000] };

describe('nextLockState (pure ladder)', () => {
  test('3 failures within find_time lock for 30 s; spread-out failures do not', () => {
    let s: LockState | undefined;
    s = nextLockState(s, T0, cfg);
    s = nextLockState(s, T0 + 1000, cfg);
    assert.equal(lockRemainingMs(s, T0 + 1000), 0);
    s = nextLockState(s, T0 + 2000, cfg);
    assert.deepEqual(s, { failures: [], level: 1, lockedUntil: T0 + 2000 + 30_000 });

    let spread: LockState | undefined;
    for (let i = 0; i < 6; i++) spread = nextLockState(spread, T0 + i * 3 * 60_000, cfg);
    assert.equal(lockRemainingMs(spread, T0 + 15 * 60_000), 0);
    assert.equal(spread!.level, 0);
  });

  test('the whole ladder: 30 s, 1 m, 2 m, 5 m, then 5 m; no free retry after a lock', () => {
    let now = T0;
    let s: LockState | undefined;
    for (let i = 0; i < 3; i++) s = nextLockState(s, now, cfg);
    const rungs: number[] = [lockRemainingMs(s, now)];
    for (let lock = 0; lock < 5; lock++) {
      // A failure during the lock changes nothing (it is refused before being evaluated).
      const during = nextLockState(s, now + 1, cfg);
      assert.deepEqual(during, s);
      now = s!.lockedUntil; // the lock has just ended
      assert.equal(lockRemainingMs(s, now), 0);
      s = nextLockState(s, now, cfg); // the very next failure re-locks
      rungs.push(lockRemainingMs(s, now));
    }
    assert.deepEqual(rungs, [30_000, 60_000, 120_000, 300_000, 300_000, 300_000]);
  });

  test('a quiet probation forgets the ladder: three fresh tries again', () => {
    let s: LockState | undefined;
    for (let i = 0; i < 3; i++) s = nextLockState(s, T0, cfg);
    const later = s!.lockedUntil + cfg.findTimeMs;
    s = nextLockState(s, later, cfg);
    assert.equal(lockRemainingMs(s, later), 0);
    assert.deepEqual(s, { failures: [later], level: 0, lockedUntil: 0 });
  });

  test('TTL covers the lock plus probation, or the failure window', () => {
    assert.equal(lockStateTtlMs({ failures: [], level: 1, lockedUntil: T0 + 30_000 }, T0, cfg), 30_000 + cfg.findTimeMs);
    assert.equal(lockStateTtlMs({ failures: [T0 - 1000, T0], level: 0, lockedUntil: 0 }, T0, cfg), cfg.findTimeMs);
  });

  test('a stored value that is not a ladder state reads as none', () => {
    assert.equal(parseLockState(null), undefined);
    assert.equal(parseLockState({ failures: 'x', level: 0, lockedUntil: 0 }), undefined);
    assert.equal(parseLockState({ failures: [1, 'a'], level: 0, lockedUntil: 0 }), undefined);
    assert.deepEqual(parseLockState({ failures: [1], level: 2, lockedUntil: 5, extra: true }), { failures: [1], level: 2, lockedUntil: 5 });
  });
});
