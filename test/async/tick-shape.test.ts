import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { holdTickShape } from '../../src/async/tick-shape.js';

/**
 * The held tick is a real one, and after full collections with no tick pending the ticks Node
 * builds still have its map: the maps nextTick's stores remember cannot be freed. The effect on
 * the request path is measured, not asserted here: bench/results/issue-11-progress.md.
 */

const MODULE = new URL('../../src/async/tick-shape.js', import.meta.url).href;

describe('holdTickShape', () => {
  test('holds one real TickObject, the same one on every call', () => {
    const held = holdTickShape();
    assert.ok(held !== undefined);
    const names = Reflect.ownKeys(held).map((key) => (typeof key === 'string' ? key : key.description));
    for (const name of ['callback', 'args', 'async_id_symbol', 'trigger_async_id_symbol']) assert.ok(names.includes(name), `${name} in ${names.join(', ')}`);
    assert.equal(holdTickShape(), held);
  });

  test('ticks made after full collections with nothing pending share the held map', () => {
    // V8 natives syntax and gc() are only for this child; %HaveSameMap compares hidden classes.
    const script = `
      import { createHook } from 'node:async_hooks';
      import { holdTickShape } from ${JSON.stringify(MODULE)};
      const held = holdTickShape();
      await new Promise((resolve) => setTimeout(resolve, 10));
      globalThis.gc();
      globalThis.gc();
      let fresh;
      const hook = createHook({ init(_id, type, _trigger, resource) { if (type === 'TickObject') fresh ??= resource; } }).enable();
      process.nextTick(() => {});
      hook.disable();
      process.stdout.write(JSON.stringify({ held: held !== undefined, fresh: fresh !== undefined, sameMap: %HaveSameMap(held, fresh) }));
    `;
    const child = spawnSync(process.execPath, ['--allow-natives-syntax', '--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(child.stderr, '');
    assert.equal(child.status, 0);
    assert.deepEqual(JSON.parse(child.stdout), { held: true, fresh: true, sameMap: true });
  });
});
