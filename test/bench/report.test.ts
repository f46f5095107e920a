import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { aggregate, aggregateInterleaved, aggregatePaired, renderRun, verdicts, type Mode, type PairedSample, type Sample, type TargetInfo } from '../../bench/lib/report.js';

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

  test('the interleaved one-connection round decides the unloaded verdict, window by window; one at a time stays beside it', () => {
    // Two windows, the second on a machine twice as slow: direct 50 → 100 µs, undici +100 → +200, the
    // session row +115 → +230 (1.15× in both), the contract floor +110 → +220.
    const series = (target: string, windowP50Us: number[]) => ({ target, requests: 1000, p50Us: windowP50Us[0]!, p99Us: 900, windowP50Us });
    const interleaved = aggregateInterleaved(
      { durationSec: 40, block: 50, cycles: 200, sent: 9000, targets: [series('direct', [50, 100]), series('undici', [150, 300]), series('contract-floor', [160, 320]), series('mfa-session', [165, 330])] },
      TARGETS,
    );
    const session = interleaved.find((r) => r.target === 'mfa-session')!;
    assert.deepEqual(session.addedVsUndiciWindows.map((r) => Number(r.toFixed(6))), [1.15, 1.15]);
    assert.equal(session.addedP50Us, 115);
    assert.equal(interleaved.find((r) => r.target === 'direct')!.addedVsUndici, undefined);
    // One at a time the same rows read 1.6× (missed).
    const c1 = aggregate([sample('direct', 0, 50, 'c1', 50), sample('undici', 0, 100, 'c1', 150), sample('mfa-session', 0, 110, 'c1', 210)], TARGETS, 'c1');
    const unloaded = (rows: typeof interleaved) => verdicts([], c1, [], undefined, [], rows).find((v) => v.target.startsWith('unloaded'))!;
    const judged = unloaded(interleaved);
    assert.equal(judged.status, 'met');
    assert.equal(judged.measured, 'interleaved: +115 µs vs +100 µs (p50s); 2 windows 1.15–1.15×, median 1.15×; one at a time: +160 µs vs +100 µs (medians); per round 1.60×, median 1.60× (floor, undici + the header contract: 1.10×)');
    // Without the interleaved round the one-at-a-time rounds decide.
    assert.equal(unloaded([]).status, 'missed');
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

  /** A paired round: the row and the undici proxy beside it on a host running at `speed` (CPU µs scale with it). */
  const pairedSample = (target: string, round: number, speed: number, ratio: number): PairedSample => ({
    target, round, cpuUsPerRequest: 80 * speed * ratio, undiciCpuUsPerRequest: 80 * speed, rps: 4000 / (speed * ratio), undiciRps: 4000 / speed, retries: 0,
  });

  test('paired rounds decide the CPU-ratio verdicts when present; the one-at-a-time figure stays beside them', () => {
    // One at a time the public row reads 1.30× (missed); paired, on a host whose speed swings 2×, 1.07× in every round.
    const sequential = aggregate(drifting({ public: 1.3, 'contract-floor': 1.1, 'mfa-session': 1.3, 'bearer-es256': 1.3 }), TARGETS, 'c50');
    const pairedRows = aggregatePaired(
      [1, 2, 0.9].flatMap((speed, round) => [
        pairedSample('public', round, speed, 1.07),
        pairedSample('contract-floor', round, speed, 1.02),
        pairedSample('mfa-session', round, speed, 1.2),
        // ES256 against the session row in each round: +4 %, −3 %, +6 %: median +4 %.
        pairedSample('bearer-es256', round, speed, 1.2 * [1.04, 0.97, 1.06][round]!),
      ]),
      TARGETS,
    );
    const pub = pairedRows.find((r) => r.target === 'public')!;
    assert.deepEqual(pub.ratioRounds.map((r) => Number(r.toFixed(6))), [1.07, 1.07, 1.07]);
    assert.equal(Number(pub.cpuUsPerRequest.toFixed(6)), 85.6);
    assert.equal(Number(pub.undiciCpuUsPerRequest.toFixed(6)), 80);
    const [publicVerdict, sessionVerdict, esVerdict] = verdicts(sequential, [], [], undefined, pairedRows);
    assert.equal(publicVerdict!.status, 'met');
    assert.match(publicVerdict!.measured, /^paired with undici: 85\.6 µs vs 80\.0 µs \(medians\); per round 1\.070 \/ 1\.070 \/ 1\.070×, median 1\.070×; one at a time: .*median 1\.30×$/);
    assert.equal(sessionVerdict!.status, 'missed');
    // The floor beside it is the paired one (1.02×), not the one-at-a-time 1.10×.
    assert.match(sessionVerdict!.measured, /median 1\.30× \(floor, undici \+ the header contract: 1\.02×\)$/);
    assert.equal(esVerdict!.status, 'met');
    assert.match(esVerdict!.measured, /per round \+4\.0 % \/ -3\.0 % \/ \+6\.0 %, median \+4\.0 %$/);
    // Without paired rows the same verdicts come from the one-at-a-time rounds.
    assert.equal(verdicts(sequential, [], [], undefined)[0]!.status, 'missed');
  });

  test('the run report shows the paired table only when paired rounds ran', () => {
    const pairedRows = aggregatePaired([pairedSample('public', 0, 1, 1.07), pairedSample('public', 1, 1.5, 1.09)], TARGETS);
    const base = {
      startedAt: '2026-11-30T00:00:00.000Z',
      settings: { connections: 50, warmup: 2, duration: 8, repeats: 2, paired: 2, c1Duration: 4, pinning: 'none' },
      machine: { cpuModel: 'cpu', cores: 2, virtualization: 'none', memoryGiB: 1, os: 'os', kernel: 'k', node: 'v20', wrk: 'w', nginx: 'n', packages: 'p', gitCommit: 'c', gitDirty: false, loadAverageAtStart: [0, 0, 0], kernelCost: { syscallNs: 1, loopbackRoundTripUs: 1 } },
      targets: TARGETS, notes: [], c50: [], c1: [], rss: [], verdicts: [],
    } as unknown as Parameters<typeof renderRun>[0];
    const withPaired = renderRun({ ...base, paired: pairedRows });
    assert.match(withPaired, /\n## CPU per request, paired with the minimal undici proxy\n/);
    assert.match(withPaired, /\n\| public \| 1\.080× \(1\.070–1\.090\) \| 108\.2 \| 100\.0 \| 3,092 \| 3,333 \|\n/);
    assert.doesNotMatch(renderRun(base), /paired with the minimal undici proxy/);
  });
});
