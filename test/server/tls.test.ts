import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type Server } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { PolicyError } from '../../src/config/load.js';
import { createLogger } from '../../src/log/logger.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call } from '../support/http.js';
import { handshake, makeCertificate, type TestCertificate } from '../support/tls.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

const silent = createLogger({ level: 'silent' });
const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const ADMIN_TOKEN_ENV = 'MFA_GATEWAY_TLS_TEST_ADMIN_TOKEN';
const ADMIN_TOKEN = 'tls-test-admin-token-0123456789';
process.env[ADMIN_TOKEN_ENV] = ADMIN_TOKEN;

const ROUTES = `routes:
  - { name: live, match: { path: /live }, upstream: app, policy: public, websocket: true }
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: bearer }
default: deny
`;

/** policyHead with the public listener replaced by `listen` (a YAML block) and the admin API on. */
function policyWith(ws: Workspace, upstreamUrl: string, listen: string): string {
  const head = policyHead(ws, upstreamUrl);
  const plainListen = 'listen: { host: 127.0.0.1, port: 0 }\n';
  const plainAdmin = 'admin: { host: 127.0.0.1, port: 0 }\n';
  assert.ok(head.startsWith(plainListen + plainAdmin), 'policyHead starts with the two listeners');
  return `${listen}admin: { host: 127.0.0.1, port: 0, token_env: ${ADMIN_TOKEN_ENV} }\n${head.slice(plainListen.length + plainAdmin.length)}${ROUTES}`;
}

function tlsListen(cert: TestCertificate, extra = ''): string {
  return `listen:
  host: 127.0.0.1
  port: 0
  tls:
    cert: ${cert.certFile}
    key: ${cert.keyFile}
${extra}`;
}

interface TlsReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** The connection the answer came on. */
  readonly socket: TLSSocket;
  /** The server certificate's, read when the answer arrived (Node has it only then, and not on a reused socket). */
  readonly fingerprint256: string | undefined;
  readonly reusedSocket: boolean;
}

function httpsCall(port: number, method: string, path: string, options: { headers?: Record<string, string>; agent?: Agent; ca?: string } = {}): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        headers: options.headers ?? {},
        ...(options.agent !== undefined ? { agent: options.agent } : { agent: false }),
        ...(options.ca !== undefined ? { ca: options.ca } : { rejectUnauthorized: false }),
      },
      (res) => {
        // A keep-alive agent takes the socket back at the end of the response: hold on to it now.
        const socket = res.socket as TLSSocket;
        const fingerprint256 = socket.getPeerX509Certificate()?.fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8'), socket, fingerprint256, reusedSocket: req.reusedSocket }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function metricValue(gateway: Gateway, line: RegExp): Promise<number> {
  const metrics = await call(gateway.adminAddress!.port, 'GET', '/metrics');
  const match = line.exec(metrics.text);
  return match === null ? 0 : Number(match[1]);
}

function adminReload(gateway: Gateway): Promise<{ status: number; body: Record<string, unknown> }> {
  return call(gateway.adminAddress!.port, 'POST', '/admin/reload', { authorization: `Bearer ${ADMIN_TOKEN}` }).then((reply) => ({ status: reply.status, body: reply.json() }));
}

/** Replaces `target`'s content the way deploy tools do: write a temp file, rename it over. */
function replaceFile(source: string, target: string): void {
  const temp = `${target}.tmp`;
  copyFileSync(source, temp);
  renameSync(temp, target);
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, `${what}: not within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const TLS_HANDSHAKE_REJECTIONS = /^mfa_gateway_rejected_requests_total\{reason="tls_handshake"\} (\d+)$/m;
const RELOAD_FAILURES = /^mfa_gateway_config_reloads_total\{result="failure"\} (\d+)$/m;

describe('TLS listener: TLS 1.3 by default', () => {
  let upstream: Upstream;
  let ws: Workspace;
  let cert: TestCertificate;
  let gateway: Gateway;
  let port: number;

  before(async () => {
    upstream = await startUpstream();
    ws = createWorkspace();
    cert = makeCertificate(ws.dir, 'localhost');
    ws.writePolicy(policyWith(ws, upstream.url, tlsListen(cert)));
    gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false });
    port = gateway.address.port;
  });
  after(async () => {
    await gateway.stop();
    await upstream.close();
    ws.remove();
  });

  test('a request over TLS 1.3 reaches the upstream with X-Forwarded-Proto: https', async () => {
    assert.equal(gateway.protocol, 'https');
    const before = upstream.received.length;
    // Verified against the test's own certificate: it is the one served, valid for 127.0.0.1.
    const reply = await httpsCall(port, 'GET', '/public/hello?x=1', { ca: readFileSync(cert.certFile, 'utf8'), headers: { 'x-forwarded-proto': 'http' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.socket.getProtocol(), 'TLSv1.3');
    assert.equal(reply.fingerprint256, cert.fingerprint256);
    assert.equal(upstream.received.length, before + 1);
    const got = upstream.received.at(-1)!;
    assert.equal(got.url, '/public/hello?x=1');
    // The client's own X-Forwarded-Proto is not believed (no trusted proxy); our socket says https.
    assert.equal(got.headers['x-forwarded-proto'], 'https');
    assert.equal(got.headers['x-forwarded-host'], `127.0.0.1:${port}`);
    assert.equal(reply.headers['strict-transport-security'], undefined, 'no HSTS unless configured');
  });

  test('a TLS 1.2-only client is refused and counted; nothing reaches the upstream', async () => {
    const before = upstream.received.length;
    const rejected = await metricValue(gateway, TLS_HANDSHAKE_REJECTIONS);
    const result = await handshake(port, { maxVersion: 'TLSv1.2' });
    assert.deepEqual(result, { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    assert.equal(upstream.received.length, before);
    await eventually('the refused handshake is counted', async () => (await metricValue(gateway, TLS_HANDSHAKE_REJECTIONS)) === rejected + 1);
  });

  test('TLS 1.3 negotiates a forward-secret AEAD suite and keeps session tickets', async () => {
    const result = await handshake(port);
    assert.ok(result.ok);
    assert.equal(result.protocol, 'TLSv1.3');
    assert.match(result.cipher, /^TLS_(AES_256_GCM_SHA384|AES_128_GCM_SHA256|CHACHA20_POLY1305_SHA256)$/);
    assert.equal(result.ticket, true);
  });

  test('plain HTTP to the TLS port gets no HTTP answer and reaches nothing', async () => {
    const before = upstream.received.length;
    const outcome = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/public/plain', agent: false }, (res) => resolve(`status ${res.statusCode}`));
      req.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
      req.end();
    });
    assert.equal(outcome, 'ECONNRESET');
    assert.equal(upstream.received.length, before);
  });

  test("the gateway's own answers come over TLS too (404 route_not_found, 401 on a bearer route)", async () => {
    const notFound = await httpsCall(port, 'GET', '/nowhere');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.headers['content-type'], 'application/problem+json');
    assert.equal(JSON.parse(notFound.text).code, 'route_not_found');
    const unauthorized = await httpsCall(port, 'GET', '/orders/1');
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.headers['www-authenticate'], 'Bearer error="invalid_token", error_description="a bearer token is required"');
  });
});

describe('TLS listener: min_version TLSv1.2', () => {
  let upstream: Upstream;
  let ws: Workspace;
  let gateway: Gateway;
  let port: number;

  before(async () => {
    upstream = await startUpstream();
    ws = createWorkspace();
    // RSA, so that a static-RSA suite (no forward secrecy) is something the server could pick.
    const cert = makeCertificate(ws.dir, 'localhost', 'rsa');
    ws.writePolicy(policyWith(ws, upstream.url, tlsListen(cert, '    min_version: TLSv1.2\n')));
    gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false });
    port = gateway.address.port;
  });
  after(async () => {
    await gateway.stop();
    await upstream.close();
    ws.remove();
  });

  test('a TLS 1.2 client is accepted, with an ECDHE suite and no session ticket', async () => {
    const result = await handshake(port, { maxVersion: 'TLSv1.2' });
    assert.ok(result.ok);
    assert.deepEqual([result.protocol, result.cipher, result.ticket], ['TLSv1.2', 'ECDHE-RSA-AES256-GCM-SHA384', false]);
    const reply = await new Promise<number>((resolve, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port, path: '/public/v12', agent: false, rejectUnauthorized: false, maxVersion: 'TLSv1.2' }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(reply, 200);
    assert.equal(upstream.received.at(-1)?.headers['x-forwarded-proto'], 'https');
  });

  test('TLS 1.2 without forward secrecy (static RSA key exchange, CBC) is refused', async () => {
    for (const ciphers of ['AES128-GCM-SHA256', 'AES256-SHA', 'ECDHE-RSA-AES128-SHA']) {
      const result = await handshake(port, { maxVersion: 'TLSv1.2', ciphers });
      assert.deepEqual(result, { ok: false, code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' }, ciphers);
    }
  });

  test('TLS 1.3 clients still get TLS 1.3', async () => {
    const result = await handshake(port);
    assert.ok(result.ok);
    assert.equal(result.protocol, 'TLSv1.3');
  });
});

describe('TLS listener: certificate rotation', () => {
  let upstream: Upstream;
  let ws: Workspace;
  let first: TestCertificate;
  let second: TestCertificate;
  let third: TestCertificate;
  let live: TestCertificate;

  before(async () => {
    upstream = await startUpstream();
    ws = createWorkspace();
    first = makeCertificate(ws.dir, 'first');
    second = makeCertificate(ws.dir, 'second');
    third = makeCertificate(ws.dir, 'third');
  });
  after(async () => {
    await upstream.close();
    ws.remove();
  });

  /** A gateway serving `first` from the files live.crt / live.key. */
  async function startWithFirst(watch: boolean): Promise<Gateway> {
    live = { certFile: join(ws.dir, 'live.crt'), keyFile: join(ws.dir, 'live.key'), fingerprint256: first.fingerprint256 };
    copyFileSync(first.certFile, live.certFile);
    copyFileSync(first.keyFile, live.keyFile);
    ws.writePolicy(policyWith(ws, upstream.url, tlsListen(live)));
    return startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch });
  }

  test('reload (SIGHUP / POST /admin/reload): new connections get the new certificate, an open keep-alive connection keeps working', async () => {
    const gateway = await startWithFirst(false);
    const port = gateway.address.port;
    const agent = new Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });
    try {
      const before = await httpsCall(port, 'GET', '/public/a', { agent });
      assert.equal(before.status, 200);
      assert.equal(before.reusedSocket, false);
      assert.equal(before.fingerprint256, first.fingerprint256);

      replaceFile(second.certFile, live.certFile);
      replaceFile(second.keyFile, live.keyFile);
      assert.deepEqual(gateway.reload(), { ok: true });

      const fresh = await handshake(port);
      assert.ok(fresh.ok);
      assert.equal(fresh.fingerprint256, second.fingerprint256);
      // The connection opened on the first certificate before the reload is still up and serving.
      const after = await httpsCall(port, 'GET', '/public/b', { agent });
      assert.equal(after.status, 200);
      assert.equal(after.reusedSocket, true);
      assert.equal(after.socket, before.socket);
      assert.equal(upstream.received.at(-1)?.url, '/public/b');

      // The admin API's reload runs the same path.
      replaceFile(third.certFile, live.certFile);
      replaceFile(third.keyFile, live.keyFile);
      assert.deepEqual(await adminReload(gateway), { status: 200, body: { status: 'reloaded' } });
      const latest = await handshake(port);
      assert.ok(latest.ok);
      assert.equal(latest.fingerprint256, third.fingerprint256);
    } finally {
      agent.destroy();
      await gateway.stop();
    }
  });

  test('a broken pair on reload is refused, reported and counted; the running certificate stays', async () => {
    const gateway = await startWithFirst(false);
    const port = gateway.address.port;
    try {
      const failures = await metricValue(gateway, RELOAD_FAILURES);
      // Half a rotation: the new certificate next to the old key.
      replaceFile(second.certFile, live.certFile);
      const refused = gateway.reload();
      assert.equal(refused.ok, false);
      assert.equal(refused.ok === false && refused.error, `${ws.configPath}:6: listen.tls.key: key file "${live.keyFile}" is not the private key of the certificate (the first one in the certificate file)`);
      const viaAdmin = await adminReload(gateway);
      assert.equal(viaAdmin.status, 422);
      assert.equal(viaAdmin.body.status, 'refused');
      assert.ok(!String(viaAdmin.body.error).includes('PRIVATE KEY'), 'no key material in the answer');
      assert.equal(await metricValue(gateway, RELOAD_FAILURES), failures + 2);

      // A certificate file that is not a certificate at all.
      writeFileSync(live.certFile, 'not a certificate\n');
      const garbage = gateway.reload();
      assert.equal(garbage.ok === false && garbage.error, `${ws.configPath}:5: listen.tls.cert: certificate file "${live.certFile}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);

      const still = await handshake(port);
      assert.ok(still.ok);
      assert.equal(still.fingerprint256, first.fingerprint256);
      assert.equal((await httpsCall(port, 'GET', '/public/still')).status, 200);
    } finally {
      await gateway.stop();
    }
  });

  test('the certificate and key files are watched: a rotation on disk is picked up without a signal', async () => {
    const gateway = await startWithFirst(true);
    const port = gateway.address.port;
    try {
      const failures = await metricValue(gateway, RELOAD_FAILURES);
      replaceFile(second.keyFile, live.keyFile);
      replaceFile(second.certFile, live.certFile);
      await eventually('the new certificate is served', async () => {
        const result = await handshake(port);
        return result.ok && result.fingerprint256 === second.fingerprint256;
      });
      // A broken file on disk is refused like a broken policy, and the certificate in force stays.
      writeFileSync(live.keyFile, 'garbage\n');
      await eventually('the broken key is counted', async () => (await metricValue(gateway, RELOAD_FAILURES)) > failures);
      const still = await handshake(port);
      assert.ok(still.ok);
      assert.equal(still.fingerprint256, second.fingerprint256);
    } finally {
      await gateway.stop();
    }
  });
});

describe('TLS listener: HSTS', () => {
  let upstream: Server;
  let upstreamUrl: string;
  let ws: Workspace;
  let gateway: Gateway;
  let port: number;

  before(async () => {
    // An upstream that sends its own HSTS: on a TLS listener with HSTS configured, the gateway's wins.
    upstream = createServer((_req, res) => {
      res.writeHead(200, { 'strict-transport-security': 'max-age=0', 'content-length': '2' });
      res.end('ok');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    ws = createWorkspace();
    const cert = makeCertificate(ws.dir, 'localhost');
    ws.writePolicy(policyWith(ws, upstreamUrl, tlsListen(cert, '    hsts: { max_age: 365d, include_subdomains: true }\n')));
    gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false });
    port = gateway.address.port;
  });
  after(async () => {
    await gateway.stop();
    upstream.closeAllConnections();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    ws.remove();
  });

  const HSTS = 'max-age=31536000; includeSubDomains';

  test('on proxied responses, in place of the upstream’s own', async () => {
    const reply = await httpsCall(port, 'GET', '/public/x');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['strict-transport-security'], HSTS);
    assert.equal(reply.socket.getProtocol(), 'TLSv1.3');
  });

  test("on the gateway's own answers: refusals and the reserved prefix", async () => {
    const notFound = await httpsCall(port, 'GET', '/nowhere');
    assert.equal(notFound.status, 404);
    assert.equal(notFound.headers['strict-transport-security'], HSTS);
    const unauthorized = await httpsCall(port, 'GET', '/orders/1');
    assert.equal(unauthorized.status, 401);
    assert.equal(unauthorized.headers['strict-transport-security'], HSTS);
    const setup = await httpsCall(port, 'GET', '/.mfa/setup');
    assert.equal(setup.status, 200);
    assert.equal(setup.headers['strict-transport-security'], HSTS);
  });

  test('follows the policy on reload: removed from the file, gone from the answers', async () => {
    const text = readFileSync(ws.configPath, 'utf8');
    ws.writePolicy(text.replace('    hsts: { max_age: 365d, include_subdomains: true }\n', ''));
    assert.deepEqual(gateway.reload(), { ok: true });
    const proxied = await httpsCall(port, 'GET', '/public/x');
    // Not configured: the upstream's header passes through untouched.
    assert.equal(proxied.headers['strict-transport-security'], 'max-age=0');
    const own = await httpsCall(port, 'GET', '/nowhere');
    assert.equal(own.headers['strict-transport-security'], undefined);
    ws.writePolicy(text);
    assert.deepEqual(gateway.reload(), { ok: true });
    assert.equal((await httpsCall(port, 'GET', '/nowhere')).headers['strict-transport-security'], HSTS);
  });
});

describe('TLS listener: WebSocket upgrades', () => {
  test('an upgrade over TLS is tunnelled to the upstream, which sees X-Forwarded-Proto: https', async () => {
    const seen: IncomingHttpHeaders[] = [];
    // Answers the handshake, then echoes whatever bytes come: the tunnel is what is under test.
    const upstream = createServer((_req, res) => res.end());
    upstream.on('upgrade', (req, socket: Duplex) => {
      seen.push(req.headers);
      socket.on('error', () => socket.destroy());
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n');
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const ws = createWorkspace();
    ws.writePolicy(policyWith(ws, `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`, tlsListen(makeCertificate(ws.dir, 'localhost'))));
    const gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false });
    const client = tlsConnect({ host: '127.0.0.1', port: gateway.address.port, rejectUnauthorized: false });
    try {
      let received = '';
      client.setEncoding('latin1');
      client.on('data', (chunk: string) => (received += chunk));
      client.write('GET /live HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
      await eventually('the 101', async () => received.includes('\r\n\r\n'));
      assert.match(received, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!['x-forwarded-proto'], 'https');
      const head = received.length;
      client.write('ping through the tunnel');
      await eventually('the echo', async () => received.slice(head) === 'ping through the tunnel');
    } finally {
      client.destroy();
      await gateway.stop();
      upstream.closeAllConnections();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
      ws.remove();
    }
  });
});

describe('TLS listener: startup', () => {
  test('a plain listener stays plain and sends no HSTS; X-Forwarded-Proto says http', async () => {
    const upstream = await startUpstream();
    const ws = createWorkspace();
    ws.writePolicy(policyWith(ws, upstream.url, 'listen: { host: 127.0.0.1, port: 0 }\n'));
    const gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false });
    try {
      assert.equal(gateway.protocol, 'http');
      const reply = await call(gateway.address.port, 'GET', '/public/p');
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['strict-transport-security'], undefined);
      assert.equal(upstream.received.at(-1)?.headers['x-forwarded-proto'], 'http');
    } finally {
      await gateway.stop();
      await upstream.close();
      ws.remove();
    }
  });

  test('`check` names the certificate in force, and refuses a pair that does not match', () => {
    const ws = createWorkspace();
    try {
      const a = makeCertificate(ws.dir, 'a');
      const b = makeCertificate(ws.dir, 'b');
      const check = (): { status: number | null; stdout: string; stderr: string } => spawnSync(process.execPath, [CLI, 'check', '--config', ws.configPath], { encoding: 'utf8', timeout: 20_000 });
      ws.writePolicy(policyWith(ws, 'http://127.0.0.1:9', tlsListen(a)));
      const ok = check();
      assert.equal(ok.status, 0, ok.stderr);
      const validTo = new Date(new X509Certificate(readFileSync(a.certFile)).validTo).toISOString();
      assert.equal(ok.stdout.split('\n')[1], `tls: TLSv1.3, certificate CN=a, sha256 ${a.fingerprint256}, valid until ${validTo}`);
      ws.writePolicy(policyWith(ws, 'http://127.0.0.1:9', tlsListen({ ...a, keyFile: b.keyFile })));
      const refused = check();
      assert.equal(refused.status, 1);
      assert.equal(refused.stderr, `mfa-gateway: ${ws.configPath}:6: listen.tls.key: key file "${b.keyFile}" is not the private key of the certificate (the first one in the certificate file)\n`);
      assert.equal(refused.stdout, '');
    } finally {
      ws.remove();
    }
  });

  test('a certificate and key that do not match stop the start with a clear message', async () => {
    const ws = createWorkspace();
    const a = makeCertificate(ws.dir, 'a');
    const b = makeCertificate(ws.dir, 'b');
    ws.writePolicy(policyWith(ws, 'http://127.0.0.1:9', tlsListen({ certFile: a.certFile, keyFile: b.keyFile, fingerprint256: a.fingerprint256 })));
    try {
      await assert.rejects(
        startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false }),
        (error: unknown) =>
          PolicyError.is(error) && error.message === `${ws.configPath}:6: listen.tls.key: key file "${b.keyFile}" is not the private key of the certificate (the first one in the certificate file)`,
      );
    } finally {
      ws.remove();
    }
  });
});
