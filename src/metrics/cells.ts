import { Counter, type CounterConfiguration, type LabelValues } from 'prom-client';

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
