import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMetricsAggregator } from '../../src/cluster/aggregate.js';
import { createMetrics, type Metrics } from '../../src/metrics/metrics.js';
import { sampleValue as sample } from '../support/metrics.js';

const OK = 'mfa_gateway_requests_total{route="p",policy="public",status="200"}';

function worker(requests: number, inFlight: number): Metrics {
  const metrics = createMetrics();
  metrics.requests.inc({ route: 'p', policy: 'public', status: '200' }, requests);
  metrics.requestDuration.observe({ route: 'p' }, 0.004);
  metrics.inFlight.set(inFlight);
  metrics.mfaActiveLocks.set(4); // read from the one shared store by each worker
  metrics.keyAge.set({ kid: 'k1', primary: 'true' }, 86_400);
  return metrics;
}

test('counters and histograms are summed, per-process gauges get a worker label, shared-state gauges are not multiplied', async () => {
  const aggregator = createMetricsAggregator();
  const [one, two] = [worker(3, 2), worker(4, 0)];
  const text = await aggregator.expose(new Map([[1, await one.registry.getMetricsAsJSON()], [2, await two.registry.getMetricsAsJSON()]]), []);
  assert.equal(sample(text, OK), 7);
  assert.equal(sample(text, 'mfa_gateway_request_duration_seconds_count{route="p"}'), 2);
  assert.equal(sample(text, 'mfa_gateway_request_duration_seconds_bucket{le="0.005",route="p"}'), 2);
  assert.equal(sample(text, 'mfa_gateway_in_flight_requests{worker="1"}'), 2);
  assert.equal(sample(text, 'mfa_gateway_in_flight_requests{worker="2"}'), 0);
  assert.equal(sample(text, 'mfa_gateway_in_flight_requests'), undefined, 'no unlabelled sum beside the per-worker series');
  assert.equal(sample(text, 'mfa_gateway_mfa_active_locks'), 4);
  assert.equal(sample(text, 'mfa_gateway_encryption_key_age_seconds{kid="k1",primary="true"}'), 86_400);
  assert.equal(aggregator.contentType, one.registry.contentType);
});

test('a counter never goes down: a gone worker\'s last counts stay, a silent one shows its last answer', async () => {
  const aggregator = createMetricsAggregator();
  const [one, two] = [worker(3, 1), worker(4, 0)];
  const both = await aggregator.expose(new Map([[1, await one.registry.getMetricsAsJSON()], [2, await two.registry.getMetricsAsJSON()]]), []);
  assert.equal(sample(both, OK), 7);

  // Worker 1 crashes; its replacement starts from zero and has counted 1 by the next scrape.
  aggregator.retire(1);
  const replacement = worker(1, 0);
  two.requests.inc({ route: 'p', policy: 'public', status: '200' });
  const after = await aggregator.expose(new Map([[1, await replacement.registry.getMetricsAsJSON()], [2, await two.registry.getMetricsAsJSON()]]), []);
  assert.equal(sample(after, OK), 3 + 1 + 5);
  assert.equal(sample(after, 'mfa_gateway_request_duration_seconds_count{route="p"}'), 3);
  assert.equal(sample(after, 'mfa_gateway_in_flight_requests{worker="1"}'), 0, 'the gone worker\'s gauges are not kept');

  // Worker 2 does not answer this scrape: its last answer stands in.
  const silent = await aggregator.expose(new Map([[1, await replacement.registry.getMetricsAsJSON()], [2, undefined]]), []);
  assert.equal(sample(silent, OK), 9);
});

test('the primary\'s own metrics are merged in', async () => {
  const aggregator = createMetricsAggregator();
  const primary = createMetrics();
  primary.configReloads.inc({ result: 'failure' });
  const text = await aggregator.expose(new Map([[1, await worker(1, 0).registry.getMetricsAsJSON()]]), await primary.registry.getMetricsAsJSON());
  assert.equal(sample(text, 'mfa_gateway_config_reloads_total{result="failure"}'), 1);
});
