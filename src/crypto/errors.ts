/**
 * Errors of the secret-encryption layer. Messages never carry key material, plaintext or
 * ciphertext: a malformed key line is reported by its line number only.
 */
export type KeyringErrorCode =
  /** No key at all (no file, empty file, unset variable): the gateway must not start. */
  | 'keys_missing'
  /** A key line or the key set as a whole is invalid (bad syntax, duplicate kid, not exactly one primary). */
  | 'keys_malformed'
  /** The key file exists but cannot be read or written. */
  | 'keys_unreadable'
  /** Unknown kid, wrong key, tampered blob or associated data: deliberately no detail. */
  | 'decrypt_failed'
  /** `hmac` asked for a kid the keyring does not hold. */
  | 'unknown_kid'
  /** A factory or function was called with a bad option. */
  | 'invalid_option';

const BRAND = Symbol.for('mfa-gateway.KeyringError');

export class KeyringError extends Error {
  override readonly name = 'KeyringError';
  readonly code: KeyringErrorCode;
  readonly [BRAND] = true;

  constructor(code: KeyringErrorCode, message: string) {
    super(message);
    this.code = code;
  }

  /** Works across copies of the package, unlike `instanceof`. */
  static is(value: unknown): value is KeyringError {
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }
}
