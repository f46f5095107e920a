import { Worker } from 'node:worker_threads';

/**
 * Takes most of the embedded store's WAL checkpointing off the event loop. A checkpoint copies
 * committed frames into the database file and syncs both files; SQLite runs one after the commit
 * that leaves `wal_autocheckpoint` frames or more, on the gateway's event loop, and every request in
 * flight waits for it (16–23 ms for 4000 frames under the benchmark's fresh-code load). A worker thread
 * with its own connection runs a PASSIVE checkpoint every `intervalMs`, so by the time the gateway's
 * connection reaches its mark nearly every frame is already in the database file and synced: its
 * own checkpoint has only the frames of the last `intervalMs` left to copy, and it is what lets the
 * next commit start the WAL over at its head. The thread alone cannot: its checkpoint never blocks
 * writers, so under a steady stream of commits the WAL always has frames newer than it copied, and
 * the file would grow without end (133 MiB after 20,000 fresh-code admissions in a row, measured).
 * So the gateway's connection keeps its mark; the thread only makes reaching it cheap. While nothing
 * is written the thread sleeps until the WAL file is (sqlite-checkpoint-worker.ts).
 *
 * If the thread cannot start or dies, nothing else changes: checkpoints are whole again at the
 * mark, as without the thread, and `onFallback` is told why.
 */
export interface Checkpointer {
  /** 'thread' while the worker checkpoints; 'inline' before it is ready, after it failed, and after close. */
  mode(): 'thread' | 'inline';
  /** Checkpoints the thread has run; it runs none while nothing is written to the WAL. */
  checkpoints(): number;
  /** Stops the worker, which (as the last connection) checkpoints what is left and removes the WAL. */
  close(): Promise<void>;
}

export interface CheckpointWorkerData {
  readonly path: string;
  readonly intervalMs: number;
  /** One Int32 the thread counts its checkpoints in, read here without waking either thread. */
  readonly checkpoints: SharedArrayBuffer;
}

export interface CheckpointerOptions {
  readonly intervalMs: number;
  readonly onFallback?: ((reason: string) => void) | undefined;
  /** The worker's module; tests point it at one that fails. */
  readonly workerUrl?: URL | undefined;
}

/** How long close() waits for the worker's own close (its final checkpoint) before ending it. */
const CLOSE_WAIT_MS = 10_000;

export function startCheckpointer(path: string, options: CheckpointerOptions): Checkpointer {
  let running = false;
  // Failed or closing: nothing more to report.
  let stopped = false;
  let closing: Promise<void> | undefined;
  const checkpoints = new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT);
  const checkpointsRun = new Int32Array(checkpoints);
  const worker = new Worker(options.workerUrl ?? new URL('./sqlite-checkpoint-worker.js', import.meta.url), {
    workerData: { path, intervalMs: options.intervalMs, checkpoints } satisfies CheckpointWorkerData,
    stdout: false,
    stderr: false,
  });
  // A forgotten store must not keep the process alive; close() holds it while the worker finishes.
  worker.unref();
  // Not events.once: it would reject on the worker's 'error', which fail() handles.
  const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));

  const fail = (reason: string): void => {
    if (stopped) return;
    stopped = true;
    running = false;
    options.onFallback?.(reason);
  };
  worker.on('message', (message: unknown) => {
    if (message === 'ready' && !stopped) running = true;
  });
  worker.on('error', (error: Error) => fail(error.message));
  worker.on('exit', (code: number) => fail(`the checkpoint thread exited (code ${code})`));

  return {
    mode: () => (running ? 'thread' : 'inline'),
    checkpoints: () => Atomics.load(checkpointsRun, 0),
    close() {
      closing ??= (async () => {
        stopped = true;
        running = false;
        worker.ref();
        worker.postMessage('close');
        const timer = setTimeout(() => void worker.terminate(), CLOSE_WAIT_MS);
        try {
          await exited;
        } finally {
          clearTimeout(timer);
        }
      })();
      return closing;
    },
  };
}
