import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openPostgresStore, type PostgresStore } from '../../src/store/postgres.js';
import type { DurableStore } from '../../src/store/types.js';
import { fakeClock, type FakeClock } from '../support/clock.js';
import { createTestSchema, type TestSchema } from '../support/postgres.js';
import { postgresOrSkip } from '../support/services.js';
import { active, contact, durableConformance, factor } from './durable-conformance.js';

const skip = await postgresOrSkip();

/** The durable conformance suite on PostgreSQL: a schema per test; each "replica" is a store with its own pool. */
durableConformance(
  'postgres',
  async (clock) => {
    const schema = await createTestSchema();
    const stores: PostgresStore[] = [];
    const open = async (migrate: 'on_start' | 'manual'): Promise<DurableStore> => {
      const store = await openPostgresStore(schema.config, { clock, migrate, schema: schema.name });
      stores.push(store);
      return store.durable;
    };
    return {
      durable: await open('on_start'),
      replica: () => open('manual'),
      async close() {
        for (const store of stores) await store.close();
        await schema.drop();
      },
    };
  },
  { skip },
);

describe('postgres store', { skip }, () => {
  let schema: TestSchema;
  let clock: FakeClock;
  const stores: PostgresStore[] = [];
  const open = async (over: Partial<TestSchema['config']> = {}): Promise<PostgresStore> => {
    const store = await openPostgresStore({ ...schema.config, ...over }, { clock, migrate: 'on_start', schema: schema.name });
    stores.push(store);
    return store;
  };
  beforeEach(async () => {
    clock = fakeClock();
    schema = await createTestSchema();
  });
  afterEach(async () => {
    for (const store of stores.splice(0)) await store.close();
    await schema.drop();
  });

  test('the tables are the durable ones (events included), keyed COLLATE "C", times BIGINT', async () => {
    await open();
    const columns = await schema.query<{ table_name: string; column_name: string; data_type: string; collation_name: string | null }>(
      `SELECT table_name, column_name, data_type, collation_name FROM information_schema.columns
       WHERE table_schema = $1 ORDER BY table_name, ordinal_position`,
      [schema.name],
    );
    const describe = (table: string) => columns.filter((c) => c.table_name === table).map((c) => `${c.column_name} ${c.data_type}${c.collation_name ? ` ${c.collation_name}` : ''}`);
    assert.deepEqual([...new Set(columns.map((c) => c.table_name))], ['audit_events', 'contacts', 'factors', 'outbox', 'recovery_codes', 'risk_seen', 'schema_migrations', 'webauthn_credentials']);
    assert.deepEqual(describe('contacts'), [
      'id text C',
      'subject text C',
      'channel text',
      'purpose text',
      'status text',
      'label text',
      'destination_kid text C',
      'destination_blob text',
      'created_at bigint',
      'pending_until bigint',
      'confirmed_at bigint',
    ]);
    assert.deepEqual(describe('factors'), [
      'id text C',
      'subject text C',
      'type text',
      'status text',
      'label text',
      'secret_kid text C',
      'secret_blob text',
      'algorithm text',
      'digits integer',
      'period_seconds integer',
      'counter bigint',
      'created_at bigint',
      'pending_until bigint',
      'confirmed_at bigint',
    ]);
    assert.deepEqual(describe('recovery_codes'), ['subject text C', 'hash text C', 'created_at bigint', 'used_at bigint']);
    assert.deepEqual(describe('webauthn_credentials'), [
      'id text C',
      'subject text C',
      'credential_id text C',
      'public_key_kid text C',
      'public_key_blob text',
      'sign_count bigint',
      'transports text',
      'kind text',
      'synced integer',
      'label text',
      'created_at bigint',
      'last_used_at bigint',
    ]);
    assert.deepEqual(describe('risk_seen'), ['subject text C', 'kind text', 'value text C', 'first_seen bigint', 'last_seen bigint']);
    assert.deepEqual(describe('outbox').slice(0, 7), ['id text C', 'kind text', 'target text', 'event text', 'payload text', 'created_at bigint', 'next_at bigint']);
    assert.deepEqual(describe('audit_events').slice(0, 5), ['id bigint', 'at bigint', 'subject text C', 'event text C', 'result text']);
    const indexes = await schema.query<{ indexname: string }>(`SELECT indexname FROM pg_indexes WHERE schemaname = $1 ORDER BY indexname`, [schema.name]);
    assert.deepEqual(
      indexes.map((i) => i.indexname),
      [
        'audit_events_at',
        'audit_events_pkey',
        'audit_events_subject',
        'contacts_by_kid',
        'contacts_by_subject',
        'contacts_pending',
        'contacts_pkey',
        'factors_by_kid',
        'factors_by_subject',
        'factors_pending',
        'factors_pkey',
        'outbox_due',
        'outbox_pkey',
        'recovery_codes_pkey',
        'risk_seen_pkey',
        'schema_migrations_pkey',
        'webauthn_by_kid',
        'webauthn_by_subject',
        'webauthn_credentials_credential_id_key',
        'webauthn_credentials_pkey',
      ],
    );
  });

  test('a statement past statement_timeout (a row held by another session) is ERR_STORE_UNAVAILABLE, and the store goes on', async () => {
    const store = await open({ statementTimeoutMs: 300 });
    await store.durable.createFactor(factor({ id: 'held' }));
    const holder = await schema.session();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT id FROM factors WHERE id = 'held' FOR UPDATE`);
      const started = Date.now();
      await assert.rejects(store.durable.activateFactor('held', 'alice', clock()), {
        name: 'StoreError',
        code: 'ERR_STORE_UNAVAILABLE',
        message: 'PostgreSQL is unavailable: the statement ran past statement_timeout or was cancelled (SQLSTATE 57014)',
      });
      assert.ok(Date.now() - started < 2000, `gave up after ${Date.now() - started} ms`);
      await holder.query('ROLLBACK');
    } finally {
      await holder.end();
    }
    assert.equal(await store.durable.activateFactor('held', 'alice', clock()), true);
  });

  test('a pool with every connection busy: the next call waits connect_timeout, then ERR_STORE_UNAVAILABLE', async () => {
    const store = await open({ poolMax: 1, connectTimeoutMs: 200, statementTimeoutMs: 3000 });
    await store.durable.createFactor(factor({ id: 'held' }));
    const holder = await schema.session();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT id FROM factors WHERE id = 'held' FOR UPDATE`);
      // Takes the pool's only connection and waits on the row lock.
      const blocked = store.durable.activateFactor('held', 'alice', clock());
      const started = Date.now();
      await assert.rejects(store.durable.getFactor('held'), {
        code: 'ERR_STORE_UNAVAILABLE',
        message: 'PostgreSQL is unavailable: no connection could be had within connect_timeout (the pool is exhausted or the server slow)',
      });
      const waited = Date.now() - started;
      assert.ok(waited >= 150 && waited < 1500, `waited ${waited} ms`);
      await holder.query('ROLLBACK');
      assert.equal(await blocked, true);
    } finally {
      await holder.end();
    }
  });

  test('expired pending factors and contacts are purged by cleanup()', async () => {
    const store = await open();
    await store.durable.createFactor(factor({ id: 'p1', pendingUntil: clock() + 10 }));
    await store.durable.createFactor(factor({ id: 'p2', pendingUntil: clock() + 20 }));
    await store.durable.createFactor(active({ id: 'a1' }));
    await store.durable.createContact(contact({ id: 'c1', pendingUntil: clock() + 10 }));
    clock.advance(10);
    assert.equal(await store.cleanup(), 2);
    assert.equal(await store.cleanup(), 0);
    const left = await schema.query<{ id: string }>('SELECT id FROM factors ORDER BY id');
    assert.deepEqual(left.map((r) => r.id), ['a1', 'p2']);
  });

  test('cleanup() tells which pending factors it purged, by type (the expired enrolments)', async () => {
    const purged: string[][] = [];
    const store = await openPostgresStore(schema.config, { clock, migrate: 'on_start', schema: schema.name, onPendingPurged: (types) => purged.push([...types].sort()) });
    stores.push(store);
    await store.durable.createFactor(factor({ id: 'p1', pendingUntil: clock() + 10 }));
    await store.durable.createFactor(factor({ id: 'p2', type: 'hotp', pendingUntil: clock() + 10 }));
    await store.durable.createFactor(active({ id: 'a1' }));
    clock.advance(10);
    assert.equal(await store.cleanup(), 2);
    assert.equal(await store.cleanup(), 0);
    assert.deepEqual(purged, [['hotp', 'totp']]);
  });
});
