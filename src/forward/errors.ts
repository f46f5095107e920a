import { GatewayError, OptionError } from '../errors/gateway-error.js';

/** A bad option given to `createForwarder`; thrown at creation, never per request. `option` names it. */
export class ForwarderConfigError extends OptionError<'ERR_FORWARDER_INVALID_OPTION'> {
  static override readonly codes = ['ERR_FORWARDER_INVALID_OPTION'] as const;
}

/** The reason given to undici when the gateway aborts an upstream request because its client left. */
export class ClientAbortedError extends GatewayError<'ERR_FORWARDER_CLIENT_ABORTED'> {
  static override readonly codes = ['ERR_FORWARDER_CLIENT_ABORTED'] as const;

  constructor() {
    super('ERR_FORWARDER_CLIENT_ABORTED', 'client closed the connection');
  }
}
