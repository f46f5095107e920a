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
  // down, statement timeout): transient, so callers fail closed and try again later, never retry in a loop.
  'ERR_STORE_UNAVAILABLE',
] as const;

export type StoreErrorCode = (typeof CODES)[number];

export class StoreError extends GatewayError<StoreErrorCode> {
  static override readonly codes = CODES;
}
