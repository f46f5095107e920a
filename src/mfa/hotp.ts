import { createHmac } from 'node:crypto';
import { counterToBytes, dynamicTruncate, truncateDigits } from '@otplib/core';
import type { OtpAlgorithm } from '../config/types.js';
import { codeMatcher, isOtpShaped } from './code.js';

/**
 * HOTP (RFC 4226): otplib's own steps (@otplib/core: counter bytes, dynamic truncation, digits)
 * around Node's HMAC (OpenSSL). Not otplib's generateSync: it validates and normalises its options
 * on every call, which cost as much as the HMAC itself, and a verification computes 3 codes (the
 * ±1 window), a failure 21 (the drift scan). Secrets and parameters are checked once, at enrolment.
 */
const NODE_HASH: Readonly<Record<OtpAlgorithm, string>> = { SHA1: 'sha1', SHA256: 'sha256', SHA512: 'sha512' };

export interface OtpParams {
  readonly algorithm: OtpAlgorithm;
  /** 6 or 8 (the store accepts up to 10 but nothing here enrolls more than 8). */
  readonly digits: number;
}

/**
 * The highest counter a factor may hold: far beyond any token's life (2^48 presses), and low
 * enough that counter + look-ahead + resync window stays an exact integer (below 2^53), so no
 * stored counter can make a check fail with an error instead of a refusal.
 */
export const MAX_HOTP_COUNTER = 2 ** 48;

/** Secrets shorter than this are refused at enrolment (RFC 4226 §4 asks for 128 bits). */
export const MIN_SECRET_BYTES = 16;
export const MAX_SECRET_BYTES = 64;

export function hotpCode(secret: Uint8Array, counter: number, params: OtpParams): string {
  const mac = createHmac(NODE_HASH[params.algorithm], secret).update(counterToBytes(counter)).digest();
  return truncateDigits(dynamicTruncate(mac), params.digits);
}

export interface HotpVerifyInput extends OtpParams {
  readonly secret: Uint8Array;
  /** The next counter the server expects. */
  readonly counter: number;
  readonly code: string;
  /** How many counters past `counter` are also accepted (a token pressed without being used). */
  readonly lookAhead: number;
}

/**
 * The matched counter, or undefined. Always computes all `lookAhead + 1` candidates and compares
 * each in constant time, so a malformed, early or late code costs the same.
 */
export function verifyHotp(input: HotpVerifyInput): number | undefined {
  const shaped = isOtpShaped(input.code, input.digits);
  const code = codeMatcher(input.code);
  // A counter past the bound (only a store edited by hand holds one) never matches, at the same cost.
  const usable = Number.isSafeInteger(input.counter) && input.counter >= 0 && input.counter <= MAX_HOTP_COUNTER;
  const start = usable ? input.counter : 0;
  let matched: number | undefined;
  for (let c = start; c <= start + input.lookAhead; c++) {
    const hit = code.matches(hotpCode(input.secret, c, input));
    if (hit && matched === undefined) matched = c;
  }
  return shaped && usable ? matched : undefined;
}

export interface HotpResyncInput extends OtpParams {
  readonly secret: Uint8Array;
  readonly counter: number;
  readonly code1: string;
  readonly code2: string;
  /** How far past `counter` to search for the pair. */
  readonly searchWindow: number;
}

/**
 * RFC 4226 §7.4 resynchronisation: finds c in [counter, counter + searchWindow] with code1 at c and
 * code2 at c + 1; returns the counter to expect next (c + 2), or undefined.
 */
export function resyncHotp(input: HotpResyncInput): number | undefined {
  const shaped = isOtpShaped(input.code1, input.digits) && isOtpShaped(input.code2, input.digits);
  const first = codeMatcher(input.code1);
  const second = codeMatcher(input.code2);
  const usable = Number.isSafeInteger(input.counter) && input.counter >= 0 && input.counter <= MAX_HOTP_COUNTER;
  const start = usable ? input.counter : 0;
  let found: number | undefined;
  let previousHit = false;
  for (let c = start; c <= start + input.searchWindow + 1; c++) {
    const candidate = hotpCode(input.secret, c, input);
    const hit2 = second.matches(candidate);
    if (previousHit && hit2 && found === undefined) found = c + 1;
    previousHit = first.matches(candidate);
  }
  return shaped && usable ? found : undefined;
}
