import { timingSafeEqual } from 'node:crypto';
import type Database from 'better-sqlite3';
import type { WriteBatcher } from './sqlite-batch.js';
import { StoreError } from './errors.js';
import { lockRemainingMs, lockStateTtlMs, nextLockState, parseLockState } from './lock-ladder.js';
import { checkCeremony, checkChallengeValue, checkCount, checkDriftSeconds, checkDuration, checkHashes, checkKey, checkLockoutRule, checkRule, checkSession, checkStep, checkTime, checkWindow } from './checks.js';
import type { FailureCount, FailureRule, LockFailure, LockoutRule, SentCodeUse, StoredSession, TtlStore } from './types.js';

/**
 * The short-lived state on SQLite: `ttl_entries` (key, value, expires_at) for counters and marks,
 * `sessions` for MFA sessions. Every writing verb is one statement or one transaction function,
 * run in the store's group commit (sqlite-batch.ts) inside its `BEGIN IMMEDIATE`: the write lock is
 * taken before the read, so processes sharing the file never lose an update. Reads run at once.
 * SQLite has no clock of its own: expiry is the request's `now` plus the duration asked for.
 */

const KEYS = {
  otpStep: (factorId: string) => `otp-step:${factorId}`,
  lock: (subject: string) => `lock:${subject}`,
  /** One per lock, living exactly as long as it: what the active-locks gauge counts. */
  locked: (subject: string) => `locked:${subject}`,
  drift: (subject: string) => `drift:${subject}`,
  sentCode: (contactId: string) => `sent-code:${contactId}`,
  challenge: (subject: string, ceremony: string) => `challenge:${ceremony}:${subject}`,
} as const;
const LOCKED_RANGE = ['locked:', 'locked;'] as const; // ';' follows ':': every "locked:…" key sorts between

const STATEMENTS = {
  read: `SELECT value, expires_at FROM ttl_entries WHERE key = ?`,
  /** params: key, key */
  readTwo: `SELECT key, value, expires_at FROM ttl_entries WHERE key IN (?, ?)`,
  /** params: key, value, expiresAt */
  upsert: `INSERT INTO ttl_entries (key, value, expires_at) VALUES (?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`,
  delete: `DELETE FROM ttl_entries WHERE key = ?`,
  /** params: key — read and delete in one statement: of N takers, one gets the row. */
  take: `DELETE FROM ttl_entries WHERE key = ? RETURNING value, expires_at`,
  /** params: lower, upper, now */
  countRange: `SELECT count(*) AS n FROM ttl_entries WHERE key >= ? AND key < ? AND expires_at > ?`,
  /** params: now */
  purge: `DELETE FROM ttl_entries WHERE expires_at <= ?`,
  /**
   * params: key, step, expiresAt, now — forward-only in one statement: the row is written only
   * when there was none, it had expired, or its step is older; RETURNING yields a row only then.
   */
  useStep: `INSERT INTO ttl_entries (key, value, expires_at) VALUES (?, ?, ?)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at
    WHERE ttl_entries.expires_at <= ? OR CAST(ttl_entries.value AS INTEGER) < CAST(excluded.value AS INTEGER)
    RETURNING 1 AS accepted`,
  /**
   * params: key, windowEnd (now + window), now, cap (limit + 1), now — a window that has ended
   * starts over at 1, else the count goes up by one, stopping at limit + 1 (a refused take reads
   * as limit + 1 and the value stays bounded).
   */
  takeToken: `INSERT INTO ttl_entries (key, value, expires_at) VALUES (?, '1', ?)
    ON CONFLICT (key) DO UPDATE SET
      value = CASE WHEN ttl_entries.expires_at <= ? THEN '1'
        ELSE CAST(MIN(CAST(ttl_entries.value AS INTEGER) + 1, ?) AS TEXT) END,
      expires_at = CASE WHEN ttl_entries.expires_at <= ? THEN excluded.expires_at ELSE ttl_entries.expires_at END
    RETURNING value, expires_at`,

  sessionInsert: `INSERT INTO sessions (hash, subject, method, mfa_time, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)`,
  /** params: subject, now */
  sessionsDropExpired: `DELETE FROM sessions WHERE subject = ? AND expires_at <= ?`,
  /**
   * params: subject, subject, keptHash, offset — all but the `offset` latest-expiring others, never
   * the one just issued. The outer subject keeps the delete on the (subject, hash) key.
   */
  sessionsEvict: `DELETE FROM sessions WHERE subject = ? AND hash IN (
      SELECT hash FROM sessions WHERE subject = ? AND hash <> ? ORDER BY expires_at DESC, issued_at DESC, hash LIMIT -1 OFFSET ?
    ) RETURNING hash`,
  /** params: hash, subject, now */
  sessionGet: `SELECT subject, method, mfa_time, issued_at, expires_at FROM sessions WHERE hash = ? AND subject = ? AND expires_at > ?`,
  /** params: hash, subject, now */
  sessionDelete: `DELETE FROM sessions WHERE hash = ? AND subject = ? AND expires_at > ? RETURNING hash`,
  /** params: subject */
  sessionsRevokeAll: `DELETE FROM sessions WHERE subject = ? RETURNING hash, expires_at`,
  /** params: now */
  sessionsPurge: `DELETE FROM sessions WHERE expires_at <= ?`,
} as const;

interface Row {
  readonly value: string;
  readonly expires_at: number;
}

interface SessionRow {
  readonly subject: string;
  readonly method: string;
  readonly mfa_time: number;
  readonly issued_at: number;
  readonly expires_at: number;
}

/** The value `recordFailure` keeps under its key: the window's count, and the block once there is one. */
interface FailureState {
  readonly failures: number;
  readonly blockedUntil?: number;
}

/** The value `putSentCode` keeps: the code's keyed hash and the wrong attempts so far. */
interface SentCodeState {
  readonly hash: string;
  readonly attempts: number;
}

/**
 * Equal strings, compared in time that depends only on their lengths. The twin of crypto/digest.ts's
 * sameText: src/crypto imports the store's types (keyring, rewrap), so the store does not import it back.
 */
function sameText(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  return x.length === y.length && timingSafeEqual(x, y);
}

function live(row: Row | undefined, now: number): Row | undefined {
  return row !== undefined && row.expires_at > now ? row : undefined;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Milliseconds left on the lock kept in `row` at `now`, 0 when free. */
function lockMsOf(row: Row | undefined, now: number): number {
  const current = live(row, now);
  return current === undefined ? 0 : lockRemainingMs(parseLockState(parseJson(current.value)), now);
}

/** When the block kept in `row` ends, 0 when it is not blocked at `now`. */
function blockedUntilOf(row: Row | undefined, now: number): number {
  const until = readFailureState(row, now)?.blockedUntil ?? 0;
  return until > now ? until : 0;
}

function readFailureState(row: Row | undefined, now: number): FailureState | undefined {
  const current = live(row, now);
  if (current === undefined) return undefined;
  const parsed = parseJson(current.value) as Partial<FailureState> | null | undefined;
  // A key written by another verb is not a failure window: start afresh rather than misread it.
  if (typeof parsed !== 'object' || parsed === null || typeof parsed.failures !== 'number') return undefined;
  return typeof parsed.blockedUntil === 'number' ? { failures: parsed.failures, blockedUntil: parsed.blockedUntil } : { failures: parsed.failures };
}

export interface SqliteTtl {
  readonly ttl: Omit<TtlStore, 'ping' | 'close'>;
  /** Deletes expired rows; resolves to how many. */
  purge(now: number): number;
}

/** `ensureOpen` throws once the owning store is closed. */
export function createSqliteTtl(db: Database.Database, ensureOpen: () => void, batcher: WriteBatcher): SqliteTtl {
  const st = Object.fromEntries(Object.entries(STATEMENTS).map(([name, text]) => [name, db.prepare(text)])) as Record<keyof typeof STATEMENTS, Database.Statement>;
  const read = (key: string) => st.read.get(key) as Row | undefined;

  const lockFailure = db.transaction((subject: string, now: number, rule: LockoutRule): LockFailure => {
    const row = live(read(KEYS.lock(subject)), now);
    const before = row === undefined ? undefined : parseLockState(parseJson(row.value));
    const after = nextLockState(before, now, rule);
    const retryAfterMs = lockRemainingMs(after, now);
    const lockedNow = retryAfterMs > 0 && lockRemainingMs(before, now) === 0;
    if (after !== before) st.upsert.run(KEYS.lock(subject), JSON.stringify(after), now + lockStateTtlMs(after, now, rule));
    if (lockedNow) st.upsert.run(KEYS.locked(subject), String(after.lockedUntil), after.lockedUntil);
    return { lockedNow, retryAfterMs, level: after.level };
  });

  const failure = db.transaction((key: string, now: number, rule: FailureRule): FailureCount => {
    const row = read(key);
    const state = readFailureState(row, now);
    if (state?.blockedUntil !== undefined && state.blockedUntil > now) return { failures: state.failures, blockedNow: false, blockedUntil: state.blockedUntil };
    const failures = (state?.failures ?? 0) + 1;
    if (failures >= rule.maxFailures) {
      const blockedUntil = now + rule.blockMs;
      st.upsert.run(key, JSON.stringify({ failures, blockedUntil }), blockedUntil);
      return { failures, blockedNow: true, blockedUntil };
    }
    // The window is fixed from its first failure: later ones do not stretch it.
    const windowEnd = state !== undefined && row !== undefined ? row.expires_at : now + rule.findTimeMs;
    st.upsert.run(key, JSON.stringify({ failures }), windowEnd);
    return { failures, blockedNow: false, blockedUntil: 0 };
  });

  const swapDrift = db.transaction((subject: string, seconds: number | null, now: number, keepMs: number): number | null | undefined => {
    const row = live(read(KEYS.drift(subject)), now);
    const previous = row === undefined ? undefined : (parseJson(row.value) as { seconds?: unknown } | undefined)?.seconds;
    st.upsert.run(KEYS.drift(subject), JSON.stringify({ seconds }), now + keepMs);
    return typeof previous === 'number' || previous === null ? previous : undefined;
  });

  const useCode = db.transaction((contactId: string, hashes: readonly string[], now: number, maxAttempts: number): SentCodeUse => {
    const row = read(KEYS.sentCode(contactId));
    const parsed = row === undefined ? undefined : (parseJson(row.value) as Partial<SentCodeState> | null | undefined);
    const kept = typeof parsed?.hash === 'string' && typeof parsed.attempts === 'number' ? (parsed as SentCodeState) : undefined;
    // Every candidate is compared, live code or not: the work does not depend on what is kept.
    let matched = false;
    for (const hash of hashes) if (sameText(kept?.hash ?? '', hash)) matched = true;
    if (kept === undefined || live(row, now) === undefined) return 'none';
    if (matched) {
      st.delete.run(KEYS.sentCode(contactId));
      return 'used';
    }
    const attempts = kept.attempts + 1;
    if (attempts >= maxAttempts) st.delete.run(KEYS.sentCode(contactId));
    else st.upsert.run(KEYS.sentCode(contactId), JSON.stringify({ hash: kept.hash, attempts }), row!.expires_at);
    return 'wrong';
  });

  const issue = db.transaction((hash: string, s: StoredSession, maxPerSubject: number, now: number): string[] => {
    st.sessionsDropExpired.run(s.subject, now);
    st.sessionInsert.run(hash, s.subject, s.method, s.mfaTime, s.issuedAt, s.expiresAt);
    return (st.sessionsEvict.all(s.subject, s.subject, hash, maxPerSubject - 1) as { hash: string }[]).map((r) => r.hash);
  });

  /** A ceremony's live value: `take` deletes it as it reads (a write, in the batch), else it stays. */
  async function challenge(take: boolean, subject: string, ceremony: string, now: number): Promise<string | undefined> {
    ensureOpen();
    checkKey(subject, 'subject');
    checkCeremony(ceremony);
    checkTime(now);
    const key = KEYS.challenge(subject, ceremony);
    const row = take ? await batcher.run(() => st.take.get(key) as Row | undefined) : read(key);
    return live(row, now)?.value;
  }

  const ttl: SqliteTtl['ttl'] = {
    async useOtpStep(factorId, step, now, keepMs) {
      ensureOpen();
      checkKey(factorId, 'factorId');
      checkTime(now);
      checkDuration(keepMs, 'keepMs');
      if (step !== undefined) checkStep(step);
      return batcher.run(() => {
        const key = KEYS.otpStep(factorId);
        // No code matched: one statement in a batch all the same, so a wrong code costs what a replay does.
        if (step === undefined) {
          read(key);
          return false;
        }
        return st.useStep.get(key, String(step), now + keepMs, now) !== undefined;
      });
    },
    async forgetOtpSteps(factorId) {
      ensureOpen();
      checkKey(factorId, 'factorId');
      await batcher.run(() => st.delete.run(KEYS.otpStep(factorId)));
    },
    async lockRemainingMs(subject, now) {
      ensureOpen();
      checkKey(subject, 'subject');
      checkTime(now);
      return lockMsOf(read(KEYS.lock(subject)), now);
    },
    async recordLockFailure(subject, now, rule) {
      ensureOpen();
      checkKey(subject, 'subject');
      checkTime(now);
      checkLockoutRule(rule);
      return batcher.run(() => lockFailure(subject, now, rule));
    },
    async clearLock(subject) {
      ensureOpen();
      checkKey(subject, 'subject');
      // The marker stays: the lock it counts (if any) is over or ends with it. Nearly every success
      // has no ladder to clear, and a read costs a third of a write transaction. A failure another
      // process records between the two is simply later than this success, so it stands.
      await batcher.run(() => {
        if (read(KEYS.lock(subject)) !== undefined) st.delete.run(KEYS.lock(subject));
      });
    },
    async activeLocks(now) {
      ensureOpen();
      checkTime(now);
      return Number((st.countRange.get(LOCKED_RANGE[0], LOCKED_RANGE[1], now) as { n: number }).n);
    },
    async recordFailure(key, now, rule) {
      ensureOpen();
      checkKey(key);
      checkTime(now);
      checkRule(rule);
      return batcher.run(() => failure(key, now, rule));
    },
    async blockedUntil(key, now) {
      ensureOpen();
      checkKey(key);
      checkTime(now);
      return blockedUntilOf(read(key), now);
    },
    async readLockAndBlock(subject, blockKey, now) {
      ensureOpen();
      checkKey(subject, 'subject');
      if (blockKey !== undefined) checkKey(blockKey);
      checkTime(now);
      const lockKey = KEYS.lock(subject);
      if (blockKey === undefined) return { lockMs: lockMsOf(read(lockKey), now), blockedUntil: 0 };
      let lockRow: Row | undefined;
      let blockRow: Row | undefined;
      for (const row of st.readTwo.all(lockKey, blockKey) as (Row & { key: string })[]) {
        if (row.key === lockKey) lockRow = row;
        if (row.key === blockKey) blockRow = row;
      }
      return { lockMs: lockMsOf(lockRow, now), blockedUntil: blockedUntilOf(blockRow, now) };
    },
    async swapDriftReading(subject, seconds, now, keepMs) {
      ensureOpen();
      checkKey(subject, 'subject');
      checkTime(now);
      checkDuration(keepMs, 'keepMs');
      checkDriftSeconds(seconds);
      return batcher.run(() => swapDrift(subject, seconds, now, keepMs));
    },
    async issueSession(hash, session, maxPerSubject, now) {
      ensureOpen();
      checkKey(hash, 'hash');
      checkTime(now);
      checkSession(session, now);
      checkCount(maxPerSubject, 'maxPerSubject');
      try {
        return await batcher.run(() => issue(hash, session, maxPerSubject, now));
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw new StoreError('ERR_STORE_CONFLICT', 'a session with this hash already exists');
        throw err;
      }
    },
    async getSession(hash, subject, now) {
      ensureOpen();
      checkTime(now);
      const row = st.sessionGet.get(hash, subject, now) as SessionRow | undefined;
      if (row === undefined) return undefined;
      return { subject: row.subject, method: row.method, mfaTime: Number(row.mfa_time), issuedAt: Number(row.issued_at), expiresAt: Number(row.expires_at) };
    },
    async deleteSession(hash, subject, now) {
      ensureOpen();
      checkTime(now);
      return batcher.run(() => st.sessionDelete.get(hash, subject, now) !== undefined);
    },
    async revokeAllSessions(subject, now) {
      ensureOpen();
      checkKey(subject, 'subject');
      checkTime(now);
      const revoked = await batcher.run(() => st.sessionsRevokeAll.all(subject) as { hash: string; expires_at: number }[]);
      return revoked.filter((r) => r.expires_at > now).map((r) => r.hash);
    },
    async takeToken(key, now, window) {
      ensureOpen();
      checkKey(key);
      checkTime(now);
      checkWindow(window);
      const row = await batcher.run(() => st.takeToken.get(key, now + window.windowMs, now, window.limit + 1, now) as Row);
      const count = Number(row.value);
      return { taken: count <= window.limit, remaining: Math.max(0, window.limit - count), resetAt: Number(row.expires_at) };
    },
    async putSentCode(subject, contactId, hash, now, ttlMs) {
      ensureOpen();
      checkKey(subject, 'subject');
      checkKey(contactId, 'contactId');
      checkKey(hash, 'hash');
      checkTime(now);
      checkDuration(ttlMs, 'ttlMs');
      await batcher.run(() => st.upsert.run(KEYS.sentCode(contactId), JSON.stringify({ hash, attempts: 0 }), now + ttlMs));
    },
    async useSentCode(subject, contactId, hashes, now, maxAttempts) {
      ensureOpen();
      checkKey(subject, 'subject');
      checkKey(contactId, 'contactId');
      checkHashes(hashes);
      checkTime(now);
      checkCount(maxAttempts, 'maxAttempts');
      return batcher.run(() => useCode(contactId, hashes, now, maxAttempts));
    },
    async putChallenge(subject, ceremony, value, now, keepMs) {
      ensureOpen();
      checkKey(subject, 'subject');
      checkCeremony(ceremony);
      checkChallengeValue(value);
      checkTime(now);
      checkDuration(keepMs, 'keepMs');
      await batcher.run(() => st.upsert.run(KEYS.challenge(subject, ceremony), value, now + keepMs));
    },
    takeChallenge: (subject, ceremony, now) => challenge(true, subject, ceremony, now),
    peekChallenge: (subject, ceremony, now) => challenge(false, subject, ceremony, now),
  };

  return {
    ttl,
    purge: (now) => st.purge.run(now).changes + st.sessionsPurge.run(now).changes,
  };
}
