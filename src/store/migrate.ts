import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import { MIGRATIONS, POSTGRES_LEDGER, rebind, SQLITE_LEDGER, type Dialect, type Migration } from './sql.js';

/**
 * The one migration runner of both SQL dialects: versioned, forward-only, all pending migrations
 * and the ledger entry in ONE transaction, so a crash leaves the schema at the old version or the
 * new one, never between. The list is a parameter (default `MIGRATIONS[dialect]`), so the runner
 * is the same whatever versions a branch adds, and tests can play an older list.
 *
 * SQLite: `BEGIN IMMEDIATE` takes the file's write lock before the version is read, so two
 * processes opening a new file run the migrations once, in turn.
 * PostgreSQL: `pg_advisory_xact_lock` on this schema before the version is read, so two replicas
 * starting at once migrate once: the second waits, then reads the new version and has nothing to do.
 */

export interface MigrationStatus {
  readonly dialect: Dialect;
  /** The version the database is at (0: empty). */
  readonly current: number;
  /** The newest version this gateway knows. */
  readonly latest: number;
  /** Versions this gateway would apply, in order (empty when current ≥ latest). */
  readonly pending: readonly number[];
}

export interface MigrationResult {
  /** Versions applied by this call, in order (empty when another process had already applied them). */
  readonly applied: readonly number[];
  readonly status: MigrationStatus;
}

/** The command that applies pending migrations; named by ERR_STORE_SCHEMA_BEHIND. */
export const MIGRATE_COMMAND = 'mfa-gateway store migrate --config F';

/** Where `current` stands against `migrations`; refuses a schema newer than this gateway knows. */
export function planMigrations(dialect: Dialect, migrations: readonly Migration[], current: number): MigrationStatus {
  const latest = migrations.at(-1)?.version ?? 0;
  if (current > latest) {
    throw new StoreError('ERR_STORE_SCHEMA_TOO_NEW', `the database schema is version ${current}; this gateway knows up to ${latest} (downgrade is not supported)`);
  }
  return { dialect, current, latest, pending: migrations.filter((m) => m.version > current).map((m) => m.version) };
}

/** The refusal of `migrate: manual` when the schema is behind. */
export function schemaBehind(status: MigrationStatus): StoreError {
  return new StoreError(
    'ERR_STORE_SCHEMA_BEHIND',
    `the ${status.dialect} schema is version ${status.current} and this gateway needs ${status.latest} (pending: ${status.pending.join(', ')}); ` +
      `store.migrate is manual: run "${MIGRATE_COMMAND}"`,
  );
}

function checkList(migrations: readonly Migration[]): void {
  migrations.forEach((m, i) => {
    if (!Number.isSafeInteger(m.version) || m.version !== (migrations[i - 1]?.version ?? 0) + 1) {
      throw new StoreError('ERR_STORE_INVALID_OPTION', `migration versions must count up from 1 without gaps (found ${m.version} at position ${i + 1})`);
    }
  });
}

// ---- SQLite ------------------------------------------------------------------------------------

/** Reads the SQLite file's version without writing anything (a read-only handle will do). */
export function sqliteMigrationStatus(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS.sqlite): MigrationStatus {
  checkList(migrations);
  if (db.prepare(SQLITE_LEDGER.exists).get() === undefined) return planMigrations('sqlite', migrations, 0);
  const row = db.prepare(SQLITE_LEDGER.read).get() as { version: number } | undefined;
  return planMigrations('sqlite', migrations, row?.version ?? 0);
}

/** Brings the file to the newest version in `migrations`. */
export function migrateSqlite(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS.sqlite): MigrationResult {
  checkList(migrations);
  db.exec(SQLITE_LEDGER.create);
  return db
    .transaction((): MigrationResult => {
      const row = db.prepare(SQLITE_LEDGER.read).get() as { version: number } | undefined;
      const before = planMigrations('sqlite', migrations, row?.version ?? 0);
      for (const m of migrations) {
        if (m.version <= before.current) continue;
        for (const statement of m.up) db.exec(statement);
      }
      if (row === undefined) db.prepare(SQLITE_LEDGER.insert).run(before.latest);
      else if (before.pending.length > 0) db.prepare(SQLITE_LEDGER.update).run(before.latest);
      return { applied: before.pending, status: { ...before, current: before.latest, pending: [] } };
    })
    .immediate();
}

// ---- PostgreSQL --------------------------------------------------------------------------------

/** The slice of a pg client the runner uses; a `pg.PoolClient` is one. */
export interface PgQueryable {
  query(text: string, values?: unknown[]): Promise<{ rows: unknown[] }>;
}

/**
 * How long one migration statement, or the wait for another replica's migrations, may take: far
 * longer than a request's statement_timeout, since an index build on a large table is slow; bounded,
 * so a migration stuck behind a forgotten lock fails the start instead of hanging it.
 */
export const MIGRATION_STATEMENT_TIMEOUT_MS = 10 * 60_000;

async function one<T>(client: PgQueryable, text: string, values?: unknown[]): Promise<T> {
  const { rows } = await client.query(rebind(text), values);
  return rows[0] as T;
}

async function requireSchema(client: PgQueryable): Promise<void> {
  const { schema } = await one<{ schema: string | null }>(client, POSTGRES_LEDGER.schema);
  // current_schema() is NULL when no schema on the search_path exists: CREATE TABLE would fail obscurely.
  if (schema === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'no schema on the PostgreSQL search_path exists: create it, or fix search_path');
}

async function postgresVersion(client: PgQueryable): Promise<number> {
  const { ok } = await one<{ ok: boolean }>(client, POSTGRES_LEDGER.exists);
  if (!ok) return 0;
  return (await one<{ version: number }>(client, POSTGRES_LEDGER.read)).version;
}

/** Reads the schema's version without writing or locking anything. */
export async function postgresMigrationStatus(client: PgQueryable, migrations: readonly Migration[] = MIGRATIONS.postgres): Promise<MigrationStatus> {
  checkList(migrations);
  await requireSchema(client);
  return planMigrations('postgres', migrations, await postgresVersion(client));
}

/**
 * Brings the schema to the newest version in `migrations`, each recorded with `now` (unix ms, from
 * the injected clock). `client` must be a dedicated connection: the runner opens a transaction on
 * it, and rolls it back on any failure.
 */
export async function migratePostgres(client: PgQueryable, now: number, migrations: readonly Migration[] = MIGRATIONS.postgres): Promise<MigrationResult> {
  checkList(migrations);
  await client.query('BEGIN');
  try {
    await client.query(`SET LOCAL statement_timeout = ${MIGRATION_STATEMENT_TIMEOUT_MS}`);
    await requireSchema(client);
    await client.query(POSTGRES_LEDGER.lock);
    await client.query(POSTGRES_LEDGER.create);
    const before = planMigrations('postgres', migrations, await postgresVersion(client));
    for (const m of migrations) {
      if (m.version <= before.current) continue;
      for (const statement of m.up) await client.query(statement);
      await client.query(rebind(POSTGRES_LEDGER.insert), [m.version, now]);
    }
    await client.query('COMMIT');
    return { applied: before.pending, status: { ...before, current: before.latest, pending: [] } };
  } catch (error) {
    // A lost connection cannot roll back, and the server discards the transaction anyway.
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}
