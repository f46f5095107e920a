import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';

/** External programs some tests drive; the CI image installs all of them. */
export const OATHTOOL = '/usr/bin/oathtool';
export const NGINX = '/usr/sbin/nginx';
export const CADDY = '/usr/bin/caddy';
export const CHROMIUM = '/usr/bin/chromium';
export const PROMTOOL = '/usr/bin/promtool';

/**
 * Why a test that needs an external binary cannot run, or undefined when it can: pass it as the
 * `skip` option of a test or describe. The reason is printed, so a skip is never silent. Under
 * CI=true a missing binary is a failure, not a skip.
 */
export function missingBinary(path: string, debianPackage: string): string | undefined {
  if (existsSync(path)) return undefined;
  const reason = `${debianPackage} not found at ${path}`;
  if (process.env.CI === 'true') throw new Error(`${reason}, and CI=true: install it (apt-get install ${debianPackage})`);
  console.log(`# skipped: ${reason} (install the Debian package "${debianPackage}" to run this test)`);
  return reason;
}

/**
 * Resolves once `child` (a server such as nginx or Caddy) accepts connections on 127.0.0.1:port;
 * rejects with its `output()` if it exits first or `timeoutMs` passes.
 */
export function waitForListen(child: ChildProcess, name: string, port: number, output: () => string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    function attempt(): void {
      if (child.exitCode !== null) {
        reject(new Error(`${name} exited with ${child.exitCode}: ${output()}`));
        return;
      }
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`${name} did not listen on ${port}: ${output()}`));
        else setTimeout(attempt, 25);
      });
    }
    attempt();
  });
}
