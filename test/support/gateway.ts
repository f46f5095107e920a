import { createLogger } from '../../src/log/logger.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/server/gateway.js';
import { createWorkspace, policyHead, type Workspace } from './fixture.js';
import { call } from './http.js';
import { startUpstream, type Upstream } from './upstream.js';

/**
 * A gateway in this process in front of a recording loopback upstream, on a test policy
 * (policyHead) with `body` after it (routes, and any other top-level section), admin listener on:
 * what a test that scrapes /metrics after real requests needs.
 */
export interface GatewayRig {
  readonly upstream: Upstream;
  readonly ws: Workspace;
  readonly gateway: Gateway;
  readonly port: number;
  /** The admin listener's /metrics text. */
  scrape(): Promise<string>;
  /** Writes the policy again with another body (then `gateway.reload()`). */
  rewrite(body: string): void;
  close(): Promise<void>;
}

export interface RigOptions extends Omit<GatewayOptions, 'configPath'> {
  /** Lines added under `mfa:` of the policy head, each indented by two spaces. */
  readonly mfa?: string;
}

const silent = createLogger({ level: 'silent' });

export async function startGatewayRig(body: string, options: RigOptions = {}): Promise<GatewayRig> {
  const { mfa, ...gatewayOptions } = options;
  const upstream = await startUpstream();
  const ws = createWorkspace();
  const base = policyHead(ws, upstream.url);
  const head = mfa === undefined ? base : base.replace('mfa:\n', `mfa:\n${mfa}`);
  ws.writePolicy(head + body);
  const gateway = await startGateway({ logger: silent, audit: silent, watch: false, ...gatewayOptions, configPath: ws.configPath });
  return {
    upstream,
    ws,
    gateway,
    port: gateway.address.port,
    scrape: async () => (await call(gateway.adminAddress!.port, 'GET', '/metrics')).text,
    rewrite: (next) => ws.writePolicy(head + next),
    async close() {
      await gateway.stop();
      await upstream.close();
      ws.remove();
    },
  };
}
