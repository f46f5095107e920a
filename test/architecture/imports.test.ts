import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

/**
 * The layout is the architecture: requests flow one way (doors → admission → decision → …), so no
 * file imports itself back through others and no folder does either. Type-only imports count: a
 * cycle of types is still two concepts that cannot be read apart.
 */

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));
const RELATIVE_IMPORT = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]/g;

type Graph = ReadonlyMap<string, ReadonlySet<string>>;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

/** file → files it imports, as paths relative to src/. */
function fileGraph(root: string): Graph {
  const graph = new Map<string, Set<string>>();
  for (const file of sourceFiles(root)) {
    const from = relative(root, file);
    const targets = new Set<string>();
    for (const match of readFileSync(file, 'utf8').matchAll(RELATIVE_IMPORT)) {
      targets.add(normalize(join(dirname(from), match[1]!.replace(/\.js$/, '.ts'))));
    }
    graph.set(from, targets);
  }
  return graph;
}

/** folder → folders its files import (a folder importing itself is not an edge). */
function folderGraph(files: Graph): Graph {
  const graph = new Map<string, Set<string>>();
  for (const [file, targets] of files) {
    const from = dirname(file);
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const target of targets) if (dirname(target) !== from) edges.add(dirname(target));
  }
  return graph;
}

/** Every cycle reachable by depth-first search, each as `a -> b -> a`. */
export function findCycles(graph: Graph): string[] {
  const cycles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  function visit(node: string): void {
    state.set(node, 'open');
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next].join(' -> '));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(node, 'done');
  }
  for (const node of [...graph.keys()].sort()) if (!state.has(node)) visit(node);
  return cycles;
}

describe('import cycles in src/', () => {
  const files = fileGraph(SRC);

  test('the checker reads the tree and would see a cycle', () => {
    assert.ok(files.size > 50, `read ${files.size} files under ${SRC}`);
    assert.ok(files.get(join('doors', 'proxy', 'proxy.ts'))?.has(join('admission', 'admit.ts')), 'the proxy door imports the admission path');
    assert.deepEqual(findCycles(new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]])), ['a -> b -> c -> a']);
    assert.deepEqual(findCycles(new Map([['a', new Set(['b'])], ['b', new Set<string>()]])), []);
  });

  test('no file imports itself back', () => {
    assert.deepEqual(findCycles(files), []);
  });

  test('no folder imports itself back', () => {
    assert.deepEqual(findCycles(folderGraph(files)), []);
  });

  test('every front door reaches the decision only through the admission path', () => {
    for (const [file, targets] of files) {
      if (!file.startsWith(`doors${'/'}`)) continue;
      for (const target of targets) {
        assert.ok(!target.startsWith(`decision${'/'}engine`), `${file} imports ${target}: doors call admit(), not decide()`);
      }
    }
  });
});
