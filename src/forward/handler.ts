import type { ServerResponse } from 'node:http';
import type { Dispatcher, Pool } from 'undici';
import type { UpstreamConfig } from '../config/types.js';
import type { Identity } from '../decision/types.js';
import { problem } from '../errors/problems.js';
import { sendProblem } from '../http/respond.js';
import type { Logger } from '../log/logger.js';
import type { CounterCell } from '../metrics/cells.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RequestView } from '../request/view.js';
import type { Clock } from '../time/clock.js';
import { filterResponseHeaders } from '../contract/headers.js';
import type { CloseWatcher } from '../http/closed.js';
import { ClientAbortedError } from './errors.js';
import { retryDelay } from './retry.js';

/**
 * One forwarded request as an undici dispatch handler (steps 4–8 of the order in forwarder.ts),
 * and the per-upstream state the forwarder shares with it.
 */

export type UpstreamOutcome = 'ok' | 'unavailable' | 'timeout' | 'reset' | 'client_abort' | 'overloaded';
export const OUTCOMES: readonly UpstreamOutcome[] = ['ok', 'unavailable', 'timeout', 'reset', 'client_abort', 'overloaded'];

export interface ForwardTarget {
  readonly upstream: string;
  readonly view: RequestView;
  readonly identity?: Identity | undefined;
  readonly forwardAuthorization: boolean;
  /** For logs only. */
  readonly routeName: string;
  /** The policy's `untrusted_peer_headers`, for the header contract. */
  readonly untrustedPeerHeaders: ReadonlySet<string>;
  /** Lower-case names; added to the client's response (e.g. x-session-token), never sent upstream. */
  readonly responseHeaders?: Readonly<Record<string, string>> | undefined;
}


export interface UpstreamRuntime {
  readonly config: UpstreamConfig;
  readonly pool: Pool;
  /** Base path without trailing slash, '' for none. */
  readonly basePath: string;
  readonly host: string;
  /** Admission bound: requests running plus waiting (pipelining 1: one per connection). */
  readonly admit: number;
  /** Requests admitted and not yet finished. Counted here because `pool.stats` walks every client. */
  active: number;
  /** Outcome counters bound once (none without metrics), so the hot path allocates nothing. */
  readonly outcomes: Readonly<Record<UpstreamOutcome, CounterCell | undefined>>;
  readonly retryLabels: { readonly upstream: string };
}

export interface Shared {
  readonly metrics: Metrics | undefined;
  readonly logger: Logger | undefined;
  readonly clock: Clock;
  readonly random: () => number;
}

export const kForward = Symbol('mfa-gateway.forward');
export type TrackedResponse = ServerResponse & { [kForward]?: ForwardHandler };

// Shared by every request: `this` is the response, the handler hangs off it.
function onResponseDrain(this: TrackedResponse): void {
  this[kForward]?.drained();
}
function retryNow(handler: ForwardHandler): void {
  handler.retryFired();
}

/**
 * Moves headers set earlier with `res.setHeader` (e.g. `connection: close` while draining, the TLS
 * listener's `strict-transport-security`) into the flat list, replacing the upstream's headers of
 * the same name: the gateway's word wins. Node's writeHead merges an array through setHeader,
 * which would fold repeated `set-cookie` headers into the last one.
 */
function takePresetHeaders(res: ServerResponse, headers: string[]): void {
  const names = res.getHeaderNames();
  if (names.length === 0) return;
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (names.includes(headers[i]!.toLowerCase())) headers.splice(i, 2);
  }
  for (const name of names) {
    const value = res.getHeader(name);
    res.removeHeader(name);
    if (Array.isArray(value)) for (const item of value) headers.push(name, item);
    else if (value !== undefined) headers.push(name, String(value));
  }
}

const TIMEOUT_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT']);

/** One forwarded request, as an undici dispatch handler (undici's native handler form: no wrapper per request). */
export class ForwardHandler implements Dispatcher.DispatchHandler, CloseWatcher {
  private abortUpstream: ((err?: Error) => void) | undefined = undefined;
  private resume: (() => void) | undefined = undefined;
  private written = false;
  private responding = false;
  private done = false;
  private clientGone = false;
  private drainListening = false;
  private retries = 0;
  private retryTimer: NodeJS.Timeout | undefined = undefined;
  private readonly deadline: number;

  constructor(
    private readonly shared: Shared,
    private readonly up: UpstreamRuntime,
    private readonly res: TrackedResponse,
    private readonly opts: Dispatcher.DispatchOptions,
    private readonly withBody: boolean,
    private readonly target: ForwardTarget,
  ) {
    // Only a retryable request needs the clock.
    this.deadline = up.config.retries.max > 0 && !withBody ? shared.clock() + up.config.timeoutMs : 0;
  }

  start(): void {
    this.up.pool.dispatch(this.opts, this);
  }

  onConnect(abort: (err?: Error) => void): void {
    // undici calls this just before writing on a socket: from now on bytes may reach the upstream.
    this.written = true;
    if (this.clientGone) {
      abort(new ClientAbortedError());
      return;
    }
    this.abortUpstream = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx informational: Node already answered the client's 100-continue itself.
    if (statusCode < 200) return true;
    const headers = filterResponseHeaders(rawHeaders, this.target.view.requestId, this.target.responseHeaders);
    const res = this.res;
    try {
      takePresetHeaders(res, headers);
      if (statusText === '') res.writeHead(statusCode, headers);
      else res.writeHead(statusCode, statusText, headers);
    } catch (error) {
      // A header or reason phrase Node refuses to write (bad characters): fail closed with a 502.
      this.shared.logger?.warn(
        { event: 'upstream_bad_response', request_id: this.target.view.requestId, upstream: this.up.config.name, error: (error as NodeJS.ErrnoException).code },
        'upstream response headers could not be relayed',
      );
      this.abortUpstream?.(error as Error);
      return false;
    }
    this.responding = true;
    this.resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    if (!this.drainListening) {
      this.drainListening = true;
      this.res.on('drain', onResponseDrain);
    }
    return false;
  }

  onComplete(): void {
    this.res.end();
    this.finish('ok');
  }

  onError(error: Error): void {
    if (this.done) return;
    const res = this.res;
    // The client may have left before its 'close' event reached us (e.g. its request body errored first).
    if (this.clientGone || res.destroyed) {
      this.clientGone = true;
      this.finish('client_abort');
      return;
    }
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown';
    const logger = this.shared.logger;
    const requestId = this.target.view.requestId;
    if (this.responding) {
      // Part of the response is with the client: a problem appended now would corrupt it. Cut instead.
      res.destroy();
      logger?.warn({ event: 'upstream_reset', request_id: requestId, upstream: this.up.config.name, route: this.target.routeName, error: code }, 'upstream failed mid-response');
      this.finish('reset');
      return;
    }
    if (this.deadline !== 0) {
      const now = this.shared.clock();
      const delay = retryDelay(
        this.up.config.retries,
        { method: this.opts.method, hasBody: this.withBody, retriesDone: this.retries, written: this.written, now, deadline: this.deadline },
        error,
        this.shared.random(),
      );
      if (delay !== undefined) {
        this.retries++;
        this.written = false;
        this.abortUpstream = undefined;
        // The next attempt gets what is left of the budget, not a fresh timeout.
        this.opts.headersTimeout = Math.max(1, this.deadline - now - delay);
        this.shared.metrics?.upstreamRetries.inc(this.up.retryLabels);
        this.retryTimer = setTimeout(retryNow, delay, this);
        return;
      }
    }
    const timedOut = TIMEOUT_CODES.has(code);
    logger?.warn(
      { event: 'upstream_failed', request_id: requestId, upstream: this.up.config.name, route: this.target.routeName, error: code, retries: this.retries },
      timedOut ? 'upstream timed out' : 'upstream unavailable',
    );
    sendProblem(
      res,
      timedOut ? problem('upstream_timeout', 'the upstream did not answer in time') : problem('upstream_unavailable', 'the upstream could not be reached'),
      requestId,
      this.target.responseHeaders,
      this.withBody,
    );
    this.finish(timedOut ? 'timeout' : 'unavailable');
  }

  retryFired(): void {
    this.retryTimer = undefined;
    this.start();
  }

  /** The client's response closed: finished, or the client left (then the upstream request is aborted). */
  responseClosed(): void {
    if (this.done) return;
    this.clientGone = true;
    if (this.retryTimer !== undefined) {
      clearTimeout(this.retryTimer);
      this.retryTimer = undefined;
      this.finish('client_abort');
      return;
    }
    // Not yet on a socket: onConnect aborts it when it gets there.
    this.abortUpstream?.(new ClientAbortedError());
  }

  drained(): void {
    this.resume?.();
  }

  private finish(outcome: UpstreamOutcome): void {
    if (this.done) return;
    this.done = true;
    this.up.active--;
    this.up.outcomes[outcome]?.inc();
  }
}
