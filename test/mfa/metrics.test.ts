import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { missingBinary, OATHTOOL } from '../support/binaries.js';
import { fakeClock, intoCurrentStep, STEP_MS, type FakeClock } from '../support/clock.js';
import { enrollTotpOverHttp } from '../support/enroll.js';
import { startGatewayRig, type GatewayRig } from '../support/gateway.js';
import { call, type Reply } from '../support/http.js';
import { seriesValues } from '../support/metrics.js';
import { oathHotp, oathTotp, wrongTotp } from '../support/otp.js';
import { token } from '../support/tokens.js';
import { eventually } from '../support/wait.js';

/**
 * The MFA metrics operators chart, scraped from a real gateway after real requests: verifications
 * by method (the same label on success and failure), and enrolments started, confirmed and expired.
 */

const skip = missingBinary(OATHTOOL, 'oathtool');
/** RFC 4226's test secret, as a hardware token would come with. */
const HOTP_SECRET = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
const ROUTES = `routes:
  - { name: secure, match: { path_prefix: /secure/ }, upstream: app, policy: mfa }
default: deny
`;

interface Rig extends GatewayRig {
  readonly clock: FakeClock;
  bearer(subject: string): Promise<string>;
}

/** A gateway whose store purges expired enrolments every 50 ms, and whose lockout stays out of the way. */
async function startRig(): Promise<Rig> {
  const clock = fakeClock(intoCurrentStep());
  const rig = await startGatewayRig(ROUTES, { clock, cleanupIntervalMs: 50, mfa: '  lockout: { max_failures: 100 }\n  enrollment: { pending_ttl: 1m }\n' });
  return { ...rig, clock, bearer: (subject) => token(subject, { now: clock() }) };
}

/** `method/result` → count, from every series of the verifications counter. */
const verifications = (text: string): Record<string, number> => seriesValues(text, 'mfa_gateway_mfa_verifications_total', ['method', 'result']);

/** What changed between two readings, zeros left out. */
function delta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const changed: Record<string, number> = {};
  for (const [key, value] of Object.entries(after)) if (value !== (before[key] ?? 0)) changed[key] = value - (before[key] ?? 0);
  return changed;
}

describe('mfa_gateway_mfa_verifications_total: one method label for an attempt, whatever its outcome', { skip }, () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig();
  });
  after(() => rig.close());

  const secure = async (subject: string, headers: Record<string, string>): Promise<Reply> =>
    call(rig.port, 'GET', '/secure/x', { authorization: `Bearer ${await rig.bearer(subject)}`, ...headers });

  test('codes are labelled by what they were tried as: the factor kind, recovery, or otp for a subject with two kinds', async () => {
    const alice = await enrollTotpOverHttp(rig.port, await rig.bearer('alice'), rig.clock);
    // Bob adds a hardware token to his TOTP app, with the step-up a session from a code gives him.
    const bob = await enrollTotpOverHttp(rig.port, await rig.bearer('bob'), rig.clock);
    const bobAuth = { authorization: `Bearer ${await rig.bearer('bob')}`, 'content-type': 'application/json' };
    const opened = await call(rig.port, 'POST', '/.mfa/verify', { ...bobAuth, 'x-mfa-token': oathTotp(bob.secret, rig.clock()) });
    assert.equal(opened.status, 200, opened.text);
    const session = { 'x-session-token': opened.json<{ session_token: string }>().session_token };
    const hotp = await call(rig.port, 'POST', '/.mfa/totp/enroll', { ...bobAuth, ...session }, JSON.stringify({ type: 'hotp', secret: HOTP_SECRET }));
    assert.equal(hotp.status, 201, hotp.text);
    const factorId = hotp.json<{ factor_id: string }>().factor_id;
    const confirmed = await call(rig.port, 'POST', '/.mfa/totp/confirm', { ...bobAuth, ...session }, JSON.stringify({ factor_id: factorId, code: oathHotp(HOTP_SECRET, 0) }));
    assert.equal(confirmed.status, 200, confirmed.text);
    rig.clock.advanceStep();

    const before = verifications(await rig.scrape());
    await expectAttempts('alice', [
      ['a good TOTP code', oathTotp(alice.secret, rig.clock()), 200],
      ['the same code again (replay)', oathTotp(alice.secret, rig.clock()), 401],
      ['a wrong code', wrongTotp(alice.secret, rig.clock()), 401],
      ['a malformed code', 'abc', 401],
      ['the code of a step 90 s away (a drifting clock)', oathTotp(alice.secret, rig.clock() + 3 * STEP_MS), 401],
      ['a recovery code', alice.recoveryCodes[0]!, 200],
      ['a wrong recovery code', 'zzzz-zzzz-zzzz', 401],
    ]);
    await expectAttempts('bob', [
      ['a good TOTP code', oathTotp(bob.secret, rig.clock()), 200],
      ['the TOTP code of a step 90 s away', oathTotp(bob.secret, rig.clock() - 3 * STEP_MS), 401],
      ['a wrong code', wrongTotp(bob.secret, rig.clock()), 401],
      ['a good HOTP code', oathHotp(HOTP_SECRET, 1), 200],
      ['the same HOTP code again', oathHotp(HOTP_SECRET, 1), 401],
    ]);
    const text = await rig.scrape();
    assert.deepEqual(delta(before, verifications(text)), {
      'totp/success': 1,
      'totp/failure': 4,
      'recovery/success': 1,
      'recovery/failure': 1,
      // Bob's near-miss TOTP code, his wrong code and his replayed HOTP code look alike here.
      'otp/success': 2,
      'otp/failure': 3,
    });
    assert.doesNotMatch(text, /method="code"/);
  });

  async function expectAttempts(subject: string, attempts: [string, string, number][]): Promise<void> {
    for (const [what, code, status] of attempts) {
      const reply = await secure(subject, { 'x-mfa-token': code });
      assert.equal(reply.status, status, `${subject}: ${what}: ${reply.text}`);
    }
  }

  test('sessions keep their own label, success and failure', async () => {
    const before = verifications(await rig.scrape());
    const carol = await enrollTotpOverHttp(rig.port, await rig.bearer('carol'), rig.clock);
    const opened = await secure('carol', { 'x-mfa-token': oathTotp(carol.secret, rig.clock()) });
    assert.equal(opened.status, 200);
    const session = String(opened.headers['x-session-token']);
    assert.equal((await secure('carol', { 'x-session-token': session })).status, 200);
    assert.equal((await secure('carol', { 'x-session-token': 'A'.repeat(43) })).status, 401);
    assert.deepEqual(delta(before, verifications(await rig.scrape())), {
      // The confirm code, then the code on /secure/.
      'totp/success': 2,
      'session/success': 1,
      'session/failure': 1,
    });
  });
});

/** `type/event` → count, from every series of the enrolments counter. */
const enrollments = (text: string): Record<string, number> => seriesValues(text, 'mfa_gateway_mfa_enrollments_total', ['type', 'event']);

describe('mfa_gateway_mfa_enrollments_total: started, confirmed, expired', { skip }, () => {
  let rig: Rig;
  before(async () => {
    rig = await startRig();
  });
  after(() => rig.close());

  test('every series exists at 0 from the start', async () => {
    assert.deepEqual(enrollments(await rig.scrape()), {
      'hotp/confirmed': 0,
      'hotp/expired': 0,
      'hotp/started': 0,
      'totp/confirmed': 0,
      'totp/expired': 0,
      'totp/started': 0,
    });
  });

  test('pending factors voided by the first confirmation and those left to time out count as expired', async () => {
    const bearer = (subject: string) => rig.bearer(subject).then((jwt) => ({ authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }));
    const enroll = async (subject: string, body?: string): Promise<string> => {
      const reply = await call(rig.port, 'POST', '/.mfa/totp/enroll', await bearer(subject), body);
      assert.equal(reply.status, 201, reply.text);
      return reply.json<{ factor_id: string }>().factor_id;
    };
    // Erin starts two enrolments that the one she confirms (through the helper) voids.
    await enroll('erin');
    await enroll('erin', JSON.stringify({ type: 'hotp', secret: HOTP_SECRET }));
    await enrollTotpOverHttp(rig.port, await rig.bearer('erin'), rig.clock);
    // Frank starts one and walks away: it expires after pending_ttl (1m) and the store purges it.
    await enroll('frank');
    assert.deepEqual(enrollments(await rig.scrape()), {
      'hotp/confirmed': 0,
      'hotp/expired': 1,
      'hotp/started': 1,
      'totp/confirmed': 1,
      'totp/expired': 1,
      'totp/started': 3,
    });

    rig.clock.advance(60_000);
    await eventually(async () => enrollments(await rig.scrape())['totp/expired'] === 2, 5_000);
    assert.deepEqual(enrollments(await rig.scrape()), {
      'hotp/confirmed': 0,
      'hotp/expired': 1,
      'hotp/started': 1,
      'totp/confirmed': 1,
      'totp/expired': 2,
      'totp/started': 3,
    });
  });
});
