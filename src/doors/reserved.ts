import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Pass } from '../admission/admit.js';
import type { GatewayCore } from '../core/gateway-core.js';
import type { Allow, ReservedEndpoint } from '../decision/types.js';
import { problem } from '../errors/problems.js';
import { sendProblem } from '../http/respond.js';
import type { RequestView } from '../request/view.js';
import { serveForwardAuth } from './forward-auth/door.js';
import { handleMfaEndpoint } from './mfa-api/endpoints.js';
import { serveSetupAsset, serveSetupPage, type SetupAsset } from './mfa-api/setup-page.js';
import { serveSetupEndpoint } from '../setup/door.js';

/**
 * Serves a request the admission path decided is for the gateway itself (under the reserved
 * prefix), the same way for every door that can receive one: forward-auth questions, the static
 * setup page, and the MFA API with the principal the decision verified. Nothing here is forwarded.
 */
export async function serveReserved(
  core: GatewayCore,
  pass: Pass,
  req: IncomingMessage,
  res: ServerResponse,
  view: RequestView,
  decision: Allow & { readonly endpoint: ReservedEndpoint },
): Promise<void> {
  const { endpoint } = decision;
  switch (endpoint.kind) {
    case 'forward-auth':
      return serveForwardAuth(core, pass, req, res, view, endpoint.subpath);
    case 'setup':
      // The page, one of its own scripts, or its sign-in and session endpoints (decide() names only those).
      if (endpoint.subpath.startsWith('setup/')) {
        const { policy, bearer } = pass.runtime;
        return serveSetupEndpoint(core.setup, { req, res, view, subpath: endpoint.subpath.slice('setup/'.length), policy, bearer, mfa: core.mfa, logger: core.logger, now: pass.now });
      }
      return endpoint.subpath === 'setup' ? serveSetupPage(res) : serveSetupAsset(res, endpoint.subpath as SetupAsset);
    case 'mfa-api': {
      // The built-in route is `bearer`, so an allow carries its principal; without one, fail closed.
      const principal = decision.principal;
      if (principal === undefined) return sendProblem(res, problem('internal_error', 'the request could not be completed'), view.requestId);
      return handleMfaEndpoint(core.mfa, { req, res, view, subpath: endpoint.subpath, principal, policy: pass.runtime.policy, now: pass.now });
    }
  }
}
