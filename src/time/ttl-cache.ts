import { LRUCache } from 'lru-cache';

/**
 * An LRU cache whose entries may expire, reading the time at each check. lru-cache's default
 * `ttlResolution` (1 ms) arms a `setTimeout` whenever it reads the time, to forget its cached "now":
 * one timer a millisecond under load, and on an idle gateway one extra event-loop wake-up a
 * millisecond after each lone request (bench/results/issue-11-progress.md, the one-connection rows).
 */
export function expiringCache<K extends {}, V extends {}>(max: number, ttlMs?: number): LRUCache<K, V> {
  return new LRUCache<K, V>({ max, ttlResolution: 0, ...(ttlMs !== undefined ? { ttl: ttlMs } : {}) });
}
