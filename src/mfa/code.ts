import { createHash, timingSafeEqual } from 'node:crypto';

/**
 * What a client typed into X-MFA-Token, judged without branching on secrets. An OTP is exactly
 * `digits` ASCII digits: unicode digits, spaces, a leading `+` or another length are malformed, and
 * the caller answers a malformed code exactly like a wrong one.
 */
export function isOtpShaped(code: string, digits: number): boolean {
  if (code.length !== digits) return false;
  for (let i = 0; i < code.length; i++) {
    const c = code.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** A precomputed digest of the client's input, so comparing it with N candidates hashes it once. */
export interface CodeDigest {
  matches(candidate: string): boolean;
}

export function digestCode(code: string): CodeDigest {
  const input = digest(code);
  return { matches: (candidate) => timingSafeEqual(input, digest(candidate)) };
}
