import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildUpstreamHeaders, clientAnswerHeaders, filterResponseHeaders, headerText } from '../../src/contract/headers.js';
import type { RequestView } from '../../src/request/view.js';

const view: RequestView = {
  method: 'GET',
  path: '/orders/1',
  search: '',
  host: 'api.example.com',
  proto: 'https',
  clientIp: '203.0.113.7',
  forwardedFor: '203.0.113.7',
  forwardedHost: 'api.example.com',
  requestId: 'rid-1',
  peerTrusted: false,
};
const NONE: ReadonlySet<string> = new Set();
const identity = { subject: 'alice', scopes: ['orders:read', 'orders:write'], mfa: 'totp', mfaTime: 1_700_000_000 } as const;

describe('buildUpstreamHeaders', () => {
  test('drops spoofable, hop-by-hop and Connection-named headers in one pass, then appends the gateway headers', () => {
    const raw = [
      'Host', 'api.example.com',
      'User-Agent', 'probe/1',
      'X-Auth-Subject', 'mallory', 'x_auth_subject', 'mallory', 'X.Auth.Subject', 'mallory', 'X-AUTH-MFA', 'none', 'x-auth_scopes', 'admin',
      'X-MFA-Token', '123456', 'x_mfa_token', '123456', 'X-Session-Token', 'sess', 'X.Session.Token', 'sess',
      'X-Forwarded-For', '6.6.6.6', 'x_forwarded_host', 'evil', 'X-Forwarded-Proto', 'http', 'Forwarded', 'for=6.6.6.6',
      'X-Original-URL', '/admin', 'X-Rewrite-URL', '/admin', 'X-Request-Id', 'spoof',
      'Connection', 'keep-alive, X-Custom, Authorization, Host, Content-Length',
      'X-Custom', 'removed by Connection',
      'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Trailer', 'X-Sum', 'Proxy-Authorization', 'Basic eDp5', 'Proxy-Connection', 'keep-alive',
      'Proxy', 'http://evil:3128', 'Upgrade', 'h2c', 'Expect', '100-continue', 'Transfer-Encoding', 'chunked',
      'Authorization', 'Bearer tok', 'Authorization', 'Bearer second',
      'Content-Length', '3', 'Accept', '*/*',
    ];
    const out = buildUpstreamHeaders(raw, { view, identity, forwardAuthorization: true, upstreamHost: '10.0.0.5:9000', untrustedPeerHeaders: NONE });
    assert.deepEqual(out, [
      'User-Agent', 'probe/1',
      'Authorization', 'Bearer tok',
      'Content-Length', '3',
      'Accept', '*/*',
      'x-auth-subject', 'alice',
      'x-auth-scopes', 'orders:read orders:write',
      'x-auth-mfa', 'totp',
      'x-auth-mfa-time', '1700000000',
      'x-request-id', 'rid-1',
      'x-forwarded-for', '203.0.113.7',
      'x-forwarded-proto', 'https',
      'x-forwarded-host', 'api.example.com',
      'host', '10.0.0.5:9000',
    ]);
  });

  test('without identity no X-Auth-* is sent, even when the client sent some; forward_authorization false drops Authorization', () => {
    const raw = ['X-Auth-Subject', 'mallory', 'Connection', 'X-Auth-Subject', 'Authorization', 'Bearer tok', 'Accept', 'a'];
    const out = buildUpstreamHeaders(raw, { view: { ...view, forwardedHost: '' }, forwardAuthorization: false, upstreamHost: 'up', untrustedPeerHeaders: NONE });
    assert.deepEqual(out, ['Accept', 'a', 'x-request-id', 'rid-1', 'x-forwarded-for', '203.0.113.7', 'x-forwarded-proto', 'https', 'host', 'up']);
  });

  test('identity without a second-factor time sends no X-Auth-MFA-Time', () => {
    const out = buildUpstreamHeaders([], { view, identity: { subject: 's', scopes: [], mfa: 'none' }, forwardAuthorization: true, upstreamHost: 'up', untrustedPeerHeaders: NONE });
    assert.deepEqual(out.slice(0, 6), ['x-auth-subject', 's', 'x-auth-scopes', '', 'x-auth-mfa', 'none']);
    assert.equal(out.includes('x-auth-mfa-time'), false);
  });

  test('X-Auth-Scopes follows the list it is given: a frozen list is rendered once, a changeable one every time', () => {
    const scopesOf = (scopes: readonly string[]): string | undefined => {
      const out = buildUpstreamHeaders([], { view, identity: { subject: 's', scopes, mfa: 'none' }, forwardAuthorization: true, upstreamHost: 'up', untrustedPeerHeaders: NONE });
      return out[out.indexOf('x-auth-scopes') + 1];
    };
    const changeable = ['a:read'];
    assert.equal(scopesOf(changeable), 'a:read');
    changeable.push('caf\u00e9', '50%');
    assert.equal(scopesOf(changeable), 'a:read caf%C3%A9 50%25');
    const frozen = Object.freeze(['b:write', 'x y']);
    assert.equal(scopesOf(frozen), 'b:write x y');
    assert.equal(scopesOf(frozen), 'b:write x y');
    assert.equal(scopesOf(Object.freeze([])), '');
  });

  test('a WebSocket tunnel gets our Connection/Upgrade pair, never the client\'s', () => {
    const raw = ['Upgrade', 'websocket', 'Connection', 'Upgrade, X-Auth-Subject', 'Sec-WebSocket-Key', 'k', 'Sec-WebSocket-Version', '13'];
    const out = buildUpstreamHeaders(raw, { view, forwardAuthorization: true, upstreamHost: 'up', websocket: true, untrustedPeerHeaders: NONE });
    assert.deepEqual(out, [
      'Sec-WebSocket-Key', 'k', 'Sec-WebSocket-Version', '13',
      'x-request-id', 'rid-1', 'x-forwarded-for', '203.0.113.7', 'x-forwarded-proto', 'https', 'x-forwarded-host', 'api.example.com',
      'host', 'up', 'connection', 'upgrade', 'upgrade', 'websocket',
    ]);
  });
});

describe('filterResponseHeaders', () => {
  test('removes hop-by-hop and Connection-named headers, keeps every Set-Cookie, sets our request id and extra headers; names in lower case', () => {
    const raw = [
      'Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Internal', 'Keep-Alive', 'timeout=5', 'X-Internal', 'secret',
      'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Transfer-Encoding', 'chunked', 'X-Request-Id', 'upstream-id',
      'X-Session-Token', 'forged', 'Proxy-Authenticate', 'Basic', 'Upgrade', 'h2c', 'Trailer', 'X-Sum',
    ].map((s) => Buffer.from(s, 'latin1'));
    const out = filterResponseHeaders(raw, 'rid-1', { 'x-session-token': 'tok', 'x-session-expires': '1700000000' });
    assert.deepEqual(out, [
      'content-type', 'text/plain', 'set-cookie', 'a=1', 'set-cookie', 'b=2',
      'x-request-id', 'rid-1', 'x-session-token', 'tok', 'x-session-expires', '1700000000',
    ]);
  });

  test('keeps Upgrade/Connection for a 101 answer and bytes outside ASCII as latin1', () => {
    const raw = [Buffer.from('Upgrade'), Buffer.from('websocket'), Buffer.from('Connection'), Buffer.from('Upgrade'), Buffer.from('X-Name'), Buffer.from([0x63, 0xe9])];
    assert.deepEqual(filterResponseHeaders(raw, 'r', undefined, true), ['upgrade', 'websocket', 'connection', 'Upgrade', 'x-name', 'c\u00e9', 'x-request-id', 'r']);
  });

  test("RateLimit fields are lists: the gateway's item goes beside the backend's own policy, not over it", () => {
    const raw = ['RateLimit-Policy', '"backend";q=10;w=1', 'RateLimit', '"backend";r=9;t=1'];
    const extra = clientAnswerHeaders({ rateLimit: { policy: 'orders', quota: 100, windowSeconds: 60, remaining: 99, resetSeconds: 60 } });
    assert.deepEqual(filterResponseHeaders(raw, 'r', extra), [
      'ratelimit-policy', '"backend";q=10;w=1', 'ratelimit', '"backend";r=9;t=1',
      'x-request-id', 'r', 'ratelimit-policy', '"orders";q=100;w=60', 'ratelimit', '"orders";r=99;t=60',
    ]);
  });
});

describe('clientAnswerHeaders', () => {
  test('the session minted on the request and the quota of a limited route; nothing otherwise', () => {
    assert.equal(clientAnswerHeaders({}), undefined);
    assert.deepEqual(clientAnswerHeaders({ session: { token: 'tok', expiresAt: 1_700_000_000 } }), { 'x-session-token': 'tok', 'x-session-expires': '1700000000' });
    assert.deepEqual(clientAnswerHeaders({ session: { token: 'tok', expiresAt: 1 }, rateLimit: { policy: 'p', quota: 5, windowSeconds: 60, remaining: 4, resetSeconds: 59 } }), {
      'x-session-token': 'tok',
      'x-session-expires': '1',
      'ratelimit-policy': '"p";q=5;w=60',
      ratelimit: '"p";r=4;t=59',
    });
  });
});

describe('headerText', () => {
  test('plain ASCII passes unchanged; % and everything outside printable ASCII is percent-encoded as UTF-8', () => {
    assert.equal(headerText('alice@example.com'), 'alice@example.com');
    assert.equal(headerText('John Smith'), 'John Smith');
    assert.equal(headerText('jörg'), 'j%C3%B6rg');
    assert.equal(headerText('50%'), '50%25');
    assert.equal(headerText('山田'), '%E5%B1%B1%E7%94%B0');
    assert.equal(headerText('emoji😀'), 'emoji%F0%9F%98%80');
    for (const value of ['jörg', '50%', '山田', 'emoji😀', 'a b~!']) assert.equal(decodeURIComponent(headerText(value)), value);
  });
});
