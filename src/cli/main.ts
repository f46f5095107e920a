#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { runCommand } from './commands.js';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  strict: true,
  options: {
    config: { type: 'string', short: 'c', default: 'config/gateway.yaml' },
    demo: { type: 'boolean', default: false },
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
    help: { type: 'boolean', short: 'h', default: false },
  },
});

runCommand(positionals, values).then(
  (code) => {
    if (code !== undefined) process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`mfa-gateway: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
