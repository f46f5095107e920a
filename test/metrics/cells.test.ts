import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { cellCounter, cellHistogram } from '../../src/metrics/cells.js';
import { seriesOf } from '../support/metrics.js';

const BUCKETS = [0.001, 0.01, 0.1, 1];
// On a bound, between bounds, below the first, above the last (+Inf only), and zero.
const VALUES = [0.001, 0.0005, 0.02, 0.1, 0.5, 7, 0, 0.01, 2.5];

/** The same metric twice, each in a registry of its own: one fed through cells, one through prom-client's own calls. */
function histograms(): { cells: ReturnType<typeof cellHistogram<'route'>>; plain: Histogram<'route'>; text: () => Promise<[string, string]> } {
  const [cellRegistry, plainRegistry] = [new Registry(), new Registry()];
  const config = { name: 'd_seconds', help: 'd', labelNames: ['route'] as const, buckets: BUCKETS };
  const cells = cellHistogram({ ...config, registers: [cellRegistry] });
  const plain = new Histogram({ ...config, registers: [plainRegistry] });
  return { cells, plain, text: async () => [await cellRegistry.metrics(), await plainRegistry.metrics()] };
}

test('a histogram cell exposes exactly what observe(labels, value) exposes, scrape after scrape', async () => {
  const { cells, plain, text } = histograms();
  for (const [i, value] of VALUES.entries()) {
    const route = i % 2 === 0 ? 'a' : 'b';
    cells.cell(route, { route }).observe(value);
    plain.observe({ route }, value);
  }
  let [got, want] = await text();
  assert.deepEqual(seriesOf(got, 'd_seconds_bucket'), seriesOf(want, 'd_seconds_bucket'));
  assert.deepEqual(seriesOf(got, 'd_seconds_sum'), seriesOf(want, 'd_seconds_sum'));
  assert.deepEqual(seriesOf(got, 'd_seconds_count'), ['d_seconds_count{route="a"} 5', 'd_seconds_count{route="b"} 4']);
  assert.ok(seriesOf(got, 'd_seconds_bucket').includes('d_seconds_bucket{le="1",route="a"} 4'), 'the 7 s value is only in +Inf');

  // A second scrape adds only what came since the first, and a cold-path observe on the cell histogram adds up with its cells.
  cells.cell('a', { route: 'a' }).observe(0.05);
  cells.observe({ route: 'a' }, 0.05);
  plain.observe({ route: 'a' }, 0.05);
  plain.observe({ route: 'a' }, 0.05);
  [got, want] = await text();
  assert.deepEqual(seriesOf(got, 'd_seconds_bucket'), seriesOf(want, 'd_seconds_bucket'));
  assert.deepEqual(seriesOf(got, 'd_seconds_sum'), seriesOf(want, 'd_seconds_sum'));
  assert.deepEqual(seriesOf(got, 'd_seconds_count'), seriesOf(want, 'd_seconds_count'));
  assert.equal(seriesOf(got, 'd_seconds_count')[0], 'd_seconds_count{route="a"} 7');
});

test('a cell\'s series exists from its first use, and survives reset() of the histogram', async () => {
  const { cells, text } = histograms();
  const cell = cells.cell('a', { route: 'a' });
  let [got] = await text();
  assert.deepEqual(seriesOf(got, 'd_seconds_count'), ['d_seconds_count{route="a"} 0']);

  cell.observe(0.5);
  [got] = await text();
  assert.deepEqual(seriesOf(got, 'd_seconds_count'), ['d_seconds_count{route="a"} 1']);
  cell.observe(0.7);
  cells.reset();
  cell.observe(0.002);
  [got] = await text();
  // reset() forgot both what was drained before it and what was still in the cell, as it forgets observe()s.
  assert.deepEqual(seriesOf(got, 'd_seconds_count'), ['d_seconds_count{route="a"} 1']);
  assert.deepEqual(seriesOf(got, 'd_seconds_bucket').filter((line) => line.includes('le="0.01"')), ['d_seconds_bucket{le="0.01",route="a"} 1']);
});

test('a histogram cell refuses a value that is not a finite number, as prom-client does, and counts nothing', async () => {
  const { cells, text } = histograms();
  const cell = cells.cell('a', { route: 'a' });
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) assert.throws(() => cell.observe(bad), TypeError);
  const [got] = await text();
  assert.deepEqual(seriesOf(got, 'd_seconds_count'), ['d_seconds_count{route="a"} 0']);
});

test('a counter cell exposes exactly what inc(labels) exposes', async () => {
  const [cellRegistry, plainRegistry] = [new Registry(), new Registry()];
  const config = { name: 'n_total', help: 'n', labelNames: ['route', 'status'] as const };
  const cells = cellCounter({ ...config, registers: [cellRegistry] });
  const plain = new Counter({ ...config, registers: [plainRegistry] });
  for (let i = 0; i < 7; i++) {
    const labels = { route: i % 3 === 0 ? 'a' : 'b', status: '200' };
    cells.cell(`${labels.route}\0${labels.status}`, labels).inc();
    plain.inc(labels);
  }
  cells.inc({ route: 'a', status: '200' });
  plain.inc({ route: 'a', status: '200' });
  cells.cell('gone', { route: 'gone', status: '500' }).inc();
  cells.reset();
  plain.reset();
  assert.deepEqual(seriesOf(await cellRegistry.metrics(), 'n_total'), seriesOf(await plainRegistry.metrics(), 'n_total'));
  assert.deepEqual(seriesOf(await cellRegistry.metrics(), 'n_total'), []);
  for (const i of [1, 2, 3]) {
    const labels = { route: i === 3 ? 'a' : 'b', status: '200' };
    cells.cell(`${labels.route}\0${labels.status}`, labels).inc();
    plain.inc(labels);
  }
  cells.inc({ route: 'a', status: '200' });
  plain.inc({ route: 'a', status: '200' });
  assert.deepEqual(seriesOf(await cellRegistry.metrics(), 'n_total'), seriesOf(await plainRegistry.metrics(), 'n_total'));
  assert.deepEqual(seriesOf(await cellRegistry.metrics(), 'n_total'), ['n_total{route="a",status="200"} 2', 'n_total{route="b",status="200"} 2']);
});
