import { GatewayError } from '../errors/gateway-error.js';

/** The reason given to undici when the gateway aborts an upstream request because its client left. */
export class ClientAbortedError extends GatewayError<'ERR_FORWARDER_CLIENT_ABORTED'> {
  static override readonly codes = ['ERR_FORWARDER_CLIENT_ABORTED'] as const;

  constructor() {
    super('ERR_FORWARDER_CLIENT_ABORTED', 'client closed the connection');
  }
}
