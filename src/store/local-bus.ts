import { StoreError } from './errors.js';
import { createListeners, encodeInvalidation, parseInvalidation, warnListenerError } from './invalidation.js';
import type { InvalidationBus } from './types.js';

/**
 * The bus of a single process (the embedded SQLite store): there are no other replicas to tell, so
 * a message goes to this process's own subscribers, synchronously, before `publish` resolves. It
 * checks messages exactly as the Redis bus does, so code tested against one behaves on the other.
 */

export interface LocalBusOptions {
  /** Where an exception thrown by a listener is reported (default: a process warning). */
  readonly onListenerError?: ((error: unknown) => void) | undefined;
}

export function createLocalBus(options: LocalBusOptions = {}): InvalidationBus {
  const onListenerError = options.onListenerError ?? warnListenerError;
  if (typeof onListenerError !== 'function') throw new StoreError('ERR_STORE_INVALID_OPTION', 'onListenerError must be a function');
  const listeners = createListeners(onListenerError);
  let closed = false;
  return {
    async publish(message) {
      if (closed) throw new StoreError('ERR_STORE_CLOSED', 'the bus is closed');
      // Refused exactly as the Redis bus refuses it; listeners get a copy, as a replica would.
      encodeInvalidation(message);
      listeners.deliver(parseInvalidation(message)!);
    },
    subscribe(listener) {
      if (closed) throw new StoreError('ERR_STORE_CLOSED', 'the bus is closed');
      return listeners.add(listener);
    },
    async close() {
      closed = true;
      listeners.clear();
    },
  };
}
