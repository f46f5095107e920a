import assert from 'node:assert/strict';
import type { Caller, MfaService } from '../../src/mfa/service.js';
import type { FakeClock } from './clock.js';
import { call } from './http.js';
import { oathTotp } from './otp.js';

/**
 * Enrolling a TOTP factor the way a user does: enroll, read the secret into the authenticator app
 * (oathtool), confirm with its current code. Through the MFA service, or over HTTP through any door.
 */

export interface EnrolledTotp {
  readonly factorId: string;
  /** Base32, as the authenticator app got it. */
  readonly secret: string;
  /** Empty when the factor was not the user's first. */
  readonly recoveryCodes: string[];
}

/** What enrolling through the service needs: the service, and a caller on the current clock. */
export interface ServiceDoor {
  readonly service: MfaService;
  readonly clock: FakeClock;
  caller(subject: string, headers: { method: string }): Caller;
}

/** Enrolls and confirms a TOTP factor for `subject` through the MFA service. Leaves the clock where it was. */
export async function enrollTotp(door: ServiceDoor, subject: string): Promise<EnrolledTotp> {
  const enrolled = await door.service.enroll(door.caller(subject, { method: 'POST' }), { type: 'totp' });
  if (!enrolled.ok) throw new Error(`enroll failed: ${enrolled.problem.code}`);
  const secret = enrolled.enrollment.secretBase32;
  const confirmed = await door.service.confirm(door.caller(subject, { method: 'POST' }), enrolled.enrollment.factorId, oathTotp(secret, door.clock()));
  if (!confirmed.ok) throw new Error(`confirm failed: ${confirmed.problem.code}`);
  return { factorId: enrolled.enrollment.factorId, secret, recoveryCodes: confirmed.recoveryCodes ?? [] };
}

/**
 * Enrolls and confirms a TOTP factor through the MFA endpoints under `prefix` at `port` (the gateway,
 * nginx in front of it, or an app with the guard), as the holder of `bearer`; asserts each answer.
 * Leaves the clock one step past the confirm code, which the replay guard has used up.
 */
export async function enrollTotpOverHttp(port: number, bearer: string, clock: FakeClock, prefix = '/.mfa/'): Promise<EnrolledTotp> {
  const enrolled = await call(port, 'POST', `${prefix}totp/enroll`, { authorization: `Bearer ${bearer}` });
  assert.equal(enrolled.status, 201, enrolled.text);
  const { factor_id: factorId, secret } = enrolled.json<{ factor_id: string; secret: string }>();
  assert.match(secret, /^[A-Z2-7]+=*$/);
  const body = JSON.stringify({ factor_id: factorId, code: oathTotp(secret, clock()) });
  const confirmed = await call(port, 'POST', `${prefix}totp/confirm`, { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' }, body);
  assert.equal(confirmed.status, 200, confirmed.text);
  const recoveryCodes = confirmed.json<{ recovery_codes: string[] }>().recovery_codes;
  assert.equal(recoveryCodes.length, 10);
  clock.advanceStep();
  return { factorId, secret, recoveryCodes };
}
