#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runCommand } from './commands.js';
import { describeFailure, describeParseError } from './failure.js';
import { CLI_OPTIONS, EXIT_USAGE } from './options.js';

function parseCommandLine() {
  try {
    return parseArgs({ allowPositionals: true, strict: true, options: CLI_OPTIONS });
  } catch (error) {
    // A usage mistake (an unknown option, a missing value): one line and exit 2, no stack trace, no usage dump.
    process.stderr.write(`mfa-gateway: ${describeParseError(error)}\n`);
    process.exit(EXIT_USAGE);
  }
}

const { positionals, values } = parseCommandLine();

runCommand(positionals, values).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    const failure = describeFailure(error);
    process.stderr.write(`mfa-gateway: ${failure.line}\n`);
    process.exitCode = failure.exitCode;
  },
);
