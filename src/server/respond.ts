import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { renderProblem, type Problem } from '../errors/problems.js';

/** Writes a problem+json answer unless the response already started (then the socket is cut). */
export function sendProblem(res: ServerResponse, p: Problem, requestId?: string, extraHeaders?: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const rendered = renderProblem(p, requestId);
  const headers: Record<string, string> = { ...rendered.headers, 'content-length': String(Buffer.byteLength(rendered.body)) };
  if (requestId !== undefined) headers['x-request-id'] = requestId;
  if (extraHeaders !== undefined) Object.assign(headers, extraHeaders);
  res.writeHead(rendered.status, headers);
  res.end(rendered.body);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    'content-length': String(Buffer.byteLength(text)),
    ...headers,
  });
  res.end(text);
}

/** For upgrade requests, where there is no ServerResponse: a complete HTTP/1.1 answer on the raw socket. */
export function writeProblemToSocket(socket: Duplex, p: Problem, requestId?: string): void {
  const rendered = renderProblem(p, requestId);
  const lines = [`HTTP/1.1 ${rendered.status} ${STATUS_CODES[rendered.status] ?? 'Error'}`];
  for (const [name, value] of Object.entries(rendered.headers)) lines.push(`${name}: ${value}`);
  if (requestId !== undefined) lines.push(`x-request-id: ${requestId}`);
  lines.push(`content-length: ${Buffer.byteLength(rendered.body)}`, 'connection: close', '', rendered.body);
  socket.end(lines.join('\r\n'));
}
