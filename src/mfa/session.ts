import { createHash, randomBytes } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { MfaMethod } from '../decision/types.js';
import type { TtlStore } from '../store/types.js';

/**
 * MFA sessions: a 32-byte random token (base64url) handed to the client once; the store keeps only
 * `session:<sha256(token)>`, so a store dump holds no usable token. A session is bound to the
 * subject it was issued to and remembers when the second factor was checked (`mfaTime`), which
 * nothing ever moves forward: refreshing rotates the token, never the second-factor time.
 *
 * Per subject the store also keeps the list of its live sessions (`sessions-of:<subject>`), so one
 * subject cannot pile up sessions (the oldest beyond the cap is evicted) and all of them can be
 * ended at once, and a cut-off time (`sessions-before:<subject>`): a session issued at or before it
 * is dead even if a racing issue slipped past the list.
 */

export const SESSION_PREFIX = 'session:';
const INDEX_PREFIX = 'sessions-of:';
const CUTOFF_PREFIX = 'sessions-before:';
/** As long as any session can live (mfa.session.ttl ≤ 1 d): a cut-off older than that has nothing left to cut. */
const CUTOFF_KEEP_MS = 24 * 3_600_000;

interface SessionIndex {
  readonly live: ReadonlyArray<{ readonly hash: string; readonly expiresAt: number }>;
}
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
  /** `maxPerSubject`: the subject's oldest live sessions beyond this are revoked. */
  issue(input: { subject: string; method: MfaMethod; mfaTime: number; now: number; ttlMs: number; maxPerSubject: number }): Promise<IssuedSessionToken>;
  /** A live session of `subject`; anything else (unknown, expired, tampered, other subject) is not ok. */
  lookup(token: string, subject: string, now: number): Promise<SessionLookup>;
  /** Deletes a live session of `subject`; false when there was none. */
  revoke(token: string, subject: string, now: number): Promise<boolean>;
  /**
   * Replaces a live session by a new token with the same method and mfaTime; it expires `ttlMs`
   * after the second factor at the latest, so refreshing never stretches a second factor.
   */
  refresh(token: string, subject: string, now: number, ttlMs: number, maxPerSubject: number): Promise<IssuedSessionToken | undefined>;
  /** Ends every session of `subject`, wherever issued; resolves to how many were live. */
  revokeAll(subject: string, now: number): Promise<number>;
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

export function createSessionStore(ttl: Pick<TtlStore, 'get' | 'set' | 'delete' | 'update'>, options: SessionCacheOptions = {}): SessionStore {
  const cacheMs = options.cacheMs ?? 2_000;
  // Keyed by the token hash; only live sessions are cached, and expiry is still checked per hit.
  const cache = cacheMs > 0 ? new LRUCache<string, SessionRecord>({ max: options.cacheEntries ?? 10_000, ttl: cacheMs }) : undefined;

  async function lookup(token: string, subject: string, now: number): Promise<SessionLookup> {
    if (typeof token !== 'string' || !TOKEN.test(token)) return { ok: false };
    const hash = tokenHash(token);
    const logId = hash.slice(0, 8);
    let record = cache?.get(hash);
    if (record === undefined) {
      const [stored, cutoff] = await Promise.all([ttl.get<SessionRecord>(SESSION_PREFIX + hash), ttl.get<number>(CUTOFF_PREFIX + subject)]);
      record = stored !== undefined && cutoff !== undefined && stored.issuedAt <= cutoff ? undefined : stored;
      if (record !== undefined) cache?.set(hash, record);
    }
    if (record === undefined || record.subject !== subject || !(record.expiresAt > now)) return { ok: false, logId };
    return { ok: true, record, logId };
  }

  function dropCached(hashes: Iterable<string>): void {
    for (const hash of hashes) cache?.delete(hash);
  }

  function forget(token: string): string {
    const hash = tokenHash(token);
    cache?.delete(hash);
    return SESSION_PREFIX + hash;
  }

  async function store(record: SessionRecord, now: number, maxPerSubject: number): Promise<IssuedSessionToken> {
    const token = randomBytes(32).toString('base64url');
    const hash = tokenHash(token);
    // Listed first, so a revoke-all racing with this issue either sees it or precedes it (and its
    // cut-off then ends this session too).
    let evicted: string[] = [];
    await ttl.update<SessionIndex>(INDEX_PREFIX + record.subject, (current) => {
      const live = (current?.live ?? []).filter((entry) => entry.expiresAt > now);
      live.push({ hash, expiresAt: record.expiresAt });
      live.sort((a, b) => a.expiresAt - b.expiresAt);
      const excess = Math.max(0, live.length - maxPerSubject);
      evicted = live.slice(0, excess).map((entry) => entry.hash);
      const kept = live.slice(excess);
      return { value: { live: kept }, ttlMs: Math.max(1, kept.at(-1)!.expiresAt - now) };
    });
    await ttl.set(SESSION_PREFIX + hash, record, Math.max(1, record.expiresAt - now));
    dropCached(evicted);
    await Promise.all(evicted.map((old) => ttl.delete(SESSION_PREFIX + old)));
    return { token, record, logId: hash.slice(0, 8) };
  }

  return {
    issue({ subject, method, mfaTime, now, ttlMs, maxPerSubject }) {
      // `ttlMs` comes from the compiled policy, bounded there (mfa.session.ttl ≤ 24 h, config/bounds.ts).
      return store({ subject, method, mfaTime, issuedAt: now, expiresAt: now + ttlMs }, now, maxPerSubject);
    },
    lookup,
    async revoke(token, subject, now) {
      const found = await lookup(token, subject, now);
      if (!found.ok) return false;
      return ttl.delete(forget(token));
    },
    async refresh(token, subject, now, ttlMs, maxPerSubject) {
      const found = await lookup(token, subject, now);
      if (!found.ok) return undefined;
      const expiresAt = Math.min(now + ttlMs, found.record.mfaTime * 1000 + ttlMs);
      if (!(expiresAt > now)) return undefined;
      // Delete first: if two refreshes race, at most one old token turns into a new one.
      if (!(await ttl.delete(forget(token)))) return undefined;
      return store({ ...found.record, issuedAt: now, expiresAt }, now, maxPerSubject);
    },
    async revokeAll(subject, now) {
      await ttl.set(CUTOFF_PREFIX + subject, now, CUTOFF_KEEP_MS);
      let listed: string[] = [];
      await ttl.update<SessionIndex>(INDEX_PREFIX + subject, (current) => {
        listed = (current?.live ?? []).filter((entry) => entry.expiresAt > now).map((entry) => entry.hash);
        return undefined;
      });
      dropCached(listed);
      // Cached records of this subject not in the list (issued before lists existed) go too.
      if (cache !== undefined) for (const [hash, record] of cache.entries()) if (record.subject === subject) cache.delete(hash);
      const deleted = await Promise.all(listed.map((hash) => ttl.delete(SESSION_PREFIX + hash)));
      return deleted.filter(Boolean).length;
    },
  };
}
