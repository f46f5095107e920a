import { hash, timingSafeEqual } from 'node:crypto';

/**
 * SHA-256 of a credential (bearer token, MFA session, setup token), hex: what caches and stores key
 * on, so none of them ever holds the credential itself. One-shot `crypto.hash`: no Hash object per call.
 */
export function sha256Hex(text: string): string {
  return hash('sha256', text, 'hex');
}

/** Equal strings, compared in time that depends only on their lengths (never on where they differ). */
export function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}
