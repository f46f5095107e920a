/**
 * Header names looked up without hashing them. A name read off the wire is a new string on every
 * request, so a Map or Set must first hash all of its characters; grouped by length, a lookup
 * compares at most the few names of that length, and for most names there are none.
 */
export class NameTable<V> {
  readonly #byLength: ((readonly [string, V])[] | undefined)[] = [];

  constructor(entries: Iterable<readonly [string, V]>) {
    for (const [name, value] of entries) (this.#byLength[name.length] ??= []).push([name, value]);
  }

  /** The value of exactly `name` (no case folding: callers pass lower-case names); the first entry of a name wins. */
  get(name: string): V | undefined {
    const bucket = this.#byLength[name.length];
    if (bucket === undefined) return undefined;
    for (let i = 0; i < bucket.length; i++) if (bucket[i]![0] === name) return bucket[i]![1];
    return undefined;
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }
}

/** A NameTable that only answers whether a name is in it. */
export function nameSet(names: Iterable<string>): NameTable<true> {
  return new NameTable(Array.from(names, (name) => [name, true] as const));
}
