/**
 * The part of JavaScript regex syntax that `path_regex` accepts, parsed into a tree the linear-time
 * matcher (path-regex.ts) compiles. It reads patterns as `new RegExp(source)` does (no flags, so
 * UTF-16 code units and the web-compat "Annex B" grammar) and refuses, with the offset and a reason,
 * every construct a finite automaton cannot run (lookaround, backreferences, \b) and every escape
 * whose meaning is easy to misread (octal, `\p` without the u flag, `[\d-z]`). The caller has already
 * compiled the source with RegExp, so syntax errors are reported in V8's words before we get here.
 */

/** Code-unit ranges as inclusive [lo, hi] pairs, sorted, merged. */
export type CharSet = readonly number[];

export type RegexNode =
  | { readonly kind: 'chars'; readonly set: CharSet }
  | { readonly kind: 'seq'; readonly items: readonly RegexNode[] }
  | { readonly kind: 'alt'; readonly options: readonly RegexNode[] }
  /** max is Infinity for `*`, `+`, `{n,}`. Lazy and greedy read the same when only testing. */
  | { readonly kind: 'repeat'; readonly body: RegexNode; readonly min: number; readonly max: number }
  | { readonly kind: 'begin' }
  | { readonly kind: 'end' };

export type ParseResult = { readonly ok: true; readonly node: RegexNode } | { readonly ok: false; readonly reason: string };

const LINEAR = 'path_regex is matched in linear time, which rules out lookaround, backreferences and word boundaries';

const DIGIT: CharSet = [0x30, 0x39];
const WORD: CharSet = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
// ECMAScript WhiteSpace and LineTerminator, which `\s` matches.
const SPACE: CharSet = [
  0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff,
];
const LINE_TERMINATORS: CharSet = [0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029];
const MAX_UNIT = 0xffff;

/** Sorts and merges ranges. */
function normalize(ranges: readonly number[]): CharSet {
  const pairs: [number, number][] = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  for (const [lo, hi] of pairs) {
    const last = out.length - 1;
    if (last > 0 && lo <= out[last]! + 1) out[last] = Math.max(out[last]!, hi);
    else out.push(lo, hi);
  }
  return out;
}

function complement(set: CharSet): CharSet {
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < set.length; i += 2) {
    if (set[i]! > next) out.push(next, set[i]! - 1);
    next = set[i + 1]! + 1;
  }
  if (next <= MAX_UNIT) out.push(next, MAX_UNIT);
  return out;
}

const DOT = complement(LINE_TERMINATORS);
const CLASS_ESCAPES: Readonly<Record<string, CharSet>> = {
  d: DIGIT,
  D: complement(DIGIT),
  w: WORD,
  W: complement(WORD),
  s: SPACE,
  S: complement(SPACE),
};
const CONTROL_ESCAPES: Readonly<Record<string, number>> = { t: 0x09, n: 0x0a, v: 0x0b, f: 0x0c, r: 0x0d };
const BRACED_QUANTIFIER = /\{(\d+)(,(\d*))?\}/y;
const HEX = /^[0-9a-fA-F]+$/;

class Refusal extends Error {}

/** Parses `source` (a pattern RegExp accepts) into the tree, or says why it is refused. */
export function parsePathRegex(source: string): ParseResult {
  try {
    const parser = new Parser(source);
    const node = parser.alternation();
    if (parser.pos < source.length) parser.refuse(`unexpected '${source[parser.pos]}'`);
    return { ok: true, node };
  } catch (error) {
    if (error instanceof Refusal) return { ok: false, reason: error.message };
    throw error;
  }
}

class Parser {
  pos = 0;
  constructor(private readonly src: string) {}

  refuse(what: string, at = this.pos): never {
    throw new Refusal(`${what} at offset ${at}`);
  }

  private unsupported(what: string, at: number): never {
    throw new Refusal(`${what} at offset ${at} is not supported: ${LINEAR}`);
  }

  alternation(): RegexNode {
    const options = [this.sequence()];
    while (this.src[this.pos] === '|') {
      this.pos++;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0]! : { kind: 'alt', options };
  }

  private sequence(): RegexNode {
    const items: RegexNode[] = [];
    while (this.pos < this.src.length) {
      const c = this.src[this.pos]!;
      if (c === '|' || c === ')') break;
      const atom = this.term();
      items.push(this.quantified(atom));
    }
    return items.length === 1 ? items[0]! : { kind: 'seq', items };
  }

  private term(): RegexNode {
    const start = this.pos;
    const c = this.src[this.pos++]!;
    switch (c) {
      case '^':
        return { kind: 'begin' };
      case '$':
        return { kind: 'end' };
      case '.':
        return { kind: 'chars', set: DOT };
      case '[':
        return { kind: 'chars', set: this.characterClass() };
      case '\\':
        return this.atomEscape(start);
      case '(':
        return this.group(start);
      case '*':
      case '+':
      case '?':
        return this.refuse('nothing to repeat', start);
      case '{':
        BRACED_QUANTIFIER.lastIndex = start;
        if (BRACED_QUANTIFIER.test(this.src)) this.refuse('nothing to repeat', start);
        return literal(c.charCodeAt(0));
      default:
        // Annex B: a lone ']' or '}' is a literal, like any other character here.
        return literal(c.charCodeAt(0));
    }
  }

  private group(start: number): RegexNode {
    if (this.src[this.pos] === '?') {
      const rest = this.src.slice(this.pos + 1, this.pos + 3);
      if (rest.startsWith(':')) {
        this.pos += 2;
      } else if (rest.startsWith('=') || rest.startsWith('!')) {
        this.unsupported(`lookahead '(?${rest[0]}'`, start);
      } else if (rest === '<=' || rest === '<!') {
        this.unsupported(`lookbehind '(?${rest}'`, start);
      } else if (rest.startsWith('<')) {
        // A named group: the name matters to no one here (nothing reads captures).
        const close = this.src.indexOf('>', this.pos);
        if (close === -1) this.refuse('unterminated group name', start);
        this.pos = close + 1;
      } else {
        this.refuse(`inline modifiers '(?${rest[0] ?? ''}' are not supported`, start);
      }
    }
    const body = this.alternation();
    if (this.src[this.pos] !== ')') this.refuse('unterminated group', start);
    this.pos++;
    return body;
  }

  /** A quantifier after `atom`, if any; lazy `?` suffixes read the same when only testing. */
  private quantified(atom: RegexNode): RegexNode {
    const start = this.pos;
    const c = this.src[this.pos];
    let min: number;
    let max: number;
    if (c === '*' || c === '+' || c === '?') {
      min = c === '+' ? 1 : 0;
      max = c === '?' ? 1 : Infinity;
      this.pos++;
    } else if (c === '{') {
      BRACED_QUANTIFIER.lastIndex = start;
      const m = BRACED_QUANTIFIER.exec(this.src);
      if (m === null) return atom; // a literal '{' (Annex B), read by the next term
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      this.pos += m[0].length;
    } else {
      return atom;
    }
    if (this.src[this.pos] === '?') this.pos++;
    return { kind: 'repeat', body: atom, min, max };
  }

  private atomEscape(start: number): RegexNode {
    const c = this.src[this.pos];
    if (c === 'b' || c === 'B') this.unsupported(`word boundary '\\${c}'`, start);
    if (c !== undefined && c >= '1' && c <= '9') this.unsupported(`backreference '\\${c}'`, start);
    if (c === 'k') this.unsupported("backreference '\\k'", start);
    const set = CLASS_ESCAPES[c ?? ''];
    if (set !== undefined) {
      this.pos++;
      return { kind: 'chars', set };
    }
    return literal(this.characterEscape(start));
  }

  /** The code unit of an escape that stands for one character; `pos` is just after the backslash. */
  private characterEscape(start: number): number {
    const c = this.src[this.pos];
    if (c === undefined) this.refuse('\\ at the end of the pattern', start);
    this.pos++;
    const control = CONTROL_ESCAPES[c];
    if (control !== undefined) return control;
    if (c === '0') {
      const next = this.src[this.pos];
      if (next !== undefined && next >= '0' && next <= '9') this.refuse("octal escapes are not supported (write \\xHH)", start);
      return 0;
    }
    if (c === 'x' || c === 'u') {
      const digits = this.src.slice(this.pos, this.pos + (c === 'x' ? 2 : 4));
      if (digits.length !== (c === 'x' ? 2 : 4) || !HEX.test(digits)) this.refuse(`'\\${c}' needs ${c === 'x' ? 'two' : 'four'} hex digits`, start);
      this.pos += digits.length;
      return Number.parseInt(digits, 16);
    }
    if (c === 'c') {
      const letter = this.src[this.pos];
      if (letter === undefined || !/[A-Za-z]/.test(letter)) this.refuse("'\\c' needs a letter", start);
      this.pos++;
      return letter.charCodeAt(0) % 32;
    }
    // Without the u flag `\p` is just 'p', `\a` just 'a': refused rather than read one way or the other.
    if (/[A-Za-z0-9]/.test(c)) this.refuse(`'\\${c}' is not an escape this matcher knows (escape only punctuation)`, start);
    return c.charCodeAt(0);
  }

  /** `[...]` after the '['; returns the set. */
  private characterClass(): CharSet {
    const start = this.pos - 1;
    const negated = this.src[this.pos] === '^';
    if (negated) this.pos++;
    const ranges: number[] = [];
    // JS, unlike PCRE: `[]` is an empty class and `[^]` matches anything, so ']' right here closes it.
    while (this.src[this.pos] !== ']') {
      if (this.pos >= this.src.length) this.refuse('unterminated character class', start);
      const atomStart = this.pos;
      const low = this.classAtom();
      if (this.src[this.pos] === '-' && this.src[this.pos + 1] !== ']' && this.pos + 1 < this.src.length) {
        this.pos++;
        const high = this.classAtom();
        if (typeof low !== 'number' || typeof high !== 'number') {
          this.refuse("a range with a class escape like [\\d-z] is ambiguous (put '-' first or last, or escape it)", atomStart);
        }
        if (low > high) this.refuse('range out of order in character class', atomStart);
        ranges.push(low, high);
      } else if (typeof low === 'number') {
        ranges.push(low, low);
      } else {
        ranges.push(...low);
      }
    }
    this.pos++;
    const set = normalize(ranges);
    return negated ? complement(set) : set;
  }

  /** One class member: a code unit, or a set for `\d` and the like. */
  private classAtom(): number | CharSet {
    const start = this.pos;
    const c = this.src[this.pos++]!;
    if (c !== '\\') return c.charCodeAt(0);
    const e = this.src[this.pos];
    const set = CLASS_ESCAPES[e ?? ''];
    if (set !== undefined) {
      this.pos++;
      return set;
    }
    if (e === 'b') {
      this.pos++;
      return 0x08; // backspace, inside a class
    }
    if (e === '-') {
      this.pos++;
      return 0x2d;
    }
    if (e !== undefined && e >= '1' && e <= '9') this.refuse('octal escapes are not supported (write \\xHH)', start);
    return this.characterEscape(start);
  }
}

function literal(unit: number): RegexNode {
  return { kind: 'chars', set: [unit, unit] };
}
