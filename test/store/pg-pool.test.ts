import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { openPostgresMigrator, openPostgresStore, type PostgresStore } from '../../src/store/postgres.js';
import { pgPoolConfig, translatePgError } from '../../src/store/pg-pool.js';
import type { StoreError } from '../../src/store/errors.js';
import { fakeClock } from '../support/clock.js';
import { freePort } from '../support/http.js';
import { createTestSchema, postgresConfig, type TestSchema } from '../support/postgres.js';
import { POSTGRES_URL, postgresOrSkip } from '../support/services.js';
import { eventually } from '../support/wait.js';
import { startSilentServer, startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { active } from './durable-conformance.js';

const skip = await postgresOrSkip();
const SECRET_URL = (port: number) => `postgres://gateway:hunter2-secret@127.0.0.1:${port}/mfa`;
const CA = '-----BEGIN CERTIFICATE-----\nca\n-----END CERTIFICATE-----\n';

/** An error message must show neither the URL nor any part of its credentials. */
function assertNoSecrets(message: string, url: string): void {
  for (const part of [url, 'hunter2', 'gateway:', '/mfa']) assert.ok(!message.includes(part), `"${message}" shows ${part}`);
}

describe('pg pool config', () => {
  test('the policy maps to pg: pool size, timeouts, statement_timeout, application_name, TLS, search_path', () => {
    const url = SECRET_URL(5432);
    const config = postgresConfig(url, {
      poolMax: 7,
      idleTimeoutMs: 11_000,
      connectTimeoutMs: 2_500,
      statementTimeoutMs: 1_500,
      tls: { ca: CA, cert: 'CERT', key: 'KEY', serverName: 'db.internal', verify: true },
    });
    assert.deepEqual(pgPoolConfig(config, { schema: 'tenant_a' }), {
      connectionString: url,
      max: 7,
      idleTimeoutMillis: 11_000,
      connectionTimeoutMillis: 2_500,
      statement_timeout: 1_500,
      application_name: 'mfa-gateway',
      keepAlive: true,
      ssl: { rejectUnauthorized: true, ca: CA, cert: 'CERT', key: 'KEY', servername: 'db.internal' },
      options: '-c search_path=tenant_a',
    });
    assert.deepEqual(pgPoolConfig(postgresConfig(url, { tls: { verify: false } })).ssl, { rejectUnauthorized: false });
    assert.equal(pgPoolConfig(postgresConfig(url)).ssl, undefined);
  });

  test('bad options are refused by name, never showing the URL', () => {
    const url = SECRET_URL(5432);
    const cases: [Parameters<typeof pgPoolConfig>, string][] = [
      [[postgresConfig('mysql://gateway:hunter2-secret@h/mfa')], 'store.postgres.url must be a postgres:// or postgresql:// URL'],
      [[postgresConfig(`${url}?sslmode=require`, { tls: { verify: true } })], 'store.postgres.tls is set and the URL sets sslmode: configure TLS in one place'],
      [[postgresConfig(url, { poolMax: 0 })], 'store.postgres.poolMax must be a positive integer'],
      [[postgresConfig(url, { connectTimeoutMs: 1.5 })], 'store.postgres.connectTimeoutMs must be a positive integer of milliseconds'],
      [[postgresConfig(url), { schema: 'Bad-Name' }], 'option "schema" must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)'],
      [[postgresConfig(`${url}?options=-c%20search_path%3Dx`), { schema: 'y' }], 'option "schema" and the URL\'s options= parameter both set connection options: use one'],
    ];
    for (const [args, message] of cases) {
      assert.throws(() => pgPoolConfig(...args), (error: StoreError) => {
        assert.equal(error.code, 'ERR_STORE_INVALID_OPTION');
        assert.equal(error.message, message);
        assertNoSecrets(error.message, url);
        return true;
      });
    }
  });

  test('SQL errors that are not about reaching the database pass through unchanged', () => {
    const unique = Object.assign(new Error('duplicate key value violates unique constraint "factors_pkey"'), { code: '23505' });
    assert.equal(translatePgError(unique), unique);
    assert.deepEqual(
      [translatePgError(Object.assign(new Error('x'), { code: '57P01' })), translatePgError(new Error('Connection terminated unexpectedly'))].map((e) => (e as StoreError).message),
      ['PostgreSQL is unavailable: the server is shutting down (SQLSTATE 57P01)', 'PostgreSQL is unavailable: the connection was closed by the server or the network'],
    );
  });
});

describe('postgres store: the server cannot be reached', () => {
  test('nothing listening: opening fails at once with ERR_STORE_UNAVAILABLE, the URL and password nowhere', async () => {
    const url = SECRET_URL(await freePort());
    const started = Date.now();
    await assert.rejects(openPostgresStore(postgresConfig(url, { connectTimeoutMs: 2000 }), { migrate: 'on_start' }), (error: StoreError) => {
      assert.equal(error.name, 'StoreError');
      assert.equal(error.code, 'ERR_STORE_UNAVAILABLE');
      assert.equal(error.message, 'PostgreSQL is unavailable: cannot reach the server (ECONNREFUSED)');
      assertNoSecrets(error.message, url);
      assertNoSecrets(String(error.stack), url);
      return true;
    });
    assert.ok(Date.now() - started < 2000, `took ${Date.now() - started} ms`);
    const migrator = openPostgresMigrator(postgresConfig(url));
    try {
      await assert.rejects(migrator.status(), { code: 'ERR_STORE_UNAVAILABLE', message: 'PostgreSQL is unavailable: cannot reach the server (ECONNREFUSED)' });
    } finally {
      await migrator.close();
    }
  });

  test('a server that accepts and never answers: ERR_STORE_UNAVAILABLE once connect_timeout passes', async () => {
    const silent = await startSilentServer();
    const url = SECRET_URL(silent.port);
    try {
      const started = Date.now();
      await assert.rejects(openPostgresStore(postgresConfig(url, { connectTimeoutMs: 300 }), { migrate: 'manual' }), (error: StoreError) => {
        assert.equal(error.code, 'ERR_STORE_UNAVAILABLE');
        assert.equal(error.message, 'PostgreSQL is unavailable: connecting timed out (connect_timeout)');
        assertNoSecrets(error.message, url);
        return true;
      });
      const took = Date.now() - started;
      assert.ok(took >= 250 && took < 1500, `took ${took} ms`);
    } finally {
      await silent.close();
    }
  });
});

describe('postgres store: outages through a relay', { skip }, () => {
  let schema: TestSchema;
  let proxy: TcpProxy;
  let store: PostgresStore;
  const idleErrors: string[] = [];
  beforeEach(async () => {
    idleErrors.length = 0;
    schema = await createTestSchema();
    const target = new URL(POSTGRES_URL);
    proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port) });
    const url = new URL(POSTGRES_URL);
    url.port = String(proxy.port);
    store = await openPostgresStore(postgresConfig(url.toString(), { connectTimeoutMs: 1000 }), {
      clock: fakeClock(),
      migrate: 'on_start',
      schema: schema.name,
      onIdleError: (error) => idleErrors.push(`${error.code}: ${error.message}`),
    });
    await store.durable.createFactor(active({ id: 'f' }));
  });
  afterEach(async () => {
    await store.close();
    await proxy.close();
    await schema.drop();
  });

  /** The backends serving the store: the server sees the relay's outgoing ports as client_port. */
  const backends = () => schema.query<{ pid: number; application_name: string }>('SELECT pid, application_name FROM pg_stat_activity WHERE client_port = ANY($1::int[])', [proxy.upstreamPorts()]);

  test('connections name themselves mfa-gateway', async () => {
    const rows = await backends();
    assert.ok(rows.length >= 1);
    assert.deepEqual([...new Set(rows.map((r) => r.application_name))], ['mfa-gateway']);
  });

  test('the server goes away: idle connections fail quietly, calls get ERR_STORE_UNAVAILABLE; it comes back: calls work again', async () => {
    await proxy.stop();
    // The pool's idle connection is reset under it: reported, not thrown into the process.
    await eventually(() => idleErrors.length > 0);
    assert.deepEqual([...new Set(idleErrors)], ['ERR_STORE_UNAVAILABLE: PostgreSQL is unavailable: cannot reach the server (ECONNRESET)']);
    await assert.rejects(store.durable.getFactor('f'), { code: 'ERR_STORE_UNAVAILABLE', message: 'PostgreSQL is unavailable: cannot reach the server (ECONNREFUSED)' });
    await assert.rejects(store.durable.replaceRecoveryCodes('alice', ['k1$a'], 1), { code: 'ERR_STORE_UNAVAILABLE', message: 'PostgreSQL is unavailable: cannot reach the server (ECONNREFUSED)' });
    await assert.rejects(store.durable.ping(), { code: 'ERR_STORE_UNAVAILABLE', message: 'PostgreSQL is unavailable: cannot reach the server (ECONNREFUSED)' });
    await proxy.start();
    assert.equal((await store.durable.getFactor('f'))?.id, 'f');
    await store.durable.replaceRecoveryCodes('alice', ['k1$a'], 1);
    assert.equal(await store.durable.countRecoveryCodes('alice'), 1);
  });

  test('the server ends our sessions (pg_terminate_backend, as on shutdown): reported as idle errors, and the next call reconnects', async () => {
    const pids = (await backends()).map((r) => r.pid);
    assert.ok(pids.length >= 1);
    await schema.query('SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid', [pids]);
    await eventually(() => idleErrors.length >= pids.length);
    assert.deepEqual([...new Set(idleErrors)], ['ERR_STORE_UNAVAILABLE: PostgreSQL is unavailable: the server is shutting down (SQLSTATE 57P01)']);
    assert.equal((await store.durable.getFactor('f'))?.id, 'f');
  });
});
