import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * The demo backend: an unmodified service that knows nothing about MFA. It answers every
 * request with what it received, so a user can see which identity headers the gateway added
 * and that credentials never arrived.
 */
export async function startDemoBackend(port: number, host = '127.0.0.1'): Promise<{ server: Server; address: AddressInfo }> {
  const server = createServer((req, res) => {
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
    });
    req.on('end', () => {
      const received: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (name.startsWith('x-auth-') || name === 'x-request-id' || name.startsWith('x-forwarded-')) received[name] = String(value);
      }
      const body = JSON.stringify({
        backend: 'demo',
        method: req.method,
        path: req.url,
        body_bytes: size,
        identity: received,
        authorization_forwarded: req.headers.authorization !== undefined,
        mfa_headers_forwarded: req.headers['x-mfa-token'] !== undefined || req.headers['x-session-token'] !== undefined,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) });
      res.end(body);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return { server, address: server.address() as AddressInfo };
}
