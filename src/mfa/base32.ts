import { MfaError } from './errors.js';

/** RFC 4648 base32, the encoding authenticator apps and otpauth URIs use for secrets. */
const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Upper-case, unpadded (Google's key-URI format drops the `=`). */
export function base32Encode(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

/**
 * Decodes a secret typed or pasted by a person: case-insensitive, spaces, dashes and trailing `=`
 * ignored. Anything else throws `ERR_MFA_INVALID_INPUT` (the message never repeats the input: it is a secret).
 */
export function base32Decode(text: string): Buffer {
  if (typeof text !== 'string') throw new MfaError('ERR_MFA_INVALID_INPUT', 'the secret must be a base32 string');
  const clean = text.replace(/[\s-]/g, '').replace(/=+$/, '').toUpperCase();
  if (clean === '' || !/^[A-Z2-7]+$/.test(clean)) throw new MfaError('ERR_MFA_INVALID_INPUT', 'the secret must be RFC 4648 base32 (A-Z, 2-7)');
  const out: number[] = [];
  let buffer = 0;
  let bits = 0;
  for (const ch of clean) {
    buffer = (buffer << 5) | ALPHABET.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      out.push((buffer >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
    buffer &= (1 << bits) - 1;
  }
  return Buffer.from(out);
}
