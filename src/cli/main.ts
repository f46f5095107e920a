#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runCommand } from './commands.js';
import { CLI_OPTIONS } from './options.js';

function parseCommandLine() {
  try {
    return parseArgs({ allowPositionals: true, strict: true, options: CLI_OPTIONS });
  } catch (error) {
    // A usage mistake (an unknown option, a missing value): say so and exit 2, without a stack trace.
    process.stderr.write(`mfa-gateway: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(2);
  }
}

const { positionals, values } = parseCommandLine();

runCommand(positionals, values).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`mfa-gateway: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
