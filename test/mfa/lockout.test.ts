import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { createLockout, type LockoutConfig } from '../../src/mfa/lockout.js';
import { createRig } from './support.js';

const cfg: LockoutConfig = { maxFailures: 3, findTimeMs: 5 * 60_000, backoffMs: [30_000, 60_000, 120_000, 300_000] };

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
    assert.equal(await lockout.activeLocks(now), 1);
    rig.clock.advance(30_000);
    assert.equal(await lockout.activeLocks(rig.clock()), 0);
    await lockout.recordSuccess('alice');
    // Cleared: the next failure starts a new window instead of re-locking on probation.
    assert.deepEqual(await lockout.recordFailure('alice', rig.clock(), cfg), { lockedNow: false, retryAfterMs: 0, level: 0 });
  });
});
