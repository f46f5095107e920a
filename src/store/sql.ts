import type { FactorRecord, FactorStatus, FactorType, SealedSecret } from './types.js';

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

/** Applied in order inside one write transaction; the schema_version row records the last one. */
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
  // The shared backend (a later issue) fills this in: BIGINT times, TEXT→TEXT, same names.
  postgres: [],
};

const FACTOR_COLUMNS =
  'id, subject, type, status, label, secret_kid, secret_blob, algorithm, digits, period_seconds, counter, created_at, pending_until, confirmed_at';

/** A factor is usable (visible) when active, or pending and not yet past pending_until. */
const LIVE_FACTOR = `(status = 'active' OR pending_until > ?)`;

const COMMON = {
  createSchemaVersion: `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`,
  readSchemaVersion: `SELECT version FROM schema_version`,
  insertSchemaVersion: `INSERT INTO schema_version (version) VALUES (?)`,
  updateSchemaVersion: `UPDATE schema_version SET version = ?`,
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
  /** params: now */
  purgePendingFactors: `DELETE FROM factors WHERE status = 'pending' AND pending_until <= ?`,

  /** params: subject */
  deleteRecoveryCodes: `DELETE FROM recovery_codes WHERE subject = ?`,
  /** params: subject, hash, createdAt */
  insertRecoveryCode: `INSERT INTO recovery_codes (subject, hash, created_at) VALUES (?, ?, ?)`,
  /** params: usedAt, subject, hash — the check-and-set itself. */
  consumeRecoveryCode: `UPDATE recovery_codes SET used_at = ? WHERE subject = ? AND hash = ? AND used_at IS NULL`,
  /** params: subject */
  countRecoveryCodes: `SELECT count(*) AS n FROM recovery_codes WHERE subject = ? AND used_at IS NULL`,

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
