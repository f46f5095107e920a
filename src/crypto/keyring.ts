import { createCipheriv, createDecipheriv, createHmac, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { SealedSecret } from '../store/types.js';
import { systemClock, type Clock } from '../time/clock.js';
import { KeyringError } from './errors.js';
import { keyInitHint } from './keyfile.js';
import { checkKeySet, parseEncryptionKeyLines, type KeySource, type ParsedKey, type SourcedKey } from './keyformat.js';

export { KeyringError, type KeyringErrorCode } from './errors.js';
export { KID_PATTERN } from './keyformat.js';
export { createKeyFile, ensureDemoKeyFile, generateKeyLine, keyInitHint, rotateKeyFile } from './keyfile.js';
// rewrapFactors is not re-exported: it uses a Keyring, so importing it here would make rewrap.ts and
// this file import each other. Callers take it from rewrap.ts.

/**
 * Secrets at rest: AES-256-GCM under a key chosen by kid, with associated data binding the
 * ciphertext to its row, and keyed hashes (HMAC under HKDF subkeys) for recovery codes.
 * Key file / variable format: see keyformat.ts and docs/keys.md.
 */

/** What a sealed secret is bound to: a blob copied to another subject or factor fails to open. */
export interface SecretAad {
  readonly subject: string;
  readonly factorId: string;
}

export interface KeyAge {
  readonly kid: string;
  readonly primary: boolean;
  /** Unix ms of the key's created date. */
  readonly createdAt: number;
  /** now − createdAt, never negative. */
  readonly ageMs: number;
}

export interface Keyring {
  /** The kid new secrets are sealed with. */
  readonly primaryKid: string;
  /** Every kid, primary first, then in file/variable order. */
  kids(): readonly string[];
  seal(plaintext: Buffer, aad: SecretAad): SealedSecret;
  /** Throws KeyringError `ERR_KEYRING_DECRYPT_FAILED` (no detail) on unknown kid, wrong key or any tampering. */
  open(sealed: SealedSecret, aad: SecretAad): Buffer;
  /**
   * HMAC-SHA256 of `data` under a subkey derived (HKDF-SHA256) from key `kid` (default: the primary)
   * and `purpose`. Returns `kid$hexdigest`, so a stored hash says which key made it.
   */
  hmac(purpose: string, data: string, kid?: string): string;
  keyAges(now: number): readonly KeyAge[];
}

export interface LoadKeyringOptions {
  /** Path of a key file. */
  readonly file?: string | undefined;
  /** Name of an environment variable holding key lines (newline or `;` separated). */
  readonly env?: string | undefined;
  /** Warn when the primary key is older than this. */
  readonly rotationMs: number;
  readonly clock?: Clock | undefined;
  readonly metrics?: Metrics | undefined;
  readonly logger?: Logger | undefined;
}

/** Bumped if the AAD layout or blob layout ever changes; part of the AAD so versions never mix. */
const AAD_VERSION = 'mfa-gateway/secret/v1';
const HMAC_SALT = Buffer.from('mfa-gateway/hmac/v1', 'utf8');
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

interface KeyEntry {
  readonly kid: string;
  readonly key: KeyObject;
  readonly createdAt: number;
  readonly primary: boolean;
}

/** version ‖ kid ‖ subject ‖ factorId, each as a 4-byte big-endian length then UTF-8 bytes. */
function encodeAad(kid: string, aad: SecretAad): Buffer {
  if (typeof aad !== 'object' || aad === null || typeof aad.subject !== 'string' || typeof aad.factorId !== 'string') {
    throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'aad must be { subject: string, factorId: string }');
  }
  const parts = [AAD_VERSION, kid, aad.subject, aad.factorId].map((s) => Buffer.from(s, 'utf8'));
  const out: Buffer[] = [];
  for (const part of parts) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(part.length);
    out.push(len, part);
  }
  return Buffer.concat(out);
}

function readKeySource(options: LoadKeyringOptions): SourcedKey[] {
  const keys: SourcedKey[] = [];
  if (options.file !== undefined) {
    const source: KeySource = { name: `key file ${options.file}`, unit: 'line' };
    let text: string;
    try {
      text = readFileSync(options.file, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') throw new KeyringError('ERR_KEYRING_MISSING', `${source.name} does not exist; the gateway does not start without an encryption key: ${keyInitHint(options.file)}`);
      throw new KeyringError('ERR_KEYRING_UNREADABLE', `${source.name} cannot be read (${code ?? 'error'})`, { cause: err });
    }
    keys.push(...parseEncryptionKeyLines(text, source, false));
  }
  if (options.env !== undefined) {
    const source: KeySource = { name: `key variable ${options.env}`, unit: 'entry' };
    const text = process.env[options.env] ?? '';
    keys.push(...parseEncryptionKeyLines(text, source, true));
  }
  return keys;
}

/**
 * Loads every key from the file and/or the variable. Throws KeyringError: `ERR_KEYRING_MISSING` when
 * there is no key at all (the gateway must refuse to start), `ERR_KEYRING_MALFORMED` naming the line,
 * never the key.
 */
export function loadKeyring(options: LoadKeyringOptions): Keyring {
  if (typeof options !== 'object' || options === null) throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'loadKeyring needs an options object');
  const { file, env, rotationMs, logger, metrics } = options;
  if (file !== undefined && (typeof file !== 'string' || file === '')) throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'option "file" must be a non-empty path');
  if (env !== undefined && (typeof env !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(env))) {
    throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'option "env" must be an environment variable name');
  }
  if (typeof rotationMs !== 'number' || !Number.isSafeInteger(rotationMs) || rotationMs <= 0) {
    throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'option "rotationMs" must be a positive integer of milliseconds');
  }
  const clock = options.clock ?? systemClock;
  if (typeof clock !== 'function') throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'option "clock" must be a function');
  if (file === undefined && env === undefined) {
    throw new KeyringError('ERR_KEYRING_MISSING', `no key source configured (keys.file or keys.env); the gateway does not start without an encryption key: set keys.file and ${keyInitHint(undefined)}`);
  }

  const parsed = readKeySource(options);
  if (parsed.length === 0) {
    const where = [file !== undefined ? `key file ${file}` : undefined, env !== undefined ? `key variable ${env}` : undefined].filter(Boolean).join(' and ');
    throw new KeyringError('ERR_KEYRING_MISSING', `no encryption key found in ${where}; the gateway does not start without one: ${file !== undefined ? `delete the empty key file and ${keyInitHint(file)}` : `set ${env} to key lines (see docs/keys.md)`}`);
  }
  let primaryParsed: ParsedKey;
  try {
    primaryParsed = checkKeySet(parsed);
  } catch (err) {
    for (const k of parsed) k.key.fill(0);
    throw err;
  }

  if (file !== undefined && logger !== undefined) {
    try {
      // A key file others can read defeats the encryption; say so, but do not refuse (containers often run as root).
      if ((statSync(file).mode & 0o077) !== 0) logger.warn({ event: 'key_file_permissions', file }, 'key file is readable by group or others; chmod 600 it');
    } catch {
      // Already read successfully above; a vanished file here is not worth failing on.
    }
  }

  const entries: KeyEntry[] = [];
  for (const k of [primaryParsed, ...parsed.filter((p) => p !== primaryParsed)]) {
    entries.push({ kid: k.kid, key: createSecretKey(k.key), createdAt: k.createdAt, primary: k.primary });
    // createSecretKey copied the bytes; do not leave a second copy around.
    k.key.fill(0);
  }
  const byKid = new Map(entries.map((e) => [e.kid, e]));
  const primary = entries[0]!;
  const kidList = Object.freeze(entries.map((e) => e.kid));
  const subkeys = new Map<string, Buffer>();

  function subkey(entry: KeyEntry, purpose: string): Buffer {
    const cacheKey = `${entry.kid}\u0000${purpose}`;
    let key = subkeys.get(cacheKey);
    if (key === undefined) {
      key = Buffer.from(hkdfSync('sha256', entry.key, HMAC_SALT, Buffer.from(purpose, 'utf8'), 32));
      subkeys.set(cacheKey, key);
    }
    return key;
  }

  function keyAges(now: number): readonly KeyAge[] {
    return entries.map((e) => ({ kid: e.kid, primary: e.primary, createdAt: e.createdAt, ageMs: Math.max(0, now - e.createdAt) }));
  }

  const keyring: Keyring = {
    primaryKid: primary.kid,
    kids: () => kidList,
    seal(plaintext, aad) {
      if (!Buffer.isBuffer(plaintext)) throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'seal needs a Buffer');
      const nonce = randomBytes(NONCE_BYTES);
      const cipher = createCipheriv('aes-256-gcm', primary.key, nonce, { authTagLength: TAG_BYTES });
      cipher.setAAD(encodeAad(primary.kid, aad));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return { kid: primary.kid, blob: Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64url') };
    },
    open(sealed, aad) {
      const aadBytes = encodeAad(typeof sealed?.kid === 'string' ? sealed.kid : '', aad);
      const entry = typeof sealed?.kid === 'string' ? byKid.get(sealed.kid) : undefined;
      const fail = () => new KeyringError('ERR_KEYRING_DECRYPT_FAILED', 'the secret cannot be decrypted');
      if (entry === undefined || typeof sealed.blob !== 'string' || !BASE64URL.test(sealed.blob)) throw fail();
      const raw = Buffer.from(sealed.blob, 'base64url');
      if (raw.length < NONCE_BYTES + TAG_BYTES) throw fail();
      try {
        const decipher = createDecipheriv('aes-256-gcm', entry.key, raw.subarray(0, NONCE_BYTES), { authTagLength: TAG_BYTES });
        decipher.setAAD(aadBytes);
        decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
        return Buffer.concat([decipher.update(raw.subarray(NONCE_BYTES, raw.length - TAG_BYTES)), decipher.final()]);
      } catch {
        throw fail();
      }
    },
    hmac(purpose, data, kid) {
      if (typeof purpose !== 'string' || purpose === '') throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'hmac needs a non-empty purpose');
      if (typeof data !== 'string') throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'hmac needs string data');
      const entry = kid === undefined ? primary : byKid.get(kid);
      if (entry === undefined) throw new KeyringError('ERR_KEYRING_UNKNOWN_KID', 'hmac was asked for a key id the keyring does not hold');
      return `${entry.kid}$${createHmac('sha256', subkey(entry, purpose)).update(data, 'utf8').digest('hex')}`;
    },
    keyAges,
  };

  const now = clock();
  for (const age of keyAges(now)) {
    metrics?.keyAge.set({ kid: age.kid, primary: String(age.primary) }, Math.floor(age.ageMs / 1000));
  }
  const primaryAge = keyAges(now)[0]!;
  if (primaryAge.ageMs > rotationMs) {
    logger?.warn(
      { event: 'key_rotation_due', kid: primary.kid, age_days: Math.floor(primaryAge.ageMs / 86_400_000), rotation_days: Math.floor(rotationMs / 86_400_000) },
      'the primary encryption key is older than the rotation period; run `mfa-gateway keys rotate` then `keys rewrap`',
    );
  }
  return Object.freeze(keyring);
}
