/**
 * Errors of the secret-encryption layer. Messages never carry key material, plaintext or
 * ciphertext: a malformed key line is reported by its line number only.
 */
import { GatewayError } from '../errors/gateway-error.js';

const CODES = [
  // No key at all (no file, empty file, unset variable): the gateway must not start.
  'ERR_KEYRING_MISSING',
  // A key line or the key set as a whole is invalid (bad syntax, duplicate kid, not exactly one primary).
  'ERR_KEYRING_MALFORMED',
  // `keys init` was asked to create a key file that already exists (it is never overwritten).
  'ERR_KEYRING_EXISTS',
  // The key file exists but cannot be read or written.
  'ERR_KEYRING_UNREADABLE',
  // Unknown kid, wrong key, tampered blob or associated data: deliberately no detail.
  'ERR_KEYRING_DECRYPT_FAILED',
  // `hmac` asked for a kid the keyring does not hold.
  'ERR_KEYRING_UNKNOWN_KID',
  // A factory or function was called with a bad option.
  'ERR_KEYRING_INVALID_OPTION',
] as const;

export type KeyringErrorCode = (typeof CODES)[number];

export class KeyringError extends GatewayError<KeyringErrorCode> {
  static override readonly codes = CODES;
}
