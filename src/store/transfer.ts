import { once } from 'node:events';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { checkContact, checkFactor, checkRecoveryCode } from './checks.js';
import { StoreError } from './errors.js';
import type { ContactRecord, DurableRecord, FactorRecord, ImportCounts, RecoveryCodeRecord, SealedSecret } from './types.js';

/**
 * The export file of `store export` / `store import`: JSON Lines, one record a line, in the store's
 * export order (factors by id, then recovery codes by subject and hash), so two exports of the same
 * data are the same bytes whichever backend wrote them.
 *
 *   {"format":"mfa-gateway-store-export","version":2,"source":"sqlite","exported_at":1767225600000}
 *   {"type":"factor","id":…,"subject":…,"factor_type":"totp",…,"secret":{"kid":…,"blob":…},…}
 *   {"type":"recovery_code","subject":…,"hash":…,"created_at":…,"used_at":null}
 *   {"type":"contact","id":…,"subject":…,"channel":"email","purpose":"factor",…,"destination":{"kid":…,"blob":…},…}
 *   {"type":"end","factors":1,"recovery_codes":10,"contacts":1}
 *
 * Version 2 added contacts (e-mail and SMS); version 1 files (without them) are still read.
 * Secrets and destinations stay sealed (kid + blob): the file needs the key file to be of any use, but it is still
 * written 0600. The closing "end" line makes a truncated file an error rather than a smaller import.
 * The field names are the file's own (snake_case, as in the schema), not the TypeScript ones, so
 * internal renames never change the format; a change of format is a new version.
 */

export const EXPORT_FORMAT = 'mfa-gateway-store-export';
export const EXPORT_VERSION = 2;
/** Versions `readExport` reads: 1 is 2 without contacts. */
const READABLE_VERSIONS: readonly unknown[] = [1, 2];

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

/** One record as its line (without the newline). */
export function encodeRecord(record: DurableRecord): string {
  return JSON.stringify(record.kind === 'factor' ? encodeFactor(record.factor) : record.kind === 'contact' ? encodeContact(record.contact) : encodeCode(record.code));
}

/**
 * Writes `records` to a new file at `path` (mode 0600; an existing file is never overwritten) and
 * resolves to how many of each it wrote. On any failure the partial file is removed.
 */
export async function writeExport(path: string, header: ExportHeader, records: AsyncIterable<DurableRecord>): Promise<ImportCounts> {
  const out = createWriteStream(path, { flags: 'wx', mode: 0o600, encoding: 'utf8' });
  await once(out, 'open');
  const counts = { factors: 0, recoveryCodes: 0, contacts: 0 };
  const write = async (line: string): Promise<void> => {
    if (!out.write(`${line}\n`)) await once(out, 'drain');
  };
  try {
    await write(JSON.stringify({ format: EXPORT_FORMAT, version: EXPORT_VERSION, source: header.source, exported_at: header.exportedAt }));
    for await (const record of records) {
      await write(encodeRecord(record));
      counts[record.kind === 'factor' ? 'factors' : record.kind === 'contact' ? 'contacts' : 'recoveryCodes']++;
    }
    await write(JSON.stringify({ type: 'end', factors: counts.factors, recovery_codes: counts.recoveryCodes, contacts: counts.contacts }));
    out.end();
    await once(out, 'finish');
    return counts;
  } catch (error) {
    out.destroy();
    rmSync(path, { force: true });
    throw error;
  }
}

const FACTOR_KEYS = ['type', 'id', 'subject', 'factor_type', 'status', 'label', 'secret', 'algorithm', 'digits', 'period_seconds', 'counter', 'created_at', 'pending_until', 'confirmed_at'];
const CODE_KEYS = ['type', 'subject', 'hash', 'created_at', 'used_at'];
const CONTACT_KEYS = ['type', 'id', 'subject', 'channel', 'purpose', 'status', 'label', 'destination', 'created_at', 'pending_until', 'confirmed_at'];
const END_KEYS: Readonly<Record<number, readonly string[]>> = { 1: ['type', 'factors', 'recovery_codes'], 2: ['type', 'factors', 'recovery_codes', 'contacts'] };

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

function checkHeader(line: unknown): ExportHeader & { readonly version: number } {
  if (!isObject(line) || line.format !== EXPORT_FORMAT) throw new Error(`not an mfa-gateway store export (the first line must name the format "${EXPORT_FORMAT}")`);
  if (!READABLE_VERSIONS.includes(line.version)) {
    throw new Error(`export format version ${JSON.stringify(line.version)} is not supported (this gateway reads versions ${READABLE_VERSIONS.join(' and ')})`);
  }
  if (line.source !== 'sqlite' && line.source !== 'postgres') throw new Error('the header\'s source must be "sqlite" or "postgres"');
  if (typeof line.exported_at !== 'number' || !Number.isSafeInteger(line.exported_at)) throw new Error('the header\'s exported_at must be unix milliseconds');
  return { source: line.source, exportedAt: line.exported_at, version: line.version as number };
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
  const counts = { factors: 0, recovery_codes: 0, contacts: 0 };
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
      if (line.type === 'factor') {
        records.push({ kind: 'factor', factor: decodeFactor(line) });
        counts.factors++;
      } else if (line.type === 'recovery_code') {
        records.push({ kind: 'recovery_code', code: decodeCode(line) });
        counts.recovery_codes++;
      } else if (line.type === 'contact' && header.version >= 2) {
        records.push({ kind: 'contact', contact: decodeContact(line) });
        counts.contacts++;
      } else if (line.type === 'end') {
        const keys = END_KEYS[header.version]!;
        if (!sameKeys(line, keys) || keys.some((key) => key !== 'type' && line[key] !== counts[key as keyof typeof counts])) {
          const contacts = header.version >= 2 ? `, ${counts.contacts} contacts` : '';
          throw new Error(`the "end" line does not match the records above it (${counts.factors} factors, ${counts.recovery_codes} recovery codes${contacts})`);
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
