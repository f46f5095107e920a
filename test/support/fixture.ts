import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TEST_AUDIENCE, TEST_HMAC_SECRET, TEST_ISSUER } from './tokens.js';

/** Writes a key file holding one fresh primary key `kid`, created on `created` (YYYY-MM-DD). */
export function writeKeyFile(path: string, kid = 'k1', created = '2026-01-01'): void {
  writeFileSync(path, `${kid} ${randomBytes(32).toString('base64')} ${created} primary\n`, { mode: 0o600 });
}

export interface Workspace {
  readonly dir: string;
  readonly configPath: string;
  readonly keyFile: string;
  writePolicy(yaml: string): void;
  remove(): void;
}

export interface WorkspaceOptions {
  /** Creation date of the key (YYYY-MM-DD); not after the clock the workspace is used with. Default 2026-11-01. */
  readonly keyCreated?: string;
}

/** A temp dir with a key file, ready for a policy file that points at it. */
export function createWorkspace(options: WorkspaceOptions = {}): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-test-'));
  const keyFile = join(dir, 'keys');
  writeKeyFile(keyFile, 'k1', options.keyCreated ?? '2026-11-01');
  const configPath = join(dir, 'gateway.yaml');
  return {
    dir,
    configPath,
    keyFile,
    writePolicy: (yaml) => writeFileSync(configPath, yaml),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The common head of a test policy: the test HS256 issuer (see tokens.ts), SQLite in the workspace, one upstream. */
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
