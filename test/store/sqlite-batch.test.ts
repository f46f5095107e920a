import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { StoreError } from '../../src/store/errors.js';
import { createWriteBatcher } from '../../src/store/sqlite-batch.js';
import { openSqliteStore } from '../../src/store/sqlite.js';

// The embedded store's group commit (src/store/sqlite-batch.ts), seen from outside: a second
// connection to the same file, as another gateway process or the CLI would hold it.

const NOW = 1_800_000_000_000;
const HOUR = 3_600_000;

function scratch(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-batch-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'mfa.db');
}

/** Frames in the WAL now, then empties it: what the writes since the last call appended. */
function walFrames(observer: Database.Database): number {
  const [row] = observer.pragma('wal_checkpoint(PASSIVE)') as { busy: number; log: number; checkpointed: number }[];
  const [reset] = observer.pragma('wal_checkpoint(TRUNCATE)') as { busy: number }[];
  assert.equal(reset!.busy, 0);
  return row!.log;
}

function session(subject: string, n: number) {
  return { subject, method: 'totp', mfaTime: Math.floor(NOW / 1000), issuedAt: NOW + n, expiresAt: NOW + 12 * HOUR };
}

test('writes asked for in one turn are committed together, and each caller hears only after the commit', async (t) => {
  const path = scratch(t);
  const store = openSqliteStore({ path });
  const observer = new Database(path);
  t.after(async () => {
    observer.close();
    await store.close();
  });
  walFrames(observer);

  // 50 admissions' worth of used steps and sessions, one at a time: one commit each.
  for (let i = 0; i < 50; i++) {
    assert.equal(await store.ttl.useOtpStep(`one-${i}`, 100, NOW, HOUR), true);
    await store.ttl.issueSession(`hash-one-${String(i).padStart(4, '0')}`, session(`user-one-${i}`, i), 5, NOW);
  }
  const oneByOne = walFrames(observer);

  // The same writes asked for at once: their promises settle after one shared COMMIT.
  const seen: boolean[] = [];
  const writes = Array.from({ length: 50 }, (_, i) =>
    Promise.all([
      store.ttl.useOtpStep(`all-${i}`, 100, NOW, HOUR),
      store.ttl.issueSession(`hash-all-${String(i).padStart(4, '0')}`, session(`user-all-${i}`, i), 5, NOW),
    ]).then(([accepted]) => {
      // Durable when the caller hears of it: another connection already reads it.
      const row = observer.prepare('SELECT subject FROM sessions WHERE hash = ?').get(`hash-all-${String(i).padStart(4, '0')}`) as { subject: string } | undefined;
      seen.push(accepted && row?.subject === `user-all-${i}`);
    }),
  );
  assert.deepEqual(observer.prepare("SELECT count(*) AS n FROM sessions WHERE hash LIKE 'hash-all-%'").get(), { n: 0 });
  await Promise.all(writes);
  assert.deepEqual(seen, Array.from({ length: 50 }, () => true));
  const together = walFrames(observer);
  assert.ok(together * 5 < oneByOne, `one commit for 100 writes appended ${together} WAL frames; 100 commits appended ${oneByOne}`);
});

test('in one batch, the same TOTP step offered 30 times is accepted once', async (t) => {
  const store = openSqliteStore({ path: scratch(t) });
  t.after(() => store.close());
  const answers = await Promise.all(Array.from({ length: 30 }, () => store.ttl.useOtpStep('factor-1', 7, NOW, HOUR)));
  assert.equal(answers.filter(Boolean).length, 1);
  assert.equal(await store.ttl.useOtpStep('factor-1', 7, NOW, HOUR), false);
  assert.equal(await store.ttl.useOtpStep('factor-1', 8, NOW, HOUR), true);
});

test('a write refused in a batch fails alone: the others of the batch are committed', async (t) => {
  const path = scratch(t);
  const store = openSqliteStore({ path });
  t.after(() => store.close());
  const results = await Promise.allSettled([
    store.ttl.issueSession('hash-a', session('user-a', 1), 5, NOW),
    store.ttl.issueSession('hash-a', session('user-a', 2), 5, NOW),
    store.ttl.issueSession('hash-c', session('user-c', 3), 5, NOW),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['fulfilled', 'rejected', 'fulfilled'],
  );
  assert.equal(((results[1] as PromiseRejectedResult).reason as { code: string }).code, 'ERR_STORE_CONFLICT');
  assert.equal((await store.ttl.getSession('hash-a', 'user-a', NOW))?.issuedAt, NOW + 1, 'the first of the two is kept');
  assert.equal((await store.ttl.getSession('hash-c', 'user-c', NOW))?.subject, 'user-c');
});

test('when the batch cannot commit, every write in it is refused and none of them is kept', async (t) => {
  const path = scratch(t);
  const store = openSqliteStore({ path, busyTimeoutMs: 50 });
  const holder = new Database(path);
  t.after(async () => {
    holder.close();
    await store.close();
  });
  // Another process holds the write lock past the busy timeout.
  holder.exec('BEGIN IMMEDIATE');
  const results = await Promise.allSettled([
    store.ttl.useOtpStep('factor-1', 5, NOW, HOUR),
    store.ttl.issueSession('hash-x', session('user-x', 1), 5, NOW),
    store.ttl.putChallenge('user-x', 'webauthn', 'challenge-value', NOW, HOUR),
  ]);
  assert.deepEqual(
    results.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : 'fulfilled')),
    ['SQLITE_BUSY', 'SQLITE_BUSY', 'SQLITE_BUSY'],
  );
  holder.exec('ROLLBACK');
  assert.equal(await store.ttl.getSession('hash-x', 'user-x', NOW), undefined);
  assert.equal(await store.ttl.peekChallenge('user-x', 'webauthn', NOW), undefined);
  // Nothing was used: the step is still good, and the store goes on working.
  assert.equal(await store.ttl.useOtpStep('factor-1', 5, NOW, HOUR), true);
});

test('closing the store commits the writes already asked for', async (t) => {
  const path = scratch(t);
  const store = openSqliteStore({ path });
  const pending = store.ttl.putChallenge('user-y', 'webauthn', 'challenge-value', NOW, HOUR);
  await store.close();
  await pending;
  const reopened = openSqliteStore({ path });
  t.after(() => reopened.close());
  assert.equal(await reopened.ttl.peekChallenge('user-y', 'webauthn', NOW), 'challenge-value');
  await assert.rejects(store.ttl.putChallenge('user-y', 'webauthn', 'other', NOW, HOUR), { code: 'ERR_STORE_CLOSED' });
});

test('when SQLite ends the transaction itself mid-batch, the writes before it are refused too, not reported as kept', async (t) => {
  const db = new Database(scratch(t));
  t.after(() => db.close());
  db.exec('CREATE TABLE marks (key TEXT PRIMARY KEY)');
  const batcher = createWriteBatcher(db, () => undefined);
  const insert = db.prepare('INSERT INTO marks (key) VALUES (?)');
  const results = await Promise.allSettled([
    batcher.run(() => insert.run('before').changes),
    // Stands in for SQLITE_FULL or an I/O error, after which SQLite has rolled the transaction back.
    batcher.run(() => db.exec('ROLLBACK')),
    batcher.run(() => insert.run('after').changes),
  ]);
  assert.deepEqual(
    results.map((r) => r.status),
    ['rejected', 'rejected', 'rejected'],
  );
  assert.equal(((results[0] as PromiseRejectedResult).reason as { code: string }).code, 'ERR_STORE_UNAVAILABLE');
  assert.deepEqual(db.prepare('SELECT key FROM marks').all(), []);
  // The next batch starts afresh.
  assert.equal(await batcher.run(() => insert.run('next').changes), 1);
});

test('a closed store refuses a write with a rejected promise, never a synchronous throw', async (t) => {
  const db = new Database(scratch(t));
  t.after(() => db.close());
  const batcher = createWriteBatcher(db, () => {
    throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  });
  let call: Promise<unknown> | undefined;
  assert.doesNotThrow(() => {
    call = batcher.run(() => 1);
  });
  await assert.rejects(call!, { code: 'ERR_STORE_CLOSED' });
});
