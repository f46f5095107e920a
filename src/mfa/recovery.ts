import { randomInt } from 'node:crypto';
import type { Keyring } from '../crypto/keyring.js';

/**
 * Recovery codes: `xxxx-xxxx-xxxx` from Crockford's base32 alphabet (no i, l, o, u), so 12 × 5 =
 * 60 bits each. Stored only as keyed hashes; accepted case-insensitively, with or without dashes,
 * and with Crockford's look-alikes (o → 0, i/l → 1) folded, since people copy them from paper.
 */
export const RECOVERY_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const GROUPS = 3;
const GROUP_LENGTH = 4;
const CODE_LENGTH = GROUPS * GROUP_LENGTH;
const HASH_PURPOSE = 'recovery';

export function generateRecoveryCode(): string {
  const groups: string[] = [];
  for (let g = 0; g < GROUPS; g++) {
    let group = '';
    for (let i = 0; i < GROUP_LENGTH; i++) group += RECOVERY_ALPHABET[randomInt(RECOVERY_ALPHABET.length)];
    groups.push(group);
  }
  return groups.join('-');
}

/** `count` distinct fresh codes, formatted for display. */
export function generateRecoveryCodes(count: number): string[] {
  const codes = new Set<string>();
  while (codes.size < count) codes.add(generateRecoveryCode());
  return [...codes];
}

/** The canonical form (12 lower-case alphabet characters), or undefined when it cannot be a code. */
export function normalizeRecoveryCode(input: string): string | undefined {
  if (input.length > CODE_LENGTH + GROUPS + 2) return undefined;
  let out = '';
  for (const raw of input) {
    if (raw === '-') continue;
    // Only ASCII letters are folded: toLowerCase of other scripts could map onto ASCII.
    const ch = raw >= 'A' && raw <= 'Z' ? raw.toLowerCase() : raw;
    const folded = ch === 'o' ? '0' : ch === 'i' || ch === 'l' ? '1' : ch;
    if (!RECOVERY_ALPHABET.includes(folded) || folded.length !== 1) return undefined;
    out += folded;
  }
  return out.length === CODE_LENGTH ? out : undefined;
}

/** The stored hash of one code under one key (`kid$hex`). */
export function recoveryHash(keyring: Keyring, subject: string, canonicalCode: string, kid?: string): string {
  return keyring.hmac(HASH_PURPOSE, `${subject}:${canonicalCode}`, kid);
}

/**
 * The hash of `canonicalCode` under every key, primary first: codes hashed before a key rotation
 * stay valid. For input that is not a code a filler is hashed instead, so the work is the same.
 */
export function recoveryHashCandidates(keyring: Keyring, subject: string, canonicalCode: string | undefined): string[] {
  // '!' is outside the alphabet: the filler can never equal a real code's hash.
  const data = canonicalCode ?? '!not-a-code!';
  return keyring.kids().map((kid) => recoveryHash(keyring, subject, data, kid));
}
