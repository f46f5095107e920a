/**
 * Route regexes, matched in time linear in the path. V8's backtracking engine can take exponential
 * (`(a|a)*`) or high-polynomial (`(.*a){12}`) time on a crafted path, and a route regex runs on every
 * request, before authentication, on the one event loop: a single request could stall all others.
 * So `path_regex` never reaches RegExp at request time. The accepted subset (regex-parse.ts) becomes
 * a Thompson NFA, simulated one path character at a time over the set of live states (as RE2 and
 * Go's regexp do): at most `states` steps per character, whatever the pattern and the path.
 * Semantics are RegExp's for the same source, anchored on the whole path (`^(?:source)$`).
 */
import { parsePathRegex, type CharSet, type RegexNode } from './regex-parse.js';

/**
 * Bound on the NFA's size, so also on the work per path character. Counted repetitions expand
 * (`[^/]{1,255}` is about 510 states); real route patterns stay well below.
 */
export const MAX_PATH_REGEX_STATES = 1000;

const CHAR = 0;
const SPLIT = 1;
const BEGIN = 2;
const END = 3;
const MATCH = 4;

export type PathRegexResult = { readonly ok: true; readonly regex: PathRegex } | { readonly ok: false; readonly reason: string };

/** Compiles a `path_regex` RegExp already accepted, or says why it is refused. */
export function compilePathRegex(source: string): PathRegexResult {
  const parsed = parsePathRegex(source);
  if (!parsed.ok) return parsed;
  const size = sizeOf(parsed.node);
  if (size > MAX_PATH_REGEX_STATES) {
    const shown = Number.isFinite(size) && size < 1e9 ? `about ${Math.ceil(size)}` : 'too many';
    return {
      ok: false,
      reason: `too large: it expands to ${shown} automaton states (at most ${MAX_PATH_REGEX_STATES}); counted repetitions like {1,500} copy what they repeat, so prefer + or * there`,
    };
  }
  return { ok: true, regex: new PathRegex(source, parsed.node) };
}

/** States `build` creates for `node` (floating point: huge counts only need to compare as huge). */
function sizeOf(node: RegexNode): number {
  switch (node.kind) {
    case 'chars':
    case 'begin':
    case 'end':
      return 1;
    case 'seq':
      return node.items.reduce((sum, item) => sum + sizeOf(item), 0);
    case 'alt':
      return node.options.reduce((sum, option) => sum + sizeOf(option), 0) + node.options.length - 1;
    case 'repeat': {
      const body = sizeOf(node.body);
      const optional = node.max === Infinity ? 1 : node.max - node.min;
      return node.min * body + optional * (body + 1);
    }
  }
}

/** The NFA as parallel arrays, built back to front: each node is compiled knowing where it leads. */
class Builder {
  readonly op: number[] = [MATCH];
  readonly out1: number[] = [-1];
  readonly out2: number[] = [-1];
  readonly cls: number[] = [-1];
  readonly sets: CharSet[] = [];
  private readonly setIndex = new Map<string, number>();

  private add(op: number, out1: number, out2 = -1, cls = -1): number {
    this.op.push(op);
    this.out1.push(out1);
    this.out2.push(out2);
    this.cls.push(cls);
    return this.op.length - 1;
  }

  /** The entry state of `node`, which continues to state `next`. */
  build(node: RegexNode, next: number): number {
    switch (node.kind) {
      case 'chars': {
        const key = node.set.join(',');
        let index = this.setIndex.get(key);
        if (index === undefined) {
          index = this.sets.push(node.set) - 1;
          this.setIndex.set(key, index);
        }
        return this.add(CHAR, next, -1, index);
      }
      case 'begin':
        return this.add(BEGIN, next);
      case 'end':
        return this.add(END, next);
      case 'seq': {
        let entry = next;
        for (let i = node.items.length - 1; i >= 0; i--) entry = this.build(node.items[i]!, entry);
        return entry;
      }
      case 'alt': {
        let entry = this.build(node.options[node.options.length - 1]!, next);
        for (let i = node.options.length - 2; i >= 0; i--) entry = this.add(SPLIT, this.build(node.options[i]!, next), entry);
        return entry;
      }
      case 'repeat': {
        let entry = next;
        if (node.max === Infinity) {
          // A loop: the split goes into the body, whose end comes back to the split.
          const loop = this.add(SPLIT, -1, next);
          this.out1[loop] = this.build(node.body, loop);
          entry = loop;
        } else {
          // x{0,k} as (x(x(x)?)?)?: each optional copy leads into the next or straight out.
          for (let i = node.min; i < node.max; i++) entry = this.add(SPLIT, this.build(node.body, entry), next);
        }
        for (let i = 0; i < node.min; i++) entry = this.build(node.body, entry);
        return entry;
      }
    }
  }
}

/**
 * A compiled `path_regex`. `test` allocates nothing: its state lists live in the instance (matching
 * is synchronous, so one set per regex is enough). The scratch space is in private fields, which
 * Object.freeze on the policy leaves usable.
 */
export class PathRegex {
  /** The pattern as written in the policy file (matched as `^(?:source)$`). */
  readonly source: string;
  readonly #op: Uint8Array;
  readonly #out1: Int32Array;
  readonly #out2: Int32Array;
  readonly #cls: Int32Array;
  readonly #entry: number;
  /** 128 flags per character set, for the ASCII a canonical path is made of. */
  readonly #ascii: Uint8Array;
  /** Each set's ranges, for code units past ASCII (only `explain`, `check` or tests send those). */
  readonly #sets: readonly CharSet[];
  // Scratch: the live states before and after a character, a DFS stack, and visit marks per step.
  readonly #current: Int32Array;
  readonly #next: Int32Array;
  readonly #stack: Int32Array;
  readonly #mark: Uint32Array;
  #generation = 0;

  constructor(source: string, node: RegexNode) {
    this.source = source;
    const builder = new Builder();
    this.#entry = builder.build(node, 0);
    const states = builder.op.length;
    this.#op = Uint8Array.from(builder.op);
    this.#out1 = Int32Array.from(builder.out1);
    this.#out2 = Int32Array.from(builder.out2);
    this.#cls = Int32Array.from(builder.cls);
    this.#sets = builder.sets;
    this.#ascii = new Uint8Array(builder.sets.length * 128);
    builder.sets.forEach((set, index) => {
      for (let c = 0; c < 128; c++) this.#ascii[index * 128 + c] = inSet(set, c) ? 1 : 0;
    });
    this.#current = new Int32Array(states);
    this.#next = new Int32Array(states);
    this.#stack = new Int32Array(states);
    this.#mark = new Uint32Array(states);
  }

  /** Whether the whole of `path` matches. Time O(path.length × states), no allocation. */
  test(path: string): boolean {
    // Fields in locals: this loop is the hot path, run once per path character.
    const op = this.#op;
    const out1 = this.#out1;
    const out2 = this.#out2;
    const cls = this.#cls;
    const ascii = this.#ascii;
    const stack = this.#stack;
    const mark = this.#mark;
    const n = path.length;
    let current = this.#current;
    let next = this.#next;
    let count = 0;
    let top = 0;
    for (let pos = 0; ; pos++) {
      // Start a step: a fresh visit mark (the marks array is cleared once every 2^32 steps).
      if (this.#generation === 0xffffffff) {
        mark.fill(0);
        this.#generation = 0;
      }
      const generation = ++this.#generation;
      if (pos === 0) {
        stack[top++] = this.#entry;
        mark[this.#entry] = generation;
      } else {
        // Every live state that accepts the character before `pos` moves on.
        const c = path.charCodeAt(pos - 1);
        for (let k = 0; k < count; k++) {
          const state = current[k]!;
          if (op[state] !== CHAR) continue;
          const set = cls[state]!;
          if (c < 128 ? ascii[set * 128 + c] === 0 : !inSet(this.#sets[set]!, c)) continue;
          const to = out1[state]!;
          if (mark[to] !== generation) {
            mark[to] = generation;
            stack[top++] = to;
          }
        }
      }
      // Follow the moves that consume nothing; keep the states that consume or accept.
      let nextCount = 0;
      while (top > 0) {
        const state = stack[--top]!;
        let to = -1;
        switch (op[state]) {
          case CHAR:
          case MATCH:
            next[nextCount++] = state;
            break;
          case SPLIT: {
            const other = out2[state]!;
            if (mark[other] !== generation) {
              mark[other] = generation;
              stack[top++] = other;
            }
            to = out1[state]!;
            break;
          }
          case BEGIN:
            if (pos === 0) to = out1[state]!;
            break;
          case END:
            if (pos === n) to = out1[state]!;
            break;
        }
        if (to !== -1 && mark[to] !== generation) {
          mark[to] = generation;
          stack[top++] = to;
        }
      }
      const swap = current;
      current = next;
      next = swap;
      count = nextCount;
      if (pos === n || count === 0) break;
    }
    for (let k = 0; k < count; k++) if (op[current[k]!] === MATCH) return true;
    return false;
  }
}

function inSet(set: CharSet, c: number): boolean {
  for (let i = 0; i < set.length; i += 2) {
    if (c < set[i]!) return false;
    if (c <= set[i + 1]!) return true;
  }
  return false;
}
