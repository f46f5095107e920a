import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMetrics } from '../../src/metrics/metrics.js';
import { seriesOf } from '../support/metrics.js';

const ANSWERS: readonly (readonly [route: string, policy: string, status: number, seconds: number])[] = [
  ['orders', 'mfa', 200, 0.004],
  ['orders', 'mfa', 200, 0.02],
  ['orders', 'mfa', 429, 0.0003],
  ['orders', 'public', 200, 0.3],
  ['(none)', '(none)', 404, 0.001],
  ['orders', 'mfa', 200, 45],
];

const FAMILIES = ['mfa_gateway_requests_total', 'mfa_gateway_request_duration_seconds_bucket', 'mfa_gateway_request_duration_seconds_sum', 'mfa_gateway_request_duration_seconds_count'];

test("a route label's request cells expose exactly what requests.inc and requestDuration.observe expose", async () => {
  const [viaCells, plain] = [createMetrics(), createMetrics()];
  for (const [route, policy, status, seconds] of ANSWERS) {
    viaCells.requestCells(route, policy).record(status, seconds);
    plain.requests.inc({ route, policy, status: String(status) });
    plain.requestDuration.observe({ route }, seconds);
  }
  // A request labelled with a route and then relabelled (forward-auth) settles under the second: the first gets no series.
  viaCells.requestCells('(reserved)', '(none)');
  const [cellText, plainText] = [await viaCells.registry.metrics(), await plain.registry.metrics()];
  for (const family of FAMILIES) assert.deepEqual(seriesOf(cellText, family), seriesOf(plainText, family), family);
  assert.deepEqual(seriesOf(cellText, 'mfa_gateway_requests_total'), [
    'mfa_gateway_requests_total{route="(none)",policy="(none)",status="404"} 1',
    'mfa_gateway_requests_total{route="orders",policy="mfa",status="200"} 3',
    'mfa_gateway_requests_total{route="orders",policy="mfa",status="429"} 1',
    'mfa_gateway_requests_total{route="orders",policy="public",status="200"} 1',
  ]);
  assert.deepEqual(seriesOf(cellText, 'mfa_gateway_request_duration_seconds_count'), [
    'mfa_gateway_request_duration_seconds_count{route="(none)"} 1',
    'mfa_gateway_request_duration_seconds_count{route="orders"} 5',
  ]);
  // The same cells answer the same label again: counts go on from where they were.
  assert.equal(viaCells.requestCells('orders', 'mfa'), viaCells.requestCells('orders', 'mfa'));
  viaCells.requestCells('orders', 'mfa').record(200, 0.001);
  assert.deepEqual(seriesOf(await viaCells.registry.metrics(), 'mfa_gateway_requests_total')[1], 'mfa_gateway_requests_total{route="orders",policy="mfa",status="200"} 4');
});
