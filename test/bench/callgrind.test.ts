import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BenchError } from '../../bench/lib/proc.js';
import { callgrindLaunch, dumpEvents, renderInstructionRows, renderSimulatedRows, simulatedCosts } from '../../bench/lib/callgrind.js';

/** The instruction-count bench's arithmetic (bench/lib/callgrind.ts); valgrind itself runs only in `npm run bench:instructions`. */

const DUMP = `# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  node dist/bench/servers/undici-proxy.js 19002 http://127.0.0.1:19001
part: 3

desc: I1 cache:
desc: D1 cache:
desc: LL cache:

desc: Timerange: Basic block 10 - 20
desc: Trigger: Client Request: dump

positions: line
events: Ir
summary: 774584173


totals: 774584173
`;

const SIMULATED_DUMP = DUMP.replace('events: Ir', 'events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim').replace(
  'summary: 774584173',
  'summary: 8000000 2000000 1000000 40000 30000 10000 400 300 100 900000 20000 50000 4000',
);

const costs = (estimatedCycles: number, instructionMisses: number) => ({ instructionMisses, dataMisses: 500, lastLevelMisses: 2.5, mispredicts: 300, estimatedCycles });

describe('callgrind dumps and the instruction table', () => {
  test('the totals are the summary line of a dump counting Ir', () => {
    assert.deepEqual(dumpEvents(DUMP), { Ir: 774_584_173 });
  });

  test('a dump without Ir, without a summary or with a summary of another length is refused, not read as zero', () => {
    assert.throws(() => dumpEvents(DUMP.replace('events: Ir', 'events: Dr')), BenchError);
    assert.throws(() => dumpEvents(DUMP.replace('summary: 774584173', '')), BenchError);
    assert.throws(() => dumpEvents(DUMP.replace('events: Ir', 'events: Ir Dr')), BenchError);
  });

  test('a simulating dump: every event by name, and the misses per request', () => {
    const events = dumpEvents(SIMULATED_DUMP);
    assert.deepEqual(events, { Ir: 8_000_000, Dr: 2_000_000, Dw: 1_000_000, I1mr: 40_000, D1mr: 30_000, D1mw: 10_000, ILmr: 400, DLmr: 300, DLmw: 100, Bc: 900_000, Bcm: 20_000, Bi: 50_000, Bim: 4_000 });
    assert.deepEqual(simulatedCosts(events, 40), {
      instructionMisses: 1_000,
      dataMisses: 1_000,
      lastLevelMisses: 20,
      mispredicts: 600,
      // (8,000,000 + 10 × (80,000 + 24,000)) / 40: last-level misses are shown, not weighed
      estimatedCycles: 226_000,
    });
    assert.throws(() => simulatedCosts(dumpEvents(DUMP), 40), /without the I1mr event/);
  });

  test('servers are wrapped in valgrind with their dumps named, and given minutes to start', () => {
    assert.deepEqual(callgrindLaunch('/tmp/w/callgrind-undici.out'), {
      wrapper: ['valgrind', '--tool=callgrind', '--callgrind-out-file=/tmp/w/callgrind-undici.out'],
      readyTimeoutMs: 300_000,
    });
    assert.deepEqual(callgrindLaunch('/tmp/w/callgrind-undici.out', true).wrapper, [
      'valgrind',
      '--tool=callgrind',
      '--cache-sim=yes',
      '--branch-sim=yes',
      '--LL=33554432,16,64',
      '--callgrind-out-file=/tmp/w/callgrind-undici.out',
    ]);
  });

  test('each row: its windows, their median, their spread and the median over the baseline median', () => {
    const table = renderInstructionRows(
      [
        { name: 'undici', label: 'minimal', perRequest: [156_000, 154_000, 155_000] },
        { name: 'public', label: 'public', perRequest: [170_500, 171_000, 170_000] },
        { name: 'mfa-session', label: 'mfa', perRequest: [200_000, 186_000] },
      ],
      'undici',
    );
    assert.equal(
      table,
      [
        '| target | instructions/request per window | median | spread | × minimal |',
        '| --- | ---: | ---: | ---: | ---: |',
        '| minimal | 156,000 / 154,000 / 155,000 | 155,000 | 1.3 % | 1.000× |',
        '| public | 170,500 / 171,000 / 170,000 | 170,500 | 0.6 % | 1.100× |',
        '| mfa | 200,000 / 186,000 | 193,000 | 7.5 % | 1.245× |',
      ].join('\n'),
    );
  });

  test('the simulated table: medians of each count, cycles and instructions over the baseline, rows without simulation left out', () => {
    const table = renderSimulatedRows(
      [
        { name: 'undici', label: 'minimal', perRequest: [100_000, 100_000], simulated: [costs(150_000, 1_000), costs(160_000, 1_200)] },
        { name: 'public', label: 'public', perRequest: [110_000, 110_000], simulated: [costs(180_000, 2_000), costs(200_000, 2_200)] },
        { name: 'mfa-session', label: 'mfa', perRequest: [120_000] },
      ],
      'undici',
    );
    assert.equal(
      table,
      [
        '| target | I1 misses | D1 misses | LL misses | mispredicted branches | estimated cycles | cycles × minimal | instructions × minimal |',
        '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
        '| minimal | 1,100 | 500 | 2.5 | 300 | 155,000 | 1.000× | 1.000× |',
        '| public | 2,100 | 500 | 2.5 | 300 | 190,000 | 1.226× | 1.100× |',
      ].join('\n'),
    );
  });
});
