import { GatewayError } from '../errors/gateway-error.js';

const CODES = [
  // A factory or method was called with a bad option or value.
  'ERR_STORE_INVALID_OPTION',
  // The store was closed.
  'ERR_STORE_CLOSED',
  // The database was written by a newer version of the gateway.
  'ERR_STORE_SCHEMA_TOO_NEW',
  // The configured backend is not part of this build.
  'ERR_STORE_UNSUPPORTED',
  // A record with this id already exists.
  'ERR_STORE_CONFLICT',
  // The database cannot be reached or cannot answer now (refused, timed out, pool exhausted, shutting
  // down, statement timeout): transient: callers fail closed (503) and try again later, never retry in a loop.
  'ERR_STORE_UNAVAILABLE',
  // The schema lacks migrations this gateway needs and `migrate: manual` forbids applying them at start.
  'ERR_STORE_SCHEMA_BEHIND',
  // An import would mix its records with factors the store already holds.
  'ERR_STORE_NOT_EMPTY',
  // An export file is malformed, truncated or of a format version this gateway does not read.
  'ERR_STORE_EXPORT_FORMAT',
] as const;

export type StoreErrorCode = (typeof CODES)[number];

export class StoreError extends GatewayError<StoreErrorCode> {
  static override readonly codes = CODES;
}

/** Every backend's refusal of a credential whose id or authenticator credential id is taken. */
export function credentialConflict(): StoreError {
  return new StoreError('ERR_STORE_CONFLICT', 'a WebAuthn credential with this id or credential id is already registered');
}
