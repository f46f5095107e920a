import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROBLEMS } from '../../src/errors/problems.js';
import { canonicalizeRequest, REJECT_REASONS, REJECTIONS, type RejectReason, type RequestSource } from '../../src/request/canonical.js';
import { createTrustList } from '../../src/request/trust.js';
import { DETAIL } from './details.js';

/**
 * Checks Node's parser already makes unreachable over a socket (framing.test.ts proves that), kept
 * because the same function also canonicalises requests rebuilt by the forward-auth endpoints, the
 * middleware and `explain`. These call it on a plain object shaped like an IncomingMessage.
 */
function request(overrides: Partial<{ method: string; url: string; httpVersion: string; rawHeaders: string[]; remoteAddress: string | undefined }>): RequestSource {
  return {
    method: overrides.method ?? 'GET',
    url: overrides.url ?? '/',
    httpVersion: overrides.httpVersion ?? '1.1',
    rawHeaders: overrides.rawHeaders ?? ['Host', 'api.example'],
    socket: { remoteAddress: 'remoteAddress' in overrides ? overrides.remoteAddress : '127.0.0.1' },
  };
}

const NOBODY = createTrustList([]);

function reasonOf(source: RequestSource, maxTokenBytes = 1024): RejectReason | 'ok' {
  const result = canonicalizeRequest(source, { trustedProxies: NOBODY, maxTokenBytes });
  return result.ok ? 'ok' : result.reason;
}

test('the rejection table: one frozen result per reason, 431 for oversized credentials, 400 otherwise', () => {
  assert.deepEqual([...REJECT_REASONS].sort(), Object.keys(DETAIL).sort());
  for (const reason of REJECT_REASONS) {
    const rejection = REJECTIONS[reason];
    const code = reason.endsWith('_too_large') ? 'header_too_large' : 'invalid_request';
    assert.deepEqual(rejection, { ok: false, reason, problem: { code, detail: DETAIL[reason] } });
    assert.equal(PROBLEMS[rejection.problem.code].status, code === 'header_too_large' ? 431 : 400);
    assert.ok(Object.isFrozen(rejection) && Object.isFrozen(rejection.problem), reason);
  }
});

test('framing checks behind llhttp', () => {
  const cases: ReadonlyArray<readonly [string, RequestSource, RejectReason]> = [
    ['duplicate Content-Length', request({ rawHeaders: ['Host', 'a', 'Content-Length', '1', 'Content-Length', '1'] }), 'duplicate_content_length'],
    ['Content-Length not digits', request({ rawHeaders: ['Host', 'a', 'Content-Length', '+1'] }), 'invalid_content_length'],
    ['Content-Length empty', request({ rawHeaders: ['Host', 'a', 'Content-Length', ''] }), 'invalid_content_length'],
    ['TE with CL', request({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'chunked', 'Content-Length', '3'] }), 'transfer_encoding_with_content_length'],
    ['TE twice', request({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'chunked', 'transfer-encoding', 'chunked'] }), 'multiple_transfer_encoding'],
    ['TE chunked, gzip', request({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'chunked, gzip'] }), 'transfer_encoding_not_chunked'],
  ];
  for (const [name, source, reason] of cases) assert.equal(reasonOf(source), reason, name);
  assert.equal(reasonOf(request({ rawHeaders: ['Host', 'a', 'Transfer-Encoding', 'chunked'] })), 'ok');
  assert.equal(reasonOf(request({ rawHeaders: ['Host', 'a', 'Content-Length', '0'] })), 'ok');
});

test('request-line checks behind llhttp', () => {
  const cases: ReadonlyArray<readonly [string, RequestSource, RejectReason]> = [
    ['lower-case method', request({ method: 'get' }), 'invalid_method'],
    ['empty method', request({ method: '' }), 'invalid_method'],
    ['method with a space', request({ method: 'GET /' }), 'invalid_method'],
    ['version 1.2', request({ httpVersion: '1.2' }), 'unsupported_http_version'],
    ['relative target', request({ url: 'orders' }), 'invalid_target'],
    ['empty target', request({ url: '' }), 'invalid_target'],
    ['scheme-relative target', request({ url: 'http:/orders' }), 'absolute_form_invalid'],
    ['raw space in the path', request({ url: '/a b' }), 'invalid_character'],
    ['raw tab in the query', request({ url: '/a?b\tc' }), 'invalid_character'],
    ['raw NUL in the path', request({ url: '/a\u0000b' }), 'nul'],
    ['raw NUL in the query', request({ url: '/a?\u0000' }), 'nul'],
    ['raw non-ASCII in the path', request({ url: '/caf\u00e9' }), 'invalid_character'],
    ['raw DEL', request({ url: '/a\u007f' }), 'invalid_character'],
    ['raw char inside an encoded sequence', request({ url: '/%e2x%82%ac' }), 'invalid_utf8'],
    ['unknown peer', request({ remoteAddress: undefined }), 'unknown_peer'],
    ['empty peer', request({ remoteAddress: '' }), 'unknown_peer'],
  ];
  for (const [name, source, reason] of cases) assert.equal(reasonOf(source), reason, name);
});

test('credentials: any character outside printable ASCII, anywhere in the value, is refused', () => {
  const at = (char: string): string[] => [`${char}abc`, `ab${char}c`, `abc${char}`];
  // Every Latin-1 code (what Node's parser gives), a few beyond, and line breaks at the very end.
  const chars = [...Array.from({ length: 0x180 }, (_, code) => String.fromCharCode(code)), '\u2028', '\ud800', '\u{1f600}'];
  for (const char of chars) {
    const printable = /^[ -~]$/.test(char);
    for (const value of at(char)) {
      const expected = printable ? 'ok' : 'invalid_credential_character';
      assert.equal(reasonOf(request({ rawHeaders: ['Host', 'a', 'Authorization', `Bearer ${value}`] })), expected, `Authorization ${JSON.stringify(value)}`);
      assert.equal(reasonOf(request({ rawHeaders: ['Host', 'a', 'X-Session-Token', value] })), expected, `X-Session-Token ${JSON.stringify(value)}`);
    }
  }
  assert.equal(reasonOf(request({ rawHeaders: ['Host', 'a', 'Authorization', 'Bearer abc\n'] })), 'invalid_credential_character');
  assert.equal(reasonOf(request({ rawHeaders: ['Host', 'a', 'X-Session-Token', 'abc\r\n'] })), 'invalid_credential_character');
  assert.equal(reasonOf(request({ rawHeaders: ['Host', 'a', 'Authorization', `Bearer ${'~'.repeat(900)} `] })), 'ok');
});

test('the token limit fails closed when it is not a number', () => {
  const withToken = request({ rawHeaders: ['Host', 'a', 'Authorization', 'Bearer abc'] });
  assert.equal(reasonOf(withToken, Number.NaN), 'authorization_too_large');
  assert.equal(reasonOf(withToken, 3), 'ok');
  assert.equal(reasonOf(withToken, 2), 'authorization_too_large');
});

test('headers of other lengths and names are ignored; the view omits absent credentials', () => {
  const result = canonicalizeRequest(
    request({ rawHeaders: ['Host', 'a', 'X-Auth-Subject', 'spoof', 'Hosts', 'b', 'X-MFA-Tokens', 'c', 'Authorisation', 'd', 'X-Forwarded-For', '1.2.3.4'] }),
    { trustedProxies: NOBODY, maxTokenBytes: 1024 },
  );
  assert.ok(result.ok);
  assert.deepEqual(Object.keys(result.view).sort(), ['clientIp', 'forwardedFor', 'forwardedHost', 'host', 'method', 'path', 'peerTrusted', 'proto', 'requestId', 'search']);
  assert.equal(result.view.clientIp, '127.0.0.1');
});

test('the result of a refusal is the shared frozen object (no allocation per refused request)', () => {
  const first = canonicalizeRequest(request({ url: '/a/../b' }), { trustedProxies: NOBODY, maxTokenBytes: 1024 });
  const second = canonicalizeRequest(request({ url: '/c/%2e%2e/d' }), { trustedProxies: NOBODY, maxTokenBytes: 1024 });
  assert.equal(first, second);
  assert.equal(first, REJECTIONS.dot_segment);
});

test('proto: https on our own TLS socket; a trusted proxy still speaks for the hop before it', () => {
  const protoOf = (source: RequestSource, trustedProxies = NOBODY): string => {
    const result = canonicalizeRequest(source, { trustedProxies, maxTokenBytes: 1024 });
    assert.ok(result.ok);
    return result.view.proto;
  };
  const tls = (rawHeaders: string[]): RequestSource => ({ ...request({ rawHeaders }), socket: { remoteAddress: '127.0.0.1', encrypted: true } });
  assert.equal(protoOf(request({})), 'http');
  assert.equal(protoOf(tls(['Host', 'a'])), 'https');
  // An untrusted client cannot talk its way down (or up).
  assert.equal(protoOf(tls(['Host', 'a', 'X-Forwarded-Proto', 'http'])), 'https');
  assert.equal(protoOf(request({ rawHeaders: ['Host', 'a', 'X-Forwarded-Proto', 'https'] })), 'http');
  // A trusted proxy that terminated plain HTTP from its client, then spoke TLS to us.
  const proxy = createTrustList(['127.0.0.1/32']);
  assert.equal(protoOf(tls(['Host', 'a', 'X-Forwarded-Proto', 'http']), proxy), 'http');
  assert.equal(protoOf(tls(['Host', 'a']), proxy), 'https');
});

test('a given request id stands in for a new UUID, and a trusted peer\'s X-Request-Id still wins over it', () => {
  const idOf = (source: RequestSource, trustedProxies = NOBODY): { requestId: string; clientRequestId: string | undefined } => {
    const result = canonicalizeRequest(source, { trustedProxies, maxTokenBytes: 1024, requestId: 'call-7' });
    assert.ok(result.ok);
    return { requestId: result.view.requestId, clientRequestId: result.view.clientRequestId };
  };
  const proxy = createTrustList(['127.0.0.1/32']);
  assert.deepEqual(idOf(request({})), { requestId: 'call-7', clientRequestId: undefined });
  assert.deepEqual(idOf(request({}), proxy), { requestId: 'call-7', clientRequestId: undefined });
  assert.deepEqual(idOf(request({ rawHeaders: ['Host', 'a', 'X-Request-Id', 'nginx-1'] }), proxy), { requestId: 'nginx-1', clientRequestId: undefined });
  // An untrusted peer's id is kept aside, as without the option; a malformed one is dropped.
  assert.deepEqual(idOf(request({ rawHeaders: ['Host', 'a', 'X-Request-Id', 'nginx-1'] })), { requestId: 'call-7', clientRequestId: 'nginx-1' });
  assert.deepEqual(idOf(request({ rawHeaders: ['Host', 'a', 'X-Request-Id', 'bad id'] }), proxy), { requestId: 'call-7', clientRequestId: undefined });
  const fresh = canonicalizeRequest(request({}), { trustedProxies: NOBODY, maxTokenBytes: 1024 });
  assert.ok(fresh.ok);
  assert.match(fresh.view.requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});
