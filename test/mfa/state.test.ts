import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MAX_HOTP_COUNTER, verifyHotp } from '../../src/mfa/hotp.js';
import { revokeSessionsOffline } from '../../src/mfa/factors.js';
import { base32Decode, base32Encode } from '../../src/mfa/base32.js';
import { enrollTotp } from '../support/enroll.js';
import { oathHotp, oathTotp } from '../support/otp.js';
import { createRig, route, type Rig } from './support.js';

/**
 * MFA state an attacker with only a stolen bearer token could bend: pending factors planted
 * before the owner's first enrolment, sessions outliving the factor that made them, unbounded
 * sessions per user, counters that turn a check into a 500, and the drift hint (service.test.ts).
 */

const MFA = route('mfa');

async function sessionOf(rig: Rig, subject: string, secret: string): Promise<string> {
  rig.clock.advance(30_000);
  const verified = await rig.service.verify(rig.caller(subject, { mfaToken: oathTotp(secret, rig.clock()) }));
  assert.ok(verified.ok, 'verify');
  return verified.session.token;
}

describe('pending factors', () => {
  const rig = createRig();
  after(() => rig.close());

  test('a factor planted before the first enrolment is voided when the first factor activates, and can never be confirmed', async () => {
    // The thief, holding only the bearer token, enrols his own authenticator and leaves it pending.
    const planted = await rig.service.enroll(rig.caller('olga'), { type: 'totp' });
    assert.ok(planted.ok);
    // The owner enrols and confirms hers (first factor: no step-up needed).
    const mine = await enrollTotp(rig, 'olga');
    const voided = rig.auditLog.events().filter((ev) => ev.event === 'pending_factor_voided');
    assert.deepEqual(voided.map((ev) => [ev.subject, ev.factor_id]), [['olga', planted.enrollment.factorId]]);
    // The thief's code for his factor: gone, with or without a fresh second factor.
    const notFound = { ok: false, problem: { code: 'not_found', detail: 'no pending factor with this id (it may have expired; enroll again)' } };
    rig.clock.advance(30_000);
    assert.deepEqual(await rig.service.confirm(rig.caller('olga'), planted.enrollment.factorId, oathTotp(planted.enrollment.secretBase32, rig.clock())), notFound);
    const fresh = rig.caller('olga', { sessionToken: await sessionOf(rig, 'olga', mine.secret) });
    assert.deepEqual(await rig.service.confirm(fresh, planted.enrollment.factorId, oathTotp(planted.enrollment.secretBase32, rig.clock())), notFound);
    assert.deepEqual((await rig.service.listFactors('olga', rig.clock(), rig.policy)).factors.map((f) => f.id), [mine.factorId]);
  });
});

describe('sessions of a subject', () => {
  const rig = createRig({ mfa: { session: { ttlMs: 12 * 3_600_000, maxPerSubject: 3 } } });
  after(() => rig.close());

  test('no more than max_per_subject live sessions: the oldest is evicted', async () => {
    const { secret } = await enrollTotp(rig, 'pete');
    const sessions: string[] = [];
    for (let i = 0; i < 5; i++) sessions.push(await sessionOf(rig, 'pete', secret));
    const alive = await Promise.all(sessions.map(async (token) => (await rig.check('pete', { sessionToken: token }, MFA)).ok));
    assert.deepEqual(alive, [false, false, true, true, true]);
  });

  test('"log me out everywhere" needs a fresh second factor, then ends every session of the user and no one else\'s', async () => {
    const { secret } = await enrollTotp(rig, 'quinn');
    const other = await enrollTotp(rig, 'rhea');
    const a = await sessionOf(rig, 'quinn', secret);
    const b = await sessionOf(rig, 'quinn', secret);
    const hers = await sessionOf(rig, 'rhea', other.secret);
    rig.clock.advance(6 * 60_000);
    const stale = await rig.service.revokeAllSessions(rig.caller('quinn', { sessionToken: a }));
    assert.deepEqual(stale.ok ? undefined : stale.problem.code, 'step_up_required', 'a 6-minute-old session is not fresh enough');
    const fresh = await sessionOf(rig, 'quinn', secret);
    assert.deepEqual(await rig.service.revokeAllSessions(rig.caller('quinn', { sessionToken: fresh })), { ok: true, revoked: 3 });
    for (const token of [a, b, fresh]) assert.equal((await rig.check('quinn', { sessionToken: token }, MFA)).ok, false);
    assert.equal((await rig.check('rhea', { sessionToken: hers }, MFA)).ok, true);
    // A session issued afterwards works: the cut-off is a point in time, not a ban.
    assert.equal((await rig.check('quinn', { sessionToken: await sessionOf(rig, 'quinn', secret) }, MFA)).ok, true);
    const audited = rig.auditLog.events().filter((ev) => ev.event === 'sessions_revoked' && ev.subject === 'quinn');
    assert.deepEqual(audited.map((ev) => [ev.count, ev.reason]), [[3, 'user']]);
  });

  test('the operator ends a user\'s sessions offline (CLI) and through the service (admin API)', async () => {
    const { secret } = await enrollTotp(rig, 'sam');
    const one = await sessionOf(rig, 'sam', secret);
    assert.equal(await revokeSessionsOffline({ ttl: rig.store.ttl, clock: rig.clock, audit: rig.auditLog.logger }, 'sam'), 1);
    // The service caches a live session for up to 2 s; it had not read this one yet.
    assert.equal((await rig.check('sam', { sessionToken: one }, MFA)).ok, false);
    const two = await sessionOf(rig, 'sam', secret);
    assert.equal((await rig.check('sam', { sessionToken: two }, MFA)).ok, true, 'now cached in this process');
    assert.equal(await rig.service.endSessionsOf('sam', rig.clock()), 1);
    assert.equal((await rig.check('sam', { sessionToken: two }, MFA)).ok, false, 'the local cache is dropped at once');
  });
});

describe('HOTP counters', () => {
  const rig = createRig();
  after(() => rig.close());
  const secret = base32Encode(Buffer.from('12345678901234567890', 'ascii'));

  test('a counter past the bound is refused at enrolment with a clear error', async () => {
    for (const counter of [MAX_HOTP_COUNTER + 1, 2 ** 53 - 2, Number.MAX_SAFE_INTEGER]) {
      const result = await rig.service.enroll(rig.caller('tom'), { type: 'hotp', secret, counter });
      assert.deepEqual(result, { ok: false, problem: { code: 'invalid_request', detail: `counter must be an integer from 0 to ${MAX_HOTP_COUNTER}` } });
    }
  });

  test('the highest allowed counter still verifies, and its look-ahead stays exact', () => {
    const bytes = base32Decode(secret);
    const code = oathHotp(secret, MAX_HOTP_COUNTER + 3);
    assert.equal(verifyHotp({ secret: bytes, counter: MAX_HOTP_COUNTER, code, lookAhead: 5, algorithm: 'SHA1', digits: 6 }), MAX_HOTP_COUNTER + 3);
  });

  test('a counter past the bound in the store (edited by hand) makes a code fail like a wrong one, never a 500', async () => {
    const added = await rig.service.enroll(rig.caller('uma'), { type: 'hotp', secret, counter: 0 });
    assert.ok(added.ok);
    assert.ok((await rig.service.confirm(rig.caller('uma'), added.enrollment.factorId, oathHotp(secret, 0))).ok);
    assert.ok(await rig.store.durable.advanceHotpCounter(added.enrollment.factorId, 1, 2 ** 53 - 1));
    const result = await rig.check('uma', { mfaToken: oathHotp(secret, 2 ** 53 - 1) }, MFA);
    assert.deepEqual(result.ok ? undefined : result.problem.code, 'mfa_invalid');
    const resync = await rig.service.resyncHotp(rig.caller('uma'), added.enrollment.factorId, oathHotp(secret, 5), oathHotp(secret, 6));
    assert.deepEqual(resync.ok ? undefined : resync.problem.code, 'mfa_invalid');
  });
});
