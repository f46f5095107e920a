/**
 * `mfa-gateway/client`: the client side of the gateway's contract, for Node 20+ and browsers. It
 * imports nothing from the server and nothing Node-only (test/client/imports.test.ts checks it).
 */
export { createMfaClient, type CodeChallenge, type MfaClientOptions, type MfaFetch } from './client.js';
export { parseBearerChallenge, type BearerChallenge } from './challenge.js';
export { MfaBodyNotReplayableError, MfaClientError, MfaOptionError, MfaProblemError, type MfaClientErrorCode, type ProblemCode } from './errors.js';
export type { MfaSession } from './session.js';
export { backoffDelay, retryAfterMs, SOURCE_BACKOFF, type Backoff } from './timing.js';
