import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request, type IncomingMessage, type ServerResponse } from 'node:http';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { UpstreamConfig } from '../../src/config/types.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { createForwarder, type Forwarder } from '../../src/forward/forwarder.js';
import { call, freePort } from '../support/http.js';
import { captureLog, secretsIn } from '../support/log.js';
import { counterValue } from '../support/metrics.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { eventually } from '../support/wait.js';
import { sha256, startFront, upstreamConfig, type Front, type FrontOptions } from './helpers.js';

const alice = { subject: 'alice', scopes: ['orders:read', 'orders:write'], mfa: 'totp', mfaTime: 1_700_000_000 } as const;

interface Rig {
  readonly upstream: Upstream;
  readonly forwarder: Forwarder;
  readonly front: Front;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

async function rig(upstream: Upstream, config: Partial<Omit<UpstreamConfig, 'url'>> = {}, front: FrontOptions = {}, maxQueued = 100, url = upstream.url): Promise<Rig> {
  const metrics = createMetrics();
  const forwarder = createForwarder({ upstreams: new Map([['app', upstreamConfig(url, config)]]), maxQueued, metrics, random: () => 0.5 });
  const started = await startFront(forwarder, front);
  return {
    upstream,
    forwarder,
    front: started,
    metrics,
    async close() {
      await started.close();
      await forwarder.close();
      await upstream.close();
    },
  };
}

function problemBody(code: string, title: string, status: number, detail: string, requestId: string): string {
  return JSON.stringify({ type: `https://mfa-gateway.dev/problems/${code}`, title, status, detail, code, request_id: requestId });
}

describe('forwarder: headers to and from a real upstream', () => {
  // A fresh upstream, forwarder and front for each test: request ids, connections and counters start at zero.
  let r: Rig;
  beforeEach(async () => {
    const upstream = await startUpstream({
      handler: (_req, res) => {
        res.writeHead(200, [
          'Connection', 'keep-alive, X-Internal', 'Keep-Alive', 'timeout=5', 'X-Internal', 'secret', 'Proxy-Authenticate', 'Basic',
          'Set-Cookie', 'a=1; HttpOnly', 'Set-Cookie', 'b=2', 'X-Request-Id', 'upstream-made', 'Content-Type', 'text/plain',
          'Date', 'Sat, 01 Jan 2000 00:00:00 GMT', 'Content-Length', '2',
        ]);
        res.end('ok');
      },
    });
    r = await rig(upstream, {}, { identity: alice, responseHeaders: { 'x-session-token': 'sess-new', 'x-session-expires': '1700043200' } });
  });
  afterEach(() => r.close());

  test('spoofed identity headers in every spelling, MFA/session tokens and forwarding headers never reach the upstream; ours do', async () => {
    const reply = await call(r.front.port, 'GET', '/orders/1', [
        'Host', 'api.example.com',
        'X-Auth-Subject', 'mallory', 'x_auth_subject', 'mallory', 'X.Auth.Subject', 'mallory', 'X-Auth-Scopes', 'admin', 'x-auth-mfa-time', '9999999999',
        'X-MFA-Token', '123456', 'X-Session-Token', 'stolen', 'x_session_token', 'stolen',
        'X-Forwarded-For', '6.6.6.6', 'X_Forwarded_Host', 'evil.example', 'X-Forwarded-Proto', 'https', 'Forwarded', 'for=6.6.6.6',
        'X-Original-URL', '/admin', 'X-Rewrite-URL', '/admin', 'X-Request-Id', 'spoofed',
        'Authorization', 'Bearer the-token', 'Accept', 'application/json',
    ]);
    assert.equal(reply.status, 200);
    const got = r.upstream.received.at(-1)!;
    assert.equal(got.method, 'GET');
    assert.equal(got.url, '/orders/1');
    assert.deepEqual(got.rawHeaders, [
      'host', `127.0.0.1:${r.upstream.port}`,
      'connection', 'keep-alive',
      'Authorization', 'Bearer the-token',
      'Accept', 'application/json',
      'x-auth-subject', 'alice',
      'x-auth-scopes', 'orders:read orders:write',
      'x-auth-mfa', 'totp',
      'x-auth-mfa-time', '1700000000',
      'x-request-id', 'req-1',
      'x-forwarded-for', '127.0.0.1',
      'x-forwarded-proto', 'http',
      'x-forwarded-host', 'api.example.com',
    ]);
  });

  test('Connection: X-Auth-Subject / Authorization / Host cannot strip what the gateway decides; other named headers go', async () => {
    await call(r.front.port, 'GET', '/c', ['Connection', 'X-Auth-Subject, Authorization, Host, X-Custom', 'X-Custom', 'v', 'X-Auth-Subject', 'mallory', 'Authorization', 'Bearer t2']);
    const got = r.upstream.received.at(-1)!;
    assert.equal(got.headers['x-auth-subject'], 'alice');
    assert.equal(got.headers.authorization, 'Bearer t2');
    assert.equal(got.headers.host, `127.0.0.1:${r.upstream.port}`);
    assert.equal(got.headers['x-custom'], undefined);
    assert.equal(got.headers.connection, 'keep-alive');
  });

  test('hop-by-hop headers removed both ways; every Set-Cookie kept; our request id and session headers on the response; names in lower case', async () => {
    const reply = await call(r.front.port, 'GET', '/hop', [
      'Keep-Alive', 'timeout=99', 'TE', 'trailers', 'Proxy-Authorization', 'Basic eDp5', 'Proxy-Connection', 'keep-alive',
      'Proxy', 'http://evil:3128', 'Upgrade', 'h2c', 'Connection', 'close, X-Hop', 'X-Hop', 'gone', 'X-Kept', 'yes',
    ]);
    const got = r.upstream.received.at(-1)!;
    for (const name of ['keep-alive', 'te', 'trailer', 'proxy-authorization', 'proxy-connection', 'proxy', 'upgrade', 'x-hop', 'x-session-token']) {
      assert.equal(r.upstream.headerNames(got).includes(name), false, name);
    }
    assert.equal(got.headers['x-kept'], 'yes');
    assert.equal(reply.status, 200);
    assert.deepEqual(reply.rawHeaders, [
      'set-cookie', 'a=1; HttpOnly',
      'set-cookie', 'b=2',
      'content-type', 'text/plain',
      'date', 'Sat, 01 Jan 2000 00:00:00 GMT',
      'content-length', '2',
      'x-request-id', 'req-1',
      'x-session-token', 'sess-new',
      'x-session-expires', '1700043200',
      'Connection', 'close',
    ]);
    assert.equal(reply.body.toString(), 'ok');
  });

  test('keep-alive: N sequential requests from new client connections reuse one upstream connection', async () => {
    // The first request opens the pooled upstream connection; the next ones must reuse it.
    await call(r.front.port, 'GET', '/ka/first');
    const before = r.upstream.connections.length;
    for (let i = 0; i < 5; i++) assert.equal((await call(r.front.port, 'GET', `/ka/${i}`)).status, 200);
    assert.equal(r.upstream.connections.length, before);
    assert.equal(r.upstream.connections.length, 1);
    const [stat] = r.forwarder.poolStats();
    assert.deepEqual(stat, { upstream: 'app', connected: 1, free: 1, pending: 0, running: 0 });
    assert.equal((await r.metrics.upstreamConnected.get()).values[0]?.value, 1);
    assert.equal(await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'ok' }), 6);
  });
});

describe('forwarder: paths and bodies', () => {
  let r: Rig;
  before(async () => {
    const upstream = await startUpstream({
      handler: (req, res, received) => {
        if (received.url.endsWith('/big')) {
          streamBig(req, res);
          return;
        }
        const body = JSON.stringify({ bytes: received.body.length, sha256: sha256(received.body) });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
        res.end(body);
      },
    });
    r = await rig(upstream, {}, { forwardAuthorization: false }, 100, `${upstream.url}/base`);
  });
  after(() => r.close());

  // 8 MiB in 64 KiB chunks; the second chunk waits until the client saw the first (proves no buffering).
  const bigChunks = Array.from({ length: 128 }, () => randomBytes(64 * 1024));
  let clientSawFirstChunk: () => void = () => undefined;
  const firstChunkSeen = new Promise<void>((resolve) => (clientSawFirstChunk = resolve));
  function streamBig(_req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.write(bigChunks[0]);
    void firstChunkSeen.then(() => {
      let i = 1;
      const pump = (): void => {
        while (i < bigChunks.length) if (!res.write(bigChunks[i++])) return void res.once('drain', pump);
        res.end();
      };
      pump();
    });
  }

  test('path and query reach the upstream byte for byte, under the upstream base path', async () => {
    const target = '/a%20b/c%2Bd/%E2%82%AC/x.y?q=a+b&r=%2F&s=%zz&&t=&u=%3B#'.slice(0, -1);
    assert.equal((await call(r.front.port, 'GET', target)).status, 200);
    assert.equal(r.upstream.received.at(-1)!.url, `/base${target}`);
  });

  test('forward_authorization false: the bearer token never reaches the upstream, whatever Connection says', async () => {
    await call(r.front.port, 'GET', '/p', ['Authorization', 'Bearer secret', 'Connection', 'Authorization']);
    const got = r.upstream.received.at(-1)!;
    assert.equal(r.upstream.headerNames(got).includes('authorization'), false);
  });

  test('a chunked POST of 4 MiB arrives intact and still chunked', async () => {
    const data = randomBytes(4 * 1024 * 1024);
    const reply = await call(r.front.port, 'POST', '/upload', {}, undefined, { chunked: { data, chunkSize: 61_111 } });
    assert.equal(reply.status, 200);
    assert.deepEqual(JSON.parse(reply.body.toString()), { bytes: data.length, sha256: sha256(data) });
    const got = r.upstream.received.at(-1)!;
    assert.equal(got.headers['transfer-encoding'], 'chunked');
    assert.equal(got.headers['content-length'], undefined);
  });

  test('a POST with Content-Length keeps it and arrives intact', async () => {
    const data = randomBytes(1024 * 1024 + 3);
    const reply = await call(r.front.port, 'POST', '/upload', { 'content-type': 'application/octet-stream' }, data);
    assert.deepEqual(JSON.parse(reply.body.toString()), { bytes: data.length, sha256: sha256(data) });
    const got = r.upstream.received.at(-1)!;
    assert.equal(got.headers['content-length'], String(data.length));
    assert.equal(got.headers['content-type'], 'application/octet-stream');
  });

  test('Expect: 100-continue is answered by the gateway and not sent on; the body still arrives', async () => {
    const reply = await call(r.front.port, 'PUT', '/upload', { expect: '100-continue' }, 'abc');
    assert.deepEqual(JSON.parse(reply.body.toString()), { bytes: 3, sha256: sha256(Buffer.from('abc')) });
    const got = r.upstream.received.at(-1)!;
    assert.equal(got.method, 'PUT');
    assert.equal(r.upstream.headerNames(got).includes('expect'), false);
  });

  test('HEAD keeps the upstream Content-Length without a body, and the upstream connection stays usable', async () => {
    const head = await call(r.front.port, 'HEAD', '/head');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    const expected = JSON.stringify({ bytes: 0, sha256: sha256(Buffer.alloc(0)) });
    assert.equal(head.headers['content-length'], String(expected.length));
    const after = await call(r.front.port, 'GET', '/after-head');
    assert.equal(after.body.toString(), expected);
  });

  test('a large response is streamed: the client gets bytes before the upstream finished, and all of them', async () => {
    const body = await new Promise<Buffer>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: r.front.port, path: '/big', agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => {
          if (chunks.length === 0) clientSawFirstChunk();
          chunks.push(chunk);
        });
        res.on('end', () => resolve(Buffer.concat(chunks)));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(body.length, 8 * 1024 * 1024);
    assert.equal(sha256(body), sha256(Buffer.concat(bigChunks)));
  });
});

describe('forwarder: upstream failures become answers', () => {
  test('refused → 502 upstream_unavailable problem at once (POST, and GET with retries off)', async () => {
    const port = await freePort();
    const r = await rig(await startUpstream(), { retries: { max: 0, initialMs: 10, multiplier: 2, jitterMs: 0 } }, {}, 100, `http://127.0.0.1:${port}`);
    try {
      for (const [i, method] of ['POST', 'GET'].entries()) {
        const started = Date.now();
        const reply = await call(r.front.port, method, '/x', {}, method === 'POST' ? 'payload' : undefined);
        assert.ok(Date.now() - started < 1_000, 'answered quickly');
        assert.equal(reply.status, 502);
        const body = problemBody('upstream_unavailable', 'Upstream unavailable', 502, 'the upstream could not be reached', `req-${i + 1}`);
        assert.equal(reply.body.toString(), body);
        assert.equal(reply.headers['content-type'], 'application/problem+json');
        assert.equal(reply.headers['cache-control'], 'no-store');
        assert.equal(reply.headers['x-request-id'], `req-${i + 1}`);
        assert.equal(reply.headers['content-length'], String(body.length));
        assert.equal(reply.headers.connection, 'close');
      }
      assert.equal(await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'unavailable' }), 2);
    } finally {
      await r.close();
    }
  });

  test('silent upstream → 504 upstream_timeout at the configured timeout', async () => {
    const r = await rig(await startUpstream({ onHead: () => true }), { timeoutMs: 300 });
    try {
      const started = Date.now();
      const reply = await call(r.front.port, 'GET', '/slow');
      const elapsed = Date.now() - started;
      // undici's headers timer ticks about every 0.5 s: the answer comes at the timeout, at most a tick later.
      assert.ok(elapsed >= 290 && elapsed < 1_800, `answered after ${elapsed} ms`);
      assert.equal(reply.status, 504);
      assert.equal(reply.body.toString(), problemBody('upstream_timeout', 'Upstream timeout', 504, 'the upstream did not answer in time', 'req-1'));
      assert.equal(reply.headers['content-type'], 'application/problem+json');
      assert.equal(await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'timeout' }), 1);
    } finally {
      await r.close();
    }
  });

  test('upstream reset after the headers → the client connection is cut, never a problem appended; the process lives on', async () => {
    const r = await rig(
      await startUpstream({
        handler: (_req, res) => {
          res.writeHead(200, { 'content-length': '100000' });
          res.write(Buffer.alloc(1000, 1));
          setTimeout(() => res.socket?.destroy(), 20);
        },
      }),
    );
    try {
      const outcome = await new Promise<{ status: number; bytes: number; error: string }>((resolve) => {
        const req = request({ host: '127.0.0.1', port: r.front.port, path: '/reset', agent: false }, (res) => {
          let bytes = 0;
          res.on('data', (chunk: Buffer) => (bytes += chunk.length));
          res.on('error', (error: NodeJS.ErrnoException) => resolve({ status: res.statusCode ?? 0, bytes, error: error.code ?? error.message }));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, error: 'none' }));
        });
        req.on('error', (error: NodeJS.ErrnoException) => resolve({ status: 0, bytes: 0, error: error.code ?? error.message }));
        req.end();
      });
      assert.deepEqual(outcome, { status: 200, bytes: 1000, error: 'ECONNRESET' });
      await eventually(async () => (await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'reset' })) === 1);
    } finally {
      await r.close();
    }
  });

  test('client aborts mid-response → the upstream request is aborted (its socket closes), recorded as client_abort, no 502', async () => {
    let upstreamSocketClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => (upstreamSocketClosed = resolve));
    const r = await rig(
      await startUpstream({
        handler: (req, res) => {
          req.socket.once('close', () => upstreamSocketClosed());
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.write(Buffer.alloc(1000, 2));
        },
      }),
    );
    try {
      await new Promise<void>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port: r.front.port, path: '/stream', agent: false }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.on('error', () => undefined);
        req.once('error', reject);
        req.end();
      });
      await closed;
      await eventually(async () => (await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'client_abort' })) === 1);
      assert.equal(await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'unavailable' }), 0);
      assert.equal(await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'reset' }), 0);
      await eventually(() => r.forwarder.poolStats()[0]!.running === 0);
    } finally {
      await r.close();
    }
  });

  test('client aborts while the upstream has not answered → the upstream sees the close', async () => {
    let upstreamSocketClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => (upstreamSocketClosed = resolve));
    const r = await rig(
      await startUpstream({
        onHead: (req) => {
          req.socket.once('close', () => upstreamSocketClosed());
          return true;
        },
      }),
    );
    try {
      const req = request({ host: '127.0.0.1', port: r.front.port, path: '/wait', agent: false });
      req.on('error', () => undefined);
      req.end();
      await eventually(() => r.upstream.connections.length === 1);
      req.destroy();
      await closed;
      await eventually(async () => (await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'client_abort' })) === 1);
    } finally {
      await r.close();
    }
  });
});

describe('forwarder: retries and the bounded queue', () => {
  const retries = { max: 3, initialMs: 300, multiplier: 2, jitterMs: 0 };

  test('a GET refused at first is retried after the backoff and succeeds once the upstream is up', async () => {
    const port = await freePort();
    const metrics = createMetrics();
    const forwarder = createForwarder({ upstreams: new Map([['app', upstreamConfig(`http://127.0.0.1:${port}`, { retries, timeoutMs: 3_000 })]]), maxQueued: 10, metrics, random: () => 0.5 });
    const front = await startFront(forwarder);
    let upstream: Upstream | undefined;
    try {
      const pending = call(front.port, 'GET', '/retry');
      // The first attempt is refused at once; the upstream appears before the first retry (300 ms).
      await eventually(async () => (await counterValue(metrics.upstreamRetries, { upstream: 'app' })) === 1);
      upstream = await startUpstream({ port });
      const reply = await pending;
      assert.equal(reply.status, 200);
      assert.equal(upstream.received.length, 1);
      assert.equal(await counterValue(metrics.upstreamRetries, { upstream: 'app' }), 1);
      assert.equal(await counterValue(metrics.upstreamRequests, { upstream: 'app', outcome: 'ok' }), 1);
    } finally {
      await front.close();
      await forwarder.close();
      await upstream?.close();
    }
  });

  test('a POST is never retried, even when the failure happened before any byte was sent', async () => {
    const port = await freePort();
    const metrics = createMetrics();
    const forwarder = createForwarder({ upstreams: new Map([['app', upstreamConfig(`http://127.0.0.1:${port}`, { retries, timeoutMs: 3_000 })]]), maxQueued: 10, metrics });
    const front = await startFront(forwarder);
    try {
      const started = Date.now();
      const reply = await call(front.port, 'POST', '/create', {}, '{}');
      assert.equal(reply.status, 502);
      assert.ok(Date.now() - started < retries.initialMs, 'no backoff waited');
      assert.equal(await counterValue(metrics.upstreamRetries, { upstream: 'app' }), 0);
    } finally {
      await front.close();
      await forwarder.close();
    }
  });

  test('past connections + maxQueued waiting requests, the next gets 503 overloaded with Retry-After: 1 at once', async () => {
    const held: ServerResponse[] = [];
    let release = false;
    const r = await rig(
      await startUpstream({
        onHead: (_req, res) => {
          if (release) return false;
          held.push(res);
          return true;
        },
      }),
      { pool: { connections: 1, keepAliveMs: 60_000, keepAliveMaxMs: 300_000 } },
      {},
      1,
    );
    try {
      const first = call(r.front.port, 'GET', '/q/1');
      await eventually(() => held.length === 1);
      const second = call(r.front.port, 'GET', '/q/2');
      await eventually(() => r.front.forwarded() === 2);
      const started = Date.now();
      const third = await call(r.front.port, 'GET', '/q/3');
      assert.ok(Date.now() - started < 500);
      assert.equal(third.status, 503);
      assert.equal(third.headers['retry-after'], '1');
      assert.equal(third.headers['content-type'], 'application/problem+json');
      assert.equal(third.headers['x-request-id'], 'req-3');
      assert.equal(third.body.toString(), problemBody('overloaded', 'Overloaded', 503, 'the upstream is at capacity; retry shortly', 'req-3'));
      assert.equal(r.forwarder.poolStats()[0]!.pending, 1);
      release = true;
      for (const res of held) res.end('late');
      assert.equal((await first).status, 200);
      assert.equal((await second).status, 200);
      assert.equal(r.upstream.received.length, 1, 'the held request was never recorded; the queued one was');
      assert.equal(await counterValue(r.metrics.upstreamRequests, { upstream: 'app', outcome: 'overloaded' }), 1);
    } finally {
      await r.close();
    }
  });
});

describe('forwarder: options and logs', () => {
  test('an unknown upstream name is a 502, and failure logs carry no token, code or session', async () => {
    const { logger, lines } = captureLog();
    const port = await freePort();
    const forwarder = createForwarder({ upstreams: new Map([['app', upstreamConfig(`http://127.0.0.1:${port}`)]]), maxQueued: 1, logger });
    const front = await startFront(forwarder);
    const nowhere = await startFront(forwarder, { upstream: 'nope' });
    try {
      const secrets = ['Authorization', 'Bearer tok-SECRET-1', 'X-MFA-Token', '654321', 'X-Session-Token', 'sess-SECRET-2'];
      assert.equal((await call(front.port, 'GET', '/x?code=1', secrets)).status, 502);
      const unknown = await call(nowhere.port, 'GET', '/y', secrets);
      assert.equal(unknown.status, 502);
      assert.equal(unknown.headers['content-type'], 'application/problem+json');
      assert.equal(lines.length, 2);
      const text = lines.join('\n');
      assert.deepEqual(secretsIn(text, ['tok-SECRET-1', '654321', 'sess-SECRET-2']), []);
      assert.match(lines[0]!, /"event":"upstream_failed".*"error":"ECONNREFUSED"/);
      assert.match(lines[1]!, /"event":"upstream_unknown"/);
    } finally {
      await front.close();
      await nowhere.close();
      await forwarder.close();
    }
  });
});
