import { GatewayError } from '../errors/gateway-error.js';

const CODES = [
  // startCluster got a bad option (a worker count out of range, an empty config path).
  'ERR_CLUSTER_INVALID_OPTION',
  // A worker could not start (at startup, or its replacements kept failing): the primary gives up.
  'ERR_CLUSTER_WORKER_FAILED',
] as const;

export type ClusterErrorCode = (typeof CODES)[number];

/** What ends `serve --workers N` as a whole; the message names the worker and carries its own error. */
export class ClusterError extends GatewayError<ClusterErrorCode> {
  static override readonly codes = CODES;
}
