import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { extractSteps, NOT_RUN_MARKER, outputMatches } from './script.js';

// The README test is only as honest as its reader and its comparison: what they take and refuse.

describe('extractSteps', () => {
  const markdown = [
    '# title',
    '```console',
    '$ echo outside',
    '```',
    '## Walk-through: demo',
    '```sh',
    'A=1',
    'B=2',
    '```',
    'Text.',
    '```console',
    '$ echo $A \\',
    '    $B',
    '1 2',
    '',
    '$ true',
    '```',
    NOT_RUN_MARKER,
    '```console',
    '$ echo browser only',
    '```',
    '```yaml',
    'key: value',
    '```',
    '## Next',
    '```sh',
    'echo after',
    '```',
  ].join('\n');

  it('takes sh blocks whole and console commands with their continuation lines and output, inside the section only', () => {
    assert.deepEqual(extractSteps(markdown), [
      { line: 7, command: 'A=1\nB=2', expected: '' },
      { line: 12, command: 'echo $A \\\n    $B', expected: '1 2' },
      { line: 16, command: 'true', expected: '' },
    ]);
  });

  it('refuses a README without the section, and a console block that does not start with a command', () => {
    assert.throws(() => extractSteps('# nothing here\n'), /no "## Walk-through" section/);
    assert.throws(() => extractSteps('## Walk-through\n```console\noutput first\n```\n'), /README.md:3: a console block must start with a "\$ " command/);
  });
});

describe('outputMatches', () => {
  it('compares literally where nothing is elided, and refuses a different status or a missing line', () => {
    assert.equal(outputMatches('HTTP/1.1 200 OK', 'HTTP/1.1 200 OK\n'), true);
    assert.equal(outputMatches('HTTP/1.1 200 OK', 'HTTP/1.1 401 Unauthorized'), false);
    assert.equal(outputMatches('a\nb', 'a'), false);
    assert.equal(outputMatches('a', 'a\nb'), false);
    assert.equal(outputMatches('', 'something printed'), false);
  });

  it('reads … as any text within one line, taking a shortened id before it', () => {
    assert.equal(outputMatches('{"id":"44c2-…","ok":true,…}', '{"id":"9f00-aaaa","ok":true,"more":1}'), true);
    assert.equal(outputMatches('{"id":"44c2-…","ok":true,…}', '{"id":"9f00-aaaa","ok":false,"more":1}'), false);
    assert.equal(outputMatches('a…b', 'a\nb'), false);
  });

  it('reads a line of only … as any number of lines', () => {
    assert.equal(outputMatches('HTTP/1.1 401 Unauthorized\n…\n\n{"x":1}', 'HTTP/1.1 401 Unauthorized\ndate: now\nconnection: keep-alive\n\n{"x":1}'), true);
    assert.equal(outputMatches('HTTP/1.1 401 Unauthorized\n…\n\n{"x":1}', 'HTTP/1.1 401 Unauthorized\n\n{"x":1}'), true);
    assert.equal(outputMatches('HTTP/1.1 401 Unauthorized\n…\n\n{"x":1}', 'HTTP/1.1 401 Unauthorized\ndate: now\n\n{"x":2}'), false);
  });

  it('compares values that change in every run by their shape, not their text', () => {
    const shown = 'x-session-token: ppl4sB4GmiAyQkvn_TySbj1m69JBmR4BbtWS93lkTN8\nx-session-expires: 1795883359\n286499 is your code\n["x1ma-44gn-98s0"] KUZTTIC2CQ5RFIDPSSMGU5F5FNG3IECZ KUZT TIC2 CQ5R FIDP SSMG U5F5 FNG3 IECZ';
    const real = 'x-session-token: wjBzN4UV6Q9s9nzzb9ff71osgqtSH3tTVLX5xbp5Vos\nx-session-expires: 1795951924\n658792 is your code\n["a11y-v7gh-2rjz"] RXEHZMN4K25HUYCVBVQ2JKSW7YDD7673 RXEH ZMN4 K25H UYCV BVQ2 JKSW 7YDD 7673';
    assert.equal(outputMatches(shown, real), true);
    // A shape is not a wildcard: a 5-digit number is not a code, a short token is not a token.
    assert.equal(outputMatches('286499 is your code', '28649 is your code'), false);
    assert.equal(outputMatches('x-session-token: ppl4sB4GmiAyQkvn_TySbj1m69JBmR4BbtWS93lkTN8', 'x-session-token: short'), false);
  });
});
