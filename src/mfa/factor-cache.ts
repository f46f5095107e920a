import { LRUCache } from 'lru-cache';
import type { DurableStore, FactorRecord } from '../store/types.js';

/**
 * The active factors of recently seen subjects, so a code attempt does not list them from the
 * durable store every time. Every change is announced (see announce.ts): this replica forgets at
 * once, the others within the bus's delivery time; `ttlMs` bounds staleness when a message is lost.
 * Only used where there is a bus: without one, another process's change would go unseen for ttlMs.
 */
export interface FactorCache {
  active(subject: string, now: number): Promise<FactorRecord[]>;
  forget(subject: string): void;
}

export interface FactorCacheOptions {
  /** 0 turns the cache off. */
  readonly ttlMs?: number;
  readonly entries?: number;
}

export const FACTOR_CACHE_TTL_MS = 2_000;

export function createFactorCache(durable: Pick<DurableStore, 'listFactors'>, options: FactorCacheOptions = {}): FactorCache {
  const ttlMs = options.ttlMs ?? FACTOR_CACHE_TTL_MS;
  const cache = ttlMs > 0 ? new LRUCache<string, readonly FactorRecord[]>({ max: options.entries ?? 10_000, ttl: ttlMs }) : undefined;
  // A forget that lands while a read is in flight must win: the read's (older) result is not kept.
  const generation = new Map<string, number>();
  return {
    async active(subject, now) {
      const cached = cache?.get(subject);
      if (cached !== undefined) return [...cached];
      const seen = generation.get(subject) ?? 0;
      const listed = (await durable.listFactors(subject, now)).filter((f) => f.status === 'active');
      // "No factor" is never kept: a factor confirmed a moment ago on another replica must count at once.
      if (cache !== undefined && listed.length > 0 && (generation.get(subject) ?? 0) === seen) cache.set(subject, listed);
      return listed;
    },
    forget(subject) {
      if (cache === undefined) return;
      cache.delete(subject);
      generation.set(subject, (generation.get(subject) ?? 0) + 1);
      // Bounded: generations only matter while a read is in flight.
      if (generation.size > 10_000) generation.clear();
    },
  };
}
