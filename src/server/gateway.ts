import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { loadPolicyFile } from '../config/load.js';
import { createPolicyWatcher } from '../config/watch.js';
import type { GatewayPolicy } from '../config/types.js';
import { createJwtVerifier } from '../auth/jwt.js';
import { loadKeyring } from '../crypto/keyring.js';
import { decide, type BearerVerifier } from '../decision/engine.js';
import type { Decision } from '../decision/types.js';
import { problem } from '../errors/problems.js';
import { createLogger, type Logger } from '../log/logger.js';
import { createMetrics, type Metrics } from '../metrics/metrics.js';
import { createMfaService, type MfaService } from '../mfa/service.js';
import { handleMfaEndpoint } from '../mfa/endpoints.js';
import { createForwarder, type Forwarder } from '../proxy/forwarder.js';
import { canonicalizeRequest } from '../request/canonical.js';
import { publicServerOptions } from '../request/server-options.js';
import { createTrustList, type TrustList } from '../request/trust.js';
import type { RequestView } from '../request/view.js';
import { openStore } from '../store/open.js';
import { systemClock, type Clock } from '../time/clock.js';
import { createAdminHandler, type ReloadResult } from './admin.js';
import { sendProblem, writeProblemToSocket } from './respond.js';

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
  policy(): GatewayPolicy;
  /** Re-reads the policy file now (SIGHUP); a broken file is refused and the running policy kept. */
  reload(): ReloadResult;
  /** Graceful drain: stop accepting, finish in-flight requests up to the drain deadline, close everything. */
  stop(): Promise<void>;
}

/**
 * Everything that depends on one version of the policy. A request keeps the runtime it started
 * with, so a reload never changes the rules (or the pools) under a request in flight.
 */
interface PolicyRuntime {
  readonly policy: GatewayPolicy;
  readonly bearer: BearerVerifier & { close(): void | Promise<void> };
  readonly forwarder: Forwarder;
  readonly trusted: TrustList;
  inFlight: number;
  retired: boolean;
}

const HAS_BODY = (req: IncomingMessage): boolean =>
  req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
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

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger();
  const audit = options.audit ?? logger.child({ name: 'audit' });
  const metrics = createMetrics();

  // A bad file at startup throws here: the gateway never serves without a valid policy.
  const initialPolicy = loadPolicyFile(options.configPath);
  metrics.configReloads.inc({ result: 'success' }, 0);
  metrics.configReloads.inc({ result: 'failure' }, 0);
  metrics.configInfo.set(Math.floor(clock() / 1000));

  const keyring = loadKeyring({ ...initialPolicy.keys, clock, metrics, logger });
  const store = await openStore(initialPolicy.store, clock);

  let runtime = buildRuntime(initialPolicy);
  const mfa: MfaService = createMfaService({
    getPolicy: () => runtime.policy,
    durable: store.durable,
    ttl: store.ttl,
    keyring,
    metrics,
    logger,
    audit,
    clock,
  });
  let draining = false;

  function buildRuntime(policy: GatewayPolicy, previous?: PolicyRuntime): PolicyRuntime {
    // Keep caches and warm connections when their part of the policy did not change.
    const bearer =
      previous !== undefined && sameJson(previous.policy.auth.jwt, policy.auth.jwt)
        ? previous.bearer
        : createJwtVerifier({ config: policy.auth.jwt, metrics, logger, clock });
    const forwarder =
      previous !== undefined &&
      sameJson([...previous.policy.upstreams], [...policy.upstreams]) &&
      previous.policy.limits.maxQueued === policy.limits.maxQueued
        ? previous.forwarder
        : createForwarder({ upstreams: policy.upstreams, maxQueued: policy.limits.maxQueued, metrics, logger });
    return { policy, bearer, forwarder, trusted: createTrustList(policy.trustedProxies), inFlight: 0, retired: false };
  }

  function retire(old: PolicyRuntime): void {
    old.retired = true;
    if (old.inFlight === 0) void closeRuntimeParts(old);
  }

  async function closeRuntimeParts(old: PolicyRuntime): Promise<void> {
    if (old.bearer !== runtime.bearer) await old.bearer.close();
    if (old.forwarder !== runtime.forwarder) await old.forwarder.close();
  }

  function applyPolicy(policy: GatewayPolicy): void {
    if (!sameJson(policy.store, runtime.policy.store) || !sameJson(policy.keys, runtime.policy.keys)) {
      logger.warn({ event: 'config_reload_partial' }, 'store and keys settings change only on restart; keeping the running ones');
    }
    const previous = runtime;
    runtime = buildRuntime(policy, previous);
    retire(previous);
    metrics.configReloads.inc({ result: 'success' });
    metrics.configInfo.set(Math.floor(clock() / 1000));
    logger.info({ event: 'config_reloaded', routes: policy.routes.length }, 'policy reloaded');
  }

  const watcher =
    options.watch === false
      ? undefined
      : createPolicyWatcher({
          path: options.configPath,
          load: loadPolicyFile,
          onReload: applyPolicy,
          onError: reloadFailed,
        });

  function reloadFailed(error: Error): void {
    metrics.configReloads.inc({ result: 'failure' });
    logger.error({ event: 'config_reload_failed', error: error.message }, 'policy reload refused; keeping the previous policy');
  }

  function reloadNow(): ReloadResult {
    try {
      applyPolicy(loadPolicyFile(options.configPath));
      return { ok: true };
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      reloadFailed(failure);
      return { ok: false, error: failure.message };
    }
  }

  let inFlightTotal = 0;
  function enter(): PolicyRuntime {
    const current = runtime;
    current.inFlight++;
    inFlightTotal++;
    metrics.inFlight.inc();
    return current;
  }

  function leave(current: PolicyRuntime): void {
    current.inFlight--;
    inFlightTotal--;
    metrics.inFlight.dec();
    if (current.retired && current.inFlight === 0) void closeRuntimeParts(current);
    if (draining && inFlightTotal === 0) drained?.();
  }

  async function handleRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    const current = enter();
    let routeLabel = '(none)';
    let policyLabel = '(none)';
    res.once('close', () => {
      metrics.requests.inc({ route: routeLabel, policy: policyLabel, status: String(res.statusCode) });
      metrics.requestDuration.observe({ route: routeLabel }, (performance.now() - started) / 1000);
      leave(current);
    });
    if (draining) res.setHeader('connection', 'close');

    const canonical = canonicalizeRequest(req, {
      trustedProxies: current.trusted,
      maxTokenBytes: current.policy.auth.jwt.maxTokenBytes,
    });
    if (!canonical.ok) {
      routeLabel = '(rejected)';
      metrics.rejectedRequests.inc({ reason: canonical.reason });
      metrics.denials.inc({ code: canonical.problem.code });
      // An ambiguous request may hide a second one in its body: never read on from this socket.
      sendProblem(res, canonical.problem, undefined, { connection: 'close' });
      return;
    }
    const view = canonical.view;

    const prefix = current.policy.mfa.pathPrefix;
    if (view.path.startsWith(prefix) || view.path === prefix.slice(0, -1)) {
      routeLabel = '(gateway)';
      policyLabel = 'gateway';
      await handleGatewayEndpoint(current, req, res, view, view.path.slice(prefix.length));
      return;
    }

    const decision = await decide(view, { policy: current.policy, bearer: current.bearer, secondFactor: mfa });
    if (decision.route !== undefined) {
      routeLabel = decision.route.name;
      policyLabel = decision.route.policy;
    }
    if (decision.kind === 'deny') {
      refuse(req, res, decision, view);
      return;
    }
    const route = decision.route;
    if (route.upstream === undefined) {
      sendProblem(res, problem('forbidden', 'this route has no upstream'), view.requestId);
      return;
    }
    current.forwarder.forward(req, res, {
      upstream: route.upstream,
      view,
      ...(decision.identity !== undefined ? { identity: decision.identity } : {}),
      forwardAuthorization: route.forwardAuthorization,
      routeName: route.name,
      ...(decision.session !== undefined
        ? {
            responseHeaders: {
              'x-session-token': decision.session.token,
              'x-session-expires': String(decision.session.expiresAt),
            },
          }
        : {}),
    });
  }

  function refuse(req: IncomingMessage, res: ServerResponse, decision: Extract<Decision, { kind: 'deny' }>, view: RequestView): void {
    metrics.denials.inc({ code: decision.problem.code });
    logger.info(
      { event: 'denied', request_id: view.requestId, code: decision.problem.code, route: decision.route?.name, method: view.method, path: view.path, client: view.clientIp },
      'request denied',
    );
    // A refused request's body is never wanted; closing is cheaper and safer than draining it.
    sendProblem(res, decision.problem, view.requestId, HAS_BODY(req) ? { connection: 'close' } : undefined);
  }

  async function handleGatewayEndpoint(current: PolicyRuntime, req: IncomingMessage, res: ServerResponse, view: RequestView, subpath: string): Promise<void> {
    if (view.authorization === undefined) {
      sendProblem(res, problem('invalid_token', 'a bearer token is required'), view.requestId);
      return;
    }
    const verified = await current.bearer.verify(view.authorization);
    if (!verified.ok) {
      sendProblem(res, verified.problem, view.requestId);
      return;
    }
    await handleMfaEndpoint(mfa, { req, res, view, subpath, principal: verified.principal });
  }

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => socket.destroy());
    const current = runtime;
    const canonical = canonicalizeRequest(req, { trustedProxies: current.trusted, maxTokenBytes: current.policy.auth.jwt.maxTokenBytes });
    if (!canonical.ok) {
      metrics.rejectedRequests.inc({ reason: canonical.reason });
      writeProblemToSocket(socket, canonical.problem);
      return;
    }
    const view = canonical.view;
    const decision = await decide(view, { policy: current.policy, bearer: current.bearer, secondFactor: mfa });
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
    current.forwarder.upgrade(req, socket, head, {
      upstream: route.upstream,
      view,
      ...(decision.identity !== undefined ? { identity: decision.identity } : {}),
      forwardAuthorization: route.forwardAuthorization,
      routeName: route.name,
    });
  }

  const publicServer = createServer(publicServerOptions({ maxHeaderBytes: initialPolicy.limits.maxHeaderBytes }), (req, res) => {
    handleRequest(req, res).catch((error: unknown) => {
      logger.error({ event: 'internal_error', error: error instanceof Error ? error.message : String(error) }, 'request failed');
      sendProblem(res, problem('internal_error', 'the gateway could not handle this request'));
    });
  });
  publicServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    handleUpgrade(req, socket, head).catch(() => socket.destroy());
  });
  publicServer.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    metrics.rejectedRequests.inc({ reason: error.code === 'HPE_HEADER_OVERFLOW' ? 'header_overflow' : 'malformed' });
    if (!socket.writable) return socket.destroy();
    const status = error.code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`);
  });

  const listen = options.listen ?? initialPolicy.listen;
  const address = await listenOn(publicServer, listen.port, listen.host ?? initialPolicy.listen.host);

  let adminServer: Server | undefined;
  let adminAddress: AddressInfo | undefined;
  if (options.admin !== false) {
    const adminListen = options.admin ?? initialPolicy.admin;
    adminServer = createServer(
      createAdminHandler({
        metrics,
        policy: () => runtime.policy,
        poolStats: () => runtime.forwarder.poolStats(),
        ready: async () => {
          if (draining) return 'draining';
          await store.durable.ping();
          await store.ttl.ping();
          return undefined;
        },
        reload: reloadNow,
        adminToken: initialPolicy.admin.token,
        activeLocks: () => store.ttl.countPrefix('lock:'),
      }),
    );
    adminAddress = await listenOn(adminServer, adminListen.port, adminListen.host ?? initialPolicy.admin.host);
  }
  logger.info({ event: 'listening', address: `${address.address}:${address.port}`, admin: adminAddress && `${adminAddress.address}:${adminAddress.port}` }, 'mfa-gateway ready');

  let drained: (() => void) | undefined;
  let stopping: Promise<void> | undefined;

  async function stop(): Promise<void> {
    draining = true;
    watcher?.close();
    publicServer.close();
    publicServer.closeIdleConnections();
    if (inFlightTotal > 0) {
      await new Promise<void>((resolve) => {
        const deadline = setTimeout(resolve, runtime.policy.limits.drainTimeoutMs);
        drained = () => {
          clearTimeout(deadline);
          resolve();
        };
      });
    }
    publicServer.closeAllConnections();
    adminServer?.close();
    adminServer?.closeAllConnections();
    await runtime.forwarder.close();
    await runtime.bearer.close();
    await store.close();
    logger.info({ event: 'stopped' }, 'mfa-gateway stopped');
  }

  return {
    address,
    ...(adminAddress !== undefined ? { adminAddress } : {}),
    metrics,
    policy: () => runtime.policy,
    reload: reloadNow,
    stop: () => (stopping ??= stop()),
  };
}
