import { createLogger, type Logger } from '../../src/log/logger.js';

/** A debug-level pino logger that keeps every line, to assert what logs contain (and never contain). */
export interface LogCapture {
  readonly logger: Logger;
  readonly lines: string[];
  /** All lines as one string. */
  text(): string;
  /** Each line parsed as JSON. */
  events(): Record<string, unknown>[];
}

export function captureLog(name = 'mfa-gateway'): LogCapture {
  const lines: string[] = [];
  const logger = createLogger({ name, level: 'debug', destination: { write: (line: string) => void lines.push(line) } });
  return {
    logger,
    lines,
    text: () => lines.join(''),
    events: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

/**
 * The secrets of `secrets` that occur in `text`. A code made only of digits counts only where it
 * stands alone: inside a longer run of digits (a log line's millisecond timestamp, an expiry) a
 * 6-digit code turns up by chance about once in a hundred test runs, and that is not a leak.
 */
export function secretsIn(text: string, secrets: readonly string[]): string[] {
  return secrets.filter((secret) => (/^\d+$/.test(secret) ? new RegExp(`(?<!\\d)${secret}(?!\\d)`).test(text) : text.includes(secret)));
}
