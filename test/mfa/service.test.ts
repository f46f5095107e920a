import assert from 'node:assert/strict';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { loadKeyring, type Keyring } from '../../src/crypto/keyring.js';
import { renderProblem, type Problem } from '../../src/errors/problems.js';
import { base32Encode } from '../../src/mfa/base32.js';
import { createMfaService, INVALID_CODE_DETAIL, type MfaService } from '../../src/mfa/service.js';
import { hotpCode } from '../../src/mfa/hotp.js';
import type { DurableStore, TtlStore } from '../../src/store/types.js';
import { enrollTotp, type EnrolledTotp } from '../support/enroll.js';
import { writeKeyFile } from '../support/fixture.js';
import { oathHotp, oathTotp, wrongTotp } from '../support/otp.js';
import { secretsIn } from '../support/log.js';
import { createRig, principal, route, type Rig } from './support.js';

const HOUR = 3_600_000;
const MFA = route('mfa');
const STEP_UP = route('step_up', 5 * 60_000);
const INVALID: Problem = { code: 'mfa_invalid', detail: INVALID_CODE_DETAIL, maxAge: 43_200 };

function check(rig: Rig, subject: string, headers: { mfaToken?: string; sessionToken?: string } = {}, r = MFA, extra: Parameters<typeof principal>[1] = {}) {
  return rig.check(subject, headers, r, extra);
}

function problemOf(result: { ok: boolean; problem?: Problem }): Problem {
  assert.equal(result.ok, false, 'expected a refusal');
  return result.problem!;
}

/** Every sensitive string a test handled: none may appear in any log line. */
function assertNothingLogged(rig: Rig, secrets: readonly string[]): void {
  const text = rig.log.text() + rig.auditLog.text();
  assert.ok(rig.auditLog.lines.length > 0, 'the audit log recorded events');
  assert.deepEqual(secretsIn(text, secrets).map((s) => `${s.length} chars`), [], 'log output contains a secret, code or token');
}

describe('enrollment, codes and replay', () => {
  let rig: Rig;
  /** Every secret, code and token the test handled. */
  let secrets: string[];
  beforeEach(() => {
    rig = createRig();
    secrets = [];
  });
  afterEach(() => rig.close());

  // Each step below is one test, run on a fresh rig after whatever it needs. `journey()` runs all of
  // them in order on one rig, for the tests about what a whole run of use leaves behind.

  async function noFactor(): Promise<void> {
    const p = problemOf(await check(rig, 'newbie'));
    assert.deepEqual(p, {
      code: 'mfa_not_enrolled',
      detail: 'no active second factor is enrolled for this user',
      hint: 'enroll one with POST /.mfa/totp/enroll, then activate it with POST /.mfa/totp/confirm',
    });
    assert.deepEqual(problemOf(await check(rig, 'newbie', { mfaToken: '123456' })).code, 'mfa_not_enrolled');
  }

  async function enrollThenConfirm(): Promise<EnrolledTotp> {
    const enrolled = await rig.service.enroll(rig.caller('alice'), { type: 'totp' });
    assert.ok(enrolled.ok);
    const e = enrolled.enrollment;
    secrets.push(e.secretBase32, e.manualKey);
    assert.match(e.secretBase32, /^[A-Z2-7]{32}$/);
    assert.equal(e.pendingUntil, Math.floor((rig.clock() + 10 * 60_000) / 1000));
    // Pending factors do not count as enrolled.
    assert.equal(problemOf(await check(rig, 'alice')).code, 'mfa_not_enrolled');

    const code = oathTotp(e.secretBase32, rig.clock());
    secrets.push(code);
    const confirmed = await rig.service.confirm(rig.caller('alice'), e.factorId, code);
    assert.ok(confirmed.ok);
    assert.equal(confirmed.recoveryCodes?.length, 10);
    secrets.push(...confirmed.recoveryCodes!);

    // The same code right away on a request: it was used by the confirmation.
    assert.deepEqual(problemOf(await check(rig, 'alice', { mfaToken: code })), INVALID);
    const replays = rig.auditLog.events().filter((ev) => ev.event === 'replay');
    assert.equal(replays.length, 1);
    assert.equal(replays[0]!.factor_id, e.factorId);
    return { factorId: e.factorId, secret: e.secretBase32, recoveryCodes: confirmed.recoveryCodes! };
  }

  /** Alice with a TOTP factor confirmed at T0, for the steps after enrollment. */
  async function enrolledAlice(): Promise<EnrolledTotp> {
    const alice = await enrollTotp(rig, 'alice');
    secrets.push(alice.secret, ...alice.recoveryCodes);
    return alice;
  }

  async function challenges(): Promise<void> {
    assert.deepEqual(problemOf(await check(rig, 'alice')), { code: 'mfa_required', detail: 'a second factor is required for this route', maxAge: 43_200 });
    assert.deepEqual(problemOf(await check(rig, 'alice', {}, STEP_UP)), { code: 'step_up_required', detail: 'a fresh second factor is required for this operation', maxAge: 300 });
  }

  async function freshCodeThenReplays(aliceSecret: string): Promise<void> {
    const [factor] = (await rig.service.listFactors('alice', rig.clock(), rig.policy)).factors;
    const secretBase32 = aliceSecret;
    rig.clock.advance(30_000);
    const now = rig.clock();
    const current = oathTotp(secretBase32, now);
    const later = oathTotp(secretBase32, now + 30_000);
    secrets.push(current, later);

    const ok = await check(rig, 'alice', { mfaToken: later });
    assert.ok(ok.ok);
    assert.equal(ok.method, 'totp');
    assert.equal(ok.mfaTime, Math.floor(now / 1000));
    assert.ok(ok.session !== undefined);
    assert.equal(ok.session.expiresAt, Math.floor((now + 12 * HOUR) / 1000));
    secrets.push(ok.session.token);

    assert.deepEqual(problemOf(await check(rig, 'alice', { mfaToken: later })), INVALID);
    // `current` is a valid, never-used code, but its step is before the one just used.
    assert.deepEqual(problemOf(await check(rig, 'alice', { mfaToken: current })), INVALID);
    const reasons = rig.auditLog.events().filter((ev) => ev.event === 'failed').map((ev) => ev.reason);
    assert.deepEqual(reasons.slice(-2), ['replay', 'replay']);
    assert.equal(factor!.status, 'active');
    // Two failures so far: a success resets them before the lockout could trigger.
    rig.clock.advance(60_000);
    const fresh = oathTotp(secretBase32, rig.clock());
    secrets.push(fresh);
    assert.ok((await check(rig, 'alice', { mfaToken: fresh })).ok);
  }

  async function parallelTotp(aliceSecret: string): Promise<void> {
    rig.clock.advance(30_000);
    const code = oathTotp(aliceSecret, rig.clock());
    secrets.push(code);
    const results = await Promise.all(Array.from({ length: 50 }, () => check(rig, 'alice', { mfaToken: code })));
    assert.equal(results.filter((r) => r.ok).length, 1);
    for (const r of results.filter((x) => !x.ok)) assert.deepEqual(problemOf(r), INVALID);
    for (const r of results) if (r.ok) secrets.push(r.session!.token);
    // The 49 failures locked alice (3 within 5 minutes) and blocked the test's one client address
    // (20 across users); a success resets neither, so wait both out for the next step of a journey.
    rig.clock.advance(rig.policy.mfa.ipThrottle.blockMs);
    await rig.store.ttl.clearLock('alice');
  }

  async function parallelRecovery(recoveryCode: string): Promise<void> {
    const code = recoveryCode;
    const results = await Promise.all(Array.from({ length: 50 }, () => check(rig, 'alice', { mfaToken: code.toUpperCase().replaceAll('-', '') })));
    const wins = results.filter((r) => r.ok);
    assert.equal(wins.length, 1);
    assert.equal(wins[0]!.ok && wins[0]!.method, 'recovery');
    secrets.push(wins[0]!.ok ? wins[0]!.session!.token : '');
    assert.equal((await rig.service.listFactors('alice', rig.clock(), rig.policy)).recoveryCodesRemaining, 9);
    const used = rig.auditLog.events().filter((ev) => ev.event === 'recovery_code_used');
    assert.deepEqual(used.map((ev) => ev.remaining), [9]);
  }

  /** Every step above, in order, on one rig. */
  async function journey(): Promise<void> {
    await noFactor();
    const alice = await enrollThenConfirm();
    await challenges();
    await freshCodeThenReplays(alice.secret);
    await parallelTotp(alice.secret);
    await parallelRecovery(alice.recoveryCodes[0]!);
  }

  test('no factor: 403 mfa_not_enrolled with a hint naming the enroll endpoint', noFactor);

  test('enroll → confirm with an oathtool code → 10 recovery codes; the confirm code counts as used', async () => {
    await enrollThenConfirm();
  });

  test('no header → mfa_required with max_age = session TTL; step_up → step_up_required with the route max_age', async () => {
    await enrolledAlice();
    await challenges();
  });

  test('a fresh code passes and issues a session; the same code again and an earlier step after a later one are refused', async () => {
    const alice = await enrolledAlice();
    await freshCodeThenReplays(alice.secret);
  });

  test('50 parallel requests with one TOTP code → exactly one success', async () => {
    const alice = await enrolledAlice();
    await parallelTotp(alice.secret);
  });

  test('50 parallel requests with one recovery code → exactly one success, 9 left, audited', async () => {
    const alice = await enrolledAlice();
    await parallelRecovery(alice.recoveryCodes[0]!);
  });

  test('metrics count verifications by method and result, replays and sessions', async () => {
    await journey();
    const text = await rig.metrics.registry.metrics();
    assert.match(text, /mfa_gateway_mfa_verifications_total\{method="totp",result="success"\} [1-9]/);
    assert.match(text, /mfa_gateway_mfa_verifications_total\{method="recovery",result="success"\} 1\n/);
    // Failures carry the label their success would: replayed TOTP codes, and the 49 losers of the recovery race.
    assert.match(text, /mfa_gateway_mfa_verifications_total\{method="totp",result="failure"\} [1-9]/);
    assert.match(text, /mfa_gateway_mfa_verifications_total\{method="recovery",result="failure"\} 49\n/);
    assert.match(text, /mfa_gateway_mfa_replays_rejected_total [1-9]/);
    assert.match(text, /mfa_gateway_mfa_sessions_issued_total [1-9]/);
  });

  test('no secret, code or token in any log line', async () => {
    await journey();
    assertNothingLogged(rig, secrets);
  });
});

describe('malformed, wrong and replayed codes are indistinguishable', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig({ mfa: { lockout: { maxFailures: 1000, findTimeMs: 5 * 60_000, backoffMs: [30_000] } } });
  });
  afterEach(() => rig.close());

  test('unicode digits, spaces, 5/7/9 digits, leading + → the same problem as a wrong code', async () => {
    const { secret } = await enrollTotp(rig, 'mal');
    rig.clock.advance(30_000);
    const good = oathTotp(secret, rig.clock());
    const arabic = [...good].map((d) => String.fromCharCode(0x0660 + Number(d))).join('');
    const fullwidth = [...good].map((d) => String.fromCharCode(0xff10 + Number(d))).join('');
    const wrong = wrongTotp(secret, rig.clock());
    const inputs = [wrong, arabic, fullwidth, ` ${good}`, `${good.slice(0, 3)} ${good.slice(3)}`, good.slice(0, 5), `${good}1`, `${good}123`, `+${good}`, `+${good.slice(1)}`, '', 'ab2c-d3ef-9gh0'];
    const rendered = new Set<string>();
    for (const input of inputs) {
      const p = problemOf(await check(rig, 'mal', { mfaToken: input }));
      assert.deepEqual(p, INVALID, JSON.stringify(input));
      const r = renderProblem(p);
      rendered.add(JSON.stringify([r.status, r.headers, r.body]));
    }
    assert.equal(rendered.size, 1, 'identical status, headers and body');
    const reasons = rig.auditLog.events().filter((ev) => ev.event === 'failed').map((ev) => ev.reason);
    assert.deepEqual(reasons, ['wrong', ...Array(10).fill('malformed'), 'wrong']);
    // The right code still works afterwards: none of the above burned it.
    assert.ok((await check(rig, 'mal', { mfaToken: good })).ok);
  });

  test('wrong, replayed, malformed and a-few-steps-away codes do the same store and key work, in the same order', async () => {
    const trace: string[] = [];
    const svc = createMfaService({
      durable: traced(rig.store.durable, 'durable', trace),
      ttl: traced(rig.store.ttl, 'ttl', trace),
      keyring: traced(rig.keyring, 'keyring', trace),
    });
    const { secret } = await enrollTotp(rig, 'tracer');
    rig.clock.advance(30_000);
    const used = oathTotp(secret, rig.clock());
    assert.ok((await svc.checkSecondFactor({ ...rig.caller('tracer', { mfaToken: used }), route: MFA })).ok);
    const wrong = wrongTotp(secret, rig.clock());
    const traces: Record<string, string[]> = {};
    const ahead = oathTotp(secret, rig.clock() + 120_000);
    for (const [name, code] of [['wrong', wrong], ['replay', used], ['malformed', '١٢٣٤٥٦'], ['short', '12345'], ['drift', ahead]] as const) {
      trace.length = 0;
      assert.deepEqual(problemOf(await svc.checkSecondFactor({ ...rig.caller('tracer', { mfaToken: code }), route: MFA })), INVALID);
      traces[name] = [...trace];
    }
    assert.ok(traces.wrong!.some((call) => call.startsWith('ttl.useOtpStep(')));
    assert.ok(traces.wrong!.includes('durable.consumeRecoveryCode'));
    assert.deepEqual(traces.replay, traces.wrong);
    assert.deepEqual(traces.malformed, traces.wrong);
    assert.deepEqual(traces.short, traces.wrong);
    // The drift hint's own bookkeeping must not tell a code valid 4 steps away from a wrong one.
    assert.deepEqual(traces.drift, traces.wrong);
  });
});

/** Records each method call (and a TTL key's prefix) of a store or keyring, then calls through. */
function traced<T extends object>(target: T, name: string, trace: string[]): T {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(target)) {
    const value = (target as Record<string, unknown>)[key];
    out[key] =
      typeof value === 'function'
        ? (...args: unknown[]) => {
            const first = args[0];
            trace.push(name === 'ttl' && typeof first === 'string' ? `${name}.${key}(${first.split(':')[0]})` : `${name}.${key}`);
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          }
        : value;
  }
  return out as T;
}

describe('lockout ladder through the service (fake clock)', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig();
  });
  afterEach(() => rig.close());

  test('3 failures lock; a correct code while locked is refused and verifies nothing; no free retry; 30 s, 1 m, 2 m, 5 m, 5 m', async () => {
    const { secret } = await enrollTotp(rig, 'lucy');
    const wrong = (_code: string) => wrongTotp(secret, rig.clock());
    const retryAfters: number[] = [];
    let code = '';
    const tick = () => {
      rig.clock.advance(30_000);
      code = oathTotp(secret, rig.clock());
    };
    tick();
    for (let i = 0; i < 3; i++) assert.deepEqual(problemOf(await check(rig, 'lucy', { mfaToken: wrong(code) })), INVALID);
    for (let rung = 0; rung < 5; rung++) {
      // Locked: the correct code is refused, and not burned (it works once the lock is over).
      const locked = problemOf(await check(rig, 'lucy', { mfaToken: code }));
      assert.equal(locked.code, 'mfa_locked');
      assert.equal(locked.detail, 'too many failed second-factor attempts; try again later');
      retryAfters.push(locked.retryAfter!);
      const rendered = renderProblem(locked);
      assert.equal(rendered.status, 429);
      assert.equal(rendered.headers['retry-after'], String(locked.retryAfter));
      // A session or nothing at all is refused the same way while locked.
      assert.equal(problemOf(await check(rig, 'lucy')).code, 'mfa_locked');
      rig.clock.advance(locked.retryAfter! * 1000);
      tick();
      // No free retries: one failure right after the lock re-locks, one rung higher.
      assert.deepEqual(problemOf(await check(rig, 'lucy', { mfaToken: wrong(code) })), INVALID);
    }
    assert.deepEqual(retryAfters, [30, 60, 120, 300, 300]);
    const locked = problemOf(await check(rig, 'lucy', { mfaToken: code }));
    assert.equal(locked.retryAfter, 300);
    rig.clock.advance(300_000);
    tick();
    const ok = await check(rig, 'lucy', { mfaToken: code });
    assert.ok(ok.ok, 'a correct code after the lock ends succeeds');
    // Success reset the ladder: two failures do not lock.
    tick();
    for (let i = 0; i < 2; i++) assert.deepEqual(problemOf(await check(rig, 'lucy', { mfaToken: wrong(code) })), INVALID);
    assert.ok((await check(rig, 'lucy', { mfaToken: code })).ok);

    const lockEvents = rig.auditLog.events().filter((ev) => ev.event === 'locked');
    assert.deepEqual(lockEvents.map((ev) => ev.retry_after_seconds), [30, 60, 120, 300, 300, 300]);
    const text = await rig.metrics.registry.metrics();
    assert.match(text, /mfa_gateway_mfa_lockouts_total 6\n/);
    assert.match(text, /mfa_gateway_mfa_verifications_total\{method="none",result="locked"\} 11\n/);
  });

  test('a valid session keeps working while its user is locked: failing codes cannot lock out an established session', async () => {
    const { secret } = await enrollTotp(rig, 'sam');
    rig.clock.advance(30_000);
    const ok = await check(rig, 'sam', { mfaToken: oathTotp(secret, rig.clock()) });
    assert.ok(ok.ok && ok.session !== undefined);
    for (let i = 0; i < 3; i++) assert.deepEqual(problemOf(await check(rig, 'sam', { mfaToken: wrongTotp(secret, rig.clock()) })), INVALID);
    assert.equal(problemOf(await check(rig, 'sam')).code, 'mfa_locked');
    assert.equal(problemOf(await check(rig, 'sam', { sessionToken: 'A'.repeat(43) })).code, 'mfa_locked', 'an invalid session is no way past the lock');
    assert.deepEqual(await check(rig, 'sam', { sessionToken: ok.session.token }), { ok: true, method: 'totp', mfaTime: ok.mfaTime });
  });

  test('failures count per user across factor types (TOTP, HOTP, recovery)', async () => {
    const { secret, recoveryCodes } = await enrollTotp(rig, 'mixed');
    rig.clock.advance(30_000);
    const stepUpCode = oathTotp(secret, rig.clock());
    const hotpSecret = base32Encode(Buffer.alloc(20, 7));
    const verified = await rig.service.verify(rig.caller('mixed', { mfaToken: stepUpCode }));
    assert.ok(verified.ok);
    const fresh = { sessionToken: verified.session.token };
    const added = await rig.service.enroll(rig.caller('mixed', fresh), { type: 'hotp', secret: hotpSecret, counter: 0 });
    assert.ok(added.ok);
    assert.ok((await rig.service.confirm(rig.caller('mixed', fresh), added.enrollment.factorId, oathHotp(hotpSecret, 0))).ok);
    assert.ok((await check(rig, 'mixed', { mfaToken: recoveryCodes[0]! })).ok);
    // One used code of each kind: three failures of one user.
    assert.deepEqual(problemOf(await check(rig, 'mixed', { mfaToken: stepUpCode })), INVALID);
    assert.deepEqual(problemOf(await check(rig, 'mixed', { mfaToken: oathHotp(hotpSecret, 0) })), INVALID);
    assert.deepEqual(problemOf(await check(rig, 'mixed', { mfaToken: recoveryCodes[0]! })), INVALID);
    assert.equal(problemOf(await check(rig, 'mixed', { mfaToken: oathHotp(hotpSecret, 1) })).code, 'mfa_locked');
    assert.equal(await rig.service.activeLocks(rig.clock()), 1);
  });
});

describe('sessions on proxied requests', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig();
  });
  afterEach(() => rig.close());

  test('a session passes on its own subject only; expired, revoked and tampered sessions → session_invalid', async () => {
    const { secret } = await enrollTotp(rig, 'anna');
    await enrollTotp(rig, 'ben');
    rig.clock.advance(30_000);
    const ok = await check(rig, 'anna', { mfaToken: oathTotp(secret, rig.clock()) });
    assert.ok(ok.ok && ok.session !== undefined);
    const token = ok.session.token;
    const mfaTime = ok.mfaTime;

    rig.clock.advance(HOUR);
    const again = await check(rig, 'anna', { sessionToken: token });
    assert.deepEqual(again, { ok: true, method: 'totp', mfaTime });

    const invalid: Problem = { code: 'session_invalid', detail: 'the MFA session is invalid, expired or revoked', maxAge: 43_200 };
    assert.deepEqual(problemOf(await check(rig, 'ben', { sessionToken: token })), invalid);
    const tampered = token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A');
    assert.deepEqual(problemOf(await check(rig, 'anna', { sessionToken: tampered })), invalid);
    assert.deepEqual(problemOf(await check(rig, 'anna', { sessionToken: 'not a token' })), invalid);

    rig.clock.advance(11 * HOUR);
    assert.deepEqual(problemOf(await check(rig, 'anna', { sessionToken: token })), invalid);

    const fresh = await check(rig, 'anna', { mfaToken: oathTotp(secret, rig.clock()) });
    assert.ok(fresh.ok && fresh.session !== undefined);
    const revoked = await rig.service.revokeSession(rig.caller('ben', { sessionToken: fresh.session.token }));
    assert.deepEqual(revoked, { ok: false, problem: invalid });
    assert.deepEqual(await rig.service.revokeSession(rig.caller('anna', { sessionToken: fresh.session.token })), { ok: true });
    assert.deepEqual(problemOf(await check(rig, 'anna', { sessionToken: fresh.session.token })), invalid);
    const revokedEvents = rig.auditLog.events().filter((ev) => ev.event === 'session_revoked');
    assert.equal(revokedEvents.length, 1);
    assert.equal((revokedEvents[0]!.session_id as string).length, 8);
    assertNothingLogged(rig, [secret, token, fresh.session.token]);
  });

  test('step_up with an old session → step_up_required with max_age; a code in the same request passes', async () => {
    const { secret } = await enrollTotp(rig, 'carl');
    rig.clock.advance(30_000);
    const ok = await check(rig, 'carl', { mfaToken: oathTotp(secret, rig.clock()) });
    assert.ok(ok.ok && ok.session !== undefined);
    const token = ok.session.token;
    assert.ok((await check(rig, 'carl', { sessionToken: token }, STEP_UP)).ok, 'fresh session satisfies step-up');
    rig.clock.advance(5 * 60_000 + 1000);
    assert.deepEqual(problemOf(await check(rig, 'carl', { sessionToken: token }, STEP_UP)), {
      code: 'step_up_required',
      detail: 'a fresh second factor is required for this operation',
      maxAge: 300,
    });
    assert.ok((await check(rig, 'carl', { sessionToken: token })).ok, 'still fine for plain mfa routes');
    const stepped = await check(rig, 'carl', { sessionToken: token, mfaToken: oathTotp(secret, rig.clock()) }, STEP_UP);
    assert.ok(stepped.ok && stepped.mfaTime === Math.floor(rig.clock() / 1000));
  });

  test('refresh keeps mfaTime: a refreshed session does not pass step-up', async () => {
    const { secret } = await enrollTotp(rig, 'dora');
    rig.clock.advance(30_000);
    const ok = await check(rig, 'dora', { mfaToken: oathTotp(secret, rig.clock()) });
    assert.ok(ok.ok && ok.session !== undefined);
    rig.clock.advance(10 * 60_000);
    const refreshed = await rig.service.refreshSession(rig.caller('dora', { sessionToken: ok.session.token }));
    assert.ok(refreshed.ok);
    assert.equal(problemOf(await check(rig, 'dora', { sessionToken: refreshed.session.token }, STEP_UP)).code, 'step_up_required');
    const plain = await check(rig, 'dora', { sessionToken: refreshed.session.token });
    assert.deepEqual(plain, { ok: true, method: 'totp', mfaTime: ok.mfaTime });
  });
});

describe('IdP-asserted MFA', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig({ acceptIdpMfa: true });
  });
  afterEach(() => rig.close());
  const nowS = () => Math.floor(rig.clock() / 1000);

  test('amr mfa/otp/hwk with auth_time satisfies mfa; step_up only within max_age; pwd alone does not', async () => {
    for (const amr of ['mfa', 'otp', 'hwk']) {
      const r = await check(rig, 'idp-user', {}, MFA, { amr: ['pwd', amr], authTime: nowS() - 60 });
      assert.deepEqual(r, { ok: true, method: 'idp', mfaTime: nowS() - 60 });
    }
    assert.ok((await check(rig, 'idp-user', {}, STEP_UP, { amr: ['mfa'], authTime: nowS() - 200 })).ok);
    assert.equal(problemOf(await check(rig, 'idp-user', {}, STEP_UP, { amr: ['mfa'], authTime: nowS() - 400 })).code, 'mfa_not_enrolled');
    assert.equal(problemOf(await check(rig, 'idp-user', {}, MFA, { amr: ['pwd'], authTime: nowS() - 60 })).code, 'mfa_not_enrolled');
    assert.equal(problemOf(await check(rig, 'idp-user', {}, MFA, { amr: ['mfa'] })).code, 'mfa_not_enrolled');
  });

  test('ignored when accept_idp_mfa is off', async () => {
    rig.policy = { ...rig.policy, auth: { jwt: { ...rig.policy.auth.jwt, acceptIdpMfa: false } } };
    assert.equal(problemOf(await check(rig, 'idp-user', {}, MFA, { amr: ['mfa'], authTime: nowS() - 60 })).code, 'mfa_not_enrolled');
  });
});

describe('secrets at rest fail closed', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig();
  });
  afterEach(() => rig.close());

  function db(): Database.Database {
    return new Database(rig.dbPath);
  }

  test('a tampered ciphertext: the right code is refused and the event is logged without secrets', async () => {
    const { factorId, secret } = await enrollTotp(rig, 'tess');
    const conn = db();
    const row = conn.prepare('SELECT secret_blob FROM factors WHERE id = ?').get(factorId) as { secret_blob: string };
    const raw = Buffer.from(row.secret_blob, 'base64url');
    raw[raw.length - 20] ^= 1;
    conn.prepare('UPDATE factors SET secret_blob = ? WHERE id = ?').run(raw.toString('base64url'), factorId);
    conn.close();
    rig.clock.advance(30_000);
    assert.deepEqual(problemOf(await check(rig, 'tess', { mfaToken: oathTotp(secret, rig.clock()) })), INVALID);
    const unreadable = rig.log.events().filter((ev) => ev.event === 'factor_unreadable');
    assert.equal(unreadable.length, 1);
    assert.equal(unreadable[0]!.factor_id, factorId);
    assertNothingLogged(rig, [secret, row.secret_blob]);
  });

  test('ciphertexts swapped between two users: both factors fail closed', async () => {
    const u = await enrollTotp(rig, 'uma');
    const v = await enrollTotp(rig, 'vic');
    const conn = db();
    const get = conn.prepare('SELECT secret_blob, secret_kid FROM factors WHERE id = ?');
    const a = get.get(u.factorId) as { secret_blob: string };
    const b = get.get(v.factorId) as { secret_blob: string };
    const set = conn.prepare('UPDATE factors SET secret_blob = ? WHERE id = ?');
    set.run(b.secret_blob, u.factorId);
    set.run(a.secret_blob, v.factorId);
    conn.close();
    rig.clock.advance(30_000);
    assert.deepEqual(problemOf(await check(rig, 'uma', { mfaToken: oathTotp(u.secret, rig.clock()) })), INVALID);
    assert.deepEqual(problemOf(await check(rig, 'vic', { mfaToken: oathTotp(v.secret, rig.clock()) })), INVALID);
    // …and neither user's code opens the other's factor either.
    assert.deepEqual(problemOf(await check(rig, 'uma', { mfaToken: oathTotp(v.secret, rig.clock()) })), INVALID);
  });

  test('the wrong key: codes fail closed, recovery codes (keyed hashes) do not match', async () => {
    const w = await enrollTotp(rig, 'walt');
    const otherKeys = join(rig.dir, 'other-keys');
    writeKeyFile(otherKeys, 'k1');
    const wrongKeyring: Keyring = loadKeyring({ file: otherKeys, rotationMs: 90 * 86_400_000, clock: rig.clock });
    const svc: MfaService = createMfaService({ durable: rig.store.durable, ttl: rig.store.ttl, keyring: wrongKeyring });
    rig.clock.advance(30_000);
    assert.deepEqual(problemOf(await svc.checkSecondFactor({ ...rig.caller('walt', { mfaToken: oathTotp(w.secret, rig.clock()) }), route: MFA })), INVALID);
    assert.deepEqual(problemOf(await svc.checkSecondFactor({ ...rig.caller('walt', { mfaToken: w.recoveryCodes[0]! }), route: MFA })), INVALID);
  });
});

describe('clock drift help', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig();
  });
  afterEach(() => rig.close());

  test('the drift hint comes only when two failures in a row show the same offset; every drift attempt counts', async () => {
    const { secret } = await enrollTotp(rig, 'drifty');
    rig.clock.advance(30_000);
    const ahead = oathTotp(secret, rig.clock() + 120_000);
    // One hit on a neighbouring step is what a guesser gets by chance: no hint for it.
    assert.deepEqual(problemOf(await check(rig, 'drifty', { mfaToken: ahead })), INVALID);
    // The same offset again is a skewed clock.
    assert.deepEqual(problemOf(await check(rig, 'drifty', { mfaToken: ahead })), { ...INVALID, hint: 'device clock looks off by about 120 seconds; sync it with NTP' });
    const behind = oathTotp(secret, rig.clock() - 270_000);
    assert.deepEqual(problemOf(await check(rig, 'drifty', { mfaToken: behind })), INVALID, 'another offset: no hint');
    const failed = rig.auditLog.events().filter((ev) => ev.event === 'failed');
    assert.deepEqual(failed.map((ev) => [ev.reason, ev.drift_seconds]), [['drift', 120], ['drift', 120], ['drift', -270]]);
    // All three counted: the user is locked.
    assert.equal(problemOf(await check(rig, 'drifty', { mfaToken: oathTotp(secret, rig.clock()) })).code, 'mfa_locked');
    assertNothingLogged(rig, [secret, ahead, behind]);
  });

  test('a failure of another kind between two drift attempts means no hint', async () => {
    const { secret } = await enrollTotp(rig, 'drifty2');
    rig.clock.advance(30_000);
    const ahead = oathTotp(secret, rig.clock() + 60_000);
    assert.deepEqual(problemOf(await check(rig, 'drifty2', { mfaToken: ahead })), INVALID);
    assert.deepEqual(problemOf(await check(rig, 'drifty2', { mfaToken: wrongTotp(secret, rig.clock()) })), INVALID);
    assert.deepEqual(problemOf(await check(rig, 'drifty2', { mfaToken: ahead })), INVALID);
  });
});

describe('HOTP hardware tokens', () => {
  let rig: Rig;
  beforeEach(() => {
    // 50 parallel uses of one code: neither the user's lockout nor the address's block may end the test early.
    rig = createRig({
      mfa: { lockout: { maxFailures: 100, findTimeMs: 5 * 60_000, backoffMs: [30_000] }, ipThrottle: { enabled: true, maxFailures: 100, findTimeMs: 5 * 60_000, blockMs: 60_000 } },
    });
  });
  afterEach(() => rig.close());
  const secret = base32Encode(Buffer.from('12345678901234567890', 'ascii'));

  test('enroll with a given secret and counter, confirm, look-ahead, replay, 50 parallel, resync', async () => {
    const enrolled = await rig.service.enroll(rig.caller('hank'), { type: 'hotp', secret, counter: 5 });
    assert.ok(enrolled.ok);
    assert.match(enrolled.enrollment.otpauthUri, /^otpauth:\/\/hotp\/Test%20Gateway:hank\?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Test%20Gateway&algorithm=SHA1&digits=6&counter=5$/);
    const id = enrolled.enrollment.factorId;
    const confirmed = await rig.service.confirm(rig.caller('hank'), id, oathHotp(secret, 7));
    assert.ok(confirmed.ok && confirmed.recoveryCodes?.length === 10);

    // Counter now expects 8: 7 (the confirm code) is used, 8..13 accepted.
    assert.deepEqual(problemOf(await check(rig, 'hank', { mfaToken: oathHotp(secret, 7) })), INVALID);
    const r = await check(rig, 'hank', { mfaToken: oathHotp(secret, 10) });
    assert.ok(r.ok && r.method === 'hotp');
    assert.deepEqual(problemOf(await check(rig, 'hank', { mfaToken: oathHotp(secret, 9) })), INVALID);
    assert.deepEqual(problemOf(await check(rig, 'hank', { mfaToken: oathHotp(secret, 17) })), INVALID);

    const code = oathHotp(secret, 12);
    const results = await Promise.all(Array.from({ length: 50 }, () => check(rig, 'hank', { mfaToken: code })));
    assert.equal(results.filter((x) => x.ok).length, 1);

    // Far ahead: resync with two consecutive codes.
    const bad = await rig.service.resyncHotp(rig.caller('hank'), id, oathHotp(secret, 100), oathHotp(secret, 102));
    assert.deepEqual(bad, { ok: false, problem: INVALID });
    const good = await rig.service.resyncHotp(rig.caller('hank'), id, oathHotp(secret, 100), oathHotp(secret, 101));
    assert.deepEqual(good, { ok: true, factorId: id });
    assert.ok((await check(rig, 'hank', { mfaToken: oathHotp(secret, 102) })).ok);
    assert.deepEqual(problemOf(await check(rig, 'hank', { mfaToken: oathHotp(secret, 101) })), INVALID);
    assert.equal(hotpCode(Buffer.from('12345678901234567890'), 0, { algorithm: 'SHA1', digits: 6 }), '755224');
  });

  test('bad hardware-token input is refused without echoing the secret', async () => {
    const short = await rig.service.enroll(rig.caller('hank2'), { type: 'hotp', secret: 'GEZDGNBVGY3TQOJQ' });
    assert.deepEqual(short, { ok: false, problem: { code: 'invalid_request', detail: 'secret must decode to 16-64 bytes' } });
    const junk = await rig.service.enroll(rig.caller('hank2'), { type: 'hotp', secret: 'not base32 at all!' });
    assert.deepEqual(junk, { ok: false, problem: { code: 'invalid_request', detail: 'the secret must be RFC 4648 base32 (A-Z, 2-7)' } });
    const totpWithSecret = await rig.service.enroll(rig.caller('hank2'), { type: 'totp', secret });
    assert.equal(totpWithSecret.ok, false);
  });
});

describe('factor management needs a fresh second factor', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig();
  });
  afterEach(() => rig.close());

  test('second enrollment, removal and regeneration: step_up_required without a fresh factor, allowed with one', async () => {
    const { secret, factorId } = await enrollTotp(rig, 'mia');
    rig.clock.advance(6 * 60_000);
    const stale = await rig.service.enroll(rig.caller('mia'), { type: 'totp' });
    assert.deepEqual(stale, { ok: false, problem: { code: 'step_up_required', detail: 'a fresh second factor is required for this operation', maxAge: 300 } });
    assert.equal((await rig.service.regenerateRecoveryCodes(rig.caller('mia'))).ok, false);
    assert.equal((await rig.service.removeFactor(rig.caller('mia'), factorId)).ok, false);

    const second = await rig.service.enroll(rig.caller('mia', { mfaToken: oathTotp(secret, rig.clock()) }), { type: 'totp' });
    assert.ok(second.ok);
    // Confirming is activating a factor: the same step-up as enrolling one.
    const unconfirmed = await rig.service.confirm(rig.caller('mia'), second.enrollment.factorId, oathTotp(second.enrollment.secretBase32, rig.clock()));
    assert.deepEqual(unconfirmed, stale);

    rig.clock.advance(30_000);
    const session = await check(rig, 'mia', { mfaToken: oathTotp(secret, rig.clock()) });
    assert.ok(session.ok && session.session !== undefined);
    const confirmed = await rig.service.confirm(rig.caller('mia', { sessionToken: session.session.token }), second.enrollment.factorId, oathTotp(second.enrollment.secretBase32, rig.clock()));
    assert.deepEqual(confirmed, { ok: true, factorId: second.enrollment.factorId }, 'no new recovery codes for a second factor');
    const regenerated = await rig.service.regenerateRecoveryCodes(rig.caller('mia', { sessionToken: session.session.token }));
    assert.ok(regenerated.ok && regenerated.recoveryCodes.length === 10);
    assert.deepEqual(await rig.service.removeFactor(rig.caller('mia', { sessionToken: session.session.token }), factorId), { ok: true });
    // Removing a factor ended every session of the user, this one included.
    assert.equal((await rig.service.removeFactor(rig.caller('mia', { sessionToken: session.session.token }), factorId)).ok, false);
    assert.equal(problemOf(await check(rig, 'mia', { sessionToken: session.session.token })).code, 'session_invalid');
    const listed = await rig.service.listFactors('mia', rig.clock(), rig.policy);
    assert.deepEqual(listed.factors.map((f) => f.id), [second.enrollment.factorId]);
    assert.equal(listed.recoveryCodesRemaining, 10);
    assert.ok(!JSON.stringify(listed).includes(second.enrollment.secretBase32));
    assert.ok(!JSON.stringify(listed).includes('blob'));

    // Removing the last factor takes the recovery codes with it.
    rig.clock.advance(30_000);
    const last = await rig.service.removeFactor(rig.caller('mia', { mfaToken: oathTotp(second.enrollment.secretBase32, rig.clock()) }), second.enrollment.factorId);
    assert.deepEqual(last, { ok: true });
    assert.deepEqual(await rig.service.listFactors('mia', rig.clock(), rig.policy), { factors: [], recoveryCodesRemaining: 0 });
  });

  test('another user\'s pending factor cannot be confirmed; an expired one neither', async () => {
    const e = await rig.service.enroll(rig.caller('nora'), { type: 'totp' });
    assert.ok(e.ok);
    const code = oathTotp(e.enrollment.secretBase32, rig.clock());
    const notFound = { ok: false, problem: { code: 'not_found', detail: 'no pending factor with this id (it may have expired; enroll again)' } };
    assert.deepEqual(await rig.service.confirm(rig.caller('otto'), e.enrollment.factorId, code), notFound);
    rig.clock.advance(10 * 60_000 + 1);
    assert.deepEqual(await rig.service.confirm(rig.caller('nora'), e.enrollment.factorId, oathTotp(e.enrollment.secretBase32, rig.clock())), notFound);
  });

  test('factory options are validated', () => {
    assert.throws(() => createMfaService({ ...({} as object) } as never), { name: 'MfaError', code: 'ERR_MFA_INVALID_OPTION', message: 'option "durable" is required' });
    assert.throws(
      () => createMfaService({ durable: {} as DurableStore, ttl: rig.store.ttl as TtlStore, keyring: rig.keyring }),
      { name: 'MfaError', message: 'option "durable" must have a listFactors() method' },
    );
  });
});
