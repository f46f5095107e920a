import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createLockout, lockRemainingMs, lockStateTtlMs, nextLockState, type LockState, type LockoutConfig } from '../../src/mfa/lockout.js';
import { T0 } from '../support/clock.js';
import { createRig } from './support.js';

const cfg: LockoutConfig = { maxFailures: 3, findTimeMs: 5 * 60_000, backoffMs: [30_000, 60_000, 120_000, 300_000] };

describe('nextLockState (pure ladder)', () => {
  test('3 failures within find_time lock for 30 s; spread-out failures do not', () => {
    let s: LockState | undefined;
    s = nextLockState(s, 'failure', T0, cfg);
    s = nextLockState(s, 'failure', T0 + 1000, cfg);
    assert.equal(lockRemainingMs(s, T0 + 1000), 0);
    s = nextLockState(s, 'failure', T0 + 2000, cfg);
    assert.deepEqual(s, { failures: [], level: 1, lockedUntil: T0 + 2000 + 30_000 });

    let spread: LockState | undefined;
    for (let i = 0; i < 6; i++) spread = nextLockState(spread, 'failure', T0 + i * 3 * 60_000, cfg);
    assert.equal(lockRemainingMs(spread, T0 + 15 * 60_000), 0);
    assert.equal(spread!.level, 0);
  });

  test('the whole ladder: 30 s, 1 m, 2 m, 5 m, then 5 m; no free retry after a lock; success resets', () => {
    let now = T0;
    let s: LockState | undefined;
    for (let i = 0; i < 3; i++) s = nextLockState(s, 'failure', now, cfg);
    const rungs: number[] = [lockRemainingMs(s, now)];
    for (let lock = 0; lock < 5; lock++) {
      // A failure during the lock changes nothing (it is refused before being evaluated).
      const during = nextLockState(s, 'failure', now + 1, cfg);
      assert.deepEqual(during, s);
      now = s!.lockedUntil; // the lock has just ended
      assert.equal(lockRemainingMs(s, now), 0);
      s = nextLockState(s, 'failure', now, cfg); // the very next failure re-locks
      rungs.push(lockRemainingMs(s, now));
    }
    assert.deepEqual(rungs, [30_000, 60_000, 120_000, 300_000, 300_000, 300_000]);
    assert.equal(nextLockState(s, 'success', now, cfg), undefined);
  });

  test('a quiet probation forgets the ladder: three fresh tries again', () => {
    let s: LockState | undefined;
    for (let i = 0; i < 3; i++) s = nextLockState(s, 'failure', T0, cfg);
    const later = s!.lockedUntil + cfg.findTimeMs;
    s = nextLockState(s, 'failure', later, cfg);
    assert.equal(lockRemainingMs(s, later), 0);
    assert.deepEqual(s, { failures: [later], level: 0, lockedUntil: 0 });
  });

  test('TTL covers the lock plus probation, or the failure window', () => {
    assert.equal(lockStateTtlMs({ failures: [], level: 1, lockedUntil: T0 + 30_000 }, T0, cfg), 30_000 + cfg.findTimeMs);
    assert.equal(lockStateTtlMs({ failures: [T0 - 1000, T0], level: 0, lockedUntil: 0 }, T0, cfg), cfg.findTimeMs);
  });
});

describe('createLockout on the SQLite TTL store', () => {
  const rig = createRig();
  after(() => rig.close());

  test('locks across calls, reports the new lock once, counts active locks exactly', async () => {
    const lockout = createLockout({ ttl: rig.store.ttl });
    const now = rig.clock();
    assert.equal((await lockout.recordFailure('alice', now, cfg)).lockedNow, false);
    assert.equal((await lockout.recordFailure('bob', now, cfg)).lockedNow, false);
    assert.equal((await lockout.recordFailure('alice', now, cfg)).lockedNow, false);
    const third = await lockout.recordFailure('alice', now, cfg);
    assert.deepEqual(third, { lockedNow: true, retryAfterMs: 30_000, level: 1 });
    assert.equal(await lockout.remainingMs('alice', now + 10_000), 30_000 - 10_000);
    assert.equal(await lockout.remainingMs('bob', now), 0);
    assert.equal(await lockout.activeLocks(), 1);
    rig.clock.advance(30_000);
    assert.equal(await lockout.activeLocks(), 0);
    await lockout.recordSuccess('alice', rig.clock());
    assert.equal(await rig.store.ttl.get('lock:alice'), undefined);
  });
});
