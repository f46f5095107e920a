import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { migratePostgres, migrateSqlite, postgresMigrationStatus, sqliteMigrationStatus } from '../../src/store/migrate.js';
import { openPostgresMigrator, openPostgresStore } from '../../src/store/postgres.js';
import { MIGRATIONS, type Migration } from '../../src/store/sql.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { fakeClock, T0 } from '../support/clock.js';
import { createTestSchema, type TestSchema } from '../support/postgres.js';
import { postgresOrSkip } from '../support/services.js';

const skip = await postgresOrSkip();

const versions = (list: readonly Migration[], after = 0): number[] => list.filter((m) => m.version > after).map((m) => m.version);
const SQLITE_LATEST = MIGRATIONS.sqlite.at(-1)!.version;
const POSTGRES_LATEST = MIGRATIONS.postgres.at(-1)!.version;

/** The known list plus one more migration that copies data, as a next release would add. */
function withNext(list: readonly Migration[], up: readonly string[]): Migration[] {
  return [...list, { version: list.at(-1)!.version + 1, up }];
}

describe('sqlite migrations', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mfa-migrate-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A file as gateway version 1 left it: the v1 statements, schema_version 1, a factor and a used code. */
  function writeV1File(): string {
    const path = join(dir, 'v1.db');
    const db = new Database(path);
    for (const statement of MIGRATIONS.sqlite[0]!.up) db.exec(statement);
    db.exec('CREATE TABLE schema_version (version INTEGER NOT NULL)');
    db.exec('INSERT INTO schema_version (version) VALUES (1)');
    db.prepare(
      `INSERT INTO factors (id, subject, type, status, label, secret_kid, secret_blob, algorithm, digits, period_seconds, counter, created_at, pending_until, confirmed_at)
       VALUES ('f-1', 'alice', 'hotp', 'active', 'key', 'k1', 'AAAA', 'SHA1', 6, 30, 9, ?, NULL, ?)`,
    ).run(T0, T0);
    db.prepare(`INSERT INTO recovery_codes (subject, hash, created_at, used_at) VALUES ('alice', 'k1$h', ?, ?)`).run(T0, T0 + 1);
    db.close();
    return path;
  }

  test('from empty: every migration applied in one go, the version recorded', () => {
    const db = new Database(':memory:');
    try {
      assert.deepEqual(sqliteMigrationStatus(db), { dialect: 'sqlite', current: 0, latest: SQLITE_LATEST, pending: versions(MIGRATIONS.sqlite) });
      assert.deepEqual(migrateSqlite(db), { applied: versions(MIGRATIONS.sqlite), status: { dialect: 'sqlite', current: SQLITE_LATEST, latest: SQLITE_LATEST, pending: [] } });
      assert.deepEqual(db.prepare('SELECT version FROM schema_version').all(), [{ version: SQLITE_LATEST }]);
      assert.deepEqual(migrateSqlite(db).applied, [], 'a second run has nothing to do');
    } finally {
      db.close();
    }
  });

  test('from the previous version (a v1 file): opening brings it to the latest and keeps its rows', async () => {
    const path = writeV1File();
    const store = openSqliteStore({ path, clock: fakeClock(T0) });
    try {
      assert.deepEqual(store.migrations, { applied: versions(MIGRATIONS.sqlite, 1), status: { dialect: 'sqlite', current: SQLITE_LATEST, latest: SQLITE_LATEST, pending: [] } });
      assert.equal((await store.durable.getFactor('f-1'))?.counter, 9);
      assert.deepEqual(await store.durable.consumeRecoveryCode('alice', 'k1$h', T0 + 2), { consumed: false, remaining: 0 });
    } finally {
      await store.close();
    }
  });

  test('v1 → v2: live sessions move to their table (not those before a revoke-all cut-off); used OTP steps stay used', async () => {
    const path = writeV1File();
    const v1 = new Database(path);
    const session = (subject: string, issuedAt: number) => JSON.stringify({ subject, method: 'totp', mfaTime: Math.floor(issuedAt / 1000), issuedAt, expiresAt: T0 + 3_600_000 });
    const put = v1.prepare('INSERT INTO ttl_entries (key, value, expires_at) VALUES (?, ?, ?)');
    put.run(`session:${'a'.repeat(64)}`, session('alice', T0), T0 + 3_600_000);
    put.run(`session:${'b'.repeat(64)}`, session('bob', T0 - 5_000), T0 + 3_600_000);
    put.run(`session:${'c'.repeat(64)}`, session('bob', T0), T0 + 3_600_000);
    put.run('sessions-before:bob', String(T0 - 1_000), T0 + 86_400_000);
    put.run('sessions-of:alice', JSON.stringify({ live: [{ hash: 'a'.repeat(64), expiresAt: T0 + 3_600_000 }] }), T0 + 3_600_000);
    put.run('otp-step:f-1', JSON.stringify({ step: 58_000_000, keepUntil: T0 + 3_600_000 }), T0 + 3_600_000);
    v1.close();

    const store = openSqliteStore({ path, clock: fakeClock(T0) });
    try {
      assert.equal((await store.ttl.getSession('a'.repeat(64), 'alice', T0))?.issuedAt, T0);
      assert.equal(await store.ttl.getSession('b'.repeat(64), 'bob', T0), undefined, 'issued before bob\'s cut-off');
      assert.equal((await store.ttl.getSession('c'.repeat(64), 'bob', T0))?.issuedAt, T0);
      assert.equal(await store.ttl.useOtpStep('f-1', 58_000_000, T0, 3_600_000), false, 'a step used before the upgrade is still used');
      assert.equal(await store.ttl.useOtpStep('f-1', 58_000_001, T0, 3_600_000), true);
      assert.deepEqual([...(await store.ttl.revokeAllSessions('alice', T0))], ['a'.repeat(64)]);
    } finally {
      await store.close();
    }
    const after = new Database(path, { readonly: true });
    try {
      assert.deepEqual(after.prepare(`SELECT key FROM ttl_entries WHERE key LIKE 'session%' ORDER BY key`).all(), []);
    } finally {
      after.close();
    }
  });

  test('v6 → v7: sessions keep their rows, now keyed by (subject, hash), and every per-subject verb still finds them', async () => {
    const path = join(dir, 'v6.db');
    const v6 = new Database(path);
    migrateSqlite(v6, MIGRATIONS.sqlite.filter((m) => m.version <= 6));
    const put = v6.prepare('INSERT INTO sessions (hash, subject, method, mfa_time, issued_at, expires_at) VALUES (?, ?, ?, ?, ?, ?)');
    put.run('a'.repeat(64), 'alice', 'totp', Math.floor(T0 / 1000), T0, T0 + 3_600_000);
    put.run('b'.repeat(64), 'alice', 'hotp', Math.floor(T0 / 1000), T0 + 1, T0 + 7_200_000);
    put.run('c'.repeat(64), 'bob', 'totp', Math.floor(T0 / 1000), T0, T0 + 3_600_000);
    v6.close();

    const store = openSqliteStore({ path, clock: fakeClock(T0) });
    try {
      assert.deepEqual(store.migrations.applied, versions(MIGRATIONS.sqlite, 6));
      assert.equal((await store.ttl.getSession('b'.repeat(64), 'alice', T0))?.method, 'hotp');
      assert.equal(await store.ttl.getSession('c'.repeat(64), 'alice', T0), undefined, 'bob\'s session is not alice\'s');
      // A third session for alice with room for two: her earliest-expiring one goes.
      assert.deepEqual([...(await store.ttl.issueSession('d'.repeat(64), { subject: 'alice', method: 'totp', mfaTime: Math.floor(T0 / 1000), issuedAt: T0 + 2, expiresAt: T0 + 9_000_000 }, 2, T0 + 2))], ['a'.repeat(64)]);
      assert.equal(await store.ttl.deleteSession('b'.repeat(64), 'alice', T0 + 3), true);
      assert.deepEqual([...(await store.ttl.revokeAllSessions('alice', T0 + 4))], ['d'.repeat(64)]);
      assert.equal((await store.ttl.getSession('c'.repeat(64), 'bob', T0 + 4))?.issuedAt, T0);
    } finally {
      await store.close();
    }
    const after = new Database(path, { readonly: true });
    try {
      const key = (after.prepare('PRAGMA table_info(sessions)').all() as { name: string; pk: number }[]).filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
      assert.deepEqual(key.map((c) => c.name), ['subject', 'hash']);
      assert.deepEqual((after.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sessions' AND sql IS NOT NULL`).all() as { name: string }[]).map((i) => i.name), ['sessions_by_expiry']);
    } finally {
      after.close();
    }
  });

  test('a pending migration runs against the previous version\'s data; a failing one leaves nothing behind', () => {
    const db = new Database(writeV1File());
    try {
      const next = withNext(MIGRATIONS.sqlite.slice(0, 1), ['CREATE TABLE factor_ids (id TEXT PRIMARY KEY)', 'INSERT INTO factor_ids SELECT id FROM factors']);
      const broken = withNext(MIGRATIONS.sqlite.slice(0, 1), ['CREATE TABLE half_done (id TEXT)', 'INSERT INTO no_such_table VALUES (1)']);
      assert.throws(() => migrateSqlite(db, broken), /no such table: no_such_table/);
      assert.deepEqual(sqliteMigrationStatus(db, broken), { dialect: 'sqlite', current: 1, latest: 2, pending: [2] });
      assert.equal(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'half_done'`).get(), undefined);

      assert.deepEqual(sqliteMigrationStatus(db, next), { dialect: 'sqlite', current: 1, latest: 2, pending: [2] });
      assert.deepEqual(migrateSqlite(db, next), { applied: [2], status: { dialect: 'sqlite', current: 2, latest: 2, pending: [] } });
      assert.deepEqual(db.prepare('SELECT id FROM factor_ids').all(), [{ id: 'f-1' }]);
      assert.deepEqual(db.prepare('SELECT version FROM schema_version').all(), [{ version: 2 }]);
    } finally {
      db.close();
    }
  });

  test('a schema newer than this gateway knows is refused, by the runner and by status', () => {
    const path = writeV1File();
    const raw = new Database(path);
    raw.prepare('UPDATE schema_version SET version = ?').run(SQLITE_LATEST + 1);
    const message = `the database schema is version ${SQLITE_LATEST + 1}; this gateway knows up to ${SQLITE_LATEST} (downgrade is not supported)`;
    try {
      assert.throws(() => sqliteMigrationStatus(raw), { name: 'StoreError', code: 'ERR_STORE_SCHEMA_TOO_NEW', message });
    } finally {
      raw.close();
    }
    assert.throws(() => openSqliteStore({ path }), { name: 'StoreError', code: 'ERR_STORE_SCHEMA_TOO_NEW', message });
  });

  test('a migration list with a gap is refused before anything runs', () => {
    const db = new Database(':memory:');
    try {
      assert.throws(() => migrateSqlite(db, [{ version: 1, up: [] }, { version: 3, up: [] }]), {
        code: 'ERR_STORE_INVALID_OPTION',
        message: 'migration versions must count up from 1 without gaps (found 3 at position 2)',
      });
      assert.equal(db.prepare(`SELECT name FROM sqlite_master WHERE name = 'schema_version'`).get(), undefined);
    } finally {
      db.close();
    }
  });
});

describe('postgres migrations', { skip }, () => {
  let schema: TestSchema;
  beforeEach(async () => {
    schema = await createTestSchema();
  });
  afterEach(() => schema.drop());

  const ledger = () => schema.query<{ version: number; applied_at: string }>('SELECT version, applied_at FROM schema_migrations ORDER BY version');
  const tables = async () => (await schema.query<{ tablename: string }>('SELECT tablename FROM pg_tables WHERE schemaname = $1 ORDER BY tablename', [schema.name])).map((r) => r.tablename);

  test('from empty: status shows every version pending; migrate applies them under the injected clock', async () => {
    const migrator = openPostgresMigrator(schema.config, { clock: fakeClock(T0), schema: schema.name });
    try {
      assert.deepEqual(await migrator.status(), { dialect: 'postgres', current: 0, latest: POSTGRES_LATEST, pending: versions(MIGRATIONS.postgres) });
      assert.deepEqual(await tables(), [], 'status writes nothing');
      assert.deepEqual(await migrator.migrate(), { applied: versions(MIGRATIONS.postgres), status: { dialect: 'postgres', current: POSTGRES_LATEST, latest: POSTGRES_LATEST, pending: [] } });
      assert.deepEqual(await ledger(), versions(MIGRATIONS.postgres).map((version) => ({ version, applied_at: String(T0) })));
      assert.deepEqual(await tables(), ['audit_events', 'contacts', 'factors', 'outbox', 'recovery_codes', 'risk_seen', 'schema_migrations', 'webauthn_credentials']);
      assert.deepEqual((await migrator.migrate()).applied, []);
    } finally {
      await migrator.close();
    }
  });

  test('from the previous version: the next migration runs on its data, in one transaction with its ledger row', async () => {
    const session = await schema.session();
    try {
      await migratePostgres(session, T0);
      await session.query(`INSERT INTO recovery_codes (subject, hash, created_at) VALUES ('alice', 'k1$a', 1), ('bob', 'k1$b', 2)`);
      const broken = withNext(MIGRATIONS.postgres, ['CREATE TABLE half_done (id TEXT)', 'INSERT INTO no_such_table VALUES (1)']);
      await assert.rejects(migratePostgres(session, T0 + 1, broken), /relation "no_such_table" does not exist/);
      assert.deepEqual(await postgresMigrationStatus(session, broken), { dialect: 'postgres', current: POSTGRES_LATEST, latest: POSTGRES_LATEST + 1, pending: [POSTGRES_LATEST + 1] });
      assert.deepEqual(await tables(), ['audit_events', 'contacts', 'factors', 'outbox', 'recovery_codes', 'risk_seen', 'schema_migrations', 'webauthn_credentials']);

      const next = withNext(MIGRATIONS.postgres, ['CREATE TABLE subjects (subject TEXT PRIMARY KEY)', 'INSERT INTO subjects SELECT DISTINCT subject FROM recovery_codes']);
      assert.deepEqual(await migratePostgres(session, T0 + 2, next), {
        applied: [POSTGRES_LATEST + 1],
        status: { dialect: 'postgres', current: POSTGRES_LATEST + 1, latest: POSTGRES_LATEST + 1, pending: [] },
      });
      assert.deepEqual((await session.query('SELECT subject FROM subjects ORDER BY subject')).rows, [{ subject: 'alice' }, { subject: 'bob' }]);
      assert.deepEqual((await ledger()).at(-1), { version: POSTGRES_LATEST + 1, applied_at: String(T0 + 2) });
    } finally {
      await session.end();
    }
  });

  test('a schema newer than this gateway knows is refused in both modes and by status', async () => {
    const session = await schema.session();
    try {
      await migratePostgres(session, T0);
      await session.query('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [POSTGRES_LATEST + 1, T0]);
    } finally {
      await session.end();
    }
    const refusal = {
      name: 'StoreError',
      code: 'ERR_STORE_SCHEMA_TOO_NEW',
      message: `the database schema is version ${POSTGRES_LATEST + 1}; this gateway knows up to ${POSTGRES_LATEST} (downgrade is not supported)`,
    };
    for (const migrate of ['on_start', 'manual'] as const) await assert.rejects(openPostgresStore(schema.config, { migrate, schema: schema.name }), refusal);
    const migrator = openPostgresMigrator(schema.config, { schema: schema.name });
    try {
      await assert.rejects(migrator.status(), refusal);
    } finally {
      await migrator.close();
    }
  });

  test('manual mode with migrations pending refuses to open, naming the command, and changes nothing', async () => {
    await assert.rejects(openPostgresStore(schema.config, { migrate: 'manual', schema: schema.name }), {
      name: 'StoreError',
      code: 'ERR_STORE_SCHEMA_BEHIND',
      message: `the postgres schema is version 0 and this gateway needs ${POSTGRES_LATEST} (pending: ${versions(MIGRATIONS.postgres).join(', ')}); store.migrate is manual: run "mfa-gateway store migrate --config F"`,
    });
    assert.deepEqual(await tables(), []);
    const migrator = openPostgresMigrator(schema.config, { schema: schema.name });
    await migrator.migrate();
    await migrator.close();
    const store = await openPostgresStore(schema.config, { migrate: 'manual', schema: schema.name });
    assert.deepEqual(store.migrations, { applied: [], status: { dialect: 'postgres', current: POSTGRES_LATEST, latest: POSTGRES_LATEST, pending: [] } });
    await store.close();
  });

  test('five replicas starting at once on an empty schema: the migrations run once', async () => {
    const stores = await Promise.all(Array.from({ length: 5 }, () => openPostgresStore(schema.config, { migrate: 'on_start', schema: schema.name, clock: fakeClock(T0) })));
    try {
      assert.deepEqual(
        stores.map((s) => s.migrations.applied).sort((a, b) => b.length - a.length),
        [versions(MIGRATIONS.postgres), [], [], [], []],
      );
      assert.deepEqual(await ledger(), versions(MIGRATIONS.postgres).map((version) => ({ version, applied_at: String(T0) })));
    } finally {
      for (const store of stores) await store.close();
    }
  });

  test('a search_path naming no existing schema is refused plainly', async () => {
    const migrator = openPostgresMigrator(schema.config, { schema: `${schema.name}_missing` });
    try {
      await assert.rejects(migrator.migrate(), { code: 'ERR_STORE_INVALID_OPTION', message: 'no schema on the PostgreSQL search_path exists: create it, or fix search_path' });
      await assert.rejects(migrator.status(), { code: 'ERR_STORE_INVALID_OPTION', message: 'no schema on the PostgreSQL search_path exists: create it, or fix search_path' });
    } finally {
      await migrator.close();
    }
  });
});
