import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compilePathRegex, MAX_PATH_REGEX_STATES, type PathRegex } from '../../src/routes/path-regex.js';

function compiled(source: string): PathRegex {
  const result = compilePathRegex(source);
  if (!result.ok) assert.fail(`${source} was refused: ${result.reason}`);
  return result.regex;
}

function refusal(source: string): string {
  const result = compilePathRegex(source);
  if (result.ok) assert.fail(`${source} was accepted`);
  return result.reason;
}

/** What the loader did before this matcher: RegExp, anchored on the whole path. */
function reference(source: string): RegExp {
  return new RegExp(`^(?:${source})$`);
}

/** Mulberry32: a small seeded generator, so a failure replays. */
function seeded(seed: number): (n: number) => number {
  let state = seed;
  return (n) => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

describe('compilePathRegex: what users write matches exactly as RegExp did', () => {
  const paths = [
    '/',
    '/api/v1/users/42',
    '/api/v12/users/alice',
    '/api/v/users/x',
    '/api/v1/users/',
    '/api/v1/users/a/b',
    '/orders/1',
    '/orders/1234567890',
    '/orders/12345678901',
    '/orders/x',
    '/files/report.pdf',
    '/files/a/b/c.pdf',
    '/files/.pdf',
    '/health',
    '/healthz',
    '/metrics',
    '/static/app.3f2a.js',
    '/users/550e8400-e29b-41d4-a716-446655440000',
    '/users/550e8400-e29b-41d4-a716-44665544000',
    '/a{b}',
    '/%7Euser/x',
    '/é',
    '/\u2028',
  ];
  const patterns = [
    '^/api/v[0-9]+/users/[^/]+$',
    '/api/v\\d+/users/[^/]+',
    '/orders/[0-9]{1,10}',
    '/(health|healthz|metrics)',
    '/health|/healthz|/metrics',
    '/files/.*\\.pdf',
    '/static/[\\w.-]+\\.(js|css)',
    '/users/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
    '/users/(?<id>[0-9a-f-]{36})',
    '/(?:api|v[12])/.*',
    '/a\\{b\\}',
    '/a{b}',
    '/x{+',
    '/%7[eE]user/.*',
    '/[^]*',
    '/.',
    '/\\S+',
    '/[a-z]*?/?',
    '(/[^/]+){2,3}',
    '/orders/\\d+|/orders',
  ];
  for (const source of patterns) {
    test(source, () => {
      const mine = compiled(source);
      const theirs = reference(source);
      for (const path of paths) assert.equal(mine.test(path), theirs.test(path), `${source} on ${JSON.stringify(path)}`);
      assert.equal(mine.source, source);
    });
  }

  test('random patterns of the accepted kind agree with RegExp on random paths', () => {
    const random = seeded(20_261_112);
    const atoms = ['a', 'b', '/', '.', '-', '\\d', '\\w', '\\s', '\\W', '\\S', '[ab]', '[^a]', '[a-c]', '[^/]', '[]', '[^]', '\\/', '\\.', '{', '}', ']', '[\\d-]', '[\\b]', '\\x61', '\\u0062', '\\cJ', '\\0', '\\t', '[\\w/]', '\u00e9'];
    const quantifiers = ['', '', '', '*', '+', '?', '{2}', '{1,3}', '{0,}', '{2,}', '*?', '+?', '??', '{,2}'];
    const pick = <T>(items: readonly T[]): T => items[random(items.length)]!;
    const pattern = (depth: number): string => {
      let source = '';
      for (let i = 0, length = 1 + random(4); i < length; i++) {
        const roll = random(10);
        if (roll < 2 && depth < 3) source += `${pick(['(', '(?:', `(?<g${depth}${i}${random(1000)}>`])}${pattern(depth + 1)})${pick(quantifiers)}`;
        else if (roll === 2) source += pick(['^', '$']);
        else source += pick(atoms) + pick(quantifiers);
      }
      return depth < 3 && random(4) === 0 ? `${source}|${pattern(depth + 1)}` : source;
    };
    const alphabet = ['a', 'b', '/', '.', '-', 'x', '1', '{', '}', ']', '\n', '\r', ' ', '\u00a0', '\u00e9', '\u2028', '\b', '\t', '_'];
    let compared = 0;
    let matched = 0;
    for (let i = 0; i < 3000; i++) {
      const source = pattern(0);
      const mine = compiled(source);
      const theirs = reference(source);
      for (let j = 0; j < 20; j++) {
        let path = '';
        for (let k = random(7); k > 0; k--) path += pick(alphabet);
        const expected = theirs.test(path);
        assert.equal(mine.test(path), expected, `${source} on ${JSON.stringify(path)}`);
        compared++;
        if (expected) matched++;
      }
    }
    // Not a vacuous agreement on "no match".
    assert.ok(matched > compared / 20, `${matched} of ${compared} matched`);
  });
});

describe('compilePathRegex: what a finite automaton cannot run is refused, with why', () => {
  test('lookaround, backreferences, word boundaries', () => {
    const why = 'is not supported: path_regex is matched in linear time, which rules out lookaround, backreferences and word boundaries';
    assert.equal(refusal('/a(?=b)'), `lookahead '(?=' at offset 2 ${why}`);
    assert.equal(refusal('/a(?!b)'), `lookahead '(?!' at offset 2 ${why}`);
    assert.equal(refusal('(?<=/)a'), `lookbehind '(?<=' at offset 0 ${why}`);
    assert.equal(refusal('(?<!x)y+'), `lookbehind '(?<!' at offset 0 ${why}`);
    assert.equal(refusal('/(a)\\1'), `backreference '\\1' at offset 4 ${why}`);
    assert.equal(refusal('/(?<x>a)\\k<x>'), `backreference '\\k' at offset 8 ${why}`);
    assert.equal(refusal('\\bapi'), `word boundary '\\b' at offset 0 ${why}`);
    assert.equal(refusal('/x\\B'), `word boundary '\\B' at offset 2 ${why}`);
  });

  test('escapes whose meaning is easy to misread', () => {
    assert.equal(refusal('/\\p{L}+'), "'\\p' is not an escape this matcher knows (escape only punctuation) at offset 1");
    assert.equal(refusal('/\\01'), 'octal escapes are not supported (write \\xHH) at offset 1');
    assert.equal(refusal('/[\\1]'), 'octal escapes are not supported (write \\xHH) at offset 2');
    assert.equal(refusal('/\\x4'), "'\\x' needs two hex digits at offset 1");
    assert.equal(refusal('/\\u{41}'), "'\\u' needs four hex digits at offset 1");
    assert.equal(refusal('/\\c1'), "'\\c' needs a letter at offset 1");
    assert.equal(refusal('/[\\d-z]'), "a range with a class escape like [\\d-z] is ambiguous (put '-' first or last, or escape it) at offset 2");
  });

  test('patterns that expand past the state bound', () => {
    assert.match(refusal('/x/[^/]{1,2000}'), /^too large: it expands to about \d+ automaton states \(at most 1000\)/);
    assert.match(refusal('(a{1000}){1000}'), /^too large: it expands to about 1000000 automaton states/);
    assert.match(refusal('a{99999999999999999999}'), /^too large: it expands to too many automaton states/);
    // Just under the bound is fine, and so is a realistic "segment up to 255 characters".
    compiled(`a{${MAX_PATH_REGEX_STATES - 2}}`);
    compiled('/files/[^/]{1,255}');
  });
});

describe('PathRegex.test: time linear in the path, whatever the pattern', () => {
  // Patterns that take V8's backtracking engine exponential or high-polynomial time on the crafted
  // path, with a benign path of the same length that makes every matcher read the whole path.
  const cases: { source: string; benign: string; crafted: string }[] = [
    // Digits: both alternatives match each one, so backtracking tries 2^n ways to split them.
    { source: '(\\w|\\d)+', benign: '1'.repeat(20_000), crafted: `${'1'.repeat(19_999)}!` },
    { source: '(.*/){8}', benign: '/'.repeat(20_000), crafted: `${'/'.repeat(19_999)}x` },
    { source: '(a+)+$', benign: 'a'.repeat(20_000), crafted: `${'a'.repeat(19_999)}!` },
    { source: '(a|a)*', benign: 'a'.repeat(20_000), crafted: `${'a'.repeat(19_999)}!` },
    { source: '(a|ab)*c', benign: `${'ab'.repeat(9_999)}ac`, crafted: 'ab'.repeat(10_000) },
    { source: '([a-z]+)*$', benign: 'a'.repeat(20_000), crafted: `${'a'.repeat(19_999)}!` },
    { source: '(.*a){12}', benign: 'a'.repeat(20_000), crafted: `${'a'.repeat(19_999)}/` },
  ];

  /**
   * The fastest of nine runs, in ms. Other work on the machine (other test files run in parallel)
   * only ever adds time, so the minimum is the run least disturbed; the backtracking this guards
   * against costs seconds to centuries on these paths, not a few times the benign path.
   */
  function fastest(run: () => unknown): number {
    let best = Infinity;
    for (let i = 0; i < 9; i++) {
      const start = process.hrtime.bigint();
      run();
      best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
    }
    return best;
  }

  for (const { source, benign, crafted } of cases) {
    test(`${source}: a crafted 20,000-character path costs about what a benign one does`, (t) => {
      const regex = compiled(source);
      assert.equal(benign.length, crafted.length);
      assert.equal(regex.test(benign), reference(source).test(benign));
      assert.equal(regex.test(crafted), false);
      // Warm both paths up so the comparison is of steady-state code.
      for (let i = 0; i < 3; i++) {
        regex.test(benign);
        regex.test(crafted);
      }
      const benignMs = fastest(() => regex.test(benign));
      const craftedMs = fastest(() => regex.test(crafted));
      const measured = `crafted ${craftedMs.toFixed(3)} ms, benign ${benignMs.toFixed(3)} ms (fastest of 9)`;
      t.diagnostic(measured);
      assert.ok(craftedMs <= 10 * benignMs, `${source}: ${measured}`);
    });
  }

  test('work grows linearly with the path: 8× the path costs about 8× the time, not 8^k×', (t) => {
    const regex = compiled('(.*/){8}');
    const short = '/'.repeat(2_500) + 'x';
    const long = '/'.repeat(20_000) + 'x';
    for (let i = 0; i < 3; i++) regex.test(long);
    const shortMs = fastest(() => regex.test(short));
    const longMs = fastest(() => regex.test(long));
    const measured = `2,501 characters ${shortMs.toFixed(3)} ms, 20,001 characters ${longMs.toFixed(3)} ms (fastest of 9)`;
    t.diagnostic(measured);
    assert.ok(longMs <= 8 * 4 * shortMs, measured);
  });
});
