import { digestCode, isOtpShaped } from './code.js';
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
  /** When no step in the window matched but one within ±DRIFT_STEPS did: its offset in steps. */
  readonly driftSteps?: number;
}

/**
 * Always computes every candidate in ±max(window, DRIFT_STEPS) and compares each in constant time,
 * so the work is the same for a right, wrong, early, late or malformed code.
 */
export function verifyTotp(input: TotpVerifyInput): TotpVerifyResult {
  const shaped = isOtpShaped(input.code, input.digits);
  const code = digestCode(input.code);
  const now = totpStep(input.nowMs, input.periodSeconds);
  const reach = Math.max(input.window, DRIFT_STEPS);
  let step: number | undefined;
  let drift: number | undefined;
  for (let offset = -reach; offset <= reach; offset++) {
    if (now + offset < 0) continue;
    const hit = code.matches(totpCode(input.secret, now + offset, input));
    if (!hit) continue;
    if (Math.abs(offset) <= input.window) step = now + offset;
    else if (drift === undefined || Math.abs(offset) < Math.abs(drift)) drift = offset;
  }
  if (!shaped) return {};
  if (step !== undefined) return { step };
  return drift === undefined ? {} : { driftSteps: drift };
}
