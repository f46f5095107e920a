import { startGateway } from '../../src/server/gateway.js';
import { READY_MARKER } from '../lib/proc.js';

/**
 * The gateway started through its module API instead of the CLI (BENCH_GATEWAY_ENTRY=module):
 * the same startGateway() the CLI's `serve` calls, with the listeners the policy file names.
 */
const configPath = process.argv[2];
if (configPath === undefined) throw new Error('usage: gateway.js POLICY_FILE');
const gateway = await startGateway({ configPath, watch: false });
process.stderr.write(`${READY_MARKER}${JSON.stringify({ port: gateway.address.port })}\n`);
process.on('SIGTERM', () => {
  gateway.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
});
