import type { Awaitable } from '../async/awaitable.js';
import { sha256Hex } from '../crypto/digest.js';
import { randomToken } from '../crypto/random.js';
import { ExpiringCache } from '../time/ttl-cache.js';
import { ANSWER_HOLD_MS } from '../decision/hold.js';
import type { MfaMethod } from '../decision/types.js';
import type { Invalidation, StoredSession, TtlStore } from '../store/types.js';
import type { Announce } from './announce.js';

/**
 * MFA sessions: a 32-byte random token (base64url) handed to the client once; the store keeps only
 * its SHA-256, so a store dump holds no usable token. A session is bound to the subject it was
 * issued to and remembers when the second factor was checked (`mfaTime`), which nothing ever moves
 * forward: refreshing rotates the token, never the second-factor time. The store keeps each
 * subject's sessions together, so one subject cannot pile them up (the oldest beyond the cap are
 * evicted as a new one is issued) and all of them end in one step.
 */

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
  | {
      readonly ok: true;
      readonly record: SessionRecord;
      readonly logId: string;
      /**
       * Until when (ms) an answer built on this lookup may be held by a cache in front of the
       * gateway without outliving a revocation by more than this store's cache lifetime: that
       * lifetime after `now` when the record was read from the store, `now` when it came from this
       * process's cache (whose entry is already ageing).
       */
      readonly holdUntil: number;
    }
  | { readonly ok: false; readonly logId?: string };

export function sessionLogId(token: string): string {
  return sha256Hex(token).slice(0, 8);
}

export interface SessionStore {
  /** `maxPerSubject`: the subject's oldest live sessions beyond this are revoked. */
  issue(input: { subject: string; method: MfaMethod; mfaTime: number; now: number; ttlMs: number; maxPerSubject: number }): Promise<IssuedSessionToken>;
  /**
   * A live session of `subject`; anything else (unknown, expired, tampered, other subject) is not ok.
   * `readThrough` reads the store even when this process has the session cached: for an answer a
   * cache in front will hold (nginx auth_request), which then takes the in-process cache's place.
   */
  lookup(token: string, subject: string, now: number, readThrough?: boolean): Awaitable<SessionLookup>;
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
  /**
   * How an ended session is made known (this process and, through the bus, the others); it must
   * call back into `drop`/`dropSubject` here. Default: this process's cache only.
   */
  readonly announce?: Announce;
}

export interface SessionCache {
  /** Forgets one cached session (it was revoked or refreshed elsewhere). */
  drop(hash: string): void;
  /** Forgets every cached session of a subject. */
  dropSubject(subject: string): void;
}

export function createSessionStore(ttl: Pick<TtlStore, 'issueSession' | 'getSession' | 'deleteSession' | 'revokeAllSessions'>, options: SessionCacheOptions = {}): SessionStore & SessionCache {
  const cacheMs = options.cacheMs ?? ANSWER_HOLD_MS;
  // Keyed by the token hash; only live sessions are cached, and expiry is still checked per hit.
  const cache = cacheMs > 0 ? new ExpiringCache<string, SessionRecord>(options.cacheEntries ?? 10_000, cacheMs) : undefined;

  /** The answer for a record found (or not) under `logId`: only a live session of `subject` is ok. */
  function judged(record: SessionRecord | undefined, subject: string, now: number, logId: string, holdUntil: number): SessionLookup {
    if (record === undefined || record.subject !== subject || !(record.expiresAt > now)) return { ok: false, logId };
    return { ok: true, record, logId, holdUntil };
  }

  async function readStore(hash: string, subject: string, now: number, logId: string): Promise<SessionLookup> {
    const record = asRecord(await ttl.getSession(hash, subject, now));
    if (record !== undefined) cache?.set(hash, record);
    return judged(record, subject, now, logId, now + cacheMs);
  }

  /** A cached session is answered at once; only the store read needs a promise. */
  function lookup(token: string, subject: string, now: number, readThrough = false): Awaitable<SessionLookup> {
    if (typeof token !== 'string') return { ok: false };
    const hash = sha256Hex(token);
    const logId = hash.slice(0, 8);
    const cached = readThrough ? undefined : cache?.get(hash);
    if (cached !== undefined) return judged(cached, subject, now, logId, now);
    // Only a token of the right shape is ever cached (readStore), so a hit needs no shape check.
    if (!TOKEN.test(token)) return { ok: false };
    return readStore(hash, subject, now, logId);
  }

  function dropSubject(subject: string): void {
    if (cache !== undefined) for (const [hash, record] of cache.entries()) if (record.subject === subject) cache.delete(hash);
  }

  const announce: Announce =
    options.announce ??
    ((change: Invalidation) => {
      if (change.kind === 'session') cache?.delete(change.hash);
      else if (change.kind === 'sessions') dropSubject(change.subject);
    });

  async function store(record: SessionRecord, now: number, maxPerSubject: number): Promise<IssuedSessionToken> {
    const token = randomToken(32);
    const hash = sha256Hex(token);
    const evicted = await ttl.issueSession(hash, record, maxPerSubject, now);
    for (const old of evicted) announce({ kind: 'session', hash: old });
    return { token, record, logId: hash.slice(0, 8) };
  }

  return {
    issue({ subject, method, mfaTime, now, ttlMs, maxPerSubject }) {
      // `ttlMs` comes from the compiled policy, bounded there (mfa.session.ttl ≤ 24 h, config/bounds.ts).
      return store({ subject, method, mfaTime, issuedAt: now, expiresAt: now + ttlMs }, now, maxPerSubject);
    },
    lookup,
    async revoke(token, subject, now) {
      if (typeof token !== 'string' || !TOKEN.test(token)) return false;
      const hash = sha256Hex(token);
      const deleted = await ttl.deleteSession(hash, subject, now);
      announce({ kind: 'session', hash });
      return deleted;
    },
    async refresh(token, subject, now, ttlMs, maxPerSubject) {
      const found = await lookup(token, subject, now);
      if (!found.ok) return undefined;
      const expiresAt = Math.min(now + ttlMs, found.record.mfaTime * 1000 + ttlMs);
      if (!(expiresAt > now)) return undefined;
      const hash = sha256Hex(token);
      // Delete first: if two refreshes race, only the one that deleted the old token gets a new one.
      const deleted = await ttl.deleteSession(hash, subject, now);
      announce({ kind: 'session', hash });
      if (!deleted) return undefined;
      return store({ ...found.record, issuedAt: now, expiresAt }, now, maxPerSubject);
    },
    async revokeAll(subject, now) {
      const ended = await ttl.revokeAllSessions(subject, now);
      announce({ kind: 'sessions', subject });
      return ended.length;
    },
    drop: (hash) => void cache?.delete(hash),
    dropSubject,
  };
}

const METHODS: ReadonlySet<string> = new Set<MfaMethod>(['totp', 'hotp', 'recovery', 'webauthn', 'email', 'sms', 'idp']);

/** A stored session read back; a method this build does not know fails closed (no session). */
function asRecord(stored: StoredSession | undefined): SessionRecord | undefined {
  if (stored === undefined || !METHODS.has(stored.method)) return undefined;
  return stored as SessionRecord;
}
