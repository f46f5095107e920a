import { pino, type DestinationStream } from 'pino';

/**
 * Writes handed to a pipe in one call are never split by the kernel up to this size (POSIX
 * PIPE_BUF on Linux), so lines of two processes sharing stdout (cluster workers) cannot interleave.
 */
export const ATOMIC_WRITE_BYTES = 4096;

/**
 * Log lines of one event-loop turn, written together when the turn ends: whole lines, in chunks
 * of at most ATOMIC_WRITE_BYTES (a longer line goes alone), each chunk one synchronous write.
 *
 * Under load a turn carries the lines of many requests: one write system call instead of one per
 * line, and no thread-pool hand-off per write as an asynchronous destination makes (on a
 * one-core gateway that hand-off preempts the event loop; bench/results/issue-11-progress.md).
 * A line waits at most until the turn ends; `flush` runs at process exit too.
 */
export class TurnBatchedLines implements DestinationStream {
  private pending: string[] = [];
  private scheduled = false;

  constructor(
    /** Where each chunk goes, in one synchronous call. */
    private readonly sink: DestinationStream,
    private readonly schedule: (task: () => void) => void = setImmediate,
  ) {}

  write(line: string): void {
    this.pending.push(line);
    if (this.scheduled) return;
    this.scheduled = true;
    this.schedule(this.flush);
  }

  /** Writes what is pending now; safe to call at any time, including from an `exit` handler. */
  readonly flush = (): void => {
    this.scheduled = false;
    const lines = this.pending;
    if (lines.length === 0) return;
    this.pending = [];
    let chunk = '';
    let chunkBytes = 0;
    for (const line of lines) {
      const bytes = Buffer.byteLength(line);
      if (chunkBytes > 0 && chunkBytes + bytes > ATOMIC_WRITE_BYTES) {
        this.sink.write(chunk);
        chunk = '';
        chunkBytes = 0;
      }
      chunk += line;
      chunkBytes += bytes;
    }
    this.sink.write(chunk);
  };
}

let stdout: TurnBatchedLines | undefined;

/**
 * The process's one stdout destination, shared by every logger that is not given its own: one
 * buffer, so the main and audit loggers' lines keep their order and never interleave. Writes are
 * synchronous (pino's SonicBoom, which retries a full non-blocking pipe and stops at a closed
 * one), so what a turn logged is on stdout before the next turn starts.
 */
export function stdoutLines(): TurnBatchedLines {
  if (stdout === undefined) {
    const lines = new TurnBatchedLines(pino.destination({ dest: 1, sync: true }));
    process.on('exit', lines.flush);
    stdout = lines;
  }
  return stdout;
}
