import type { ContactChannel, ContactPurpose, ContactRecord, FactorRecord, FactorStatus, FactorType, RecoveryCodeRecord, SealedSecret, WebAuthnCredentialRecord, WebAuthnKind } from './types.js';

/**
 * Every SQL statement of the durable and TTL stores, in one place. Statements use `?` placeholders
 * in positional order; a PostgreSQL driver rebinds them to `$1…$n` (as Authelia's `Rebind` does)
 * and overrides only the entries whose dialect differs (`statementsFor('postgres', …)`).
 * Times are unix milliseconds, set from the injected clock, never from the database's own clock.
 */

export type Dialect = 'sqlite' | 'postgres';

export interface Migration {
  readonly version: number;
  readonly up: readonly string[];
}

/**
 * E-mail addresses and phone numbers codes are sent to, as factors or backup contacts: the life of a
 * pending factor (pending_until, activation by compare-and-set) and a destination sealed like a
 * factor secret (kid + blob, bound to subject and id). One table for both dialects: times as
 * `time` (BIGINT in PostgreSQL), keys with `collate` (byte order in PostgreSQL, as SQLite sorts).
 */
function contactsTable(time: string, collate = ''): string[] {
  return [
    `CREATE TABLE contacts (
      id TEXT${collate} PRIMARY KEY,
      subject TEXT${collate} NOT NULL,
      channel TEXT NOT NULL CHECK (channel IN ('email', 'sms')),
      purpose TEXT NOT NULL CHECK (purpose IN ('factor', 'backup')),
      status TEXT NOT NULL CHECK (status IN ('pending', 'active')),
      label TEXT NOT NULL,
      destination_kid TEXT${collate} NOT NULL,
      destination_blob TEXT NOT NULL,
      created_at ${time} NOT NULL,
      pending_until ${time},
      confirmed_at ${time},
      CHECK (status = 'active' OR pending_until IS NOT NULL)
    )`,
    `CREATE INDEX contacts_by_subject ON contacts (subject, created_at)`,
    `CREATE INDEX contacts_by_kid ON contacts (destination_kid)`,
    `CREATE INDEX contacts_pending ON contacts (pending_until) WHERE status = 'pending'`,
  ];
}

/**
 * `webauthn_credentials` in either dialect: `collate` on the keys (PostgreSQL sorts them byte-wise
 * like SQLite then), `time` for unix-ms columns. `synced` is 0/1 in both, so one statement binds it.
 */
function webauthnTable(collate: string, time = 'INTEGER'): string {
  return `CREATE TABLE webauthn_credentials (
          id TEXT${collate} PRIMARY KEY,
          subject TEXT${collate} NOT NULL,
          credential_id TEXT${collate} NOT NULL UNIQUE,
          public_key_kid TEXT${collate} NOT NULL,
          public_key_blob TEXT NOT NULL,
          sign_count ${time} NOT NULL CHECK (sign_count >= 0),
          transports TEXT NOT NULL,
          kind TEXT NOT NULL CHECK (kind IN ('security_key', 'platform')),
          synced INTEGER NOT NULL CHECK (synced IN (0, 1)),
          label TEXT NOT NULL,
          created_at ${time} NOT NULL,
          last_used_at ${time}
        )`;
}
const WEBAUTHN_INDEXES = [
  `CREATE INDEX webauthn_by_subject ON webauthn_credentials (subject, created_at)`,
  `CREATE INDEX webauthn_by_kid ON webauthn_credentials (public_key_kid)`,
];

/**
 * Branch events (issue 13): the audit trail, the webhook / e-mail outbox, and what each subject was
 * first and last seen from (country, hashed device). One definition for both dialects: `time` is
 * BIGINT in PostgreSQL, `collate` keeps keys in byte order there, as SQLite sorts them.
 * Audit rows hold no code, token or secret: the event's fields are a typed, secret-free JSON object.
 */
function eventsTables(time: string, collate = '', serial = 'INTEGER PRIMARY KEY AUTOINCREMENT'): string[] {
  return [
    `CREATE TABLE audit_events (
      id ${serial},
      at ${time} NOT NULL,
      subject TEXT${collate} NOT NULL,
      event TEXT${collate} NOT NULL,
      result TEXT NOT NULL CHECK (result IN ('success', 'failure', 'info')),
      request_id TEXT,
      client_ip TEXT,
      country TEXT,
      device TEXT,
      route TEXT,
      factor_id TEXT,
      method TEXT,
      reason TEXT,
      detail TEXT NOT NULL
    )`,
    `CREATE INDEX audit_events_at ON audit_events (at, id)`,
    `CREATE INDEX audit_events_subject ON audit_events (subject, at, id)`,
    `CREATE TABLE outbox (
      id TEXT${collate} PRIMARY KEY,
      kind TEXT NOT NULL CHECK (kind IN ('webhook', 'email')),
      target TEXT NOT NULL,
      event TEXT NOT NULL,
      payload TEXT NOT NULL,
      created_at ${time} NOT NULL,
      next_at ${time} NOT NULL,
      attempts INTEGER NOT NULL DEFAULT 0,
      state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
      lease_owner TEXT,
      lease_until ${time},
      last_error TEXT,
      done_at ${time}
    )`,
    `CREATE INDEX outbox_due ON outbox (next_at) WHERE state = 'pending'`,
    `CREATE TABLE risk_seen (
      subject TEXT${collate} NOT NULL,
      kind TEXT NOT NULL CHECK (kind IN ('country', 'device')),
      value TEXT${collate} NOT NULL,
      first_seen ${time} NOT NULL,
      last_seen ${time} NOT NULL,
      PRIMARY KEY (subject, kind, value)
    )`,
  ];
}

/**
 * Forward-only, applied in order inside one write transaction by src/store/migrate.ts, which records
 * the version reached (SQLite: the one schema_version row; PostgreSQL: a schema_migrations row per
 * migration). A released migration is never edited: a change is a new version.
 */
export const MIGRATIONS: Readonly<Record<Dialect, readonly Migration[]>> = {
  sqlite: [
    {
      version: 1,
      up: [
        `CREATE TABLE factors (
          id TEXT PRIMARY KEY,
          subject TEXT NOT NULL,
          type TEXT NOT NULL CHECK (type IN ('totp', 'hotp')),
          status TEXT NOT NULL CHECK (status IN ('pending', 'active')),
          label TEXT NOT NULL,
          secret_kid TEXT NOT NULL,
          secret_blob TEXT NOT NULL,
          algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
          digits INTEGER NOT NULL,
          period_seconds INTEGER NOT NULL,
          counter INTEGER NOT NULL,
          created_at INTEGER NOT NULL,
          pending_until INTEGER,
          confirmed_at INTEGER,
          CHECK (status = 'active' OR pending_until IS NOT NULL)
        )`,
        `CREATE INDEX factors_by_subject ON factors (subject, created_at)`,
        `CREATE INDEX factors_by_kid ON factors (secret_kid)`,
        `CREATE INDEX factors_pending ON factors (pending_until) WHERE status = 'pending'`,
        `CREATE TABLE recovery_codes (
          subject TEXT NOT NULL,
          hash TEXT NOT NULL,
          created_at INTEGER NOT NULL,
          used_at INTEGER,
          PRIMARY KEY (subject, hash)
        )`,
        `CREATE TABLE ttl_entries (
          key TEXT PRIMARY KEY,
          value TEXT NOT NULL,
          expires_at INTEGER NOT NULL
        )`,
        `CREATE INDEX ttl_by_expiry ON ttl_entries (expires_at)`,
      ],
    },
    {
      // Sessions get their own table: revoking all of a subject's sessions and capping them per
      // subject become single statements, where v1 kept a JSON list per subject beside each session.
      version: 2,
      up: [
        `CREATE TABLE sessions (
          hash TEXT PRIMARY KEY,
          subject TEXT NOT NULL,
          method TEXT NOT NULL,
          mfa_time INTEGER NOT NULL,
          issued_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL
        )`,
        `CREATE INDEX sessions_by_subject ON sessions (subject, expires_at)`,
        `CREATE INDEX sessions_by_expiry ON sessions (expires_at)`,
        // Live v1 sessions move over (issued before a revoke-all cut-off: left behind, i.e. dead).
        `INSERT INTO sessions (hash, subject, method, mfa_time, issued_at, expires_at)
          SELECT substr(s.key, 9), json_extract(s.value, '$.subject'), json_extract(s.value, '$.method'),
            json_extract(s.value, '$.mfaTime'), json_extract(s.value, '$.issuedAt'), json_extract(s.value, '$.expiresAt')
          FROM ttl_entries AS s
          WHERE s.key LIKE 'session:%' AND json_valid(s.value)
            AND json_extract(s.value, '$.subject') IS NOT NULL
            AND NOT EXISTS (
              SELECT 1 FROM ttl_entries AS c
              WHERE c.key = 'sessions-before:' || json_extract(s.value, '$.subject')
                AND CAST(c.value AS INTEGER) >= json_extract(s.value, '$.issuedAt')
            )`,
        `DELETE FROM ttl_entries WHERE key LIKE 'session:%' OR key LIKE 'sessions-of:%' OR key LIKE 'sessions-before:%'`,
        // A used OTP step becomes a bare integer, so one upsert can compare it (forward-only).
        `UPDATE ttl_entries SET value = CAST(json_extract(value, '$.step') AS TEXT)
          WHERE key LIKE 'otp-step:%' AND json_valid(value) AND json_type(value, '$.step') = 'integer'`,
      ],
    },
    // E-mail / SMS contacts.
    { version: 3, up: contactsTable('INTEGER') },
    {
      // WebAuthn credentials get a table of their own rather than a factor type: their columns share
      // nothing with an OTP secret's, and no existing table is rebuilt (other factor kinds add theirs).
      version: 4,
      up: [webauthnTable(''), ...WEBAUTHN_INDEXES],
    },
    // Audit trail, outbox, risk_seen (issue 13).
    { version: 5, up: eventsTables('INTEGER') },
    {
      // The two tables every verification writes become WITHOUT ROWID, keyed by their text key: a
      // rowid table with a TEXT PRIMARY KEY is two b-trees (rows, and the key's index), and each b-tree
      // a commit touches is one more page appended to the WAL. One page fewer per table per write:
      // a session insert 4 → 3 pages, a used-step upsert 3 → 2 (bench/results/issue-11-progress.md).
      version: 6,
      up: [
        `CREATE TABLE ttl_entries_v6 (
          key TEXT PRIMARY KEY,
          value TEXT NOT NULL,
          expires_at INTEGER NOT NULL
        ) WITHOUT ROWID`,
        `INSERT INTO ttl_entries_v6 (key, value, expires_at) SELECT key, value, expires_at FROM ttl_entries`,
        `DROP TABLE ttl_entries`,
        `ALTER TABLE ttl_entries_v6 RENAME TO ttl_entries`,
        `CREATE INDEX ttl_by_expiry ON ttl_entries (expires_at)`,
        `CREATE TABLE sessions_v6 (
          hash TEXT PRIMARY KEY,
          subject TEXT NOT NULL,
          method TEXT NOT NULL,
          mfa_time INTEGER NOT NULL,
          issued_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL
        ) WITHOUT ROWID`,
        `INSERT INTO sessions_v6 (hash, subject, method, mfa_time, issued_at, expires_at)
          SELECT hash, subject, method, mfa_time, issued_at, expires_at FROM sessions`,
        `DROP TABLE sessions`,
        `ALTER TABLE sessions_v6 RENAME TO sessions`,
        `CREATE INDEX sessions_by_subject ON sessions (subject, expires_at)`,
        `CREATE INDEX sessions_by_expiry ON sessions (expires_at)`,
      ],
    },
    {
      // Sessions keyed by (subject, hash): every read of one names its subject too, and the per-subject
      // work (drop expired, evict, revoke all) reads a few adjacent rows. The table is then its own
      // subject index, so an issue writes one random page instead of two (the hash key's and the
      // index's): 61–74 → 33–37 µs CPU per issue, 40,000 subjects, 25 issues a commit, in isolation
      // (bench/results/issue-11-progress.md).
      version: 7,
      up: [
        `CREATE TABLE sessions_v7 (
          subject TEXT NOT NULL,
          hash TEXT NOT NULL,
          method TEXT NOT NULL,
          mfa_time INTEGER NOT NULL,
          issued_at INTEGER NOT NULL,
          expires_at INTEGER NOT NULL,
          PRIMARY KEY (subject, hash)
        ) WITHOUT ROWID`,
        `INSERT INTO sessions_v7 (subject, hash, method, mfa_time, issued_at, expires_at)
          SELECT subject, hash, method, mfa_time, issued_at, expires_at FROM sessions`,
        `DROP TABLE sessions`,
        `ALTER TABLE sessions_v7 RENAME TO sessions`,
        `CREATE INDEX sessions_by_expiry ON sessions (expires_at)`,
      ],
    },
  ],
  // The durable tables only (Redis holds the TTL state): SQLite's columns, constraints and indexes,
  // times and the HOTP counter as BIGINT, and COLLATE "C" on the keys so that ORDER BY id (export,
  // rewrap) and ORDER BY created_at, id sort byte-wise, as SQLite's BINARY collation does.
  postgres: [
    {
      version: 1,
      up: [
        `CREATE TABLE factors (
          id TEXT COLLATE "C" PRIMARY KEY,
          subject TEXT COLLATE "C" NOT NULL,
          type TEXT NOT NULL CHECK (type IN ('totp', 'hotp')),
          status TEXT NOT NULL CHECK (status IN ('pending', 'active')),
          label TEXT NOT NULL,
          secret_kid TEXT COLLATE "C" NOT NULL,
          secret_blob TEXT NOT NULL,
          algorithm TEXT NOT NULL CHECK (algorithm IN ('SHA1', 'SHA256', 'SHA512')),
          digits INTEGER NOT NULL,
          period_seconds INTEGER NOT NULL,
          counter BIGINT NOT NULL,
          created_at BIGINT NOT NULL,
          pending_until BIGINT,
          confirmed_at BIGINT,
          CHECK (status = 'active' OR pending_until IS NOT NULL)
        )`,
        `CREATE INDEX factors_by_subject ON factors (subject, created_at)`,
        `CREATE INDEX factors_by_kid ON factors (secret_kid)`,
        `CREATE INDEX factors_pending ON factors (pending_until) WHERE status = 'pending'`,
        `CREATE TABLE recovery_codes (
          subject TEXT COLLATE "C" NOT NULL,
          hash TEXT COLLATE "C" NOT NULL,
          created_at BIGINT NOT NULL,
          used_at BIGINT,
          PRIMARY KEY (subject, hash)
        )`,
      ],
    },
    // E-mail / SMS contacts.
    { version: 2, up: contactsTable('BIGINT', ' COLLATE "C"') },
    {
      version: 3,
      up: [webauthnTable(' COLLATE "C"', 'BIGINT'), ...WEBAUTHN_INDEXES],
    },
    // Audit trail, outbox, risk_seen (issue 13).
    { version: 4, up: eventsTables('BIGINT', ' COLLATE "C"', 'BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY') },
  ],
};

/** SQLite's ledger: one row holding the version reached (files in the field have it, so it stays). */
export const SQLITE_LEDGER = {
  create: `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`,
  exists: `SELECT 1 AS ok FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'`,
  read: `SELECT version FROM schema_version`,
  insert: `INSERT INTO schema_version (version) VALUES (?)`,
  update: `UPDATE schema_version SET version = ?`,
} as const;

/**
 * PostgreSQL's ledger: a row per migration with when it was applied, so an operator of a shared
 * database sees its history. Everything is qualified by current_schema(), the first schema of the
 * search_path, which is where CREATE TABLE puts tables: NULL there means that schema does not exist.
 */
export const POSTGRES_LEDGER = {
  schema: `SELECT current_schema() AS schema`,
  /**
   * Serialises migrators of this schema until COMMIT; other schemas on the server are not held up.
   * 1835426097 is ASCII "mfa1", the namespace of our advisory locks; the second key says which lock.
   */
  lock: `SELECT pg_advisory_xact_lock(1835426097, hashtext('migrate:' || current_schema()))`,
  create: `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)`,
  exists: `SELECT to_regclass(quote_ident(current_schema()) || '.schema_migrations') IS NOT NULL AS ok`,
  read: `SELECT coalesce(max(version), 0) AS version FROM schema_migrations`,
  /** params: version, appliedAt */
  insert: `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
} as const;

const FACTOR_COLUMNS =
  'id, subject, type, status, label, secret_kid, secret_blob, algorithm, digits, period_seconds, counter, created_at, pending_until, confirmed_at';

const WEBAUTHN_COLUMNS = 'id, subject, credential_id, public_key_kid, public_key_blob, sign_count, transports, kind, synced, label, created_at, last_used_at';

/** A factor is usable (visible) when active, or pending and not yet past pending_until. */
const LIVE_FACTOR = `(status = 'active' OR pending_until > ?)`;

const CONTACT_COLUMNS = 'id, subject, channel, purpose, status, label, destination_kid, destination_blob, created_at, pending_until, confirmed_at';

const COMMON = {
  ping: `SELECT 1 AS ok`,

  insertFactor: `INSERT INTO factors (${FACTOR_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  /** params: id, now */
  getFactor: `SELECT ${FACTOR_COLUMNS} FROM factors WHERE id = ? AND ${LIVE_FACTOR}`,
  /** params: subject, now */
  listFactors: `SELECT ${FACTOR_COLUMNS} FROM factors WHERE subject = ? AND ${LIVE_FACTOR} ORDER BY created_at, id`,
  /** params: confirmedAt, id, subject, now — one statement: still pending, same owner, unexpired. */
  activateFactor: `UPDATE factors SET status = 'active', pending_until = NULL, confirmed_at = ?
    WHERE id = ? AND subject = ? AND status = 'pending' AND pending_until > ?`,
  /** params: id, subject */
  deleteFactor: `DELETE FROM factors WHERE id = ? AND subject = ?`,
  /** params: next, id, expected */
  advanceHotpCounter: `UPDATE factors SET counter = ? WHERE id = ? AND type = 'hotp' AND counter = ?`,
  /** params: nextKid, nextBlob, id, expectedKid, expectedBlob */
  replaceSecret: `UPDATE factors SET secret_kid = ?, secret_blob = ? WHERE id = ? AND secret_kid = ? AND secret_blob = ?`,
  /** params: kid, limit */
  factorsNotSealedWith: `SELECT ${FACTOR_COLUMNS} FROM factors WHERE secret_kid <> ? ORDER BY id LIMIT ?`,
  /** params: now — returns each purged factor's type: enrolments that expired unconfirmed, for the metrics. */
  purgePendingFactors: `DELETE FROM factors WHERE status = 'pending' AND pending_until <= ? RETURNING type`,

  /** params: subject */
  deleteRecoveryCodes: `DELETE FROM recovery_codes WHERE subject = ?`,
  /** params: subject, hash, createdAt */
  insertRecoveryCode: `INSERT INTO recovery_codes (subject, hash, created_at) VALUES (?, ?, ?)`,
  /** params: usedAt, subject, hash — the check-and-set itself. */
  consumeRecoveryCode: `UPDATE recovery_codes SET used_at = ? WHERE subject = ? AND hash = ? AND used_at IS NULL`,
  /** params: subject */
  countRecoveryCodes: `SELECT count(*) AS n FROM recovery_codes WHERE subject = ? AND used_at IS NULL`,
  /** params: label, id, subject */
  renameFactor: `UPDATE factors SET label = ? WHERE id = ? AND subject = ?`,

  insertWebAuthn: `INSERT INTO webauthn_credentials (${WEBAUTHN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  /** params: subject */
  listWebAuthn: `SELECT ${WEBAUTHN_COLUMNS} FROM webauthn_credentials WHERE subject = ? ORDER BY created_at, id`,
  /**
   * params: next, usedAt, id, next, next — forward-only in one statement: the WHERE clause is the
   * check (a higher count, or 0 → 0 for authenticators without a counter), so of two requests racing
   * with counters 5 and 6 the later count wins and the earlier one is refused, in any order.
   */
  advanceWebAuthnCounter: `UPDATE webauthn_credentials SET sign_count = ?, last_used_at = ?
    WHERE id = ? AND (sign_count < ? OR (sign_count = 0 AND CAST(? AS BIGINT) = 0))`,
  /** params: label, id, subject */
  renameWebAuthn: `UPDATE webauthn_credentials SET label = ? WHERE id = ? AND subject = ?`,
  /** params: id, subject */
  deleteWebAuthn: `DELETE FROM webauthn_credentials WHERE id = ? AND subject = ?`,
  /** params: nextKid, nextBlob, id, expectedKid, expectedBlob */
  replaceWebAuthnKey: `UPDATE webauthn_credentials SET public_key_kid = ?, public_key_blob = ? WHERE id = ? AND public_key_kid = ? AND public_key_blob = ?`,
  /** params: kid, limit */
  webAuthnNotSealedWith: `SELECT ${WEBAUTHN_COLUMNS} FROM webauthn_credentials WHERE public_key_kid <> ? ORDER BY id LIMIT ?`,

  // Export and import (store export / import): every row, in an order both dialects agree on.
  exportFactors: `SELECT ${FACTOR_COLUMNS} FROM factors ORDER BY id`,
  exportRecoveryCodes: `SELECT subject, hash, created_at, used_at FROM recovery_codes ORDER BY subject, hash`,
  exportWebAuthn: `SELECT ${WEBAUTHN_COLUMNS} FROM webauthn_credentials ORDER BY id`,
  /** Credentials are factors too: an import refuses to mix sets whichever table holds rows. */
  countFactors: `SELECT (SELECT count(*) FROM factors) + (SELECT count(*) FROM webauthn_credentials) AS n`,
  deleteAllFactors: `DELETE FROM factors`,
  deleteAllWebAuthn: `DELETE FROM webauthn_credentials`,
  deleteAllRecoveryCodes: `DELETE FROM recovery_codes`,
  /** params: subject, hash, createdAt, usedAt */
  importRecoveryCode: `INSERT INTO recovery_codes (subject, hash, created_at, used_at) VALUES (?, ?, ?, ?)`,

  // Contacts: the statements of factors, on their own table.
  insertContact: `INSERT INTO contacts (${CONTACT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  /** params: id, now */
  getContact: `SELECT ${CONTACT_COLUMNS} FROM contacts WHERE id = ? AND ${LIVE_FACTOR}`,
  /** params: subject, now */
  listContacts: `SELECT ${CONTACT_COLUMNS} FROM contacts WHERE subject = ? AND ${LIVE_FACTOR} ORDER BY created_at, id`,
  /** params: confirmedAt, id, subject, now */
  activateContact: `UPDATE contacts SET status = 'active', pending_until = NULL, confirmed_at = ?
    WHERE id = ? AND subject = ? AND status = 'pending' AND pending_until > ?`,
  /** params: id, subject */
  deleteContact: `DELETE FROM contacts WHERE id = ? AND subject = ?`,
  /** params: nextKid, nextBlob, id, expectedKid, expectedBlob */
  replaceContactDestination: `UPDATE contacts SET destination_kid = ?, destination_blob = ? WHERE id = ? AND destination_kid = ? AND destination_blob = ?`,
  /** params: kid, limit */
  contactsNotSealedWith: `SELECT ${CONTACT_COLUMNS} FROM contacts WHERE destination_kid <> ? ORDER BY id LIMIT ?`,
  /** params: now */
  purgePendingContacts: `DELETE FROM contacts WHERE status = 'pending' AND pending_until <= ?`,
  exportContacts: `SELECT ${CONTACT_COLUMNS} FROM contacts ORDER BY id`,
  countContacts: `SELECT count(*) AS n FROM contacts`,
  deleteAllContacts: `DELETE FROM contacts`,
} as const;

export type StatementName = keyof typeof COMMON;
export type Statements = Readonly<Record<StatementName, string>>;

const DIALECT_OVERRIDES: Readonly<Record<Dialect, Partial<Statements>>> = {
  sqlite: {},
  postgres: {},
};

export function statementsFor(dialect: Dialect, overrides: Partial<Statements> = {}): Statements {
  return Object.freeze({ ...COMMON, ...DIALECT_OVERRIDES[dialect], ...overrides });
}

/**
 * What only the PostgreSQL backend runs: SQLite gets the same effect from one BEGIN IMMEDIATE
 * transaction, which locks the whole file; PostgreSQL locks rows, so these say what to lock.
 */
export const POSTGRES_ONLY = {
  /**
   * params: usedAt, subject, hash, subject — the check-and-set and the count in ONE statement. The
   * UPDATE's row lock makes exactly one of N concurrent calls match `used_at IS NULL` (a waiter
   * re-checks the row once the winner commits). The count reads the statement's snapshot, taken
   * before the UPDATE, so it subtracts what the UPDATE consumed; a different code of the same subject
   * consumed at the same instant may not be subtracted yet (the count only feeds the audit line).
   */
  consumeRecoveryCode: `WITH consumed AS (
      UPDATE recovery_codes SET used_at = ? WHERE subject = ? AND hash = ? AND used_at IS NULL RETURNING 1
    )
    SELECT (SELECT count(*) FROM consumed) AS consumed,
      (SELECT count(*) FROM recovery_codes WHERE subject = ? AND used_at IS NULL) - (SELECT count(*) FROM consumed) AS remaining`,
  /**
   * params: subject — taken first in replaceRecoveryCodes' transaction: without it, two regenerations
   * at once would each delete only the rows their snapshot saw and both insert, leaving 20 codes.
   */
  lockRecoveryCodes: `SELECT pg_advisory_xact_lock(1835426097, hashtext('codes:' || current_schema() || ':' || ?))`,
  /** params: subject, hashes (text[]), createdAt */
  insertRecoveryCodes: `INSERT INTO recovery_codes (subject, hash, created_at) SELECT ?, unnest(?::text[]), ?`,
  /** params: one array per column of FACTOR_COLUMNS, in order — a batch of an import in one round trip. */
  importFactors: `INSERT INTO factors (${FACTOR_COLUMNS}) SELECT * FROM unnest(
    ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[],
    ?::integer[], ?::integer[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[])`,
  /** params: one array per column of WEBAUTHN_COLUMNS, in order — a batch of an import. */
  importWebAuthn: `INSERT INTO webauthn_credentials (${WEBAUTHN_COLUMNS}) SELECT * FROM unnest(
    ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::text[], ?::text[], ?::integer[], ?::text[], ?::bigint[], ?::bigint[])`,
  /** params: subjects, hashes, createdAts, usedAts (arrays) — a batch of an import. */
  importRecoveryCodes: `INSERT INTO recovery_codes (subject, hash, created_at, used_at) SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::bigint[])`,
  /** params: one array per column of CONTACT_COLUMNS, in order — a batch of an import. */
  importContacts: `INSERT INTO contacts (${CONTACT_COLUMNS}) SELECT * FROM unnest(
    ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::text[], ?::bigint[], ?::bigint[], ?::bigint[])`,
  /** An import holds the tables for its whole transaction: no gateway writes between its check and its rows. */
  lockForImport: `LOCK TABLE factors, recovery_codes, contacts, webauthn_credentials IN EXCLUSIVE MODE`,
} as const;

/**
 * `?` → `$1…$n`, in order, for PostgreSQL (Authelia's `Rebind`). A `?` inside a quoted literal or
 * identifier is left alone, so a statement never changes meaning by being rebound.
 */
export function rebind(statement: string): string {
  let n = 0;
  let out = '';
  let quote: string | undefined;
  for (const ch of statement) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      out += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      out += ch;
    } else {
      out += ch === '?' ? `$${++n}` : ch;
    }
  }
  return out;
}

/** The row shape every SQL backend returns for FACTOR_COLUMNS (numbers may arrive as bigint/string in PG). */
export interface FactorRow {
  readonly id: string;
  readonly subject: string;
  readonly type: string;
  readonly status: string;
  readonly label: string;
  readonly secret_kid: string;
  readonly secret_blob: string;
  readonly algorithm: string;
  readonly digits: number | bigint | string;
  readonly period_seconds: number | bigint | string;
  readonly counter: number | bigint | string;
  readonly created_at: number | bigint | string;
  readonly pending_until: number | bigint | string | null;
  readonly confirmed_at: number | bigint | string | null;
}

export function factorParams(f: FactorRecord): (string | number | null)[] {
  return [
    f.id,
    f.subject,
    f.type,
    f.status,
    f.label,
    f.secret.kid,
    f.secret.blob,
    f.algorithm,
    f.digits,
    f.periodSeconds,
    f.counter,
    f.createdAt,
    f.pendingUntil ?? null,
    f.confirmedAt ?? null,
  ];
}

/** recovery_codes as exportRecoveryCodes reads it. */
export interface RecoveryCodeRow {
  readonly subject: string;
  readonly hash: string;
  readonly created_at: number | bigint | string;
  readonly used_at: number | bigint | string | null;
}

export function rowToRecoveryCode(row: RecoveryCodeRow): RecoveryCodeRecord {
  return {
    subject: row.subject,
    hash: row.hash,
    createdAt: Number(row.created_at),
    ...(row.used_at !== null ? { usedAt: Number(row.used_at) } : {}),
  };
}

export function rowToFactor(row: FactorRow): FactorRecord {
  const secret: SealedSecret = { kid: row.secret_kid, blob: row.secret_blob };
  return {
    id: row.id,
    subject: row.subject,
    type: row.type as FactorType,
    status: row.status as FactorStatus,
    label: row.label,
    secret,
    algorithm: row.algorithm as FactorRecord['algorithm'],
    digits: Number(row.digits),
    periodSeconds: Number(row.period_seconds),
    counter: Number(row.counter),
    createdAt: Number(row.created_at),
    ...(row.pending_until !== null ? { pendingUntil: Number(row.pending_until) } : {}),
    ...(row.confirmed_at !== null ? { confirmedAt: Number(row.confirmed_at) } : {}),
  };
}

/** contacts as CONTACT_COLUMNS reads it. */
export interface ContactRow {
  readonly id: string;
  readonly subject: string;
  readonly channel: string;
  readonly purpose: string;
  readonly status: string;
  readonly label: string;
  readonly destination_kid: string;
  readonly destination_blob: string;
  readonly created_at: number | bigint | string;
  readonly pending_until: number | bigint | string | null;
  readonly confirmed_at: number | bigint | string | null;
}

export function contactParams(c: ContactRecord): (string | number | null)[] {
  return [c.id, c.subject, c.channel, c.purpose, c.status, c.label, c.destination.kid, c.destination.blob, c.createdAt, c.pendingUntil ?? null, c.confirmedAt ?? null];
}

export function rowToContact(row: ContactRow): ContactRecord {
  return {
    id: row.id,
    subject: row.subject,
    channel: row.channel as ContactChannel,
    purpose: row.purpose as ContactPurpose,
    status: row.status as FactorStatus,
    label: row.label,
    destination: { kid: row.destination_kid, blob: row.destination_blob },
    createdAt: Number(row.created_at),
    ...(row.pending_until !== null ? { pendingUntil: Number(row.pending_until) } : {}),
    ...(row.confirmed_at !== null ? { confirmedAt: Number(row.confirmed_at) } : {}),
  };
}

/** The row shape of WEBAUTHN_COLUMNS (numbers may arrive as bigint/string in PG). */
export interface WebAuthnRow {
  readonly id: string;
  readonly subject: string;
  readonly credential_id: string;
  readonly public_key_kid: string;
  readonly public_key_blob: string;
  readonly sign_count: number | bigint | string;
  readonly transports: string;
  readonly kind: string;
  readonly synced: number | bigint | string;
  readonly label: string;
  readonly created_at: number | bigint | string;
  readonly last_used_at: number | bigint | string | null;
}

export function webAuthnParams(c: WebAuthnCredentialRecord): (string | number | null)[] {
  return [
    c.id,
    c.subject,
    c.credentialId,
    c.publicKey.kid,
    c.publicKey.blob,
    c.signCount,
    c.transports.join(','),
    c.kind,
    c.synced ? 1 : 0,
    c.label,
    c.createdAt,
    c.lastUsedAt ?? null,
  ];
}

export function rowToWebAuthn(row: WebAuthnRow): WebAuthnCredentialRecord {
  return {
    id: row.id,
    subject: row.subject,
    credentialId: row.credential_id,
    publicKey: { kid: row.public_key_kid, blob: row.public_key_blob },
    signCount: Number(row.sign_count),
    transports: row.transports === '' ? [] : row.transports.split(','),
    kind: row.kind as WebAuthnKind,
    synced: Number(row.synced) === 1,
    label: row.label,
    createdAt: Number(row.created_at),
    ...(row.last_used_at !== null ? { lastUsedAt: Number(row.last_used_at) } : {}),
  };
}

// ---- branch events: statements of the audit trail, the outbox and risk_seen (store/events.ts). ----

const AUDIT_COLUMNS = 'at, subject, event, result, request_id, client_ip, country, device, route, factor_id, method, reason, detail';
const OUTBOX_COLUMNS = 'id, kind, target, event, payload, created_at, next_at, attempts, state, lease_owner, lease_until, last_error, done_at';

export const EVENT_STATEMENTS = {
  insertAudit: `INSERT INTO audit_events (${AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  /** Prefix of the audit query; store/events.ts appends the filters present, then ORDER BY / LIMIT. */
  selectAudit: `SELECT id, ${AUDIT_COLUMNS} FROM audit_events`,
  /** params: before (unix ms) */
  purgeAudit: `DELETE FROM audit_events WHERE at < ?`,
  insertOutbox: `INSERT INTO outbox (id, kind, target, event, payload, created_at, next_at, attempts, state) VALUES (?, ?, ?, ?, ?, ?, ?, 0, 'pending') ON CONFLICT (id) DO NOTHING`,
  /**
   * params: owner, leaseUntil, now, now, limit — takes a lease on due rows nobody holds (or whose
   * holder's lease ran out) in one statement: two replicas never hold one row at once.
   */
  claimOutbox: `UPDATE outbox SET lease_owner = ?, lease_until = ?, attempts = attempts + 1
    WHERE id IN (SELECT id FROM outbox WHERE state = 'pending' AND next_at <= ? AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_at, id LIMIT ?)
    RETURNING ${OUTBOX_COLUMNS}`,
  /** params: doneAt, id, owner */
  deliveredOutbox: `UPDATE outbox SET state = 'delivered', done_at = ?, lease_owner = NULL, lease_until = NULL, last_error = NULL WHERE id = ? AND lease_owner = ? AND state = 'pending'`,
  /** params: nextAt, lastError, id, owner */
  retryOutbox: `UPDATE outbox SET next_at = ?, last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ? AND state = 'pending'`,
  /** params: doneAt, lastError, id, owner */
  deadOutbox: `UPDATE outbox SET state = 'dead', done_at = ?, last_error = ?, lease_owner = NULL, lease_until = NULL WHERE id = ? AND lease_owner = ? AND state = 'pending'`,
  /** params: state, limit */
  listOutbox: `SELECT ${OUTBOX_COLUMNS} FROM outbox WHERE state = ? ORDER BY created_at, id LIMIT ?`,
  /** params: before — delivered and dead rows older than the retention. */
  purgeOutbox: `DELETE FROM outbox WHERE state <> 'pending' AND done_at < ?`,
  /**
   * params: subject, kind, value, now, now. One statement inserts or moves last_seen forward; it
   * returns first_seen only when it wrote, and first_seen = now only for the insert (an update needs
   * last_seen < now, so the row's first_seen is older).
   */
  markSeen: `INSERT INTO risk_seen (subject, kind, value, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (subject, kind, value) DO UPDATE SET last_seen = excluded.last_seen WHERE risk_seen.last_seen < excluded.last_seen
    RETURNING first_seen`,
  /** params: subject */
  listSeen: `SELECT kind, value, first_seen, last_seen FROM risk_seen WHERE subject = ? ORDER BY kind, first_seen, value`,
} as const;

export type EventStatementName = keyof typeof EVENT_STATEMENTS;

/** PostgreSQL: replicas claiming at once skip each other's locked rows instead of queueing on them. */
export const POSTGRES_EVENT_OVERRIDES: Partial<Record<EventStatementName, string>> = {
  claimOutbox: EVENT_STATEMENTS.claimOutbox.replace('LIMIT ?)', 'LIMIT ? FOR UPDATE SKIP LOCKED)'),
};
// ---- end of branch events ----
