/**
 * A result that is known now, or one that needs I/O first (a store read, a JWKS fetch).
 *
 * The request path returns what it holds in memory (a cached token, a cached session, a route
 * without a rate limit) without a promise. Each `await` there cost a promise and a microtask hop per
 * stage, and a request decided from memory is now handed to the upstream pool inside the very
 * 'request' event that read it (test/doors/proxy: "handed to the upstream pool in the turn that
 * read it").
 */
export type Awaitable<T> = T | Promise<T>;

/** `next(value)` now when `value` is known, after it settles otherwise; a throw in `next` stays a throw (or a rejection). */
export function then<T, U>(value: Awaitable<T>, next: (value: T) => Awaitable<U>): Awaitable<U> {
  return value instanceof Promise ? value.then(next) : next(value);
}
