import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Reads a V8 .cpuprofile (node --cpu-prof) and lists where the time went: self time by function
 * and by file, and inclusive time of the project's own functions, with file:line.
 */

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
  readonly columnNumber: number;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Decodes a source map's `mappings` into, per generated line, [generated column, source index, original line] segments. */
function decodeMappings(mappings: string): Array<Array<[number, number, number]>> {
  const lines: Array<Array<[number, number, number]>> = [];
  let source = 0;
  let originalLine = 0;
  let originalColumn = 0;
  for (const lineText of mappings.split(';')) {
    const segments: Array<[number, number, number]> = [];
    let column = 0;
    for (const segment of lineText.split(',')) {
      if (segment === '') continue;
      const values: number[] = [];
      let value = 0;
      let shift = 0;
      for (const ch of segment) {
        const digit = BASE64.indexOf(ch);
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          values.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += values[0] ?? 0;
      if (values.length >= 4) {
        source += values[1]!;
        originalLine += values[2]!;
        originalColumn += values[3]!;
        segments.push([column, source, originalLine]);
      }
    }
    lines.push(segments);
  }
  return lines;
}

/** Maps dist/…js positions back to the TypeScript sources through tsc's .js.map files. */
function sourceMapper(): (file: string, line: number, column: number) => { file: string; line: number } | undefined {
  const maps = new Map<string, { sources: string[]; lines: Array<Array<[number, number, number]>> } | undefined>();
  return (file, line, column) => {
    if (!maps.has(file)) {
      const mapFile = `${file}.map`;
      if (!existsSync(mapFile)) maps.set(file, undefined);
      else {
        const raw = JSON.parse(readFileSync(mapFile, 'utf8')) as { sources: string[]; sourceRoot?: string; mappings: string };
        maps.set(file, { sources: raw.sources.map((source) => resolve(dirname(file), raw.sourceRoot ?? '', source)), lines: decodeMappings(raw.mappings) });
      }
    }
    const map = maps.get(file);
    const segments = map?.lines[line];
    if (map === undefined || segments === undefined || segments.length === 0) return undefined;
    let best = segments[0]!;
    for (const segment of segments) if (segment[0] <= column) best = segment;
    return { file: map.sources[best[1]]!, line: best[2] };
  };
}
interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly hitCount?: number;
  readonly children?: readonly number[];
}
interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples?: readonly number[];
  readonly startTime: number;
  readonly endTime: number;
}

export interface HotSpot {
  readonly where: string;
  readonly share: number;
}

export interface ProfileSummary {
  readonly file: string;
  readonly busySamples: number;
  readonly idleShare: number;
  readonly gcShare: number;
  readonly selfByFunction: readonly HotSpot[];
  readonly selfByFile: readonly HotSpot[];
  readonly inclusiveProject: readonly HotSpot[];
}

const mapSource = sourceMapper();

/** `function file:line`, with the project's own frames mapped back to src/*.ts. */
function place(frame: CallFrame, root: string): string {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
  if (frame.url === '') return name;
  if (!frame.url.startsWith('file://')) return `${name} ${frame.url}:${frame.lineNumber + 1}`;
  const path = fileURLToPath(frame.url);
  const original = path.includes('/node_modules/') ? undefined : mapSource(path, frame.lineNumber, frame.columnNumber);
  return original === undefined ? `${name} ${relative(root, path)}:${frame.lineNumber + 1}` : `${name} ${relative(root, original.file)}:${original.line + 1}`;
}

function fileOf(frame: CallFrame, root: string): string {
  if (frame.url === '') return frame.functionName;
  const url = frame.url.startsWith('file://') ? relative(root, fileURLToPath(frame.url)) : frame.url;
  return url.replace(/^node_modules\/((@[^/]+\/)?[^/]+)\/.*$/, 'node_modules/$1');
}

function top(map: Map<string, number>, total: number, n: number): HotSpot[] {
  return [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, n)
    .map(([where, count]) => ({ where, share: count / total }));
}

export function summariseProfile(file: string, repoRoot: string, n = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const hits = new Map<number, number>();
  if (profile.samples !== undefined) for (const id of profile.samples) hits.set(id, (hits.get(id) ?? 0) + 1);
  else for (const node of profile.nodes) hits.set(node.id, node.hitCount ?? 0);

  let idle = 0;
  let gc = 0;
  let busy = 0;
  const selfFn = new Map<string, number>();
  const selfFile = new Map<string, number>();
  const inclusive = new Map<string, number>();
  for (const [id, count] of hits) {
    const node = byId.get(id);
    if (node === undefined) continue;
    const name = node.callFrame.functionName;
    if (name === '(idle)') {
      idle += count;
      continue;
    }
    busy += count;
    if (name === '(garbage collector)') gc += count;
    const key = place(node.callFrame, repoRoot);
    selfFn.set(key, (selfFn.get(key) ?? 0) + count);
    const fileKey = fileOf(node.callFrame, repoRoot);
    selfFile.set(fileKey, (selfFile.get(fileKey) ?? 0) + count);
    // Inclusive time of our own code (dist/src), each frame once per stack.
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const frame = byId.get(at)!.callFrame;
      if (!frame.url.includes('/dist/src/')) continue;
      const k = place(frame, repoRoot);
      if (seen.has(k)) continue;
      seen.add(k);
      inclusive.set(k, (inclusive.get(k) ?? 0) + count);
    }
  }
  const all = busy + idle;
  return {
    file,
    busySamples: busy,
    idleShare: all === 0 ? 0 : idle / all,
    gcShare: busy === 0 ? 0 : gc / busy,
    selfByFunction: top(selfFn, Math.max(busy, 1), n),
    selfByFile: top(selfFile, Math.max(busy, 1), n),
    inclusiveProject: top(inclusive, Math.max(busy, 1), n),
  };
}

export function renderProfileSummary(summary: ProfileSummary): string {
  const pct = (share: number): string => `${(share * 100).toFixed(1)} %`;
  const list = (title: string, spots: readonly HotSpot[]): string[] => [`### ${title}`, '', ...spots.map((spot) => `- ${pct(spot.share)}  ${spot.where}`), ''];
  return [
    `## ${basename(summary.file, '.cpuprofile')}`,
    '',
    `Busy samples: ${summary.busySamples}; idle ${pct(summary.idleShare)} of all; garbage collection ${pct(summary.gcShare)} of busy. Shares below are of busy time.`,
    '',
    ...list('Self time by function', summary.selfByFunction),
    ...list('Self time by file / package', summary.selfByFile),
    ...list('Inclusive time of mfa-gateway functions (src/, through the source maps)', summary.inclusiveProject),
  ].join('\n');
}
