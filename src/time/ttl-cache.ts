import { LRUCache } from 'lru-cache';

/** How often expired entries are dropped from every live expiring cache. */
const SWEEP_EVERY_MS = 10_000;
/** Entries one sweep turn drops before it lets the event loop run (the rest follow at once). */
const SWEEP_SLICE = 2_000;

interface Sweepable {
  /** Drops up to `budget` expired entries; true when more are due now. */
  sweep(budget: number): boolean;
}

// Weakly held: a cache its owner dropped (a retired verifier after a reload) is not kept alive here.
const live = new Set<WeakRef<Sweepable>>();
let sweeper: NodeJS.Timeout | undefined;

function register(cache: Sweepable): void {
  live.add(new WeakRef(cache));
  // Unref'd: it never keeps a process alive, and an idle gateway wakes for it once per interval.
  sweeper ??= setInterval(sweepExpiringCaches, SWEEP_EVERY_MS).unref();
}

/**
 * An LRU cache whose entries may expire, reading the time at each check. lru-cache's default
 * `ttlResolution` (1 ms) arms a `setTimeout` whenever it reads the time, to forget its cached "now":
 * one timer a millisecond under load, and on an idle gateway one extra event-loop wake-up a
 * millisecond after each lone request (bench/results/issue-11-progress.md, the one-connection rows).
 *
 * lru-cache forgets an expired entry only when it is read again or pushed out by newer ones, so
 * after a burst of users the cache would keep every one of them until `max` newer entries came.
 * Each write therefore notes when its entry expires, in write order, and a sweep every
 * SWEEP_EVERY_MS drops the entries whose time has come: work in proportion to what expired, never a
 * walk of the whole cache, and at most SWEEP_SLICE entries per event-loop turn. The notes are taken
 * in order, so an entry that expires before one written ahead of it (a token whose `exp` comes
 * before the cache's own bound) is freed with that one; reads still refuse it from its own time on.
 */
export class ExpiringCache<K extends {}, V extends {}> extends LRUCache<K, V> {
  // Parallel arrays (no object per write); `head` is the next one due.
  #dueAt: number[] = [];
  #dueKeys: K[] = [];
  #head = 0;

  constructor(max: number, ttlMs?: number) {
    super({ max, ttlResolution: 0, ...(ttlMs !== undefined ? { ttl: ttlMs } : {}) });
    register(this);
  }

  override set(key: K, value: V | undefined, options?: LRUCache.SetOptions<K, V, unknown>): this {
    super.set(key, value, options);
    const ttl = options?.ttl ?? this.ttl;
    // Bounded: past a few times `max` notes (one key rewritten very often), a write is left to
    // lru-cache's own expiry-on-read, as it was before sweeps existed.
    if (ttl > 0 && this.#dueKeys.length - this.#head < 4 * this.max) {
      this.#dueAt.push(performance.now() + ttl);
      this.#dueKeys.push(key);
    }
    return this;
  }

  sweep(budget: number): boolean {
    const now = performance.now();
    let head = this.#head;
    const end = Math.min(this.#dueKeys.length, head + budget);
    while (head < end && this.#dueAt[head]! <= now) {
      const key = this.#dueKeys[head]!;
      // A key written again since is live (has() is true) and keeps its place; an expired one goes.
      if (!this.has(key)) this.delete(key);
      head++;
    }
    const more = head === end && end < this.#dueKeys.length && this.#dueAt[head]! <= now;
    if (head > 1024 && head * 2 > this.#dueKeys.length) {
      this.#dueAt = this.#dueAt.slice(head);
      this.#dueKeys = this.#dueKeys.slice(head);
      head = 0;
    }
    this.#head = head;
    return more;
  }
}

/**
 * A bounded map whose entries all live `ttlMs` from their last write, for marks that are written
 * often and read only to skip work: no LRU bookkeeping and nothing allocated up front (an
 * lru-cache of 50,000 entries takes its arrays' 2 MB at once). A write moves its key to the back,
 * so the map is in expiry order and a sweep drops expired entries from the front.
 */
export class ExpiringMap<K, V> implements Sweepable {
  readonly #entries = new Map<K, { readonly at: number; readonly value: V }>();

  constructor(
    private readonly max: number,
    private readonly ttlMs: number,
  ) {
    register(this);
  }

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    const entry = this.#entries.get(key);
    return entry !== undefined && performance.now() - entry.at < this.ttlMs ? entry.value : undefined;
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, { at: performance.now(), value });
    if (this.#entries.size > this.max) this.#entries.delete(this.#entries.keys().next().value!);
  }

  sweep(budget: number): boolean {
    const now = performance.now();
    let dropped = 0;
    for (const [key, entry] of this.#entries) {
      if (now - entry.at < this.ttlMs) return false;
      if (dropped++ === budget) return true;
      this.#entries.delete(key);
    }
    return false;
  }
}

/** One sweep of every live expiring cache (the interval's work; tests call it directly). */
export function sweepExpiringCaches(): void {
  let more = false;
  for (const ref of live) {
    const cache = ref.deref();
    if (cache === undefined) live.delete(ref);
    else more = cache.sweep(SWEEP_SLICE) || more;
  }
  if (live.size === 0 && sweeper !== undefined) {
    clearInterval(sweeper);
    sweeper = undefined;
  }
  if (more) setImmediate(sweepExpiringCaches).unref();
}
