import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { Pool } from 'undici';

/**
 * Baseline: the least a Node reverse proxy can do with undici. One `Pool` to the upstream and
 * `pool.stream()` straight into the response; hop-by-hop headers (RFC 9110 §7.6.1, plus every
 * name listed in Connection) are stripped both ways, nothing else is looked at or added.
 */

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
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

const [port, target] = process.argv.slice(2);
if (target === undefined) throw new Error('usage: undici-proxy.js PORT UPSTREAM_URL');
const pool = new Pool(target, { connections: 100, keepAliveTimeout: 60_000, keepAliveMaxTimeout: 300_000 });

const server = createServer((req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.stream(
    {
      path: req.url ?? '/',
      method: req.method as 'GET',
      headers: endToEnd(req.headers) as Record<string, string>,
      body: hasBody ? req : null,
    },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, endToEnd(headers));
      return res;
    },
    (error) => {
      if (error === null) return;
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain', 'content-length': '12' });
        res.end('bad gateway\n');
      } else {
        res.destroy();
      }
    },
  );
});

server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => void pool.close().then(() => process.exit(0)));
});
