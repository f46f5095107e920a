import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import type { Route } from '../../src/config/types.js';
import type { Problem } from '../../src/errors/problems.js';
import { renderProblem } from '../../src/errors/problems.js';
import { clientSessionHeaders } from '../../src/contract/headers.js';
import type { FactorMethod } from '../../src/routes/factor-methods.js';
import { enrollTotp } from '../support/enroll.js';
import { oathHotp, oathTotp, wrongTotp } from '../support/otp.js';
import { createRig, route, type Rig } from './support.js';

/**
 * A route's own `methods:` and factor lifetimes at request time, on the real service and stores:
 * which factors satisfy which route, what is refused without counting as a guess, and what the
 * answers say (factor_expired, mfa_method_not_accepted, recovery codes left).
 */

const DAY = 86_400_000;
const HOTP_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

function only(methods: FactorMethod[], policy: Route['policy'] = 'mfa', maxAgeMs?: number): Route {
  return { ...route(policy, maxAgeMs), mfaMethods: methods };
}

function problemOf(result: { ok: boolean; problem?: Problem }): Problem {
  assert.equal(result.ok, false, 'expected a refusal');
  return result.problem!;
}

describe('route methods and factor lifetimes', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig();
  });
  afterEach(() => rig.close());

  test('methods: [totp] takes a TOTP code; refuses a recovery code and an HOTP-only user unverified and uncounted', async () => {
    const alice = await enrollTotp(rig, 'alice');
    rig.clock.advanceStep();
    const totpOnly = only(['totp']);
    // A recovery code's shape is not a TOTP code's: refused before any check, many times, no lock.
    for (let i = 0; i < 5; i++) {
      assert.deepEqual(problemOf(await rig.check('alice', { mfaToken: alice.recoveryCodes[0]! }, totpOnly)), {
        code: 'mfa_method_not_accepted',
        detail: 'this route accepts a second factor by totp only; a code in X-MFA-Token does not satisfy it',
        maxAge: 43_200,
        methods: ['totp'],
      });
    }
    assert.equal(await rig.store.ttl.lockRemainingMs('alice', rig.clock()), 0);
    const ok = await rig.check('alice', { mfaToken: oathTotp(alice.secret, rig.clock()) }, totpOnly);
    assert.ok(ok.ok && ok.method === 'totp');
    // The recovery code was never consumed.
    assert.equal(await rig.store.durable.countRecoveryCodes('alice'), 10);

    // A wrong six-digit code is a guess of an allowed kind: it counts.
    rig.clock.advanceStep();
    assert.equal(problemOf(await rig.check('alice', { mfaToken: wrongTotp(alice.secret, rig.clock()) }, totpOnly)).code, 'mfa_invalid');
    assert.equal(rig.auditLog.events().filter((e) => e.event === 'failed').length, 1);
    const challenged = problemOf(await rig.check('alice', {}, totpOnly));
    assert.deepEqual(challenged, { code: 'mfa_required', detail: 'a second factor is required for this route', maxAge: 43_200, methods: ['totp'] });
    assert.equal(
      renderProblem(challenged).headers['www-authenticate'],
      'Bearer error="insufficient_user_authentication", error_description="a second factor is required for this route", max_age=43200, mfa_methods="totp"',
    );
  });

  test('a user with no factor of an accepted kind is told which kinds the route takes', async () => {
    await enrollTotp(rig, 'alice');
    assert.deepEqual(problemOf(await rig.check('alice', {}, only(['hotp']))), {
      code: 'mfa_not_enrolled',
      detail: 'no second factor of a kind this route accepts (hotp) is enrolled for this user',
      methods: ['hotp'],
      hint: 'register a hardware token with POST /.mfa/totp/enroll {"type":"hotp"}',
    });
    // A code for a kind the route takes, with none enrolled: refused, not counted.
    assert.equal(problemOf(await rig.check('alice', { mfaToken: '123456' }, only(['hotp']))).code, 'mfa_not_enrolled');
    assert.equal(rig.auditLog.events().filter((e) => e.event === 'failed').length, 0);
    // A recovery code on a route without recovery: refused as such, the alternatives listed as a person reads them.
    assert.equal(problemOf(await rig.check('alice', { mfaToken: 'aaaa-bbbb-cccc' }, only(['webauthn', 'hotp', 'idp']))).detail, 'this route accepts a second factor by webauthn, hotp or idp only; a code in X-MFA-Token does not satisfy it');
  });

  test('a session satisfies a route only when the route accepts the method that opened it', async () => {
    const alice = await enrollTotp(rig, 'alice');
    rig.clock.advanceStep();
    const opened = await rig.service.verify(rig.caller('alice', { method: 'POST', mfaToken: alice.recoveryCodes[3]! }));
    assert.ok(opened.ok && opened.method === 'recovery');
    const token = opened.session.token;
    assert.ok((await rig.check('alice', { sessionToken: token }, only(['recovery', 'totp']))).ok);
    assert.deepEqual(problemOf(await rig.check('alice', { sessionToken: token }, only(['totp'], 'step_up', 60_000))), {
      code: 'mfa_method_not_accepted',
      detail: 'this route accepts a second factor by totp only; a session opened by recovery does not satisfy it',
      maxAge: 60,
      methods: ['totp'],
    });
    // A code in the same request still decides.
    assert.ok((await rig.check('alice', { sessionToken: token, mfaToken: oathTotp(alice.secret, rig.clock()) }, only(['totp']))).ok);
  });

  test('IdP-asserted MFA satisfies a restricted route only when it lists idp', async () => {
    rig.policy = { ...rig.policy, auth: { jwt: { ...rig.policy.auth.jwt, acceptIdpMfa: true } } };
    await enrollTotp(rig, 'alice');
    const idp = { amr: ['mfa'], authTime: Math.floor(rig.clock() / 1000) };
    assert.equal((await rig.check('alice', {}, only(['idp']), idp)).ok, true);
    assert.equal(problemOf(await rig.check('alice', {}, only(['totp']), idp)).code, 'mfa_required');
  });

  test('TOTP and HOTP past mfa.*.max_age: refused naming the factor, uncounted; recovery codes still work; sessions end with the factor', async () => {
    rig.policy = { ...rig.policy, mfa: { ...rig.policy.mfa, totp: { ...rig.policy.mfa.totp, maxAgeMs: 30 * DAY }, hotp: { ...rig.policy.mfa.hotp, maxAgeMs: 10 * DAY } } };
    const confirmedAt = rig.clock();
    const alice = await enrollTotp(rig, 'alice');
    const expiresAt = confirmedAt + 30 * DAY;

    rig.clock.set(expiresAt - 60_000);
    const late = await rig.check('alice', { mfaToken: oathTotp(alice.secret, rig.clock()) }, route('mfa'));
    assert.ok(late.ok && late.session !== undefined);
    assert.equal(late.session.expiresAt, Math.floor(expiresAt / 1000), 'the session ends with its factor');

    rig.clock.set(expiresAt + 31_000);
    const expired = {
      code: 'factor_expired',
      detail: `the second factor "Authenticator app" reached the end of its lifetime on ${new Date(expiresAt).toISOString().slice(0, 10)}; register it again`,
      hint: 'register an authenticator app with POST /.mfa/totp/enroll; the step-up that asks for takes a recovery code, then remove the old factor with DELETE /.mfa/factors/{id}',
    };
    for (let i = 0; i < 4; i++) assert.deepEqual(problemOf(await rig.check('alice', { mfaToken: oathTotp(alice.secret, rig.clock()) }, route('mfa'))), expired);
    assert.equal(await rig.store.ttl.lockRemainingMs('alice', rig.clock()), 0, 'a code of its own (old) factor is no guess');
    // With nothing usable left: no code → the same news; a wrong code counts and says so too.
    const every = { ...expired, detail: 'every second factor of this user that this route accepts has reached the end of its lifetime; register a new one' };
    assert.deepEqual(problemOf(await rig.check('alice', {}, route('mfa'))), every);
    assert.deepEqual(problemOf(await rig.check('alice', { mfaToken: '000000' }, route('mfa'))), every);
    assert.equal(rig.auditLog.events().filter((e) => e.event === 'failed').length, 1);
    // The way back: a recovery code is the step-up that enrolling a new factor needs.
    const recovered = await rig.service.enroll(rig.caller('alice', { method: 'POST', mfaToken: alice.recoveryCodes[0]! }), { type: 'hotp', secret: HOTP_SECRET });
    assert.ok(recovered.ok);
    const listed = await rig.service.listFactors('alice', rig.clock(), rig.policy);
    assert.deepEqual(
      listed.factors.map((f) => ({ type: f.type, status: f.status, expired: f.expired, expiresAt: f.expiresAt })),
      [
        { type: 'totp', status: 'active', expired: true, expiresAt: Math.floor(expiresAt / 1000) },
        { type: 'hotp', status: 'pending', expired: undefined, expiresAt: undefined },
      ],
    );
    const hotp = await rig.service.confirm(rig.caller('alice', { method: 'POST', mfaToken: alice.recoveryCodes[1]! }), recovered.enrollment.factorId, oathHotp(HOTP_SECRET, 0));
    assert.ok(hotp.ok);
    assert.ok((await rig.check('alice', { mfaToken: oathHotp(HOTP_SECRET, 1) }, route('mfa'))).ok);
  });

  test('a recovery code says how many are left, and from two left on suggests a new set (verify, proxied headers, factors)', async () => {
    const alice = await enrollTotp(rig, 'alice');
    for (let used = 1; used <= 9; used++) {
      const opened = await rig.service.verify(rig.caller('alice', { method: 'POST', mfaToken: alice.recoveryCodes[used]! }));
      assert.ok(opened.ok);
      const remaining = 10 - used;
      const hint = remaining <= 2 ? `only ${remaining} recovery code${remaining === 1 ? ' is' : 's are'} left; generate a new set with POST /.mfa/recovery-codes` : undefined;
      assert.equal(opened.session.recoveryCodesRemaining, remaining);
      assert.equal(opened.session.recoveryCodesHint, hint);
      const headers = clientSessionHeaders(opened.session)!;
      assert.equal(headers['x-recovery-codes-remaining'], String(remaining));
      assert.equal(headers['x-recovery-codes-hint'], hint);
      const listed = await rig.service.listFactors('alice', rig.clock(), rig.policy);
      assert.equal(listed.recoveryCodesRemaining, remaining);
      assert.equal(listed.recoveryCodesHint, hint);
    }
    // A TOTP session says nothing about recovery codes.
    rig.clock.advanceStep();
    const totp = await rig.service.verify(rig.caller('alice', { method: 'POST', mfaToken: oathTotp(alice.secret, rig.clock()) }));
    assert.ok(totp.ok);
    assert.deepEqual(Object.keys(clientSessionHeaders(totp.session)!), ['x-session-token', 'x-session-expires']);
  });
});
