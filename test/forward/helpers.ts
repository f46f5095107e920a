import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { UpstreamConfig } from '../../src/config/types.js';
import type { Identity } from '../../src/decision/types.js';
import type { Forwarder, ForwardTarget } from '../../src/forward/forwarder.js';
import type { RequestView } from '../../src/request/view.js';
import { closeServer } from '../support/http.js';

/** The forwarder without a gateway around it: a minimal front door, and raw-socket helpers for the tunnel tests. */

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

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
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
