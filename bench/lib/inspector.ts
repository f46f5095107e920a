import { readFileSync, writeFileSync } from 'node:fs';
import { WebSocket } from 'undici';
import { BenchError } from './proc.js';

/**
 * CPU profiles of exactly the measured runs: the gateway runs with `--inspect=127.0.0.1:0` and the
 * harness starts and stops V8's profiler over the DevTools protocol around each run, so a profile
 * holds one row's steady state, not start-up, enrolment or the other rows.
 */

export interface RemoteProfiler {
  start(): Promise<void>;
  /** Stops and writes the .cpuprofile JSON to `file`. */
  stop(file: string): Promise<void>;
  close(): void;
}

/** The DevTools URL node prints on stderr ("Debugger listening on ws://…"), read from the child's log. */
export function inspectorUrlFromLog(logFile: string): string {
  const match = /Debugger listening on (ws:\/\/\S+)/.exec(readFileSync(logFile, 'utf8'));
  if (match === null) throw new BenchError(`no inspector URL in ${logFile}`);
  return match[1]!;
}

export async function connectProfiler(url: string, samplingIntervalUs = 500): Promise<RemoteProfiler> {
  const socket = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener('open', () => resolve(), { once: true });
    socket.addEventListener('error', () => reject(new BenchError(`cannot connect to the inspector at ${url}`)), { once: true });
  });
  let nextId = 1;
  const pending = new Map<number, { resolve: (value: Record<string, unknown>) => void; reject: (error: Error) => void }>();
  socket.addEventListener('message', (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: Record<string, unknown>; error?: { message: string } };
    if (message.id === undefined) return;
    const waiter = pending.get(message.id);
    pending.delete(message.id);
    if (message.error !== undefined) waiter?.reject(new BenchError(`inspector: ${message.error.message}`));
    else waiter?.resolve(message.result ?? {});
  });
  const send = (method: string, params: Record<string, unknown> = {}): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  await send('Profiler.enable');
  await send('Profiler.setSamplingInterval', { interval: samplingIntervalUs });
  return {
    start: async () => {
      await send('Profiler.start');
    },
    stop: async (file) => {
      const result = await send('Profiler.stop');
      writeFileSync(file, JSON.stringify(result.profile));
    },
    close: () => socket.close(),
  };
}
