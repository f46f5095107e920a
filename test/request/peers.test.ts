import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { exchange, startCanonServer, type RawResponse } from './harness.js';

/** Whether this host can bind `::` (dual-stack) and `::1`; probed, not assumed. */
async function canListen(host: string): Promise<boolean> {
  const server = createServer();
  return new Promise((resolve) => {
    server.once('error', () => resolve(false));
    server.listen(0, host, () => server.close(() => resolve(true)));
  });
}

function peerAndView(response: RawResponse | undefined): { peer: string | undefined; view: Record<string, unknown> } {
  assert.ok(response);
  assert.equal(response.status, 200, response.body);
  return { peer: response.headers['x-peer'], view: (JSON.parse(response.body) as { view: Record<string, unknown> }).view };
}

const SPOOF = 'GET / HTTP/1.1\r\nHost: api.example\r\nX-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n';

test('an IPv4 peer on a dual-stack socket (::ffff:127.0.0.1) is unmapped and matched against IPv4 ranges', async (t) => {
  if (!(await canListen('::'))) {
    t.skip('this host cannot bind the IPv6 wildcard');
    return;
  }
  const trusted = await startCanonServer({ host: '::', trusted: ['127.0.0.0/8'] });
  const untrusted = await startCanonServer({ host: '::', trusted: ['10.0.0.0/8'] });
  try {
    const believed = peerAndView((await exchange(trusted.port, SPOOF, { host: '127.0.0.1' })).responses[0]);
    assert.equal(believed.peer, '::ffff:127.0.0.1');
    assert.equal(believed.view.clientIp, '203.0.113.7');
    assert.equal(believed.view.forwardedFor, '203.0.113.7, 127.0.0.1');
    assert.equal(believed.view.proto, 'https');

    const ignored = peerAndView((await exchange(untrusted.port, SPOOF, { host: '127.0.0.1' })).responses[0]);
    assert.equal(ignored.peer, '::ffff:127.0.0.1');
    assert.equal(ignored.view.clientIp, '127.0.0.1');
    assert.equal(ignored.view.forwardedFor, '127.0.0.1');
    assert.equal(ignored.view.proto, 'http');
  } finally {
    await trusted.close();
    await untrusted.close();
  }
});

test('a range written IPv4-mapped (::ffff:127.0.0.0/104) trusts the same peers', async (t) => {
  if (!(await canListen('::'))) {
    t.skip('this host cannot bind the IPv6 wildcard');
    return;
  }
  const server = await startCanonServer({ host: '::', trusted: ['::ffff:127.0.0.0/104'] });
  try {
    const viaMapped = peerAndView((await exchange(server.port, SPOOF, { host: '127.0.0.1' })).responses[0]);
    assert.equal(viaMapped.view.clientIp, '203.0.113.7');
  } finally {
    await server.close();
  }
});

test('an IPv6 peer (::1) is trusted only by an IPv6 range', async (t) => {
  if (!(await canListen('::1'))) {
    t.skip('this host has no IPv6 loopback');
    return;
  }
  const trusted = await startCanonServer({ host: '::1', trusted: ['::1/128'] });
  const v4only = await startCanonServer({ host: '::1', trusted: ['127.0.0.0/8'] });
  try {
    const believed = peerAndView((await exchange(trusted.port, SPOOF, { host: '::1' })).responses[0]);
    assert.equal(believed.peer, '::1');
    assert.deepEqual([believed.view.clientIp, believed.view.forwardedFor], ['203.0.113.7', '203.0.113.7, ::1']);
    const ignored = peerAndView((await exchange(v4only.port, SPOOF, { host: '::1' })).responses[0]);
    assert.deepEqual([ignored.view.clientIp, ignored.view.forwardedFor, ignored.view.proto], ['::1', '::1', 'http']);
  } finally {
    await trusted.close();
    await v4only.close();
  }
});
