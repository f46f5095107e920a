import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCheckpointer } from '../../src/store/sqlite-checkpointer.js';
import { openSqliteStore, WAL_AUTOCHECKPOINT_PAGES, type SqliteStore } from '../../src/store/sqlite.js';
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

/**
 * The most frames the WAL file has held, read off the file so that no second connection
 * checkpoints: the file is never shortened (a checkpoint only lets writes start over at its head).
 * A WAL is a 32-byte header naming the page size (big-endian, at byte 8), then frames of a 24-byte
 * header and one page.
 */
function walFrames(path: string): number {
  const header = Buffer.alloc(32);
  const fd = openSync(`${path}-wal`, 'r');
  try {
    if (readSync(fd, header, 0, 32, 0) < 32) return 0;
  } finally {
    closeSync(fd);
  }
  return (statSync(`${path}-wal`).size - 32) / (24 + header.readUInt32BE(8));
}

/** 50 challenges of 4 KiB in one turn, so one commit: about 150 frames. */
function writeSome(store: SqliteStore, from: number): Promise<unknown> {
  const value = 'v'.repeat(4096);
  return Promise.all(Array.from({ length: 50 }, (_, i) => store.ttl.putChallenge(`user-${from + i}`, 'registration', value, T0, 60_000)));
}

/** A worker module given inline: what the checkpoint thread would be if it broke. */
function workerModule(source: string): URL {
  return new URL(`data:text/javascript,${encodeURIComponent(source)}`);
}

describe('sqlite store: WAL checkpoints', () => {
  test('the thread copies frames into the database file long before the connection\'s own mark', async () => {
    const path = dbPath();
    const store = openSqliteStore({ path, clock: fakeClock(T0) });
    try {
      assert.equal(store.walAutocheckpointPages, WAL_AUTOCHECKPOINT_PAGES);
      await eventually(() => store.checkpointMode() === 'thread', 5_000);
      // The database file grows only when a checkpoint copies pages into it; the connection's own
      // would not run before 4000 frames.
      const databaseBytes = statSync(path).size;
      let written = 0;
      while (statSync(path).size === databaseBytes) {
        assert.ok(walFrames(path) < WAL_AUTOCHECKPOINT_PAGES / 2, `nothing copied by ${walFrames(path)} frames`);
        await writeSome(store, written);
        written += 50;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(await store.ttl.peekChallenge('user-0', 'registration', T0), 'v'.repeat(4096));
    } finally {
      await store.close();
    }
  });

  test('under writes that never pause, the WAL stays near the connection\'s mark', async () => {
    const path = dbPath();
    const store = openSqliteStore({ path, clock: fakeClock(T0) });
    try {
      await eventually(() => store.checkpointMode() === 'thread', 5_000);
      // About 30,000 frames, each commit straight after the last: the thread's checkpoints never
      // catch up with the newest frame, so only the connection's own lets the WAL start over.
      for (let written = 0; written < 10_000; written += 50) await writeSome(store, written);
      // Past the mark the connection tries a checkpoint after every commit, but only one checkpoint
      // runs at a time: while the thread's runs, the connection's returns busy and the next commit
      // tries again, each about 150 frames later. Idle, the WAL peaked at 4,033–4,176 frames; beside
      // two busy loops at 4,033–6,189 (12 runs); without the connection's own checkpoints, 14,366.
      const frames = walFrames(path);
      assert.ok(frames < 2 * WAL_AUTOCHECKPOINT_PAGES, `the WAL grew to ${frames} frames`);
    } finally {
      await store.close();
    }
  });

  test('while nothing is committed the thread runs no checkpoints; the next commit is copied', async () => {
    const path = dbPath();
    const store = openSqliteStore({ path, clock: fakeClock(T0) });
    try {
      await eventually(() => store.checkpointMode() === 'thread', 5_000);
      // The migrations' frames are copied by the thread's first pass.
      await eventually(() => store.checkpointsByThread() >= 1, 5_000);
      const settled = store.checkpointsByThread();
      // Ten of the thread's 100 ms periods with nothing committed.
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      assert.equal(store.checkpointsByThread(), settled, 'an idle WAL is not checkpointed again');

      const databaseBytes = statSync(path).size;
      await writeSome(store, 0);
      // Woken by the write itself, not by the 5 s recheck of a sleeping thread. Counted once the
      // checkpoint has returned, so the pages are in the database file by then.
      await eventually(() => store.checkpointsByThread() > settled, 2_000);
      assert.ok(statSync(path).size > databaseBytes, 'the commit was copied into the database file');
      assert.equal(await store.ttl.peekChallenge('user-49', 'registration', T0), 'v'.repeat(4096));
      const afterCommit = store.checkpointsByThread();
      await new Promise((resolve) => setTimeout(resolve, 500));
      assert.equal(store.checkpointsByThread(), afterCommit, 'idle again: no more checkpoints');
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

  test('a thread that cannot start is reported once, and never counted as running', async () => {
    const reasons: string[] = [];
    const checkpointer = startCheckpointer(dbPath(), {
      intervalMs: 50,
      onFallback: (reason) => reasons.push(reason),
      workerUrl: workerModule(`throw new Error('no thread for you');`),
    });
    try {
      await eventually(() => reasons.length > 0, 5_000);
      assert.deepEqual(reasons, ['no thread for you']);
      assert.equal(checkpointer.mode(), 'inline');
    } finally {
      await checkpointer.close();
    }
    assert.deepEqual(reasons, ['no thread for you'], 'told once, not again on close');
  });

  test('a thread that dies after it started is reported, and no longer counted as running', async () => {
    const crash = join(dir, `crash-${++n}`);
    const reasons: string[] = [];
    // Starts, then dies when the test says so (a file appears), as a crash would.
    const checkpointer = startCheckpointer(crash, {
      intervalMs: 50,
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
      assert.deepEqual(reasons, []);
      writeFileSync(crash, '');
      await eventually(() => reasons.length > 0, 5_000);
      assert.deepEqual(reasons, ['the checkpoint thread exited (code 3)']);
      assert.equal(checkpointer.mode(), 'inline');
    } finally {
      await checkpointer.close();
    }
  });
});
