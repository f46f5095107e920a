/**
 * Errors of the policy loader. Every problem found in a policy file is collected as an issue with
 * its 1-based line, so one run of `check` shows them all.
 */
import { GatewayError, OptionError } from '../errors/gateway-error.js';

export interface PolicyIssue {
  /** 1-based line in the policy file; absent when no line applies (e.g. the file cannot be read). */
  readonly line?: number;
  /** Where in the file, in YAML key terms: `routes[2].match.path_regex`; '' for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/**
 * `routes[1].match` → `route 2 (routes[1]).match`: people count routes from 1, as `check`, `explain`
 * and the default route names (`route_2`) do; the YAML path stays for the editor.
 */
export function numberRoute(path: string): string {
  return path.replace(/^routes\[(\d+)\]/, (whole, index: string) => `route ${Number(index) + 1} (${whole})`);
}

/** Renders one issue as `file:line: path: message`, the shape editors and CI logs link to. */
export function formatIssue(source: string, issue: PolicyIssue): string {
  const where = issue.line === undefined ? source : `${source}:${issue.line}`;
  return issue.path === '' ? `${where}: ${issue.message}` : `${where}: ${numberRoute(issue.path)}: ${issue.message}`;
}

/** A policy file that cannot be used. The message lists every issue, one per line; none carries a secret. */
export class PolicyError extends GatewayError<'ERR_POLICY_INVALID'> {
  static override readonly codes = ['ERR_POLICY_INVALID'] as const;
  readonly source: string;
  readonly issues: readonly PolicyIssue[];

  constructor(source: string, issues: readonly PolicyIssue[]) {
    super('ERR_POLICY_INVALID', issues.map((issue) => formatIssue(source, issue)).join('\n'));
    this.source = source;
    this.issues = Object.freeze(issues.map((issue) => Object.freeze({ ...issue })));
  }
}

/** A bad option given to a config factory (e.g. the watcher); `option` names it. */
export class ConfigOptionError extends OptionError<'ERR_CONFIG_INVALID_OPTION'> {
  static override readonly codes = ['ERR_CONFIG_INVALID_OPTION'] as const;
}
