import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { lockRemainingMs, nextLockState, type LockState } from '../../src/store/lock-ladder.js';
import type { LockoutRule, StoredSession, TtlStore } from '../../src/store/types.js';

/**
 * What every TtlStore backend must do, verb by verb, run against each of them (SQLite, Redis).
 * Judgements use the `now` each call passes, so nothing sleeps; "replicas" are separate
 * connections to the same state, and the concurrency tests spread their calls over three.
 */

export interface TtlBackend {
  /** A new connection to the same state: another replica. */
  connect(): Promise<TtlStore>;
  /** Closes every connection and removes the state. */
  dispose(): Promise<void>;
}

const T0 = Date.UTC(2026, 10, 28, 12);
const MINUTE = 60_000;
const WINDOW = { limit: 3, windowMs: MINUTE };
const RULE = { maxFailures: 3, findTimeMs: 5 * MINUTE, blockMs: 15 * MINUTE };
const LADDER: LockoutRule = { maxFailures: 3, findTimeMs: 5 * MINUTE, backoffMs: [MINUTE, 5 * MINUTE, 15 * MINUTE] };
const KEEP = 3_600_000;

function session(over: Partial<StoredSession> = {}): StoredSession {
  return { subject: 'alice', method: 'totp', mfaTime: Math.floor(T0 / 1000), issuedAt: T0, expiresAt: T0 + 12 * 3_600_000, ...over };
}

const hash = (n: number): string => n.toString(16).padStart(64, '0');

/**
 * `reason`: why this backend cannot run here (then every test skips saying so), or undefined.
 * Under CI=true a reason is a failure, never a skip.
 */
export function describeTtlConformance(name: string, makeBackend: () => Promise<TtlBackend>, reason: () => Promise<string | undefined> = async () => undefined): void {
  async function withStores(t: TestContext, count: number, body: (stores: TtlStore[]) => Promise<void>): Promise<void> {
    const why = await reason();
    if (why !== undefined) {
      if (process.env.CI === 'true') assert.fail(`${name}: ${why} (CI=true: this backend must be tested)`);
      t.skip(why);
      return;
    }
    const backend = await makeBackend();
    try {
      const stores: TtlStore[] = [];
      for (let i = 0; i < count; i++) stores.push(await backend.connect());
      await body(stores);
    } finally {
      await backend.dispose();
    }
  }
  const one = (t: TestContext, body: (ttl: TtlStore) => Promise<void>) => withStores(t, 1, ([ttl]) => body(ttl!));
  const three = (t: TestContext, body: (stores: TtlStore[]) => Promise<void>) => withStores(t, 3, body);
  /** Spreads `count` calls round-robin over the replicas and runs them all at once. */
  const spread = <T>(stores: TtlStore[], count: number, call: (ttl: TtlStore, i: number) => Promise<T>) =>
    Promise.all(Array.from({ length: count }, (_, i) => call(stores[i % stores.length]!, i)));

  describe(`${name}: used OTP steps (forward-only)`, () => {
    test('a step is accepted once; an older one never; a later one is; undefined changes nothing', async (t) => {
      await one(t, async (ttl) => {
        assert.equal(await ttl.useOtpStep('f1', undefined, T0, KEEP), false);
        assert.equal(await ttl.useOtpStep('f1', 100, T0, KEEP), true);
        assert.equal(await ttl.useOtpStep('f1', 100, T0, KEEP), false);
        assert.equal(await ttl.useOtpStep('f1', 99, T0, KEEP), false);
        assert.equal(await ttl.useOtpStep('f1', undefined, T0, KEEP), false);
        assert.equal(await ttl.useOtpStep('f1', 101, T0, KEEP), true);
        assert.equal(await ttl.useOtpStep('f1', 100, T0, KEEP), false);
        // Factors are independent.
        assert.equal(await ttl.useOtpStep('f2', 100, T0, KEEP), true);
        // A deleted factor's steps are forgotten.
        await ttl.forgetOtpSteps('f1');
        assert.equal(await ttl.useOtpStep('f1', 50, T0, KEEP), true);
      });
    });

    test('the same step from 30 requests over 3 replicas is accepted exactly once', async (t) => {
      await three(t, async (stores) => {
        const results = await spread(stores, 30, (ttl) => ttl.useOtpStep('race', 7, T0, KEEP));
        assert.equal(results.filter(Boolean).length, 1);
      });
    });

    test('bad arguments are refused with typed errors', async (t) => {
      await one(t, async (ttl) => {
        await assert.rejects(ttl.useOtpStep('', 1, T0, KEEP), { code: 'ERR_STORE_INVALID_OPTION' });
        await assert.rejects(ttl.useOtpStep('f', -1, T0, KEEP), { code: 'ERR_STORE_INVALID_OPTION' });
        await assert.rejects(ttl.useOtpStep('f', 1.5, T0, KEEP), { code: 'ERR_STORE_INVALID_OPTION' });
        await assert.rejects(ttl.useOtpStep('f', 1, T0, 0), { code: 'ERR_STORE_INVALID_OPTION' });
      });
    });
  });

  describe(`${name}: the lockout ladder`, () => {
    test('three failures lock for the first rung; a failure while locked changes nothing; probation re-locks one rung up', async (t) => {
      await one(t, async (ttl) => {
        assert.deepEqual(await ttl.recordLockFailure('alice', T0, LADDER), { lockedNow: false, retryAfterMs: 0, level: 0 });
        assert.deepEqual(await ttl.recordLockFailure('alice', T0 + 1000, LADDER), { lockedNow: false, retryAfterMs: 0, level: 0 });
        assert.equal(await ttl.lockRemainingMs('alice', T0 + 1000), 0);
        assert.deepEqual(await ttl.recordLockFailure('alice', T0 + 2000, LADDER), { lockedNow: true, retryAfterMs: MINUTE, level: 1 });
        assert.equal(await ttl.lockRemainingMs('alice', T0 + 2000), MINUTE);
        assert.equal(await ttl.lockRemainingMs('alice', T0 + 32_000), 30_000);
        assert.equal(await ttl.activeLocks(T0 + 32_000), 1);
        assert.deepEqual(await ttl.recordLockFailure('alice', T0 + 32_000, LADDER), { lockedNow: false, retryAfterMs: 30_000, level: 1 });
        const end = T0 + 2000 + MINUTE;
        assert.equal(await ttl.lockRemainingMs('alice', end), 0);
        assert.equal(await ttl.activeLocks(end), 0);
        // On probation: one failure is enough, and the next rung applies.
        assert.deepEqual(await ttl.recordLockFailure('alice', end + 1000, LADDER), { lockedNow: true, retryAfterMs: 5 * MINUTE, level: 2 });
        assert.equal(await ttl.lockRemainingMs('bob', end + 1000), 0);
        // A success clears everything.
        await ttl.clearLock('alice');
        assert.equal(await ttl.lockRemainingMs('alice', end + 2000), 0);
        assert.deepEqual(await ttl.recordLockFailure('alice', end + 2000, LADDER), { lockedNow: false, retryAfterMs: 0, level: 0 });
      });
    });

    test('agrees with the pure ladder on a long pseudo-random history', async (t) => {
      await one(t, async (ttl) => {
        let seed = 42;
        const random = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
        let model: LockState | undefined;
        let now = T0;
        for (let i = 0; i < 200; i++) {
          now += Math.floor(random() * 4 * MINUTE);
          if (random() < 0.05) {
            await ttl.clearLock('carol');
            model = undefined;
            continue;
          }
          // The store may expire the key once the pure ladder would forget it: the two agree.
          const before = model;
          model = nextLockState(before, now, LADDER);
          const expected = { lockedNow: lockRemainingMs(model, now) > 0 && lockRemainingMs(before, now) === 0, retryAfterMs: lockRemainingMs(model, now), level: model.level };
          assert.deepEqual(await ttl.recordLockFailure('carol', now, LADDER), expected, `step ${i} at +${now - T0} ms`);
          assert.equal(await ttl.lockRemainingMs('carol', now), expected.retryAfterMs);
        }
      });
    });

    test('30 failures at once over 3 replicas: counted one after another, the lock starts exactly once', async (t) => {
      await three(t, async (stores) => {
        const results = await spread(stores, 30, (ttl) => ttl.recordLockFailure('dave', T0, LADDER));
        assert.equal(results.filter((r) => r.lockedNow).length, 1);
        assert.equal(await stores[0]!.lockRemainingMs('dave', T0), MINUTE);
        assert.equal(await stores[1]!.activeLocks(T0), 1);
      });
    });

    test('three wrong codes on three replicas lock the subject', async (t) => {
      await three(t, async (stores) => {
        const outcomes = [];
        for (const [i, ttl] of stores.entries()) outcomes.push(await ttl.recordLockFailure('erin', T0 + i, LADDER));
        assert.deepEqual(outcomes.map((o) => o.lockedNow), [false, false, true]);
        for (const ttl of stores) assert.equal(await ttl.lockRemainingMs('erin', T0 + 2), MINUTE);
      });
    });
  });

  describe(`${name}: failure windows that become blocks`, () => {
    test('maxFailures within findTime block for blockMs; a failure while blocked changes nothing; then afresh', async (t) => {
      await one(t, async (ttl) => {
        assert.deepEqual(await ttl.recordFailure('ip:a', T0, RULE), { failures: 1, blockedNow: false, blockedUntil: 0 });
        assert.deepEqual(await ttl.recordFailure('ip:a', T0 + MINUTE, RULE), { failures: 2, blockedNow: false, blockedUntil: 0 });
        assert.equal(await ttl.blockedUntil('ip:a', T0 + MINUTE), 0);
        const blockedUntil = T0 + 2 * MINUTE + RULE.blockMs;
        assert.deepEqual(await ttl.recordFailure('ip:a', T0 + 2 * MINUTE, RULE), { failures: 3, blockedNow: true, blockedUntil });
        assert.equal(await ttl.blockedUntil('ip:a', T0 + 2 * MINUTE), blockedUntil);
        assert.deepEqual(await ttl.recordFailure('ip:a', T0 + 3 * MINUTE, RULE), { failures: 3, blockedNow: false, blockedUntil });
        assert.equal(await ttl.blockedUntil('ip:a', blockedUntil - 1), blockedUntil);
        assert.equal(await ttl.blockedUntil('ip:a', blockedUntil), 0);
        assert.deepEqual(await ttl.recordFailure('ip:a', blockedUntil, RULE), { failures: 1, blockedNow: false, blockedUntil: 0 });
      });
    });

    test('the window is fixed from its first failure; keys are independent', async (t) => {
      await one(t, async (ttl) => {
        await ttl.recordFailure('ip:b', T0, RULE);
        await ttl.recordFailure('ip:b', T0 + 4 * MINUTE, RULE);
        assert.deepEqual(await ttl.recordFailure('ip:b', T0 + 5 * MINUTE, RULE), { failures: 1, blockedNow: false, blockedUntil: 0 });
        assert.deepEqual(await ttl.recordFailure('ip:c', T0, { ...RULE, maxFailures: 1 }), { failures: 1, blockedNow: true, blockedUntil: T0 + RULE.blockMs });
        assert.equal(await ttl.blockedUntil('ip:d', T0), 0);
      });
    });

    test('50 failures at once over 3 replicas: exactly one starts the block', async (t) => {
      await three(t, async (stores) => {
        const results = await spread(stores, 50, (ttl) => ttl.recordFailure('ip:p', T0, { ...RULE, maxFailures: 20 }));
        assert.equal(results.filter((r) => r.blockedNow).length, 1);
        assert.deepEqual(results.map((r) => r.failures).sort((a, b) => a - b).slice(0, 20), Array.from({ length: 20 }, (_, i) => i + 1));
      });
    });
  });

  describe(`${name}: the lock and the block read together`, () => {
    test('readLockAndBlock answers what lockRemainingMs and blockedUntil answer, at every stage of both', async (t) => {
      await one(t, async (ttl) => {
        assert.deepEqual(await ttl.readLockAndBlock('alice', 'ip:z', T0), { lockMs: 0, blockedUntil: 0 });
        for (let i = 0; i < 3; i++) await ttl.recordLockFailure('alice', T0 + i, LADDER);
        for (let i = 0; i < 3; i++) await ttl.recordFailure('ip:z', T0 + i, RULE);
        const blockEnd = T0 + 2 + RULE.blockMs;
        // Locked and blocked; the lock ends first, then the block; then neither.
        for (const at of [T0 + 2, T0 + 30_000, T0 + 2 + MINUTE, blockEnd - 1, blockEnd, blockEnd + MINUTE]) {
          const expected = { lockMs: await ttl.lockRemainingMs('alice', at), blockedUntil: await ttl.blockedUntil('ip:z', at) };
          assert.deepEqual(await ttl.readLockAndBlock('alice', 'ip:z', at), expected, `at +${at - T0} ms`);
        }
        assert.deepEqual(await ttl.readLockAndBlock('alice', 'ip:z', T0 + 30_000), { lockMs: MINUTE - 30_000 + 2, blockedUntil: blockEnd });
        assert.deepEqual(await ttl.readLockAndBlock('alice', 'ip:z', blockEnd), { lockMs: 0, blockedUntil: 0 });
      });
    });

    test('each half is its own key: no block key reads no block, another subject or key reads its own', async (t) => {
      await one(t, async (ttl) => {
        for (let i = 0; i < 3; i++) await ttl.recordLockFailure('alice', T0, LADDER);
        for (let i = 0; i < 3; i++) await ttl.recordFailure('ip:y', T0, RULE);
        assert.deepEqual(await ttl.readLockAndBlock('alice', undefined, T0), { lockMs: MINUTE, blockedUntil: 0 });
        assert.deepEqual(await ttl.readLockAndBlock('bob', 'ip:y', T0), { lockMs: 0, blockedUntil: T0 + RULE.blockMs });
        assert.deepEqual(await ttl.readLockAndBlock('alice', 'ip:x', T0), { lockMs: MINUTE, blockedUntil: 0 });
        // A block key spelled like the lock's own key is still only a failure window, never the lock.
        assert.deepEqual(await ttl.readLockAndBlock('alice', 'lock:alice', T0), { lockMs: MINUTE, blockedUntil: 0 });
        await assert.rejects(ttl.readLockAndBlock('alice', '', T0), { code: 'ERR_STORE_INVALID_OPTION', message: 'key must be a non-empty string' });
        await ttl.clearLock('alice');
        assert.deepEqual(await ttl.readLockAndBlock('alice', 'ip:y', T0 + 1), { lockMs: 0, blockedUntil: T0 + RULE.blockMs });
      });
    });
  });

  describe(`${name}: rate-limit tokens`, () => {
    test('limit takes per window, counted from the first; refused until the window ends; then afresh', async (t) => {
      await one(t, async (ttl) => {
        assert.deepEqual(await ttl.takeToken('rl:a', T0, WINDOW), { taken: true, remaining: 2, resetAt: T0 + MINUTE });
        assert.deepEqual(await ttl.takeToken('rl:a', T0 + 10_000, WINDOW), { taken: true, remaining: 1, resetAt: T0 + MINUTE });
        assert.deepEqual(await ttl.takeToken('rl:a', T0 + 20_000, WINDOW), { taken: true, remaining: 0, resetAt: T0 + MINUTE });
        assert.deepEqual(await ttl.takeToken('rl:a', T0 + 30_000, WINDOW), { taken: false, remaining: 0, resetAt: T0 + MINUTE });
        assert.deepEqual(await ttl.takeToken('rl:a', T0 + MINUTE - 1, WINDOW), { taken: false, remaining: 0, resetAt: T0 + MINUTE });
        assert.deepEqual(await ttl.takeToken('rl:a', T0 + MINUTE, WINDOW), { taken: true, remaining: 2, resetAt: T0 + 2 * MINUTE });
        assert.deepEqual(await ttl.takeToken('rl:b', T0, WINDOW), { taken: true, remaining: 2, resetAt: T0 + MINUTE });
      });
    });

    test('50 takes at once over 3 replicas of a quota of 10: exactly 10 taken', async (t) => {
      await three(t, async (stores) => {
        const results = await spread(stores, 50, (ttl) => ttl.takeToken('rl:p', T0, { limit: 10, windowMs: MINUTE }));
        assert.equal(results.filter((r) => r.taken).length, 10);
        assert.deepEqual(results.filter((r) => r.taken).map((r) => r.remaining).sort((a, b) => b - a), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
      });
    });

    test('bad arguments are refused with typed errors', async (t) => {
      await one(t, async (ttl) => {
        await assert.rejects(ttl.takeToken('', T0, WINDOW), { code: 'ERR_STORE_INVALID_OPTION' });
        await assert.rejects(ttl.takeToken('k', Number.NaN, WINDOW), { code: 'ERR_STORE_INVALID_OPTION', message: 'now must be unix milliseconds' });
        await assert.rejects(ttl.takeToken('k', T0, { limit: 0, windowMs: MINUTE }), { code: 'ERR_STORE_INVALID_OPTION', message: 'window.limit must be a positive integer' });
        await assert.rejects(ttl.takeToken('k', T0, { limit: 1, windowMs: 0 }), { code: 'ERR_STORE_INVALID_OPTION' });
      });
    });
  });

  describe(`${name}: codes sent to contacts`, () => {
    const TEN_MINUTES = 10 * MINUTE;
    test('a code is used once; a wrong one is counted; expiry is judged by now; other contacts are independent', async (t) => {
      await one(t, async (ttl) => {
        assert.equal(await ttl.useSentCode('alice', 'c1', ['k1$aa'], T0, 5), 'none');
        await ttl.putSentCode('alice', 'c1', 'k1$aa', T0, TEN_MINUTES);
        assert.equal(await ttl.useSentCode('alice', 'c2', ['k1$aa'], T0, 5), 'none');
        assert.equal(await ttl.useSentCode('alice', 'c1', ['k1$ab'], T0, 5), 'wrong');
        // Any candidate may match (a code hashed under an older key).
        assert.equal(await ttl.useSentCode('alice', 'c1', ['k2$zz', 'k1$aa'], T0 + 1000, 5), 'used');
        assert.equal(await ttl.useSentCode('alice', 'c1', ['k1$aa'], T0 + 2000, 5), 'none');
        await ttl.putSentCode('alice', 'c1', 'k1$bb', T0, TEN_MINUTES);
        assert.equal(await ttl.useSentCode('alice', 'c1', ['k1$bb'], T0 + TEN_MINUTES, 5), 'none');
        await ttl.putSentCode('alice', 'c1', 'k1$cc', T0, TEN_MINUTES);
        assert.equal(await ttl.useSentCode('alice', 'c1', ['k1$cc'], T0 + TEN_MINUTES - 1, 5), 'used');
      });
    });

    test('a new code replaces the old one and its attempts; maxAttempts wrong attempts end a code', async (t) => {
      await one(t, async (ttl) => {
        await ttl.putSentCode('bob', 'c1', 'k1$old', T0, MINUTE);
        assert.equal(await ttl.useSentCode('bob', 'c1', ['k1$bad'], T0, 3), 'wrong');
        assert.equal(await ttl.useSentCode('bob', 'c1', ['k1$bad'], T0, 3), 'wrong');
        await ttl.putSentCode('bob', 'c1', 'k1$new', T0 + 1, MINUTE);
        assert.equal(await ttl.useSentCode('bob', 'c1', ['k1$old'], T0 + 2, 3), 'wrong');
        assert.equal(await ttl.useSentCode('bob', 'c1', ['k1$bad'], T0 + 3, 3), 'wrong');
        // The third wrong attempt on the new code ends it: even the right code finds nothing now.
        assert.equal(await ttl.useSentCode('bob', 'c1', ['k1$bad'], T0 + 4, 3), 'wrong');
        assert.equal(await ttl.useSentCode('bob', 'c1', ['k1$new'], T0 + 5, 3), 'none');
      });
    });

    test('one code sent 30 times at once over 3 replicas: used exactly once', async (t) => {
      await three(t, async (stores) => {
        await stores[0]!.putSentCode('carol', 'race', 'k1$rr', T0, MINUTE);
        const results = await spread(stores, 30, (ttl) => ttl.useSentCode('carol', 'race', ['k1$rr'], T0, 5));
        assert.deepEqual(results.filter((r) => r === 'used').length, 1);
        assert.deepEqual(results.filter((r) => r !== 'used'), Array(29).fill('none'));
      });
    });

    test('bad arguments are refused with typed errors', async (t) => {
      await one(t, async (ttl) => {
        await assert.rejects(ttl.putSentCode('', 'c', 'h', T0, MINUTE), { code: 'ERR_STORE_INVALID_OPTION', message: 'subject must be a non-empty string' });
        await assert.rejects(ttl.putSentCode('a', '', 'h', T0, MINUTE), { code: 'ERR_STORE_INVALID_OPTION', message: 'contactId must be a non-empty string' });
        await assert.rejects(ttl.putSentCode('a', 'c', '', T0, MINUTE), { code: 'ERR_STORE_INVALID_OPTION', message: 'hash must be a non-empty string' });
        await assert.rejects(ttl.putSentCode('a', 'c', 'h', T0, 0), { code: 'ERR_STORE_INVALID_OPTION', message: 'ttlMs must be a positive integer of milliseconds' });
        await assert.rejects(ttl.useSentCode('a', 'c', [], T0, 5), { code: 'ERR_STORE_INVALID_OPTION', message: 'hashes must be a non-empty list of non-empty strings' });
        await assert.rejects(ttl.useSentCode('a', 'c', ['h'], T0, 0), { code: 'ERR_STORE_INVALID_OPTION', message: 'maxAttempts must be a positive integer' });
      });
    });
  });

  describe(`${name}: ceremony challenges (single use, expiring)`, () => {
    test('taken once; a new put replaces the old; expired is gone; ceremonies and subjects are apart', async (t) => {
      await one(t, async (ttl) => {
        assert.equal(await ttl.takeChallenge('alice', 'webauthn-register', T0), undefined);
        await ttl.putChallenge('alice', 'webauthn-register', '{"c":"one"}', T0, MINUTE);
        await ttl.putChallenge('alice', 'webauthn-register', '{"c":"two"}', T0 + 1, MINUTE);
        await ttl.putChallenge('alice', 'webauthn-authenticate', 'auth', T0, MINUTE);
        await ttl.putChallenge('bob', 'webauthn-register', 'bob', T0, MINUTE);
        assert.equal(await ttl.takeChallenge('alice', 'webauthn-register', T0 + 2), '{"c":"two"}');
        assert.equal(await ttl.takeChallenge('alice', 'webauthn-register', T0 + 3), undefined);
        assert.equal(await ttl.takeChallenge('bob', 'webauthn-register', T0 + 3), 'bob');
        // The caller's clock judges expiry: one ms before the end it is there, at the end it is not (and is gone).
        assert.equal(await ttl.takeChallenge('alice', 'webauthn-authenticate', T0 + MINUTE), undefined);
        await ttl.putChallenge('alice', 'webauthn-authenticate', 'again', T0, MINUTE);
        assert.equal(await ttl.takeChallenge('alice', 'webauthn-authenticate', T0 + MINUTE - 1), 'again');
        await ttl.putChallenge('alice', 'webauthn-authenticate', 'late', T0, MINUTE);
        assert.equal(await ttl.takeChallenge('alice', 'webauthn-authenticate', T0 + MINUTE), undefined);
        assert.equal(await ttl.takeChallenge('alice', 'webauthn-authenticate', T0), undefined, 'an expired take deletes it too');
      });
    });

    test('peek reads without taking, until the caller\'s clock reaches the end; a take ends it for every reader', async (t) => {
      await three(t, async (stores) => {
        const [a, b] = [stores[0]!, stores[1]!];
        assert.equal(await a.peekChallenge('setup-session:h1', 'setup-session', T0), undefined);
        await a.putChallenge('setup-session:h1', 'setup-session', '{"sub":"alice"}', T0, MINUTE);
        assert.equal(await a.peekChallenge('setup-session:h1', 'setup-session', T0 + 1), '{"sub":"alice"}');
        assert.equal(await b.peekChallenge('setup-session:h1', 'setup-session', T0 + MINUTE - 1), '{"sub":"alice"}', 'another replica reads it too, and reading left it');
        assert.equal(await b.peekChallenge('setup-session:h1', 'setup-session', T0 + MINUTE), undefined, 'expired at the end');
        assert.equal(await a.peekChallenge('setup-session:h1', 'other-ceremony', T0 + 1), undefined);
        await a.putChallenge('setup-session:h2', 'setup-session', 'two', T0, MINUTE);
        assert.equal(await b.takeChallenge('setup-session:h2', 'setup-session', T0 + 1), 'two');
        assert.equal(await a.peekChallenge('setup-session:h2', 'setup-session', T0 + 2), undefined, 'taken (signed out) on one replica: gone on all');
        await assert.rejects(a.peekChallenge('', 'setup-session', T0), { code: 'ERR_STORE_INVALID_OPTION', message: 'subject must be a non-empty string' });
        await assert.rejects(a.peekChallenge('s', 'Bad!', T0), { code: 'ERR_STORE_INVALID_OPTION', message: 'ceremony must be a short lower-case name' });
        await assert.rejects(a.peekChallenge('s', 'setup-session', -1), { code: 'ERR_STORE_INVALID_OPTION', message: 'now must be unix milliseconds' });
      });
    });

    test('one challenge taken by 30 requests at once over 3 replicas: exactly one gets it', async (t) => {
      await three(t, async (stores) => {
        await stores[0]!.putChallenge('carol', 'webauthn-authenticate', 'once', T0, MINUTE);
        const results = await spread(stores, 30, (ttl) => ttl.takeChallenge('carol', 'webauthn-authenticate', T0));
        assert.deepEqual(results.filter((r) => r !== undefined), ['once']);
      });
    });

    test('bad arguments are refused with typed errors', async (t) => {
      await one(t, async (ttl) => {
        await assert.rejects(ttl.putChallenge('', 'webauthn-register', 'v', T0, MINUTE), { code: 'ERR_STORE_INVALID_OPTION', message: 'subject must be a non-empty string' });
        await assert.rejects(ttl.putChallenge('a', 'Register!', 'v', T0, MINUTE), { code: 'ERR_STORE_INVALID_OPTION', message: 'ceremony must be a short lower-case name' });
        await assert.rejects(ttl.putChallenge('a', 'webauthn-register', '', T0, MINUTE), { code: 'ERR_STORE_INVALID_OPTION', message: 'value must be a non-empty string of at most 4096 characters' });
        await assert.rejects(ttl.putChallenge('a', 'webauthn-register', 'x'.repeat(4097), T0, MINUTE), { code: 'ERR_STORE_INVALID_OPTION' });
        await assert.rejects(ttl.putChallenge('a', 'webauthn-register', 'v', T0, 0), { code: 'ERR_STORE_INVALID_OPTION', message: 'keepMs must be a positive integer of milliseconds' });
        await assert.rejects(ttl.takeChallenge('a', 'webauthn-register', -1), { code: 'ERR_STORE_INVALID_OPTION', message: 'now must be unix milliseconds' });
        await assert.rejects(ttl.takeChallenge('a', '', T0), { code: 'ERR_STORE_INVALID_OPTION' });
      });
    });
  });

  describe(`${name}: drift readings`, () => {
    test('each failure swaps in its reading and gets the previous one back', async (t) => {
      await one(t, async (ttl) => {
        assert.equal(await ttl.swapDriftReading('alice', 60, T0, MINUTE), undefined);
        assert.equal(await ttl.swapDriftReading('alice', null, T0, MINUTE), 60);
        assert.equal(await ttl.swapDriftReading('alice', -30, T0, MINUTE), null);
        assert.equal(await ttl.swapDriftReading('alice', -30, T0, MINUTE), -30);
        assert.equal(await ttl.swapDriftReading('bob', 0, T0, MINUTE), undefined);
      });
    });
  });

  describe(`${name}: sessions`, () => {
    test('issue, get (own subject, unexpired), delete exactly once', async (t) => {
      await one(t, async (ttl) => {
        const s = session();
        assert.deepEqual(await ttl.issueSession(hash(1), s, 20, T0), []);
        assert.deepEqual(await ttl.getSession(hash(1), 'alice', T0), s);
        assert.equal(await ttl.getSession(hash(1), 'mallory', T0), undefined);
        assert.equal(await ttl.getSession(hash(2), 'alice', T0), undefined);
        assert.equal(await ttl.getSession(hash(1), 'alice', s.expiresAt), undefined);
        assert.equal(await ttl.deleteSession(hash(1), 'mallory', T0), false);
        assert.equal(await ttl.deleteSession(hash(1), 'alice', T0), true);
        assert.equal(await ttl.deleteSession(hash(1), 'alice', T0), false);
        assert.equal(await ttl.getSession(hash(1), 'alice', T0), undefined);
      });
    });

    test('beyond the cap the sessions expiring first are evicted, never the one just issued', async (t) => {
      await one(t, async (ttl) => {
        for (let i = 1; i <= 3; i++) assert.deepEqual(await ttl.issueSession(hash(i), session({ expiresAt: T0 + i * MINUTE }), 3, T0), []);
        // Expires before all of them, yet it is the newest: hash(1) goes instead.
        assert.deepEqual(await ttl.issueSession(hash(4), session({ expiresAt: T0 + 30_000 }), 3, T0), [hash(1)]);
        assert.equal(await ttl.getSession(hash(1), 'alice', T0), undefined);
        assert.equal((await ttl.getSession(hash(4), 'alice', T0))?.expiresAt, T0 + 30_000);
        // A lower cap evicts several at once; another subject's sessions are untouched.
        await ttl.issueSession(hash(9), session({ subject: 'bob' }), 1, T0);
        assert.deepEqual([...(await ttl.issueSession(hash(5), session({ expiresAt: T0 + 9 * MINUTE }), 1, T0))].sort(), [hash(2), hash(3), hash(4)].sort());
        assert.notEqual(await ttl.getSession(hash(9), 'bob', T0), undefined);
      });
    });

    test('revoke-all ends every live session of the subject, on every replica, and only those', async (t) => {
      await three(t, async ([a, b, c]) => {
        await a!.issueSession(hash(1), session(), 20, T0);
        await b!.issueSession(hash(2), session(), 20, T0);
        await b!.issueSession(hash(3), session({ expiresAt: T0 + 1000 }), 20, T0);
        await c!.issueSession(hash(4), session({ subject: 'bob' }), 20, T0);
        assert.deepEqual([...(await c!.revokeAllSessions('alice', T0 + 1000))].sort(), [hash(1), hash(2)]);
        for (const ttl of [a!, b!, c!]) {
          assert.equal(await ttl.getSession(hash(1), 'alice', T0 + 1000), undefined);
          assert.equal(await ttl.getSession(hash(2), 'alice', T0 + 1000), undefined);
          assert.notEqual(await ttl.getSession(hash(4), 'bob', T0 + 1000), undefined);
        }
        assert.deepEqual(await a!.revokeAllSessions('alice', T0 + 1000), []);
      });
    });

    test('one session deleted by 30 requests at once over 3 replicas: exactly one deletes it', async (t) => {
      await three(t, async (stores) => {
        await stores[0]!.issueSession(hash(7), session(), 20, T0);
        const results = await spread(stores, 30, (ttl) => ttl.deleteSession(hash(7), 'alice', T0));
        assert.equal(results.filter(Boolean).length, 1);
      });
    });

    test('40 sessions issued at once over 3 replicas under a cap of 5: 5 stay live', async (t) => {
      await three(t, async (stores) => {
        const evicted = await spread(stores, 40, (ttl, i) => ttl.issueSession(hash(100 + i), session({ expiresAt: T0 + (i + 1) * 1000 }), 5, T0));
        assert.equal(evicted.flat().length, 35);
        let live = 0;
        for (let i = 0; i < 40; i++) if ((await stores[0]!.getSession(hash(100 + i), 'alice', T0)) !== undefined) live++;
        assert.equal(live, 5);
        assert.equal((await stores[1]!.revokeAllSessions('alice', T0)).length, 5);
      });
    });

    test('bad sessions are refused with typed errors', async (t) => {
      await one(t, async (ttl) => {
        await assert.rejects(ttl.issueSession(hash(1), session({ expiresAt: T0 }), 20, T0), { code: 'ERR_STORE_INVALID_OPTION' });
        await assert.rejects(ttl.issueSession(hash(1), session({ subject: '' }), 20, T0), { code: 'ERR_STORE_INVALID_OPTION' });
        await assert.rejects(ttl.issueSession(hash(1), session(), 0, T0), { code: 'ERR_STORE_INVALID_OPTION' });
        await assert.rejects(ttl.issueSession('', session(), 20, T0), { code: 'ERR_STORE_INVALID_OPTION' });
      });
    });
  });
}
