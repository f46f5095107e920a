import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressPartition } from '../../src/throttle/partition.js';

test('IPv4 addresses count alone; IPv6 addresses count as their /64, however they are spelled', () => {
  const cases: [string, string][] = [
    ['192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:0DB8:0001:0002:ffff:ffff:ffff:ffff', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::1', '2001:db8:1:2::/64'],
    ['2001:db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['::', '0:0:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['64:ff9b::192.0.2.1', '64:ff9b:0:0::/64'],
    ['1:2:3:4:5:6:192.0.2.1', '1:2:3:4::/64'],
    // Not an address at all (never produced by the canonical view): kept as it is.
    ['unknown', 'unknown'],
  ];
  for (const [ip, partition] of cases) assert.equal(addressPartition(ip), partition, ip);
  // Rotating through one /64 does not give fresh quotas.
  assert.equal(addressPartition('2001:db8:aa:bb::1'), addressPartition('2001:db8:aa:bb:dead:beef:0:1'));
  assert.notEqual(addressPartition('2001:db8:aa:bb::1'), addressPartition('2001:db8:aa:bc::1'));
});
