import { createServer } from 'node:http';
import { endToEnd, relayFailure, requestBody, serve, upstreamPool } from './minimal-proxy.js';

/**
 * Baseline: the least a Node reverse proxy can do with undici. One `Pool` to the upstream and
 * `pool.stream()` straight into the response; hop-by-hop headers (RFC 9110 §7.6.1, plus every
 * name listed in Connection) are stripped both ways, nothing else is looked at or added.
 */

const { port, pool } = upstreamPool('undici-proxy.js');

const server = createServer((req, res) => {
  pool.stream(
    {
      path: req.url ?? '/',
      method: req.method as 'GET',
      headers: endToEnd(req.headers) as Record<string, string>,
      body: requestBody(req),
    },
    ({ statusCode, headers }) => {
      res.writeHead(statusCode, endToEnd(headers));
      return res;
    },
    (error) => relayFailure(res, error),
  );
});

serve(server, port, pool);
