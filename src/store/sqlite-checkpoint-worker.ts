/**
 * The embedded store's checkpoint thread (see sqlite-checkpointer.ts): its own connection to the
 * store's file, copying committed WAL frames into the database file every `intervalMs` with a
 * PASSIVE checkpoint, which never waits for the gateway's readers or writers and never makes them
 * wait. The copies and syncs happen here, off the gateway's event loop.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { CheckpointWorkerData } from './sqlite-checkpointer.js';

const { path, intervalMs } = workerData as CheckpointWorkerData;
const port = parentPort;
if (port === null) throw new Error('the checkpoint worker runs only as a worker thread');

const db = new Database(path, { fileMustExist: true });
// This connection only checkpoints; it must never start one of its own inside a write.
db.pragma('wal_autocheckpoint = 0');

const timer = setInterval(() => {
  db.pragma('wal_checkpoint(PASSIVE)');
}, intervalMs);

port.on('message', (message: unknown) => {
  if (message !== 'close') return;
  clearInterval(timer);
  // The last connection to close checkpoints the whole WAL and removes it: that too happens here.
  db.close();
  port.close();
});
port.postMessage('ready');
