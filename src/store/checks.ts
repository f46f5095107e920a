import { StoreError } from './errors.js';
import type { ContactRecord, DurableRecord, FactorRecord, FailureRule, ImportCounts, LockoutRule, RecoveryCodeRecord, SealedSecret, StoredSession, TokenWindow, WebAuthnCredentialRecord } from './types.js';

/**
 * The argument checks of every store verb, durable and short-lived, shared by every backend so that
 * a bad value is refused with the same code and message whichever store sits behind (and before
 * anything is sent to it).
 */

const ALGORITHMS = new Set(['SHA1', 'SHA256', 'SHA512']);

const invalid = (message: string) => new StoreError('ERR_STORE_INVALID_OPTION', message);

/** What a factor and a contact share: id and owner, a label, a sealed value, and the pending → active life. */
interface Enrolled {
  readonly id: string;
  readonly subject: string;
  readonly label: string;
  readonly status: string;
  readonly createdAt: number;
  readonly pendingUntil?: number | undefined;
  readonly confirmedAt?: number | undefined;
}

/** Checks those shared fields of `record` (called `what` in messages, its sealed value at `sealedKey`). */
function checkEnrolled(what: 'factor' | 'contact', record: Enrolled, sealedKey: 'secret' | 'destination', sealed: SealedSecret): (field: string, message: string) => StoreError {
  const bad = (field: string, message: string) => invalid(`${what}.${field} ${message}`);
  if (typeof record !== 'object' || record === null) throw invalid(`${what} must be an object`);
  for (const field of ['id', 'subject'] as const) {
    if (typeof record[field] !== 'string' || record[field] === '') throw bad(field, 'must be a non-empty string');
  }
  if (typeof record.label !== 'string') throw bad('label', 'must be a string');
  if (record.status !== 'pending' && record.status !== 'active') throw bad('status', 'must be "pending" or "active"');
  if (typeof sealed?.kid !== 'string' || typeof sealed?.blob !== 'string' || sealed.kid === '' || sealed.blob === '') {
    throw bad(sealedKey, 'must be a sealed secret { kid, blob }');
  }
  if (!Number.isSafeInteger(record.createdAt)) throw bad('createdAt', 'must be unix milliseconds');
  if (record.status === 'pending' && !Number.isSafeInteger(record.pendingUntil)) throw bad('pendingUntil', `is required (unix ms) for a pending ${what}`);
  if (record.status === 'active' && record.pendingUntil !== undefined) throw bad('pendingUntil', `must be undefined for an active ${what}`);
  if (record.confirmedAt !== undefined && !Number.isSafeInteger(record.confirmedAt)) throw bad('confirmedAt', 'must be unix milliseconds');
  return bad;
}

export function checkFactor(f: FactorRecord): void {
  const bad = checkEnrolled('factor', f, 'secret', f?.secret);
  if (f.type !== 'totp' && f.type !== 'hotp') throw bad('type', 'must be "totp" or "hotp"');
  if (!ALGORITHMS.has(f.algorithm)) throw bad('algorithm', 'must be SHA1, SHA256 or SHA512');
  if (!Number.isSafeInteger(f.digits) || f.digits < 6 || f.digits > 10) throw bad('digits', 'must be an integer from 6 to 10');
  if (!Number.isSafeInteger(f.periodSeconds) || f.periodSeconds <= 0) throw bad('periodSeconds', 'must be a positive integer');
  if (!Number.isSafeInteger(f.counter) || f.counter < 0) throw bad('counter', 'must be a non-negative integer');
}

export function checkContact(c: ContactRecord): void {
  const bad = checkEnrolled('contact', c, 'destination', c?.destination);
  if (c.channel !== 'email' && c.channel !== 'sms') throw bad('channel', 'must be "email" or "sms"');
  if (c.purpose !== 'factor' && c.purpose !== 'backup') throw bad('purpose', 'must be "factor" or "backup"');
}

/** Transports as browsers name them (`usb`, `hybrid`, `smart-card`, …): comma-free tokens, stored comma-joined. */
const TRANSPORT = /^[a-z][a-z-]{0,31}$/;

export function checkWebAuthnCredential(c: WebAuthnCredentialRecord): void {
  const bad = (field: string, what: string) => invalid(`credential.${field} ${what}`);
  if (typeof c !== 'object' || c === null) throw invalid('credential must be an object');
  for (const field of ['id', 'subject', 'credentialId'] as const) {
    if (typeof c[field] !== 'string' || c[field] === '') throw bad(field, 'must be a non-empty string');
  }
  if (!/^[A-Za-z0-9_-]{1,1366}$/.test(c.credentialId)) throw bad('credentialId', 'must be base64url (at most 1023 bytes)');
  if (typeof c.publicKey?.kid !== 'string' || typeof c.publicKey?.blob !== 'string' || c.publicKey.kid === '' || c.publicKey.blob === '') {
    throw bad('publicKey', 'must be a sealed secret { kid, blob }');
  }
  if (!Number.isSafeInteger(c.signCount) || c.signCount < 0 || c.signCount > 0xffff_ffff) throw bad('signCount', 'must be an integer from 0 to 2^32 - 1');
  if (!Array.isArray(c.transports) || c.transports.length > 8 || c.transports.some((t) => typeof t !== 'string' || !TRANSPORT.test(t))) {
    throw bad('transports', 'must be at most 8 transport names');
  }
  if (c.kind !== 'security_key' && c.kind !== 'platform') throw bad('kind', 'must be "security_key" or "platform"');
  if (typeof c.synced !== 'boolean') throw bad('synced', 'must be true or false');
  if (typeof c.label !== 'string') throw bad('label', 'must be a string');
  if (!Number.isSafeInteger(c.createdAt)) throw bad('createdAt', 'must be unix milliseconds');
  if (c.lastUsedAt !== undefined && !Number.isSafeInteger(c.lastUsedAt)) throw bad('lastUsedAt', 'must be unix milliseconds');
}

/** A signature counter as authenticators send it: 32 bits. */
export function checkSignCount(next: number): void {
  if (!Number.isSafeInteger(next) || next < 0 || next > 0xffff_ffff) throw invalid('the signature counter must be an integer from 0 to 2^32 - 1');
}

export function checkLabel(label: unknown): asserts label is string {
  if (typeof label !== 'string') throw invalid('label must be a string');
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
export function notEmpty(factors: number, contacts: number): StoreError {
  const held = [`${factors} factor${factors === 1 ? '' : 's'}`, ...(contacts > 0 ? [`${contacts} contact${contacts === 1 ? '' : 's'}`] : [])].join(' and ');
  return new StoreError('ERR_STORE_NOT_EMPTY', `the store already holds ${held}; an import would mix two sets`);
}

/**
 * Checks each record of an import as it goes by and counts them; a duplicate is refused here, with
 * the same message on every backend, rather than as whatever constraint error the database raises.
 */
export function importTally(): { add(record: DurableRecord): void; counts(): ImportCounts } {
  const factorIds = new Set<string>();
  const codeKeys = new Set<string>();
  const contactIds = new Set<string>();
  const credentialIds = new Set<string>();
  const authenticatorIds = new Set<string>();
  return {
    add(record) {
      if (record?.kind === 'webauthn_credential') {
        const c = record.credential;
        checkWebAuthnCredential(c);
        // One id space with the factors: /.mfa/factors/{id} names either.
        if (credentialIds.has(c.id) || factorIds.has(c.id) || contactIds.has(c.id)) throw new StoreError('ERR_STORE_CONFLICT', `the import holds factor ${JSON.stringify(c.id)} twice`);
        if (authenticatorIds.has(c.credentialId)) throw new StoreError('ERR_STORE_CONFLICT', `the import holds the WebAuthn credential of factor ${JSON.stringify(c.id)} twice`);
        credentialIds.add(c.id);
        authenticatorIds.add(c.credentialId);
      } else if (record?.kind === 'factor') {
        checkFactor(record.factor);
        if (factorIds.has(record.factor.id) || credentialIds.has(record.factor.id) || contactIds.has(record.factor.id)) throw new StoreError('ERR_STORE_CONFLICT', `the import holds factor ${JSON.stringify(record.factor.id)} twice`);
        factorIds.add(record.factor.id);
      } else if (record?.kind === 'recovery_code') {
        checkRecoveryCode(record.code);
        const key = JSON.stringify([record.code.subject, record.code.hash]);
        if (codeKeys.has(key)) throw new StoreError('ERR_STORE_CONFLICT', `the import holds a recovery code of ${JSON.stringify(record.code.subject)} twice`);
        codeKeys.add(key);
      } else if (record?.kind === 'contact') {
        checkContact(record.contact);
        // One id space with factors and credentials: /.mfa/factors/{id} names any of them.
        if (contactIds.has(record.contact.id) || factorIds.has(record.contact.id) || credentialIds.has(record.contact.id)) throw new StoreError('ERR_STORE_CONFLICT', `the import holds contact ${JSON.stringify(record.contact.id)} twice`);
        contactIds.add(record.contact.id);
      } else {
        throw invalid('an import record must be a factor, a recovery_code, a contact or a webauthn_credential');
      }
    },
    counts: () => ({ factors: factorIds.size, recoveryCodes: codeKeys.size, contacts: contactIds.size, webauthnCredentials: credentialIds.size }),
  };
}

// ---- the short-lived (TTL) verbs ----

export function checkKey(key: unknown, name = 'key'): asserts key is string {
  if (typeof key !== 'string' || key === '') throw new StoreError('ERR_STORE_INVALID_OPTION', `${name} must be a non-empty string`);
}

export function checkDuration(ms: unknown, name: string): asserts ms is number {
  if (typeof ms !== 'number' || !Number.isSafeInteger(ms) || ms <= 0) throw new StoreError('ERR_STORE_INVALID_OPTION', `${name} must be a positive integer of milliseconds`);
}

export function checkTime(now: unknown): asserts now is number {
  if (typeof now !== 'number' || !Number.isSafeInteger(now) || now < 0) throw new StoreError('ERR_STORE_INVALID_OPTION', 'now must be unix milliseconds');
}

export function checkCount(value: unknown, name: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw new StoreError('ERR_STORE_INVALID_OPTION', `${name} must be a positive integer`);
}

export function checkWindow(window: TokenWindow): void {
  if (typeof window !== 'object' || window === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'window must be { limit, windowMs }');
  checkCount(window.limit, 'window.limit');
  checkDuration(window.windowMs, 'window.windowMs');
}

export function checkRule(rule: FailureRule): void {
  if (typeof rule !== 'object' || rule === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'rule must be { maxFailures, findTimeMs, blockMs }');
  checkCount(rule.maxFailures, 'rule.maxFailures');
  checkDuration(rule.findTimeMs, 'rule.findTimeMs');
  checkDuration(rule.blockMs, 'rule.blockMs');
}

export function checkLockoutRule(rule: LockoutRule): void {
  if (typeof rule !== 'object' || rule === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'rule must be { maxFailures, findTimeMs, backoffMs }');
  checkCount(rule.maxFailures, 'rule.maxFailures');
  checkDuration(rule.findTimeMs, 'rule.findTimeMs');
  if (!Array.isArray(rule.backoffMs) || rule.backoffMs.length === 0) throw new StoreError('ERR_STORE_INVALID_OPTION', 'rule.backoffMs must be a non-empty list');
  rule.backoffMs.forEach((ms, i) => checkDuration(ms, `rule.backoffMs[${i}]`));
}

export function checkSession(session: StoredSession, now: number): void {
  if (typeof session !== 'object' || session === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'session must be an object');
  checkKey(session.subject, 'session.subject');
  checkKey(session.method, 'session.method');
  for (const field of ['mfaTime', 'issuedAt', 'expiresAt'] as const) {
    if (!Number.isSafeInteger(session[field]) || session[field] < 0) throw new StoreError('ERR_STORE_INVALID_OPTION', `session.${field} must be a non-negative integer`);
  }
  if (!(session.expiresAt > now)) throw new StoreError('ERR_STORE_INVALID_OPTION', 'session.expiresAt must be later than now');
}

/** A challenge's ceremony name: a short lower-case token, part of the key. */
export function checkCeremony(ceremony: unknown): asserts ceremony is string {
  if (typeof ceremony !== 'string' || !/^[a-z][a-z0-9-]{0,31}$/.test(ceremony)) throw new StoreError('ERR_STORE_INVALID_OPTION', 'ceremony must be a short lower-case name');
}

/** What a challenge record may hold: a non-empty string of at most 4 KiB. */
export function checkChallengeValue(value: unknown): asserts value is string {
  if (typeof value !== 'string' || value === '' || value.length > 4096) throw new StoreError('ERR_STORE_INVALID_OPTION', 'value must be a non-empty string of at most 4096 characters');
}

/** A TOTP time step (`useOtpStep` with a matched code). */
export function checkStep(step: unknown): asserts step is number {
  if (typeof step !== 'number' || !Number.isSafeInteger(step) || step < 0) throw new StoreError('ERR_STORE_INVALID_OPTION', 'step must be a non-negative integer');
}

/** The candidate hashes of one attempt at a sent code: at least one, each non-empty. */
export function checkHashes(hashes: unknown): asserts hashes is readonly string[] {
  if (!Array.isArray(hashes) || hashes.length === 0 || hashes.some((h) => typeof h !== 'string' || h === '')) {
    throw new StoreError('ERR_STORE_INVALID_OPTION', 'hashes must be a non-empty list of non-empty strings');
  }
}

/** A drift reading in seconds, or null for a code that was simply wrong. */
export function checkDriftSeconds(seconds: unknown): asserts seconds is number | null {
  if (seconds !== null && (typeof seconds !== 'number' || !Number.isSafeInteger(seconds))) throw new StoreError('ERR_STORE_INVALID_OPTION', 'seconds must be an integer or null');
}
