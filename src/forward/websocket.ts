import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { problem } from '../errors/problems.js';
import { responseHead, writeProblemToSocket } from '../http/respond.js';
import type { Logger } from '../log/logger.js';
import type { UpstreamOutcome } from './handler.js';
import { filterResponseHeaders } from '../contract/headers.js';

/**
 * WebSocket upgrades, tunnelled by hand over node:http's client rather than http-proxy: the parser
 * is Node's, every socket has an 'error' listener from the first tick (http-proxy #1468 crashed on
 * upstream errors without one), and each side's close destroys the other (http-proxy #1582 leaked
 * the upstream socket when the client aborted).
 */

export interface TunnelOptions {
  readonly url: URL;
  /** Base path + canonical path + query, byte for byte. */
  readonly path: string;
  /** From buildUpstreamHeaders(…, { websocket: true }). */
  readonly headers: string[];
  readonly requestId: string;
  /** Lower-case names; added to every answer the client gets (e.g. x-session-token), the 101 included. */
  readonly responseHeaders?: Readonly<Record<string, string>> | undefined;
  /** Until the upstream answers the upgrade (connect included). The tunnel itself has no idle limit. */
  readonly timeoutMs: number;
  readonly logger?: Logger | undefined;
  /** Called once, when the tunnel (or the attempt) is over. */
  onEnd(outcome: UpstreamOutcome): void;
}

export interface Tunnel {
  /** True once both sides are closed and onEnd ran. */
  readonly ended: boolean;
  destroy(): void;
}

/**
 * Carries undici's timeout code so the `upstream_failed` log reads as for a plain HTTP request. Not a
 * GatewayError: it never leaves this module and is answered as the `upstream_timeout` problem.
 */
class TunnelTimeoutError extends Error {
  readonly code = 'UND_ERR_HEADERS_TIMEOUT';
}

function closeBoth(ended: Duplex, other: Duplex): void {
  other.end(() => {
    ended.destroy();
    other.destroy();
  });
}

export function tunnelWebSocket(client: Duplex, head: Buffer, options: TunnelOptions): Tunnel {
  const { url, requestId, logger } = options;
  let ended = false;
  let wroteToClient = false;
  let established = false;
  let upstreamSocket: Duplex | undefined;
  let timer: NodeJS.Timeout | undefined;

  function end(outcome: UpstreamOutcome): void {
    if (ended) return;
    ended = true;
    clearTimeout(timer);
    options.onEnd(outcome);
  }

  // First, before anything can fail: a client error never crashes the process.
  client.on('error', onClientError);
  function onClientError(): void {
    client.destroy();
  }
  if (client.destroyed) {
    // The client left while the upgrade was being decided: do not even connect.
    end('client_abort');
    return { ended, destroy: () => undefined };
  }
  client.on('close', onClientClose);
  // The server socket is half-open capable: before the tunnel exists, a FIN from the client is an abort.
  client.once('end', () => {
    if (!established) client.destroy();
  });
  function onClientClose(): void {
    if (ended) return;
    // The client left: nothing of the upstream side may outlive it.
    upstreamRequest.destroy();
    upstreamSocket?.destroy();
    end(established ? 'ok' : 'client_abort');
  }

  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const secure = url.protocol === 'https:';
  const upstreamRequest: ClientRequest = (secure ? httpsRequest : httpRequest)({
    host: hostname,
    port: url.port === '' ? (secure ? 443 : 80) : Number(url.port),
    method: 'GET',
    path: options.path,
    headers: options.headers,
    setHost: false,
    agent: false,
  });
  timer = setTimeout(() => upstreamRequest.destroy(new TunnelTimeoutError('upstream did not answer the upgrade in time')), options.timeoutMs);

  upstreamRequest.on('error', (error: NodeJS.ErrnoException) => {
    upstreamSocket?.destroy();
    if (ended) return;
    const code = error.code ?? 'unknown';
    if (client.destroyed) {
      end('client_abort');
      return;
    }
    if (wroteToClient) {
      client.destroy();
      end('reset');
      return;
    }
    const timedOut = error instanceof TunnelTimeoutError;
    logger?.warn({ event: 'upstream_failed', request_id: requestId, error: code, upgrade: true }, timedOut ? 'upstream timed out' : 'upstream unavailable');
    wroteToClient = true;
    writeProblemToSocket(
      client,
      timedOut ? problem('upstream_timeout', 'the upstream did not answer in time') : problem('upstream_unavailable', 'the upstream could not be reached'),
      requestId,
      options.responseHeaders,
    );
    end(timedOut ? 'timeout' : 'unavailable');
  });

  // The upstream refused the upgrade with an ordinary answer: relay it, then close.
  upstreamRequest.on('response', (response: IncomingMessage) => {
    clearTimeout(timer);
    response.on('error', () => client.destroy());
    const headers = filterResponseHeaders(response.rawHeaders, requestId, options.responseHeaders);
    headers.push('connection', 'close');
    wroteToClient = true;
    client.write(responseHead(response.statusCode ?? 502, response.statusMessage, headers));
    // The body as Node decoded it; with Transfer-Encoding dropped, the close delimits it.
    response.pipe(client);
    response.on('end', () => end('ok'));
  });

  upstreamRequest.on('upgrade', (response: IncomingMessage, socket: Duplex, upstreamHead: Buffer) => {
    clearTimeout(timer);
    upstreamSocket = socket;
    socket.on('error', () => {
      socket.destroy();
      client.destroy();
    });
    socket.on('close', () => {
      client.destroy();
      end('ok');
    });
    if (client.destroyed || ended) {
      socket.destroy();
      return;
    }
    if (client instanceof Socket) client.setNoDelay(true);
    if (socket instanceof Socket) socket.setNoDelay(true);
    const headers = filterResponseHeaders(response.rawHeaders, requestId, options.responseHeaders, true);
    wroteToClient = true;
    established = true;
    client.write(responseHead(101, response.statusMessage, headers));
    if (upstreamHead.length > 0) client.write(upstreamHead);
    // Bytes the client sent right after its request head belong to the tunnel.
    if (head.length > 0) socket.write(head);
    // WebSocket has no use for half-open TCP: when one side ends, flush and close both, so a peer
    // that never closes its half cannot pin a socket here.
    socket.once('end', () => closeBoth(socket, client));
    client.once('end', () => closeBoth(client, socket));
    socket.pipe(client, { end: false });
    client.pipe(socket, { end: false });
  });

  upstreamRequest.end();

  return {
    get ended() {
      return ended;
    },
    destroy() {
      upstreamRequest.destroy();
      upstreamSocket?.destroy();
      client.destroy();
    },
  };
}
