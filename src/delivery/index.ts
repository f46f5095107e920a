import type { ContactChannel } from '../store/types.js';
import type { MfaConfig } from '../config/types.js';
import { createMailer } from './mailer.js';
import { createSmsSender } from './sms.js';
import type { Sender } from './types.js';

export { DeliveryError } from './errors.js';
export type { OutboundMessage, Sender } from './types.js';

/** The transports of the policy a request pinned: one per settings object, so a reload builds new ones. */
export interface Delivery {
  /** The sender for `channel` under these settings, or undefined when the policy configures none. */
  sender(channel: ContactChannel, mfa: MfaConfig): Sender | undefined;
}

export function createDelivery(): Delivery {
  const built = new WeakMap<object, Sender>();
  const once = (settings: object, build: () => Sender): Sender => {
    let sender = built.get(settings);
    if (sender === undefined) built.set(settings, (sender = build()));
    return sender;
  };
  return {
    sender(channel, mfa) {
      if (channel === 'email') {
        const { smtp, from } = mfa.email;
        return smtp === undefined || from === undefined ? undefined : once(smtp, () => createMailer(smtp, from));
      }
      const provider = mfa.sms.provider;
      return provider === undefined ? undefined : once(provider, () => createSmsSender(provider));
    },
  };
}
