import { readFileSync } from 'node:fs';

/**
 * The labels of `mfa_gateway_build_info`: which build answers, for dashboards and for telling
 * replicas apart during a rollout. Each is checked against a plain shape, so whatever an
 * environment holds, a label is a version or a commit hash, or `unknown`.
 */
export interface BuildInfo {
  /** package.json's version. */
  readonly version: string;
  /** The Node.js version running it, without the `v`. */
  readonly node: string;
  /** The source commit, from MFA_GATEWAY_COMMIT (the image build sets it; see the Dockerfile). */
  readonly commit: string;
}

export const COMMIT_ENV = 'MFA_GATEWAY_COMMIT';
/** dist/src/metrics/ (and src/metrics/) are three levels below the package root, where package.json ships. */
const PACKAGE_JSON = new URL('../../../package.json', import.meta.url);
const VERSION = /^\d+\.\d+\.\d+(?:[-+][0-9A-Za-z.+-]{1,64})?$/;
const COMMIT = /^[0-9a-f]{7,40}$/;

function packageVersion(): string {
  try {
    const { version } = JSON.parse(readFileSync(PACKAGE_JSON, 'utf8')) as { version?: unknown };
    return typeof version === 'string' && VERSION.test(version) ? version : 'unknown';
  } catch {
    return 'unknown';
  }
}

export function readBuildInfo(env: NodeJS.ProcessEnv = process.env): BuildInfo {
  const commit = env[COMMIT_ENV]?.trim().toLowerCase();
  return { version: packageVersion(), node: process.versions.node, commit: commit !== undefined && COMMIT.test(commit) ? commit : 'unknown' };
}
