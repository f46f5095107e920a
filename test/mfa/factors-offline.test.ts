import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { enrollFactorOffline, listFactorsOffline as listFactors, removeFactorOffline as removeFactor } from '../../src/mfa/factors.js';
import { oathHotp, oathTotp } from '../support/otp.js';
import { credential } from '../store/durable-conformance.js';
import { createRig, route, type Rig } from './support.js';

describe('offline factor administration (CLI)', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = createRig();
  });
  afterEach(() => rig.close());
  const deps = () => ({ policy: rig.policy, durable: rig.store.durable, ttl: rig.store.ttl, keyring: rig.keyring, clock: rig.clock, audit: rig.auditLog.logger });

  test('enroll: active TOTP factor, terminal QR, recovery codes for the first factor; the service accepts its codes', async () => {
    const e = await enrollFactorOffline(deps(), { subject: 'ops-user', label: 'Phone' });
    assert.equal(e.status, 'active');
    assert.equal(e.type, 'totp');
    assert.equal(e.recoveryCodes?.length, 10);
    assert.match(e.otpauthUri, /^otpauth:\/\/totp\/Test%20Gateway:ops-user\?secret=[A-Z2-7]{32}&/);
    assert.ok(e.terminalQr.split('\n').length > 10);
    const r = await rig.check('ops-user', { mfaToken: oathTotp(e.secretBase32, rig.clock()) }, route('mfa'));
    assert.ok(r.ok && r.method === 'totp');

    rig.clock.advance(1000); // factors list oldest first
    const hw = await enrollFactorOffline(deps(), { subject: 'ops-user', type: 'hotp', secret: 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', counter: 9 });
    assert.equal(hw.recoveryCodes, undefined, 'not the first factor');
    const h = await rig.check('ops-user', { mfaToken: oathHotp('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ', 10) }, route('mfa'));
    assert.ok(h.ok && h.method === 'hotp');

    const { factors: listed } = await listFactors(deps(), 'ops-user');
    assert.deepEqual(listed.map((f) => [f.type, f.status, f.label]), [['totp', 'active', 'Phone'], ['hotp', 'active', 'Hardware token']]);
    assert.ok(!JSON.stringify(listed).includes(e.secretBase32));

    assert.equal(await removeFactor(deps(), 'someone-else', e.factorId), false);
    assert.equal(await removeFactor(deps(), 'ops-user', e.factorId), true);
    assert.equal(await rig.store.durable.countRecoveryCodes('ops-user'), 10);
    assert.equal(await removeFactor(deps(), 'ops-user', hw.factorId), true);
    assert.equal(await rig.store.durable.countRecoveryCodes('ops-user'), 0, 'recovery codes go with the last factor');

    const text = rig.log.text() + rig.auditLog.text();
    for (const s of [e.secretBase32, ...e.recoveryCodes!]) assert.ok(!text.includes(s));
    const events = rig.auditLog.events().filter((ev) => ev.request_id === 'cli').map((ev) => ev.event);
    assert.deepEqual(events, ['enrolled', 'recovery_codes_generated', 'enrolled', 'factor_removed', 'sessions_revoked', 'factor_removed', 'sessions_revoked']);
  });

  test('a user with only a passkey keeps their recovery codes when an operator enrolls a TOTP factor; list and remove show and take credentials', async () => {
    await rig.store.durable.createWebAuthnCredential(credential({ id: 'w-ops', subject: 'pk-user' }));
    await rig.store.durable.replaceRecoveryCodes('pk-user', ['k1$a', 'k1$b'], rig.clock());
    const e = await enrollFactorOffline(deps(), { subject: 'pk-user' });
    assert.equal(e.recoveryCodes, undefined, 'not the first factor');
    assert.equal(await rig.store.durable.countRecoveryCodes('pk-user'), 2);
    const listed = await listFactors(deps(), 'pk-user');
    assert.deepEqual(listed.factors.map((f) => [f.type, f.id]), [['totp', e.factorId], ['webauthn', 'w-ops']]);
    assert.equal(listed.recoveryCodesHint, 'only 2 recovery codes are left; generate a new set with POST /.mfa/recovery-codes');
    assert.equal(await removeFactor(deps(), 'pk-user', 'w-ops'), true);
    assert.deepEqual((await listFactors(deps(), 'pk-user')).factors.map((f) => f.type), ['totp']);
  });

  test('pending enrollment, and bad input throws a typed error without the secret', async () => {
    const pending = await enrollFactorOffline(deps(), { subject: 'later', activate: false });
    assert.equal(pending.status, 'pending');
    assert.equal(pending.recoveryCodes, undefined);
    await assert.rejects(enrollFactorOffline(deps(), { subject: 'x', type: 'hotp', secret: 'GEZDGNBV' }), { name: 'MfaError', code: 'ERR_MFA_INVALID_INPUT', message: 'secret must decode to 16-64 bytes' });
    await assert.rejects(enrollFactorOffline(deps(), { subject: 'x', type: 'hotp' }), { name: 'MfaError', message: 'secret (base32) is required for type "hotp"' });
  });
});
