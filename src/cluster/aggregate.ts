/**
 * One Prometheus scrape for all the workers of `serve --workers N`.
 *
 * prom-client's `AggregatorRegistry` has two halves. Its instance half (`clusterMetrics()`) asks the
 * workers itself, but through module-global state: each worker answers with the registries given to
 * `AggregatorRegistry.setRegistries()` (the global registry by default, which this gateway does not
 * use), one request waits for every worker that looks connected and fails whole after 5 s if one
 * does not answer, and a worker that crashes takes its counts with it. So the primary asks over its
 * own channel (protocol.ts), and only the static half is used here: `AggregatorRegistry.aggregate()`
 * merges the snapshots metric by metric with each metric's `aggregator` (see metrics.ts for which
 * one each gauge uses).
 *
 * Two things are added on top, so the sums stay the counters Prometheus expects:
 * - per-process gauges (PER_WORKER_GAUGES) get a `worker` label instead of being summed;
 * - counters and histograms must never go down, or `rate()` reads a reset. When a worker exits,
 *   what its counters had reached at its last scrape is kept in a baseline that every later scrape
 *   adds in (counts made after that scrape die with the worker: a small undercount, never a drop);
 *   a worker that does not answer one scrape is shown with its last answer.
 */
import { AggregatorRegistry, Registry, type MetricObjectWithValues, type MetricValueWithName } from 'prom-client';
import { PER_WORKER_GAUGES } from '../metrics/metrics.js';
import type { MetricsSnapshot } from './protocol.js';

type Metric = MetricObjectWithValues<MetricValueWithName<string>>;

export interface MetricsAggregator {
  readonly contentType: string;
  /**
   * The exposition of every worker (slot → its snapshot now, or undefined when it did not answer in
   * time) and of the retired ones, plus the primary's own metrics.
   */
  expose(workers: ReadonlyMap<number, MetricsSnapshot | undefined>, own: MetricsSnapshot): Promise<string>;
  /** The worker in `slot` is gone: keep what its counters and histograms had counted. */
  retire(slot: number): void;
}

/** prom-client types `type` as a numeric enum; at run time it is the exposition's word ('counter', …). */
function isCumulative(metric: Metric): boolean {
  const type = metric.type as unknown as string;
  return type === 'counter' || type === 'histogram';
}

function seriesKey(value: MetricValueWithName<string>): string {
  const labels = Object.entries(value.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([value.metricName ?? '', labels]);
}

function withWorkerLabel(snapshot: MetricsSnapshot, slot: number): MetricsSnapshot {
  return snapshot.map((metric) =>
    PER_WORKER_GAUGES.has(metric.name) ? { ...metric, values: metric.values.map((value) => ({ ...value, labels: { ...value.labels, worker: String(slot) } })) } : metric,
  );
}

export function createMetricsAggregator(): MetricsAggregator {
  const lastSeen = new Map<number, MetricsSnapshot>();
  // name → the metric's description, and its series summed over every retired worker.
  const baseline = new Map<string, { readonly metric: Metric; readonly series: Map<string, MetricValueWithName<string>> }>();

  function keep(snapshot: MetricsSnapshot): void {
    for (const metric of snapshot) {
      if (!isCumulative(metric)) continue;
      let kept = baseline.get(metric.name);
      if (kept === undefined) baseline.set(metric.name, (kept = { metric, series: new Map() }));
      for (const value of metric.values) {
        const key = seriesKey(value);
        const before = kept.series.get(key);
        kept.series.set(key, { ...value, value: (before?.value ?? 0) + value.value });
      }
    }
  }

  function retired(): MetricsSnapshot {
    return [...baseline.values()].map(({ metric, series }) => ({ ...metric, values: [...series.values()] }));
  }

  return {
    contentType: Registry.PROMETHEUS_CONTENT_TYPE,
    async expose(workers, own) {
      const snapshots: MetricsSnapshot[] = [];
      for (const slot of [...workers.keys()].sort((a, b) => a - b)) {
        const answered = workers.get(slot);
        if (answered !== undefined) lastSeen.set(slot, answered);
        const snapshot = answered ?? lastSeen.get(slot);
        if (snapshot !== undefined) snapshots.push(withWorkerLabel(snapshot, slot));
      }
      snapshots.push(retired(), own);
      return AggregatorRegistry.aggregate(snapshots.map((snapshot) => [...snapshot])).metrics();
    },
    retire(slot) {
      const last = lastSeen.get(slot);
      lastSeen.delete(slot);
      if (last !== undefined) keep(last);
    },
  };
}
