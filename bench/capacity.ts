#!/usr/bin/env node
/**
 * `npm run bench:capacity`: what the shared store costs per user and per request, for the README's
 * capacity section. One gateway on PostgreSQL + Redis (a schema and key prefix of its own), users
 * provisioned offline, then: fresh codes (one each), then session checks. It reports bytes of
 * state per user and the store work per request, counted twice: by the gateway
 * (mfa_gateway_store_calls_total) and by the servers (Redis INFO commandstats; PostgreSQL
 * pg_stat_database transactions, flushed by the server within its stats interval).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Pool, request } from 'undici';
import { nextCode, PATHS, type User } from './lib/gateway-setup.js';
import { log, type ManagedProcess } from './lib/proc.js';
import { prepareSharedStore } from './lib/shared-store.js';
import { REPO_ROOT, startGateway, startNodeServer } from './lib/stack.js';

const { values } = parseArgs({ options: { users: { type: 'string', default: '2000' }, checks: { type: 'string', default: '5' }, out: { type: 'string' } } });
const USERS = Number(values.users);
const CHECKS_PER_USER = Number(values.checks);
if (!Number.isSafeInteger(USERS) || USERS < 10 || !Number.isSafeInteger(CHECKS_PER_USER) || CHECKS_PER_USER < 1) {
  process.stderr.write('bench:capacity: --users N (≥ 10) --checks N (≥ 1)\n');
  process.exit(2);
}

async function storeCalls(adminPort: number): Promise<Map<string, number>> {
  const res = await request(`http://127.0.0.1:${adminPort}/metrics`);
  const text = await res.body.text();
  const calls = new Map<string, number>();
  for (const m of text.matchAll(/^mfa_gateway_store_calls_total\{backend="(\w+)",operation="(\w+)"\} (\d+)$/gm)) calls.set(`${m[1]} ${m[2]}`, Number(m[3]));
  return calls;
}

function delta(after: Map<string, number>, before: Map<string, number>): Map<string, number> {
  const out = new Map<string, number>();
  for (const [key, value] of after) if (value - (before.get(key) ?? 0) > 0) out.set(key, value - (before.get(key) ?? 0));
  return out;
}

const fmt = (n: number, digits = 2): string => n.toLocaleString('en-US', { maximumFractionDigits: digits });
const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'mfa-capacity-'));
  const shared = await prepareSharedStore();
  const running: ManagedProcess[] = [];
  try {
    const upstream = await startNodeServer(work, undefined, 'upstream');
    running.push(upstream);
    const empty = await shared.footprint();
    const started = await startGateway(work, undefined, upstream.port, { maxQueued: 1000, tokenCacheEntries: USERS * 2 }, USERS, [], shared.yaml);
    running.push(started.process);
    const { workspace, provisioned: users } = started;
    const pool = new Pool(`http://127.0.0.1:${started.process.port}`, { connections: 16 });
    const provisioned = await shared.footprint();
    log(`${USERS} users provisioned`);

    // Fresh codes: one per user, 16 in flight.
    await sleep(1_500);
    const before = { calls: await storeCalls(workspace.adminPort), servers: await shared.commands() };
    const sessions = new Array<string>(USERS);
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < USERS) {
          const index = next++;
          const user: User = users[index]!;
          const code = nextCode(user, Date.now())!;
          const res = await pool.request({ method: 'GET', path: PATHS.mfa, headers: { authorization: user.authorization, 'x-mfa-token': code.code } });
          await res.body.dump();
          if (res.statusCode !== 200) throw new Error(`fresh code for ${user.subject}: ${res.statusCode}`);
          user.lastStep = code.step;
          sessions[index] = String(res.headers['x-session-token']);
        }
      }),
    );
    // PostgreSQL publishes a backend's counters when it next goes idle for a while: wait it out.
    await sleep(11_000);
    const fresh = { calls: delta(await storeCalls(workspace.adminPort), before.calls), servers: await shared.commands() };
    const withSessions = await shared.footprint();

    // Session checks: CHECKS_PER_USER per user, 16 in flight.
    const checks = USERS * CHECKS_PER_USER;
    const beforeChecks = { calls: await storeCalls(workspace.adminPort), servers: fresh.servers };
    next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < checks) {
          const index = next++ % USERS;
          const res = await pool.request({ method: 'GET', path: PATHS.mfa, headers: { authorization: users[index]!.authorization, 'x-session-token': sessions[index]! } });
          await res.body.dump();
          if (res.statusCode !== 200) throw new Error(`session check: ${res.statusCode}`);
        }
      }),
    );
    await sleep(11_000);
    const checked = { calls: delta(await storeCalls(workspace.adminPort), beforeChecks.calls), servers: await shared.commands() };
    await pool.close();

    // Each INFO / pg_stat read is itself one command or transaction of the measuring client.
    const redisFresh = fresh.servers.redis - before.servers.redis - 1;
    const pgFresh = fresh.servers.postgres - before.servers.postgres;
    const redisChecks = checked.servers.redis - beforeChecks.servers.redis - 1;
    const pgChecks = checked.servers.postgres - beforeChecks.servers.postgres;
    // activeLocks runs once per /metrics scrape (the gauge), not per request.
    const perRequest = (calls: Map<string, number>) => [...calls].filter(([key]) => !key.endsWith(' activeLocks')).sort();
    const rows = (calls: Map<string, number>, per: number) => perRequest(calls).map(([key, n]) => `| ${key.split(' ')[0]} | \`${key.split(' ')[1]}\` | ${fmt(n / per)} |`);
    const trips = (calls: Map<string, number>, backend: string, per: number) => fmt(perRequest(calls).filter(([key]) => key.startsWith(`${backend} `)).reduce((sum, [, n]) => sum + n, 0) / per);
    const markdown = [
      `# Shared-store capacity (${new Date().toISOString().slice(0, 19)}Z)`,
      '',
      `One gateway on PostgreSQL + Redis (this machine's servers), ${USERS} users with one TOTP factor and 10 recovery codes each; \`npm run bench:capacity -- --users ${USERS} --checks ${CHECKS_PER_USER}\`.`,
      '',
      '## State per user',
      '',
      '| what | bytes per user |',
      '|---|---:|',
      `| PostgreSQL: factor + recovery codes (tables and indexes) | ${fmt((provisioned.postgresBytes - empty.postgresBytes) / USERS, 0)} |`,
      `| Redis: one live session + the used TOTP step (${withSessions.redisKeys} keys for ${USERS} users) | ${fmt((withSessions.redisBytes - provisioned.redisBytes) / USERS, 0)} |`,
      '',
      '## Store work per request',
      '',
      '| request | Redis round trips (one script each) | Redis commands, counting those inside scripts (server) | PostgreSQL statements | PostgreSQL transactions (server) |',
      '|---|---:|---:|---:|---:|',
      `| fresh X-MFA-Token (check locks, list factors, mark the step used, clear the lock, issue a session) | ${trips(fresh.calls, 'redis', USERS)} | ${fmt(redisFresh / USERS)} | ${trips(fresh.calls, 'postgres', USERS)} | ${fmt(pgFresh / USERS)} |`,
      `| X-Session-Token check | ${trips(checked.calls, 'redis', checks)} | ${fmt(redisChecks / checks)} | ${trips(checked.calls, 'postgres', checks)} | ${fmt(pgChecks / checks)} |`,
      '',
      'The gateway\'s own count (`mfa_gateway_store_calls_total`), per request:',
      '',
      '| backend | operation | per fresh code |',
      '|---|---|---:|',
      ...rows(fresh.calls, USERS),
      '',
      '| backend | operation | per session check |',
      '|---|---|---:|',
      ...rows(checked.calls, checks),
      '',
      `Session checks: ${checks} over ${USERS} users (${CHECKS_PER_USER} each, 16 in flight); the session cache (2 s) answers repeats, so the store sees about one lookup per user per 2 s. PostgreSQL's count includes the gateway's health probe (one \`SELECT 1\` a second) over the measured spans.`,
      '',
    ].join('\n');
    const outDir = values.out === undefined ? join(REPO_ROOT, 'bench', 'results') : resolve(values.out);
    writeFileSync(join(outDir, 'capacity.md'), markdown);
    process.stdout.write(`\n${markdown}\n`);
  } finally {
    for (const proc of running.reverse()) await proc.stop();
    await shared.dispose();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`\nCAPACITY FAILED: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
