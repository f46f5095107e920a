import assert from 'node:assert/strict';
import { test } from 'node:test';
import { afterExit, FRESH_HISTORY, MAX_START_FAILURES, RESTART_BACKOFF_MS, STABLE_AFTER_MS, type SlotHistory } from '../../src/cluster/restart.js';

test('a serving worker that crashes is replaced, later for each quick crash in a row, capped', () => {
  let history: SlotHistory = FRESH_HISTORY;
  const delays: number[] = [];
  for (let i = 0; i < RESTART_BACKOFF_MS.length + 2; i++) {
    const next = afterExit(history, { wasReady: true, livedMs: 1_000 });
    assert.equal(next.action, 'restart');
    if (next.action === 'restart') delays.push(next.delayMs);
    history = next.history;
  }
  assert.deepEqual(delays, [...RESTART_BACKOFF_MS, RESTART_BACKOFF_MS.at(-1), RESTART_BACKOFF_MS.at(-1)]);
});

test('a worker that had run for a while starts the ladder over', () => {
  const history: SlotHistory = { quickExits: 5, startFailures: 0 };
  assert.deepEqual(afterExit(history, { wasReady: true, livedMs: STABLE_AFTER_MS }), { action: 'restart', delayMs: RESTART_BACKOFF_MS[0], history: { quickExits: 1, startFailures: 0 } });
});

test('replacements that cannot start are tried MAX_START_FAILURES times in a row, then the primary gives up', () => {
  let history = afterExit(FRESH_HISTORY, { wasReady: true, livedMs: 10 }).history;
  const actions: string[] = [];
  for (let i = 0; i < MAX_START_FAILURES; i++) {
    const next = afterExit(history, { wasReady: false, livedMs: 300 });
    actions.push(next.action);
    history = next.history;
  }
  assert.deepEqual(actions, [...Array<string>(MAX_START_FAILURES - 1).fill('restart'), 'give-up']);
  // One that gets ready in between resets the count.
  const interrupted = afterExit({ quickExits: 3, startFailures: MAX_START_FAILURES - 1 }, { wasReady: true, livedMs: 300 });
  assert.deepEqual(interrupted.history, { quickExits: 4, startFailures: 0 });
});
