import { createHash } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { UpstreamConfig } from '../../src/config/types.js';
import type { Identity } from '../../src/decision/types.js';
import type { Forwarder, ForwardTarget } from '../../src/forward/forwarder.js';
import type { RequestView } from '../../src/request/view.js';

export interface Received {
  readonly method: string;
  /** The request target exactly as the upstream's parser saw it. */
  readonly url: string;
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly socket: Socket;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, received: Received) => void;

export interface Upstream {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  readonly received: Received[];
  /** Every TCP connection the upstream accepted, in order. */
  readonly connections: Socket[];
  /** Lower-cased header names of a received request. */
  names(r: Received): string[];
  /** Resolves when `count` requests have fully arrived. */
  waitFor(count: number): Promise<void>;
  close(): Promise<void>;
}

const defaultHandler: UpstreamHandler = (_req, res, received) => {
  const body = JSON.stringify({ ok: true, url: received.url, bytes: received.body.length, sha256: createHash('sha256').update(received.body).digest('hex') });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
};

/**
 * A real node:http backend on loopback that records exactly what reached it (method, raw target,
 * raw headers, body bytes); `handler` decides the answer (default: 200 JSON with the body hash).
 * `onHead` runs as soon as the head arrives, before the body (for tests that must not wait for it).
 */
export async function startUpstream(handler: UpstreamHandler = defaultHandler, port = 0, onHead?: (req: IncomingMessage, res: ServerResponse) => boolean): Promise<Upstream> {
  const received: Received[] = [];
  const connections: Socket[] = [];
  const waiters: { count: number; resolve: () => void }[] = [];
  const server = createServer((req, res) => {
    if (onHead?.(req, res) === true) return;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const record: Received = { method: req.method ?? '', url: req.url ?? '', rawHeaders: [...req.rawHeaders], headers: req.headers, body: Buffer.concat(chunks), socket: req.socket };
      received.push(record);
      for (const w of waiters.filter((w) => received.length >= w.count)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
      handler(req, res, record);
    });
  });
  server.on('connection', (socket: Socket) => connections.push(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const actual = (server.address() as AddressInfo).port;
  return {
    server,
    port: actual,
    url: `http://127.0.0.1:${actual}`,
    received,
    connections,
    names: (r) => r.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()),
    waitFor: (count) =>
      received.length >= count ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ count, resolve })),
    close: () => closeServer(server),
  };
}

export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** A port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export function upstreamConfig(url: string, overrides: Partial<Omit<UpstreamConfig, 'url'>> = {}): UpstreamConfig {
  return {
    name: overrides.name ?? 'app',
    url: new URL(url),
    pool: overrides.pool ?? { connections: 10, keepAliveMs: 60_000, keepAliveMaxMs: 300_000 },
    timeoutMs: overrides.timeoutMs ?? 5_000,
    connectTimeoutMs: overrides.connectTimeoutMs ?? 1_000,
    retries: overrides.retries ?? { max: 0, initialMs: 50, multiplier: 2, jitterMs: 0 },
  };
}

/** The canonical view a front door would build for a plain loopback request (no trusted proxies). */
export function viewOf(req: IncomingMessage, requestId: string): RequestView {
  const target = req.url ?? '/';
  const q = target.indexOf('?');
  const peer = req.socket.remoteAddress ?? '';
  return {
    method: req.method ?? 'GET',
    path: q === -1 ? target : target.slice(0, q),
    search: q === -1 ? '' : target.slice(q),
    host: (req.headers.host ?? '').toLowerCase(),
    proto: 'http',
    clientIp: peer,
    forwardedFor: peer,
    forwardedHost: req.headers.host ?? '',
    requestId,
    peerTrusted: false,
  };
}

export interface FrontOptions {
  upstream?: string;
  identity?: Identity;
  forwardAuthorization?: boolean;
  responseHeaders?: Record<string, string>;
}

export interface Front {
  readonly server: Server;
  readonly port: number;
  /** How many requests were handed to the forwarder so far. */
  forwarded(): number;
  close(): Promise<void>;
}

/** A minimal front door: builds the view and hands every request (and upgrade) to the forwarder. */
export async function startFront(forwarder: Forwarder, options: FrontOptions = {}): Promise<Front> {
  let count = 0;
  const target = (req: IncomingMessage): ForwardTarget => ({
    upstream: options.upstream ?? 'app',
    view: viewOf(req, `req-${++count}`),
    untrustedPeerHeaders: new Set<string>(),
    ...(options.identity !== undefined ? { identity: options.identity } : {}),
    forwardAuthorization: options.forwardAuthorization ?? true,
    routeName: 'test',
    ...(options.responseHeaders !== undefined ? { responseHeaders: options.responseHeaders } : {}),
  });
  const server = createServer((req, res) => forwarder.forward(req, res, target(req)));
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => forwarder.upgrade(req, socket, head, target(req)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  return { server, port: (server.address() as AddressInfo).port, forwarded: () => count, close: () => closeServer(server) };
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
}

export interface CallOptions {
  method?: string;
  headers?: Record<string, string> | string[];
  body?: Buffer | string;
  /** Stream the body in chunks of this many bytes (no Content-Length: chunked). */
  chunked?: { data: Buffer; chunkSize: number };
  /** Keep-alive agent to reuse; default a fresh connection. */
  agent?: import('node:http').Agent;
}

/** One HTTP/1.1 request with exactly these headers (plus Host). */
export function call(port: number, path: string, options: CallOptions = {}): Promise<Reply> {
  let headers = options.headers ?? {};
  // Node adds Host for object headers only; HTTP/1.1 requires one.
  if (Array.isArray(headers) && !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) headers = ['Host', `127.0.0.1:${port}`, ...headers];
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method: options.method ?? 'GET', path, headers, agent: options.agent ?? false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.chunked !== undefined) {
      const { data, chunkSize } = options.chunked;
      let offset = 0;
      const pump = (): void => {
        while (offset < data.length) {
          const piece = data.subarray(offset, offset + chunkSize);
          offset += piece.length;
          if (!req.write(piece)) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    } else {
      req.end(options.body);
    }
  });
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Polls `check` every few ms until true, failing after `ms`. */
export async function eventually(check: () => boolean | Promise<boolean>, ms = 2_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Reads from a raw socket until `predicate(bytes so far)` holds. */
export function readUntil(socket: Socket, predicate: (data: Buffer) => boolean, ms = 2_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`timed out; got ${JSON.stringify(data.toString('latin1'))}`));
    }, ms);
    const onData = (chunk: Buffer): void => {
      data = Buffer.concat([data, chunk]);
      if (predicate(data)) {
        cleanup();
        resolve(data);
      }
    };
    const onEnd = (): void => {
      cleanup();
      if (predicate(data)) resolve(data);
      else reject(new Error(`socket ended; got ${JSON.stringify(data.toString('latin1'))}`));
    };
    function cleanup(): void {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
    }
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
  });
}

export const headEnd = (data: Buffer): boolean => data.includes('\r\n\r\n');
