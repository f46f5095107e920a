import { createHash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { MfaMethod } from '../decision/types.js';
import type { TtlStore } from '../store/types.js';

/**
 * MFA sessions: a 32-byte random token (base64url) handed to the client once; the store keeps only
 * `session:<sha256(token)>`, so a store dump holds no usable token. A session is bound to the
 * subject it was issued to and remembers when the second factor was checked (`mfaTime`), which
 * nothing ever moves forward: refreshing rotates the token, never the second-factor time.
 */

export const SESSION_PREFIX = 'session:';
const TOKEN = /^[A-Za-z0-9_-]{43}$/;

export interface SessionRecord {
  readonly subject: string;
  readonly method: MfaMethod;
  /** Unix seconds of the second-factor check. */
  readonly mfaTime: number;
  /** Unix ms. */
  readonly issuedAt: number;
  /** Unix ms. */
  readonly expiresAt: number;
}

export interface IssuedSessionToken {
  readonly token: string;
  readonly record: SessionRecord;
  /** Short, non-reversible id for logs (8 hex characters of the hash): never the token or its full hash. */
  readonly logId: string;
}

export type SessionLookup =
  | { readonly ok: true; readonly record: SessionRecord; readonly logId: string }
  | { readonly ok: false; readonly logId?: string };

function tokenHash(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function sessionLogId(token: string): string {
  return tokenHash(token).slice(0, 8);
}

export interface SessionStore {
  issue(input: { subject: string; method: MfaMethod; mfaTime: number; now: number; ttlMs: number }): Promise<IssuedSessionToken>;
  /** A live session of `subject`; anything else (unknown, expired, tampered, other subject) is not ok. */
  lookup(token: string, subject: string, now: number): Promise<SessionLookup>;
  /** Deletes a live session of `subject`; false when there was none. */
  revoke(token: string, subject: string, now: number): Promise<boolean>;
  /**
   * Replaces a live session by a new token with the same method and mfaTime; it expires `ttlMs`
   * after the second factor at the latest, so refreshing never stretches a second factor.
   */
  refresh(token: string, subject: string, now: number, ttlMs: number): Promise<IssuedSessionToken | undefined>;
}

export interface SessionCacheOptions {
  /**
   * How long a live session read from the store is trusted in this process (default 2 s). Revoking
   * or refreshing through this process drops it at once; through another process sharing the
   * store, it ends here at most this much later. 0 turns the cache off.
   */
  readonly cacheMs?: number;
  readonly cacheEntries?: number;
}

export function createSessionStore(ttl: Pick<TtlStore, 'get' | 'set' | 'delete'>, options: SessionCacheOptions = {}): SessionStore {
  const cacheMs = options.cacheMs ?? 2_000;
  // Keyed by the token hash; only live sessions are cached, and expiry is still checked per hit.
  const cache = cacheMs > 0 ? new LRUCache<string, SessionRecord>({ max: options.cacheEntries ?? 10_000, ttl: cacheMs }) : undefined;

  async function lookup(token: string, subject: string, now: number): Promise<SessionLookup> {
    if (typeof token !== 'string' || !TOKEN.test(token)) return { ok: false };
    const hash = tokenHash(token);
    const logId = hash.slice(0, 8);
    let record = cache?.get(hash);
    if (record === undefined) {
      record = await ttl.get<SessionRecord>(SESSION_PREFIX + hash);
      if (record !== undefined) cache?.set(hash, record);
    }
    if (record === undefined || record.subject !== subject || !(record.expiresAt > now)) return { ok: false, logId };
    return { ok: true, record, logId };
  }

  function forget(token: string): string {
    const hash = tokenHash(token);
    cache?.delete(hash);
    return SESSION_PREFIX + hash;
  }

  async function store(record: SessionRecord, now: number): Promise<IssuedSessionToken> {
    const token = randomBytes(32).toString('base64url');
    const hash = tokenHash(token);
    await ttl.set(SESSION_PREFIX + hash, record, Math.max(1, record.expiresAt - now));
    return { token, record, logId: hash.slice(0, 8) };
  }

  return {
    issue({ subject, method, mfaTime, now, ttlMs }) {
      // `ttlMs` comes from the compiled policy, bounded there (mfa.session.ttl ≤ 24 h, config/bounds.ts).
      return store({ subject, method, mfaTime, issuedAt: now, expiresAt: now + ttlMs }, now);
    },
    lookup,
    async revoke(token, subject, now) {
      const found = await lookup(token, subject, now);
      if (!found.ok) return false;
      return ttl.delete(forget(token));
    },
    async refresh(token, subject, now, ttlMs) {
      const found = await lookup(token, subject, now);
      if (!found.ok) return undefined;
      const expiresAt = Math.min(now + ttlMs, found.record.mfaTime * 1000 + ttlMs);
      if (!(expiresAt > now)) return undefined;
      // Delete first: if two refreshes race, at most one old token turns into a new one.
      if (!(await ttl.delete(forget(token)))) return undefined;
      return store({ ...found.record, issuedAt: now, expiresAt }, now);
    },
  };
}
