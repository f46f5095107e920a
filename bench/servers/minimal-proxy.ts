import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, Server, ServerResponse } from 'node:http';
import { Pool } from 'undici';
import { holdTickShape } from '../../src/async/tick-shape.js';

/**
 * What the minimal undici proxy (undici-proxy.ts) and the contract floor built on it
 * (contract-floor.ts) share, so the floor differs from the baseline by the contract's work alone.
 */

// Idle time between rows must not change a server's cost per request (bench/README.md).
holdTickShape();

/** RFC 9110 §7.6.1, plus every name listed in Connection: stripped both ways. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

export function isHopByHop(lowerName: string): boolean {
  return HOP_BY_HOP.has(lowerName);
}

export function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const named = headers.connection;
  const listed = typeof named === 'string' ? named.toLowerCase().split(',').map((name) => name.trim()) : [];
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    if (HOP_BY_HOP.has(name) || listed.includes(name)) continue;
    const value = headers[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/** The client's request as the pool's body: the request stream when it announces one, else none. */
export function requestBody(req: IncomingMessage): IncomingMessage | null {
  return req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined ? req : null;
}

/** `PORT UPSTREAM_URL` from the command line, and the pool both proxies forward through. */
export function upstreamPool(script: string): { port: number; pool: Pool } {
  const [port, target] = process.argv.slice(2);
  if (target === undefined) throw new Error(`usage: ${script} PORT UPSTREAM_URL`);
  return { port: Number(port), pool: new Pool(target, { connections: 100, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 300_000 }) };
}

/** The end of `pool.stream()`: a failure before the response started is a 502, after it a cut. */
export function relayFailure(res: ServerResponse, error: Error | null): void {
  if (error === null) return;
  if (!res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain', 'content-length': '12' });
    res.end('bad gateway\n');
  } else {
    res.destroy();
  }
}

/** Listens on loopback; SIGTERM closes the connections, the server and the pool, then exits. */
export function serve(server: Server, port: number, pool: Pool): void {
  server.listen(port, '127.0.0.1');
  process.on('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => void pool.close().then(() => process.exit(0)));
  });
}
