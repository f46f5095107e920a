import { StoreError } from './errors.js';
import type { DurableRecord, FactorRecord, ImportCounts, RecoveryCodeRecord, SealedSecret } from './types.js';

/**
 * The argument checks of the durable verbs, shared by every backend so that a bad value is refused
 * with the same code and message whichever database sits behind the store (and before it is sent).
 */

const ALGORITHMS = new Set(['SHA1', 'SHA256', 'SHA512']);

const invalid = (message: string) => new StoreError('ERR_STORE_INVALID_OPTION', message);

export function checkFactor(f: FactorRecord): void {
  const bad = (field: string, what: string) => invalid(`factor.${field} ${what}`);
  if (typeof f !== 'object' || f === null) throw invalid('factor must be an object');
  for (const field of ['id', 'subject'] as const) {
    if (typeof f[field] !== 'string' || f[field] === '') throw bad(field, 'must be a non-empty string');
  }
  if (typeof f.label !== 'string') throw bad('label', 'must be a string');
  if (f.type !== 'totp' && f.type !== 'hotp') throw bad('type', 'must be "totp" or "hotp"');
  if (f.status !== 'pending' && f.status !== 'active') throw bad('status', 'must be "pending" or "active"');
  if (typeof f.secret?.kid !== 'string' || typeof f.secret?.blob !== 'string' || f.secret.kid === '' || f.secret.blob === '') {
    throw bad('secret', 'must be a sealed secret { kid, blob }');
  }
  if (!ALGORITHMS.has(f.algorithm)) throw bad('algorithm', 'must be SHA1, SHA256 or SHA512');
  if (!Number.isSafeInteger(f.digits) || f.digits < 6 || f.digits > 10) throw bad('digits', 'must be an integer from 6 to 10');
  if (!Number.isSafeInteger(f.periodSeconds) || f.periodSeconds <= 0) throw bad('periodSeconds', 'must be a positive integer');
  if (!Number.isSafeInteger(f.counter) || f.counter < 0) throw bad('counter', 'must be a non-negative integer');
  if (!Number.isSafeInteger(f.createdAt)) throw bad('createdAt', 'must be unix milliseconds');
  if (f.status === 'pending' && !Number.isSafeInteger(f.pendingUntil)) throw bad('pendingUntil', 'is required (unix ms) for a pending factor');
  if (f.status === 'active' && f.pendingUntil !== undefined) throw bad('pendingUntil', 'must be undefined for an active factor');
  if (f.confirmedAt !== undefined && !Number.isSafeInteger(f.confirmedAt)) throw bad('confirmedAt', 'must be unix milliseconds');
}

export function checkNextCounter(next: number): void {
  if (!Number.isSafeInteger(next) || next < 0) throw invalid('the next HOTP counter must be a non-negative integer');
}

export function checkNextSecret(next: SealedSecret): void {
  if (typeof next?.kid !== 'string' || typeof next?.blob !== 'string' || next.kid === '' || next.blob === '') {
    throw invalid('the next secret must be a sealed secret { kid, blob }');
  }
}

export function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) throw invalid('limit must be a positive integer');
}

export function checkRecoveryHashes(subject: string, hashes: readonly string[]): void {
  if (typeof subject !== 'string' || subject === '') throw invalid('subject must be a non-empty string');
  if (!Array.isArray(hashes) || hashes.some((h) => typeof h !== 'string' || h === '')) throw invalid('hashes must be non-empty strings');
  if (new Set(hashes).size !== hashes.length) throw invalid('hashes must be unique');
}

export function checkRecoveryCode(code: RecoveryCodeRecord): void {
  if (typeof code !== 'object' || code === null) throw invalid('recovery code must be an object');
  if (typeof code.subject !== 'string' || code.subject === '') throw invalid('recoveryCode.subject must be a non-empty string');
  if (typeof code.hash !== 'string' || code.hash === '') throw invalid('recoveryCode.hash must be a non-empty string');
  if (!Number.isSafeInteger(code.createdAt)) throw invalid('recoveryCode.createdAt must be unix milliseconds');
  if (code.usedAt !== undefined && !Number.isSafeInteger(code.usedAt)) throw invalid('recoveryCode.usedAt must be unix milliseconds');
}

/** The refusal of an import into a store that already holds factors. */
export function notEmpty(factors: number): StoreError {
  return new StoreError('ERR_STORE_NOT_EMPTY', `the store already holds ${factors} factor${factors === 1 ? '' : 's'}; an import would mix two sets`);
}

/**
 * Checks each record of an import as it goes by and counts them; a duplicate is refused here, with
 * the same message on every backend, rather than as whatever constraint error the database raises.
 */
export function importTally(): { add(record: DurableRecord): void; counts(): ImportCounts } {
  const factorIds = new Set<string>();
  const codeKeys = new Set<string>();
  return {
    add(record) {
      if (record?.kind === 'factor') {
        checkFactor(record.factor);
        if (factorIds.has(record.factor.id)) throw new StoreError('ERR_STORE_CONFLICT', `the import holds factor ${JSON.stringify(record.factor.id)} twice`);
        factorIds.add(record.factor.id);
      } else if (record?.kind === 'recovery_code') {
        checkRecoveryCode(record.code);
        const key = JSON.stringify([record.code.subject, record.code.hash]);
        if (codeKeys.has(key)) throw new StoreError('ERR_STORE_CONFLICT', `the import holds a recovery code of ${JSON.stringify(record.code.subject)} twice`);
        codeKeys.add(key);
      } else {
        throw invalid('an import record must be a factor or a recovery_code');
      }
    },
    counts: () => ({ factors: factorIds.size, recoveryCodes: codeKeys.size }),
  };
}
