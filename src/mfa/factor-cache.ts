import { ExpiringCache } from '../time/ttl-cache.js';
import type { DurableStore, FactorRecord, WebAuthnCredentialRecord } from '../store/types.js';

/**
 * The active factors and WebAuthn credentials of recently seen subjects, so a request does not list
 * them from the durable store every time. Every change is announced (see announce.ts): this replica
 * forgets at once, the others within the bus's delivery time; `ttlMs` bounds staleness when a
 * message is lost. Only used where there is a bus: without one, another process's change would go
 * unseen for ttlMs. Signature counters are never judged from here: an assertion reads its credential
 * from the store.
 */
export interface FactorCache {
  active(subject: string, now: number): Promise<FactorRecord[]>;
  credentials(subject: string): Promise<WebAuthnCredentialRecord[]>;
  forget(subject: string): void;
}

export interface FactorCacheOptions {
  /** 0 turns the cache off. */
  readonly ttlMs?: number;
  readonly entries?: number;
}

export const FACTOR_CACHE_TTL_MS = 2_000;

export function createFactorCache(durable: Pick<DurableStore, 'listFactors' | 'listWebAuthnCredentials'>, options: FactorCacheOptions = {}): FactorCache {
  const ttlMs = options.ttlMs ?? FACTOR_CACHE_TTL_MS;
  // A forget that lands while a read is in flight must win: the read's (older) result is not kept.
  const generation = new Map<string, number>();

  const forgetters: ((subject: string) => void)[] = [];

  /** One cache of per-subject lists, sharing the generations, so one forget drops both. */
  function cached<T>(load: (subject: string, now: number) => Promise<T[]>): (subject: string, now: number) => Promise<T[]> {
    const cache = ttlMs > 0 ? new ExpiringCache<string, readonly T[]>(options.entries ?? 10_000, ttlMs) : undefined;
    if (cache !== undefined) forgetters.push((subject) => cache.delete(subject));
    return async (subject, now) => {
      const hit = cache?.get(subject);
      if (hit !== undefined) return [...hit];
      const seen = generation.get(subject) ?? 0;
      const listed = await load(subject, now);
      // "None" is never kept: a factor confirmed a moment ago on another replica must count at once.
      if (cache !== undefined && listed.length > 0 && (generation.get(subject) ?? 0) === seen) cache.set(subject, listed);
      return listed;
    };
  }
  const active = cached(async (subject, now) => (await durable.listFactors(subject, now)).filter((f) => f.status === 'active'));
  const credentials = cached((subject) => durable.listWebAuthnCredentials(subject));

  return {
    active,
    credentials: (subject) => credentials(subject, 0),
    forget(subject) {
      if (ttlMs <= 0) return;
      for (const drop of forgetters) drop(subject);
      generation.set(subject, (generation.get(subject) ?? 0) + 1);
      // Bounded: generations only matter while a read is in flight.
      if (generation.size > 10_000) generation.clear();
    },
  };
}
