import type { IncomingMessage } from 'node:http';
import { problem, type Problem } from '../../errors/problems.js';
import type { RequestSource } from '../../request/canonical.js';
import { isHeaderName } from '../../request/header-name.js';
import { splitAbsoluteForm } from '../../request/target.js';

/**
 * The original request a forward-auth caller asks about, rebuilt from the headers each proxy
 * family sends. Only presence and uniqueness are checked here; everything about the method, the
 * target, the host and the forwarded headers is left to `canonicalizeRequest`, run on the rebuilt
 * request, so there is one definition of "unambiguous" for every front door.
 */
export interface OriginalRequest {
  readonly method: string;
  /** The request target as the client sent it: origin-form, or absolute-form (then it names the host). */
  readonly target: string;
  /** Host header of the original request; undefined when the target names it or none was sent. */
  readonly host?: string;
  /** Scheme the client used, when the proxy told us (becomes X-Forwarded-Proto from a trusted peer). */
  readonly proto?: string;
}

export type Rebuilt = { readonly ok: true; readonly original: OriginalRequest } | { readonly ok: false; readonly problem: Problem };

/** What follows `<prefix>authz/`: the three supported proxy families. */
export type AuthzKind = 'auth-request' | 'forward-auth' | 'ext-authz';

function bad(detail: string): { ok: false; problem: Problem } {
  return { ok: false, problem: problem('invalid_request', detail) };
}

type Single = { readonly ok: true; readonly value: string | undefined } | { readonly ok: false; readonly problem: Problem };

/** The value of a header sent at most once; two values would be two answers to one question. */
function single(req: IncomingMessage, name: string, label: string): Single {
  let found: string | undefined;
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (!isHeaderName(raw[i]!, name)) continue;
    if (found !== undefined) return bad(`${label} must be sent once`);
    found = raw[i + 1]!;
  }
  return { ok: true, value: found };
}

function required(req: IncomingMessage, name: string, label: string): Single {
  const got = single(req, name, label);
  if (got.ok && (got.value === undefined || got.value === '')) return bad(`${label} is required`);
  return got;
}

/**
 * nginx `auth_request`: `X-Original-Method` + `X-Original-URL`, origin-form with `X-Original-Host`
 * (else the auth call's Host) and X-Forwarded-Proto, or absolute (then the authority must be
 * followed by `/`).
 */
function fromAuthRequest(req: IncomingMessage): Rebuilt {
  const method = required(req, 'x-original-method', 'X-Original-Method');
  if (!method.ok) return method;
  const url = required(req, 'x-original-url', 'X-Original-URL');
  if (!url.ok) return url;
  const target = url.value!;
  if (splitAbsoluteForm(target) !== undefined) {
    return { ok: true, original: { method: method.value!, target, proto: target.slice(0, 6).toLowerCase() === 'https:' ? 'https' : 'http' } };
  }
  // Origin-form (the shipped nginx example sends `$request_uri`): Host and scheme come separately,
  // so the path never depends on what the client put in Host. Anything else that is not
  // origin-form (`ftp://…`, `//host/x`, `x`) is refused by the canonicaliser.
  const proto = single(req, 'x-forwarded-proto', 'X-Forwarded-Proto');
  if (!proto.ok) return proto;
  // The client's Host travels in its own header, so a bad one is judged (and answered with the
  // problem headers nginx replays) as part of the original request, not as the auth call's.
  const originalHost = single(req, 'x-original-host', 'X-Original-Host');
  if (!originalHost.ok) return originalHost;
  const host = originalHost.value ?? req.headers.host;
  return {
    ok: true,
    original: {
      method: method.value!,
      target,
      ...(host !== undefined ? { host } : {}),
      ...(proto.value !== undefined ? { proto: proto.value } : {}),
    },
  };
}

/** Traefik ForwardAuth, Caddy `forward_auth`: `X-Forwarded-Method/-Proto/-Host/-Uri`. */
function fromForwardAuth(req: IncomingMessage): Rebuilt {
  const method = required(req, 'x-forwarded-method', 'X-Forwarded-Method');
  if (!method.ok) return method;
  const uri = required(req, 'x-forwarded-uri', 'X-Forwarded-Uri');
  if (!uri.ok) return uri;
  if (!uri.value!.startsWith('/')) return bad('X-Forwarded-Uri must start with /');
  const forwardedHost = single(req, 'x-forwarded-host', 'X-Forwarded-Host');
  if (!forwardedHost.ok) return forwardedHost;
  const proto = single(req, 'x-forwarded-proto', 'X-Forwarded-Proto');
  if (!proto.ok) return proto;
  // Caddy passes the client's Host through and may omit X-Forwarded-Host.
  const host = forwardedHost.value ?? req.headers.host;
  return {
    ok: true,
    original: {
      method: method.value!,
      target: uri.value!,
      ...(host !== undefined ? { host } : {}),
      ...(proto.value !== undefined ? { proto: proto.value } : {}),
    },
  };
}

/**
 * Envoy's HTTP ext_authz service: the original path appended to the configured prefix, the
 * original method and Host kept. `rest` is what followed `ext-authz` in the already canonical path.
 */
function fromExtAuthz(req: IncomingMessage, rest: string, search: string): Rebuilt {
  const proto = single(req, 'x-forwarded-proto', 'X-Forwarded-Proto');
  if (!proto.ok) return proto;
  const host = req.headers.host;
  return {
    ok: true,
    original: {
      method: req.method ?? '',
      target: (rest === '' ? '/' : rest) + search,
      ...(host !== undefined ? { host } : {}),
      ...(proto.value !== undefined ? { proto: proto.value } : {}),
    },
  };
}

/**
 * Rebuilds the original request for `kind` (what followed `authz/` in the path); undefined when
 * `kind` names no supported endpoint. `search` is the auth request's own query (ext_authz keeps it).
 */
export function rebuildOriginal(req: IncomingMessage, kind: string, search: string): { kind: AuthzKind; rebuilt: Rebuilt } | undefined {
  if (kind === 'auth-request') return { kind, rebuilt: fromAuthRequest(req) };
  if (kind === 'forward-auth') return { kind, rebuilt: fromForwardAuth(req) };
  if (kind === 'ext-authz' || kind.startsWith('ext-authz/')) {
    return { kind: 'ext-authz', rebuilt: fromExtAuthz(req, kind.slice('ext-authz'.length), search) };
  }
  return undefined;
}

/**
 * Headers of the auth request that travel into the rebuilt one: the caller's credentials (all
 * copies, so the duplicate checks still apply), the client chain the proxy built, and the id the
 * proxy gave the request.
 */
const COPIED = ['authorization', 'x-mfa-token', 'x-session-token', 'x-forwarded-for', 'x-request-id'];

function isCopied(name: string): boolean {
  for (const copied of COPIED) if (isHeaderName(name, copied)) return true;
  return false;
}

/** The original request in the shape `canonicalizeRequest` reads. */
export function syntheticRequest(req: IncomingMessage, original: OriginalRequest): RequestSource {
  const rawHeaders: string[] = [];
  if (original.host !== undefined) rawHeaders.push('Host', original.host);
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    if (isCopied(raw[i]!)) rawHeaders.push(raw[i]!, raw[i + 1]!);
  }
  if (original.proto !== undefined) rawHeaders.push('X-Forwarded-Proto', original.proto);
  return {
    method: original.method,
    url: original.target,
    httpVersion: '1.1',
    rawHeaders,
    socket: { remoteAddress: req.socket.remoteAddress },
  };
}
