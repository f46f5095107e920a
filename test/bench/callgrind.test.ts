import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BenchError } from '../../bench/lib/proc.js';
import { callgrindLaunch, dumpTotal, renderInstructionRows } from '../../bench/lib/callgrind.js';

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

describe('callgrind dumps and the instruction table', () => {
  test('the total is the summary line of a dump counting Ir', () => {
    assert.equal(dumpTotal(DUMP), 774_584_173);
  });

  test('a dump without Ir or without a summary is refused, not read as zero', () => {
    assert.throws(() => dumpTotal(DUMP.replace('events: Ir', 'events: Dr')), BenchError);
    assert.throws(() => dumpTotal(DUMP.replace('summary: 774584173', '')), BenchError);
  });

  test('servers are wrapped in valgrind with their dumps named, and given minutes to start', () => {
    assert.deepEqual(callgrindLaunch('/tmp/w/callgrind-undici.out'), {
      wrapper: ['valgrind', '--tool=callgrind', '--callgrind-out-file=/tmp/w/callgrind-undici.out'],
      readyTimeoutMs: 300_000,
    });
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
});
