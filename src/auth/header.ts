import { problem, type Problem } from '../errors/problems.js';
import { TOKEN_DETAIL } from './errors.js';

/** RFC 6750 §2.1: `Bearer` (any case), exactly one space, a token68. */
const BEARER = /^bearer ([A-Za-z0-9\-._~+/]+=*)$/i;
const SEGMENT = /^[A-Za-z0-9_-]+$/;
export const SCHEME_LENGTH = 'Bearer '.length;

export type ParsedToken = { readonly ok: true; readonly token: string } | { readonly ok: false; readonly problem: Problem };

/**
 * The token from an Authorization header, or the refusal. Size is checked first so an oversized
 * header costs one length check, and a token that is too large answers 431 whatever else is wrong
 * with it.
 */
export function parseAuthorization(header: string, maxTokenBytes: number): ParsedToken {
  if (Buffer.byteLength(header, 'utf8') > maxTokenBytes + SCHEME_LENGTH) {
    return { ok: false, problem: problem('header_too_large', TOKEN_DETAIL.tooLarge) };
  }
  const match = BEARER.exec(header);
  if (match === null) return { ok: false, problem: problem('invalid_token', TOKEN_DETAIL.header) };
  const token = match[1]!;
  // token68 is ASCII, so characters are bytes.
  if (token.length > maxTokenBytes) return { ok: false, problem: problem('header_too_large', TOKEN_DETAIL.tooLarge) };
  const segments = token.split('.');
  // A compact JWS: three non-empty base64url segments (an empty signature is an unsigned token).
  if (segments.length !== 3 || !segments.every(isBase64urlSegment)) {
    return { ok: false, problem: problem('invalid_token', TOKEN_DETAIL.format) };
  }
  return { ok: true, token };
}

/**
 * What follows `Bearer ` (any case), unchecked: only a key to look up a token verified before.
 * parseAuthorization is the check.
 */
export function bearerPart(header: string): string | undefined {
  if (header.length <= SCHEME_LENGTH || header.charCodeAt(SCHEME_LENGTH - 1) !== 0x20) return undefined;
  return header.slice(0, SCHEME_LENGTH - 1).toLowerCase() === 'bearer' ? header.slice(SCHEME_LENGTH) : undefined;
}

function isBase64urlSegment(segment: string): boolean {
  // Length 1 mod 4 cannot come from any byte string.
  return SEGMENT.test(segment) && segment.length % 4 !== 1;
}

/** Decodes one base64url segment into a JSON object, or undefined when it is anything else. */
export function decodeJsonSegment(segment: string): Record<string, unknown> | undefined {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(Buffer.from(segment, 'base64url'));
  } catch {
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}
