import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ReceivedRequest {
  readonly method: string;
  /** The request target exactly as the upstream's parser saw it. */
  readonly url: string;
  readonly rawHeaders: readonly string[];
  readonly headers: IncomingMessage['headers'];
  readonly body: Buffer;
}

export interface RecordingUpstream {
  readonly server: Server;
  readonly port: number;
  readonly url: string;
  readonly received: ReceivedRequest[];
  /** Header names as received (lower-cased), for "this never arrived" assertions. */
  headerNames(request: ReceivedRequest): string[];
  close(): Promise<void>;
}

/** A real backend on loopback that records exactly what reached it and answers 200 JSON. */
export async function startRecordingUpstream(): Promise<RecordingUpstream> {
  const received: ReceivedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const record: ReceivedRequest = { method: req.method ?? '', url: req.url ?? '', rawHeaders: req.rawHeaders, headers: req.headers, body: Buffer.concat(chunks) };
      received.push(record);
      const body = JSON.stringify({ ok: true, path: record.url, subject: req.headers['x-auth-subject'] ?? null });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    received,
    headerNames: (request) => request.rawHeaders.filter((_, i) => i % 2 === 0).map((name) => name.toLowerCase()),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
