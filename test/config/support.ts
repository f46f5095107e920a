/** Policy texts for the config and routes tests. Line numbers in expectations count from HEAD's first line. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parsePolicy, PolicyError } from '../../src/config/load.js';
import type { GatewayPolicy } from '../../src/config/types.js';

export const SECRET = 'test-secret-of-at-least-32-characters!!';

/** Lines 1–8; routes start on line 9. */
export const HEAD = `auth:
  jwt:
    issuer: https://idp.test/
    audience: api
    hmac_secret: ${SECRET}
upstreams:
  app: { url: http://127.0.0.1:9000 }
routes:
`;

/** One route line to complete HEAD with (line 9). */
export const ROUTE = "  - { name: r0, match: { path: /x }, upstream: app, policy: public }\n";

export function parse(text: string, env: Record<string, string> = {}): GatewayPolicy {
  return parsePolicy(text, 't.yaml', '/nonexistent', { env });
}

/** The routes of HEAD plus the given route lines. */
export function routesOf(routeLines: string, topLevel = ''): GatewayPolicy['routes'] {
  return parse(topLevel + HEAD + routeLines).routes;
}

/** The issue lines a broken policy produces (the PolicyError message, one issue a line). */
export function issuesOf(text: string, options: { source?: string; baseDir?: string; env?: Record<string, string> } = {}): string[] {
  try {
    parsePolicy(text, options.source ?? 't.yaml', options.baseDir ?? '/nonexistent', { env: options.env ?? {} });
  } catch (error) {
    assert.ok(error instanceof PolicyError, `expected a PolicyError, got ${String(error)}`);
    assert.equal(error.code, 'ERR_POLICY_INVALID');
    assert.equal(error.issues.length, error.message.split('\n').length);
    return error.message.split('\n');
  }
  assert.fail('the policy was accepted');
}

/** A scratch directory, removed when the `using` scope ends. */
export function tempDir(): { dir: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-config-'));
  return { dir, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}
