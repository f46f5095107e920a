#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runCommand } from './commands.js';
import { CLI_OPTIONS } from './options.js';

const { positionals, values } = parseArgs({ allowPositionals: true, strict: true, options: CLI_OPTIONS });

runCommand(positionals, values).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`mfa-gateway: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
