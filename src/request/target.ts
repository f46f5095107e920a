import type { RejectReason } from './reasons.js';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/** Characters whose compatibility form (NFKC) holds a path separator or a dot: `．`, `／`, `＼`, `․`, `‥`, … */
const SEPARATOR_IN_NFKC = /[./\\]/;
const lookalikeCache = new Map<number, boolean>();

function isLookalike(codePoint: number): boolean {
  let known = lookalikeCache.get(codePoint);
  if (known === undefined) {
    known = SEPARATOR_IN_NFKC.test(String.fromCodePoint(codePoint).normalize('NFKC'));
    // Bounded: a path holds few distinct non-ASCII characters, and an attacker gains nothing by filling it.
    if (lookalikeCache.size < 4096) lookalikeCache.set(codePoint, known);
  }
  return known;
}

/** RFC 3986 §2.3 unreserved characters: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function isUnreserved(b: number): boolean {
  return (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || (b >= 48 && b <= 57) || b === 45 || b === 46 || b === 95 || b === 126;
}

const HEX = '0123456789ABCDEF';

/**
 * The one form of a path that was already checked by `scanOriginForm` (RFC 3986 §6.2.2): escapes
 * of unreserved characters decoded (`%61` → `a`), every other escape's hex upper-cased. This is the
 * form that is matched AND forwarded, so `/api/%61dmin` cannot miss a rule on `/api/admin` and
 * then run as `/api/admin` on the backend. Refuses `%25` followed by the hex of `.`, `/` or `\`
 * (a second decoding by the backend would make a dot segment or a separator of it).
 */
export function normalizePath(path: string): string | RejectReason {
  if (path.indexOf('%') === -1) return path;
  let out = '';
  let copied = 0;
  for (let i = 0; i < path.length; i++) {
    if (path.charCodeAt(i) !== 37 /* % */) continue;
    const high = hexValue(path.charCodeAt(i + 1));
    const low = hexValue(path.charCodeAt(i + 2));
    const b = high * 16 + low;
    const escape = isUnreserved(b) ? String.fromCharCode(b) : `%${HEX[high]}${HEX[low]}`;
    out += path.slice(copied, i) + escape;
    copied = i + 3;
    i += 2;
  }
  out += path.slice(copied);
  for (let i = out.indexOf('%25'); i !== -1; i = out.indexOf('%25', i + 3)) {
    const next = out.slice(i + 3, i + 5).toUpperCase();
    if (next === '2E' || next === '2F' || next === '5C') return 'double_encoding';
  }
  return out;
}

/** `normalizePath` on the path of an origin-form target already accepted whole; the query is kept. */
export function normalizeTarget(target: string): string {
  const queryStart = target.indexOf('?');
  const path = queryStart === -1 ? target : target.slice(0, queryStart);
  const normalized = normalizePath(path);
  return (normalized.charCodeAt(0) === 47 ? normalized : path) + (queryStart === -1 ? '' : target.slice(queryStart));
}

/**
 * Checks an origin-form target (`/path?query`) from `start` (a `/`) to the end of `target` in one
 * left-to-right pass, decoding percent-escapes only to look at them. Returns the index of the `?`
 * (or `target.length`) when the target reads one way only, else the reason it does not.
 *
 * Path: rejects dot segments in any encoding, `//`, `\` and `%5C`, `%2F`, `;` and `%3B`, NUL and
 * `%00`, encoded control characters, malformed `%`, decoded bytes that are not valid UTF-8
 * (overlong forms such as `%C0%AE` included), and any raw byte outside printable ASCII.
 * Query: kept as sent, but a `#`, a NUL or a raw byte outside printable ASCII is refused.
 */
export function scanOriginForm(target: string, start: number): number | RejectReason {
  const end = target.length;
  // Current segment: decoded length, and whether every decoded character so far is a dot.
  let segmentLength = 0;
  let onlyDots = true;
  // UTF-8 decoder state for percent-encoded bytes.
  let pending = 0;
  let codePoint = 0;
  let minCodePoint = 0;
  let i = start + 1;
  for (; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c === 37 /* % */) {
      if (i + 2 >= end) return 'invalid_percent_encoding';
      const high = hexValue(target.charCodeAt(i + 1));
      const low = hexValue(target.charCodeAt(i + 2));
      if (high < 0 || low < 0) return 'invalid_percent_encoding';
      i += 2;
      const b = high * 16 + low;
      segmentLength++;
      onlyDots &&= b === 46;
      if (pending > 0) {
        if ((b & 0xc0) !== 0x80) return 'invalid_utf8';
        codePoint = (codePoint << 6) | (b & 0x3f);
        if (--pending === 0) {
          if (codePoint < minCodePoint || codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff)) return 'invalid_utf8';
          if (isLookalike(codePoint)) return 'lookalike_character';
        }
        continue;
      }
      if (b >= 0x80) {
        // Lead bytes only; 0xC0/0xC1 and 0xF5+ never start a valid sequence.
        if (b >= 0xc2 && b <= 0xdf) {
          pending = 1;
          codePoint = b & 0x1f;
          minCodePoint = 0x80;
        } else if (b >= 0xe0 && b <= 0xef) {
          pending = 2;
          codePoint = b & 0x0f;
          minCodePoint = 0x800;
        } else if (b >= 0xf0 && b <= 0xf4) {
          pending = 3;
          codePoint = b & 0x07;
          minCodePoint = 0x10000;
        } else {
          return 'invalid_utf8';
        }
        continue;
      }
      if (b === 0) return 'nul';
      if (b === 47 /* / */) return 'encoded_slash';
      if (b === 92 /* \ */) return 'encoded_backslash';
      if (b === 59 /* ; */) return 'path_parameter';
      if (b < 32 || b === 127) return 'encoded_control_character';
      continue;
    }
    // A raw character in the middle of an encoded multi-byte sequence.
    if (pending > 0) return 'invalid_utf8';
    if (c === 47 /* / */) {
      if (segmentLength === 0) return 'empty_segment';
      if (onlyDots && segmentLength <= 2) return 'dot_segment';
      segmentLength = 0;
      onlyDots = true;
      continue;
    }
    if (c === 63 /* ? */) break;
    if (c <= 32 || c >= 127) return c === 0 ? 'nul' : 'invalid_character';
    if (c === 92 /* \ */) return 'backslash';
    if (c === 59 /* ; */) return 'path_parameter';
    if (c === 35 /* # */) return 'fragment';
    segmentLength++;
    onlyDots &&= c === 46;
  }
  if (pending > 0) return 'invalid_utf8';
  // The last segment may be empty (a trailing slash) but not `.` or `..`.
  if (segmentLength > 0 && onlyDots && segmentLength <= 2) return 'dot_segment';
  const queryStart = i;
  for (i++; i < end; i++) {
    const c = target.charCodeAt(i);
    if (c <= 32 || c >= 127) return c === 0 ? 'nul' : 'invalid_character';
    if (c === 35 /* # */) return 'fragment';
  }
  return queryStart;
}

export interface AbsoluteForm {
  /** The authority as written (not yet normalised). */
  readonly authority: string;
  /** Index in the target where the path (or `?`, or the end) starts. */
  readonly rest: number;
}

/**
 * Splits `http://authority/path?q` (scheme case-insensitive, http or https only). Undefined for any
 * other scheme, a missing `//`, or userinfo (`user@host`), which has no place in a request target.
 */
export function splitAbsoluteForm(target: string): AbsoluteForm | undefined {
  let schemeEnd: number;
  if (target.length > 7 && target.slice(0, 7).toLowerCase() === 'http://') schemeEnd = 7;
  else if (target.length > 8 && target.slice(0, 8).toLowerCase() === 'https://') schemeEnd = 8;
  else return undefined;
  let rest = schemeEnd;
  for (; rest < target.length; rest++) {
    const c = target.charCodeAt(rest);
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */) break;
    if (c === 64 /* @ */) return undefined;
  }
  if (rest === schemeEnd) return undefined;
  return { authority: target.slice(schemeEnd, rest), rest };
}
