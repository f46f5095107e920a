import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GatewayPolicy } from '../config/types.js';
import { problem } from '../errors/problems.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { canonicalizeRequest } from '../request/canonical.js';
import { publicServerOptions } from '../request/server-options.js';
import type { Clock } from '../time/clock.js';
import { createAdminHandler } from './admin.js';
import { createGatewayCore, type GatewayCore, type ReloadResult } from './core.js';
import { sendProblem, writeProblemToSocket } from './respond.js';
import { admitRequest } from './admit.js';

export interface GatewayOptions {
  readonly configPath: string;
  readonly logger?: Logger;
  readonly audit?: Logger;
  readonly clock?: Clock;
  /** Override the policy's listeners (tests use port 0); `false` disables the admin listener. */
  readonly listen?: { readonly host?: string; readonly port: number };
  readonly admin?: { readonly host?: string; readonly port: number } | false;
  /** Watch the policy file for changes (default true). */
  readonly watch?: boolean;
}

export interface Gateway {
  readonly address: AddressInfo;
  readonly adminAddress?: AddressInfo;
  readonly metrics: Metrics;
  readonly core: GatewayCore;
  policy(): GatewayPolicy;
  /** Re-reads the policy file now (SIGHUP); a broken file is refused and the running policy kept. */
  reload(): ReloadResult;
  /** Graceful drain: stop accepting, finish in-flight requests up to the drain deadline, close everything. */
  stop(): Promise<void>;
}

function listenOn(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** Front door 1: the reverse proxy (plus the gateway's own endpoints under the reserved prefix). */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const core = await createGatewayCore(options);
  const { metrics, logger } = core;
  let draining = false;

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (draining) res.setHeader('connection', 'close');
    const admitted = await admitRequest(core, req, res, { door: 'proxy' });
    if (admitted === undefined) return;
    const { runtime, view, decision } = admitted;
    const route = decision.route;
    if (route.upstream === undefined) {
      sendProblem(res, problem('forbidden', 'this route has no upstream'), view.requestId);
      return;
    }
    runtime.forwarder.forward(req, res, {
      upstream: route.upstream,
      view,
      ...(decision.identity !== undefined ? { identity: decision.identity } : {}),
      forwardAuthorization: route.forwardAuthorization,
      routeName: route.name,
      ...(decision.session !== undefined
        ? { responseHeaders: { 'x-session-token': decision.session.token, 'x-session-expires': String(decision.session.expiresAt) } }
        : {}),
    });
  }

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const runtime = core.acquire();
    socket.once('close', () => core.release(runtime));
    socket.on('error', () => socket.destroy());
    const canonical = canonicalizeRequest(req, { trustedProxies: runtime.trusted, maxTokenBytes: runtime.policy.auth.jwt.maxTokenBytes });
    if (!canonical.ok) {
      metrics.rejectedRequests.inc({ reason: canonical.reason });
      writeProblemToSocket(socket, canonical.problem);
      return;
    }
    const view = canonical.view;
    const decision = await core.decide(view, runtime);
    if (decision.kind === 'deny') {
      metrics.denials.inc({ code: decision.problem.code });
      writeProblemToSocket(socket, decision.problem, view.requestId);
      return;
    }
    const route = decision.route;
    if (!route.websocket || route.upstream === undefined || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      writeProblemToSocket(socket, problem('invalid_request', 'protocol upgrade is not allowed on this route'), view.requestId);
      return;
    }
    runtime.forwarder.upgrade(req, socket, head, {
      upstream: route.upstream,
      view,
      ...(decision.identity !== undefined ? { identity: decision.identity } : {}),
      forwardAuthorization: route.forwardAuthorization,
      routeName: route.name,
    });
  }

  const initial = core.current().policy;
  const publicServer = createServer(publicServerOptions({ maxHeaderBytes: initial.limits.maxHeaderBytes }), (req, res) => {
    handleRequest(req, res).catch((error: unknown) => {
      logger.error({ event: 'internal_error', error: error instanceof Error ? error.message : String(error) }, 'request failed');
      sendProblem(res, problem('internal_error', 'the gateway could not handle this request'));
    });
  });
  publicServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    handleUpgrade(req, socket, head).catch(() => socket.destroy());
  });
  publicServer.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const overflow = error.code === 'HPE_HEADER_OVERFLOW';
    metrics.rejectedRequests.inc({ reason: overflow ? 'header_overflow' : 'malformed' });
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    socket.end(`HTTP/1.1 ${overflow ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
  });

  const listen = options.listen ?? initial.listen;
  const address = await listenOn(publicServer, listen.port, listen.host ?? initial.listen.host);

  let adminServer: Server | undefined;
  let adminAddress: AddressInfo | undefined;
  if (options.admin !== false) {
    const adminListen = options.admin ?? initial.admin;
    adminServer = createServer(
      createAdminHandler({
        metrics,
        policy: () => core.current().policy,
        poolStats: () => core.current().forwarder.poolStats(),
        ready: async () => (draining ? 'draining' : core.ready()),
        reload: core.reload,
        adminToken: initial.admin.token,
        refreshGauges: core.refreshGauges,
      }),
    );
    adminAddress = await listenOn(adminServer, adminListen.port, adminListen.host ?? initial.admin.host);
  }
  logger.info(
    { event: 'listening', address: `${address.address}:${address.port}`, admin: adminAddress && `${adminAddress.address}:${adminAddress.port}` },
    'mfa-gateway ready',
  );

  async function stop(): Promise<void> {
    draining = true;
    publicServer.close();
    publicServer.closeIdleConnections();
    await core.whenIdle(core.current().policy.limits.drainTimeoutMs);
    publicServer.closeAllConnections();
    adminServer?.close();
    adminServer?.closeAllConnections();
    await core.close();
    logger.info({ event: 'stopped' }, 'mfa-gateway stopped');
  }

  let stopping: Promise<void> | undefined;
  return {
    address,
    ...(adminAddress !== undefined ? { adminAddress } : {}),
    metrics,
    core,
    policy: () => core.current().policy,
    reload: core.reload,
    stop: () => (stopping ??= stop()),
  };
}
