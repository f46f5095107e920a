import { createServer } from 'node:http';
import { holdTickShape } from '../../src/async/tick-shape.js';

/**
 * The backend every target forwards to: node:http, a fixed small JSON answer, keep-alive held
 * longer than any proxy's pool keeps idle sockets (so no proxy ever reuses a socket the upstream
 * is closing). It echoes the identity it received in `x-bench-subject`, so the harness can check
 * that a gateway row really went through the decision it claims to measure, and counts what it
 * served (GET /__bench/count) so a proxy answering on its own is caught.
 */

// Idle time between rows must not change a server's cost per request (bench/README.md).
holdTickShape();

const BODY = Buffer.from('{"ok":true,"service":"bench-upstream"}\n');
let served = 0;

const server = createServer({ keepAliveTimeout: 120_000, headersTimeout: 130_000, requestTimeout: 0 }, (req, res) => {
  if (req.url === '/__bench/count') {
    const body = JSON.stringify({ served });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
    return;
  }
  served++;
  const subject = req.headers['x-auth-subject'];
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': String(BODY.length),
    'x-bench-subject': typeof subject === 'string' ? subject : '-',
  });
  res.end(BODY);
  // A body (the fresh-code rows POST nothing, but be safe) must be read for the socket to be reused.
  req.resume();
});
server.keepAliveTimeout = 120_000;

// The harness picks the port and waits until it accepts connections.
server.listen(Number(process.argv[2]), '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
