import type { ChildProcess } from 'node:child_process';
import { startGateway, type Gateway } from '../../../src/server/gateway.js';
import { createLogger } from '../../../src/log/logger.js';
import { waitForListen } from '../../support/binaries.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../../support/clock.js';
import { createWorkspace, policyHead } from '../../support/fixture.js';
import { freePort } from '../../support/http.js';
import { startUpstream, type Upstream } from '../../support/upstream.js';

/**
 * A real proxy (nginx, Caddy) running a shipped example in front of a real gateway on a fake
 * clock and a recording backend: what the nginx and Caddy tests stand up, once.
 */
export interface ProxyStack {
  readonly upstream: Upstream;
  readonly gateway: Gateway;
  readonly clock: FakeClock;
  /** Where the proxy listens: the port clients call. */
  readonly port: number;
  stop(): Promise<void>;
}

export interface ProxyLaunch {
  /** For messages: `nginx`, `caddy`. */
  readonly name: string;
  /** Writes the proxy's config under `dir` and starts it; `output()` is what it printed so far (for a failed start). */
  start(ports: { readonly listen: number; readonly gateway: number; readonly upstream: number }, dir: string): { readonly process: ChildProcess; output(): string };
  readonly startTimeoutMs: number;
}

const silent = createLogger({ level: 'silent' });

export async function startProxyStack(routes: string, launch: ProxyLaunch): Promise<ProxyStack> {
  const upstream = await startUpstream();
  const ws = createWorkspace();
  let gateway: Gateway | undefined;
  let proxy: ChildProcess | undefined;
  const stop = async (): Promise<void> => {
    if (proxy !== undefined && proxy.exitCode === null) {
      const running = proxy;
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      await exited;
    }
    await gateway?.stop();
    await upstream.close();
    ws.remove();
  };
  try {
    ws.writePolicy(policyHead(ws, upstream.url) + routes);
    const clock = fakeClock(intoCurrentStep());
    gateway = await startGateway({ configPath: ws.configPath, logger: silent, audit: silent, watch: false, admin: false, clock });
    const port = await freePort();
    const started = launch.start({ listen: port, gateway: gateway.address.port, upstream: upstream.port }, ws.dir);
    proxy = started.process;
    await waitForListen(proxy, launch.name, port, started.output, launch.startTimeoutMs);
    return { upstream, gateway, clock, port, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}
