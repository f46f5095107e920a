/**
 * `mfa-gateway healthcheck`: GET /healthz on the admin listener the policy file names, for a
 * container's HEALTHCHECK (no curl or wget in the image, and no port written twice).
 */
import type { GatewayPolicy } from '../config/types.js';

/** Well under Docker's HEALTHCHECK --timeout (3s in the Dockerfile), so the probe reports its own answer. */
export const HEALTHCHECK_TIMEOUT_MS = 2000;

/** Where a local probe reaches a listener bound to `host`: a wildcard bind is reached on loopback. */
export function probeHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::' || host === '[::]') return '[::1]';
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

export interface HealthResult {
  readonly healthy: boolean;
  /** One line: what was asked and what answered. */
  readonly line: string;
}

export async function checkHealth(policy: GatewayPolicy, timeoutMs = HEALTHCHECK_TIMEOUT_MS): Promise<HealthResult> {
  const { host, port } = policy.admin;
  if (port === 0) return { healthy: false, line: 'admin.port is 0 (a port chosen at start): set a fixed admin port for the healthcheck to reach' };
  const url = `http://${probeHost(host)}:${port}/healthz`;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
    const body = await response.text();
    if (response.status === 200) return { healthy: true, line: `${url}: 200 ${body.trim()}` };
    return { healthy: false, line: `${url}: unhealthy, answered ${response.status}` };
  } catch (error) {
    const cause = (error as { cause?: { code?: unknown } }).cause?.code;
    const reason = error instanceof Error && error.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : typeof cause === 'string' ? cause : error instanceof Error ? error.message : String(error);
    return { healthy: false, line: `${url}: unreachable (${reason})` };
  }
}
