import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { renderProblem, type Problem } from '../errors/problems.js';

/**
 * The one place answers are written on node:http, for every front door and the gateway's own
 * endpoints: problem+json refusals, JSON bodies, empty answers, and problems on a raw socket
 * (upgrades have no ServerResponse).
 */

/**
 * Writes a problem+json answer. `headers` are added last (e.g. `x-session-token`, `allow`);
 * `close` asks the client to open a new connection, for when an unread body must never be parsed
 * as the next request. If the response already started, a problem cannot follow it: the socket is cut.
 */
export function sendProblem(res: ServerResponse, p: Problem, requestId?: string, headers?: Readonly<Record<string, string>>, close = false): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const rendered = renderProblem(p, requestId);
  const out: Record<string, string> = { ...rendered.headers, 'content-length': String(Buffer.byteLength(rendered.body)) };
  if (requestId !== undefined) out['x-request-id'] = requestId;
  if (headers !== undefined) Object.assign(out, headers);
  if (close) out.connection = 'close';
  res.writeHead(rendered.status, out);
  res.end(rendered.body);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Readonly<Record<string, string>>): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

export function sendEmpty(res: ServerResponse, status: number, headers?: Readonly<Record<string, string>>): void {
  res.writeHead(status, { 'cache-control': 'no-store', ...headers });
  res.end();
}

/** A status line and headers as HTTP/1.1 text, for answers written straight on a socket. */
export function responseHead(status: number, reason: string | undefined, headers: readonly string[]): string {
  let head = `HTTP/1.1 ${status} ${reason ?? STATUS_CODES[status] ?? ''}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return head + '\r\n';
}

/** For upgrade requests, where there is no ServerResponse: a complete problem answer on the raw socket, then close. */
export function writeProblemToSocket(socket: Duplex, p: Problem, requestId?: string, extra?: Readonly<Record<string, string>>): void {
  const rendered = renderProblem(p, requestId);
  const headers: string[] = [];
  for (const [name, value] of Object.entries(rendered.headers)) headers.push(name, value);
  if (requestId !== undefined) headers.push('x-request-id', requestId);
  if (extra !== undefined) for (const [name, value] of Object.entries(extra)) headers.push(name, value);
  headers.push('content-length', String(Buffer.byteLength(rendered.body)), 'connection', 'close');
  socket.end(responseHead(rendered.status, undefined, headers) + rendered.body);
}
