import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { LRUCache } from 'lru-cache';
import { expiringCache } from '../../src/time/ttl-cache.js';

/** How many timers `work` arms, unref'd ones included (they still wake the event loop when due). */
function timersArmedBy(work: () => void): number {
  let armed = 0;
  const hook = createHook({
    init(_id, type) {
      if (type === 'Timeout') armed++;
    },
  }).enable();
  try {
    work();
  } finally {
    hook.disable();
  }
  return armed;
}

test('reads and writes arm no timer, so an idle gateway is not woken after a lone request', () => {
  const cache = expiringCache<string, number>(10, 60_000);
  assert.equal(
    timersArmedBy(() => {
      cache.set('a', 1);
      assert.equal(cache.get('a'), 1);
      cache.set('b', 2, { ttl: 1_000 });
      assert.equal(cache.get('b'), 2);
    }),
    0,
  );
  // What the helper is for: lru-cache's default arms one whenever it reads the time afresh.
  const plain = new LRUCache<string, number>({ max: 10, ttl: 60_000 });
  assert.equal(
    timersArmedBy(() => {
      plain.set('a', 1);
      assert.equal(plain.get('a'), 1);
    }),
    1,
  );
});

test('entries still expire after their time, the cache-wide one or their own', async () => {
  const cache = expiringCache<string, number>(10, 40);
  cache.set('short', 1, { ttl: 10 });
  cache.set('default', 2);
  await sleep(25);
  assert.equal(cache.get('short'), undefined);
  assert.equal(cache.get('default'), 2);
  await sleep(30);
  assert.equal(cache.get('default'), undefined);
});
