import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const HEAP_MODULE = fileURLToPath(new URL('../../src/server/heap.js', import.meta.url));

// A live set of about 40 MB renewed slowly (it survives scavenges and is promoted) under a churn of
// short-lived garbage, as a gateway holds its queued requests under a burst; prints the peak heap in MB.
const CHILD = `
const { boundHeapGrowth } = await import(${JSON.stringify(HEAP_MODULE)});
if (process.argv[2] === 'bound') boundHeapGrowth();
const ring = new Array(4000).fill(null);
let peak = 0;
for (let i = 0; i < 400000; i++) {
  ring[i % ring.length] = new Array(1250).fill(i);
  const junk = new Array(50).fill(i);
  if (i % 1000 === 0) peak = Math.max(peak, process.memoryUsage().heapTotal);
  if (junk.length === 0) process.exit(3);
}
process.stdout.write(String(Math.round(peak / 1048576)));
`;

function peakHeapMb(dir: string, mode: 'free' | 'bound', nodeFlags: readonly string[] = []): number {
  const script = join(dir, 'churn.mjs');
  writeFileSync(script, CHILD);
  return Number(execFileSync(process.execPath, [...nodeFlags, script, mode], { encoding: 'utf8' }));
}

test('a serving process lets its heap grow at most half again over the live set; node flags given at start win', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-heap-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const free = peakHeapMb(dir, 'free');
  const bound = peakHeapMb(dir, 'bound');
  const operatorsChoice = peakHeapMb(dir, 'bound', ['--heap-growing-percent=300']);
  t.diagnostic(`peak heap: V8's own growth ${free} MB, bounded ${bound} MB, --heap-growing-percent=300 given ${operatorsChoice} MB`);
  assert.ok(bound < free * 0.75, `bounded peak ${bound} MB is not clearly below V8's own ${free} MB`);
  assert.ok(operatorsChoice > bound * 1.3, `an explicit --heap-growing-percent=300 (${operatorsChoice} MB) was overridden (bounded: ${bound} MB)`);
});
