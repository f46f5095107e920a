import { hash, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { performance } from 'node:perf_hooks';
import { endToEnd, isHopByHop, relayFailure, requestBody, serve, upstreamPool } from './minimal-proxy.js';

/**
 * Floor of the mfa + session row: the minimal undici proxy (undici-proxy.ts) plus the least a
 * node:http + undici proxy must do per request to keep DESIGN.md's header contract on an mfa route
 * whose answers are all in memory. Per request: the bearer token and the session token each hashed (SHA-256, as
 * no cache may hold a credential) and looked up, the session bound to the token's subject; a request
 * id; the credentials and every spoofable X-Auth-* / X-Forwarded-* header dropped, the identity,
 * request-id and forwarding headers added for the backend; the request id on the response; a
 * request count and a duration histogram. Nothing the gateway also does for safety is here (the
 * canonical view's smuggling checks, route matching, scopes, lockout, rate limits), so a proxy that
 * keeps the contract on this stack (node:http and undici) does at least this much on the same machine.
 *
 * A credential seen for the first time is taken as validated (its subject and scopes read from the
 * JWT payload, the session bound to that subject): the gateway validates each once too, and the
 * rows measure the cache-warm path.
 */

/** Never forwarded as the client sent them: its credentials, and the request id the proxy sets itself. */
const NOT_FORWARDED = new Set(['authorization', 'x-mfa-token', 'x-session-token', 'x-request-id']);
const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2.5, 5, 10, 30];

interface Principal {
  readonly subject: string;
  readonly scopes: string;
}

const principals = new Map<string, Principal>();
interface Session {
  readonly subject: string;
  readonly mfaTime: string;
}

const sessions = new Map<string, Session>();
const histogram = { counts: new Array<number>(BUCKETS.length + 1).fill(0), sum: 0, requests: 0 };

function principalOf(authorization: string): Principal | undefined {
  const key = hash('sha256', authorization, 'hex');
  let found = principals.get(key);
  if (found === undefined) {
    let payload: { sub?: unknown; scope?: unknown };
    try {
      payload = JSON.parse(Buffer.from(authorization.split('.')[1] ?? '', 'base64url').toString('utf8')) as { sub?: unknown; scope?: unknown };
    } catch {
      return undefined;
    }
    if (typeof payload?.sub !== 'string') return undefined;
    principals.set(key, (found = { subject: payload.sub, scopes: typeof payload.scope === 'string' ? payload.scope : '' }));
  }
  return found;
}

function sessionOf(token: string, subject: string): Session | undefined {
  const key = hash('sha256', token, 'hex');
  let found = sessions.get(key);
  if (found === undefined) sessions.set(key, (found = { subject, mfaTime: String(Math.floor(Date.now() / 1000)) }));
  return found.subject === subject ? found : undefined;
}

const { port, pool } = upstreamPool('contract-floor.js');

const server = createServer((req, res) => {
  const started = performance.now();
  const { authorization, 'x-session-token': sessionToken } = req.headers;
  const principal = typeof authorization === 'string' ? principalOf(authorization) : undefined;
  const session = principal === undefined || typeof sessionToken !== 'string' ? undefined : sessionOf(sessionToken, principal.subject);
  if (principal === undefined || session === undefined) {
    res.writeHead(401, { 'content-length': '0' });
    res.end();
    return;
  }
  const requestId = randomUUID();
  const upstream: string[] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (isHopByHop(lower) || NOT_FORWARDED.has(lower) || lower.startsWith('x-auth-') || lower.startsWith('x-forwarded-')) continue;
    upstream.push(raw[i]!, raw[i + 1]!);
  }
  upstream.push('x-auth-subject', principal.subject, 'x-auth-scopes', principal.scopes, 'x-auth-mfa', 'totp', 'x-auth-mfa-time', session.mfaTime);
  upstream.push('x-request-id', requestId, 'x-forwarded-for', req.socket.remoteAddress ?? '', 'x-forwarded-proto', 'http', 'x-forwarded-host', req.headers.host ?? '');
  pool.stream(
    { path: req.url ?? '/', method: req.method as 'GET', headers: upstream, body: requestBody(req) },
    ({ statusCode, headers }) => {
      const out = endToEnd(headers);
      out['x-request-id'] = requestId;
      res.writeHead(statusCode, out);
      return res;
    },
    (error) => {
      const seconds = (performance.now() - started) / 1000;
      let bucket = 0;
      while (bucket < BUCKETS.length && seconds > BUCKETS[bucket]!) bucket++;
      histogram.counts[bucket]!++;
      histogram.sum += seconds;
      histogram.requests++;
      relayFailure(res, error);
    },
  );
});

serve(server, port, pool);
