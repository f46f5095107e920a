import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { startCheckpointer } from '../../src/store/sqlite-checkpointer.js';
import { openSqliteStore, WAL_AUTOCHECKPOINT_PAGES } from '../../src/store/sqlite.js';
import { fakeClock, T0 } from '../support/clock.js';
import { eventually } from '../support/wait.js';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mfa-checkpoint-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function dbPath(): string {
  const folder = join(dir, `db-${++n}`);
  mkdirSync(folder);
  return join(folder, 'mfa.db');
}

/** A worker module given inline: what the checkpoint thread would be if it broke. */
function workerModule(source: string): URL {
  return new URL(`data:text/javascript,${encodeURIComponent(source)}`);
}

/** A WAL database like the store's: the caller's connection checkpoints every 4000 frames until told otherwise. */
function walDatabase(path: string): Database.Database {
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
  return db;
}

const autocheckpoint = (db: Database.Database): number => Number(db.pragma('wal_autocheckpoint', { simple: true }));

describe('sqlite store: WAL checkpoints', () => {
  test('a thread checkpoints; the store\'s own connection never does while it runs', async () => {
    const path = dbPath();
    const store = openSqliteStore({ path, clock: fakeClock(T0) });
    try {
      await eventually(() => store.checkpointMode() === 'thread', 5_000);
      assert.equal(store.walAutocheckpointPages(), 0);
      // The database file grows only when a checkpoint copies pages into it, and the store's
      // connection does not checkpoint (0): a growing file is the thread's work.
      const databaseBytes = statSync(path).size;
      const value = 'v'.repeat(4096);
      let subjects = 0;
      await eventually(async () => {
        await Promise.all(Array.from({ length: 50 }, () => store.ttl.putChallenge(`user-${subjects++}`, 'registration', value, T0, 60_000)));
        return statSync(path).size > databaseBytes;
      }, 5_000);
      assert.equal(store.walAutocheckpointPages(), 0);
      assert.equal(await store.ttl.peekChallenge('user-0', 'registration', T0), value);
    } finally {
      await store.close();
    }
  });

  test('close waits for the thread, which checkpoints the rest and removes the WAL', async () => {
    const path = dbPath();
    const store = openSqliteStore({ path, clock: fakeClock(T0) });
    await eventually(() => store.checkpointMode() === 'thread', 5_000);
    await store.ttl.putChallenge('alice', 'registration', 'kept', T0, 60_000);
    assert.equal(existsSync(`${path}-wal`), true);
    await store.close();
    assert.equal(store.checkpointMode(), 'inline');
    assert.equal(existsSync(`${path}-wal`), false, 'the WAL is removed by the last connection');
    const reopened = openSqliteStore({ path, clock: fakeClock(T0) });
    try {
      assert.equal(await reopened.ttl.peekChallenge('alice', 'registration', T0), 'kept');
    } finally {
      await reopened.close();
    }
  });

  test('a thread that cannot start: the connection keeps checkpointing itself, and the reason is told', async () => {
    const db = walDatabase(dbPath());
    const reasons: string[] = [];
    const checkpointer = startCheckpointer(db, 'unused', {
      intervalMs: 50,
      inlinePages: WAL_AUTOCHECKPOINT_PAGES,
      onFallback: (reason) => reasons.push(reason),
      workerUrl: workerModule(`throw new Error('no thread for you');`),
    });
    try {
      await eventually(() => reasons.length > 0, 5_000);
      assert.deepEqual(reasons, ['no thread for you']);
      assert.equal(checkpointer.mode(), 'inline');
      assert.equal(autocheckpoint(db), WAL_AUTOCHECKPOINT_PAGES);
    } finally {
      await checkpointer.close();
      db.close();
    }
    assert.deepEqual(reasons, ['no thread for you'], 'told once, not again on close');
  });

  test('a thread that dies after it took over: the connection checkpoints itself again', async () => {
    const db = walDatabase(dbPath());
    const crash = join(dir, `crash-${++n}`);
    const reasons: string[] = [];
    // Takes over, then dies when the test says so (a file appears), as a crash would.
    const checkpointer = startCheckpointer(db, crash, {
      intervalMs: 50,
      inlinePages: WAL_AUTOCHECKPOINT_PAGES,
      onFallback: (reason) => reasons.push(reason),
      workerUrl: workerModule(`
        import { existsSync } from 'node:fs';
        import { parentPort, workerData } from 'node:worker_threads';
        parentPort.postMessage('ready');
        setInterval(() => { if (existsSync(workerData.path)) process.exit(3); }, 10);
      `),
    });
    try {
      await eventually(() => checkpointer.mode() === 'thread', 5_000);
      assert.equal(autocheckpoint(db), 0);
      assert.deepEqual(reasons, []);
      writeFileSync(crash, '');
      await eventually(() => reasons.length > 0, 5_000);
      assert.deepEqual(reasons, ['the checkpoint thread exited (code 3)']);
      assert.equal(checkpointer.mode(), 'inline');
      assert.equal(autocheckpoint(db), WAL_AUTOCHECKPOINT_PAGES);
    } finally {
      await checkpointer.close();
      db.close();
    }
  });
});
