import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { PROBLEMS } from '../../src/errors/problems.js';
import { canonicalizeRequest, type CanonicalResult } from '../../src/request/canonical.js';
import { publicServerOptions, type PublicListenerLimits } from '../../src/request/server-options.js';
import { createTrustList } from '../../src/request/trust.js';
import { closeServer } from '../support/http.js';

export interface CanonServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface CanonServerOptions {
  readonly trusted?: readonly string[];
  readonly maxTokenBytes?: number;
  /** Listen address; '::' gives a dual-stack socket whose IPv4 peers look like `::ffff:127.0.0.1`. */
  readonly host?: string;
  readonly limits?: PublicListenerLimits;
}

function statusOf(result: CanonicalResult): number {
  return result.ok ? 200 : PROBLEMS[result.problem.code].status;
}

/**
 * A real node:http server built exactly like the public listener: our server options, and a
 * handler that canonicalises each request and answers the result as JSON. A refusal closes the
 * connection, as the gateway does. `x-peer` reports the socket peer Node saw.
 */
export async function startCanonServer(options: CanonServerOptions = {}): Promise<CanonServer> {
  const trustedProxies = createTrustList(options.trusted ?? []);
  const maxTokenBytes = options.maxTokenBytes ?? 1024;
  const canonical = (req: IncomingMessage): CanonicalResult => canonicalizeRequest(req, { trustedProxies, maxTokenBytes });
  const server: Server = createServer(publicServerOptions(options.limits ?? { maxHeaderBytes: 16384 }), (req, res) => {
    const result = canonical(req);
    const body = JSON.stringify(result);
    req.resume();
    res.writeHead(statusOf(result), {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'x-peer': req.socket.remoteAddress ?? '',
      ...(result.ok ? {} : { connection: 'close' }),
    });
    res.end(body);
  });
  // CONNECT never reaches the request handler; answer it through the same function.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const result = canonical(req);
    const body = JSON.stringify(result);
    socket.end(`HTTP/1.1 ${statusOf(result)} X\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-peer: ${req.socket.remoteAddress ?? ''}\r\nconnection: close\r\n\r\n${body}`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () => closeServer(server),
  };
}

export interface RawResponse {
  readonly status: number;
  readonly statusLine: string;
  /** Lower-cased names; `date` removed so that headers can be compared exactly. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

export interface Exchange {
  readonly responses: RawResponse[];
  /** Everything the server wrote, as latin1. */
  readonly raw: string;
  /** The server ended the connection (as opposed to us hanging up after the expected answers). */
  readonly closedByServer: boolean;
}

function decodeChunked(text: string): { body: string; used: number } | undefined {
  let body = '';
  let at = 0;
  for (;;) {
    const lineEnd = text.indexOf('\r\n', at);
    if (lineEnd === -1) return undefined;
    const size = parseInt(text.slice(at, lineEnd), 16);
    at = lineEnd + 2;
    if (size === 0) return text.startsWith('\r\n', at) ? { body, used: at + 2 } : undefined;
    if (text.length < at + size + 2) return undefined;
    body += text.slice(at, at + size);
    at += size + 2;
  }
}

/** Complete responses at the front of `text`; a response without framing runs to the end when `closed`. */
export function parseResponses(text: string, closed: boolean): RawResponse[] {
  const responses: RawResponse[] = [];
  let rest = text;
  while (rest.length > 0) {
    const headEnd = rest.indexOf('\r\n\r\n');
    if (headEnd === -1) break;
    const lines = rest.slice(0, headEnd).split('\r\n');
    const statusLine = lines[0]!;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      const name = line.slice(0, colon).toLowerCase();
      if (name !== 'date') headers[name] = line.slice(colon + 1).trim();
    }
    const bodyText = rest.slice(headEnd + 4);
    let body: string;
    let used: number;
    if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (bodyText.length < length) break;
      body = bodyText.slice(0, length);
      used = length;
    } else if (headers['transfer-encoding'] === 'chunked') {
      const decoded = decodeChunked(bodyText);
      if (decoded === undefined) break;
      body = decoded.body;
      used = decoded.used;
    } else {
      if (!closed) break;
      body = bodyText;
      used = bodyText.length;
    }
    responses.push({ status: Number(statusLine.split(' ')[1]), statusLine, headers, body });
    rest = bodyText.slice(used);
  }
  return responses;
}

/**
 * Writes exact bytes on a fresh connection and collects the answers. Resolves when the server
 * closes the connection, or once `responses` complete answers arrived and `expectClose` is false.
 */
export function exchange(
  port: number,
  bytes: string | Buffer,
  options: { readonly responses?: number; readonly expectClose?: boolean; readonly host?: string; readonly timeoutMs?: number } = {},
): Promise<Exchange> {
  const wanted = options.responses ?? 1;
  const expectClose = options.expectClose ?? false;
  return new Promise((resolve, reject) => {
    const socket = connect(port, options.host ?? '127.0.0.1');
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks).toString('latin1');
      resolve({ responses: parseResponses(raw, closedByServer), raw, closedByServer });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 2000);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      if (!expectClose && parseResponses(Buffer.concat(chunks).toString('latin1'), false).length >= wanted) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      // A reset after the server answered and hung up still counts as a close.
      if (error.code === 'ECONNRESET') finish(true);
      else if (!done) {
        done = true;
        clearTimeout(timer);
        reject(error);
      }
    });
    socket.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes);
  });
}
