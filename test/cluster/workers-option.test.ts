import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_WORKERS, parseWorkersOption } from '../../src/cluster/workers-option.js';

test('--workers: absent is one process; a whole number from 1 to 64 is that many; auto is the usable CPUs', () => {
  assert.deepEqual(parseWorkersOption(undefined), { ok: true, workers: 1 });
  assert.deepEqual(parseWorkersOption('1'), { ok: true, workers: 1 });
  assert.deepEqual(parseWorkersOption('2'), { ok: true, workers: 2 });
  assert.deepEqual(parseWorkersOption('064'), { ok: true, workers: 64 });
  assert.deepEqual(parseWorkersOption('auto', () => 6), { ok: true, workers: 6 });
  assert.deepEqual(parseWorkersOption('auto', () => 200), { ok: true, workers: MAX_WORKERS }, 'auto never asks for more than the maximum');
});

test('--workers: anything else is refused with a sentence naming what was given', () => {
  for (const given of ['0', '-1', 'abc', '65', '1000', '1.5', '2e1', ' 2', '0x2', '', 'AUTO']) {
    assert.deepEqual(parseWorkersOption(given), { ok: false, error: `--workers: expected a whole number from 1 to 64, or "auto"; got ${JSON.stringify(given)}` }, given);
  }
});
