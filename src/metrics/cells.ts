import { Counter, Histogram, type CounterConfiguration, type HistogramConfiguration, type LabelValues } from 'prom-client';

/**
 * Counting on the request path without prom-client's work per call: `inc(labels)` builds a hash
 * string from the label object and checks every label name (~0.3 µs, several times per request).
 * A cell is one label set's count as a plain number, looked up by a key the caller already has;
 * the counter drains its cells whenever it is collected (every scrape, the cluster primary's
 * too), so the exposition is exactly what `inc(labels)` would have produced. `inc` still works
 * for the cold paths, and both add up.
 */

export interface CounterCell {
  inc(): void;
}

export type CellCounter<T extends string> = Counter<T> & {
  /** The cell of `labels`, made on first use; `key` must name that label set alone. */
  cell(key: string, labels: LabelValues<T>): CounterCell;
};

class Cell<T extends string> implements CounterCell {
  pending = 0;
  constructor(readonly labels: LabelValues<T>) {}
  inc(): void {
    this.pending++;
  }
}

export function cellCounter<T extends string>(config: CounterConfiguration<T>): CellCounter<T> {
  const cells = new Map<string, Cell<T>>();
  const counter: Counter<T> = new Counter<T>({
    ...config,
    collect() {
      for (const cell of cells.values()) {
        if (cell.pending === 0) continue;
        counter.inc(cell.labels, cell.pending);
        cell.pending = 0;
      }
    },
  });
  // reset() forgets what is pending in the cells too, as it would have forgotten those inc()s.
  const reset = counter.reset.bind(counter);
  counter.reset = () => {
    for (const cell of cells.values()) cell.pending = 0;
    reset();
  };
  return Object.assign(counter, {
    cell(key: string, labels: LabelValues<T>): CounterCell {
      let found = cells.get(key);
      if (found === undefined) {
        found = new Cell(labels);
        cells.set(key, found);
        // The series exists from its first use, as with inc(labels).
        counter.inc(found.labels, 0);
      }
      return found;
    },
  });
}

export interface HistogramCell {
  observe(value: number): void;
}

export type CellHistogram<T extends string> = Histogram<T> & {
  /** The cell of `labels`, made on first use; `key` must name that label set alone. */
  cell(key: string, labels: LabelValues<T>): HistogramCell;
};

/** What prom-client 15 keeps per label set of a histogram (its `hashMap` values). */
interface SeriesRecord {
  readonly labels: Record<string, string | number>;
  readonly bucketValues: Record<number, number>;
  sum: number;
  count: number;
}

class HistogramCellImpl<T extends string> implements HistogramCell {
  /** One count per finite upper bound; a value above the last is in `count` only (+Inf). */
  readonly counts: number[];
  sum = 0;
  count = 0;
  constructor(
    readonly labels: LabelValues<T>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = bounds.map(() => 0);
  }
  observe(value: number): void {
    if (!Number.isFinite(value)) throw new TypeError(`histogram value is not a finite number: ${value}`);
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.counts[i]!++;
        break;
      }
    }
    this.sum += value;
    this.count++;
  }
  clear(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }
}

/**
 * The histogram twin of `cellCounter`: prom-client's `observe(labels, value)` validates and hashes
 * the label object on every call (~1.3 µs a request on the proxy path). A cell adds to plain
 * numbers; the histogram drains its cells into prom-client's own series when collected, so the
 * exposition (and the cluster primary's sum of it) is what `observe(labels, value)` would give.
 * prom-client has no public call that adds bucket counts, so the drain adds them to its series
 * record (`hashMap`, checked at every drain; test/metrics/cells.test.ts pins the equivalence).
 */
export function cellHistogram<T extends string>(config: HistogramConfiguration<T> & { readonly buckets: readonly number[] }): CellHistogram<T> {
  const bounds = [...config.buckets].sort((a, b) => a - b);
  const cells = new Map<string, HistogramCellImpl<T>>();
  const names = config.labelNames ?? [];

  function recordOf(labels: LabelValues<T>): SeriesRecord | undefined {
    const series = (histogram as unknown as { hashMap?: Record<string, SeriesRecord> }).hashMap;
    if (series === undefined) return undefined;
    for (const record of Object.values(series)) {
      if (names.every((name) => String(record.labels[name]) === String(labels[name]))) return record;
    }
    return undefined;
  }

  const histogram: Histogram<T> = new Histogram<T>({
    ...config,
    buckets: bounds,
    collect() {
      for (const cell of cells.values()) {
        if (cell.count === 0) continue;
        // Looked up at every drain: reset() and remove() replace or drop prom-client's records.
        let record = recordOf(cell.labels);
        if (record === undefined) {
          histogram.zero(cell.labels);
          record = recordOf(cell.labels);
        }
        if (record === undefined || typeof record.bucketValues !== 'object') throw new Error('prom-client histogram records are not the shape cellHistogram drains into');
        for (let i = 0; i < bounds.length; i++) {
          if (cell.counts[i] !== 0) record.bucketValues[bounds[i]!] = (record.bucketValues[bounds[i]!] ?? 0) + cell.counts[i]!;
        }
        record.sum += cell.sum;
        record.count += cell.count;
        cell.clear();
      }
    },
  });
  const reset = histogram.reset.bind(histogram);
  histogram.reset = () => {
    for (const cell of cells.values()) cell.clear();
    reset();
  };
  return Object.assign(histogram, {
    cell(key: string, labels: LabelValues<T>): HistogramCell {
      let found = cells.get(key);
      if (found === undefined) {
        found = new HistogramCellImpl(labels, bounds);
        cells.set(key, found);
        // The series exists from its first use, as with observe(labels, value).
        if (recordOf(labels) === undefined) histogram.zero(labels);
      }
      return found;
    },
  });
}
