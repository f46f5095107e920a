import assert from 'node:assert/strict';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import type { Problem } from '../../src/errors/problems.js';
import type { MfaConfig } from '../../src/config/types.js';
import { enrollTotp } from '../support/enroll.js';
import { oathTotp, wrongTotp } from '../support/otp.js';
import { createRig, route, view, type Rig } from './support.js';

/**
 * `mfa.ip_throttle` through the MFA service, on the real SQLite store and a fake clock: failed
 * codes are counted per client address across all users, a blocked address is refused before
 * anything about the user is read, and the user's own lockout and sessions are untouched.
 */

const MINUTE = 60_000;
const MFA = route('mfa');
const THROTTLE: MfaConfig['ipThrottle'] = { enabled: true, maxFailures: 5, findTimeMs: 5 * MINUTE, blockMs: 15 * MINUTE };
const BLOCKED: Problem = { code: 'mfa_locked', detail: 'too many failed second-factor attempts from this network address; try again later', retryAfter: 900 };
const USERS = ['u0', 'u1', 'u2', 'u3', 'u4', 'target'];

function from(rig: Rig, clientIp: string, subject: string, headers: { mfaToken?: string; sessionToken?: string }) {
  const caller = rig.caller(subject, headers);
  return rig.service.checkSecondFactor({ ...caller, view: { ...view(headers), clientIp, forwardedFor: clientIp }, route: MFA });
}

describe('failed codes per client address, across all users', () => {
  // A fresh rig for each test, every user enrolled; the tests that need the address blocked block it first.
  let rig: Rig;
  let secrets: Map<string, string>;
  beforeEach(async () => {
    rig = createRig({ mfa: { ipThrottle: THROTTLE } });
    secrets = new Map();
    for (const subject of USERS) secrets.set(subject, (await enrollTotp(rig, subject)).secret);
    rig.clock.advance(30_000);
  });
  afterEach(() => rig.close());

  /** One wrong code for each of five users from 198.51.100.7: the fifth failure blocks the address. */
  async function blockAddress(): Promise<void> {
    for (const subject of USERS.slice(0, 5)) {
      const refused = await from(rig, '198.51.100.7', subject, { mfaToken: wrongTotp(secrets.get(subject)!, rig.clock()) });
      assert.equal(refused.ok ? 'ok' : refused.problem.code, 'mfa_invalid', subject);
    }
  }

  test('one wrong code for each of five users blocks the address, not any user', async () => {
    await blockAddress();
    const blocked = rig.auditLog.events().filter((event) => event.event === 'address_blocked');
    assert.deepEqual(blocked.map((event) => [event.subject, event.client_ip, event.failures, event.retry_after_seconds]), [['u4', '198.51.100.7', 5, 900]]);
    assert.match(await rig.metrics.registry.metrics(), /mfa_gateway_mfa_address_blocks_total 1\n/);
  });

  test('blocked: the right code, a user without a factor, a locked-out-looking user: one and the same answer', async () => {
    await blockAddress();
    const right = oathTotp(secrets.get('target')!, rig.clock());
    assert.deepEqual(await from(rig, '198.51.100.7', 'target', { mfaToken: right }), { ok: false, problem: BLOCKED });
    assert.deepEqual(await from(rig, '198.51.100.7', 'nobody-enrolled', { mfaToken: '123456' }), { ok: false, problem: BLOCKED });
    assert.deepEqual(await from(rig, '198.51.100.7', 'u0', {}), { ok: false, problem: BLOCKED });
    // The verify endpoint is refused the same way.
    const verify = await rig.service.verify({ ...rig.caller('target', { mfaToken: right }), view: { ...view({ mfaToken: right }), clientIp: '198.51.100.7' } });
    assert.deepEqual(verify, { ok: false, problem: BLOCKED });
    assert.equal(rig.auditLog.events().filter((event) => event.event === 'address_block_refused').length, 4);
    assert.match(await rig.metrics.registry.metrics(), /mfa_gateway_throttled_requests_total\{limit="mfa_ip"\} 4\n/);
  });

  test('another address is not affected, and no user reached its own lockout', async () => {
    await blockAddress();
    const target = await from(rig, '198.51.100.8', 'target', { mfaToken: oathTotp(secrets.get('target')!, rig.clock()) });
    assert.ok(target.ok, 'another address');
    rig.clock.advance(30_000);
    const u0 = await from(rig, '198.51.100.8', 'u0', { mfaToken: oathTotp(secrets.get('u0')!, rig.clock()) });
    assert.ok(u0.ok, 'u0 failed once only: its own lockout never triggered');
    assert.ok(u0.session !== undefined);

    // A session minted elsewhere is honoured from the blocked address: the block is on guessing codes.
    const withSession = await from(rig, '198.51.100.7', 'u0', { sessionToken: u0.session.token });
    assert.ok(withSession.ok, 'a valid session passes');
  });

  test('an IPv6 client counts as its /64: another address in it is blocked too', async () => {
    for (const subject of USERS.slice(0, 5)) {
      await from(rig, '2001:db8:7:7::1', subject, { mfaToken: wrongTotp(secrets.get(subject)!, rig.clock()) });
    }
    assert.deepEqual(await from(rig, '2001:db8:7:7:ffff::9', 'target', { mfaToken: '123456' }), { ok: false, problem: BLOCKED });
    // The next /64 is another client: it only gets the ordinary challenge.
    const next = await from(rig, '2001:db8:7:8::1', 'target', {});
    assert.equal(next.ok ? 'ok' : next.problem.code, 'mfa_required');
  });

  test('the block ends after `block`; the count then starts afresh', async () => {
    await blockAddress();
    rig.clock.advance(15 * MINUTE);
    const right = await from(rig, '198.51.100.7', 'u1', { mfaToken: oathTotp(secrets.get('u1')!, rig.clock()) });
    assert.ok(right.ok);
    const wrong = await from(rig, '198.51.100.7', 'u2', { mfaToken: wrongTotp(secrets.get('u2')!, rig.clock()) });
    assert.equal(wrong.ok ? 'ok' : wrong.problem.code, 'mfa_invalid');
  });
});

describe('ip_throttle disabled', () => {
  const rig = createRig({ mfa: { ipThrottle: { ...THROTTLE, enabled: false } } });
  after(() => rig.close());

  test('failures across users never block the address', async () => {
    const secrets: string[] = [];
    for (let i = 0; i < 7; i++) secrets.push((await enrollTotp(rig, `d${i}`)).secret);
    rig.clock.advance(30_000);
    for (let i = 0; i < 6; i++) {
      const refused = await from(rig, '198.51.100.7', `d${i}`, { mfaToken: wrongTotp(secrets[i]!, rig.clock()) });
      assert.equal(refused.ok ? 'ok' : refused.problem.code, 'mfa_invalid');
    }
    assert.ok((await from(rig, '198.51.100.7', 'd6', { mfaToken: oathTotp(secrets[6]!, rig.clock()) })).ok);
    assert.equal(await rig.store.ttl.blockedUntil('mfa-ip:198.51.100.7', rig.clock()), 0);
  });
});
