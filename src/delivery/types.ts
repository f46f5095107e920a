/** One message with a code in it, ready to go: the channel's transport only carries it. */
export interface OutboundMessage {
  /** An e-mail address or an E.164 number, already checked: never logged. */
  readonly to: string;
  /** E-mail only. */
  readonly subject: string;
  readonly text: string;
}

/**
 * A way to send a code: SMTP, or an SMS provider. `send` resolves once the server or provider has
 * taken the message, and rejects with DeliveryError (ERR_DELIVERY_FAILED) otherwise.
 */
export interface Sender {
  send(message: OutboundMessage): Promise<void>;
}
