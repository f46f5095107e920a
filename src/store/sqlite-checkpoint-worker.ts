/**
 * The embedded store's checkpoint thread (see sqlite-checkpointer.ts): its own connection to the
 * store's file, copying committed WAL frames into the database file with PASSIVE checkpoints, which
 * never wait for the gateway's readers or writers and never make them wait. The copies and syncs
 * happen here, off the gateway's event loop.
 *
 * While commits keep coming it checkpoints every `intervalMs`. Once a pass finds the WAL as it left
 * it, the thread sleeps until the WAL file is written again (inotify, through fs.watch), so an idle
 * gateway costs this thread no wake-ups; the first write after that is checkpointed `intervalMs`
 * later, as under load. Where the file cannot be watched it polls every `intervalMs`.
 */
import { statSync, watch, type BigIntStats, type FSWatcher } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { CheckpointWorkerData } from './sqlite-checkpointer.js';

/** While asleep, a pass this often anyway: a filesystem whose writes inotify does not see still gets checkpoints. */
const IDLE_RECHECK_MS = 5_000;

const { path, intervalMs, checkpoints } = workerData as CheckpointWorkerData;
const port = parentPort;
if (port === null) throw new Error('the checkpoint worker runs only as a worker thread');
const checkpointsRun = new Int32Array(checkpoints);
const walPath = `${path}-wal`;

const db = new Database(path, { fileMustExist: true });
// This connection only checkpoints; it must never start one of its own inside a write.
db.pragma('wal_autocheckpoint = 0');

/**
 * Every commit writes frames to the WAL file, so a WAL file that is the same one, as long and as old
 * as at the last pass has nothing new to copy. A commit that lands within the filesystem's timestamp
 * tick of that pass's stat and leaves the length unchanged waits for the next write's pass, or the
 * connection's own checkpoint: its frames are durable in the WAL meanwhile.
 */
let walSeen: BigIntStats | undefined;
function walWritten(wal: BigIntStats | undefined): wal is BigIntStats {
  if (wal === undefined) return false;
  return walSeen === undefined || wal.ino !== walSeen.ino || wal.size !== walSeen.size || wal.mtimeNs !== walSeen.mtimeNs;
}
const statWal = (): BigIntStats | undefined => statSync(walPath, { bigint: true, throwIfNoEntry: false });

let timer: NodeJS.Timeout | undefined;
/** Set while the thread sleeps until the WAL is written. */
let watcher: FSWatcher | undefined;

function pass(): void {
  const wal = statWal();
  if (walWritten(wal)) {
    walSeen = wal;
    db.pragma('wal_checkpoint(PASSIVE)');
    Atomics.add(checkpointsRun, 0, 1);
    timer = setTimeout(pass, intervalMs);
    return;
  }
  sleepUntilWritten();
}

function sleepUntilWritten(): void {
  try {
    watcher = watch(walPath, { persistent: false }, written);
    watcher.on('error', written);
  } catch {
    // No WAL file yet, or no way to watch it here.
    timer = setTimeout(pass, intervalMs);
    return;
  }
  timer = setTimeout(written, IDLE_RECHECK_MS);
  // A commit between the pass's stat and the watch's start would otherwise wait for the recheck.
  if (walWritten(statWal())) written();
}

function written(): void {
  if (watcher === undefined) return;
  watcher.close();
  watcher = undefined;
  clearTimeout(timer);
  timer = setTimeout(pass, intervalMs);
}

timer = setTimeout(pass, intervalMs);

port.on('message', (message: unknown) => {
  if (message !== 'close') return;
  clearTimeout(timer);
  watcher?.close();
  // The last connection to close checkpoints the whole WAL and removes it: that too happens here.
  db.close();
  port.close();
});
port.postMessage('ready');
