import { StoreError } from './errors.js';
import type { Invalidation } from './types.js';

/**
 * The wire form of an `Invalidation` and the check every bus applies on both ends: on publish (a
 * caller's mistake is an error) and on receipt (anything off the network that is not exactly one
 * of the known shapes is dropped, never handed to a cache).
 */

/** Longer than any subject or hash we would ever publish; a bigger message is not one of ours. */
export const MAX_INVALIDATION_BYTES = 4096;

const FIELD = { session: 'hash', sessions: 'subject', factors: 'subject' } as const;

/** The message if `value` is exactly a known invalidation (no extra fields), else undefined. */
export function parseInvalidation(value: unknown): Invalidation | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  const kind = record.kind;
  if (kind !== 'session' && kind !== 'sessions' && kind !== 'factors') return undefined;
  const field = FIELD[kind];
  const text = record[field];
  if (typeof text !== 'string' || text === '' || Object.keys(record).length !== 2) return undefined;
  return kind === 'session' ? { kind, hash: text } : { kind, subject: text };
}

/** The message as the bus sends it; throws ERR_STORE_INVALID_OPTION for anything `parseInvalidation` would drop. */
export function encodeInvalidation(message: Invalidation): string {
  const parsed = parseInvalidation(message);
  if (parsed === undefined) throw new StoreError('ERR_STORE_INVALID_OPTION', 'message must be { kind: "session", hash } or { kind: "sessions" | "factors", subject }');
  const text = JSON.stringify(parsed);
  if (Buffer.byteLength(text) > MAX_INVALIDATION_BYTES) throw new StoreError('ERR_STORE_INVALID_OPTION', `message must be at most ${MAX_INVALIDATION_BYTES} bytes as JSON`);
  return text;
}

/** The message in `text` as received, or undefined when it is malformed. */
export function decodeInvalidation(text: string): Invalidation | undefined {
  if (text.length > MAX_INVALIDATION_BYTES) return undefined;
  try {
    return parseInvalidation(JSON.parse(text) as unknown);
  } catch {
    return undefined;
  }
}

/** Listeners of one bus; a listener that throws is reported and never stops the others (nor the process). */
export function createListeners(onListenerError: (error: unknown) => void) {
  const listeners = new Set<(message: Invalidation) => void>();
  return {
    add(listener: (message: Invalidation) => void): () => void {
      if (typeof listener !== 'function') throw new StoreError('ERR_STORE_INVALID_OPTION', 'listener must be a function');
      // A wrapper per subscription, so subscribing the same function twice gives two independent subscriptions.
      const entry = (message: Invalidation) => listener(message);
      listeners.add(entry);
      return () => void listeners.delete(entry);
    },
    deliver(message: Invalidation): void {
      for (const listener of [...listeners]) {
        try {
          listener(message);
        } catch (error) {
          onListenerError(error);
        }
      }
    },
    clear(): void {
      listeners.clear();
    },
  };
}

/** Where a listener's exception goes when the caller named no place: a process warning, not a crash. */
export function warnListenerError(error: unknown): void {
  process.emitWarning(`an invalidation listener threw: ${error instanceof Error ? error.message : String(error)}`, 'MfaGatewayWarning');
}
