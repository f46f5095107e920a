import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { interleave, type InterleaveTarget } from '../../bench/lib/interleave.js';
import { BenchError } from '../../bench/lib/proc.js';

/**
 * The interleaved one-connection client (bench/lib/interleave.ts) against real loopback servers:
 * every row gets the same number of requests in blocks, in rotated order, over one connection each,
 * with its own headers; a non-200 answer fails the round.
 */

interface Seen {
  readonly server: string;
  readonly headers: IncomingHttpHeaders;
  readonly socket: number;
}

describe('interleaved one-connection round', () => {
  const seen: Seen[] = [];
  const servers: Server[] = [];
  const ports: Record<string, number> = {};
  let sockets = 0;

  const start = async (name: string, answer: (res: import('node:http').ServerResponse) => void): Promise<void> => {
    const server = createServer((req, res) => {
      seen.push({ server: name, headers: req.headers, socket: (req.socket as unknown as { id: number }).id });
      answer(res);
    });
    server.on('connection', (socket) => {
      (socket as unknown as { id: number }).id = ++sockets;
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    ports[name] = (server.address() as AddressInfo).port;
  };

  before(async () => {
    await start('sized', (res) => res.writeHead(200, { 'content-length': '2' }).end('ok'));
    // No Content-Length: node:http sends the body chunked, in two chunks here.
    await start('chunked', (res) => {
      res.writeHead(200);
      res.write('first');
      setImmediate(() => res.end('second'));
    });
    await start('failing', (res) => res.writeHead(503, { 'content-length': '0' }).end());
    await start('closing', (res) => res.writeHead(200, { 'content-length': '2', connection: 'close' }).end('ok'));
  });

  after(() => {
    for (const server of servers) server.close();
  });

  test('every row gets whole blocks in rotated order over one connection, with its own headers', async () => {
    seen.length = 0;
    const targets: InterleaveTarget[] = [
      { name: 'a', url: `http://127.0.0.1:${ports.sized}/a?x=1`, headers: { authorization: 'Bearer one' } },
      { name: 'b', url: `http://127.0.0.1:${ports.chunked}/b`, headers: { 'x-session-token': 'two' } },
    ];
    const result = await interleave(targets, { durationSec: 0.3, warmupSec: 0.1, block: 5, windows: 3 });
    assert.ok(result.cycles >= 3, `only ${result.cycles} cycles`);
    const [a, b] = result.targets;
    assert.equal(a!.target, 'a');
    assert.equal(b!.target, 'b');
    assert.equal(a!.requests, result.cycles * 5);
    assert.equal(b!.requests, result.cycles * 5);
    assert.equal(result.sent, seen.length);
    assert.equal(a!.windowP50Us.length, 3);
    assert.ok(a!.p50Us > 0 && a!.p99Us >= a!.p50Us);
    // Blocks of five, the first row of a cycle alternating (a then b, b then a): a server's requests
    // come in runs of five, or ten where two cycles meet on the same row.
    const runs = seen.map((s) => s.server).join(' ').match(/(\b\w+\b)( \1\b)*/g)!.map((run) => run.split(' ').length);
    assert.deepEqual([...new Set(runs)].sort(), [10, 5]);
    assert.equal(new Set(seen.filter((s) => s.server === 'sized').map((s) => s.socket)).size, 1);
    assert.equal(new Set(seen.filter((s) => s.server === 'chunked').map((s) => s.socket)).size, 1);
    assert.equal(seen.find((s) => s.server === 'sized')!.headers.authorization, 'Bearer one');
    assert.equal(seen.find((s) => s.server === 'chunked')!.headers['x-session-token'], 'two');
    assert.equal(seen.find((s) => s.server === 'chunked')!.headers.authorization, undefined);
  });

  test('an answer other than 200 fails the round', async () => {
    const targets: InterleaveTarget[] = [
      { name: 'a', url: `http://127.0.0.1:${ports.sized}/`, headers: {} },
      { name: 'down', url: `http://127.0.0.1:${ports.failing}/`, headers: {} },
    ];
    await assert.rejects(interleave(targets, { durationSec: 0.2, warmupSec: 0, block: 3, windows: 1 }), (error: unknown) => {
      assert.ok(error instanceof BenchError);
      assert.equal(error.message, 'down (interleaved, one connection): answered 503, not 200');
      return true;
    });
  });

  test('a row that closes its connection fails the round instead of hanging it', { timeout: 5000 }, async () => {
    const targets: InterleaveTarget[] = [{ name: 'once', url: `http://127.0.0.1:${ports.closing}/`, headers: {} }];
    await assert.rejects(interleave(targets, { durationSec: 0.2, warmupSec: 0, block: 3, windows: 1 }), (error: unknown) => {
      assert.ok(error instanceof BenchError);
      // Which the client sees first, the close or a write into it, is the kernel's timing.
      assert.match(error.message, /^once \(interleaved, one connection\): (connection closed|write EPIPE|read ECONNRESET)$/);
      return true;
    });
  });
});
