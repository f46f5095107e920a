import { timingSafeEqual } from 'node:crypto';

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

/** The client's input, ready to be compared with each candidate code in constant time. */
export interface CodeMatcher {
  matches(candidate: string): boolean;
}

export function codeMatcher(code: string): CodeMatcher {
  const input = Buffer.from(code, 'utf8');
  return {
    matches(candidate) {
      const expected = Buffer.from(candidate, 'latin1');
      // The input's length is the client's own business, not a secret: only equal lengths compare.
      if (expected.length !== input.length) {
        timingSafeEqual(expected, expected);
        return false;
      }
      return timingSafeEqual(input, expected);
    },
  };
}
