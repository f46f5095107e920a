import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nameSet, NameTable } from '../../src/contract/name-table.js';

test('NameTable answers exactly the names it holds, by length and then by every character', () => {
  const table = new NameTable<number>([
    ['te', 1],
    ['host', 2],
    ['upgrade', 3],
    ['trailer', 4],
    ['connection', 5],
    ['keep-alive', 6],
  ]);
  assert.equal(table.get('te'), 1);
  assert.equal(table.get('host'), 2);
  assert.equal(table.get('upgrade'), 3);
  assert.equal(table.get('trailer'), 4, 'a second name of the same length');
  assert.equal(table.get('connection'), 5);
  assert.equal(table.get('keep-alive'), 6);
  // Built at run time, as a parser's names are: equal content, another string.
  assert.equal(table.get(['con', 'nection'].join('')), 5);
  for (const other of ['', 't', 'ho', 'Host', 'hosts', 'hos', 'upgradE', 'trailers', 'connectio', 'connection ', 'keep_alive', 'constructor', '__proto__', 'toString']) {
    assert.equal(table.get(other), undefined, other);
    assert.equal(table.has(other), false, other);
  }
});

test('NameTable: the first entry of a name wins; nameSet holds names only', () => {
  const table = new NameTable<string>([
    ['x', 'first'],
    ['x', 'second'],
  ]);
  assert.equal(table.get('x'), 'first');
  const set = nameSet(['x-real-ip', 'client-ip', 'x-client-ip']);
  assert.equal(set.has('x-real-ip'), true);
  assert.equal(set.has('client-ip'), true, 'same length as x-real-ip');
  assert.equal(set.has('x-client-ip'), true);
  assert.equal(set.has('x-real-ipx'), false);
  assert.equal(nameSet([]).has(''), false);
});
