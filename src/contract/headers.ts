import { util as undiciUtil } from 'undici';
import type { Allow, Identity, IssuedSession } from '../decision/types.js';
import { RATELIMIT_FIELD, RATELIMIT_POLICY_FIELD, rateLimitFields } from '../errors/ratelimit.js';
import type { RequestView } from '../request/view.js';
import { withoutSetupCookies } from '../setup/cookies.js';
import { nameSet, NameTable } from './name-table.js';

/**
 * The header contract (DESIGN §3), both directions, for every front door: what is stripped from
 * the client's request, which identity headers are added for the backend, and what goes back to
 * the client. Headers travel as flat `[name, value, …]` string arrays: that is what Node's
 * `rawHeaders` gives, what undici's Request takes without building an object, and what
 * `res.writeHead` accepts; one pass, no intermediate object.
 */

export interface UpstreamHeaderContext {
  readonly view: RequestView;
  readonly identity?: Identity | undefined;
  readonly forwardAuthorization: boolean;
  /**
   * `host[:port]` of the upstream: the Host the backend sees. Undefined when the backend is the
   * application in this process (the middleware): the message was already framed and delivered
   * by Node, so Host and the framing headers stay as received and describe the request truthfully.
   */
  readonly upstreamHost: string | undefined;
  /** A WebSocket upgrade being tunnelled: send `Connection: upgrade` + `Upgrade: websocket`. */
  readonly websocket?: boolean;
  /**
   * The policy's `untrusted_peer_headers` (lower-case, `-` separators): dropped in any spelling
   * unless the peer is a trusted proxy.
   */
  readonly untrustedPeerHeaders: ReadonlySet<string>;
}

// What to do with a client header, by lower-cased name.
const KEEP = 0;
const DROP = 1;
const CONNECTION = 2;
const AUTHORIZATION = 3;
const COOKIE = 4;

/** Hop-by-hop (RFC 9110 §7.6.1) plus legacy ones; never forwarded in either direction. */
const HOP_BY_HOP = nameSet([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'proxy-authorization',
  'proxy-authenticate',
]);

const REQUEST_ACTION = new NameTable<number>([
  ['connection', CONNECTION],
  ['authorization', AUTHORIZATION],
  // The setup page's cookies are the gateway's own credentials: removed, the rest forwarded.
  ['cookie', COOKIE],
  ['keep-alive', DROP],
  ['proxy-connection', DROP],
  ['te', DROP],
  ['trailer', DROP],
  ['transfer-encoding', DROP],
  ['upgrade', DROP],
  ['proxy-authorization', DROP],
  ['proxy-authenticate', DROP],
  // Ours to decide: the upstream's Host.
  ['host', DROP],
  ['forwarded', DROP],
  // Node already answered `100 Continue`; undici refuses to send Expect.
  ['expect', DROP],
  // httpoxy: CGI-style backends turn `Proxy:` into HTTP_PROXY.
  ['proxy', DROP],
]);

/** Client headers with these names (after normalising `_`/`.` to `-`) never reach the backend. */
const DROPPED_X = nameSet(['x-mfa-token', 'x-session-token', 'x-original-url', 'x-rewrite-url', 'x-request-id']);

/** A client's `Connection` header may not remove what the gateway decides or how the body is framed. */
const PROTECTED_FROM_CONNECTION = nameSet(['host', 'authorization', 'content-length']);

const SEPARATORS = /[_.]/g;

const { headerNameToString } = undiciUtil;

/** `_` and `.` written as `-`, the spelling CGI-style backends fold every header name into. */
function dashed(lowerName: string): string {
  // One pass over a short name; two indexOf calls cost more than the scan.
  for (let i = 0; i < lowerName.length; i++) {
    const c = lowerName.charCodeAt(i);
    if (c === 95 /* _ */ || c === 46 /* . */) return lowerName.replace(SEPARATORS, '-');
  }
  return lowerName;
}

/**
 * True for any spelling of a header the client must not send the backend: `X-Auth-*`, `x_auth_*`,
 * `X.Auth.*`, `X-Forwarded-*` (any spelling), `X-MFA-Token`, `X-Session-Token`, … Backends behind
 * CGI/WSGI-style gateways read `_`, `.` and `-` as the same character.
 */
function isDroppedXHeader(lowerName: string): boolean {
  const name = dashed(lowerName);
  return name.startsWith('x-auth-') || name.startsWith('x-forwarded-') || DROPPED_X.has(name);
}

function requestAction(lowerName: string): number {
  // 120 = 'x': every spoofable identity / forwarding header starts with it.
  if (lowerName.charCodeAt(0) === 120) return isDroppedXHeader(lowerName) ? DROP : KEEP;
  return REQUEST_ACTION.get(lowerName) ?? KEEP;
}

/** What the in-process application still needs of the message Node already framed for it. */
const IN_PROCESS_KEPT = nameSet(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'expect']);

function inProcessAction(lowerName: string): number {
  if (IN_PROCESS_KEPT.has(lowerName)) return KEEP;
  return requestAction(lowerName);
}

/** Adds the lower-cased tokens of a `Connection` value that name an end-to-end header to `into`. */
function connectionTokens(value: string, into: string[] | undefined, protect: NameTable<true>): string[] | undefined {
  // Nearly every message says just this; skip the split.
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'Close') return into;
  for (const part of value.split(',')) {
    const token = part.trim().toLowerCase();
    if (token === '' || token === 'close' || HOP_BY_HOP.has(token) || protect.has(token)) continue;
    (into ??= []).push(token);
  }
  return into;
}

/** Removes, in place, every pair whose lower-cased name is in `names`. */
function removeNamed(headers: string[], names: readonly string[]): void {
  let kept = 0;
  for (let i = 0; i < headers.length; i += 2) {
    if (names.includes(headers[i]!.toLowerCase())) continue;
    headers[kept] = headers[i]!;
    headers[kept + 1] = headers[i + 1]!;
    kept += 2;
  }
  headers.length = kept;
}

/** The policy's `untrusted_peer_headers` as a NameTable, built once per compiled policy. */
const untrustedTables = new WeakMap<ReadonlySet<string>, NameTable<true>>();

function untrustedTable(names: ReadonlySet<string>): NameTable<true> {
  let table = untrustedTables.get(names);
  if (table === undefined) untrustedTables.set(names, (table = nameSet(names)));
  return table;
}

/**
 * The headers the upstream receives: the client's end-to-end headers minus everything it must not
 * control, then the gateway's own (identity, request id, forwarding, Host) appended last, so no
 * client header can shadow or remove them.
 */
export function buildUpstreamHeaders(rawHeaders: readonly string[], ctx: UpstreamHeaderContext): string[] {
  const out: string[] = [];
  let named: string[] | undefined;
  let authorizationSeen = false;
  const actionOf = ctx.upstreamHost === undefined ? inProcessAction : requestAction;
  const untrusted = ctx.view.peerTrusted || ctx.untrustedPeerHeaders.size === 0 ? undefined : untrustedTable(ctx.untrustedPeerHeaders);
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    const action = untrusted !== undefined && untrusted.has(dashed(lower)) ? DROP : actionOf(lower);
    if (action === KEEP) {
      out.push(name, value);
    } else if (action === CONNECTION) {
      named = connectionTokens(value, named, PROTECTED_FROM_CONNECTION);
    } else if (action === AUTHORIZATION) {
      // Duplicates were refused by the canonical view; keeping only the first is a second line.
      if (ctx.forwardAuthorization && !authorizationSeen) out.push(name, value);
      authorizationSeen = true;
    } else if (action === COOKIE) {
      const kept = withoutSetupCookies(value);
      if (kept !== undefined) out.push(name, kept);
    }
  }
  if (named !== undefined) removeNamed(out, named);

  const { view, identity } = ctx;
  if (identity !== undefined) pushIdentity(out, identity);
  out.push('x-request-id', view.requestId, 'x-forwarded-for', view.forwardedFor, 'x-forwarded-proto', view.proto);
  if (view.forwardedHost !== '') out.push('x-forwarded-host', view.forwardedHost);
  if (ctx.upstreamHost !== undefined) out.push('host', ctx.upstreamHost);
  if (ctx.websocket === true) out.push('connection', 'upgrade', 'upgrade', 'websocket');
  return out;
}

/** The `x-auth-scopes` value of each frozen scope list (the decision engine shares one per scope set). */
const scopesTexts = new WeakMap<readonly string[], string>();

function scopesText(scopes: readonly string[]): string {
  let text = scopesTexts.get(scopes);
  if (text === undefined) {
    text = scopes.map(headerText).join(' ');
    // Only a list that cannot change may answer for later requests.
    if (Object.isFrozen(scopes)) scopesTexts.set(scopes, text);
  }
  return text;
}

function pushIdentity(out: string[], identity: Identity): void {
  out.push('x-auth-subject', headerText(identity.subject), 'x-auth-scopes', scopesText(identity.scopes), 'x-auth-mfa', identity.mfa);
  if (identity.mfaTime !== undefined) out.push('x-auth-mfa-time', String(identity.mfaTime));
}

const NEEDS_ENCODING = /[^\x20-\x24\x26-\x7e]/;

/**
 * An identity value as header text: `%` and every character outside printable ASCII
 * percent-encoded as UTF-8 (`jörg` → `j%C3%B6rg`, `50%` → `50%25`), so any subject reaches the
 * backend intact and `decodeURIComponent` gives it back. Plain ASCII names pass unchanged.
 */
export function headerText(value: string): string {
  if (!NEEDS_ENCODING.test(value)) return value;
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0)!;
    if (code >= 0x20 && code <= 0x7e && code !== 0x25) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/**
 * The verified-identity headers and the request id as one flat list: the forward-auth answer
 * carries them for the proxy in front to copy onto the backend request.
 */
export function identityHeaders(identity: Identity | undefined, requestId: string): string[] {
  const out: string[] = [];
  if (identity !== undefined) pushIdentity(out, identity);
  out.push('x-request-id', requestId);
  return out;
}

/**
 * What the client gets back beyond the backend's answer: a session minted on this request (a
 * good X-MFA-Token), on every door that can carry it — proxied responses, the 101 of a WebSocket
 * upgrade, the forward-auth answer, the middleware's response. Never sent to a backend.
 */
export function clientSessionHeaders(session: IssuedSession | undefined): Readonly<Record<string, string>> | undefined {
  if (session === undefined) return undefined;
  const headers: Record<string, string> = { 'x-session-token': session.token, 'x-session-expires': String(session.expiresAt) };
  // Opened by a recovery code: how many are left, and once few are, where to get a new set.
  if (session.recoveryCodesRemaining !== undefined) headers['x-recovery-codes-remaining'] = String(session.recoveryCodesRemaining);
  if (session.recoveryCodesHint !== undefined) headers['x-recovery-codes-hint'] = session.recoveryCodesHint;
  return headers;
}

/**
 * Everything an allowed request adds to the client's answer, on every door: the minted session
 * (above) and, on a rate-limited route, `RateLimit` / `RateLimit-Policy` with the quota it left.
 */
export function clientAnswerHeaders(decision: Pick<Allow, 'session' | 'rateLimit'>): Readonly<Record<string, string>> | undefined {
  const session = clientSessionHeaders(decision.session);
  if (decision.rateLimit === undefined) return session;
  return { ...session, ...rateLimitFields(decision.rateLimit) };
}

/**
 * Structured-field Lists (RFC 9651 §3.1) whose members may be split over several field lines: the
 * gateway's items are added beside the backend's own policies instead of replacing them.
 */
const LIST_FIELDS: ReadonlySet<string> = new Set([RATELIMIT_FIELD, RATELIMIT_POLICY_FIELD]);

const NOTHING_PROTECTED = nameSet([]);

/** A response header value as the client receives it: latin1 keeps every byte; Node validates it in writeHead. */
function latin1(value: Buffer | string): string {
  return typeof value === 'string' ? value : value.toString('latin1');
}

/**
 * The upstream's response headers as the client receives them: hop-by-hop and Connection-named
 * headers removed (repeated `set-cookie` kept as they came), the gateway's request id, then the
 * caller's extra headers (e.g. `x-session-token`), which replace any upstream header of that name.
 * `keepUpgrade` keeps `Upgrade`/`Connection` for a 101 answer on a tunnelled WebSocket.
 *
 * Names reach the client in lower case, as HTTP/2 and Envoy send them: undici's table gives the
 * known ones without copying the upstream's bytes, and a dropped header's value is never decoded.
 */
export function filterResponseHeaders(
  rawHeaders: readonly (Buffer | string)[],
  requestId: string,
  extra?: Readonly<Record<string, string>>,
  keepUpgrade = false,
): string[] {
  const out: string[] = [];
  let named: string[] | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = headerNameToString(rawHeaders[i]!);
    if (keepUpgrade && (name === 'upgrade' || name === 'connection')) {
      out.push(name, latin1(rawHeaders[i + 1]!));
      continue;
    }
    if (name === 'connection') {
      named = connectionTokens(latin1(rawHeaders[i + 1]!), named, NOTHING_PROTECTED);
      continue;
    }
    if (HOP_BY_HOP.has(name) || name === 'x-request-id') continue;
    if (extra !== undefined && Object.hasOwn(extra, name) && !LIST_FIELDS.has(name)) continue;
    out.push(name, latin1(rawHeaders[i + 1]!));
  }
  if (named !== undefined) removeNamed(out, named);
  out.push('x-request-id', requestId);
  if (extra !== undefined) {
    for (const name of Object.keys(extra)) out.push(name, extra[name]!);
  }
  return out;
}
