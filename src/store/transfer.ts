import { once } from 'node:events';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { checkContact, checkFactor, checkRecoveryCode, checkWebAuthnCredential } from './checks.js';
import { StoreError } from './errors.js';
import type { ContactRecord, DurableRecord, FactorRecord, ImportCounts, RecoveryCodeRecord, SealedSecret, WebAuthnCredentialRecord } from './types.js';

/**
 * The export file of `store export` / `store import`: JSON Lines, one record a line, in the store's
 * export order (factors by id, recovery codes by subject and hash, contacts by id, then WebAuthn
 * credentials by id), so two exports of the same data are the same bytes whichever backend wrote them.
 *
 *   {"format":"mfa-gateway-store-export","version":2,"source":"sqlite","exported_at":1767225600000}
 *   {"type":"factor","id":…,"subject":…,"factor_type":"totp",…,"secret":{"kid":…,"blob":…},…}
 *   {"type":"recovery_code","subject":…,"hash":…,"created_at":…,"used_at":null}
 *   {"type":"contact","id":…,"subject":…,"channel":"email","purpose":"factor",…,"destination":{"kid":…,"blob":…},…}
 *   {"type":"webauthn_credential","id":…,"subject":…,"credential_id":…,"public_key":{"kid":…,"blob":…},…}
 *   {"type":"end","factors":1,"recovery_codes":10,"contacts":1,"webauthn_credentials":1}
 *
 * Secrets, destinations and public keys stay sealed (kid + blob): the file needs the key file to be of any use, but it is still
 * written 0600. The closing "end" line makes a truncated file an error rather than a smaller import.
 * The field names are the file's own (snake_case, as in the schema), not the TypeScript ones, so
 * internal renames never change the format; a change of format is a new version. Version 2 added
 * contacts and WebAuthn credentials (and their counts on the "end" line); version 1 files are still read.
 */

export const EXPORT_FORMAT = 'mfa-gateway-store-export';
export const EXPORT_VERSION = 2;
/** Versions `readExport` reads: 1 is 2 without contacts and WebAuthn credentials. */
const READ_VERSIONS: readonly number[] = [1, 2];

export interface ExportHeader {
  readonly source: 'sqlite' | 'postgres';
  /** Unix ms. */
  readonly exportedAt: number;
}

function encodeFactor(f: FactorRecord): Record<string, unknown> {
  return {
    type: 'factor',
    id: f.id,
    subject: f.subject,
    factor_type: f.type,
    status: f.status,
    label: f.label,
    secret: { kid: f.secret.kid, blob: f.secret.blob },
    algorithm: f.algorithm,
    digits: f.digits,
    period_seconds: f.periodSeconds,
    counter: f.counter,
    created_at: f.createdAt,
    pending_until: f.pendingUntil ?? null,
    confirmed_at: f.confirmedAt ?? null,
  };
}

function encodeCode(c: RecoveryCodeRecord): Record<string, unknown> {
  return { type: 'recovery_code', subject: c.subject, hash: c.hash, created_at: c.createdAt, used_at: c.usedAt ?? null };
}

function encodeContact(c: ContactRecord): Record<string, unknown> {
  return {
    type: 'contact',
    id: c.id,
    subject: c.subject,
    channel: c.channel,
    purpose: c.purpose,
    status: c.status,
    label: c.label,
    destination: { kid: c.destination.kid, blob: c.destination.blob },
    created_at: c.createdAt,
    pending_until: c.pendingUntil ?? null,
    confirmed_at: c.confirmedAt ?? null,
  };
}

function encodeCredential(c: WebAuthnCredentialRecord): Record<string, unknown> {
  return {
    type: 'webauthn_credential',
    id: c.id,
    subject: c.subject,
    credential_id: c.credentialId,
    public_key: { kid: c.publicKey.kid, blob: c.publicKey.blob },
    sign_count: c.signCount,
    transports: [...c.transports],
    kind: c.kind,
    synced: c.synced,
    label: c.label,
    created_at: c.createdAt,
    last_used_at: c.lastUsedAt ?? null,
  };
}

/** One record as its line (without the newline). */
export function encodeRecord(record: DurableRecord): string {
  switch (record.kind) {
    case 'factor':
      return JSON.stringify(encodeFactor(record.factor));
    case 'recovery_code':
      return JSON.stringify(encodeCode(record.code));
    case 'contact':
      return JSON.stringify(encodeContact(record.contact));
    case 'webauthn_credential':
      return JSON.stringify(encodeCredential(record.credential));
  }
}

/**
 * Writes `records` to a new file at `path` (mode 0600; an existing file is never overwritten) and
 * resolves to how many of each it wrote. On any failure the partial file is removed.
 */
export async function writeExport(path: string, header: ExportHeader, records: AsyncIterable<DurableRecord>): Promise<ImportCounts> {
  const out = createWriteStream(path, { flags: 'wx', mode: 0o600, encoding: 'utf8' });
  await once(out, 'open');
  const counts = { factors: 0, recoveryCodes: 0, contacts: 0, webauthnCredentials: 0 };
  const write = async (line: string): Promise<void> => {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
  try {
    await write(JSON.stringify({ format: EXPORT_FORMAT, version: EXPORT_VERSION, source: header.source, exported_at: header.exportedAt }));
    for await (const record of records) {
      await write(encodeRecord(record));
      counts[COUNTED[record.kind]]++;
    }
    await write(JSON.stringify({ type: 'end', factors: counts.factors, recovery_codes: counts.recoveryCodes, contacts: counts.contacts, webauthn_credentials: counts.webauthnCredentials }));
    out.end();
    await once(out, 'finish');
    return counts;
  } catch (error) {
    out.destroy();
    rmSync(path, { force: true });
    throw error;
  }
}

/** Which count of ImportCounts a record adds to. */
const COUNTED = { factor: 'factors', recovery_code: 'recoveryCodes', contact: 'contacts', webauthn_credential: 'webauthnCredentials' } as const satisfies Record<DurableRecord['kind'], keyof ImportCounts>;

const FACTOR_KEYS = ['type', 'id', 'subject', 'factor_type', 'status', 'label', 'secret', 'algorithm', 'digits', 'period_seconds', 'counter', 'created_at', 'pending_until', 'confirmed_at'];
const CODE_KEYS = ['type', 'subject', 'hash', 'created_at', 'used_at'];
const CONTACT_KEYS = ['type', 'id', 'subject', 'channel', 'purpose', 'status', 'label', 'destination', 'created_at', 'pending_until', 'confirmed_at'];
const CREDENTIAL_KEYS = ['type', 'id', 'subject', 'credential_id', 'public_key', 'sign_count', 'transports', 'kind', 'synced', 'label', 'created_at', 'last_used_at'];
const END_KEYS: Readonly<Record<number, readonly string[]>> = { 1: ['type', 'factors', 'recovery_codes'], 2: ['type', 'factors', 'recovery_codes', 'contacts', 'webauthn_credentials'] };

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sameKeys(value: Json, keys: readonly string[]): boolean {
  const own = Object.keys(value);
  return own.length === keys.length && keys.every((key) => Object.hasOwn(value, key));
}

/** null → absent; any other non-number stays as is, for checkFactor to refuse by name. */
function optionalTime(value: unknown): number | undefined {
  return value === null ? undefined : (value as number);
}

/**
 * The parts a factor and a contact line share: exactly `keys`, a sealed `{kid, blob}` at `sealedKey`,
 * and the optional times (null → absent).
 */
function enrolledFields(line: Json, keys: readonly string[], sealedKey: string, what: string): { sealed: SealedSecret; times: { pendingUntil?: number; confirmedAt?: number } } {
  const sealed = line[sealedKey];
  if (!sameKeys(line, keys) || !isObject(sealed) || !sameKeys(sealed, ['kid', 'blob'])) throw new Error(`${what} needs exactly the fields ${keys.join(', ')} (${sealedKey}: kid, blob)`);
  const pendingUntil = optionalTime(line.pending_until);
  const confirmedAt = optionalTime(line.confirmed_at);
  return {
    sealed: { kid: sealed.kid, blob: sealed.blob } as SealedSecret,
    times: { ...(pendingUntil !== undefined ? { pendingUntil } : {}), ...(confirmedAt !== undefined ? { confirmedAt } : {}) },
  };
}

function decodeFactor(line: Json): FactorRecord {
  const { sealed, times } = enrolledFields(line, FACTOR_KEYS, 'secret', 'a factor');
  const factor = {
    id: line.id,
    subject: line.subject,
    type: line.factor_type,
    status: line.status,
    label: line.label,
    secret: sealed,
    algorithm: line.algorithm,
    digits: line.digits,
    periodSeconds: line.period_seconds,
    counter: line.counter,
    createdAt: line.created_at,
    ...times,
  } as FactorRecord;
  checkFactor(factor);
  return factor;
}

function decodeCode(line: Json): RecoveryCodeRecord {
  if (!sameKeys(line, CODE_KEYS)) throw new Error(`a recovery code needs exactly the fields ${CODE_KEYS.join(', ')}`);
  const usedAt = optionalTime(line.used_at);
  const code = { subject: line.subject, hash: line.hash, createdAt: line.created_at, ...(usedAt !== undefined ? { usedAt } : {}) } as RecoveryCodeRecord;
  checkRecoveryCode(code);
  return code;
}

function decodeContact(line: Json): ContactRecord {
  const { sealed, times } = enrolledFields(line, CONTACT_KEYS, 'destination', 'a contact');
  const contact = {
    id: line.id,
    subject: line.subject,
    channel: line.channel,
    purpose: line.purpose,
    status: line.status,
    label: line.label,
    destination: sealed,
    createdAt: line.created_at,
    ...times,
  } as ContactRecord;
  checkContact(contact);
  return contact;
}

function decodeCredential(line: Json): WebAuthnCredentialRecord {
  const key = isObject(line.public_key) && sameKeys(line.public_key, ['kid', 'blob']) ? line.public_key : undefined;
  if (!sameKeys(line, CREDENTIAL_KEYS) || key === undefined) throw new Error(`a webauthn_credential needs exactly the fields ${CREDENTIAL_KEYS.join(', ')} (public_key: kid, blob)`);
  const lastUsedAt = optionalTime(line.last_used_at);
  const credential = {
    id: line.id,
    subject: line.subject,
    credentialId: line.credential_id,
    publicKey: { kid: key.kid, blob: key.blob },
    signCount: line.sign_count,
    transports: line.transports,
    kind: line.kind,
    synced: line.synced,
    label: line.label,
    createdAt: line.created_at,
    ...(lastUsedAt !== undefined ? { lastUsedAt } : {}),
  } as WebAuthnCredentialRecord;
  checkWebAuthnCredential(credential);
  return credential;
}

function checkHeader(line: unknown): ExportHeader & { readonly version: number } {
  if (!isObject(line) || line.format !== EXPORT_FORMAT) throw new Error(`not an mfa-gateway store export (the first line must name the format "${EXPORT_FORMAT}")`);
  if (typeof line.version !== 'number' || !READ_VERSIONS.includes(line.version)) {
    throw new Error(`export format version ${JSON.stringify(line.version)} is not supported (this gateway reads versions ${READ_VERSIONS.join(' and ')})`);
  }
  if (line.source !== 'sqlite' && line.source !== 'postgres') throw new Error('the header\'s source must be "sqlite" or "postgres"');
  if (typeof line.exported_at !== 'number' || !Number.isSafeInteger(line.exported_at)) throw new Error('the header\'s exported_at must be unix milliseconds');
  return { source: line.source, exportedAt: line.exported_at, version: line.version };
}

/**
 * Reads and checks a whole export file before anything is written anywhere: every line, the format
 * version, and the closing counts. Errors name the file and line (never a record's contents).
 */
export async function readExport(path: string): Promise<{ readonly header: ExportHeader; readonly records: DurableRecord[] }> {
  const fail = (lineNumber: number, message: string) => new StoreError('ERR_STORE_EXPORT_FORMAT', `${path}:${lineNumber}: ${message}`);
  const lines = createInterface({ input: createReadStream(path, { encoding: 'utf8' }), crlfDelay: Infinity });
  let header: (ExportHeader & { readonly version: number }) | undefined;
  let end: Json | undefined;
  const records: DurableRecord[] = [];
  let n = 0;
  const counts = { factors: 0, recoveryCodes: 0, contacts: 0, webauthnCredentials: 0 };
  for await (const text of lines) {
    n++;
    let line: unknown;
    try {
      line = JSON.parse(text);
    } catch {
      throw fail(n, 'not a JSON line');
    }
    try {
      if (header === undefined) {
        header = checkHeader(line);
        continue;
      }
      if (end !== undefined) throw new Error('a line after the "end" line');
      if (!isObject(line)) throw new Error('a record must be a JSON object');
      let record: DurableRecord | undefined;
      if (line.type === 'factor') record = { kind: 'factor', factor: decodeFactor(line) };
      else if (line.type === 'recovery_code') record = { kind: 'recovery_code', code: decodeCode(line) };
      else if (line.type === 'contact' && header.version >= 2) record = { kind: 'contact', contact: decodeContact(line) };
      else if (line.type === 'webauthn_credential' && header.version >= 2) record = { kind: 'webauthn_credential', credential: decodeCredential(line) };
      if (record !== undefined) {
        records.push(record);
        counts[COUNTED[record.kind]]++;
      } else if (line.type === 'end') {
        const matches =
          sameKeys(line, END_KEYS[header.version]!) &&
          line.factors === counts.factors &&
          line.recovery_codes === counts.recoveryCodes &&
          (header.version < 2 || (line.contacts === counts.contacts && line.webauthn_credentials === counts.webauthnCredentials));
        if (!matches) {
          const credentials = header.version < 2 ? '' : `, ${counts.contacts} contacts, ${counts.webauthnCredentials} webauthn credentials`;
          throw new Error(`the "end" line does not match the records above it (${counts.factors} factors, ${counts.recoveryCodes} recovery codes${credentials})`);
        }
        end = line;
      } else {
        throw new Error(`unknown record type ${JSON.stringify(line.type)}`);
      }
    } catch (error) {
      throw fail(n, error instanceof Error ? error.message : String(error));
    }
  }
  if (header === undefined) throw fail(1, 'the file is empty');
  if (end === undefined) throw fail(n, 'no "end" line: the file is truncated');
  return { header: { source: header.source, exportedAt: header.exportedAt }, records };
}
