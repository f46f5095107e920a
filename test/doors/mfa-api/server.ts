import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { handleMfaEndpoint } from '../../../src/doors/mfa-api/endpoints.js';
import { renderProblem } from '../../../src/errors/problems.js';
import { canonicalizeRequest } from '../../../src/request/canonical.js';
import { createTrustList } from '../../../src/request/trust.js';
import { principal, type Rig } from '../../mfa/support.js';

/**
 * The MFA endpoints behind a real node:http server on loopback. The server does what the gateway
 * does before calling handleMfaEndpoint: canonicalise the request and turn the bearer into a
 * principal (here the bearer token is simply the subject: JWT verification is not what is under test).
 */
export function startServer(rig: Rig, prefix = '/.mfa/'): Promise<{ server: Server; port: number }> {
  const trusted = createTrustList([]);
  const server = createServer((req, res) => {
    const canonical = canonicalizeRequest(req, { trustedProxies: trusted, maxTokenBytes: 8192 });
    if (!canonical.ok) {
      const r = renderProblem(canonical.problem);
      res.writeHead(r.status, r.headers).end(r.body);
      return;
    }
    const view = canonical.view;
    const subject = /^(?:Bearer )?([A-Za-z0-9_-]+)$/.exec(view.authorization ?? '')?.[1];
    if (subject === undefined || !view.path.startsWith(prefix)) {
      res.writeHead(401).end();
      return;
    }
    void handleMfaEndpoint(rig.service, { req, res, view, subpath: view.path.slice(prefix.length), principal: principal(subject), policy: rig.policy, now: rig.clock() });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as AddressInfo).port })));
}
