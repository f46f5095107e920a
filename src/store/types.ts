/**
 * The narrow storage slices the MFA code depends on. The embedded backend (SQLite) implements both;
 * the shared backend (PostgreSQL for DurableStore, Redis for TtlStore) implements the same, so the
 * decision code never changes with the deployment. Every check-and-set is atomic IN THE STORE.
 */

export type FactorType = 'totp' | 'hotp';
export type FactorStatus = 'pending' | 'active';
/**
 * Factors that are a destination codes are sent to (rows of `contacts`, beside the OTP keys of
 * `factors`): what /.mfa/factors, audit events and X-Auth-MFA call an e-mail or SMS factor.
 */
export type ContactChannel = 'email' | 'sms';
/** `factor`: a second factor of its own; `backup`: only a way to recover (mfa.backup_contact). */
export type ContactPurpose = 'factor' | 'backup';

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

/** An e-mail address or phone number codes are sent to; sealed like a factor secret (it is personal data). */
export interface ContactRecord {
  readonly id: string;
  readonly subject: string;
  readonly channel: ContactChannel;
  readonly purpose: ContactPurpose;
  readonly status: FactorStatus;
  readonly label: string;
  /** The address or E.164 number, sealed to (subject, id): opaque outside src/crypto, never logged. */
  readonly destination: SealedSecret;
  /** Unix ms. */
  readonly createdAt: number;
  /** Pending contacts are unusable and disappear after this (unix ms); undefined once active. */
  readonly pendingUntil?: number;
  readonly confirmedAt?: number;
}

/**
 * How a WebAuthn authenticator is attached, as far as registration told: a roaming security key
 * (USB, NFC, BLE), or one built into a device (Touch ID, Windows Hello, a phone's passkey, synced or
 * not). The policy gives each its own lifetime (`mfa.webauthn.max_age`).
 */
export type WebAuthnKind = 'security_key' | 'platform';

/** One registered WebAuthn credential (a security key or passkey): a factor of its own table. */
export interface WebAuthnCredentialRecord {
  /** The gateway's id, the one `/.mfa/factors` shows (a UUID, like a factor's). */
  readonly id: string;
  readonly subject: string;
  /** The credential id the authenticator chose (base64url); unique across all subjects. */
  readonly credentialId: string;
  /**
   * The COSE public key, sealed like a factor secret and bound to (subject, id): not secret, but a
   * row someone wrote into the database without the key file cannot be opened, so it never verifies.
   */
  readonly publicKey: SealedSecret;
  /** The authenticator's signature counter as last seen (0 for authenticators that keep none). */
  readonly signCount: number;
  /** What the browser reported (`usb`, `nfc`, `ble`, `internal`, `hybrid`, …), for allowCredentials hints. */
  readonly transports: readonly string[];
  readonly kind: WebAuthnKind;
  /** A multi-device (synced) passkey. */
  readonly synced: boolean;
  readonly label: string;
  /** Unix ms. */
  readonly createdAt: number;
  /** Unix ms of the last good assertion; undefined until one. */
  readonly lastUsedAt?: number;
}

/** A row of the durable state, as `store export` writes it and `store import` reads it. */
export type DurableRecord =
  | { readonly kind: 'factor'; readonly factor: FactorRecord }
  | { readonly kind: 'recovery_code'; readonly code: RecoveryCodeRecord }
  | { readonly kind: 'contact'; readonly contact: ContactRecord }
  | { readonly kind: 'webauthn_credential'; readonly credential: WebAuthnCredentialRecord };

export interface ImportCounts {
  readonly factors: number;
  readonly recoveryCodes: number;
  readonly contacts: number;
  readonly webauthnCredentials: number;
}

/**
 * Told of the pending factors a cleanup round deleted unconfirmed, by type (the enrolment metrics).
 * Each row is deleted by one statement, so replicas and workers purging one database count it once.
 */
export type PendingPurged = (types: readonly FactorType[]) => void;

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
  /** A factor's new label; false when the subject has no such factor. */
  renameFactor(id: string, subject: string, label: string): Promise<boolean>;

  /** A new credential; ERR_STORE_CONFLICT when its id or its credential id is taken (by anyone). */
  createWebAuthnCredential(credential: WebAuthnCredentialRecord): Promise<void>;
  /** The subject's credentials, oldest first. */
  listWebAuthnCredentials(subject: string): Promise<WebAuthnCredentialRecord[]>;
  /**
   * Forward-only signature counter: stores `next` (and `usedAt`) only when it is above the stored
   * count, or both are 0 (authenticators that keep no counter, e.g. synced passkeys). False for a
   * counter that did not move forward: a cloned authenticator, or another request that got there first.
   */
  advanceWebAuthnCounter(id: string, next: number, usedAt: number): Promise<boolean>;
  renameWebAuthnCredential(id: string, subject: string, label: string): Promise<boolean>;
  deleteWebAuthnCredential(id: string, subject: string): Promise<boolean>;
  /** Compare-and-set of a sealed public key (key rotation / rewrap). */
  replaceWebAuthnPublicKey(id: string, expected: SealedSecret, next: SealedSecret): Promise<boolean>;
  /** Credentials whose public key is sealed with a key other than `kid` (for rewrap), by id. */
  webAuthnCredentialsNotSealedWith(kid: string, limit: number): Promise<WebAuthnCredentialRecord[]>;

  // E-mail and SMS contacts: the same life as a factor (pending → active by compare-and-set).
  createContact(contact: ContactRecord): Promise<void>;
  /** The contact if it is active, or pending and unexpired at `now`. */
  getContact(id: string, now: number): Promise<ContactRecord | undefined>;
  /** Active and unexpired pending contacts of one subject, oldest first. */
  listContacts(subject: string, now: number): Promise<ContactRecord[]>;
  /** pending → active only if it is still pending, belongs to `subject` and has not expired. */
  activateContact(id: string, subject: string, now: number): Promise<boolean>;
  deleteContact(id: string, subject: string): Promise<boolean>;
  /** Compare-and-set of a sealed destination (key rotation / rewrap). */
  replaceContactDestination(id: string, expected: SealedSecret, next: SealedSecret): Promise<boolean>;
  /** Contacts whose destination is sealed with a key other than `kid` (for rewrap). */
  contactsNotSealedWith(kid: string, limit: number): Promise<ContactRecord[]>;

  /**
   * Every factor (pending and expired ones too, ordered by id), then every recovery code (ordered by
   * subject, hash), every contact (by id), then every WebAuthn credential (by id), read from one
   * consistent snapshot, for `store export`. Secrets, destinations and public keys stay sealed.
   */
  exportAll(): AsyncIterable<DurableRecord>;
  /**
   * Loads `records` in one transaction: all or nothing. Refuses with ERR_STORE_NOT_EMPTY when the
   * store holds any factor, contact or credential, unless `replace`, which first deletes every
   * factor, recovery code, contact and credential.
   */
  importAll(records: Iterable<DurableRecord>, options: { readonly replace: boolean }): Promise<ImportCounts>;

  /** Readiness probe. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

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

/**
 * The lockout ladder (store/lock-ladder.ts has the rules in words and as a pure function every backend
 * must agree with): `maxFailures` within `findTimeMs` lock the subject for backoff[level].
 */
export interface LockoutRule {
  readonly maxFailures: number;
  readonly findTimeMs: number;
  readonly backoffMs: readonly number[];
}

export interface LockFailure {
  /** This failure started a lock. */
  readonly lockedNow: boolean;
  /** Milliseconds until a retry may succeed (0 when not locked). */
  readonly retryAfterMs: number;
  /** Locks imposed since the last success. */
  readonly level: number;
}

/** What one attempt at a sent code found: its code (now used up), another code, or no live code. */
export type SentCodeUse = 'used' | 'wrong' | 'none';

/** An MFA session as the store keeps it, under the SHA-256 of its token (never the token). */
export interface StoredSession {
  readonly subject: string;
  /** The MfaMethod that opened it (`totp`, `hotp`, `recovery`). */
  readonly method: string;
  /** Unix seconds of the second-factor check. */
  readonly mfaTime: number;
  /** Unix ms. */
  readonly issuedAt: number;
  /** Unix ms. */
  readonly expiresAt: number;
}

/** What `TtlStore.readLockAndBlock` answers. */
export interface LockAndBlock {
  readonly lockMs: number;
  readonly blockedUntil: number;
}

/**
 * Short-lived state, spoken in domain verbs. Every verb is atomic in the store — one SQL statement
 * or one `BEGIN IMMEDIATE` transaction on SQLite, one Lua script on Redis — so N replicas sharing
 * the store behave as one. Keys are the store's business: callers pass subjects, factor ids and
 * token hashes, and a Redis backend tags every key of one subject alike so a script touches one slot.
 *
 * Whose clock: `now` is the request's pinned reading and judges every absolute instant the gateway
 * computed (a lock's end, a window's reset, a session's expiry). How long a key is kept is handed
 * to the store as a duration and expired by the store's own clock (Redis PEXPIRE; SQLite has no
 * clock of its own and stores now + duration).
 */
export interface TtlStore {
  /**
   * Replay guard: marks TOTP `step` used for `factorId`; true only if it is later than every step
   * used before (forward-only). With `step` undefined it does the same store work and changes
   * nothing, so a wrong code costs what a replayed one does.
   */
  useOtpStep(factorId: string, step: number | undefined, now: number, keepMs: number): Promise<boolean>;
  /** Forgets the used steps of a deleted factor. */
  forgetOtpSteps(factorId: string): Promise<void>;

  /** Milliseconds left on the subject's lock at `now`, 0 when free. */
  lockRemainingMs(subject: string, now: number): Promise<number>;
  /** One failed second factor on the ladder; a failure while locked changes nothing. */
  recordLockFailure(subject: string, now: number, rule: LockoutRule): Promise<LockFailure>;
  /** A success: the ladder starts over. */
  clearLock(subject: string): Promise<void>;
  /** Subjects locked at `now` (for a gauge; exact across replicas). */
  activeLocks(now: number): Promise<number>;

  /**
   * Records a failure for `key` and says whether it is now blocked. A failure while the key is
   * already blocked changes nothing (callers refuse blocked keys first).
   */
  recordFailure(key: string, now: number, rule: FailureRule): Promise<FailureCount>;
  /** Unix ms when the block set by `recordFailure` ends; 0 when `key` is not blocked at `now`. */
  blockedUntil(key: string, now: number): Promise<number>;
  /**
   * What a code attempt is refused on before anything is verified, read together: `lockMs` as
   * `lockRemainingMs(subject)`, `blockedUntil` as `blockedUntil(blockKey)` (0 when `blockKey` is
   * undefined). One statement on SQLite, where each separate read takes and drops the file's locks;
   * on Redis two scripts sent at once (the keys live in different slots), so the two halves are not
   * one snapshot there, as they were not when read as two verbs: neither half decides on the other.
   */
  readLockAndBlock(subject: string, blockKey: string | undefined, now: number): Promise<LockAndBlock>;

  /**
   * Keeps this failed code's clock-drift reading (null: the code was simply wrong) for `keepMs`
   * and returns the previous failure's (undefined: none kept).
   */
  swapDriftReading(subject: string, seconds: number | null, now: number, keepMs: number): Promise<number | null | undefined>;

  /**
   * Stores a new session and lists it under its subject; the subject's oldest live sessions beyond
   * `maxPerSubject` are deleted in the same step. Resolves to the hashes evicted.
   */
  issueSession(hash: string, session: StoredSession, maxPerSubject: number, now: number): Promise<readonly string[]>;
  /** The live session of `subject` under `hash`, or undefined (unknown, expired, another subject's). */
  getSession(hash: string, subject: string, now: number): Promise<StoredSession | undefined>;
  /** Deletes a live session of `subject`; true only for the one call that deleted it. */
  deleteSession(hash: string, subject: string, now: number): Promise<boolean>;
  /** Deletes every session of `subject`; resolves to the hashes of those that were live. */
  revokeAllSessions(subject: string, now: number): Promise<readonly string[]>;
  /** Takes a rate-limit token: N replicas sharing the store share the quota. */
  takeToken(key: string, now: number, window: TokenWindow): Promise<TokenTake>;

  /**
   * Keeps the keyed hash of a code just sent to contact `contactId` of `subject` for `ttlMs`, in
   * place of any earlier one: a new send replaces the old code, and its attempts start at 0.
   */
  putSentCode(subject: string, contactId: string, hash: string, now: number, ttlMs: number): Promise<void>;
  /**
   * One attempt at the live code of `contactId`: `used` when one of `hashes` equals it (compared in
   * constant time), and it is deleted (single use); else `wrong`, counted, and the code is deleted
   * at its `maxAttempts`th wrong attempt; `none` when no code is live. The same store work whatever
   * the outcome.
   */
  useSentCode(subject: string, contactId: string, hashes: readonly string[], now: number, maxAttempts: number): Promise<SentCodeUse>;

  /**
   * Keeps `value` (a ceremony's challenge record, ≤ 4 KiB) for `subject` and `ceremony` for
   * `keepMs`, replacing any earlier one of the same pair: one outstanding ceremony of a kind per subject.
   */
  putChallenge(subject: string, ceremony: string, value: string, now: number, keepMs: number): Promise<void>;
  /**
   * Takes the value put for (subject, ceremony) and deletes it in the same step, so of N concurrent
   * calls at most one gets it; undefined when none is kept or it expired at `now`.
   */
  takeChallenge(subject: string, ceremony: string, now: number): Promise<string | undefined>;
  /**
   * Reads the value put for (subject, ceremony) without taking it: what a record that lives for its
   * whole lifetime needs (the setup page's sign-in session); undefined when none is kept or it
   * expired at `now`. Ending it early is `takeChallenge`.
   */
  peekChallenge(subject: string, ceremony: string, now: number): Promise<string | undefined>;

  ping(): Promise<void>;
  close(): Promise<void>;
}

/**
 * What one replica tells the others to forget from their in-process caches. Subjects and hashes
 * only: never a token or a secret.
 */
export type Invalidation =
  /** One session ended (revoked or refreshed): forget it by its token hash. */
  | { readonly kind: 'session'; readonly hash: string }
  /** Every session of a subject ended. */
  | { readonly kind: 'sessions'; readonly subject: string }
  /** A subject's factors changed (enrolled, confirmed, removed, HOTP counter moved). */
  | { readonly kind: 'factors'; readonly subject: string };

/**
 * Cross-replica cache invalidation (Redis pub/sub in the shared store). Delivery is best effort:
 * every cache keeps a short TTL as the bound when a message is lost or the bus is down.
 */
export interface InvalidationBus {
  /** Resolves once the message is handed to the bus; rejects with ERR_STORE_UNAVAILABLE when it is down. */
  publish(message: Invalidation): Promise<void>;
  /** Every message published by any replica, this one included; returns an unsubscribe function. */
  subscribe(listener: (message: Invalidation) => void): () => void;
  close(): Promise<void>;
}
