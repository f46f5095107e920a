import type { Counter } from 'prom-client';

/** The value of the counter series whose labels include `labels` (0 when there is none yet). */
export async function counterValue(counter: Counter<string>, labels: Record<string, string>): Promise<number> {
  const { values } = await counter.get();
  const found = values.find((value) => Object.entries(labels).every(([name, label]) => value.labels[name] === label));
  return found?.value ?? 0;
}

/** The value of the sample line `series` (name and labels as exposed) in a text exposition; undefined when absent. */
export function sampleValue(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

/** Every sample line of `name` (with or without labels) in a text exposition, sorted: for exact comparisons. */
export function seriesOf(exposition: string, name: string): string[] {
  return exposition
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .sort();
}

/**
 * `value1/value2…` of the labels named → sample value, for every series of `name` (labels in the
 * order the exposition prints them, which is the metric's declaration order).
 */
export function seriesValues(exposition: string, name: string, labels: readonly string[]): Record<string, number> {
  const pattern = new RegExp(`^${name}\\{${labels.map((label) => `${label}="([^"]*)"`).join(',')}\\} (\\S+)$`);
  const values: Record<string, number> = {};
  for (const line of seriesOf(exposition, name)) {
    const m = pattern.exec(line);
    if (m === null) throw new Error(`not a ${name}{${labels.join(',')}} sample: ${line}`);
    values[m.slice(1, -1).join('/')] = Number(m.at(-1));
  }
  return values;
}
