import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Pool } from 'undici';
import type { UpstreamConfig } from '../config/types.js';
import { buildUpstreamHeaders } from '../contract/headers.js';
import { problem } from '../errors/problems.js';
import { whenClosed } from '../http/closed.js';
import { sendProblem } from '../http/respond.js';
import type { Logger } from '../log/logger.js';
import type { CounterCell } from '../metrics/cells.js';
import type { Metrics } from '../metrics/metrics.js';
import { hasBody } from '../request/body.js';
import { systemClock, type Clock } from '../time/clock.js';
import { ForwardHandler, kForward, OUTCOMES, type ForwardTarget, type Shared, type TrackedResponse, type UpstreamOutcome, type UpstreamRuntime } from './handler.js';
import { tunnelWebSocket, type Tunnel } from './websocket.js';

export type { ForwardTarget, UpstreamOutcome } from './handler.js';

/*
 * The order in which the pieces of one forwarded request run:
 *
 *   forward()
 *     1. admission   upstream known? fewer than connections + maxQueued requests on its pool? else 503 overloaded
 *     2. headers     buildUpstreamHeaders: one pass over req.rawHeaders, gateway headers appended last
 *     3. dispatch    pool.dispatch(opts, handler): queue → connect (connect timeout) → write, body streamed from req
 *   ForwardHandler (undici calls it; one object per request, methods on the prototype, no closures)
 *     4. onConnect   the request is being written: from here a failure may have reached the upstream
 *     5. onHeaders   filterResponseHeaders → res.writeHead (headers timeout = upstream timeout)
 *     6. onData      res.write, pausing undici while the client is slow (backpressure)
 *     7. onComplete  res.end → outcome `ok`
 *     8. onError     client gone → `client_abort` (nothing written); response started → cut the client
 *                    socket (`reset`); else retryDelay() → wait and dispatch again, or answer 502/504
 *   res 'close' before the end (responseClosed) → abort the upstream request (it sees its socket close)
 */

export interface UpstreamPoolStats {
  readonly upstream: string;
  readonly connected: number;
  readonly free: number;
  readonly pending: number;
  readonly running: number;
}

export interface Forwarder {
  /** Never throws or rejects: every failure becomes a response (or a cut connection) here. */
  forward(req: IncomingMessage, res: ServerResponse, target: ForwardTarget): void;
  /** A WebSocket upgrade the gateway already allowed: tunnelled to the upstream. Never throws. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: ForwardTarget): void;
  /** Pool statistics per upstream; also refreshes the pool gauges when metrics were given. */
  poolStats(): UpstreamPoolStats[];
  /** Sets the pool gauges from `pool.stats` (call on scrape). */
  collectPoolGauges(): void;
  /** Lets in-flight requests finish (up to the longest upstream timeout), then closes every pool and tunnel. */
  close(): Promise<void>;
}

export interface ForwarderOptions {
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  /** Requests that may wait for a connection per pool before new ones get 503 at once. */
  readonly maxQueued: number;
  readonly metrics?: Metrics;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** [0, 1) source for retry jitter; tests pass a constant. */
  readonly random?: () => number;
}

/** The header contract for one request to `up` (src/contract/headers.ts). */
function upstreamHeaders(req: IncomingMessage, up: UpstreamRuntime, target: ForwardTarget, websocket: boolean): string[] {
  return buildUpstreamHeaders(req.rawHeaders, {
    view: target.view,
    identity: target.identity,
    forwardAuthorization: target.forwardAuthorization,
    upstreamHost: up.host,
    untrustedPeerHeaders: target.untrustedPeerHeaders,
    websocket,
  });
}

/**
 * The forwarding edge: one undici Pool per upstream origin, streaming both ways, failures turned
 * into problem responses. The upstream settings come from the compiled policy, which holds every
 * bound (src/config/bounds.ts, the schema, routes/compile.ts): they are trusted here, not checked
 * a second time with bounds of their own.
 */
export function createForwarder(options: ForwarderOptions): Forwarder {
  const shared: Shared = { metrics: options.metrics, logger: options.logger, clock: options.clock ?? systemClock, random: options.random ?? Math.random };
  const { metrics, logger } = shared;
  const upstreams = new Map<string, UpstreamRuntime>();
  for (const [key, config] of options.upstreams) {
    const pathname = config.url.pathname;
    // Bound once per upstream; each series exists from the start, so rates work from the first scrape.
    const outcomes = {} as Record<UpstreamOutcome, CounterCell | undefined>;
    for (const outcome of OUTCOMES) outcomes[outcome] = metrics?.upstreamRequests.cell(`${key}\0${outcome}`, { upstream: key, outcome });
    const retryLabels = Object.freeze({ upstream: key });
    metrics?.upstreamRetries.inc(retryLabels, 0);
    upstreams.set(key, {
      config,
      pool: new Pool(config.url.origin, {
        connections: config.pool.connections,
        pipelining: 1,
        keepAliveTimeout: config.pool.keepAliveMs,
        keepAliveMaxTimeout: config.pool.keepAliveMaxMs,
        headersTimeout: config.timeoutMs,
        bodyTimeout: config.timeoutMs,
        connect: { timeout: config.connectTimeoutMs },
      }),
      basePath: pathname.endsWith('/') ? pathname.slice(0, -1) : pathname,
      host: config.url.host,
      admit: config.pool.connections + options.maxQueued,
      active: 0,
      outcomes: Object.freeze(outcomes),
      retryLabels,
    });
  }
  const tunnels = new Set<Tunnel>();
  let closed = false;

  function refuseUnknown(res: ServerResponse, target: ForwardTarget): void {
    logger?.error({ event: 'upstream_unknown', request_id: target.view.requestId, upstream: target.upstream, route: target.routeName }, 'route names an upstream this forwarder does not have');
    sendProblem(res, problem('upstream_unavailable', 'the upstream could not be reached'), target.view.requestId, target.responseHeaders, false);
  }

  function forward(req: IncomingMessage, res: ServerResponse, target: ForwardTarget): void {
    try {
      const up = upstreams.get(target.upstream);
      if (up === undefined) {
        refuseUnknown(res, target);
        return;
      }
      const view = target.view;
      const withBody = hasBody(req);
      if (up.active >= up.admit) {
        up.outcomes.overloaded?.inc();
        sendProblem(res, problem('overloaded', 'the upstream is at capacity; retry shortly', { retryAfter: 1 }), view.requestId, target.responseHeaders, withBody);
        return;
      }
      if (res.destroyed) {
        // The client left while the request was being decided: nothing to send anywhere.
        up.outcomes.client_abort?.inc();
        return;
      }
      const headers = upstreamHeaders(req, up, target, false);
      up.active++;
      const handler = new ForwardHandler(
        shared,
        up,
        res,
        { path: up.basePath + view.path + view.search, method: view.method, headers, body: withBody ? req : null },
        withBody,
        target,
      );
      (res as TrackedResponse)[kForward] = handler;
      whenClosed(res, handler);
      handler.start();
    } catch (error) {
      // Nothing above should throw; if it does, the client still gets an answer and the process lives.
      logger?.error({ event: 'forward_failed', request_id: target.view.requestId, error: error instanceof Error ? error.name : 'unknown' }, 'forwarding failed');
      sendProblem(res, problem('internal_error', 'the gateway could not forward this request'), target.view.requestId, undefined, true);
    }
  }

  function upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, target: ForwardTarget): void {
    try {
      const up = upstreams.get(target.upstream);
      if (up === undefined || closed) {
        logger?.error({ event: 'upstream_unknown', request_id: target.view.requestId, upstream: target.upstream }, 'no upstream for this upgrade');
        socket.destroy();
        return;
      }
      const view = target.view;
      const headers = upstreamHeaders(req, up, target, true);
      const tunnel = tunnelWebSocket(socket, head, {
        url: up.config.url,
        path: up.basePath + view.path + view.search,
        headers,
        requestId: view.requestId,
        responseHeaders: target.responseHeaders,
        timeoutMs: up.config.timeoutMs,
        logger,
        onEnd(outcome) {
          tunnels.delete(tunnel);
          up.outcomes[outcome]?.inc();
        },
      });
      if (!tunnel.ended) tunnels.add(tunnel);
    } catch (error) {
      logger?.error({ event: 'upgrade_failed', request_id: target.view.requestId, error: error instanceof Error ? error.name : 'unknown' }, 'upgrade failed');
      socket.destroy();
    }
  }

  function poolStats(): UpstreamPoolStats[] {
    const stats: UpstreamPoolStats[] = [];
    for (const [name, up] of upstreams) {
      const s = up.pool.stats;
      const stat = { upstream: name, connected: s.connected, free: s.free, pending: s.pending, running: s.running };
      stats.push(stat);
      if (metrics !== undefined) {
        const labels = up.retryLabels;
        metrics.upstreamConnected.set(labels, stat.connected);
        metrics.upstreamFree.set(labels, stat.free);
        metrics.upstreamPending.set(labels, stat.pending);
        metrics.upstreamRunning.set(labels, stat.running);
      }
    }
    return stats;
  }

  async function close(): Promise<void> {
    closed = true;
    for (const tunnel of tunnels) tunnel.destroy();
    tunnels.clear();
    let graceMs = 0;
    for (const up of upstreams.values()) graceMs = Math.max(graceMs, up.config.timeoutMs);
    await Promise.all(
      [...upstreams.values()].map(async ({ pool }) => {
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<'late'>((resolve) => {
          timer = setTimeout(resolve, graceMs, 'late');
          timer.unref();
        });
        const result = await Promise.race([pool.close().then(() => 'closed' as const), grace]);
        clearTimeout(timer);
        // Requests still running past the longest timeout are cut, never waited on forever.
        if (result === 'late') await pool.destroy();
      }),
    );
  }

  return {
    forward,
    upgrade,
    poolStats,
    collectPoolGauges: () => void poolStats(),
    close,
  };
}
