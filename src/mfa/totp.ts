import { codeMatcher, isOtpShaped } from './code.js';
import { hotpCode, type OtpParams } from './hotp.js';

/** TOTP (RFC 6238) on top of the HOTP core: the counter is the time step. */

/** A wrong code that would have matched this many steps away is reported as clock drift. */
export const DRIFT_STEPS = 10;

export interface TotpParams extends OtpParams {
  readonly periodSeconds: number;
}

/** The time step of `nowMs` (T0 = 0). */
export function totpStep(nowMs: number, periodSeconds: number): number {
  return Math.floor(nowMs / 1000 / periodSeconds);
}

export function totpCode(secret: Uint8Array, step: number, params: TotpParams): string {
  return hotpCode(secret, step, params);
}

export interface TotpVerifyInput extends TotpParams {
  readonly secret: Uint8Array;
  readonly code: string;
  readonly nowMs: number;
  /** Steps accepted either side of now. */
  readonly window: number;
}

export interface TotpVerifyResult {
  /** The matched step within ±window (the latest, if the code repeats), else undefined. */
  readonly step?: number;
}

/**
 * The code against every step in ±window, each compared in constant time: the same work for a
 * right, wrong, early, late or malformed code. This is all a good code costs.
 */
export function verifyTotp(input: TotpVerifyInput): TotpVerifyResult {
  const shaped = isOtpShaped(input.code, input.digits);
  const code = codeMatcher(input.code);
  const now = totpStep(input.nowMs, input.periodSeconds);
  let step: number | undefined;
  for (let offset = -input.window; offset <= input.window; offset++) {
    if (now + offset < 0) continue;
    if (code.matches(totpCode(input.secret, now + offset, input))) step = now + offset;
  }
  return shaped && step !== undefined ? { step } : {};
}

/**
 * For a code that failed: the offset, in steps, of the nearest step outside the window but within
 * ±DRIFT_STEPS where it would have matched (a device clock that is off), else undefined. Every
 * candidate is computed and compared, so every failure pays the same, whatever it was.
 */
export function findTotpDrift(input: TotpVerifyInput): number | undefined {
  const shaped = isOtpShaped(input.code, input.digits);
  const code = codeMatcher(input.code);
  const now = totpStep(input.nowMs, input.periodSeconds);
  const reach = Math.max(input.window, DRIFT_STEPS);
  let drift: number | undefined;
  for (let offset = -reach; offset <= reach; offset++) {
    if (Math.abs(offset) <= input.window || now + offset < 0) continue;
    const hit = code.matches(totpCode(input.secret, now + offset, input));
    if (hit && (drift === undefined || Math.abs(offset) < Math.abs(drift))) drift = offset;
  }
  return shaped ? drift : undefined;
}
