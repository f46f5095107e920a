const FORWARDER_CONFIG_ERROR = Symbol.for('mfa-gateway.ForwarderConfigError');

/** A bad option given to `createForwarder`; thrown at creation, never per request. `option` names it. */
export class ForwarderConfigError extends Error {
  readonly code = 'ERR_FORWARDER_CONFIG';
  readonly option: string;
  readonly [FORWARDER_CONFIG_ERROR] = true;

  constructor(option: string, message: string) {
    super(`${option}: ${message}`);
    this.name = 'ForwarderConfigError';
    this.option = option;
  }

  /** Works across copies of the package, where `instanceof` would not. */
  static is(value: unknown): value is ForwarderConfigError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[FORWARDER_CONFIG_ERROR] === true;
  }
}

/** The reason given to undici when the gateway aborts an upstream request because its client left. */
export class ClientAbortedError extends Error {
  readonly code = 'MFA_GATEWAY_CLIENT_ABORTED';

  constructor() {
    super('client closed the connection');
    this.name = 'ClientAbortedError';
  }
}
