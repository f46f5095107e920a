import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { systemClock, type Clock } from '../time/clock.js';
import { KeyringError } from './errors.js';
import { checkKeySet, formatCreatedDate, KID_PATTERN, parseEncryptionKeyLines, splitKeyText, type KeySource } from './keyformat.js';

const FILE_HEADER = `# mfa-gateway secret-encryption keys (see docs/keys.md). Keep this file secret (mode 0600).
# <kid> <base64 of 32 random bytes> <created YYYY-MM-DD> [primary]
`;

/** A fresh key line: `<kid> <base64 32 random bytes> <YYYY-MM-DD of now>`, plus ` primary` if asked. */
export function generateKeyLine(kid: string, now: number, primary = false): string {
  if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'kid must be 1-32 characters of A-Z a-z 0-9 _ -');
  if (typeof now !== 'number' || !Number.isFinite(now)) throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'now must be unix milliseconds');
  const key = randomBytes(32);
  const line = `${kid} ${key.toString('base64')} ${formatCreatedDate(now)}${primary ? ' primary' : ''}`;
  key.fill(0);
  return line;
}

/** Writes next to the target, fsyncs, then renames: readers see the old file or the new one, never half. */
function writeAtomic(path: string, text: string): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', 0o600);
    writeSync(fd, text);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    throw new KeyringError('ERR_KEYRING_UNREADABLE', `cannot write key file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
}

function newKid(now: number, taken: ReadonlySet<string>): string {
  const base = `k${formatCreatedDate(now).replaceAll('-', '')}`;
  if (!taken.has(base)) return base;
  for (let n = 2; ; n++) if (!taken.has(`${base}-${n}`)) return `${base}-${n}`;
}

/**
 * Appends a new key and makes it the primary; the old keys stay (they still open existing
 * secrets until `keys rewrap`). Comments and order are kept; the file is replaced atomically, mode 0600.
 */
export function rotateKeyFile(path: string, clock: Clock = systemClock): { readonly kid: string; readonly previousKid: string } {
  if (typeof path !== 'string' || path === '') throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'rotateKeyFile needs a key file path');
  const source: KeySource = { name: `key file ${path}`, unit: 'line' };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new KeyringError('ERR_KEYRING_MISSING', `${source.name} does not exist; ${keyInitHint(path)}`);
    throw new KeyringError('ERR_KEYRING_UNREADABLE', `${source.name} cannot be read (${code ?? 'error'})`, { cause: err });
  }
  const parsed = parseEncryptionKeyLines(text, source, false);
  // Only kids, lines and the primary flag are needed here: drop the key bytes at once.
  for (const k of parsed) k.key.fill(0);
  // The same split as the parser's, so parsed line numbers index into `lines` for the edit below.
  const lines = splitKeyText(text, false);
  if (lines.at(-1) === '') lines.pop();
  if (parsed.length === 0) throw new KeyringError('ERR_KEYRING_MISSING', `${source.name} holds no key to rotate from: delete it and ${keyInitHint(path)}`);
  const previous = checkKeySet(parsed);

  const kid = newKid(clock(), new Set(parsed.map((k) => k.kid)));
  // The parser checked that `primary` is the last field of that line, so dropping it is exact.
  lines[previous.line - 1] = lines[previous.line - 1]!.replace(/[ \t]+primary[ \t]*$/, '');
  lines.push(generateKeyLine(kid, clock(), true));
  writeAtomic(path, `${lines.join('\n')}\n`);
  return { kid, previousKid: previous.kid };
}

/** What every "no key" error adds: the command that makes one, and where the format is described. */
export function keyInitHint(path: string | undefined): string {
  return `create one with \`mfa-gateway keys init --file ${path ?? 'PATH'}\` (see docs/keys.md)`;
}

/**
 * Creates a key file holding one new primary key (mode 0600, parent directory created 0700) and
 * returns its kid; undefined, changing nothing, when the file already exists: it is never overwritten.
 */
function createKeyFileIfAbsent(path: string, clock: Clock): string | undefined {
  if (typeof path !== 'string' || path === '') throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'a key file path is needed');
  try {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new KeyringError('ERR_KEYRING_UNREADABLE', `cannot create the directory of key file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  }
  const now = clock();
  const kid = newKid(now, new Set());
  const body = `${FILE_HEADER}${generateKeyLine(kid, now, true)}\n`;
  // Write a temp file, then hard-link it into place: link fails if the file exists, so a
  // concurrent start or an existing file is never overwritten and nobody sees a half-written file.
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeSync(fd, body);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return undefined;
    throw new KeyringError('ERR_KEYRING_UNREADABLE', `cannot create key file ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, { cause: err });
  } finally {
    rmSync(tmp, { force: true });
  }
  return kid;
}

/**
 * `keys init`: a new key file with one primary key, mode 0600. Refuses (ERR_KEYRING_EXISTS) when the
 * file exists, whatever it holds: replacing a key file would make every sealed secret unreadable.
 */
export function createKeyFile(path: string, clock: Clock = systemClock): { readonly kid: string } {
  const kid = createKeyFileIfAbsent(path, clock);
  if (kid === undefined) {
    throw new KeyringError('ERR_KEYRING_EXISTS', `key file ${path} already exists; it is never overwritten (its keys open the stored secrets): use \`mfa-gateway keys rotate\` to add a key`);
  }
  return { kid };
}

/**
 * Demo mode only: creates a key file with one primary key when none exists (mode 0600, parent
 * directory created). Returns true when it created the file. Never overwrites an existing file.
 */
export function ensureDemoKeyFile(path: string, clock: Clock = systemClock): boolean {
  return createKeyFileIfAbsent(path, clock) !== undefined;
}
