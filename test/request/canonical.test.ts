import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RejectReason } from '../../src/request/canonical.js';
import { DETAIL } from './details.js';
import { exchange, startCanonServer, type CanonServer, type RawResponse } from './harness.js';


const TOO_LARGE = new Set<RejectReason>(['authorization_too_large', 'mfa_token_too_large', 'session_token_too_large']);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Asserts a refusal exactly: status, headers, JSON body, and that the server closed the connection. */
function assertRejected(response: RawResponse | undefined, reason: RejectReason, closedByServer: boolean, label: string): void {
  assert.ok(response, `${label}: no response`);
  const status = TOO_LARGE.has(reason) ? 431 : 400;
  const body = JSON.stringify({ ok: false, reason, problem: { code: status === 431 ? 'header_too_large' : 'invalid_request', detail: DETAIL[reason] } });
  assert.equal(response.status, status, `${label}: status`);
  assert.deepEqual(
    response.headers,
    { 'content-type': 'application/json', 'content-length': String(body.length), 'x-peer': '127.0.0.1', connection: 'close' },
    `${label}: headers`,
  );
  assert.equal(response.body, body, `${label}: body`);
  assert.equal(closedByServer, true, `${label}: connection closed`);
}

function viewOf(response: RawResponse | undefined): Record<string, unknown> {
  assert.ok(response);
  assert.equal(response.status, 200, response.body);
  const parsed = JSON.parse(response.body) as { ok: boolean; view: Record<string, unknown> };
  assert.equal(parsed.ok, true);
  return parsed.view;
}

/** The view without its random request id (checked to be a v4 UUID). */
function viewWithoutId(response: RawResponse | undefined): Record<string, unknown> {
  const { requestId, ...rest } = viewOf(response);
  assert.match(String(requestId), UUID);
  return rest;
}

const A = 'a'.repeat(40);

/** [name, exact bytes sent, reason]. Node 20's llhttp hands every one of these to the handler. */
const REJECTED: ReadonlyArray<readonly [string, string, RejectReason]> = [
  // request line
  ['HTTP/0.9 simple request', 'GET /\r\n\r\n', 'unsupported_http_version'],
  ['HTTP/0.9 declared', 'GET / HTTP/0.9\r\n\r\n', 'unsupported_http_version'],
  ['HTTP/2.0 on an HTTP/1 socket', 'GET / HTTP/2.0\r\nHost: api.example\r\n\r\n', 'unsupported_http_version'],
  ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: api.example\r\n\r\n', 'asterisk_form'],
  ['GET *', 'GET * HTTP/1.1\r\nHost: api.example\r\n\r\n', 'asterisk_form'],
  ['CONNECT authority-form', 'CONNECT api.example:443 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'authority_form'],
  ['absolute-form, other host', 'GET http://evil.example/orders HTTP/1.1\r\nHost: api.example\r\n\r\n', 'absolute_form_host_mismatch'],
  ['absolute-form, other port', 'GET http://api.example:8080/orders HTTP/1.1\r\nHost: api.example\r\n\r\n', 'absolute_form_host_mismatch'],
  ['absolute-form, ftp scheme', 'GET ftp://api.example/orders HTTP/1.1\r\nHost: api.example\r\n\r\n', 'absolute_form_invalid'],
  ['absolute-form, userinfo', 'GET http://user@api.example/orders HTTP/1.1\r\nHost: api.example\r\n\r\n', 'absolute_form_invalid'],
  ['absolute-form, bad port', 'GET http://api.example:99999/orders HTTP/1.1\r\nHost: api.example\r\n\r\n', 'absolute_form_invalid'],
  ['absolute-form, no path', 'GET http://api.example HTTP/1.1\r\nHost: api.example\r\n\r\n', 'authority_without_path'],
  ['absolute-form, query right after the authority', 'GET http://api.example?/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'authority_without_path'],
  ['absolute-form, dot segment in path', 'GET http://api.example/a/../admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['X-HTTP-Method-Override', 'GET /orders/1 HTTP/1.1\r\nHost: api.example\r\nX-HTTP-Method-Override: DELETE\r\n\r\n', 'method_override'],
  ['X-HTTP-Method', 'POST /orders/1 HTTP/1.1\r\nHost: api.example\r\nx-http-method: DELETE\r\nContent-Length: 0\r\n\r\n', 'method_override'],
  ['X-Method-Override', 'GET /orders/1 HTTP/1.1\r\nHost: api.example\r\nX-Method-Override: PUT\r\n\r\n', 'method_override'],
  // dot segments in every encoding
  ['raw ..', 'GET /orders/../admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['raw .', 'GET /orders/./admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['trailing ..', 'GET /orders/.. HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['trailing .', 'GET /orders/. HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['%2e%2e', 'GET /orders/%2e%2e/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['%2E%2E', 'GET /orders/%2E%2E/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['.%2e', 'GET /orders/.%2e/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['%2e.', 'GET /orders/%2e./admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['%2e', 'GET /orders/%2e/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'dot_segment'],
  ['overlong %c0%ae%c0%ae', 'GET /orders/%c0%ae%c0%ae/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  ['overlong %e0%80%ae', 'GET /orders/%e0%80%ae/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  ['overlong slash %c0%af', 'GET /orders%c0%afadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  // separators
  ['%2f', 'GET /orders%2fadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'encoded_slash'],
  ['%2F', 'GET /orders%2Fadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'encoded_slash'],
  ['%5c', 'GET /orders%5cadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'encoded_backslash'],
  ['%5C', 'GET /orders%5Cadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'encoded_backslash'],
  ['raw backslash', 'GET /orders\\admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'backslash'],
  ['leading //', 'GET //orders HTTP/1.1\r\nHost: api.example\r\n\r\n', 'empty_segment'],
  ['inner //', 'GET /orders//admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'empty_segment'],
  ['; path parameter', 'GET /orders;jsessionid=1/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'path_parameter'],
  ['; at segment end', 'GET /orders/..;/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'path_parameter'],
  ['%3b', 'GET /orders%3badmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'path_parameter'],
  ['%3B', 'GET /orders%3Badmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'path_parameter'],
  // bytes
  ['%00', 'GET /orders%00.json HTTP/1.1\r\nHost: api.example\r\n\r\n', 'nul'],
  ['%0d%0a', 'GET /orders%0d%0aX-Injected:%201 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'encoded_control_character'],
  ['%7f', 'GET /orders%7f HTTP/1.1\r\nHost: api.example\r\n\r\n', 'encoded_control_character'],
  ['% then non-hex', 'GET /orders%zz HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_percent_encoding'],
  ['% at the end', 'GET /orders% HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_percent_encoding'],
  ['% with one digit', 'GET /orders%2 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_percent_encoding'],
  ['IIS %u002e', 'GET /orders/%u002e%u002e/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_percent_encoding'],
  ['lone latin-1 %e9', 'GET /caf%e9 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  ['truncated %e2%82', 'GET /price%e2%82 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  ['surrogate %ed%a0%80', 'GET /x%ed%a0%80 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  ['above U+10FFFF %f4%90%80%80', 'GET /x%f4%90%80%80 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  ['5-byte form %f8%88%80%80%80', 'GET /x%f8%88%80%80%80 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  ['stray continuation %80', 'GET /x%80 HTTP/1.1\r\nHost: api.example\r\n\r\n', 'invalid_utf8'],
  // a second decoding by the backend would make a separator or a dot segment
  ['%252e%252e', 'GET /orders/%252e%252e/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'double_encoding'],
  ['%252E', 'GET /orders/%252E/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'double_encoding'],
  ['%252f', 'GET /orders%252fadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'double_encoding'],
  ['%255c', 'GET /orders%255cadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'double_encoding'],
  ['%25 then escaped 2 and e', 'GET /orders/%25%32%65%25%32%65/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'double_encoding'],
  // non-ASCII characters whose NFKC form is a dot or a separator
  ['fullwidth full stop %EF%BC%8E', 'GET /orders/%EF%BC%8E%EF%BC%8E/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'lookalike_character'],
  ['fullwidth solidus %EF%BC%8F', 'GET /orders%EF%BC%8Fadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'lookalike_character'],
  ['fullwidth reverse solidus %EF%BC%BC', 'GET /orders%ef%bc%bcadmin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'lookalike_character'],
  ['one dot leader %E2%80%A4', 'GET /orders/%E2%80%A4/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'lookalike_character'],
  ['two dot leader %E2%80%A5', 'GET /orders/%E2%80%A5/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'lookalike_character'],
  ['small full stop %EF%B9%92', 'GET /orders/%EF%B9%92/admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'lookalike_character'],
  ['# in the path', 'GET /orders#admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'fragment'],
  ['# in the query', 'GET /orders?a=1#admin HTTP/1.1\r\nHost: api.example\r\n\r\n', 'fragment'],
  // Host
  ['duplicate Host', 'GET / HTTP/1.1\r\nHost: api.example\r\nHost: evil.example\r\n\r\n', 'duplicate_host'],
  ['duplicate Host, other case', 'GET / HTTP/1.1\r\nHost: api.example\r\nhost: api.example\r\n\r\n', 'duplicate_host'],
  ['Host with userinfo', 'GET / HTTP/1.1\r\nHost: user@api.example\r\n\r\n', 'invalid_host'],
  ['Host with a space', 'GET / HTTP/1.1\r\nHost: api example\r\n\r\n', 'invalid_host'],
  ['empty Host', 'GET / HTTP/1.1\r\nHost:\r\n\r\n', 'invalid_host'],
  ['Host with empty label', 'GET / HTTP/1.1\r\nHost: api..example\r\n\r\n', 'invalid_host'],
  ['Host percent-encoded', 'GET / HTTP/1.1\r\nHost: api%2eexample\r\n\r\n', 'invalid_host'],
  ['Host with zero-padded port', 'GET / HTTP/1.1\r\nHost: api.example:080\r\n\r\n', 'invalid_host'],
  ['Host with port 0', 'GET / HTTP/1.1\r\nHost: api.example:0\r\n\r\n', 'invalid_host'],
  ['Host with empty port', 'GET / HTTP/1.1\r\nHost: api.example:\r\n\r\n', 'invalid_host'],
  ['Host with two ports', 'GET / HTTP/1.1\r\nHost: api.example:80:81\r\n\r\n', 'invalid_host'],
  ['Host IPv6 unclosed', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n', 'invalid_host'],
  ['Host with latin-1 byte', 'GET / HTTP/1.1\r\nHost: caf\xe9.example\r\n\r\n', 'invalid_host'],
  // credentials
  ['duplicate Authorization', `GET / HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer ${A}\r\nAuthorization: Bearer ${A}\r\n\r\n`, 'duplicate_authorization'],
  ['duplicate Authorization, other case', `GET / HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer ${A}\r\nAUTHORIZATION: Bearer x\r\n\r\n`, 'duplicate_authorization'],
  ['duplicate X-MFA-Token', 'GET / HTTP/1.1\r\nHost: api.example\r\nX-MFA-Token: 123456\r\nx-mfa-token: 654321\r\n\r\n', 'duplicate_mfa_token'],
  ['duplicate X-Session-Token', 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Session-Token: s1\r\nX-Session-Token: s2\r\n\r\n', 'duplicate_session_token'],
  ['empty Authorization', 'GET / HTTP/1.1\r\nHost: api.example\r\nAuthorization:\r\n\r\n', 'empty_authorization'],
  ['blank Authorization', 'GET / HTTP/1.1\r\nHost: api.example\r\nAuthorization:    \r\n\r\n', 'empty_authorization'],
  ['empty X-Session-Token', 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Session-Token: \r\n\r\n', 'empty_session_token'],
  ['X_MFA_Token spelling', 'GET / HTTP/1.1\r\nHost: api.example\r\nX_MFA_Token: 123456\r\n\r\n', 'credential_header_spelling'],
  ['x.session.token spelling', 'GET / HTTP/1.1\r\nHost: api.example\r\nx.session.token: s1\r\n\r\n', 'credential_header_spelling'],
  ['Authorization over the limit', `GET / HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer ${'a'.repeat(1025)}\r\n\r\n`, 'authorization_too_large'],
  ['X-MFA-Token over 64 bytes', `GET / HTTP/1.1\r\nHost: api.example\r\nX-MFA-Token: ${'1'.repeat(65)}\r\n\r\n`, 'mfa_token_too_large'],
  ['X-Session-Token over 256 bytes', `GET / HTTP/1.1\r\nHost: api.example\r\nX-Session-Token: ${'s'.repeat(257)}\r\n\r\n`, 'session_token_too_large'],
  // framing Node lets through
  ['TE gzip, chunked', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 'transfer_encoding_not_chunked'],
  ['TE identity, chunked', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n', 'transfer_encoding_not_chunked'],
  ['TE Chunked (case)', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n', 'transfer_encoding_not_chunked'],
  ['TE ,chunked', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: ,chunked\r\n\r\n0\r\n\r\n', 'transfer_encoding_not_chunked'],
  ['TE empty', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding:\r\n\r\n', 'transfer_encoding_not_chunked'],
  // llhttp emits these requests and only fails once it reads the body.
  ['TE gzip alone', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: gzip\r\n\r\n', 'transfer_encoding_not_chunked'],
  ['TE xchunked', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: xchunked\r\n\r\n', 'transfer_encoding_not_chunked'],
  ['TE gzip + TE chunked lines', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'multiple_transfer_encoding'],
  ['TE empty + TE chunked lines', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding:\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'multiple_transfer_encoding'],
  ['TE on HTTP/1.0', 'POST / HTTP/1.0\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 'transfer_encoding_http10'],
];

describe('canonical view over a real socket', () => {
  let server: CanonServer;
  before(async () => {
    server = await startCanonServer({ maxTokenBytes: 1024 });
  });
  after(() => server.close());

  test('every ambiguous form is refused with its stable reason and the connection is closed', async () => {
    for (const [name, bytes, reason] of REJECTED) {
      const result = await exchange(server.port, bytes, { expectClose: true });
      assertRejected(result.responses[0], reason, result.closedByServer, name);
      assert.equal(result.responses.length, 1, `${name}: one answer`);
    }
  });

  test('a refusal never echoes the offending bytes', async () => {
    const secret = `Bearer SECRET${'x'.repeat(1100)}`;
    const result = await exchange(server.port, `GET / HTTP/1.1\r\nHost: api.example\r\nAuthorization: ${secret}\r\n\r\n`, { expectClose: true });
    assertRejected(result.responses[0], 'authorization_too_large', result.closedByServer, 'oversized');
    assert.ok(!result.raw.includes('SECRET'));
    const mfa = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: api.example\r\nX-MFA-Token: 123456\r\nX-MFA-Token: 987654\r\n\r\n', { expectClose: true });
    assert.ok(!mfa.raw.includes('123456') && !mfa.raw.includes('987654'));
    const path = await exchange(server.port, 'GET /secret-path/%2e%2e/x HTTP/1.1\r\nHost: api.example\r\n\r\n', { expectClose: true });
    assert.ok(!path.raw.includes('secret-path'));
  });

  test('limits are inclusive: a token of exactly maxTokenBytes, 64-byte X-MFA-Token and 256-byte X-Session-Token pass', async () => {
    const token = 'a'.repeat(1024);
    const mfa = '1'.repeat(64);
    const session = 's'.repeat(256);
    const result = await exchange(
      server.port,
      `GET / HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer ${token}\r\nX-MFA-Token: ${mfa}\r\nX-Session-Token: ${session}\r\n\r\n`,
    );
    const view = viewWithoutId(result.responses[0]);
    assert.equal(view.authorization, `Bearer ${token}`);
    assert.equal(view.mfaToken, mfa);
    assert.equal(view.sessionToken, session);
  });

  test('an empty or non-ASCII X-MFA-Token passes through: the MFA stage answers it like a wrong code', async () => {
    for (const [bytes, expected] of [
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-MFA-Token:\r\n\r\n', ''],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-MFA-Token: 12345\xe9\r\n\r\n', Buffer.from('12345\xe9', 'utf8').toString('latin1')],
    ] as const) {
      const result = await exchange(server.port, bytes);
      assert.equal(viewWithoutId(result.responses[0]).mfaToken, expected);
    }
  });

  test('a typical request gives the exact view', async () => {
    const result = await exchange(
      server.port,
      'POST /orders/42/items?expand=all&x=%20 HTTP/1.1\r\nHost: API.Example.:443\r\nAuthorization: Bearer abc.def.ghi\r\nX-MFA-Token: 123456\r\nX-Session-Token: sess-1\r\nContent-Length: 2\r\nX-Request-Id: req-1.2:3_4\r\n\r\n{}',
    );
    const response = result.responses[0];
    assert.ok(response);
    assert.equal(response.status, 200);
    assert.deepEqual(response.headers, { 'content-type': 'application/json', 'content-length': String(response.body.length), 'x-peer': '127.0.0.1', connection: 'keep-alive', 'keep-alive': 'timeout=65' });
    // The peer is not a trusted proxy: its X-Request-Id is kept aside, never used as the gateway's.
    assert.deepEqual(viewWithoutId(response), {
      method: 'POST',
      path: '/orders/42/items',
      search: '?expand=all&x=%20',
      host: 'api.example',
      proto: 'http',
      clientIp: '127.0.0.1',
      forwardedFor: '127.0.0.1',
      forwardedHost: 'API.Example.:443',
      clientRequestId: 'req-1.2:3_4',
      peerTrusted: false,
      authorization: 'Bearer abc.def.ghi',
      mfaToken: '123456',
      sessionToken: 'sess-1',
    });
  });

  test('the path has one form (RFC 3986 §6.2.2): unreserved escapes decoded, other escapes upper-case; the query is kept as sent', async () => {
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      ['/a%20b/%7Euser', '/a%20b/~user', ''],
      ['/a%20b/%7euser', '/a%20b/~user', ''],
      ['/api/%61dmin/x', '/api/admin/x', ''],
      ['/api/%41%44%4D%49%4E/%2D%5F%2E%7E%30%39', '/api/ADMIN/-_.~09', ''],
      ['/caf%c3%a9/%E2%82%AC?q=%e9', '/caf%C3%A9/%E2%82%AC', '?q=%e9'],
      ['/emoji/%f0%9f%98%80', '/emoji/%F0%9F%98%80', ''],
      ['/a/.../b/.x/..y', '/a/.../b/.x/..y', ''],
      ['/a%2e%2e%2ex', '/a...x', ''],
      ['/100%25/%3f%23', '/100%25/%3F%23', ''],
      ['/100%2541', '/100%2541', ''],
      ['/trailing/', '/trailing/', ''],
      ['/bare-question?', '/bare-question', '?'],
      ['/q?a=../b&c=%2f;d\\e', '/q', '?a=../b&c=%2f;d\\e'],
      ['/', '/', ''],
    ];
    for (const [target, path, search] of cases) {
      const result = await exchange(server.port, `GET ${target} HTTP/1.1\r\nHost: api.example\r\n\r\n`);
      const view = viewWithoutId(result.responses[0]);
      assert.equal(view.path, path, target);
      assert.equal(view.search, search, target);
    }
  });

  test('absolute-form naming the same host uses its path; Host is normalised', async () => {
    const cases: ReadonlyArray<readonly [string, string, string, string, string]> = [
      // [target, Host, expected host, path, search]
      ['http://api.example/orders?x=1', 'api.example', 'api.example', '/orders', '?x=1'],
      ['HTTP://API.EXAMPLE:80/orders', 'api.example', 'api.example', '/orders', ''],
      ['https://api.example:443/o', 'Api.Example.', 'api.example', '/o', ''],
      ['http://[::1]:8080/v6', '[::1]:8080', '[::1]:8080', '/v6', ''],
    ];
    for (const [target, hostHeader, host, path, search] of cases) {
      const result = await exchange(server.port, `GET ${target} HTTP/1.1\r\nHost: ${hostHeader}\r\n\r\n`);
      const view = viewWithoutId(result.responses[0]);
      assert.deepEqual([view.host, view.path, view.search, view.forwardedHost], [host, path, search, hostHeader], target);
    }
  });

  test('HTTP/1.0 without Host: empty host, or the absolute-form authority', async () => {
    const plain = await exchange(server.port, 'GET /status HTTP/1.0\r\n\r\n', { expectClose: true });
    assert.deepEqual(viewWithoutId(plain.responses[0]), {
      method: 'GET',
      path: '/status',
      search: '',
      host: '',
      proto: 'http',
      clientIp: '127.0.0.1',
      forwardedFor: '127.0.0.1',
      forwardedHost: '',
      peerTrusted: false,
    });
    const absolute = await exchange(server.port, 'GET http://API.example:443/status HTTP/1.0\r\n\r\n', { expectClose: true });
    const view = viewWithoutId(absolute.responses[0]);
    assert.deepEqual([view.host, view.forwardedHost, view.path], ['api.example', 'API.example:443', '/status']);
  });

  test('pipelined requests on one socket are each canonicalised on their own', async () => {
    const bytes =
      'GET /first HTTP/1.1\r\nHost: api.example\r\nAuthorization: Bearer one\r\nX-Request-Id: first\r\n\r\n' +
      'POST /second?x=1 HTTP/1.1\r\nHost: other.example\r\nX-MFA-Token: 123456\r\nTransfer-Encoding: chunked\r\nX-Request-Id: second\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
      'GET /third HTTP/1.1\r\nHost: api.example\r\nX-Session-Token: s3\r\n\r\n';
    const result = await exchange(server.port, bytes, { responses: 3 });
    assert.equal(result.responses.length, 3);
    assert.deepEqual(viewWithoutId(result.responses[0]), {
      method: 'GET', path: '/first', search: '', host: 'api.example', proto: 'http', clientIp: '127.0.0.1', forwardedFor: '127.0.0.1', forwardedHost: 'api.example', clientRequestId: 'first', peerTrusted: false, authorization: 'Bearer one',
    });
    assert.deepEqual(viewWithoutId(result.responses[1]), {
      method: 'POST', path: '/second', search: '?x=1', host: 'other.example', proto: 'http', clientIp: '127.0.0.1', forwardedFor: '127.0.0.1', forwardedHost: 'other.example', clientRequestId: 'second', peerTrusted: false, mfaToken: '123456',
    });
    // Nothing leaks from the earlier requests: no Authorization, no X-MFA-Token, no client id, a fresh id.
    assert.deepEqual(viewWithoutId(result.responses[2]), {
      method: 'GET', path: '/third', search: '', host: 'api.example', proto: 'http', clientIp: '127.0.0.1', forwardedFor: '127.0.0.1', forwardedHost: 'api.example', peerTrusted: false, sessionToken: 's3',
    });
  });

  test('an ambiguous request in a pipeline is refused and nothing after it is read', async () => {
    const bytes =
      'GET /ok HTTP/1.1\r\nHost: api.example\r\n\r\n' +
      'GET /a/%2e%2e/admin HTTP/1.1\r\nHost: api.example\r\n\r\n' +
      'GET /never HTTP/1.1\r\nHost: api.example\r\n\r\n';
    const result = await exchange(server.port, bytes, { expectClose: true });
    assert.equal(result.responses.length, 2);
    assert.equal(viewWithoutId(result.responses[0]).path, '/ok');
    assertRejected(result.responses[1], 'dot_segment', result.closedByServer, 'second');
  });

  test('X-Request-Id from a trusted proxy: a well-formed id is kept, anything else replaced by a UUID', async () => {
    const trusted = await startCanonServer({ trusted: ['127.0.0.0/8'] });
    try {
      const id = async (lines: string): Promise<string> => {
        const result = await exchange(trusted.port, `GET / HTTP/1.1\r\nHost: api.example\r\n${lines}\r\n`);
        return String(viewOf(result.responses[0]).requestId);
      };
      assert.equal(await id('X-Request-Id: abc-DEF_123.4:5\r\n'), 'abc-DEF_123.4:5');
      assert.equal(await id(`x-request-id: ${'r'.repeat(128)}\r\n`), 'r'.repeat(128));
      for (const bad of [`X-Request-Id: ${'r'.repeat(129)}\r\n`, 'X-Request-Id: a/b\r\n', 'X-Request-Id: a b\r\n', 'X-Request-Id: "quoted"\r\n', 'X-Request-Id:\r\n', 'X-Request-Id: one\r\nX-Request-Id: two\r\n', '']) {
        assert.match(await id(bad), UUID, bad);
      }
    } finally {
      await trusted.close();
    }
  });

  test('X-Request-Id from any other peer never becomes the request id: a well-formed one is kept aside as clientRequestId', async () => {
    const view = async (lines: string): Promise<Record<string, unknown>> => viewOf((await exchange(server.port, `GET / HTTP/1.1\r\nHost: api.example\r\n${lines}\r\n`)).responses[0]);
    const kept = await view('X-Request-Id: abc-DEF_123.4:5\r\n');
    assert.match(String(kept.requestId), UUID);
    assert.equal(kept.clientRequestId, 'abc-DEF_123.4:5');
    const oversized = await view(`X-Request-Id: ${'r'.repeat(129)}\r\n`);
    assert.match(String(oversized.requestId), UUID);
    assert.equal(oversized.clientRequestId, undefined, 'a malformed client id is not kept at all');
  });
});

describe('X-Forwarded-* and the client address', () => {
  let untrusted: CanonServer;
  let trusted: CanonServer;
  before(async () => {
    untrusted = await startCanonServer();
    trusted = await startCanonServer({ trusted: ['127.0.0.0/8', '10.0.0.0/8'] });
  });
  after(async () => {
    await untrusted.close();
    await trusted.close();
  });

  const spoofed = 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 203.0.113.7, 10.0.0.2\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\n\r\n';

  test('from an untrusted peer they are ignored, even when malformed', async () => {
    const result = await exchange(untrusted.port, spoofed);
    assert.deepEqual(viewWithoutId(result.responses[0]), {
      method: 'GET', path: '/', search: '', host: 'api.example', proto: 'http', clientIp: '127.0.0.1', forwardedFor: '127.0.0.1', forwardedHost: 'api.example', peerTrusted: false,
    });
    const garbage = await exchange(untrusted.port, 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: not-an-ip\r\nX-Forwarded-Proto: gopher\r\nX-Forwarded-Host: a b\r\n\r\n');
    assert.equal(viewOf(garbage.responses[0]).clientIp, '127.0.0.1');
  });

  test('from a trusted peer: right-most untrusted hop, chain + peer, proto and host believed', async () => {
    const result = await exchange(trusted.port, spoofed);
    assert.deepEqual(viewWithoutId(result.responses[0]), {
      method: 'GET',
      path: '/',
      search: '',
      host: 'api.example',
      proto: 'https',
      clientIp: '203.0.113.7',
      forwardedFor: '203.0.113.7, 10.0.0.2, 127.0.0.1',
      forwardedHost: 'public.example',
      peerTrusted: true,
    });
  });

  test('a client-forged left part of the chain does not become the client address', async () => {
    // The client sent "X-Forwarded-For: 1.1.1.1"; its proxy appended the address it saw.
    const result = await exchange(trusted.port, 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 1.1.1.1,198.51.100.9\r\nX-Forwarded-For: 10.0.0.3\r\n\r\n');
    const view = viewOf(result.responses[0]);
    assert.equal(view.clientIp, '198.51.100.9');
    assert.equal(view.forwardedFor, '1.1.1.1, 198.51.100.9, 10.0.0.3, 127.0.0.1');
    assert.equal(view.proto, 'http');
    assert.equal(view.forwardedHost, 'api.example');
  });

  test('when every hop is trusted the left-most is the client; IPv4-mapped hops are unmapped', async () => {
    const all = await exchange(trusted.port, 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 10.0.0.9, 10.0.0.8\r\n\r\n');
    assert.equal(viewOf(all.responses[0]).clientIp, '10.0.0.9');
    const mapped = await exchange(trusted.port, 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: ::ffff:203.0.113.5, ::ffff:10.0.0.1\r\n\r\n');
    assert.equal(viewOf(mapped.responses[0]).clientIp, '203.0.113.5');
    const v6 = await exchange(trusted.port, 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 2001:db8::1\r\nX-Forwarded-Proto: HTTPS\r\n\r\n');
    assert.deepEqual([viewOf(v6.responses[0]).clientIp, viewOf(v6.responses[0]).proto], ['2001:db8::1', 'https']);
  });

  test('malformed forwarding headers from a trusted peer are refused', async () => {
    const cases: ReadonlyArray<readonly [string, RejectReason]> = [
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: not-an-ip\r\n\r\n', 'invalid_forwarded_for'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 1.2.3.4:5678\r\n\r\n', 'invalid_forwarded_for'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 1.2.3.4,,5.6.7.8\r\n\r\n', 'invalid_forwarded_for'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For:\r\n\r\n', 'invalid_forwarded_for'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Proto: ftp\r\n\r\n', 'invalid_forwarded_proto'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Proto: http\r\n\r\n', 'invalid_forwarded_proto'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Proto: https, http\r\n\r\n', 'invalid_forwarded_proto'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Host: user@evil.example\r\n\r\n', 'invalid_forwarded_host'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Host: a.example, b.example\r\n\r\n', 'invalid_forwarded_host'],
      ['GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-Host: a.example\r\nX-Forwarded-Host: b.example\r\n\r\n', 'invalid_forwarded_host'],
    ];
    for (const [bytes, reason] of cases) {
      const result = await exchange(trusted.port, bytes, { expectClose: true });
      assertRejected(result.responses[0], reason, result.closedByServer, bytes);
    }
  });
});
