import { request } from 'undici';
import { escapeFor, fillTemplate } from '../config/oob.js';
import type { SmsProviderConfig } from '../config/types.js';
import { DeliveryError, deliveryFailure } from './errors.js';
import type { OutboundMessage, Sender } from './types.js';

/**
 * SMS through an HTTP API. Two shapes: `http`, any provider that takes a POST of a templated body
 * with one credential header; and `twilio`, Twilio's Messages API (a form-encoded POST to
 * /2010-04-01/Accounts/{AccountSid}/Messages.json with basic auth), which many others copy. Any 2xx
 * is delivered; anything else, or no answer within the timeout, is a DeliveryError naming the
 * status only (a provider's body may quote the number or the text).
 */

interface HttpCall {
  readonly url: string;
  readonly headers: Record<string, string>;
  readonly body: string;
  readonly timeoutMs: number;
}

function describe(config: SmsProviderConfig, message: OutboundMessage): HttpCall {
  if (config.kind === 'http') {
    return {
      url: config.url,
      headers: { 'content-type': config.contentType, ...(config.authValue !== undefined ? { [config.authHeader.toLowerCase()]: config.authValue } : {}) },
      body: fillTemplate(config.body, { to: message.to, message: message.text }, escapeFor(config.contentType)),
      timeoutMs: config.timeoutMs,
    };
  }
  const form = new URLSearchParams({ To: message.to, ...(config.from !== undefined ? { From: config.from } : { MessagingServiceSid: config.messagingServiceSid ?? '' }), Body: message.text });
  return {
    url: `${config.apiUrl}/2010-04-01/Accounts/${config.accountSid}/Messages.json`,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Basic ${Buffer.from(`${config.accountSid}:${config.authToken}`, 'utf8').toString('base64')}`,
    },
    body: form.toString(),
    timeoutMs: config.timeoutMs,
  };
}

export function createSmsSender(config: SmsProviderConfig): Sender {
  return {
    async send(message) {
      const call = describe(config, message);
      let status: number;
      try {
        const answer = await request(call.url, { method: 'POST', headers: call.headers, body: call.body, signal: AbortSignal.timeout(call.timeoutMs) });
        status = answer.statusCode;
        await answer.body.dump();
      } catch (error) {
        throw deliveryFailure('the request to the SMS provider', error);
      }
      if (status < 200 || status > 299) throw new DeliveryError('ERR_DELIVERY_FAILED', `the SMS provider answered ${status}`);
    },
  };
}
