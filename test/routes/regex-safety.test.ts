import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { nestedQuantifier } from '../../src/routes/regex-safety.js';

describe('nestedQuantifier (ReDoS guard)', () => {
  test('refuses a repeated group that itself repeats without bound, and names the group', () => {
    const refused: [string, string][] = [
      ['(a+)+', '(a+)+'],
      ['/x/(a*)*', '(a*)*'],
      ['(?:\\d+)+$', '(?:\\d+)+'],
      ['(\\w+\\s?)*', '(\\w+\\s?)*'],
      ['((ab)+c)*', '((ab)+c)*'],
      ['(x[a-z]+){2,}', '(x[a-z]+){2,}'],
      ['(?<seg>/[^/]+)+', '(?<seg>/[^/]+)+'],
      ['(a{1,})+?', '(a{1,})+?'],
      ['(a{2,500})*', '(a{2,500})*'],
    ];
    for (const [pattern, group] of refused) {
      const reason = nestedQuantifier(pattern);
      assert.ok(reason?.startsWith(`nested quantifier in ${group}: `), `${pattern} → ${reason}`);
      assert.match(reason!, /ReDoS/);
    }
  });

  test('lets ordinary route patterns through', () => {
    for (const pattern of [
      '/orders/\\d+',
      '/orders/[0-9a-f]{8}-[0-9a-f]{4}',
      '/(a|b)+',
      '/(ab){2}',
      '/(a+){3}',
      '(a+)?',
      '/files/.*\\.pdf',
      '[(+)]+',
      '\\(a+\\)+',
      '/x{+',
      '(?=a+)b',
      '(?<!x)y+',
      '[]a+]+',
    ]) {
      assert.equal(nestedQuantifier(pattern), undefined, pattern);
    }
  });
});
