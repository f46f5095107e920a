import { join } from 'node:path';
import { loadPolicyFile } from '../../../src/config/load.js';
import { startGateway, type Gateway } from '../../../src/server/gateway.js';
import { runInviteCommand } from '../../../src/cli/invite.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../../support/clock.js';
import { createWorkspace, type Workspace } from '../../support/fixture.js';
import { freePort } from '../../support/http.js';
import { captureLog, type LogCapture } from '../../support/log.js';
import { startOidcProvider, type OidcProviderRig } from '../../support/oidc.js';
import { startUpstream, type Upstream } from '../../support/upstream.js';

/**
 * The setup page's sign-in, for real: an oidc-provider issuer on 127.0.0.1, the gateway on
 * http://localhost:<port> (another site than the issuer, as in life: the callback is a cross-site
 * navigation), its bearer checks pointed at the issuer's JWKS, a recording upstream behind a public
 * and an mfa route, SQLite, and a fake clock near real time (the issuer's tokens are judged by it).
 */

export const CLIENT_ID = 'mfa-setup-page';
export const AUDIENCE = 'orders-api';

export interface SigninRig {
  readonly idp: OidcProviderRig;
  readonly gateway: Gateway;
  readonly upstream: Upstream;
  readonly ws: Workspace;
  readonly clock: FakeClock;
  readonly log: LogCapture;
  readonly port: number;
  /** http://localhost:<port> */
  readonly origin: string;
  /** Writes the policy again (e.g. another audience) and reloads it. */
  rewrite(options: { audience?: string; oidc?: boolean }): void;
  /** `mfa-gateway factors invite --user SUB` against this gateway's store: the link it prints. */
  invite(subject: string): Promise<string>;
  close(): Promise<void>;
}

export async function startSigninRig(): Promise<SigninRig> {
  const port = await freePort();
  const origin = `http://localhost:${port}`;
  const idp = await startOidcProvider({ clientId: CLIENT_ID, redirectUri: `${origin}/.mfa/setup/callback`, audience: AUDIENCE, apiScopes: ['orders:read'] });
  const upstream = await startUpstream();
  const ws = createWorkspace();
  const clock = fakeClock(intoCurrentStep());
  const log = captureLog();
  const write = ({ audience = AUDIENCE, oidc = true }: { audience?: string; oidc?: boolean }) =>
    ws.writePolicy(`listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
auth:
  jwt:
    issuer: ${idp.issuer}
    audience: ${audience}
    jwks_uri: ${idp.jwksUri}
    algorithms: [RS256]
mfa:
  issuer: Test Gateway
  webauthn: { rp_id: localhost, origins: [${origin}] }
setup:
  public_url: ${origin}
${oidc ? `  oidc: { client_id: ${CLIENT_ID}, scopes: [openid, orders:read], resource: "${idp.resource}" }\n` : ''}store: { kind: sqlite, path: ${join(ws.dir, 'mfa.db')} }
keys: { file: ${ws.keyFile} }
upstreams:
  app: { url: ${upstream.url}, timeout: 2s, retries: { max: 0 } }
routes:
  - { name: open, match: { path_prefix: /open/ }, upstream: app, policy: public }
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
default: deny
`);
  write({});
  const gateway = await startGateway({ configPath: ws.configPath, logger: log.logger, audit: log.logger, clock, watch: false, admin: false });
  return {
    idp,
    gateway,
    upstream,
    ws,
    clock,
    log,
    port,
    origin,
    rewrite(options) {
      write(options);
      const reloaded = gateway.reload();
      if (!reloaded.ok) throw new Error(reloaded.error);
    },
    async invite(subject) {
      const printed: string[] = [];
      await runInviteCommand(loadPolicyFile(ws.configPath), subject, (line) => printed.push(line));
      return printed[0]!;
    },
    async close() {
      await gateway.stop();
      await idp.close();
      await upstream.close();
      ws.remove();
    },
  };
}
