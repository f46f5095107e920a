import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { issueDevToken } from '../../src/auth/dev-token.js';

export const TEST_HMAC_SECRET = 'test-only-hmac-secret-of-at-least-32-characters';
export const TEST_ISSUER = 'http://localhost/test-issuer';
export const TEST_AUDIENCE = 'test-api';

export interface Workspace {
  readonly dir: string;
  readonly configPath: string;
  readonly keyFile: string;
  writePolicy(yaml: string): void;
  remove(): void;
}

/** A temp dir with a key file, ready for a policy file that points at it. */
export function createWorkspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-test-'));
  const keyFile = join(dir, 'keys');
  writeFileSync(keyFile, `k1 ${randomBytes(32).toString('base64')} 2026-11-01 primary\n`, { mode: 0o600 });
  const configPath = join(dir, 'gateway.yaml');
  return {
    dir,
    configPath,
    keyFile,
    writePolicy: (yaml) => writeFileSync(configPath, yaml),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The common head of a test policy: demo HS256 issuer, SQLite in the workspace, one upstream. */
export function policyHead(ws: Workspace, upstreamUrl: string, extra: { retries?: string; timeout?: string } = {}): string {
  return `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
auth:
  jwt:
    issuer: ${TEST_ISSUER}
    audience: ${TEST_AUDIENCE}
    algorithms: [HS256]
    hmac_secret: ${TEST_HMAC_SECRET}
mfa:
  issuer: Test Gateway
store: { kind: sqlite, path: ${join(ws.dir, 'mfa.db')} }
keys: { file: ${ws.keyFile} }
upstreams:
  app:
    url: ${upstreamUrl}
    timeout: ${extra.timeout ?? '2s'}
    retries: ${extra.retries ?? '{ max: 0 }'}
`;
}

export function token(subject: string, options: { scopes?: string[]; roles?: string[]; ttlSeconds?: number; amr?: string[]; authTime?: number; now?: number } = {}): Promise<string> {
  return issueDevToken({
    secret: TEST_HMAC_SECRET,
    issuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
    subject,
    scopes: options.scopes ?? [],
    roles: options.roles ?? [],
    ttlSeconds: options.ttlSeconds ?? 600,
    ...(options.amr !== undefined ? { amr: options.amr } : {}),
    ...(options.authTime !== undefined ? { authTime: options.authTime } : {}),
    ...(options.now !== undefined ? { now: options.now } : {}),
  });
}
