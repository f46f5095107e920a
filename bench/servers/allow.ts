import { createServer } from 'node:http';
import { holdTickShape } from '../../src/async/tick-shape.js';

/**
 * The cheapest decision service nginx's auth_request can ask: node:http answering every request
 * 200 at once with the identity headers the gateway's allow carries, for the subject given as
 * argument. The `plugin-floor` row puts it where the gateway sits in plugin mode, so the row is the
 * CPU per request of nginx's two hops plus Node's HTTP alone — what plugin mode costs before any
 * decision is made.
 */

// Idle time between rows must not change a server's cost per request (bench/README.md).
holdTickShape();

const subject = process.argv[3] ?? 'bench-session';
const server = createServer({ keepAliveTimeout: 120_000, headersTimeout: 130_000, requestTimeout: 0 }, (req, res) => {
  res.writeHead(200, {
    'content-length': '0',
    'cache-control': 'no-store',
    'x-auth-subject': subject,
    'x-auth-scopes': '',
    'x-auth-mfa': 'totp',
    'x-auth-mfa-time': '0',
    'x-request-id': 'bench-floor',
  });
  res.end();
  req.resume();
});
server.keepAliveTimeout = 120_000;

server.listen(Number(process.argv[2]), '127.0.0.1');
process.on('SIGTERM', () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
});
