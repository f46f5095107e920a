import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalBus } from '../../src/store/local-bus.js';
import type { Invalidation } from '../../src/store/types.js';

test('local bus: every subscriber gets a copy before publish resolves; unsubscribe stops delivery', async () => {
  const bus = createLocalBus();
  const a: Invalidation[] = [];
  const b: Invalidation[] = [];
  bus.subscribe((m) => a.push(m));
  const stopB = bus.subscribe((m) => b.push(m));
  const sent = { kind: 'session', hash: 'h1' } as const;
  await bus.publish(sent);
  assert.deepEqual([a, b], [[sent], [sent]]);
  assert.notEqual(a[0], sent);
  stopB();
  await bus.publish({ kind: 'sessions', subject: 'alice' });
  await bus.publish({ kind: 'factors', subject: 'a}b{c' });
  assert.deepEqual(a, [sent, { kind: 'sessions', subject: 'alice' }, { kind: 'factors', subject: 'a}b{c' }]);
  assert.deepEqual(b, [sent]);
  await bus.close();
});

test('local bus: a malformed message is refused as the Redis bus refuses it; a throwing listener is reported, the others still run', async () => {
  const errors: unknown[] = [];
  const bus = createLocalBus({ onListenerError: (error) => errors.push(error) });
  const got: Invalidation[] = [];
  bus.subscribe(() => {
    throw new Error('listener bug');
  });
  bus.subscribe((m) => got.push(m));
  for (const bad of [{ kind: 'session' }, { kind: 'session', hash: '' }, { kind: 'sessions', subject: 'a', extra: 1 }, { kind: 'nope', subject: 'a' }, null]) {
    await assert.rejects(bus.publish(bad as unknown as Invalidation), { code: 'ERR_STORE_INVALID_OPTION' });
  }
  await assert.rejects(bus.publish({ kind: 'sessions', subject: 'x'.repeat(5_000) }), { code: 'ERR_STORE_INVALID_OPTION', message: 'message must be at most 4096 bytes as JSON' });
  await bus.publish({ kind: 'factors', subject: 'alice' });
  assert.deepEqual(got, [{ kind: 'factors', subject: 'alice' }]);
  assert.deepEqual(errors.map((e) => (e as Error).message), ['listener bug']);
  await bus.close();
  await assert.rejects(bus.publish({ kind: 'factors', subject: 'alice' }), { code: 'ERR_STORE_CLOSED', message: 'the bus is closed' });
  assert.throws(() => bus.subscribe(() => undefined), { code: 'ERR_STORE_CLOSED' });
});
