import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RequestConfigError } from '../../src/request/errors.js';
import { createTrustList, unmapIPv4 } from '../../src/request/trust.js';

test('IPv4 and IPv6 ranges and single addresses', () => {
  const list = createTrustList(['10.0.0.0/8', '192.168.1.7', 'fd00::/8', '::1', '0.0.0.0/32']);
  assert.equal(list.size, 5);
  const cases: ReadonlyArray<readonly [string, boolean]> = [
    ['10.0.0.1', true],
    ['10.255.255.255', true],
    ['11.0.0.1', false],
    ['192.168.1.7', true],
    ['192.168.1.8', false],
    ['fd12:3456::1', true],
    ['fe80::1', false],
    ['::1', true],
    ['::2', false],
    // IPv4-mapped IPv6, as dual-stack sockets report IPv4 peers
    ['::ffff:10.1.2.3', true],
    ['::ffff:192.168.1.7', true],
    ['::ffff:11.0.0.1', false],
    // never an exception per request: garbage is simply untrusted
    ['', false],
    ['not-an-ip', false],
    ['10.0.0.1:80', false],
    ['[::1]', false],
    ['010.0.0.1', false],
  ];
  for (const [ip, expected] of cases) assert.equal(list.has(ip), expected, ip);
});

test('an IPv4-mapped range is the IPv4 range it names', () => {
  const list = createTrustList(['::ffff:10.0.0.0/104', '::ffff:127.0.0.1']);
  assert.equal(list.has('10.9.9.9'), true);
  assert.equal(list.has('::ffff:10.9.9.9'), true);
  assert.equal(list.has('127.0.0.1'), true);
  assert.equal(list.has('11.0.0.1'), false);
});

test('host bits in a range are masked, /0 trusts a whole family', () => {
  assert.equal(createTrustList(['10.1.2.3/8']).has('10.200.0.1'), true);
  const everyV4 = createTrustList(['0.0.0.0/0']);
  assert.equal(everyV4.has('203.0.113.1'), true);
  assert.equal(everyV4.has('2001:db8::1'), false);
});

test('an empty list trusts nobody', () => {
  const list = createTrustList([]);
  assert.equal(list.size, 0);
  assert.equal(list.has('127.0.0.1'), false);
  assert.equal(list.has('::1'), false);
});

test('bad entries are refused at creation, naming the entry', () => {
  const bad: ReadonlyArray<readonly [string, string]> = [
    ['', 'must be a non-empty CIDR string'],
    ['10.0.0.0/33', 'prefix length must be at most 32'],
    ['fd00::/129', 'prefix length must be at most 128'],
    ['10.0.0.0/08', 'prefix length must be a decimal number'],
    ['10.0.0.0/+8', 'prefix length must be a decimal number'],
    ['10.0.0.0/', 'prefix length must be a decimal number'],
    ['10.0.0.0/8/9', 'is not a CIDR (more than one "/")'],
    ['10.0.0', 'is not an IPv4 or IPv6 address or CIDR'],
    ['localhost', 'is not an IPv4 or IPv6 address or CIDR'],
    [' 10.0.0.1', 'is not an IPv4 or IPv6 address or CIDR'],
    ['fe80::1%eth0', 'must not carry an IPv6 zone id'],
    ['::ffff:10.0.0.0/80', 'an IPv4-mapped range needs a prefix of at least 96'],
  ];
  for (const [entry, message] of bad) {
    assert.throws(
      () => createTrustList(['127.0.0.1', entry]),
      (error: unknown) => {
        assert.ok(RequestConfigError.is(error), entry);
        assert.equal(error.option, 'trusted_proxies[1]');
        assert.equal(error.message, `trusted_proxies[1]: ${message}`);
        return true;
      },
    );
  }
  assert.throws(() => createTrustList('10.0.0.0/8' as unknown as string[]), (error: unknown) => RequestConfigError.is(error) && error.option === 'trusted_proxies');
});

test('unmapIPv4 only unmaps IPv4-mapped addresses', () => {
  assert.equal(unmapIPv4('::ffff:127.0.0.1'), '127.0.0.1');
  assert.equal(unmapIPv4('::FFFF:10.0.0.1'), '10.0.0.1');
  assert.equal(unmapIPv4('::ffff:7f00:1'), '::ffff:7f00:1');
  assert.equal(unmapIPv4('::1'), '::1');
  assert.equal(unmapIPv4('127.0.0.1'), '127.0.0.1');
});

test('remembered answers stay right past the memory bound', () => {
  const list = createTrustList(['10.0.0.0/16']);
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 5000; i++) {
      const inside = `10.0.${i % 256}.${i >> 8}`;
      const outside = `10.1.${i % 256}.${i >> 8}`;
      assert.equal(list.has(inside), true, inside);
      assert.equal(list.has(outside), false, outside);
    }
  }
});
