import type { RejectReason } from './reasons.js';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
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
        if (--pending === 0 && (codePoint < minCodePoint || codePoint > 0x10ffff || (codePoint >= 0xd800 && codePoint <= 0xdfff))) {
          return 'invalid_utf8';
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
