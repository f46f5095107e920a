/**
 * The command line's options: the table main.ts parses with, and the values the commands read.
 * A module of its own so that commands.ts and offline.ts both depend on it rather than on each other.
 */
import type { ParseArgsConfig } from 'node:util';

export const CLI_OPTIONS = {
  // No default here: commands.ts falls back to $MFA_GATEWAY_CONFIG, then config/gateway.yaml.
  config: { type: 'string', short: 'c' },
  demo: { type: 'boolean', default: false },
  workers: { type: 'string' },
  sub: { type: 'string' },
  user: { type: 'string' },
  scope: { type: 'string', default: '' },
  roles: { type: 'string', default: '' },
  ttl: { type: 'string', default: '1h' },
  amr: { type: 'string' },
  type: { type: 'string', default: 'totp' },
  secret: { type: 'string' },
  counter: { type: 'string' },
  label: { type: 'string' },
  id: { type: 'string' },
  strict: { type: 'boolean', default: false },
  out: { type: 'string' },
  in: { type: 'string' },
  replace: { type: 'boolean', default: false },
  file: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

/** What the commands read from the parsed options (tests and callers may leave any of them out). */
export interface CliValues {
  readonly config?: string | undefined;
  readonly demo?: boolean | undefined;
  readonly workers?: string | undefined;
  readonly sub?: string | undefined;
  readonly user?: string | undefined;
  readonly scope?: string | undefined;
  readonly roles?: string | undefined;
  readonly ttl?: string | undefined;
  readonly amr?: string | undefined;
  readonly type?: string | undefined;
  readonly secret?: string | undefined;
  readonly counter?: string | undefined;
  readonly label?: string | undefined;
  readonly id?: string | undefined;
  readonly strict?: boolean | undefined;
  readonly out?: string | undefined;
  readonly in?: string | undefined;
  readonly replace?: boolean | undefined;
  readonly file?: string | undefined;
  readonly help?: boolean | undefined;
}

/**
 * A mistake in how the command was typed (unknown command, missing option or argument): main.ts
 * prints its one line and exits 2, as for an unknown flag. A plain Error, not a GatewayError: it
 * never leaves the command line, and a failed operation (exit 1) is told apart by its class.
 */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Exit codes: 0 done, 1 the operation failed, 2 the command line was wrong (`store status` adds 3). */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
