import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MIGRATIONS } from '../../src/store/sql.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { fakeClock } from '../support/clock.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { freePort } from '../support/http.js';
import { createTestSchema, withSearchPath, type TestSchema } from '../support/postgres.js';
import { POSTGRES_URL, postgresOrSkip } from '../support/services.js';
import { populate } from '../store/durable-conformance.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));
const skip = await postgresOrSkip();

const SQLITE_LATEST = MIGRATIONS.sqlite.at(-1)!.version;
const SQLITE_ALL = MIGRATIONS.sqlite.map((m) => m.version).join(', ');
const ROUTES = `routes:
  - { name: r, match: { path_prefix: /x/ }, upstream: app, policy: public }
default: deny
`;

function store(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, 'store', ...args], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A policy file in `ws` whose store block is `storeYaml`; returns its path. */
function policy(ws: Workspace, name: string, storeYaml: string): string {
  const path = join(ws.dir, name);
  writeFileSync(path, policyHead(ws, 'http://127.0.0.1:1').replace(/^store: .*$/m, `store: ${storeYaml}`) + ROUTES);
  return path;
}

/** A PostgreSQL URL with a password the server (trust auth) ignores, so the tests can look for it in output. */
function secretUrl(url: string): string {
  const u = new URL(url);
  u.password = 'hunter2-secret';
  return u.toString();
}

const sharedStore = (url: string, migrate: 'manual' | 'on_start') => `{ kind: shared, migrate: ${migrate}, postgres: { url: "${url}" }, redis: { url: "redis://127.0.0.1:1" } }`;

function assertNoSecrets(output: string, url: string): void {
  assert.ok(!output.includes('hunter2') && !output.includes(url), `output shows credentials: ${output}`);
}

describe('cli: store (SQLite)', () => {
  let ws: Workspace;
  beforeEach(() => {
    ws = createWorkspace();
  });
  afterEach(() => ws.remove());

  test('status before any file exists (exit 3: pending), migrate, status again (exit 0), migrate again', () => {
    const config = policy(ws, 'sqlite.yaml', `{ kind: sqlite, path: ${join(ws.dir, 'data', 'mfa.db')} }`);
    assert.deepEqual(store(['status', '--config', config]), {
      status: 3,
      stdout: `backend: sqlite\nschema version: 0 (latest ${SQLITE_LATEST})\npending migrations: ${SQLITE_ALL}\n`,
      stderr: '',
    });
    assert.deepEqual(store(['migrate', '--config', config]), { status: 0, stdout: `sqlite schema migrated to version ${SQLITE_LATEST} (applied ${SQLITE_ALL})\n`, stderr: '' });
    assert.deepEqual(store(['status', '--config', config]), {
      status: 0,
      stdout: `backend: sqlite\nschema version: ${SQLITE_LATEST} (latest ${SQLITE_LATEST})\npending migrations: none\n`,
      stderr: '',
    });
    assert.deepEqual(store(['migrate', '--config', config]), { status: 0, stdout: `sqlite schema is at version ${SQLITE_LATEST}: nothing to apply\n`, stderr: '' });
  });

  test('usage mistakes exit 2 with one line saying what is missing', () => {
    const config = policy(ws, 'sqlite.yaml', `{ kind: sqlite, path: ${join(ws.dir, 'mfa.db')} }`);
    const usage = 'mfa-gateway: usage: store status | migrate | export --out FILE | import --in FILE [--replace]\n';
    assert.deepEqual(store(['--config', config]), { status: 2, stdout: '', stderr: usage });
    assert.deepEqual(store(['vacuum', '--config', config]), { status: 2, stdout: '', stderr: usage });
    assert.deepEqual(store(['export', '--config', config]), { status: 2, stdout: '', stderr: 'mfa-gateway: store export needs --out FILE\n' });
    assert.deepEqual(store(['import', '--config', config]), { status: 2, stdout: '', stderr: 'mfa-gateway: store import needs --in FILE\n' });
    assert.deepEqual(store(['export', '--out', join(ws.dir, 'x.jsonl'), '--config', config]), { status: 1, stdout: '', stderr: `mfa-gateway: no SQLite database at ${join(ws.dir, 'mfa.db')}\n` });
  });

  test('export writes a 0600 file and never over an existing one; an import of an unknown version changes nothing', async () => {
    const path = join(ws.dir, 'mfa.db');
    const source = openSqliteStore({ path, clock: fakeClock() });
    await populate(source.durable);
    await source.close();
    const config = policy(ws, 'sqlite.yaml', `{ kind: sqlite, path: ${path} }`);
    const out = join(ws.dir, 'export.jsonl');
    assert.deepEqual(store(['export', '--out', out, '--config', config]), { status: 0, stdout: `exported 5 factors, 13 recovery codes, 1 contact and 2 WebAuthn credentials from sqlite to ${out}\n`, stderr: '' });
    assert.equal(statSync(out).mode & 0o777, 0o600);
    assert.deepEqual(store(['export', '--out', out, '--config', config]), { status: 1, stdout: '', stderr: `mfa-gateway: EEXIST: file already exists, open '${out}'\n` });

    const future = join(ws.dir, 'future.jsonl');
    writeFileSync(future, readFileSync(out, 'utf8').replace('"version":2', '"version":9'));
    const empty = policy(ws, 'empty.yaml', `{ kind: sqlite, path: ${join(ws.dir, 'empty.db')} }`);
    assert.deepEqual(store(['import', '--in', future, '--config', empty]), {
      status: 1,
      stdout: '',
      stderr: `mfa-gateway: ${future}:1: export format version 9 is not supported (this gateway reads versions 1 and 2)\n`,
    });
    assert.equal(store(['status', '--config', empty]).status, 3, 'the target was not even created');
  });
});

describe('cli: store (PostgreSQL)', { skip }, () => {
  let ws: Workspace;
  let schema: TestSchema;
  beforeEach(async () => {
    ws = createWorkspace();
    schema = await createTestSchema();
  });
  afterEach(async () => {
    ws.remove();
    await schema.drop();
  });

  test('manual mode: status shows the pending migration (exit 3), export refuses naming the command, migrate applies it', () => {
    const url = secretUrl(schema.url);
    const config = policy(ws, 'pg.yaml', sharedStore(url, 'manual'));
    const status = store(['status', '--config', config]);
    const latest = MIGRATIONS.postgres.at(-1)!.version;
    const all = MIGRATIONS.postgres.map((m) => m.version).join(', ');
    assert.deepEqual(status, { status: 3, stdout: `backend: postgres\nschema version: 0 (latest ${latest})\npending migrations: ${all}\n`, stderr: '' });
    const refused = store(['export', '--out', join(ws.dir, 'x.jsonl'), '--config', config]);
    assert.deepEqual(refused, {
      status: 1,
      stdout: '',
      stderr: `mfa-gateway: the postgres schema is version 0 and this gateway needs ${latest} (pending: ${all}); store.migrate is manual: run "mfa-gateway store migrate --config F"\n`,
    });
    const migrated = store(['migrate', '--config', config]);
    assert.deepEqual(migrated, { status: 0, stdout: `postgres schema migrated to version ${latest} (applied ${all})\n`, stderr: '' });
    assert.deepEqual(store(['status', '--config', config]), { status: 0, stdout: `backend: postgres\nschema version: ${latest} (latest ${latest})\npending migrations: none\n`, stderr: '' });
    for (const result of [status, refused, migrated]) assertNoSecrets(result.stdout + result.stderr, url);
  });

  test('an unreachable server: exit 1, ERR_STORE_UNAVAILABLE\'s message, no URL or password', async () => {
    const url = secretUrl(withSearchPath(POSTGRES_URL.replace(/:\d+\//, `:${await freePort()}/`), schema.name));
    const result = store(['status', '--config', policy(ws, 'down.yaml', sharedStore(url, 'manual'))]);
    assert.deepEqual(result, { status: 1, stdout: '', stderr: 'mfa-gateway: PostgreSQL is unavailable: cannot reach the server (ECONNREFUSED)\n' });
  });

  test('SQLite → PostgreSQL → SQLite through the CLI: refused over existing factors without --replace; every record arrives byte for byte', async () => {
    const first = join(ws.dir, 'a.db');
    const source = openSqliteStore({ path: first, clock: fakeClock() });
    await populate(source.durable);
    await source.close();
    const sqliteA = policy(ws, 'a.yaml', `{ kind: sqlite, path: ${first} }`);
    const pgConfig = policy(ws, 'pg.yaml', sharedStore(secretUrl(schema.url), 'on_start'));
    const sqliteB = policy(ws, 'b.yaml', `{ kind: sqlite, path: ${join(ws.dir, 'b.db')} }`);
    const file = (n: number) => join(ws.dir, `${n}.jsonl`);

    assert.deepEqual(store(['export', '--out', file(1), '--config', sqliteA]), { status: 0, stdout: `exported 5 factors, 13 recovery codes, 1 contact and 2 WebAuthn credentials from sqlite to ${file(1)}\n`, stderr: '' });
    assert.deepEqual(store(['import', '--in', file(1), '--config', pgConfig]), { status: 0, stdout: 'imported 5 factors, 13 recovery codes, 1 contact and 2 WebAuthn credentials into postgres\n', stderr: '' });
    assert.deepEqual(store(['import', '--in', file(1), '--config', pgConfig]), {
      status: 1,
      stdout: '',
      stderr: 'mfa-gateway: the store already holds 7 factors and 1 contact; an import would mix two sets; pass --replace to delete them (and the recovery codes) first\n',
    });
    assert.deepEqual(store(['import', '--replace', '--in', file(1), '--config', pgConfig]), {
      status: 0,
      stdout: 'imported 5 factors, 13 recovery codes, 1 contact and 2 WebAuthn credentials into postgres (replacing what it held)\n',
      stderr: '',
    });
    assert.deepEqual(store(['export', '--out', file(2), '--config', pgConfig]), { status: 0, stdout: `exported 5 factors, 13 recovery codes, 1 contact and 2 WebAuthn credentials from postgres to ${file(2)}\n`, stderr: '' });
    assert.deepEqual(store(['import', '--in', file(2), '--config', sqliteB]), { status: 0, stdout: 'imported 5 factors, 13 recovery codes, 1 contact and 2 WebAuthn credentials into sqlite\n', stderr: '' });
    assert.deepEqual(store(['export', '--out', file(3), '--config', sqliteB]), { status: 0, stdout: `exported 5 factors, 13 recovery codes, 1 contact and 2 WebAuthn credentials from sqlite to ${file(3)}\n`, stderr: '' });

    const lines = (n: number) => readFileSync(file(n), 'utf8').split('\n');
    assert.match(lines(2)[0]!, /^\{"format":"mfa-gateway-store-export","version":2,"source":"postgres","exported_at":\d+\}$/);
    assert.equal(lines(1).length, 1 + 5 + 13 + 1 + 2 + 1 + 1);
    assert.deepEqual(lines(2).slice(1), lines(1).slice(1));
    assert.deepEqual(lines(3).slice(1), lines(1).slice(1));
  });
});
