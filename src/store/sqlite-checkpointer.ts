import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/**
 * Where the embedded store's WAL checkpoints run. A checkpoint copies committed frames into the
 * database file and syncs both files; run by the gateway's own connection, it happens inside the
 * commit that crosses `wal_autocheckpoint`, on the event loop, and every request in flight waits for
 * it (16–23 ms under the benchmark's fresh-code load). So a worker thread with its own connection
 * does them instead, and the gateway's connection never checkpoints (`wal_autocheckpoint = 0`): a
 * commit then only appends to the WAL, and `synchronous = NORMAL` syncs nothing on the event loop.
 *
 * If the thread cannot start or dies, the gateway's connection checkpoints again itself every
 * `inlinePages` frames, as before, so the WAL stays bounded; `onFallback` is told why.
 */
export interface Checkpointer {
  /** 'thread' while the worker checkpoints; 'inline' before it is ready and after it failed. */
  mode(): 'thread' | 'inline';
  /** Stops the worker, which (as the last connection) checkpoints what is left and removes the WAL. */
  close(): Promise<void>;
}

export interface CheckpointWorkerData {
  readonly path: string;
  readonly intervalMs: number;
}

export interface CheckpointerOptions {
  readonly intervalMs: number;
  /** `wal_autocheckpoint` of the gateway's connection while the thread is not checkpointing. */
  readonly inlinePages: number;
  readonly onFallback?: ((reason: string) => void) | undefined;
  /** The worker's module; tests point it at one that fails. */
  readonly workerUrl?: URL | undefined;
}

/** How long close() waits for the worker's own close (its final checkpoint) before ending it. */
const CLOSE_WAIT_MS = 10_000;

/** `db` must already checkpoint every `inlinePages` frames: it does until the thread is ready. */
export function startCheckpointer(db: Database.Database, path: string, options: CheckpointerOptions): Checkpointer {
  let mode: 'thread' | 'inline' = 'inline';
  let closing = false;
  let failed = false;
  const worker = new Worker(options.workerUrl ?? new URL('./sqlite-checkpoint-worker.js', import.meta.url), {
    workerData: { path, intervalMs: options.intervalMs } satisfies CheckpointWorkerData,
    stdout: false,
    stderr: false,
  });
  // A forgotten store must not keep the process alive; close() holds it while the worker finishes.
  worker.unref();
  // Not events.once: it would reject on the worker's 'error', which fallBack handles.
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));

  const fallBack = (reason: string): void => {
    if (failed || closing) return;
    failed = true;
    mode = 'inline';
    if (db.open) db.pragma(`wal_autocheckpoint = ${options.inlinePages}`);
    options.onFallback?.(reason);
  };
  worker.on('message', (message: unknown) => {
    if (message !== 'ready' || failed || closing || !db.open) return;
    db.pragma('wal_autocheckpoint = 0');
    mode = 'thread';
  });
  worker.on('error', (error: Error) => fallBack(error.message));
  worker.on('exit', (code: number) => fallBack(`the checkpoint thread exited (code ${code})`));

  return {
    mode: () => mode,
    async close() {
      if (closing) return exited;
      closing = true;
      mode = 'inline';
      worker.ref();
      worker.postMessage('close');
      const timer = setTimeout(() => void worker.terminate(), CLOSE_WAIT_MS);
      try {
        await exited;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
