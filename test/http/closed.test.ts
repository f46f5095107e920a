import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { test } from 'node:test';
import { whenClosed } from '../../src/http/closed.js';

/** A server whose handler registers `watchers` close watchers, each logging `name:status` once called. */
async function serverWithWatchers(
  watchers: number,
  answer: (res: ServerResponse) => void,
): Promise<{ port: number; calls: string[]; received: Promise<void>; closed: Promise<void>; close: () => void }> {
  const calls: string[] = [];
  let resolveReceived!: () => void;
  const received = new Promise<void>((resolve) => (resolveReceived = resolve));
  let resolveClosed!: () => void;
  const closed = new Promise<void>((resolve) => (resolveClosed = resolve));
  const server = createServer((_req, res) => {
    for (let i = 1; i <= watchers; i++) {
      whenClosed(res, {
        responseClosed(closedRes: ServerResponse) {
          assert.equal(closedRes, res);
          calls.push(`w${i}:${closedRes.statusCode}`);
          if (i === watchers) resolveClosed();
        },
      });
    }
    answer(res);
    resolveReceived();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { port: (server.address() as AddressInfo).port, calls, received, closed, close: () => server.close() };
}

test('every watcher runs once, in the order added, when the response is answered (one, three and five watchers)', async () => {
  for (const watchers of [1, 3, 5]) {
    const s = await serverWithWatchers(watchers, (res) => res.writeHead(204).end());
    try {
      const req = request({ port: s.port, host: '127.0.0.1', agent: false });
      req.end();
      const [res] = (await once(req, 'response')) as [IncomingMessage];
      assert.equal(res.statusCode, 204);
      res.resume();
      await s.closed;
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(s.calls, Array.from({ length: watchers }, (_, i) => `w${i + 1}:204`));
    } finally {
      s.close();
    }
  }
});

test('a client that leaves before the answer: every watcher runs once, with the response unanswered', async () => {
  const s = await serverWithWatchers(4, () => {
    /* never answers: the client leaves first */
  });
  try {
    const req = request({ port: s.port, host: '127.0.0.1', agent: false });
    req.on('error', () => undefined);
    req.end();
    // Left only once the server holds the request and its watchers.
    await s.received;
    req.destroy();
    await s.closed;
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(s.calls, ['w1:200', 'w2:200', 'w3:200', 'w4:200']);
  } finally {
    s.close();
  }
});
