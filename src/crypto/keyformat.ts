import { KeyringError } from './errors.js';

/**
 * The key file / key variable format (also in docs/keys.md):
 *
 *     # comment
 *     <kid> <base64 of exactly 32 bytes> <created YYYY-MM-DD> [primary]
 *
 * One key per line; in the environment variable, lines may also be separated by `;`. Blank lines
 * and lines starting with `#` are ignored. Kids match KID_PATTERN and are unique; exactly one
 * line carries `primary` (the key new secrets are sealed with). Older keys stay to open old
 * secrets until `keys rewrap` has re-sealed them.
 */
export const KID_PATTERN = /^[A-Za-z0-9_-]{1,32}$/;

/** Standard base64 with padding of exactly 32 bytes is 43 characters plus one `=`. */
const KEY_BASE64 = /^[A-Za-z0-9+/]{43}=$/;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

export interface ParsedKey {
  readonly kid: string;
  /** Raw key bytes; the caller wraps them in a KeyObject and drops the buffer. */
  readonly key: Buffer;
  /** Unix ms of the created date (UTC midnight). */
  readonly createdAt: number;
  readonly primary: boolean;
  /** 1-based line (file) or entry (variable) number, for messages. */
  readonly line: number;
}

/** Where lines came from, for messages that point at a line without quoting it. */
export interface KeySource {
  /** e.g. `key file /etc/mfa/keys` or `key variable MFA_KEYS`. */
  readonly name: string;
  /** `line` for files, `entry` for the variable (entries may share a line there). */
  readonly unit: 'line' | 'entry';
}

/** A parsed key with where it came from; the whole-set rules report both places of a clash. */
export type SourcedKey = ParsedKey & { readonly source: KeySource };

export function splitKeyText(text: string, allowSemicolons: boolean): string[] {
  return text.split(allowSemicolons ? /\r?\n|;/ : /\r?\n/);
}

/** Parses a UTC `YYYY-MM-DD` to unix ms; undefined for anything else (including 2026-02-30). */
export function parseCreatedDate(text: string): number | undefined {
  const m = DATE.exec(text);
  if (m === null) return undefined;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const ms = Date.UTC(year, month - 1, day);
  const back = new Date(ms);
  if (back.getUTCFullYear() !== year || back.getUTCMonth() !== month - 1 || back.getUTCDate() !== day) return undefined;
  return ms;
}

export function formatCreatedDate(now: number): string {
  return new Date(now).toISOString().slice(0, 10);
}

/**
 * Parses one line; undefined for blank and comment lines. Errors name the line number and what
 * is wrong, never the line itself (it may hold a key, possibly in the wrong column).
 */
function parseKeyLine(raw: string, line: number, source: KeySource): ParsedKey | undefined {
  const text = raw.trim();
  if (text === '' || text.startsWith('#')) return undefined;
  const where = `${source.name} ${source.unit} ${line}`;
  const fields = text.split(/[ \t]+/);
  if (fields.length < 3 || fields.length > 4) {
    throw new KeyringError('ERR_KEYRING_MALFORMED', `${where}: expected "<kid> <base64 key> <YYYY-MM-DD> [primary]" (${fields.length} fields found)`);
  }
  const [kid, encoded, created, flag] = fields as [string, string, string, string | undefined];
  if (!KID_PATTERN.test(kid)) {
    throw new KeyringError('ERR_KEYRING_MALFORMED', `${where}: the key id must be 1-32 characters of A-Z a-z 0-9 _ -`);
  }
  if (!KEY_BASE64.test(encoded)) {
    throw new KeyringError('ERR_KEYRING_MALFORMED', `${where}: the key must be standard base64 of exactly 32 bytes (44 characters ending in "=")`);
  }
  const key = Buffer.from(encoded, 'base64');
  // Rejects encodings with non-zero padding bits, so one key has one spelling.
  if (key.length !== 32 || key.toString('base64') !== encoded) {
    key.fill(0);
    throw new KeyringError('ERR_KEYRING_MALFORMED', `${where}: the key must be standard base64 of exactly 32 bytes (44 characters ending in "=")`);
  }
  const createdAt = parseCreatedDate(created);
  if (createdAt === undefined) {
    key.fill(0);
    throw new KeyringError('ERR_KEYRING_MALFORMED', `${where}: the created date must be a valid YYYY-MM-DD`);
  }
  if (flag !== undefined && flag !== 'primary') {
    key.fill(0);
    throw new KeyringError('ERR_KEYRING_MALFORMED', `${where}: the fourth field may only be "primary"`);
  }
  return { kid, key, createdAt, primary: flag === 'primary', line };
}

/**
 * Parses a whole key file or key variable (the encryption-key line format above; not to be confused
 * with the PEM/JWK public keys of `auth.jwt.public_keys`). Throws KeyringError on the first bad line.
 */
export function parseEncryptionKeyLines(text: string, source: KeySource, allowSemicolons: boolean): SourcedKey[] {
  const keys: SourcedKey[] = [];
  splitKeyText(text, allowSemicolons).forEach((raw, index) => {
    const parsed = parseKeyLine(raw, index + 1, source);
    if (parsed !== undefined) keys.push({ ...parsed, source });
  });
  return keys;
}

/** Rules over the whole set (all sources together): unique kids, exactly one primary. */
export function checkKeySet(keys: readonly SourcedKey[]): SourcedKey {
  const seen = new Map<string, SourcedKey>();
  for (const k of keys) {
    const first = seen.get(k.kid);
    if (first !== undefined) {
      throw new KeyringError(
        'ERR_KEYRING_MALFORMED',
        `${k.source.name} ${k.source.unit} ${k.line}: key id "${k.kid}" is already used (${first.source.name} ${first.source.unit} ${first.line})`,
      );
    }
    seen.set(k.kid, k);
  }
  const primaries = keys.filter((k) => k.primary);
  if (primaries.length !== 1) {
    const where = primaries.map((k) => `${k.source.name} ${k.source.unit} ${k.line}`).join(', ');
    throw new KeyringError(
      'ERR_KEYRING_MALFORMED',
      primaries.length === 0 ? 'no key is marked "primary" (exactly one must be)' : `more than one key is marked "primary": ${where}`,
    );
  }
  return primaries[0]!;
}
