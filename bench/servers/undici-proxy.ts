import { createServer } from 'node:http';
import { endToEnd, relayFailure, serve, upstreamPool } from './minimal-proxy.js';

/**
 * Baseline: the least a Node reverse proxy can do with undici. One `Pool` to the upstream and
 * `pool.stream()` straight into the response; hop-by-hop headers (RFC 9110 §7.6.1, plus every
 * name listed in Connection) are stripped both ways, nothing else is looked at or added.
 */

const { port, pool } = upstreamPool('undici-proxy.js');

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
    (error) => relayFailure(res, error),
  );
});

serve(server, port, pool);
