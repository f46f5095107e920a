import type { AddressInfo } from 'node:net';
import { simpleParser } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { eventually } from './wait.js';

/**
 * A real SMTP server on loopback that keeps every message it accepts, parsed (smtp-server +
 * mailparser): what the gateway's nodemailer transport talks to in the tests. Plain text only
 * (STARTTLS is off: smtp-server's built-in certificate has expired), which the gateway allows to a
 * loopback host with `security: none`.
 */

export interface ReceivedMail {
  /** The envelope: who the server was asked to deliver to, and from whom. */
  readonly rcptTo: readonly string[];
  readonly mailFrom: string;
  readonly from: string;
  readonly to: string;
  readonly subject: string;
  readonly text: string;
}

export interface Mailbox {
  readonly port: number;
  readonly messages: ReceivedMail[];
  /** The next message to arrive after `seen` messages (default: the ones already there), within `ms`. */
  next(seen?: number, ms?: number): Promise<ReceivedMail>;
  close(): Promise<void>;
}

/** The 6-digit code in a message the gateway sent. */
export function codeIn(text: string): string {
  const match = /\b(\d{6})\b/.exec(text);
  if (match === null) throw new Error('no 6-digit code in the message');
  return match[1]!;
}

export async function startMailbox(): Promise<Mailbox> {
  const messages: ReceivedMail[] = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onData(stream, session, callback) {
      simpleParser(stream).then(
        (mail) => {
          messages.push({
            rcptTo: session.envelope.rcptTo.map((r) => r.address),
            mailFrom: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
            from: mail.from?.text ?? '',
            to: Array.isArray(mail.to) ? mail.to.map((a) => a.text).join(', ') : (mail.to?.text ?? ''),
            subject: mail.subject ?? '',
            text: mail.text ?? '',
          });
          callback();
        },
        (error: Error) => callback(error),
      );
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return {
    port,
    messages,
    async next(seen = messages.length, ms = 5_000) {
      await eventually(() => messages.length > seen, ms);
      return messages[seen]!;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
