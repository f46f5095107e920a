import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { HEAD, issuesOf, parse, ROUTE } from './support.js';

/** `clock:` — the NTP server the gateway checks this host's clock against; off unless named. */

const withClock = (clock: string): string => `clock: ${clock}\n${HEAD}${ROUTE}`;

describe('policy: clock', () => {
  test('off by default, and without ntp_server', () => {
    assert.equal(parse(HEAD + ROUTE).clock, undefined);
    assert.equal(parse(withClock('{ interval: 1m }')).clock, undefined);
  });

  test('a host alone is port 123, every 5 minutes, 2 s to answer', () => {
    assert.deepEqual(parse(withClock('{ ntp_server: pool.ntp.org }')).clock, { server: { host: 'pool.ntp.org', port: 123 }, intervalMs: 300_000, timeoutMs: 2_000 });
  });

  test('host:port, an IPv4 address, an IPv6 address in brackets; interval and timeout', () => {
    assert.deepEqual(parse(withClock('{ ntp_server: "ntp.example.com:1123", interval: 15s, timeout: 100ms }')).clock, {
      server: { host: 'ntp.example.com', port: 1123 },
      intervalMs: 15_000,
      timeoutMs: 100,
    });
    assert.deepEqual(parse(withClock('{ ntp_server: "10.0.0.1:123" }')).clock?.server, { host: '10.0.0.1', port: 123 });
    assert.deepEqual(parse(withClock('{ ntp_server: "[2001:db8::1]:123" }')).clock?.server, { host: '2001:db8::1', port: 123 });
  });

  test('refused: a port out of range, something that is not host[:port], an unknown key, a poll more often than every 15 s', () => {
    assert.deepEqual(issuesOf(withClock('{ ntp_server: "ntp.example.com:0" }')), ['t.yaml:1: clock.ntp_server: the port must be from 1 to 65535']);
    assert.deepEqual(issuesOf(withClock('{ ntp_server: "ntp.example.com:65536" }')), ['t.yaml:1: clock.ntp_server: the port must be from 1 to 65535']);
    assert.deepEqual(issuesOf(withClock('{ ntp_server: "udp://ntp.example.com" }')), [
      't.yaml:1: clock.ntp_server: must be host or host:port, e.g. pool.ntp.org, 10.0.0.1:123 or [2001:db8::1]:123',
    ]);
    assert.deepEqual(issuesOf(withClock('{ ntp_server: "2001:db8::1" }')), [
      't.yaml:1: clock.ntp_server: must be host or host:port, e.g. pool.ntp.org, 10.0.0.1:123 or [2001:db8::1]:123',
    ]);
    assert.deepEqual(issuesOf(withClock('{ ntp: pool.ntp.org }')), ['t.yaml:1: clock.ntp: unknown key (known keys: ntp_server, interval, timeout)']);
    assert.deepEqual(issuesOf(withClock('{ ntp_server: pool.ntp.org, interval: 10s }')), ['t.yaml:1: clock.interval: must be at least 15s']);
  });
});
