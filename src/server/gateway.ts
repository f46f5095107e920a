import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GatewayPolicy } from '../config/types.js';
import { createGatewayCore, type GatewayCore, type ReloadResult } from '../core/gateway-core.js';
import { createProxyDoor } from '../doors/proxy/proxy.js';
import { problem } from '../errors/problems.js';
import { whenClosed, type CloseWatcher } from '../http/closed.js';
import { sendProblem } from '../http/respond.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { publicServerOptions } from '../request/server-options.js';
import type { InvalidationBus } from '../store/types.js';
import type { Clock } from '../time/clock.js';
import { formatRouteTable } from '../routes/table.js';
import { eventsAdmin } from '../events/admin.js';
import { adminExposureWarning, createAdminHandler, scrapeRegistry } from './admin.js';
import { manageListenerTls, tlsServerOptions, type ListenerTls } from './tls.js';

export interface GatewayOptions {
  readonly configPath: string;
  readonly logger?: Logger;
  readonly audit?: Logger;
  readonly clock?: Clock;
  /** Override the policy's listeners (tests use port 0); `false` disables the admin listener. */
  readonly listen?: { readonly host?: string; readonly port: number };
  readonly admin?: { readonly host?: string; readonly port: number } | false;
  /** Watch the policy file, and the TLS certificate and key, for changes (default true). */
  readonly watch?: boolean;
  /** How this process hears of other processes' cache changes when the store has no bus of its own (workers on SQLite). */
  readonly bus?: InvalidationBus;
  /** How often the store deletes expired rows and pending factors (default 60 s). */
  readonly cleanupIntervalMs?: number;
  /** Poll the policy's NTP server (default true); a worker of `serve --workers N` leaves it to the primary. */
  readonly pollClock?: boolean;
}

export interface Gateway {
  readonly address: AddressInfo;
  /** `https` when the policy has `listen.tls` (fixed at start; a reload swaps the certificate only). */
  readonly protocol: 'http' | 'https';
  readonly adminAddress?: AddressInfo;
  readonly metrics: Metrics;
  readonly core: GatewayCore;
  policy(): GatewayPolicy;
  /** Re-reads the policy file now (SIGHUP); a broken file is refused and the running policy kept. */
  reload(): ReloadResult;
  /** Graceful drain: stop accepting, finish in-flight requests up to the drain deadline, close everything. */
  stop(): Promise<void>;
}

/** Listens and resolves with the address, or rejects with the listen error (EADDRINUSE, EACCES). */
export function listenOn(server: Server, port: number, host: string): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(server.address() as AddressInfo);
    });
  });
}

/** A connection's responses still being written, and what to do once they are all out. */
class Answers implements CloseWatcher {
  open = 0;
  afterwards: (() => void) | undefined = undefined;

  responseClosed(): void {
    if (--this.open > 0) return;
    const next = this.afterwards;
    this.afterwards = undefined;
    next?.();
  }
}

/** The public listener (the reverse-proxy door, which also serves the reserved prefix) and the admin listener. */
export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const core = await createGatewayCore(options);
  const { metrics, logger } = core;
  let draining = false;

  const door = createProxyDoor(core, { draining: () => draining });

  const initial = core.current().policy;
  const answering = new WeakMap<Duplex, Answers>();
  function track(socket: Duplex, res: ServerResponse): void {
    let answers = answering.get(socket);
    if (answers === undefined) answering.set(socket, (answers = new Answers()));
    answers.open++;
    whenClosed(res, answers);
  }

  let tls: ListenerTls | undefined;
  function onRequest(expectsContinue: boolean) {
    return (req: IncomingMessage, res: ServerResponse): void => {
      track(req.socket, res);
      // Set before any door writes: sendProblem/sendJson merge it, the forwarder puts it in place of an upstream's.
      const hsts = tls?.hsts();
      if (hsts !== undefined) res.setHeader('strict-transport-security', hsts);
      let pending: Promise<void> | undefined;
      try {
        pending = door.handleRequest(req, res, expectsContinue);
      } catch (error) {
        failed(res, error);
        return;
      }
      pending?.catch((error: unknown) => failed(res, error));
    };
  }
  function failed(res: ServerResponse, error: unknown): void {
    logger.error({ event: 'internal_error', error: error instanceof Error ? error.message : String(error) }, 'request failed');
    sendProblem(res, problem('internal_error', 'the gateway could not handle this request'));
  }
  const serverOptions = publicServerOptions({ maxHeaderBytes: initial.limits.maxHeaderBytes });
  let publicServer: Server;
  if (initial.listen.tls !== undefined) {
    const httpsServer = createHttpsServer({ ...serverOptions, ...tlsServerOptions(initial.listen.tls) }, onRequest(false));
    tls = manageListenerTls(httpsServer, core, initial.listen.tls, { watch: options.watch !== false });
    // Scanners, plain HTTP on this port, clients without a common version or suite: no request yet, nothing to answer.
    httpsServer.on('tlsClientError', (_error: Error, socket: Duplex) => {
      metrics.rejectedRequests.inc({ reason: 'tls_handshake' });
      socket.destroy();
    });
    publicServer = httpsServer;
  } else {
    publicServer = createServer(serverOptions, onRequest(false));
    core.onPolicy((next) => {
      if (next.listen.tls !== undefined) logger.warn({ event: 'config_reload_partial' }, 'listen.tls takes effect only on restart; the listener stays plain HTTP');
    });
  }
  // With a listener here Node no longer answers `100 Continue` by itself: the door decides first.
  publicServer.on('checkContinue', onRequest(true));
  publicServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    door.handleUpgrade(req, socket, head).catch(() => socket.destroy());
  });
  publicServer.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const overflow = error.code === 'HPE_HEADER_OVERFLOW';
    metrics.rejectedRequests.inc({ reason: overflow ? 'header_overflow' : 'malformed' });
    const refuse = (): void => {
      if (!socket.writable) {
        socket.destroy();
        return;
      }
      socket.end(`HTTP/1.1 ${overflow ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
    };
    // Pipelined: the requests before the malformed one were accepted and may have run upstream;
    // they get their own answers first, then the refusal, then the connection closes.
    const earlier = answering.get(socket);
    if (earlier === undefined || earlier.open === 0) refuse();
    else earlier.afterwards = refuse;
  });

  const listen = options.listen ?? initial.listen;
  let adminServer: Server | undefined;
  let address: AddressInfo;
  let adminAddress: AddressInfo | undefined;
  try {
    address = await listenOn(publicServer, listen.port, listen.host ?? initial.listen.host);
    if (options.admin !== false) {
      const adminListen = options.admin ?? initial.admin;
      adminServer = createServer(
        createAdminHandler({
          scrape: scrapeRegistry(metrics, core.refreshGauges),
          routeTable: () => formatRouteTable(core.current().policy),
          poolStats: () => core.current().forwarder.poolStats(),
          ready: async () => (draining ? 'draining' : core.ready()),
          reload: core.reload,
          adminToken: initial.admin.token,
          revokeSessions: (subject) => core.mfa.endSessionsOf(subject, core.clock()),
          events: eventsAdmin(core.events, core.clock),
        }),
      );
      adminAddress = await listenOn(adminServer, adminListen.port, adminListen.host ?? initial.admin.host);
    }
  } catch (error) {
    // Half a gateway is worse than none: without its admin listener nobody can scrape, probe or
    // reload it, yet it would keep proxying. Close what did start and fail the start.
    publicServer.close();
    adminServer?.close();
    tls?.close();
    await core.close();
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`cannot listen: ${reason}`, { cause: error });
  }
  logger.info(
    { event: 'listening', address: `${address.address}:${address.port}`, protocol: tls !== undefined ? 'https' : 'http', admin: adminAddress && `${adminAddress.address}:${adminAddress.port}` },
    'mfa-gateway ready',
  );
  if (adminAddress !== undefined) {
    const exposure = adminExposureWarning(adminAddress.address);
    if (exposure !== undefined) logger.warn({ event: 'admin_exposed', admin: `${adminAddress.address}:${adminAddress.port}` }, exposure);
  }

  async function stop(): Promise<void> {
    draining = true;
    tls?.close();
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
    protocol: tls !== undefined ? 'https' : 'http',
    ...(adminAddress !== undefined ? { adminAddress } : {}),
    metrics,
    core,
    policy: () => core.current().policy,
    reload: core.reload,
    stop: () => (stopping ??= stop()),
  };
}
