/**
 * The narrow storage slices the MFA code depends on. The embedded backend (SQLite) implements both;
 * the shared backend (PostgreSQL for DurableStore, Redis for TtlStore) implements the same, so the
 * decision code never changes with the deployment. Every check-and-set is atomic IN THE STORE.
 */

export type FactorType = 'totp' | 'hotp';
export type FactorStatus = 'pending' | 'active';

/** A secret sealed with AES-256-GCM; opaque outside src/crypto. */
export interface SealedSecret {
  readonly kid: string;
  /** base64url of nonce ‖ ciphertext ‖ tag. */
  readonly blob: string;
}

export interface FactorRecord {
  readonly id: string;
  readonly subject: string;
  readonly type: FactorType;
  readonly status: FactorStatus;
  readonly label: string;
  readonly secret: SealedSecret;
  readonly algorithm: 'SHA1' | 'SHA256' | 'SHA512';
  readonly digits: number;
  /** TOTP only. */
  readonly periodSeconds: number;
  /** HOTP only: the next counter value expected. */
  readonly counter: number;
  /** Unix ms. */
  readonly createdAt: number;
  /** Pending factors are unusable and disappear after this (unix ms); undefined once active. */
  readonly pendingUntil?: number;
  readonly confirmedAt?: number;
}

/** One recovery-code hash as stored: what export and import carry. */
export interface RecoveryCodeRecord {
  readonly subject: string;
  /** The keyed hash (`kid$digest`), never the code. */
  readonly hash: string;
  /** Unix ms. */
  readonly createdAt: number;
  /** Unix ms; undefined while unused. */
  readonly usedAt?: number;
}

/** A row of the durable state, as `store export` writes it and `store import` reads it. */
export type DurableRecord =
  | { readonly kind: 'factor'; readonly factor: FactorRecord }
  | { readonly kind: 'recovery_code'; readonly code: RecoveryCodeRecord };

export interface ImportCounts {
  readonly factors: number;
  readonly recoveryCodes: number;
}

export interface DurableStore {
  createFactor(factor: FactorRecord): Promise<void>;
  getFactor(id: string): Promise<FactorRecord | undefined>;
  /** Active and unexpired pending factors of one subject, oldest first. */
  listFactors(subject: string, now: number): Promise<FactorRecord[]>;
  /** pending → active only if it is still pending, belongs to `subject` and has not expired. */
  activateFactor(id: string, subject: string, now: number): Promise<boolean>;
  deleteFactor(id: string, subject: string): Promise<boolean>;
  /** Compare-and-set of the HOTP counter; false when another request moved it first. */
  advanceHotpCounter(id: string, expected: number, next: number): Promise<boolean>;
  /** Compare-and-set of a sealed secret (key rotation / rewrap). */
  replaceSecret(id: string, expected: SealedSecret, next: SealedSecret): Promise<boolean>;
  /** Factors whose secret is sealed with a key other than `kid` (for rewrap). */
  factorsNotSealedWith(kid: string, limit: number): Promise<FactorRecord[]>;

  /** Replaces the whole set of recovery-code hashes of a subject (regeneration). */
  replaceRecoveryCodes(subject: string, hashes: readonly string[], now: number): Promise<void>;
  /** Marks one unused code used; exactly one of N concurrent calls with the same hash gets consumed=true. */
  consumeRecoveryCode(subject: string, hash: string, now: number): Promise<{ consumed: boolean; remaining: number }>;
  countRecoveryCodes(subject: string): Promise<number>;

  /**
   * Every factor (pending and expired ones too, ordered by id) then every recovery code (ordered by
   * subject, hash), read from one consistent snapshot, for `store export`. Secrets stay sealed.
   */
  exportAll(): AsyncIterable<DurableRecord>;
  /**
   * Loads `records` in one transaction: all or nothing. Refuses with ERR_STORE_NOT_EMPTY when the
   * store holds any factor, unless `replace`, which first deletes every factor and recovery code.
   */
  importAll(records: Iterable<DurableRecord>, options: { readonly replace: boolean }): Promise<ImportCounts>;

  /** Readiness probe. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** `update` returns the value to store (and its TTL), or `undefined` to delete the key. */
export type TtlUpdate<T> = (current: T | undefined) => { readonly value: T; readonly ttlMs: number } | undefined;

/** A fixed-window quota: at most `limit` takes per `windowMs`, the window opening at a key's first take. */
export interface TokenWindow {
  readonly limit: number;
  readonly windowMs: number;
}

export interface TokenTake {
  /** A token was left and is now used: the request may go on. */
  readonly taken: boolean;
  /** Tokens left in the window after this take (0 when refused). */
  readonly remaining: number;
  /** Unix ms when the window ends and the count starts over. */
  readonly resetAt: number;
}

/** `maxFailures` within `findTimeMs` (counted from the first) block the key for `blockMs`. */
export interface FailureRule {
  readonly maxFailures: number;
  readonly findTimeMs: number;
  readonly blockMs: number;
}

export interface FailureCount {
  /** Failures in the current window, this one included. */
  readonly failures: number;
  /** This failure started the block. */
  readonly blockedNow: boolean;
  /** Unix ms when the block ends; 0 when the key is not blocked. */
  readonly blockedUntil: number;
}

export interface TtlStore {
  get<T>(key: string): Promise<T | undefined>;
  set<T>(key: string, value: T, ttlMs: number): Promise<void>;
  delete(key: string): Promise<boolean>;
  /**
   * Atomic read-modify-write of one key. `update` must be pure: a backend using optimistic
   * concurrency may call it more than once. Resolves to what was stored (undefined if deleted).
   */
  update<T>(key: string, update: TtlUpdate<T>): Promise<T | undefined>;
  /** Keys under a prefix whose value is still live (bounded, for gauges and admin listings). */
  countPrefix(prefix: string): Promise<number>;
  /**
   * Takes a rate-limit token: one atomic verb (a single SQL statement; a Redis script later), so
   * N replicas sharing the store share the quota. `now` is the request's pinned clock reading.
   */
  takeToken(key: string, now: number, window: TokenWindow): Promise<TokenTake>;
  /**
   * Records a failure for `key` and says whether it is now blocked; one atomic verb. A failure
   * while the key is already blocked changes nothing (callers refuse blocked keys first).
   */
  recordFailure(key: string, now: number, rule: FailureRule): Promise<FailureCount>;
  /** Unix ms when the block set by `recordFailure` ends; 0 when `key` is not blocked at `now`. */
  blockedUntil(key: string, now: number): Promise<number>;
  ping(): Promise<void>;
  close(): Promise<void>;
}
