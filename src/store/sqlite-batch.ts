import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';

/**
 * Group commit for the embedded store's request-path writes. A verb hands its work (a statement, or
 * a `db.transaction` function, which nests as a savepoint) to `run`; the work queued during one turn
 * of the event loop runs in one `BEGIN IMMEDIATE … COMMIT` at the next check phase, in the order it
 * was queued, and each caller's promise settles only after that COMMIT, so nobody acts on a write
 * that is not durable. One commit instead of one per write: pages that many writes touch (the
 * newest leaf of an expiry index, the audit table's last page) go to the WAL once per batch.
 *
 * The write lock is held only while the batch runs, never across turns: other processes sharing the
 * file wait no longer than they did for single writes. Each work item is atomic on its own (one
 * statement, or a savepoint), so one that throws (a constraint) fails alone. A fault that ends the
 * transaction itself (disk full, I/O error, lock timeout) fails every item of the batch: none of
 * them was committed, and each caller answers as for any store fault.
 */
export interface WriteBatcher {
  run<T>(work: () => T): Promise<T>;
  /** Runs what is queued now (before close). */
  flush(): void;
}

interface Job {
  readonly work: () => unknown;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: unknown) => void;
}

/** Past this many queued items the batch runs at once rather than at the check phase. */
const MAX_BATCH = 256;

export function createWriteBatcher(db: Database.Database, ensureOpen: () => void): WriteBatcher {
  let queue: Job[] = [];
  let scheduled: NodeJS.Immediate | undefined;

  function flush(): void {
    if (scheduled !== undefined) clearImmediate(scheduled);
    scheduled = undefined;
    const jobs = queue;
    queue = [];
    if (jobs.length === 0) return;
    const outcomes: ({ ok: true; value: unknown } | { ok: false; error: unknown })[] = [];
    try {
      ensureOpen();
      db.exec('BEGIN IMMEDIATE');
      for (const job of jobs) {
        let outcome: (typeof outcomes)[number];
        try {
          outcome = { ok: true, value: job.work() };
        } catch (error) {
          outcome = { ok: false, error };
        }
        // SQLite rolls the whole transaction back itself on some faults (SQLITE_FULL, IOERR):
        // what ran before is gone too, so the batch as a whole has failed.
        if (!db.inTransaction) throw outcome.ok ? new StoreError('ERR_STORE_UNAVAILABLE', 'the write batch was rolled back') : outcome.error;
        outcomes.push(outcome);
      }
      db.exec('COMMIT');
    } catch (error) {
      if (db.open && db.inTransaction) {
        try {
          db.exec('ROLLBACK');
        } catch {
          // Already rolled back by SQLite; every job is refused below either way.
        }
      }
      for (const job of jobs) job.reject(error);
      return;
    }
    jobs.forEach((job, i) => {
      const outcome = outcomes[i]!;
      if (outcome.ok) job.resolve(outcome.value);
      else job.reject(outcome.error);
    });
  }

  return {
    run<T>(work: () => T): Promise<T> {
      // Thrown inside the executor: a closed store is a rejection, never a synchronous throw.
      return new Promise<T>((resolve, reject) => {
        ensureOpen();
        queue.push({ work, resolve: resolve as (value: unknown) => void, reject });
        if (queue.length >= MAX_BATCH) flush();
        else scheduled ??= setImmediate(flush);
      });
    },
    flush,
  };
}
