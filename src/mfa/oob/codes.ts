import { randomInt } from 'node:crypto';
import type { Keyring } from '../../crypto/keyring.js';

/**
 * Codes sent by e-mail or SMS: 6 random digits, kept in the store only as a keyed hash bound to the
 * subject and the contact (so a code for one contact is nothing for another, and a store dump
 * holds nothing to type in), like recovery codes.
 */

const SENT_CODE_DIGITS = 6;
const HASH_PURPOSE = 'sent-code';

/** Exactly six ASCII digits (no unicode digits, spaces or signs): anything else is malformed. */
export function isSentCodeShaped(input: string): boolean {
  return /^[0-9]{6}$/.test(input);
}

export function generateSentCode(): string {
  return String(randomInt(0, 10 ** SENT_CODE_DIGITS)).padStart(SENT_CODE_DIGITS, '0');
}

/** The stored hash of `code` for `contactId` under one key (`kid$hex`; default: the primary). */
export function sentCodeHash(keyring: Keyring, subject: string, contactId: string, code: string, kid?: string): string {
  return keyring.hmac(HASH_PURPOSE, `${subject}:${contactId}:${code}`, kid);
}

/**
 * The hash of `input` under every key, primary first (a code sent just before a key rotation still
 * works). Input that cannot be a code is hashed as a filler instead, so every attempt costs the same.
 */
export function sentCodeCandidates(keyring: Keyring, subject: string, contactId: string, input: string): string[] {
  // '!' is no digit: the filler never equals a real code's hash.
  const code = isSentCodeShaped(input) ? input : '!not-a-code!';
  return keyring.kids().map((kid) => sentCodeHash(keyring, subject, contactId, code, kid));
}
