import type { IncomingHttpHeaders } from 'node:http';
import assert from 'node:assert/strict';
import type { Reply } from '../support/http.js';

/** What every front door answers alike; shared by the forward-auth, nginx and middleware tests. */

/** The problem+json body every front door answers with, checked field by field. */
export function assertProblem(reply: Reply, status: number, code: string, detail?: string): void {
  assert.equal(reply.status, status, reply.text);
  assert.equal(reply.headers['content-type'], 'application/problem+json');
  assert.equal(reply.headers['cache-control'], 'no-store');
  const body = reply.json<Record<string, unknown>>();
  assert.equal(body.type, `https://mfa-gateway.dev/problems/${code}`);
  assert.equal(body.status, status);
  assert.equal(body.code, code);
  assert.equal(typeof body.title, 'string');
  if (detail !== undefined) assert.equal(body.detail, detail);
  if (reply.headers['x-request-id'] !== undefined) assert.equal(body.request_id, reply.headers['x-request-id']);
}

/** Names of the identity headers in `headers`, for "none were set" assertions. */
export function identityNames(headers: IncomingHttpHeaders): string[] {
  return Object.keys(headers).filter((name) => /^x[-_.]auth[-_.]/i.test(name));
}

export const MFA_CHALLENGE = 'Bearer error="insufficient_user_authentication", error_description="a second factor is required for this route", max_age=43200';
export const INVALID_CODE_CHALLENGE = 'Bearer error="insufficient_user_authentication", error_description="the second factor was not accepted", max_age=43200';

/** The three forward-auth entries. */
export type AskingDoor = 'auth-request' | 'forward-auth' | 'ext-authz';

export interface AuthQuestion {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
}

/** How each proxy family asks the gateway about `method path`: what nginx, Traefik/Caddy and Envoy send. */
export const AUTH_QUESTIONS: Readonly<Record<AskingDoor, (method: string, path: string) => AuthQuestion>> = {
  'auth-request': (method, path) => ({ method: 'GET', path: '/.mfa/authz/auth-request', headers: { 'x-original-method': method, 'x-original-url': path } }),
  'forward-auth': (method, path) => ({
    method: 'GET',
    path: '/.mfa/authz/forward-auth',
    headers: { 'x-forwarded-method': method, 'x-forwarded-uri': path, 'x-forwarded-host': 'api.test', 'x-forwarded-proto': 'http' },
  }),
  'ext-authz': (method, path) => ({ method, path: `/.mfa/authz/ext-authz${path}`, headers: {} }),
};

/** Identity and request-id headers of a forward-auth 200: what the proxy in front copies onto the backend request. */
export function copiedByProxy(reply: Reply): IncomingHttpHeaders | undefined {
  if (reply.status !== 200) return undefined;
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(reply.headers)) if (/^x-auth-|^x-request-id$/.test(name)) out[name] = value;
  return out;
}
