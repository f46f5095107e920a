import { randomBytes, randomUUID } from 'node:crypto';
import type { GatewayPolicy, OtpAlgorithm } from '../config/types.js';
import type { Keyring } from '../crypto/keyring.js';
import type { DurableStore, FactorRecord, FactorType } from '../store/types.js';
import { base32Decode, base32Encode } from './base32.js';
import { MfaError } from './errors.js';
import { MAX_HOTP_COUNTER, MAX_SECRET_BYTES, MIN_SECRET_BYTES } from './hotp.js';
import { buildOtpauthUri, formatManualKey } from './otpauth.js';
import { generateRecoveryCodes, recoveryHash, normalizeRecoveryCode } from './recovery.js';

/**
 * Building factors: a fresh secret (or a hardware token's given one) sealed to its row, the
 * otpauth URI and manual key to show once, and the recovery codes that come with a first factor.
 * Used by the HTTP endpoints and by the offline CLI alike.
 */

/** RFC 4226 / 6238 key length = the hash's output length. */
const SECRET_BYTES: Readonly<Record<OtpAlgorithm, number>> = { SHA1: 20, SHA256: 32, SHA512: 64 };
/** A factor's label: 1-64 characters, none a control or format character. */
export const LABEL = /^[^\p{Cc}\p{Cf}]{1,64}$/u;
/** Every factor type, once (a new FactorType that is missing here fails to compile). */
const TYPES: Readonly<Record<FactorType, true>> = { totp: true, hotp: true };
export const FACTOR_TYPES = Object.keys(TYPES) as readonly FactorType[];
export const MAX_PENDING_FACTORS = 5;
export const MAX_FACTORS = 10;

export interface FactorRequest {
  readonly type: FactorType;
  /** A hardware token's secret (base32); required for hotp, not allowed for totp. */
  readonly secret?: string | undefined;
  /** HOTP: the token's next counter (default 0). */
  readonly counter?: number | undefined;
  readonly label?: string | undefined;
  /** HOTP only (TOTP follows the policy): the token's algorithm and digits. */
  readonly algorithm?: OtpAlgorithm | undefined;
  readonly digits?: number | undefined;
}

export interface NewFactor {
  readonly record: FactorRecord;
  /** Base32, shown once to the user; never logged. */
  readonly secretBase32: string;
  readonly otpauthUri: string;
  readonly manualKey: string;
}

/** A label a user may give a factor: 1-64 printable characters. */
export function validLabel(label: unknown): label is string {
  return typeof label === 'string' && LABEL.test(label);
}

/** Checks a factor request; throws MfaError `ERR_MFA_INVALID_INPUT` naming the field (never echoing a secret). */
export function checkFactorRequest(request: FactorRequest): void {
  if (request.type !== 'totp' && request.type !== 'hotp') throw new MfaError('ERR_MFA_INVALID_INPUT', 'type must be "totp" or "hotp"');
  if (request.label !== undefined && !validLabel(request.label)) {
    throw new MfaError('ERR_MFA_INVALID_INPUT', 'label must be 1-64 printable characters');
  }
  if (request.type === 'totp') {
    for (const field of ['secret', 'counter', 'algorithm', 'digits'] as const) {
      if (request[field] !== undefined) throw new MfaError('ERR_MFA_INVALID_INPUT', `${field} is only accepted for type "hotp" (TOTP secrets are generated)`);
    }
    return;
  }
  if (typeof request.secret !== 'string') throw new MfaError('ERR_MFA_INVALID_INPUT', 'secret (base32) is required for type "hotp"');
  const bytes = base32Decode(request.secret);
  const length = bytes.length;
  bytes.fill(0);
  if (length < MIN_SECRET_BYTES || length > MAX_SECRET_BYTES) {
    throw new MfaError('ERR_MFA_INVALID_INPUT', `secret must decode to ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES} bytes`);
  }
  if (request.counter !== undefined && (typeof request.counter !== 'number' || !Number.isSafeInteger(request.counter) || request.counter < 0 || request.counter > MAX_HOTP_COUNTER)) {
    throw new MfaError('ERR_MFA_INVALID_INPUT', `counter must be an integer from 0 to ${MAX_HOTP_COUNTER}`);
  }
  if (request.algorithm !== undefined && !['SHA1', 'SHA256', 'SHA512'].includes(request.algorithm)) {
    throw new MfaError('ERR_MFA_INVALID_INPUT', 'algorithm must be SHA1, SHA256 or SHA512');
  }
  if (request.digits !== undefined && request.digits !== 6 && request.digits !== 8) throw new MfaError('ERR_MFA_INVALID_INPUT', 'digits must be 6 or 8');
}

/** A new factor record (pending unless `active`), its secret sealed to (subject, factor id). */
export function buildFactor(input: {
  readonly subject: string;
  readonly request: FactorRequest;
  readonly policy: GatewayPolicy;
  readonly keyring: Keyring;
  readonly now: number;
  readonly active?: boolean;
}): NewFactor {
  const { subject, request, policy, keyring, now } = input;
  checkFactorRequest(request);
  const totp = policy.mfa.totp;
  const algorithm = request.type === 'totp' ? totp.algorithm : (request.algorithm ?? 'SHA1');
  const digits = request.type === 'totp' ? totp.digits : (request.digits ?? 6);
  const secret = request.type === 'totp' ? randomBytes(SECRET_BYTES[algorithm]) : base32Decode(request.secret!);
  const id = randomUUID();
  const counter = request.type === 'hotp' ? (request.counter ?? 0) : 0;
  const sealed = keyring.seal(secret, { subject, factorId: id });
  const secretBase32 = base32Encode(secret);
  secret.fill(0);
  const base = {
    id,
    subject,
    type: request.type,
    label: request.label ?? (request.type === 'totp' ? 'Authenticator app' : 'Hardware token'),
    secret: sealed,
    algorithm,
    digits,
    periodSeconds: totp.periodSeconds,
    counter,
    createdAt: now,
  };
  const record: FactorRecord = input.active === true ? { ...base, status: 'active', confirmedAt: now } : { ...base, status: 'pending', pendingUntil: now + policy.mfa.enrollment.pendingTtlMs };
  const otpauthUri =
    request.type === 'totp'
      ? buildOtpauthUri({ type: 'totp', issuer: policy.mfa.issuer, account: subject, secretBase32, algorithm, digits, periodSeconds: totp.periodSeconds })
      : buildOtpauthUri({ type: 'hotp', issuer: policy.mfa.issuer, account: subject, secretBase32, algorithm, digits, counter });
  return { record, secretBase32, otpauthUri, manualKey: formatManualKey(secretBase32) };
}

/** Replaces a subject's recovery codes by `count` fresh ones (hashed under the primary key); returns them for display. */
export async function issueRecoveryCodes(durable: Pick<DurableStore, 'replaceRecoveryCodes'>, keyring: Keyring, subject: string, count: number, now: number): Promise<string[]> {
  const codes = generateRecoveryCodes(count);
  const hashes = codes.map((code) => recoveryHash(keyring, subject, normalizeRecoveryCode(code)!));
  await durable.replaceRecoveryCodes(subject, hashes, now);
  return codes;
}

/** What a factor looks like to its owner: no secret, not even sealed. */
export interface FactorSummary {
  readonly id: string;
  readonly type: FactorType;
  readonly status: 'pending' | 'active';
  readonly label: string;
  readonly algorithm: OtpAlgorithm;
  readonly digits: number;
  readonly periodSeconds?: number;
  /** Unix seconds. */
  readonly createdAt: number;
  readonly confirmedAt?: number;
  readonly pendingUntil?: number;
}

export function summarizeFactor(f: FactorRecord): FactorSummary {
  const seconds = (ms: number) => Math.floor(ms / 1000);
  return {
    id: f.id,
    type: f.type,
    status: f.status,
    label: f.label,
    algorithm: f.algorithm,
    digits: f.digits,
    ...(f.type === 'totp' ? { periodSeconds: f.periodSeconds } : {}),
    createdAt: seconds(f.createdAt),
    ...(f.confirmedAt !== undefined ? { confirmedAt: seconds(f.confirmedAt) } : {}),
    ...(f.pendingUntil !== undefined ? { pendingUntil: seconds(f.pendingUntil) } : {}),
  };
}
