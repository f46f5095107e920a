import type { IncomingMessage } from 'node:http';

/** Whether a request announces a body (framing was already checked by the parser and canonicaliser). */
export function hasBody(req: IncomingMessage): boolean {
  const headers = req.headers;
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0');
}
