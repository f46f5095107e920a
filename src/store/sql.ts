import type { FactorRecord, FactorStatus, FactorType, RecoveryCodeRecord, SealedSecret } from './types.js';

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

/** A factor is usable (visible) when active, or pending and not yet past pending_until. */
const LIVE_FACTOR = `(status = 'active' OR pending_until > ?)`;

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

  // Export and import (store export / import): every row, in an order both dialects agree on.
  exportFactors: `SELECT ${FACTOR_COLUMNS} FROM factors ORDER BY id`,
  exportRecoveryCodes: `SELECT subject, hash, created_at, used_at FROM recovery_codes ORDER BY subject, hash`,
  countFactors: `SELECT count(*) AS n FROM factors`,
  deleteAllFactors: `DELETE FROM factors`,
  deleteAllRecoveryCodes: `DELETE FROM recovery_codes`,
  /** params: subject, hash, createdAt, usedAt */
  importRecoveryCode: `INSERT INTO recovery_codes (subject, hash, created_at, used_at) VALUES (?, ?, ?, ?)`,
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
  /** params: subjects, hashes, createdAts, usedAts (arrays) — a batch of an import. */
  importRecoveryCodes: `INSERT INTO recovery_codes (subject, hash, created_at, used_at) SELECT * FROM unnest(?::text[], ?::text[], ?::bigint[], ?::bigint[])`,
  /** An import holds both tables for its whole transaction: no gateway writes between its check and its rows. */
  lockForImport: `LOCK TABLE factors, recovery_codes IN EXCLUSIVE MODE`,
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
