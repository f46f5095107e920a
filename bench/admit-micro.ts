#!/usr/bin/env node
/**
 * Micro-benchmark of admission, the decision every front door runs: prints µs per request for a
 * public, a bearer (validated-token cache warm) and an mfa + X-Session-Token request (session cache
 * warm), in-process, with no socket and no upstream. Not a test and not part of `npm run bench`.
 *
 *   npm run build && node dist/bench/admit-micro.js [iterations] [fresh-code users]
 *
 * The gateway core is the real one (policy file, SQLite store, JWT verifier, MFA service) built
 * from the benchmark's own workspace; the requests are plain objects with the fields the
 * canonical view reads, so this measures admission alone.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admit, Pass } from '../src/admission/admit.js';
import { createGatewayCore } from '../src/core/gateway-core.js';
import { createLogger } from '../src/log/logger.js';
import type { RequestSource } from '../src/request/canonical.js';
import { createWorkspace, nextCode, PATHS, provisionUsers } from './lib/gateway-setup.js';

const iterations = Number(process.argv[2] ?? 300_000);
if (!Number.isSafeInteger(iterations) || iterations < 1) throw new Error('iterations must be a positive integer');
// Fresh codes: one (user, TOTP step) per request, so this many users each spend one code.
const freshUsers = Number(process.argv[3] ?? 5_000);
if (!Number.isSafeInteger(freshUsers) || freshUsers < 0) throw new Error('fresh users must be a non-negative integer');

/**
 * This process's read- and write-type system calls so far (Linux `syscr`, `syscw`): the store's page
 * reads (misses of SQLite's page cache) and writes, counted exactly on a noisy machine.
 */
function ioCalls(): { reads: number; writes: number } | undefined {
  try {
    const io = readFileSync('/proc/self/io', 'utf8');
    return { reads: Number(/^syscr: (\d+)$/m.exec(io)?.[1]), writes: Number(/^syscw: (\d+)$/m.exec(io)?.[1]) };
  } catch {
    return undefined;
  }
}

const FRESH_IN_FLIGHT = 50;

const dir = mkdtempSync(join(tmpdir(), 'admit-micro-'));
try {
  const workspace = await createWorkspace(dir, 'http://127.0.0.1:9', { listen: 0, admin: 0 }, { maxQueued: 1000, tokenCacheEntries: Math.max(1000, freshUsers + 1000) });
  const [user] = await provisionUsers(workspace, 'micro-', 1);
  const fresh = await provisionUsers(workspace, 'fresh-', freshUsers);
  // Warnings only: the one verification would otherwise print its audit lines between the results.
  const core = await createGatewayCore({ configPath: workspace.configPath, watch: false, logger: createLogger({ level: 'warn' }), audit: createLogger({ name: 'audit', level: 'warn' }) });
  const request = (path: string, headers: readonly string[]): RequestSource => ({
    method: 'GET',
    url: path,
    httpVersion: '1.1',
    rawHeaders: ['Host', '127.0.0.1', 'User-Agent', 'wrk', ...headers],
    socket: { remoteAddress: '127.0.0.1' },
  });
  async function admitOnce(source: RequestSource): Promise<Awaited<ReturnType<typeof admit>>> {
    const pass = new Pass(core);
    const admission = await admit(core, pass, source, { door: 'proxy' });
    pass.settle(200);
    return admission;
  }

  // A code through the mfa route mints the session the measured requests present.
  const code = nextCode(user!, Date.now())!;
  const minted = await admitOnce(request(PATHS.mfa, ['Authorization', user!.authorization, 'X-MFA-Token', code.code]));
  if (minted.kind !== 'allowed' || minted.decision.session === undefined) throw new Error('could not open an MFA session');
  const cases = [
    { name: 'public route', source: request(PATHS.public, []) },
    { name: 'bearer ES256 (token cache warm)', source: request(PATHS.bearer, ['Authorization', user!.authorization]) },
    { name: 'mfa + X-Session-Token (caches warm)', source: request(PATHS.mfa, ['Authorization', user!.authorization, 'X-Session-Token', minted.decision.session.token]) },
  ];
  for (const { name, source } of cases) {
    // Warm up so the measured loop runs optimised code; every answer must be an allow.
    for (let i = 0; i < 20_000; i++) if ((await admitOnce(source)).kind !== 'allowed') throw new Error(`${name}: refused`);
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) await admitOnce(source);
    const wallUs = Number(process.hrtime.bigint() - started) / iterations / 1000;
    const used = process.cpuUsage(cpu);
    process.stdout.write(`${name.padEnd(36)} ${wallUs.toFixed(2).padStart(6)} µs/request (CPU ${((used.user + used.system) / iterations).toFixed(2)} µs)\n`);
  }
  if (fresh.length > 0) {
    // Each token validated once first, as the bench's fresh-code row does: this measures the second factor.
    for (const u of fresh) if ((await admitOnce(request(PATHS.bearer, ['Authorization', u.authorization]))).kind !== 'allowed') throw new Error('fresh: token refused');
    const sources = fresh.map((u) => request(PATHS.mfa, ['Authorization', u.authorization, 'X-MFA-Token', nextCode(u, Date.now())!.code]));
    const io = ioCalls();
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    // 50 in flight, as the bench's wrk -c50 keeps them: writes of concurrent admissions may share a commit.
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < sources.length) if ((await admitOnce(sources[next++]!)).kind !== 'allowed') throw new Error('fresh: code refused');
    };
    await Promise.all(Array.from({ length: FRESH_IN_FLIGHT }, lane));
    const wallUs = Number(process.hrtime.bigint() - started) / sources.length / 1000;
    const used = process.cpuUsage(cpu);
    const after = ioCalls();
    const syscalls = io === undefined || after === undefined ? '' : `, ${((after.reads - io.reads) / sources.length).toFixed(1)} read and ${((after.writes - io.writes) / sources.length).toFixed(1)} write syscalls`;
    process.stdout.write(`${'mfa + fresh X-MFA-Token'.padEnd(36)} ${wallUs.toFixed(2).padStart(6)} µs/request (CPU ${((used.user + used.system) / sources.length).toFixed(2)} µs${syscalls}, ${sources.length} users, ${FRESH_IN_FLIGHT} in flight)\n`);
  }
  await core.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
