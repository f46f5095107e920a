import { pino, type Logger, type DestinationStream } from 'pino';
import { stdoutLines } from './stdout.js';

export type { Logger };

/**
 * JSON logs. Values that could carry a credential are redacted by path as a second line of
 * defence; the first is that no code puts them in a log object at all. Without a destination the
 * lines go to the process's shared stdout, written once per event-loop turn (./stdout.ts).
 */
export function createLogger(options: { level?: string; name?: string; destination?: DestinationStream } = {}): Logger {
  return pino(
    {
      name: options.name ?? 'mfa-gateway',
      level: options.level ?? process.env.LOG_LEVEL ?? 'info',
      base: undefined,
      redact: {
        // `code` is not here: it names problem codes in our logs, and OTP codes are never logged.
        paths: ['authorization', 'headers.authorization', 'headers["x-mfa-token"]', 'headers["x-session-token"]', 'token', 'secret'],
        censor: '[redacted]',
      },
    },
    options.destination ?? stdoutLines(),
  );
}
