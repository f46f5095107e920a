export type StoreErrorCode =
  /** A factory or method was called with a bad option or value. */
  | 'invalid_option'
  /** The store was closed. */
  | 'closed'
  /** The database was written by a newer version of the gateway. */
  | 'schema_too_new'
  /** The configured backend is not part of this build. */
  | 'unsupported'
  /** A record with this id already exists. */
  | 'conflict';

const BRAND = Symbol.for('mfa-gateway.StoreError');

export class StoreError extends Error {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;
  readonly [BRAND] = true;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }

  static is(value: unknown): value is StoreError {
    return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
  }
}
