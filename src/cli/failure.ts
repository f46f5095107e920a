/**
 * How the command line reports what went wrong: one line on stderr (never a stack trace) and an exit
 * code. Usage mistakes exit 2, failed operations 1.
 */
import { dirname, resolve } from 'node:path';
import { EXIT_FAILED, EXIT_USAGE, UsageError } from './options.js';

export interface Failure {
  readonly line: string;
  readonly exitCode: number;
}

/** The option a parseArgs error names (`'--confg'`, `'-c, --config <value>'`), as `--config`. */
function optionNamed(message: string): string | undefined {
  const quoted = /'([^']+)'/.exec(message)?.[1];
  if (quoted === undefined) return undefined;
  return /--[A-Za-z0-9-]+/.exec(quoted)?.[0] ?? quoted.split(/[ ,]/)[0];
}

/** node:util parseArgs' errors, reworded to one short line that says what to do. */
export function describeParseError(error: unknown): string {
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  const option = optionNamed(message);
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option ?? message}; mfa-gateway --help lists the options`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/does not take an argument/.test(message)) return `option ${option ?? message} takes no value`;
      // `--workers -1`: parseArgs will not take a value that looks like an option.
      if (/ambiguous/.test(message)) return `option ${option ?? message} needs a value; write one that starts with "-" as ${option ?? '--option'}=VALUE`;
      return `option ${option ?? message} needs a value`;
    default:
      return message.split('\n')[0]!;
  }
}

interface ErrnoLike {
  readonly code: string;
  readonly path?: string;
  readonly syscall?: string;
}

/** The first EACCES/EPERM in the error's cause chain (a wrapped fs error keeps the original as `cause`). */
function permissionProblem(error: unknown): ErrnoLike | undefined {
  for (let current = error, depth = 0; typeof current === 'object' && current !== null && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    const code = (current as { code?: unknown }).code;
    if (code === 'EACCES' || code === 'EPERM') return current as ErrnoLike;
  }
  return undefined;
}

/**
 * A data volume the running user cannot write (a root-owned Docker volume, typically): keep what
 * failed, and add the uid and the two fixes instead of a bare EACCES.
 */
function describePermission(problem: ErrnoLike, message: string): string {
  const uid = process.getuid?.() ?? 'unknown';
  const gid = process.getgid?.() ?? 'unknown';
  if (problem.path === undefined) return `${message} (permission denied for uid ${uid})`;
  // Creating or opening a file needs the directory that holds it; listing a directory needs itself.
  // Absolute, so the chown can be pasted whatever the working directory (the policy's paths may be relative).
  const directory = resolve(problem.syscall === 'scandir' || problem.syscall === 'opendir' ? problem.path : dirname(problem.path));
  return `${message}: uid ${uid} may not write ${directory}; make it theirs (chown -R ${uid}:${gid} ${directory}, as root or on the volume's directory on the host) or run the container with --user set to the volume's owner`;
}

export function describeFailure(error: unknown): Failure {
  const message = error instanceof Error ? error.message : String(error);
  if (error instanceof UsageError) return { line: message, exitCode: EXIT_USAGE };
  const permission = permissionProblem(error);
  // One line: a multi-line message (a policy file's issues) keeps its lines, but never a stack.
  return { line: permission === undefined ? message : describePermission(permission, message), exitCode: EXIT_FAILED };
}
