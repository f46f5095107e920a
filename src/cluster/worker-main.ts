/**
 * The program each worker of `serve --workers N` runs (cluster.setupPrimary's `exec`): argv[2] is
 * the policy file, SLOT_ENV the worker's slot. Not a command of its own: outside a cluster it refuses.
 */
import cluster from 'node:cluster';
import { boundHeapGrowth } from '../server/heap.js';
import { runWorker, SLOT_ENV } from './worker.js';

const configPath = process.argv[2];
const slot = Number(process.env[SLOT_ENV]);
if (!cluster.isWorker || configPath === undefined || !Number.isSafeInteger(slot) || slot < 1) {
  process.stderr.write('mfa-gateway: this is the worker program of `mfa-gateway serve --workers N`; run that instead\n');
  process.exit(2);
}

boundHeapGrowth();
runWorker({ configPath, slot }).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`mfa-gateway worker ${slot}: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
