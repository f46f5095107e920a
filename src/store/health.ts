import { StoreError } from './errors.js';

/**
 * Whether each store backend answers, so the gateway fails closed at once instead of after a
 * timeout per request: a backend is marked down by the first operation that finds it unreachable
 * (ERR_STORE_UNAVAILABLE) or by a failed probe, and up again by the next probe that gets an answer.
 * While down, every call to it is refused at once with ERR_STORE_UNAVAILABLE, never queued.
 */

export type BackendName = 'sqlite' | 'postgres' | 'redis';

export interface BackendState {
  readonly backend: BackendName;
  readonly up: boolean;
  /** Why it is down (a store message: never a URL or a password). */
  readonly reason?: string;
}

export interface BackendWatch {
  readonly backend: BackendName;
  state(): BackendState;
  /** `target` with every method refused while down, and any outage it reports marking it down. */
  guard<T extends object>(target: T): T;
  close(): void;
}

export interface WatchOptions {
  /** How often a backend is probed (default 1 s), so an outage is seen even while nothing calls it. */
  readonly intervalMs?: number;
  readonly onChange?: (state: BackendState) => void;
}

export function isStoreUnavailable(error: unknown): boolean {
  return StoreError.is(error) && error.code === 'ERR_STORE_UNAVAILABLE';
}

export function watchBackend(backend: BackendName, ping: () => Promise<void>, options: WatchOptions = {}): BackendWatch {
  const intervalMs = options.intervalMs ?? 1_000;
  let current: BackendState = { backend, up: true };
  let probing = false;

  function set(next: BackendState): void {
    if (next.up === current.up && next.reason === current.reason) return;
    const changed = next.up !== current.up;
    current = next;
    if (changed) options.onChange?.(current);
  }

  function markDown(error: unknown): void {
    set({ backend, up: false, reason: error instanceof Error ? error.message : String(error) });
  }

  async function probe(): Promise<void> {
    if (probing) return;
    probing = true;
    try {
      await ping();
      set({ backend, up: true });
    } catch (error) {
      markDown(error);
    } finally {
      probing = false;
    }
  }

  const timer = setInterval(() => void probe(), intervalMs);
  timer.unref();

  return {
    backend,
    state: () => current,
    guard<T extends object>(target: T): T {
      // One wrapper per method, made on first use: no closure per call.
      const wrappers = new Map<PropertyKey, (...args: unknown[]) => unknown>();
      return new Proxy(target, {
        get(object, property, receiver) {
          const value: unknown = Reflect.get(object, property, receiver);
          if (typeof value !== 'function' || property === 'close') return value;
          let wrapper = wrappers.get(property);
          if (wrapper === undefined) {
            const method = value as (...a: unknown[]) => unknown;
            wrapper = (...args: unknown[]): unknown => {
              if (!current.up && property !== 'ping') {
                return Promise.reject(new StoreError('ERR_STORE_UNAVAILABLE', `the ${backend} store is unavailable: ${current.reason ?? 'no answer'}`));
              }
              const result: unknown = method.apply(object, args);
              if (result instanceof Promise) {
                return result.catch((error: unknown) => {
                  if (isStoreUnavailable(error)) markDown(error);
                  throw error;
                });
              }
              return result;
            };
            wrappers.set(property, wrapper);
          }
          return wrapper;
        },
      });
    },
    close() {
      clearInterval(timer);
    },
  };
}
