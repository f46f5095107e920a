import type { Transporter } from 'nodemailer';
import type { SmtpConfig } from '../config/types.js';
import { deliveryFailure } from './errors.js';
import type { Sender } from './types.js';

/**
 * E-mail through SMTP with nodemailer. `starttls` refuses a server that does not offer STARTTLS
 * (requireTLS), `tls` speaks TLS from the first byte, `none` is plain text (the loader allows it only
 * to a loopback relay). No pooling: codes are few and a connection per message keeps nothing open.
 * nodemailer's own file and URL access is off: a message is only ever our text.
 */
export function createMailer(config: SmtpConfig, from: string): Sender {
  // nodemailer is loaded with the first message: a gateway that sends none does not carry it.
  let transport: Promise<Transporter> | undefined;
  const open = async (): Promise<Transporter> => (await import('nodemailer')).createTransport({
    host: config.host,
    port: config.port,
    secure: config.security === 'tls',
    requireTLS: config.security === 'starttls',
    ignoreTLS: config.security === 'none',
    ...(config.username !== undefined ? { auth: { user: config.username, pass: config.password ?? '' } } : {}),
    connectionTimeout: config.timeoutMs,
    greetingTimeout: config.timeoutMs,
    socketTimeout: config.timeoutMs,
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  });
  return {
    async send(message) {
      try {
        await (await (transport ??= open())).sendMail({ from, to: message.to, subject: message.subject, text: message.text });
      } catch (error) {
        // nodemailer's messages quote the recipient and the server's reply: only its code is kept.
        throw deliveryFailure('sending the e-mail', error);
      }
    },
  };
}
