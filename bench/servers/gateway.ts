import { startGatewayModule } from '../lib/gateway-setup.js';

/**
 * The gateway started through its module API instead of the CLI (BENCH_GATEWAY_ENTRY=module):
 * the same startGateway() the CLI's `serve` calls, with the listeners the policy file names.
 */
const configPath = process.argv[2];
if (configPath === undefined) throw new Error('usage: gateway.js POLICY_FILE');
const gateway = await startGatewayModule(configPath);
process.on('SIGTERM', () => void gateway.stop().then(() => process.exit(0), () => process.exit(1)));
