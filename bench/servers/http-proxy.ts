import { Agent, createServer } from 'node:http';
import { createProxyServer } from 'http-proxy-3';
import { holdTickShape } from '../../src/async/tick-shape.js';

/** Baseline: http-proxy-3 as people usually run it, with a keep-alive agent to the upstream. */

// Idle time between rows must not change a server's cost per request (bench/README.md).
holdTickShape();

const [port, target] = process.argv.slice(2);
if (target === undefined) throw new Error('usage: http-proxy.js PORT UPSTREAM_URL');
const agent = new Agent({ keepAlive: true, maxSockets: 100, keepAliveMsecs: 60_000 });
const proxy = createProxyServer({ target, agent });
// Without an error listener http-proxy throws from the emitter and the process dies.
proxy.on('error', (_error, _req, res) => {
  if ('writeHead' in res && !res.headersSent) {
    res.writeHead(502, { 'content-type': 'text/plain', 'content-length': '12' });
    res.end('bad gateway\n');
  } else {
    res.destroy();
  }
});

const server = createServer((req, res) => {
  void proxy.web(req, res);
});
server.listen(Number(port), '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => {
    agent.destroy();
    process.exit(0);
  });
});
