import { createHash } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { closeServer } from './http.js';

export interface ReceivedRequest {
  readonly method: string;
  /** The request target exactly as the upstream's parser saw it. */
  readonly url: string;
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  readonly socket: Socket;
}

/** Answers a request once its whole body has arrived. */
export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, received: ReceivedRequest) => void;

export interface UpstreamOptions {
  /** Default: 200 JSON with the target, body length and body SHA-256. */
  readonly handler?: UpstreamHandler;
  /** Default 0 (any free port). */
  readonly port?: number;
  /**
   * Runs as soon as a request's head arrives, before its body (for tests that must not wait for
   * it). Returning true takes the request over: it is neither recorded nor handed to `handler`.
   */
  readonly onHead?: (req: IncomingMessage, res: ServerResponse) => boolean;
}

export interface Upstream {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  /** Every request that fully arrived, in order. */
  readonly received: ReceivedRequest[];
  /** Every TCP connection the upstream accepted, in order. */
  readonly connections: Socket[];
  /** Header names of a received request as sent (lower-cased), for "this never arrived" assertions. */
  headerNames(request: ReceivedRequest): string[];
  close(): Promise<void>;
}

const answerWithDigest: UpstreamHandler = (_req, res, received) => {
  const body = JSON.stringify({ ok: true, url: received.url, bytes: received.body.length, sha256: createHash('sha256').update(received.body).digest('hex') });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
  res.end(body);
};

/** A real node:http backend on loopback that records exactly what reached it: method, raw target, raw headers, body bytes. */
export async function startUpstream(options: UpstreamOptions = {}): Promise<Upstream> {
  const handler = options.handler ?? answerWithDigest;
  const received: ReceivedRequest[] = [];
  const connections: Socket[] = [];
  const server = createServer((req, res) => {
    if (options.onHead?.(req, res) === true) return;
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const record: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', rawHeaders: [...req.rawHeaders], headers: req.headers, body: Buffer.concat(chunks), socket: req.socket };
      received.push(record);
      handler(req, res, record);
    });
  });
  server.on('connection', (socket: Socket) => connections.push(socket));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    connections,
    headerNames: (request) => request.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase()),
    close: () => closeServer(server),
  };
}
