import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { LRUCache } from 'lru-cache';
import { ExpiringCache, ExpiringMap, sweepExpiringCaches } from '../../src/time/ttl-cache.js';

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
  const cache = new ExpiringCache<string, number>(10, 60_000);
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
  const cache = new ExpiringCache<string, number>(10, 40);
  cache.set('short', 1, { ttl: 10 });
  cache.set('default', 2);
  await sleep(25);
  assert.equal(cache.get('short'), undefined);
  assert.equal(cache.get('default'), 2);
  await sleep(30);
  assert.equal(cache.get('default'), undefined);
});

test('a sweep frees expired entries nobody reads again, and keeps live and rewritten ones', async () => {
  const cache = new ExpiringCache<string, number>(100, 30);
  for (let i = 0; i < 50; i++) cache.set(`burst-${i}`, i);
  cache.set('rewritten', 1);
  cache.set('long', 1, { ttl: 60_000 });
  await sleep(20);
  cache.set('rewritten', 2, { ttl: 60_000 });
  await sleep(20);
  sweepExpiringCaches();
  // lru-cache alone would still hold all 52 until read or evicted.
  assert.equal(cache.size, 2);
  assert.deepEqual([...cache.keys()].sort(), ['long', 'rewritten']);
  assert.equal(cache.get('rewritten'), 2);
});

test('a sweep leaves entries that are not yet due', () => {
  const cache = new ExpiringCache<string, number>(10, 60_000);
  cache.set('a', 1);
  cache.set('b', 2, { ttl: 30_000 });
  sweepExpiringCaches();
  assert.equal(cache.size, 2);
});

test('an expiring map answers within its lifetime, keeps its bound and is swept in write order', async () => {
  const marks = new ExpiringMap<string, number>(3, 30);
  marks.set('a', 1);
  marks.set('b', 2);
  marks.set('c', 3);
  marks.set('d', 4);
  // The bound drops the oldest write.
  assert.equal(marks.size, 3);
  assert.equal(marks.get('a'), undefined);
  assert.equal(marks.get('b'), 2);
  await sleep(20);
  marks.set('b', 5);
  await sleep(20);
  // c and d expired unread; b was written again and moved behind them.
  assert.equal(marks.get('c'), undefined);
  assert.equal(marks.size, 3);
  sweepExpiringCaches();
  assert.equal(marks.size, 1);
  assert.equal(marks.get('b'), 5);
  marks.delete('b');
  assert.equal(marks.size, 0);
});

for (const [kind, create] of [
  ['cache', () => new ExpiringCache<string, number>(10_000, 5)],
  ['map', () => new ExpiringMap<string, number>(10_000, 5)],
] as const) {
  test(`an expiring ${kind} with more expired entries than one turn takes frees them over the next turns, not in one pause`, async () => {
    const entries = create();
    for (let i = 0; i < 5_000; i++) entries.set(`k${i}`, i);
    await sleep(15);
    sweepExpiringCaches();
    const afterOneTurn = entries.size;
    assert.ok(afterOneTurn > 0 && afterOneTurn < 5_000, `one turn freed some, not all: ${afterOneTurn} left`);
    for (let turns = 0; entries.size > 0 && turns < 100; turns++) await new Promise(setImmediate);
    assert.equal(entries.size, 0);
  });
}
