import { connect, type Socket } from 'node:net';
import { BenchError } from './proc.js';
import { median } from './report.js';

/**
 * Unloaded latency with every one-connection row measured in the same seconds (bench/README.md,
 * "Interleaved one-connection round"): one keep-alive connection per target and one request in
 * flight over all of them, `block` requests to one target, then the next, the order rotated each
 * cycle. On a VM whose core runs some stretches of seconds at half speed, rows measured one after
 * the other land in different stretches; here every row samples every stretch alike.
 */

export interface InterleaveTarget {
  readonly name: string;
  readonly url: string;
  readonly headers: Readonly<Record<string, string>>;
}

export interface InterleaveOptions {
  readonly durationSec: number;
  readonly warmupSec: number;
  /** Requests to one target before the next: enough that its code and data are warm again after the others. */
  readonly block: number;
  /** Consecutive windows of equal cycles the measured requests are split into, each with its own p50s. */
  readonly windows: number;
}

export interface InterleavedTarget {
  readonly target: string;
  readonly requests: number;
  readonly p50Us: number;
  readonly p99Us: number;
  /** p50 of each window, in window order. */
  readonly windowP50Us: readonly number[];
}

export interface Interleaved {
  readonly durationSec: number;
  readonly block: number;
  readonly cycles: number;
  /** Requests sent, the warm-up's included. */
  readonly sent: number;
  readonly targets: readonly InterleavedTarget[];
}

/** The value below which `p` % of `sorted` lie (nearest rank). */
const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/**
 * One keep-alive HTTP/1.1 connection that sends a fixed GET and reads the answer itself: status line,
 * headers, then a Content-Length or chunked body. Less client work per request than a general HTTP
 * client, so less of the measured time is the harness's (measured here: 50 µs against undici
 * Client's 79 µs for the same direct request).
 */
class OneConnection {
  private pending: { resolve: (status: number) => void; reject: (error: Error) => void } | undefined;
  private buffered: Buffer = Buffer.alloc(0);
  /** Set once the connection failed or closed: every later request fails with it. */
  private broken: BenchError | undefined;

  private constructor(
    private readonly name: string,
    private readonly socket: Socket,
    private readonly request: Buffer,
  ) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
      this.settle();
    });
    const fail = (error: Error): void => {
      this.broken ??= new BenchError(`${this.name} (interleaved, one connection): ${error.message}`);
      this.pending?.reject(this.broken);
      this.pending = undefined;
    };
    socket.on('error', fail);
    socket.on('close', () => fail(new Error('connection closed')));
  }

  static async open(target: InterleaveTarget): Promise<OneConnection> {
    const url = new URL(target.url);
    const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`, ...Object.entries(target.headers).map(([name, value]) => `${name}: ${value}`)];
    const socket = connect(Number(url.port), url.hostname);
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new OneConnection(target.name, socket, Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'));
  }

  /** Sends the request; resolves with the status once the whole answer is read. */
  send(): Promise<number> {
    return new Promise((resolve, reject) => {
      if (this.broken !== undefined) return reject(this.broken);
      this.pending = { resolve, reject };
      this.socket.write(this.request);
    });
  }

  close(): void {
    this.socket.removeAllListeners('close');
    this.socket.destroy();
  }

  /** Resolves the pending request when `buffered` holds its whole answer. */
  private settle(): void {
    const head = this.buffered.indexOf('\r\n\r\n');
    if (head < 0 || this.pending === undefined) return;
    const text = this.buffered.toString('latin1', 0, head);
    const status = Number(text.slice(9, 12));
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(text);
    let end: number;
    if (length !== null) end = head + 4 + Number(length[1]);
    else if (/\r\ntransfer-encoding:\s*chunked/i.test(text)) {
      const last = this.buffered.indexOf('\r\n0\r\n\r\n', head + 2);
      if (last < 0) return;
      end = last + 7;
    } else {
      this.pending.reject(new BenchError(`${this.name} (interleaved, one connection): an answer without Content-Length or chunked body`));
      this.pending = undefined;
      return;
    }
    if (this.buffered.length < end) return;
    this.buffered = this.buffered.subarray(end);
    const { resolve } = this.pending;
    this.pending = undefined;
    resolve(status);
  }
}

export async function interleave(targets: readonly InterleaveTarget[], options: InterleaveOptions): Promise<Interleaved> {
  if (targets.length === 0) throw new BenchError('interleave: no targets');
  const connections = await Promise.all(targets.map((target) => OneConnection.open(target)));
  const once = async (t: number): Promise<number> => {
    const started = process.hrtime.bigint();
    const status = await connections[t]!.send();
    const micros = Number(process.hrtime.bigint() - started) / 1000;
    if (status !== 200) throw new BenchError(`${targets[t]!.name} (interleaved, one connection): answered ${status}, not 200`);
    return micros;
  };
  /** Runs whole cycles until `seconds` have passed; each cycle's latencies per target, in order. */
  const runCycles = async (seconds: number): Promise<number[][][]> => {
    const cycles: number[][][] = [];
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      const cycle: number[][] = targets.map(() => []);
      for (let k = 0; k < targets.length; k++) {
        const t = (k + cycles.length) % targets.length;
        for (let i = 0; i < options.block; i++) cycle[t]!.push(await once(t));
      }
      cycles.push(cycle);
    }
    return cycles;
  };
  try {
    const warmup = await runCycles(options.warmupSec);
    const cycles = await runCycles(options.durationSec);
    const sent = [...warmup, ...cycles].reduce((n, cycle) => n + cycle.reduce((m, list) => m + list.length, 0), 0);
    const windows = Math.max(1, Math.min(options.windows, cycles.length));
    const windowOf = (cycle: number): number => Math.floor((cycle * windows) / cycles.length);
    return {
      durationSec: options.durationSec,
      block: options.block,
      cycles: cycles.length,
      sent,
      targets: targets.map((target, t) => {
        const all = cycles.flatMap((cycle) => cycle[t]!).sort((a, b) => a - b);
        const perWindow = Array.from({ length: windows }, (_, w) => median(cycles.filter((_, c) => windowOf(c) === w).flatMap((cycle) => cycle[t]!)));
        return { target: target.name, requests: all.length, p50Us: median(all), p99Us: percentile(all, 99), windowP50Us: perWindow };
      }),
    };
  } finally {
    for (const connection of connections) connection.close();
  }
}
