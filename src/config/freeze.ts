/**
 * Deep freezing for the validated policy. Object.freeze stops property writes but not a Map's
 * set() or a URL's setters, so those get read-only stand-ins: a policy shared by every request in
 * flight must not change under them.
 */

/** A Map whose mutators throw. Still a Map (instanceof, spread, iteration all work). */
export class FrozenMap<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]>) {
    super();
    for (const [key, value] of entries) Map.prototype.set.call(this, key, value);
    Object.freeze(this);
  }
  override set(): this {
    throw new TypeError('this map is frozen');
  }
  override delete(): boolean {
    throw new TypeError('this map is frozen');
  }
  override clear(): void {
    throw new TypeError('this map is frozen');
  }
}

/** A Set whose mutators throw. */
export class FrozenSet<T> extends Set<T> {
  constructor(values: Iterable<T>) {
    super();
    for (const value of values) Set.prototype.add.call(this, value);
    Object.freeze(this);
  }
  override add(): this {
    throw new TypeError('this set is frozen');
  }
  override delete(): boolean {
    throw new TypeError('this set is frozen');
  }
  override clear(): void {
    throw new TypeError('this set is frozen');
  }
}

const URL_SETTERS = ['href', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash'] as const;

/** A URL whose setters throw in strict mode and whose searchParams is a detached copy. */
export function readonlyUrl(url: URL): URL {
  for (const name of URL_SETTERS) {
    const getter = Object.getOwnPropertyDescriptor(URL.prototype, name)?.get;
    if (getter === undefined) continue;
    // An own getter without a setter shadows the prototype's accessor; assignment then throws.
    Object.defineProperty(url, name, { get: () => getter.call(url) as string, enumerable: false, configurable: false });
  }
  Object.defineProperty(url, 'searchParams', { get: () => new URLSearchParams(url.search), enumerable: false, configurable: false });
  return Object.freeze(url);
}

/**
 * Freezes plain objects and arrays recursively, and the values held by maps and sets. A plain Map,
 * Set or URL would stay mutable under Object.freeze: meeting one is the caller's bug, so it throws
 * rather than hand out a policy that only looks frozen.
 */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null) return value;
  if (value instanceof URL) {
    if (!Object.isFrozen(value)) throw new TypeError('deepFreeze met a URL not made read-only by readonlyUrl');
    return value;
  }
  if (value instanceof Map) {
    if (!(value instanceof FrozenMap)) throw new TypeError('deepFreeze met a Map that is not a FrozenMap');
    for (const entry of value.values()) deepFreeze(entry);
  } else if (value instanceof Set) {
    if (!(value instanceof FrozenSet)) throw new TypeError('deepFreeze met a Set that is not a FrozenSet');
    for (const entry of value.values()) deepFreeze(entry);
  } else if (!(value instanceof RegExp)) {
    for (const key of Reflect.ownKeys(value)) deepFreeze((value as Record<string | symbol, unknown>)[key]);
  }
  return Object.freeze(value);
}
