import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { createMetrics, PER_WORKER_GAUGES } from '../../src/metrics/metrics.js';
import { createLogger } from '../../src/log/logger.js';
import { startGateway } from '../../src/server/gateway.js';
import { systemClock } from '../../src/time/clock.js';
import { missingBinary, PROMTOOL } from '../support/binaries.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call } from '../support/http.js';
import { sampleValue } from '../support/metrics.js';
import { REPO, startServe, type ServeProcess } from '../support/serve.js';
import { startSntpResponder, type SntpResponder } from '../support/sntp.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { eventually } from '../support/wait.js';

/**
 * What ships for operators, held against what the gateway really exports: the Prometheus rules
 * (promtool's own checks and unit tests), the Grafana dashboard and docs/metrics.md. The reference
 * is one scrape of `serve --workers 2` after some traffic, with the clock checked against a
 * loopback NTP server: the primary's own metrics (workers, clock) and the workers' in one text;
 * plus what only a single process exports.
 */

const RULES = join(REPO, 'config/prometheus/mfa-gateway.rules.yml');
const RULE_TESTS = join(REPO, 'config/prometheus/mfa-gateway.test.yml');
const DASHBOARD = join(REPO, 'config/grafana/mfa-gateway.json');
const DOCS = join(REPO, 'docs/metrics.md');

interface Exported {
  readonly type: string;
  /** Label names seen on its samples (`le` of histogram buckets left out). */
  readonly labels: Set<string>;
}

/** name → type and labels, from the `# TYPE` lines and the samples of a text exposition. */
function readExposition(text: string): Map<string, Exported> {
  const metrics = new Map<string, Exported>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type !== null) metrics.set(type[1]!, { type: type[2]!, labels: new Set() });
  }
  for (const line of text.split('\n')) {
    const sample = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? \S+$/.exec(line);
    if (sample === null) continue;
    const name = sample[1]!;
    const base = metrics.has(name) ? name : name.replace(/_(bucket|sum|count)$/, '');
    const metric = metrics.get(base);
    assert.ok(metric !== undefined, `a sample of an undeclared metric: ${line}`);
    for (const [, label] of (sample[2] ?? '').matchAll(/(\w+)="(?:[^"\\]|\\.)*"/g)) if (label !== 'le') metric.labels.add(label!);
  }
  return metrics;
}

/** The label names each metric of the gateway's registry is declared with (prom-client keeps them on the metric). */
const declaredLabels = new Map<string, readonly string[]>();
for (const value of Object.values(createMetrics()) as { name?: unknown; labelNames?: unknown }[]) {
  if (typeof value.name === 'string' && Array.isArray(value.labelNames)) declaredLabels.set(value.name, value.labelNames as string[]);
}

const PROMQL_WORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset']);

/**
 * The metric names (and recording-rule names, which hold a `:`) a PromQL expression reads: what is
 * left once strings, Grafana variables, label matchers, grouping lists, ranges, numbers, functions
 * and keywords are taken out.
 */
function promqlNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\$\{?\w+\}?/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/(?<![\w:])\d+(\.\d+)?(e[+-]?\d+)?(?![\w:])/gi, ' ');
  const names = new Set<string>();
  for (const m of bare.matchAll(/[a-zA-Z_:][\w:]*(\s*\()?/g)) {
    if (m[1] !== undefined || PROMQL_WORDS.has(m[0])) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** The bare metric name of a histogram series name (`_bucket`, `_sum`, `_count`), else the name. */
function metricOf(name: string, exported: ReadonlyMap<string, Exported>): string {
  if (exported.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return exported.get(base)?.type === 'histogram' ? base : name;
}

/** Every PromQL expression of the dashboard: its panels' targets, and the queries of its variables. */
function dashboardExprs(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { uid: string; panels: Record<string, unknown>[]; templating: { list: { query: unknown; type: string }[] } };
  assert.equal(dashboard.uid, 'mfa-gateway');
  const exprs: string[] = [];
  for (const panel of dashboard.panels) {
    if (panel.type === 'row') continue;
    assert.deepEqual(panel.datasource, { type: 'prometheus', uid: '${datasource}' }, String(panel.title));
    const targets = panel.targets as { expr: string }[];
    assert.ok(targets.length > 0, String(panel.title));
    exprs.push(...targets.map((target) => target.expr));
  }
  for (const variable of dashboard.templating.list) {
    if (variable.type !== 'query') continue;
    exprs.push((variable.query as { query: string }).query.replace(/^label_values\((.*),\s*\w+\)$/, '$1'));
  }
  return exprs;
}

const promtoolMissing = missingBinary(PROMTOOL, 'prometheus');

/** Runs promtool; its output, or a failure that shows it. */
function promtool(...args: string[]): string {
  const run = spawnSync(PROMTOOL, args, { encoding: 'utf8' });
  const output = `${run.stdout}${run.stderr}`;
  assert.equal(run.status, 0, `promtool ${args.join(' ')} failed:\n${output}`);
  return output;
}

describe('what ships for operators, against a real scrape', () => {
  let upstream: Upstream;
  let ntp: SntpResponder;
  let ws: Workspace;
  let served: ServeProcess;
  let exported: Map<string, Exported>;

  before(async () => {
    upstream = await startUpstream();
    ntp = await startSntpResponder({ clock: systemClock });
    ws = createWorkspace();
    ws.writePolicy(
      policyHead(ws, upstream.url) +
        `clock: { ntp_server: "${ntp.address}" }
routes:
  - { name: public, match: { path: /p }, upstream: app, policy: public }
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
default: deny
`,
    );
    // Two workers: --workers 1 is the single process, without the primary's metrics.
    served = await startServe(['--config', ws.configPath, '--workers', '2']);
    for (const [path, status] of [['/p', 200], ['/orders/1', 401], ['/nowhere', 404], ['/p/../orders/1', 400]] as const) {
      assert.equal((await call(served.port, 'GET', path)).status, status, path);
    }
    let text = '';
    await eventually(async () => sampleValue((text = (await call(served.adminPort, 'GET', '/metrics')).text), 'mfa_gateway_clock_sync_success') === 1, 5_000);
    exported = readExposition(text);
    // And what only one process exports (prom-client leaves process_start_time_seconds out of a cluster's sum).
    const single = await startGateway({ configPath: ws.configPath, logger: createLogger({ level: 'silent' }), watch: false, pollClock: false });
    try {
      for (const [name, metric] of readExposition((await call(single.adminAddress!.port, 'GET', '/metrics')).text)) if (!exported.has(name)) exported.set(name, metric);
    } finally {
      await single.stop();
    }
  });
  after(async () => {
    served?.child.kill('SIGTERM');
    await served?.exited;
    await ntp?.close();
    await upstream?.close();
    ws?.remove();
  });

  test('the scrape holds every metric family, the cluster\'s and the clock\'s included', () => {
    for (const name of ['mfa_gateway_requests_total', 'mfa_gateway_worker_up', 'mfa_gateway_clock_offset_seconds', 'mfa_gateway_build_info', 'process_cpu_seconds_total']) {
      assert.ok(exported.has(name), name);
    }
    assert.deepEqual(promqlNames('sum by (route) (rate(mfa_gateway_requests_total{route=~"$route",x="a{b}"}[5m])) / 1e9 and on (instance) up'), ['mfa_gateway_requests_total', 'up']);
  });

  describe('config/prometheus', () => {
    test('promtool check rules accepts the rules', { skip: promtoolMissing }, () => {
      assert.match(promtool('check', 'rules', RULES), /SUCCESS: \d+ rules found/);
    });

    test('promtool test rules: every unit test passes', { skip: promtoolMissing }, () => {
      assert.match(promtool('test', 'rules', RULE_TESTS), /SUCCESS/);
    });

    test('every metric a rule reads is exported (the webhook dead letters excepted until they land); recorded names are defined', () => {
      const groups = (parseYaml(readFileSync(RULES, 'utf8')) as { groups: { rules: { expr: string; record?: string; alert?: string }[] }[] }).groups;
      const rules = groups.flatMap((group) => group.rules);
      const recorded = new Set(rules.flatMap((rule) => (rule.record !== undefined ? [rule.record] : [])));
      const read = new Set(rules.flatMap((rule) => promqlNames(rule.expr)));
      for (const name of read) {
        if (name.includes(':')) assert.ok(recorded.has(name), `${name} is not recorded by any rule`);
        else assert.ok(exported.has(metricOf(name, exported)), `${name} is not exported`);
      }
      assert.deepEqual(
        rules.flatMap((rule) => (rule.alert !== undefined ? [rule.alert] : [])),
        ['MfaGatewaySuccessRateLow', 'MfaGatewayLatencyHigh', 'MfaGatewayLockoutBurst', 'MfaGatewayClockOffset', 'MfaGatewayClockUnchecked', 'MfaGatewayWebhookDeadLetters'],
      );
      assert.ok(read.has('mfa_gateway_webhook_dead_letters_total'));
    });
  });

  test('config/grafana/mfa-gateway.json: every expression reads only exported metrics, straight (no recording rules)', () => {
    const exprs = dashboardExprs();
    assert.ok(exprs.length >= 40, `${exprs.length} expressions`);
    const read = new Set(exprs.flatMap(promqlNames));
    for (const name of read) assert.ok(exported.has(metricOf(name, exported)), `the dashboard reads ${name}, which is not exported`);
    // The dashboard charts every metric family of the gateway itself.
    const unused = [...exported.keys()].filter((name) => name.startsWith('mfa_gateway_') && ![...read].some((r) => metricOf(r, exported) === name));
    assert.deepEqual(unused, []);
  });

  test('config/grafana/mfa-gateway.json: every expression is PromQL that promtool parses', { skip: promtoolMissing }, () => {
    // Grafana's variables as a query would have them: a range for $__rate_interval, "any" for the selectors.
    const rules = dashboardExprs().map((expr, i) => ({ record: `dashboard:expr_${i}`, expr: expr.replace(/\$__\w+/g, '5m').replace(/\$\{?\w+\}?/g, '.*') }));
    const file = join(ws.dir, 'dashboard.rules.yml');
    writeFileSync(file, stringifyYaml({ groups: [{ name: 'dashboard', rules }] }));
    assert.match(promtool('check', 'rules', file), new RegExp(`SUCCESS: ${rules.length} rules found`));
  });

  test('docs/metrics.md: every metric exported is listed with the labels it carries, and every metric listed is exported', () => {
    const documented = new Map<string, { type: string; labels: Set<string> }>();
    for (const line of readFileSync(DOCS, 'utf8').split('\n')) {
      const row = /^\| `([a-z0-9_:]+)` \| (counter|gauge|histogram) \| ([^|]*) \|/.exec(line);
      if (row === null) continue;
      assert.ok(!documented.has(row[1]!), `${row[1]} is listed twice`);
      documented.set(row[1]!, { type: row[2]!, labels: new Set([...row[3]!.matchAll(/`(\w+)`/g)].map((m) => m[1]!)) });
    }
    assert.deepEqual([...documented.keys()].sort(), [...exported.keys()].sort());
    for (const [name, doc] of documented) {
      const real = exported.get(name)!;
      assert.equal(doc.type, real.type, name);
      // A per-worker gauge carries `worker` with --workers N (as here), which the page says in words.
      const seen = [...real.labels].filter((label) => !(label === 'worker' && PER_WORKER_GAUGES.has(name)));
      for (const label of seen) assert.ok(doc.labels.has(label), `${name}: label ${label} is not documented`);
      if (seen.length > 0) assert.deepEqual([...doc.labels].sort(), seen.sort(), name);
      // A metric with no sample in this scrape: the labels it is declared with.
      const declared = declaredLabels.get(name);
      if (declared !== undefined) assert.deepEqual([...doc.labels].sort(), [...declared].sort(), name);
    }
  });
});
