import type { IncomingMessage, ServerResponse } from 'node:http';
import { handleForwardAuth } from '../authz/forward-auth.js';
import { problem } from '../errors/problems.js';
import { handleMfaEndpoint, serveSetupPage } from '../mfa/endpoints.js';
import type { RequestView } from '../request/view.js';
import type { GatewayCore, PolicyRuntime } from './core.js';
import { sendProblem } from './respond.js';

export type ReservedKind = 'forward_auth' | 'gateway';

export function reservedKind(subpath: string): ReservedKind {
  return subpath.startsWith('authz/') ? 'forward_auth' : 'gateway';
}

/**
 * Answers a request under the reserved prefix (`/.mfa/` by default), the same way for every front
 * door: forward-auth decisions, the static setup page, and the MFA endpoints behind a bearer check.
 * Nothing here is ever forwarded.
 */
export async function serveReservedPath(core: GatewayCore, runtime: PolicyRuntime, req: IncomingMessage, res: ServerResponse, view: RequestView, subpath: string): Promise<void> {
  if (reservedKind(subpath) === 'forward_auth') {
    await handleForwardAuth(core, runtime, req, res, view, subpath.slice('authz/'.length));
    return;
  }
  // The setup page is static; a browser opening it has no bearer yet (the page asks for one).
  if (subpath === 'setup' && view.method === 'GET') {
    serveSetupPage(res);
    return;
  }
  if (view.authorization === undefined) {
    sendProblem(res, problem('invalid_token', 'a bearer token is required'), view.requestId);
    return;
  }
  const verified = await runtime.bearer.verify(view.authorization);
  if (!verified.ok) {
    sendProblem(res, verified.problem, view.requestId);
    return;
  }
  await handleMfaEndpoint(core.mfa, { req, res, view, subpath, principal: verified.principal });
}
