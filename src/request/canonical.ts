import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { isHeaderName, isLooseHeaderName } from './header-name.js';
import { normalizeHost } from './host.js';
import { REJECTIONS, type RejectReason, type Rejection } from './reasons.js';
import { normalizePath, scanOriginForm, splitAbsoluteForm } from './target.js';
import { unmapIPv4, type TrustList } from './trust.js';
import { RAW_HEADERS, type RequestView } from './view.js';

export { REJECT_REASONS, REJECTIONS, type RejectReason, type Rejection } from './reasons.js';

export interface CanonicalOptions {
  /** Peers whose X-Forwarded-For / -Proto / -Host are believed. */
  readonly trustedProxies: TrustList;
  /** Largest bearer token accepted; the Authorization value may add the `Bearer ` scheme to it. */
  readonly maxTokenBytes: number;
  /**
   * The request's id when no trusted peer chose one with X-Request-Id (default: a new UUID).
   * Forward-auth passes the auth call's own, so the call and the request it judges share one id.
   */
  readonly requestId?: string;
}

export type CanonicalResult = { readonly ok: true; readonly view: RequestView } | Rejection;

/** What `canonicalizeRequest` reads; an IncomingMessage satisfies it. */
export type RequestSource = Pick<IncomingMessage, 'rawHeaders' | 'url' | 'method' | 'httpVersion'> & {
  /** `encrypted` is true on a TLSSocket: the client spoke TLS to us. */
  readonly socket: { readonly remoteAddress?: string | undefined; readonly encrypted?: boolean };
};

const BEARER_SCHEME_BYTES = 'Bearer '.length;
const MAX_MFA_TOKEN_BYTES = 64;
const MAX_SESSION_TOKEN_BYTES = 256;
const MAX_REQUEST_ID_CHARS = 128;
const MAX_FORWARDED_HOPS = 64;

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Anchored at both ends, so irregexp runs one tight loop from the start instead of trying a match
 * at every position: about a third faster than the negated class `[^\x20-\x7e]` on a 320-character
 * bearer (146 against 222 ns here), and several times faster than a JS loop. Linear: a failure
 * gives back one character per step, once.
 */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

function isPrintableAscii(value: string): boolean {
  return PRINTABLE_ASCII.test(value);
}

function isMethodToken(method: string): boolean {
  if (method.length === 0 || method.length > 32) return false;
  for (let i = 0; i < method.length; i++) {
    const c = method.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || c === 45)) return false;
  }
  return true;
}

function isDigits(value: string): boolean {
  if (value.length === 0 || value.length > 16) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

function isRequestId(value: string): boolean {
  if (value.length === 0 || value.length > MAX_REQUEST_ID_CHARS) return false;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    const ok = (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 58) || c === 45 || c === 46 || c === 95;
    if (!ok) return false;
  }
  return true;
}

/**
 * The client address from a trusted peer's X-Forwarded-For: the right-most hop that is not itself
 * a trusted proxy (or the left-most when every hop is trusted). Undefined when any hop is not an IP.
 */
function resolveForwardedFor(chain: string, peer: string, trust: TrustList): { clientIp: string; forwardedFor: string } | undefined {
  const hops = chain.split(',');
  if (hops.length > MAX_FORWARDED_HOPS) return undefined;
  for (let i = 0; i < hops.length; i++) {
    const hop = hops[i]!.trim();
    if (isIP(hop) === 0) return undefined;
    hops[i] = hop;
  }
  let clientIp = unmapIPv4(hops[0]!);
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = unmapIPv4(hops[i]!);
    if (!trust.has(hop)) {
      clientIp = hop;
      break;
    }
  }
  return { clientIp, forwardedFor: `${hops.join(', ')}, ${peer}` };
}

/**
 * The one canonical view of a request, or the reason it is refused. Reads only the request line,
 * `rawHeaders` (one pass) and the socket peer. Anything a backend could read differently from us
 * is refused, never cleaned up: the path in the view is the exact path that is matched and forwarded.
 */
export function canonicalizeRequest(req: RequestSource, opts: CanonicalOptions): CanonicalResult {
  const version = req.httpVersion;
  const http10 = version === '1.0';
  // Node lets HTTP/0.9 and HTTP/2.0 request lines through on a plain socket.
  if (!http10 && version !== '1.1') return REJECTIONS.unsupported_http_version;
  const method = req.method ?? '';
  if (method === 'CONNECT') return REJECTIONS.authority_form;
  if (!isMethodToken(method)) return REJECTIONS.invalid_method;

  let hostHeader: string | undefined;
  let authorization: string | undefined;
  let mfaToken: string | undefined;
  let sessionToken: string | undefined;
  let clientRequestId: string | undefined;
  let requestIdCount = 0;
  let forwardedForChain: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedProtoCount = 0;
  let forwardedHostHeader: string | undefined;
  let forwardedHostCount = 0;
  let transferEncoding: string | undefined;
  let transferEncodingCount = 0;
  let contentLength: string | undefined;
  let contentLengthCount = 0;

  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    // Dispatch on length first: most headers are rejected by one integer compare.
    switch (name.length) {
      case 4:
        if (isHeaderName(name, 'host')) {
          if (hostHeader !== undefined) return REJECTIONS.duplicate_host;
          hostHeader = value;
        }
        break;
      case 11:
        if (isHeaderName(name, 'x-mfa-token')) {
          if (mfaToken !== undefined) return REJECTIONS.duplicate_mfa_token;
          if (value.length > MAX_MFA_TOKEN_BYTES) return REJECTIONS.mfa_token_too_large;
          // An empty or non-ASCII code (unicode digits) is a malformed code: the MFA stage answers it
          // exactly like a wrong one (mfa_invalid), so it must not get a different answer here.
          mfaToken = value;
        } else if (isLooseHeaderName(name, 'x-mfa-token')) {
          return REJECTIONS.credential_header_spelling;
        }
        break;
      case 12:
        if (isHeaderName(name, 'x-request-id')) {
          requestIdCount++;
          clientRequestId = value;
        }
        break;
      case 13:
        if (isHeaderName(name, 'authorization')) {
          if (authorization !== undefined) return REJECTIONS.duplicate_authorization;
          if (value.length === 0) return REJECTIONS.empty_authorization;
          // Written as a negated `<=` so that a NaN limit refuses instead of accepting.
          if (!(value.length <= opts.maxTokenBytes + BEARER_SCHEME_BYTES)) return REJECTIONS.authorization_too_large;
          if (!isPrintableAscii(value)) return REJECTIONS.invalid_credential_character;
          authorization = value;
        } else if (isHeaderName(name, 'x-http-method')) {
          return REJECTIONS.method_override;
        }
        break;
      case 14:
        if (isHeaderName(name, 'content-length')) {
          contentLengthCount++;
          contentLength = value;
        }
        break;
      case 15:
        if (isHeaderName(name, 'x-session-token')) {
          if (sessionToken !== undefined) return REJECTIONS.duplicate_session_token;
          if (value.length === 0) return REJECTIONS.empty_session_token;
          if (value.length > MAX_SESSION_TOKEN_BYTES) return REJECTIONS.session_token_too_large;
          if (!isPrintableAscii(value)) return REJECTIONS.invalid_credential_character;
          sessionToken = value;
        } else if (isHeaderName(name, 'x-forwarded-for')) {
          // Several lines form one list (RFC 9110 §5.3).
          forwardedForChain = forwardedForChain === undefined ? value : `${forwardedForChain},${value}`;
        } else if (isLooseHeaderName(name, 'x-session-token')) {
          return REJECTIONS.credential_header_spelling;
        }
        break;
      case 16:
        if (isHeaderName(name, 'x-forwarded-host')) {
          forwardedHostCount++;
          forwardedHostHeader = value;
        }
        break;
      case 17:
        if (isHeaderName(name, 'transfer-encoding')) {
          transferEncodingCount++;
          transferEncoding = value;
        } else if (isHeaderName(name, 'x-forwarded-proto')) {
          forwardedProtoCount++;
          forwardedProto = value;
        } else if (isHeaderName(name, 'x-method-override')) {
          return REJECTIONS.method_override;
        }
        break;
      case 22:
        // The route was chosen for the request-line method; a backend honouring an override
        // would run another one (a GET policy guarding a DELETE).
        if (isHeaderName(name, 'x-http-method-override')) return REJECTIONS.method_override;
        break;
    }
  }

  // Framing. llhttp already refuses most of these; the ones it lets through are marked.
  if (transferEncoding !== undefined) {
    if (transferEncodingCount > 1) return REJECTIONS.multiple_transfer_encoding; // llhttp: `gzip` + `chunked` lines pass
    if (http10) return REJECTIONS.transfer_encoding_http10; // llhttp: passes
    if (contentLengthCount > 0) return REJECTIONS.transfer_encoding_with_content_length;
    // llhttp: `gzip, chunked`, `identity, chunked`, `Chunked` and an empty value pass.
    if (transferEncoding !== 'chunked') return REJECTIONS.transfer_encoding_not_chunked;
  }
  if (contentLength !== undefined) {
    if (contentLengthCount > 1) return REJECTIONS.duplicate_content_length;
    if (!isDigits(contentLength)) return REJECTIONS.invalid_content_length;
  }

  let host = '';
  if (hostHeader !== undefined) {
    const normalized = normalizeHost(hostHeader);
    if (normalized === undefined) return REJECTIONS.invalid_host;
    host = normalized;
  }
  let forwardedHost = hostHeader ?? '';

  // Request target: origin-form, or absolute-form naming the same host.
  let target = req.url ?? '';
  if (target.charCodeAt(0) !== 47 /* / */) {
    if (target === '*') return REJECTIONS.asterisk_form;
    const absolute = splitAbsoluteForm(target);
    if (absolute === undefined) return target.includes(':') ? REJECTIONS.absolute_form_invalid : REJECTIONS.invalid_target;
    const authority = normalizeHost(absolute.authority);
    if (authority === undefined) return REJECTIONS.absolute_form_invalid;
    if (hostHeader === undefined) {
      host = authority;
      forwardedHost = absolute.authority;
    } else if (authority !== host) {
      return REJECTIONS.absolute_form_host_mismatch;
    }
    // `http://a?/admin` would be decided as `/` while a proxy that glued the client's Host
    // (`a?`) in front of its request target sends `/admin`: only `authority/path` reads one way.
    if (target.charCodeAt(absolute.rest) !== 47) return REJECTIONS.authority_without_path;
    target = target.slice(absolute.rest);
  }
  const queryStart = scanOriginForm(target, 0);
  if (typeof queryStart !== 'number') return REJECTIONS[queryStart];
  const path = normalizePath(queryStart === target.length ? target : target.slice(0, queryStart));
  // A path always starts with "/", a reason never does.
  if (path.charCodeAt(0) !== 47) return REJECTIONS[path as RejectReason];
  // A bare trailing `?` is kept: the forwarded target must be the received one, byte for byte.
  const search = queryStart === target.length ? '' : target.slice(queryStart);

  const remote = req.socket.remoteAddress;
  if (remote === undefined || remote.length === 0) return REJECTIONS.unknown_peer;
  const peer = unmapIPv4(remote);
  let clientIp = peer;
  let forwardedFor = peer;
  // Our own socket first; a trusted proxy in front of us knows the client's hop better.
  let proto: 'http' | 'https' = req.socket.encrypted === true ? 'https' : 'http';
  const peerTrusted = opts.trustedProxies.size > 0 && opts.trustedProxies.has(peer);
  if (peerTrusted) {
    if (forwardedForChain !== undefined) {
      const resolved = resolveForwardedFor(forwardedForChain, peer, opts.trustedProxies);
      if (resolved === undefined) return REJECTIONS.invalid_forwarded_for;
      clientIp = resolved.clientIp;
      forwardedFor = resolved.forwardedFor;
    }
    if (forwardedProto !== undefined) {
      const lower = forwardedProtoCount === 1 ? forwardedProto.toLowerCase() : '';
      if (lower !== 'http' && lower !== 'https') return REJECTIONS.invalid_forwarded_proto;
      proto = lower;
    }
    if (forwardedHostHeader !== undefined) {
      if (forwardedHostCount > 1 || normalizeHost(forwardedHostHeader) === undefined) return REJECTIONS.invalid_forwarded_host;
      forwardedHost = forwardedHostHeader;
    }
  }

  const view: Mutable<RequestView> = {
    method,
    path,
    search,
    host,
    proto,
    clientIp,
    forwardedFor,
    forwardedHost,
    requestId: opts.requestId ?? randomUUID(),
    peerTrusted,
    // A reference, not a copy, read by risk signals on MFA routes only. A symbol key: part of the
    // literal (a defineProperty per request cost 0.4 µs), and never serialised or logged.
    [RAW_HEADERS]: raw,
  };
  // Logs and the audit trail are keyed on the request id: only a trusted proxy may choose it.
  if (requestIdCount === 1 && clientRequestId !== undefined && isRequestId(clientRequestId)) {
    if (peerTrusted) view.requestId = clientRequestId;
    else view.clientRequestId = clientRequestId;
  }
  if (authorization !== undefined) view.authorization = authorization;
  if (mfaToken !== undefined) view.mfaToken = mfaToken;
  if (sessionToken !== undefined) view.sessionToken = sessionToken;
  return { ok: true, view };
}
