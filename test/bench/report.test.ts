import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { aggregate, verdicts, type Mode, type Sample, type TargetInfo } from '../../bench/lib/report.js';

/**
 * The bench's arithmetic (bench/lib/report.ts): CPU ratios are taken inside each round, so a VM
 * that runs one round slower than the next does not move a verdict.
 */

const BASELINES = new Set(['direct', 'undici', 'contract-floor']);
const TARGETS: TargetInfo[] = ['direct', 'undici', 'contract-floor', 'public', 'bearer-es256', 'mfa-session'].map((name) => ({ name, label: name, description: name, group: BASELINES.has(name) ? 'baseline' : 'gateway' }));

/** A sample whose request costs `micros` µs on the saturated core, and whose p50 is `p50Micros`. */
function sample(target: string, round: number, micros: number, mode: Mode = 'c50', p50Micros = micros): Sample {
  const rps = 1e6 / micros;
  return {
    target, mode, round, rps, requests: Math.round(rps * 8), durationSec: 8,
    latencyMs: { p50: p50Micros / 1000, p75: 0, p90: 0, p99: 1, max: 1 },
    non2xx: 0, socketErrors: [0, 0, 0, 0], proxyCpuUs: 0, upstreamCpuUs: 0, foreignShare: 0, serverCpuShare: 1, upstreamServed: 0, retries: 0,
  };
}

/** Three rounds on a machine that is 1.0×, 1.5× and 0.8× as slow: direct 20 µs, undici +40 µs, each row +40 µs × `factor`. */
function drifting(factors: Readonly<Record<string, number>>): Sample[] {
  return [1, 1.5, 0.8].flatMap((speed, round) => [
    sample('direct', round, 20 * speed),
    sample('undici', round, 60 * speed),
    ...Object.entries(factors).map(([name, factor]) => sample(name, round, (20 + 40 * factor) * speed)),
  ]);
}

describe('bench report', () => {
  test('the CPU ratio is the median of the per-round ratios: drift between rounds cancels', () => {
    // Round 2 ran the baselines on a slower machine than the gateway rows' neighbours would suggest:
    // the public row's own round is what it is compared with.
    const samples = drifting({ public: 1.05, 'mfa-session': 1.2, 'bearer-es256': 1.15 });
    const rows = aggregate(samples, TARGETS, 'c50');
    const pub = rows.find((r) => r.target === 'public')!;
    assert.deepEqual(pub.cpuVsUndiciRounds.map((r) => Number(r.toFixed(6))), [1.05, 1.05, 1.05]);
    assert.equal(Number(pub.cpuVsUndici!.toFixed(6)), 1.05);
    const [publicVerdict, sessionVerdict, esVerdict] = verdicts(rows, [], [], undefined);
    assert.equal(publicVerdict!.status, 'met');
    assert.match(publicVerdict!.measured, /per round 1\.05 \/ 1\.05 \/ 1\.05×, median 1\.05×$/);
    assert.equal(sessionVerdict!.status, 'missed');
    assert.match(sessionVerdict!.measured, /median 1\.20×$/);
    // ES256 against the session row, within each round: 1.15 / 1.2 − 1 = −4.2 %.
    assert.equal(esVerdict!.status, 'met');
    assert.match(esVerdict!.measured, /per round -4\.2 % \/ -4\.2 % \/ -4\.2 %, median -4\.2 %$/);
  });

  test('one round that disagrees does not decide; the range shows it', () => {
    const samples = drifting({ public: 1.05 }).map((s) => (s.target === 'public' && s.round === 1 ? sample('public', 1, (20 + 40 * 1.6) * 1.5) : s));
    const pub = aggregate(samples, TARGETS, 'c50').find((r) => r.target === 'public')!;
    assert.deepEqual(pub.cpuVsUndiciRounds.map((r) => Number(r.toFixed(6))), [1.05, 1.6, 1.05]);
    assert.equal(Number(pub.cpuVsUndici!.toFixed(6)), 1.05);
  });

  test('unloaded latency is paired by round too; without baselines in a round the medians are used', () => {
    const c1 = [
      sample('direct', 0, 50, 'c1', 60), sample('undici', 0, 100, 'c1', 100), sample('mfa-session', 0, 110, 'c1', 108),
      sample('direct', 1, 50, 'c1', 90), sample('undici', 1, 100, 'c1', 150), sample('mfa-session', 1, 110, 'c1', 162),
    ];
    const session = aggregate(c1, TARGETS, 'c1').find((r) => r.target === 'mfa-session')!;
    assert.deepEqual(session.addedVsUndiciRounds.map((r) => Number(r.toFixed(6))), [1.2, 1.2]);
    assert.equal(Number(session.addedVsUndici!.toFixed(6)), 1.2);
    // Round 1's direct run is missing: only round 0 pairs.
    const partial = aggregate(c1.filter((s) => !(s.target === 'direct' && s.round === 1)), TARGETS, 'c1').find((r) => r.target === 'mfa-session')!;
    assert.deepEqual(partial.addedVsUndiciRounds.map((r) => Number(r.toFixed(6))), [1.2]);
  });

  test('the mfa + session verdict names its contract floor, and says when the floor alone is past the target', () => {
    const [, above] = verdicts(aggregate(drifting({ 'contract-floor': 1.25, 'mfa-session': 1.4 }), TARGETS, 'c50'), [], [], undefined);
    assert.equal(above!.status, 'missed');
    assert.match(above!.measured, /median 1\.40× \(floor, undici \+ the header contract: 1\.25×; the floor itself is above 1\.15× here, so no node:http \+ undici proxy keeping the header contract reaches the target on this machine\)$/);
    const [, below] = verdicts(aggregate(drifting({ 'contract-floor': 1.05, 'mfa-session': 1.2 }), TARGETS, 'c50'), [], [], undefined);
    assert.equal(below!.status, 'missed');
    assert.match(below!.measured, /median 1\.20× \(floor, undici \+ the header contract: 1\.05×\)$/);
    // Without the floor row the verdict is the measurement alone.
    const [, alone] = verdicts(aggregate(drifting({ 'mfa-session': 1.1 }), TARGETS, 'c50'), [], [], undefined);
    assert.equal(alone!.status, 'met');
    assert.match(alone!.measured, /median 1\.10×$/);
  });
});
