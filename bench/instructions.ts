#!/usr/bin/env node
/**
 * `npm run bench:instructions`: instructions per request, counted by valgrind's callgrind, for the
 * minimal undici proxy, the contract floor and the gateway's cache-warm rows. The count does not
 * move with the machine's load the way CPU time does on a shared VM, so it shows a change of a
 * few percent that `npm run bench` cannot; it leaves out the kernel (see bench/README.md). Each server
 * runs under callgrind; the upstream and this process, which sends the requests, run outside it.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { callgrindLaunch, countEvents, renderInstructionRows, renderSimulatedRows, simulatedCosts, SIMULATED_LAST_LEVEL, type InstructionRow, type SimulatedCosts } from './lib/callgrind.js';
import { enrolUser, openSession, PATHS } from './lib/gateway-setup.js';
import { BenchError, hasCommand, log, machineFacts, type ManagedProcess } from './lib/proc.js';
import { fmt } from './lib/report.js';
import { startGateway, REPO_ROOT, startNodeServer, upstreamServed } from './lib/stack.js';

const ROWS = {
  undici: 'undici Pool+stream (minimal)',
  'contract-floor': 'contract floor: undici + mfa header contract (Node)',
  public: 'gateway: public route',
  'bearer-es256': 'gateway: bearer ES256',
  'mfa-session': 'gateway: mfa + session',
  'forward-auth': 'gateway: forward-auth (auth-request)',
} as const;
type RowName = keyof typeof ROWS;

const FLAGS = {
  warmup: { def: 40_000, help: 'requests per row before counting (under callgrind the gateway settles after about 30,000)' },
  requests: { def: 4_000, help: 'requests per counted window' },
  windows: { def: 5, help: 'counted windows per row, straight after its warm-up' },
  connections: { def: 50, help: 'keep-alive connections the requests are spread over' },
} as const;

interface Row {
  readonly name: RowName;
  readonly server: ManagedProcess;
  readonly dumpFile: string;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The identity the upstream (or forward-auth, itself) must report for this row's requests. */
  readonly subject: string;
  readonly pool: Pool;
}

function options(argv: readonly string[]): { counts: Record<keyof typeof FLAGS, number>; only: RowName[]; out: string; keepTmp: boolean; simulate: boolean } | undefined {
  const { values } = parseArgs({
    args: [...argv],
    options: { warmup: { type: 'string' }, requests: { type: 'string' }, windows: { type: 'string' }, connections: { type: 'string' }, only: { type: 'string' }, out: { type: 'string' }, 'keep-tmp': { type: 'boolean' }, simulate: { type: 'boolean' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help === true) return undefined;
  const counts = {} as Record<keyof typeof FLAGS, number>;
  for (const [flag, spec] of Object.entries(FLAGS) as [keyof typeof FLAGS, (typeof FLAGS)[keyof typeof FLAGS]][]) {
    const raw = values[flag];
    if (raw !== undefined && !/^[1-9]\d{0,6}$/.test(raw)) throw new BenchError(`--${flag}: expected a whole number from 1 to 9999999, got ${JSON.stringify(raw)}`);
    counts[flag] = raw === undefined ? spec.def : Number(raw);
  }
  const only = (values.only ?? Object.keys(ROWS).join(',')).split(',').filter((name) => name !== '');
  for (const name of only) if (!(name in ROWS)) throw new BenchError(`--only: unknown row ${JSON.stringify(name)} (rows: ${Object.keys(ROWS).join(', ')})`);
  // The ratios are to the minimal proxy: it is always counted.
  if (!only.includes('undici')) only.unshift('undici');
  return { counts, only: only as RowName[], out: resolve(values.out ?? join(REPO_ROOT, 'bench', 'results')), keepTmp: values['keep-tmp'] === true, simulate: values.simulate === true };
}

function usage(): string {
  const lines = Object.entries(FLAGS).map(([flag, spec]) => `  --${flag.padEnd(12)} N  ${spec.help} (default ${spec.def})`);
  return ['npm run bench:instructions [-- flags]', '', ...lines, `  --only a,b         rows: ${Object.keys(ROWS).join(' ')} (undici always runs)`, '  --out DIR          folder of instructions.md (default bench/results)', '  --simulate         also simulate caches and branch prediction: misses per request (about twice as slow)'].join('\n');
}

/** `count` GET requests with at most `connections` in flight; every answer must be 200 and name `subject`. */
async function send(row: Row, count: number, connections: number): Promise<void> {
  let started = 0;
  const header = row.name === 'forward-auth' ? 'x-auth-subject' : 'x-bench-subject';
  const lane = async (): Promise<void> => {
    while (started < count) {
      started++;
      const reply = await row.pool.request({ method: 'GET', path: row.path, headers: row.headers });
      await reply.body.dump();
      if (reply.statusCode !== 200 || reply.headers[header] !== row.subject) {
        throw new BenchError(`${row.name}: answered ${reply.statusCode} with ${header} ${JSON.stringify(reply.headers[header])}, expected 200 with ${JSON.stringify(row.subject)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(connections, count) }, lane));
}

async function main(): Promise<number> {
  const parsed = options(process.argv.slice(2));
  if (parsed === undefined) {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const { counts, only, out, keepTmp, simulate } = parsed;
  for (const tool of ['valgrind', 'callgrind_control']) if (!hasCommand(tool)) throw new BenchError(`${tool} not found (apt-get install -y valgrind)`);
  const valgrind = spawnSync('valgrind', ['--version'], { encoding: 'utf8' }).stdout.trim();
  const machine = await machineFacts(REPO_ROOT);
  const work = mkdtempSync(join(tmpdir(), 'mfa-instructions-'));
  log(`work folder ${work}`);
  const running: ManagedProcess[] = [];
  const rows: Row[] = [];
  let failed = true;
  try {
    const upstream = await startNodeServer(work, undefined, 'upstream');
    running.push(upstream);
    const origin = (server: ManagedProcess): string => `http://127.0.0.1:${server.port}`;
    const dumpFile = (name: string): string => join(work, `callgrind-${name}.out`);
    const subject = 'bench-session';
    let headers: Record<string, string> = { authorization: 'Bearer not-a-token', 'x-session-token': 'none' };
    let gateway: ManagedProcess | undefined;
    if (only.some((name) => name !== 'undici')) {
      log('starting mfa-gateway under callgrind (a minute or two)');
      const started = await startGateway(work, undefined, upstream.port, { maxQueued: 1000, tokenCacheEntries: 10_000 }, 0, [], undefined, callgrindLaunch(dumpFile('gateway'), simulate));
      gateway = started.process;
      running.push(gateway);
      const pool = new Pool(origin(gateway), { connections: 4 });
      try {
        const user = await enrolUser(pool, started.workspace, subject);
        headers = { authorization: user.authorization, 'x-session-token': await openSession(pool, user) };
      } finally {
        await pool.close();
      }
    }
    for (const name of only) {
      const script = name === 'undici' ? 'undici-proxy' : name === 'contract-floor' ? 'contract-floor' : undefined;
      let server: ManagedProcess;
      let file: string;
      if (script !== undefined) {
        log(`starting ${name} under callgrind`);
        file = dumpFile(name);
        server = await startNodeServer(work, undefined, script, upstream.port, undefined, callgrindLaunch(file, simulate));
        running.push(server);
      } else {
        server = gateway!;
        file = dumpFile('gateway');
      }
      const path = { undici: PATHS.public, 'contract-floor': PATHS.mfa, public: PATHS.public, 'bearer-es256': PATHS.bearer, 'mfa-session': PATHS.mfa, 'forward-auth': PATHS.authRequest }[name];
      const rowHeaders = name === 'forward-auth' ? { ...headers, 'x-original-method': 'GET', 'x-original-url': `http://127.0.0.1${PATHS.mfa}` } : headers;
      const identified = name !== 'undici' && name !== 'public';
      rows.push({ name, server, dumpFile: file, path, headers: rowHeaders, subject: identified ? subject : '-', pool: new Pool(origin(server), { connections: counts.connections }) });
    }

    // Row by row, its windows straight after its warm-up: a server left idle between windows has its
    // code re-tiered and its heap reduced by V8, which the next window would count (up to 2.5× here).
    // Counts do not drift with the machine, so there is nothing for alternating rounds to cancel.
    const perRequest = new Map<RowName, number[]>(rows.map((row) => [row.name, []]));
    const simulated = new Map<RowName, SimulatedCosts[]>(rows.map((row) => [row.name, []]));
    for (const row of rows) {
      log(`${row.name}: warm-up, ${fmt(counts.warmup)} requests`);
      await send(row, counts.warmup, counts.connections);
      for (let window = 0; window < counts.windows; window++) {
        const servedBefore = await upstreamServed(upstream.port);
        const events = await countEvents(row.server.pid, row.dumpFile, () => send(row, counts.requests, counts.connections));
        const instructions = events.Ir!;
        // A proxy row that answered without its upstream would count the wrong work.
        const forwarded = (await upstreamServed(upstream.port)) - servedBefore;
        const expected = row.name === 'forward-auth' ? 0 : counts.requests;
        if (forwarded !== expected) throw new BenchError(`${row.name}: the upstream served ${forwarded} requests in a window of ${counts.requests}, expected ${expected}`);
        perRequest.get(row.name)!.push(instructions / counts.requests);
        const costs = simulate ? simulatedCosts(events, counts.requests) : undefined;
        if (costs !== undefined) simulated.get(row.name)!.push(costs);
        log(`${row.name} window ${window + 1}: ${fmt(instructions / counts.requests)} instructions/request${costs === undefined ? '' : `, ${fmt(costs.estimatedCycles)} estimated cycles`}`);
      }
    }

    const counted = rows.map((row): InstructionRow => ({ name: row.name, label: ROWS[row.name], perRequest: perRequest.get(row.name)!, simulated: simulate ? simulated.get(row.name)! : undefined }));
    const table = renderInstructionRows(counted, 'undici');
    const simulation = simulate
      ? `

## Simulated caches and branch prediction (per request, medians of the windows)

callgrind's \`--cache-sim=yes --branch-sim=yes ${SIMULATED_LAST_LEVEL}\`: first-level caches as valgrind read them from the CPU, a 32 MB 16-way last level. A model, not the machine: it has no prefetcher, no second level and one core; use it to compare rows of one run. Estimated cycles weigh each first-level miss and each mispredicted branch as 10 instructions; last-level misses are shown but not weighed, since under valgrind they follow the size V8 gave the young generation (bench/README.md).

${renderSimulatedRows(counted, 'undici')}
`
      : '';
    const markdown = `# mfa-gateway instructions per request — ${new Date().toISOString()}

- CPU: ${machine.cpuModel}, ${machine.cores} cores (${machine.virtualization}); Linux ${machine.kernel}
- Node ${machine.node}, ${valgrind} (callgrind); ${machine.packages}
- mfa-gateway commit ${machine.gitCommit}${machine.gitDirty ? ' (src/ modified)' : ''}
- each server under callgrind; ${fmt(counts.warmup)} requests per row to warm up, then ${counts.windows} windows of ${fmt(counts.requests)} requests straight after, ${counts.connections} keep-alive connections; the same request headers as \`npm run bench\` (ES256 bearer + X-Session-Token on every row)
- counted: every instruction the server process executed in user space, all threads (JIT, GC and timers included); the kernel's share of its system calls is not counted, so these ratios are larger than the CPU-time ratios of \`npm run bench\`, where the kernel's cost is the same for every row

${table}
${simulation}`;
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'instructions.md'), markdown);
    process.stdout.write(`\n${markdown}\n`);
    log(`results: ${join(out, 'instructions.md')}`);
    failed = false;
    return 0;
  } finally {
    await Promise.all(rows.map((row) => row.pool.close()));
    for (const proc of running.reverse()) await proc.stop();
    if (failed || keepTmp) log(`work folder kept: ${work}`);
    else rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`\nINSTRUCTION COUNT FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
