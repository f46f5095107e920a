/**
 * Maps positions in the parsed policy (ajv's instance paths, our own key paths) back to lines of
 * the YAML text, so every message points at the line to edit.
 */
import { isAlias, isMap, isScalar, isSeq, type Document, type LineCounter } from 'yaml';

export type Segment = string | number;

/** How a compile step reports a problem at a path of the policy file. */
export type Add = (path: readonly Segment[], message: string) => void;

/** `text` as a URL, or undefined after reporting "not a valid URL" at `path`. */
export function parsedUrl(text: string, path: readonly Segment[], add: Add): URL | undefined {
  try {
    return new URL(text);
  } catch {
    add(path, 'not a valid URL');
    return undefined;
  }
}

export interface Locator {
  /** 1-based line of the value at `path`, or of its nearest ancestor present in the file. */
  line(path: readonly Segment[]): number;
  /** 1-based line of the key that names the last segment (unknown keys point there), else `line(path)`. */
  keyLine(path: readonly Segment[]): number;
}

interface Ranged {
  readonly range?: readonly [number, number, number] | null;
}

function hasRange(value: unknown): value is Ranged {
  return typeof value === 'object' && value !== null && 'range' in value;
}

export function createLocator(doc: Document, lineCounter: LineCounter): Locator {
  const lineOf = (node: unknown): number | undefined =>
    hasRange(node) && node.range ? lineCounter.linePos(node.range[0]).line : undefined;

  /** The deepest nodes reached along `path`: the value and, in a mapping, its key. */
  function walk(path: readonly Segment[]): { value: unknown; key: unknown; complete: boolean } {
    let value: unknown = doc.contents;
    let key: unknown;
    for (const segment of path) {
      if (isAlias(value)) value = value.resolve(doc);
      if (isMap(value)) {
        const pair = value.items.find((item) => isScalar(item.key) && String(item.key.value) === String(segment));
        if (pair === undefined) return { value, key: undefined, complete: false };
        key = pair.key;
        // `key:` with nothing after it has no value node; the key's line is the place to point at.
        value = pair.value ?? pair.key;
      } else if (isSeq(value)) {
        const item = value.items[Number(segment)];
        if (item === undefined) return { value, key: undefined, complete: false };
        key = undefined;
        value = item;
      } else {
        return { value, key: undefined, complete: false };
      }
    }
    return { value, key, complete: true };
  }

  return {
    line(path) {
      return lineOf(walk(path).value) ?? 1;
    },
    keyLine(path) {
      const found = walk(path);
      return (found.complete ? lineOf(found.key) : undefined) ?? lineOf(found.value) ?? 1;
    },
  };
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `['routes', 2, 'match', 'path_regex']` → `routes[2].match.path_regex`. */
export function formatPath(path: readonly Segment[]): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

/** ajv's JSON Pointer (`/routes/2/match`) → segments, array indexes as numbers where the data has arrays. */
export function pointerToPath(pointer: string, data: unknown): Segment[] {
  if (pointer === '') return [];
  const path: Segment[] = [];
  let current: unknown = data;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (Array.isArray(current)) {
      const index = Number(segment);
      path.push(index);
      current = current[index];
    } else {
      path.push(segment);
      current = typeof current === 'object' && current !== null ? (current as Record<string, unknown>)[segment] : undefined;
    }
  }
  return path;
}
