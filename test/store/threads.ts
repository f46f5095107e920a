import { Worker } from 'node:worker_threads';

/**
 * Real contention on one SQLite file: better-sqlite3 serialises calls inside one thread, so this
 * runs `body` in `count` worker threads at once, each with its own connection. `body` is the source
 * of an async function `(open, data) => result`: `open()` opens the store at `data.path` (with its
 * clock at `data.now`, when given). Every thread starts, then all are told to go together. Resolves
 * to each thread's result; a thread that threw rejects with its message.
 */
export async function inThreads<R>(count: number, body: string, data: { readonly path: string; readonly now?: number } & Record<string, unknown>): Promise<R[]> {
  const moduleUrl = new URL('../../src/store/sqlite.js', import.meta.url).href;
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { openSqliteStore } = await import(workerData.moduleUrl);
      const open = () => openSqliteStore(workerData.now === undefined ? { path: workerData.path } : { path: workerData.path, clock: () => workerData.now });
      const body = ${body};
      parentPort.postMessage({ ready: true });
      await new Promise((resolve) => parentPort.once('message', resolve));
      parentPort.postMessage({ result: await body(open, workerData) });
    })().catch((err) => parentPort.postMessage({ error: String(err && err.message) }));
  `;
  type Reply = { ready?: true; result?: R; error?: string };
  const threads = Array.from({ length: count }, () => new Worker(source, { eval: true, workerData: { ...data, moduleUrl } }));
  const next = (w: Worker) => new Promise<Reply>((resolve, reject) => w.once('message', resolve).once('error', reject));
  try {
    const ready = await Promise.all(threads.map(next));
    const failed = ready.find((reply) => reply.error !== undefined);
    if (failed !== undefined) throw new Error(failed.error);
    const done = threads.map(next);
    for (const w of threads) w.postMessage('go');
    return (await Promise.all(done)).map((reply) => {
      if (reply.error !== undefined) throw new Error(reply.error);
      return reply.result as R;
    });
  } finally {
    await Promise.all(threads.map((w) => w.terminate()));
  }
}
