import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { describe, test } from 'node:test';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { createForwarder, type Forwarder } from '../../src/forward/forwarder.js';
import { closeServer, freePort } from '../support/http.js';
import { eventually } from '../support/wait.js';
import { headEnd, openSocket, readUntil, startFront, upstreamConfig, type Front } from './helpers.js';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptFor = (key: string): string => createHash('sha1').update(key + GUID).digest('base64');

/** One small text frame (< 126 bytes), masked as a client must send it. */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/** Reads one small frame: [opcode, payload]. Unmasks when masked. */
function readFrame(data: Buffer): { opcode: number; payload: Buffer } | undefined {
  if (data.length < 2) return undefined;
  const masked = (data[1]! & 0x80) !== 0;
  const length = data[1]! & 0x7f;
  const start = masked ? 6 : 2;
  if (data.length < start + length) return undefined;
  const payload = Buffer.from(data.subarray(start, start + length));
  if (masked) for (let i = 0; i < payload.length; i++) payload[i]! ^= data[2 + (i % 4)]!;
  return { opcode: data[0]! & 0x0f, payload };
}

type UpgradeBehaviour = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

interface WsUpstream {
  readonly server: Server;
  readonly url: string;
  readonly received: IncomingMessage[];
  connections(): Promise<number>;
  close(): Promise<void>;
}

/** A real WebSocket echo backend (hand-written handshake and frames); `behaviour` overrides the answer. */
async function startWsUpstream(behaviour?: UpgradeBehaviour): Promise<WsUpstream> {
  const received: IncomingMessage[] = [];
  const server = createServer((_req, res) => res.end('not a websocket'));
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    received.push(req);
    socket.on('error', () => socket.destroy());
    // Like any WebSocket server: the peer's FIN ends the connection.
    socket.on('end', () => socket.end());
    if (behaviour !== undefined) {
      behaviour(req, socket, head);
      return;
    }
    socket.write(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        `Sec-WebSocket-Accept: ${acceptFor(String(req.headers['sec-websocket-key']))}\r\nX-Upstream: yes\r\n\r\n`,
    );
    let buffered = head;
    const echo = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const frame = readFrame(buffered);
      if (frame === undefined) return;
      buffered = Buffer.alloc(0);
      socket.write(Buffer.concat([Buffer.from([0x80 | frame.opcode, frame.payload.length]), frame.payload]));
    };
    socket.on('data', echo);
    if (head.length > 0) echo(Buffer.alloc(0));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return {
    server,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    connections: () => new Promise((resolve, reject) => server.getConnections((error, count) => (error ? reject(error) : resolve(count)))),
    close: () => {
      // Upgraded sockets are outside the http server's bookkeeping: destroy them by hand.
      for (const socket of sockets) socket.destroy();
      return closeServer(server);
    },
  };
}

interface Rig {
  readonly forwarder: Forwarder;
  readonly front: Front;
  readonly metrics: Metrics;
  close(): Promise<void>;
}

async function rig(url: string, timeoutMs = 2_000): Promise<Rig> {
  const metrics = createMetrics();
  const forwarder = createForwarder({ upstreams: new Map([['app', upstreamConfig(url, { timeoutMs })]]), maxQueued: 10, metrics });
  const front = await startFront(forwarder, { identity: { subject: 'alice', scopes: ['chat'], mfa: 'totp', mfaTime: 1_700_000_000 } });
  return {
    forwarder,
    front,
    metrics,
    async close() {
      await forwarder.close();
      await front.close();
    },
  };
}

async function outcomes(metrics: Metrics): Promise<Record<string, number>> {
  const result: Record<string, number> = {};
  for (const v of (await metrics.upstreamRequests.get()).values) if (v.value > 0) result[String(v.labels.outcome)] = v.value;
  return result;
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
function upgradeRequest(path = '/chat?room=1'): string {
  return (
    `GET ${path} HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Auth-Subject\r\n` +
    `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\nX-Auth-Subject: mallory\r\nx_auth_subject: mallory\r\nX-MFA-Token: 123456\r\n\r\n`
  );
}

async function openTunnel(port: number): Promise<{ socket: Socket; head: string }> {
  const socket = await openSocket(port);
  socket.write(upgradeRequest());
  const head = (await readUntil(socket, headEnd)).toString('latin1');
  return { socket, head };
}

describe('websocket tunnel', () => {
  test('echo through the tunnel; the upstream gets our identity and Upgrade headers, never the spoofed ones', async () => {
    const upstream = await startWsUpstream();
    const r = await rig(upstream.url);
    try {
      const { socket, head } = await openTunnel(r.front.port);
      assert.equal(
        head,
        'HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n' +
          `sec-websocket-accept: ${acceptFor(KEY)}\r\nx-upstream: yes\r\nx-request-id: req-1\r\n\r\n`,
      );
      socket.write(clientFrame('hello through the gateway'));
      const echoed = readFrame(await readUntil(socket, (data) => readFrame(data) !== undefined));
      assert.deepEqual(echoed, { opcode: 1, payload: Buffer.from('hello through the gateway') });

      const got = upstream.received[0]!;
      assert.equal(got.url, '/chat?room=1');
      assert.deepEqual(got.rawHeaders, [
        'Sec-WebSocket-Key', KEY,
        'Sec-WebSocket-Version', '13',
        'x-auth-subject', 'alice',
        'x-auth-scopes', 'chat',
        'x-auth-mfa', 'totp',
        'x-auth-mfa-time', '1700000000',
        'x-request-id', 'req-1',
        'x-forwarded-for', '127.0.0.1',
        'x-forwarded-proto', 'http',
        'x-forwarded-host', 'chat.example',
        'host', new URL(upstream.url).host,
        'connection', 'upgrade',
        'upgrade', 'websocket',
      ]);
      socket.end();
      await eventually(async () => (await upstream.connections()) === 0);
      await eventually(async () => (await outcomes(r.metrics)).ok === 1);
    } finally {
      await r.close();
      await upstream.close();
    }
  });

  test('an upstream refusing the upgrade: its answer is relayed and closed, no crash, the next tunnel works', async () => {
    let refuse = true;
    const upstream = await startWsUpstream((req, socket) => {
      if (!refuse) {
        socket.end(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(String(req.headers['sec-websocket-key']))}\r\n\r\n`);
        return;
      }
      socket.end('HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nKeep-Alive: timeout=5\r\n\r\nnope!\n');
    });
    const r = await rig(upstream.url);
    try {
      const socket = await openSocket(r.front.port);
      socket.write(upgradeRequest());
      const answer = (await readUntil(socket, () => false).catch((error: Error) => error.message)).toString();
      assert.equal(
        answer,
        `socket ended; got ${JSON.stringify('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 6\r\nx-request-id: req-1\r\nconnection: close\r\n\r\nnope!\n')}`,
      );
      socket.destroy();
      refuse = false;
      const next = await openTunnel(r.front.port);
      assert.match(next.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      next.socket.destroy();
      await eventually(async () => (await upstream.connections()) === 0);
    } finally {
      await r.close();
      await upstream.close();
    }
  });

  test('upstream errors before answering (reset, refused) → a 502 problem on the raw socket; silent → 504 at the timeout', async () => {
    const resetting = await startWsUpstream((_req, socket) => socket.destroy());
    const refusedPort = await freePort();
    const silent = await startWsUpstream(() => undefined);
    const rigs = [await rig(resetting.url), await rig(`http://127.0.0.1:${refusedPort}`), await rig(silent.url, 300)];
    try {
      for (const [i, r] of rigs.entries()) {
        const started = Date.now();
        const socket = await openSocket(r.front.port);
        socket.write(upgradeRequest());
        const raw = (await readUntil(socket, () => false).catch((error: Error) => error.message)).toString();
        const timedOut = i === 2;
        const body = timedOut
          ? '{"type":"https://mfa-gateway.dev/problems/upstream_timeout","title":"Upstream timeout","status":504,"detail":"the upstream did not answer in time","code":"upstream_timeout","request_id":"req-1"}'
          : '{"type":"https://mfa-gateway.dev/problems/upstream_unavailable","title":"Upstream unavailable","status":502,"detail":"the upstream could not be reached","code":"upstream_unavailable","request_id":"req-1"}';
        const expected =
          `HTTP/1.1 ${timedOut ? '504 Gateway Timeout' : '502 Bad Gateway'}\r\ncontent-type: application/problem+json\r\ncache-control: no-store\r\n` +
          `x-request-id: req-1\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`;
        assert.equal(raw, `socket ended; got ${JSON.stringify(expected)}`);
        if (timedOut) assert.ok(Date.now() - started >= 290, 'waited for the timeout');
        socket.destroy();
        await eventually(async () => (await outcomes(r.metrics))[timedOut ? 'timeout' : 'unavailable'] === 1);
      }
      await eventually(async () => (await silent.connections()) === 0);
    } finally {
      for (const r of rigs) await r.close();
      await resetting.close();
      await silent.close();
    }
  });

  test('client aborted after the upgrade → the upstream socket is closed, none leaked', async () => {
    const upstream = await startWsUpstream();
    const r = await rig(upstream.url);
    try {
      const tunnels = await Promise.all([openTunnel(r.front.port), openTunnel(r.front.port), openTunnel(r.front.port)]);
      assert.equal(await upstream.connections(), 3);
      for (const { socket } of tunnels) socket.destroy();
      await eventually(async () => (await upstream.connections()) === 0);
      await eventually(async () => (await outcomes(r.metrics)).ok === 3);
    } finally {
      await r.close();
      await upstream.close();
    }
  });

  test('client aborted before the upstream answered → the upstream socket is closed too', async () => {
    let upstreamClosed: () => void = () => undefined;
    const closed = new Promise<void>((resolve) => (upstreamClosed = resolve));
    const upstream = await startWsUpstream((_req, socket) => socket.once('close', () => upstreamClosed()));
    const r = await rig(upstream.url);
    try {
      const socket = await openSocket(r.front.port);
      socket.write(upgradeRequest());
      await eventually(() => upstream.received.length === 1);
      socket.destroy();
      await closed;
      assert.equal(await upstream.connections(), 0);
      await eventually(async () => (await outcomes(r.metrics)).client_abort === 1);
    } finally {
      await r.close();
      await upstream.close();
    }
  });

  test('close() tears down open tunnels', async () => {
    const upstream = await startWsUpstream();
    const r = await rig(upstream.url);
    try {
      const { socket } = await openTunnel(r.front.port);
      const clientClosed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await r.forwarder.close();
      await clientClosed;
      await eventually(async () => (await upstream.connections()) === 0);
    } finally {
      await r.front.close();
      await upstream.close();
    }
  });
});
