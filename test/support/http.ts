import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** Response header names and values as received, in order. */
  readonly rawHeaders: readonly string[];
  readonly body: Buffer;
  /** The body as UTF-8. */
  readonly text: string;
  json<T = Record<string, unknown>>(): T;
}

export interface CallOptions {
  /** Stream this body in chunks of `chunkSize` bytes (no Content-Length: chunked) instead of `body`. */
  readonly chunked?: { readonly data: Buffer; readonly chunkSize: number };
  /** Call from this local address (e.g. 127.0.0.2, an untrusted loopback peer). */
  readonly localAddress?: string;
}

/**
 * One HTTP/1.1 request on a fresh connection with exactly the headers given, plus Host: an object,
 * or a flat [name, value, …] list to send names in a chosen spelling and order.
 */
export function call(
  port: number,
  method: string,
  path: string,
  headers: Record<string, string> | string[] = {},
  body?: string | Buffer,
  options: CallOptions = {},
): Promise<Reply> {
  // Node adds Host for object headers only; HTTP/1.1 requires one.
  if (Array.isArray(headers) && !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'host')) headers = ['Host', `127.0.0.1:${port}`, ...headers];
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, method, path, headers, agent: false, ...(options.localAddress !== undefined ? { localAddress: options.localAddress } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const data = Buffer.concat(chunks);
          const text = data.toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, rawHeaders: res.rawHeaders, body: data, text, json: <T>() => JSON.parse(text) as T });
        });
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
      req.end(body);
    }
  });
}

/** Sends raw bytes and collects everything the server writes until it closes or `idleMs` passes. */
export function rawExchange(port: number, bytes: string | Buffer, idleMs = 300): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let timer = setTimeout(finish, idleMs);
    function finish(): void {
      socket.destroy();
      resolve(Buffer.concat(chunks).toString('latin1'));
    }
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      clearTimeout(timer);
      timer = setTimeout(finish, idleMs);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      finish();
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.write(bytes);
  });
}

/** Status codes of every HTTP response in a raw byte stream, in order. */
export function statusesIn(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
}

/** Drops every connection and stops listening. */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

/** A loopback port nothing listens on (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
