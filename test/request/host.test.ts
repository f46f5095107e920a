import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeHost } from '../../src/request/host.js';

test('normalised: lower case, no trailing dot, no default port', () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ['api.example', 'api.example'],
    ['API.Example', 'api.example'],
    ['api.example.', 'api.example'],
    ['api.example:80', 'api.example'],
    ['api.example:443', 'api.example'],
    ['API.example.:443', 'api.example'],
    ['api.example:8080', 'api.example:8080'],
    ['localhost', 'localhost'],
    ['internal_host-1', 'internal_host-1'],
    ['127.0.0.1:9000', '127.0.0.1:9000'],
    ['[::1]', '[::1]'],
    ['[::1]:80', '[::1]'],
    ['[FD00::AB]:8443', '[fd00::ab]:8443'],
    ['[::ffff:127.0.0.1]', '[::ffff:127.0.0.1]'],
    ['a:65535', 'a:65535'],
  ];
  for (const [input, expected] of cases) assert.equal(normalizeHost(input), expected, input);
});

test('refused: anything that is not host[:port]', () => {
  const bad = [
    '',
    '.',
    '.api.example',
    'api..example',
    'api.example..',
    'user@api.example',
    'api example',
    'api.example/',
    'api%2eexample',
    'caf\u00e9.example',
    'api.example:',
    'api.example:0',
    'api.example:080',
    'api.example:65536',
    'api.example:80:80',
    'api.example:8o',
    ':80',
    '[::1',
    '[::1]x',
    '[::1]:',
    '[not-v6]',
    '[1.2.3.4]',
    '[]',
    `${'a'.repeat(254)}`,
  ];
  for (const input of bad) assert.equal(normalizeHost(input), undefined, input);
  assert.equal(normalizeHost(`${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(61)}`)?.length, 253);
});

test('the last answer is kept: a repeated value, valid or not, gets what a first reading gets, whatever came before', () => {
  const sequence: ReadonlyArray<readonly [string, string | undefined]> = [
    ['API.Example:443', 'api.example'],
    ['API.Example:443', 'api.example'],
    ['api.example:8443', 'api.example:8443'],
    ['a b', undefined],
    ['a b', undefined],
    ['API.Example:443', 'api.example'],
    ['', undefined],
    ['', undefined],
    ['api.example:8443', 'api.example:8443'],
    // Same length and characters but one: equality is on the whole value, not a prefix or its length.
    ['api.example:8444', 'api.example:8444'],
    ['api.example:0444', undefined],
  ];
  for (const [input, expected] of sequence) assert.equal(normalizeHost(input), expected, input);
});
