import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { publicServerOptions } from '../../src/request/server-options.js';
import { closeServer } from '../support/http.js';
import { exchange, startCanonServer, type CanonServer } from './harness.js';

const NODE_400 = 'HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n';

/**
 * What Node 20's llhttp refuses by itself with our server options, before any handler runs (probed
 * on raw sockets). canonicalizeRequest covers the forms llhttp lets through (see canonical.test.ts);
 * these tests pin the rest, so that an upgrade of Node that loosens the parser fails here.
 * [name, exact bytes sent].
 */
const NODE_REFUSES: ReadonlyArray<readonly [string, string]> = [
  ['Content-Length + Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: api.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['Transfer-Encoding + Content-Length', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n'],
  ['TE + CL on HTTP/1.0', 'POST / HTTP/1.0\r\nHost: api.example\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n'],
  ['duplicate Content-Length, same value', 'POST / HTTP/1.1\r\nHost: api.example\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx'],
  ['duplicate Content-Length, other value', 'POST / HTTP/1.1\r\nHost: api.example\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx'],
  ['Content-Length list', 'POST / HTTP/1.1\r\nHost: api.example\r\nContent-Length: 1, 1\r\n\r\nx'],
  ['Content-Length +1', 'POST / HTTP/1.1\r\nHost: api.example\r\nContent-Length: +1\r\n\r\nx'],
  ['Content-Length empty', 'POST / HTTP/1.1\r\nHost: api.example\r\nContent-Length:\r\n\r\n'],
  ['TE chunked twice (two lines)', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['TE chunked, chunked', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n'],
  ['TE chunked, gzip', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n'],
  ['TE chunked,', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n'],
  ['space before colon', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n'],
  ['obs-fold', 'GET / HTTP/1.1\r\nHost: api.example\r\nX-A: b\r\n c\r\n\r\n'],
  ['obs-fold of Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n'],
  ['bare LF line ends', 'GET / HTTP/1.1\nHost: api.example\n\n'],
  ['bare CR in the header block', 'GET / HTTP/1.1\r\nHost: api.example\rX: y\r\n\r\n'],
  ['leading whitespace before a header', 'GET / HTTP/1.1\r\n Host: api.example\r\n\r\n'],
  ['NUL in a header value', 'GET / HTTP/1.1\r\nHost: api.example\r\nX: a\x00b\r\n\r\n'],
  ['control character in a header value', 'GET / HTTP/1.1\r\nHost: api.example\r\nX: a\x01b\r\n\r\n'],
  ['invalid header name', 'GET / HTTP/1.1\r\nHost: api.example\r\nX(a): b\r\n\r\n'],
  ['raw NUL in the target', 'GET /a\x00b HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['raw control character in the target', 'GET /a\x01b HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['raw tab in the target', 'GET /a\tb HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['raw DEL in the target', 'GET /a\x7fb HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['raw non-ASCII byte in the target', 'GET /caf\xe9 HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['raw space in the target', 'GET /a b HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['relative target', 'GET orders HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['authority-form without CONNECT', 'GET api.example:443 HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['HTTP/1.2', 'GET / HTTP/1.2\r\nHost: api.example\r\n\r\n'],
  ['HTTP/3.0', 'GET / HTTP/3.0\r\nHost: api.example\r\n\r\n'],
  ['lower-case version', 'GET / http/1.1\r\nHost: api.example\r\n\r\n'],
  ['text after the version', 'GET / HTTP/1.1 x\r\nHost: api.example\r\n\r\n'],
  ['lower-case method', 'get / HTTP/1.1\r\nHost: api.example\r\n\r\n'],
  ['unknown method', 'FOO / HTTP/1.1\r\nHost: api.example\r\n\r\n'],
];

/**
 * Broken chunked framing: llhttp emits the request (its headers are fine) and fails on the body,
 * so the handler must not trust a body it has not read to the end. [name, exact bytes sent].
 */
const BODY_REFUSES: ReadonlyArray<readonly [string, string]> = [
  ['chunk size with 0x', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\n\r\n0x1\r\nx\r\n0\r\n\r\n'],
  ['chunk size with trailing space', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\n\r\n1 \r\nx\r\n0\r\n\r\n'],
  ['chunk with bare LF', 'POST / HTTP/1.1\r\nHost: api.example\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\n0\n\n'],
];

describe("Node's own refusals with the public listener options", () => {
  let server: CanonServer;
  before(async () => {
    server = await startCanonServer({ limits: { maxHeaderBytes: 2048 } });
  });
  after(() => server.close());

  test('malformed framing gets a bare 400 and the socket is closed', async () => {
    for (const [name, bytes] of NODE_REFUSES) {
      const result = await exchange(server.port, bytes, { expectClose: true });
      assert.equal(result.raw, NODE_400, name);
      assert.equal(result.closedByServer, true, `${name}: closed`);
    }
  });

  test('broken chunked bodies: Node answers a bare 400, closes, and the body never ends', async () => {
    let ended = 0;
    let failed = 0;
    const bodyServer = createServer(publicServerOptions({ maxHeaderBytes: 2048 }), (req, res) => {
      req.on('error', () => failed++);
      req.on('end', () => {
        ended++;
        res.end('body complete');
      });
      req.resume();
    });
    await new Promise<void>((resolve) => bodyServer.listen(0, '127.0.0.1', resolve));
    try {
      for (const [name, bytes] of BODY_REFUSES) {
        const result = await exchange((bodyServer.address() as AddressInfo).port, bytes, { expectClose: true });
        assert.equal(result.raw, NODE_400, name);
        assert.equal(result.closedByServer, true, `${name}: closed`);
      }
      assert.equal(ended, 0);
      assert.equal(failed, BODY_REFUSES.length);
    } finally {
      await closeServer(bodyServer);
    }
  });

  test('HTTP/1.1 without Host is refused by Node (requireHostHeader)', async () => {
    const result = await exchange(server.port, 'GET / HTTP/1.1\r\n\r\n', { expectClose: true });
    assert.equal(result.responses.length, 1);
    const response = result.responses[0]!;
    assert.equal(response.statusLine, 'HTTP/1.1 400 Bad Request');
    assert.deepEqual(response.headers, { connection: 'close', 'transfer-encoding': 'chunked' });
    assert.equal(response.body, '');
    assert.equal(result.closedByServer, true);
  });

  test('a header block over maxHeaderBytes gets 431 and the socket is closed', async () => {
    const result = await exchange(server.port, `GET / HTTP/1.1\r\nHost: api.example\r\nX-Big: ${'a'.repeat(3000)}\r\n\r\n`, { expectClose: true });
    assert.equal(result.raw, 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n');
    assert.equal(result.closedByServer, true);
  });

  test('after a valid request, garbage on the same socket closes it without a second answer', async () => {
    const result = await exchange(server.port, 'GET /ok HTTP/1.1\r\nHost: api.example\r\n\r\nGET /a b c\r\n\r\n', { expectClose: true });
    assert.equal(result.responses.length, 1);
    assert.equal(result.responses[0]!.status, 200);
    assert.equal(result.closedByServer, true);
  });
});

describe('listener deadlines', () => {
  test('headers that trickle in past headersTimeout get 408 and a close', async () => {
    const server = await startCanonServer({ limits: { maxHeaderBytes: 2048, headersTimeoutMs: 150, requestTimeoutMs: 5000 } });
    try {
      const started = Date.now();
      const result = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Slow: ', { expectClose: true, timeoutMs: 3000 });
      assert.equal(result.raw, 'HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
      assert.equal(result.closedByServer, true);
      assert.ok(Date.now() - started < 2000);
    } finally {
      await server.close();
    }
  });

  test('a body that trickles in past requestTimeout gets 408 and a close', async () => {
    const server = await startCanonServer({ limits: { maxHeaderBytes: 2048, headersTimeoutMs: 100, requestTimeoutMs: 250 } });
    try {
      const result = await exchange(server.port, 'POST /upload HTTP/1.1\r\nHost: api.example\r\nContent-Length: 10\r\n\r\nab', { expectClose: true, timeoutMs: 3000 });
      // The handler answers as soon as the headers are in; the deadline then cuts the unfinished body.
      assert.equal(result.responses[0]?.status, 200);
      assert.equal(result.closedByServer, true);
    } finally {
      await server.close();
    }
  });

  test('without a connect listener, CONNECT is dropped by Node before any handler', async () => {
    const server = createServer(publicServerOptions({ maxHeaderBytes: 2048 }), (_req, res) => res.end('handler reached'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const result = await exchange((server.address() as AddressInfo).port, 'CONNECT api.example:443 HTTP/1.1\r\nHost: api.example\r\n\r\n', { expectClose: true });
      assert.equal(result.raw, '');
      assert.equal(result.closedByServer, true);
    } finally {
      await closeServer(server);
    }
  });
});
