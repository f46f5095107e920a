/**
 * A ReDoS guard for route regexes. A quantified group that itself contains an unbounded quantifier,
 * like `(a+)+` or `(\w*\s?)*`, can take exponential time to fail on a crafted path, and a route
 * regex runs on every request. Such patterns are refused at load; they can always be rewritten
 * (e.g. `(a+)+` → `a+`). This is a syntactic check: it does not find every slow pattern (overlapping
 * alternatives like `(a|a)+` pass), only the classic form.
 */

const BOUNDED_BRACE = /^\{(\d+)(,(\d*))?\}/;

interface Quantifier {
  readonly length: number;
  readonly unbounded: boolean;
}

function quantifierAt(source: string, i: number): Quantifier | undefined {
  const c = source[i];
  let length: number;
  let unbounded: boolean;
  if (c === '*' || c === '+') {
    length = 1;
    unbounded = true;
  } else if (c === '?') {
    length = 1;
    unbounded = false;
  } else if (c === '{') {
    const m = BOUNDED_BRACE.exec(source.slice(i, i + 24));
    if (m === null) return undefined; // a literal '{' outside unicode mode
    length = m[0].length;
    unbounded = m[2] !== undefined && (m[3] === '' || Number(m[3]) > 100);
  } else {
    return undefined;
  }
  if (source[i + length] === '?') length++; // lazy: same worst case
  return { length, unbounded };
}

/** Returns why the pattern is refused, or undefined when it passes. The pattern must already compile. */
export function nestedQuantifier(source: string): string | undefined {
  // One frame per open group: does anything inside repeat without bound?
  const frames: boolean[] = [false];
  // The group that just closed (and whether it held an unbounded quantifier), if the next token may quantify it.
  let closedGroup: { start: number; unbounded: boolean } | undefined;
  const starts: number[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    const quantifier = quantifierAt(source, i);
    if (quantifier !== undefined) {
      if (closedGroup?.unbounded === true && quantifier.unbounded) {
        const group = source.slice(closedGroup.start, i + quantifier.length);
        return `nested quantifier in ${group}: a repeated group that itself repeats without bound can take exponential time on a crafted path (ReDoS); rewrite it without the outer or the inner repetition`;
      }
      if (quantifier.unbounded) frames[frames.length - 1] = true;
      closedGroup = undefined;
      i += quantifier.length;
      continue;
    }
    closedGroup = undefined;
    if (c === '\\') {
      i += 2;
    } else if (c === '[') {
      i++;
      if (source[i] === '^') i++; // JS, unlike PCRE: `[]` is an empty class, so ']' right here closes it
      while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
      i++;
    } else if (c === '(') {
      starts.push(i);
      frames.push(false);
      i++;
      // Skip the group's own syntax ((?:, (?=, (?<name>) so its '?' is not read as a quantifier.
      if (source[i] === '?') {
        const lookbehind = source.startsWith('<=', i + 1) || source.startsWith('<!', i + 1);
        if (lookbehind) i += 3;
        else if (source[i + 1] === '<') i = source.indexOf('>', i) + 1; // (?<name>
        else i += 2; // (?: (?= (?!
      }
    } else if (c === ')') {
      const inner = frames.pop() ?? false;
      const start = starts.pop() ?? 0;
      if (inner) frames[frames.length - 1] = true;
      closedGroup = { start, unbounded: inner };
      i++;
    } else {
      i++;
    }
  }
  return undefined;
}
