import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { RedisConfig } from '../../src/config/types.js';
import { openRedisTtlStore, type RedisTtlStore } from '../../src/store/redis.js';
import type { TtlStore } from '../../src/store/types.js';
import { freePort } from './http.js';

export { freePort };

/**
 * Redis for the store tests: the shared server every test file may use at once (never flushed: each
 * test writes under a random key prefix and deletes exactly its own keys), and private servers a
 * test may kill, pause and restart on the same port (outages, a one-node cluster).
 */

export const REDIS_SERVER = '/usr/bin/redis-server';
/** A fresh key prefix, so tests running in parallel on one server never see each other's keys. */
export const testPrefix = (): string => `t${randomBytes(6).toString('hex')}:`;

/** Deletes every key under `prefix` (SCAN + UNLINK, never FLUSHALL: other tests share the server). */
export async function deleteKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    const keys = await listKeys(client, prefix);
    // One key per command: on a cluster node, keys of several slots in one UNLINK are refused (CROSSSLOT).
    const pipeline = client.pipeline();
    for (const key of keys) pipeline.unlink(key);
    await pipeline.exec();
    return keys.length;
  } finally {
    await client.quit().catch(() => client.disconnect());
  }
}

/** Every key under `prefix`, sorted. */
export async function listKeys(client: Redis, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}*`, 'COUNT', 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys.sort();
}

/** A port nobody listens on right now. */

/** Resolves once something on `port` answers a RESP PING (PONG, or NOAUTH when a password is set). */
export async function waitForPing(port: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const answered = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.setTimeout(500, () => socket.destroy());
      socket.once('connect', () => socket.write('*1\r\n$4\r\nPING\r\n'));
      socket.once('data', (data) => {
        socket.destroy();
        resolve(/^(\+PONG|-NOAUTH)/.test(data.toString()));
      });
      socket.once('close', () => resolve(false));
      socket.once('error', () => undefined);
    });
    if (answered) return;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** The master a private Sentinel watches. */
export interface SentinelTarget {
  readonly name: string;
  readonly port: number;
  readonly password?: string;
}

export interface PrivateRedis {
  readonly port: number;
  /** redis://[:password@]127.0.0.1:port */
  readonly url: string;
  /** Starts the server (again) on the same port and waits until it answers PING. */
  start(): Promise<void>;
  /** SIGKILL, and waits for the exit: an outage with no goodbye. */
  kill(): Promise<void>;
  /** SIGSTOP / SIGCONT: a server that keeps its sockets open and answers nothing. */
  pause(): void;
  resume(): void;
  /** Kills the server and removes its directory. */
  dispose(): Promise<void>;
}

/**
 * A redis-server of this test's own on a free port, persisting nothing. `args` are extra server
 * arguments (e.g. cluster mode); `password` sets requirepass.
 */
export async function startPrivateRedis(options: { readonly args?: readonly string[]; readonly password?: string; readonly sentinelFor?: SentinelTarget } = {}): Promise<PrivateRedis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'mfa-redis-'));
  let args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...(options.password !== undefined ? ['--requirepass', options.password] : []), ...(options.args ?? [])];
  const target = options.sentinelFor;
  if (target !== undefined) {
    // A Sentinel rewrites its configuration file, so it needs one of its own.
    const file = join(dir, 'sentinel.conf');
    const auth = target.password !== undefined ? `sentinel auth-pass ${target.name} ${target.password}\n` : '';
    writeFileSync(file, `sentinel monitor ${target.name} 127.0.0.1 ${target.port} 1\n${auth}`);
    args = [file, '--sentinel', '--port', String(port), '--bind', '127.0.0.1', '--dir', dir];
  }
  let child: ChildProcess | undefined;
  let output = '';

  async function kill(): Promise<void> {
    const running = child;
    child = undefined;
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGCONT');
    running.kill('SIGKILL');
    await exited;
  }

  async function start(): Promise<void> {
    if (child !== undefined) throw new Error('redis-server is already running');
    output = '';
    const started = spawn(REDIS_SERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    started.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    started.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child = started;
    try {
      await waitForPing(port);
    } catch (error) {
      await kill();
      throw new Error(`${(error as Error).message}: ${output.slice(-2_000)}`);
    }
  }

  await start();
  return {
    port,
    url: `redis://${options.password !== undefined ? `:${encodeURIComponent(options.password)}@` : ''}127.0.0.1:${port}`,
    start,
    kill,
    pause: () => void child?.kill('SIGSTOP'),
    resume: () => void child?.kill('SIGCONT'),
    async dispose() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A one-node Redis Cluster of the test's own (every slot on one private server): enough for ioredis's
 * Cluster client, for CROSSSLOT refusals of scripts whose keys hash apart, and for CLUSTER KEYSLOT.
 */
export async function startPrivateCluster(): Promise<PrivateRedis> {
  // A node that never met another reports an empty IP in CLUSTER SLOTS, and ioredis then drops it.
  const server = await startPrivateRedis({ args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-announce-ip', '127.0.0.1'] });
  const client = new Redis(server.url, { maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    await client.call('CLUSTER', 'ADDSLOTSRANGE', '0', '16383');
    const deadline = Date.now() + 10_000;
    while (!String(await client.call('CLUSTER', 'INFO')).includes('cluster_state:ok')) {
      if (Date.now() > deadline) throw new Error('the one-node cluster did not reach cluster_state:ok');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return server;
  } catch (error) {
    await server.dispose();
    throw error;
  } finally {
    client.disconnect();
  }
}

/**
 * Replicas of the shared store: separate connections (each its own command and pub/sub pair) under
 * one key prefix of this backend's own, whose keys dispose() deletes from the server at `url`.
 */
export function redisBackend(config: RedisConfig, url: string): { connect(): Promise<TtlStore>; dispose(): Promise<void> } {
  const opened: RedisTtlStore[] = [];
  return {
    async connect() {
      const store = await openRedisTtlStore(config);
      opened.push(store);
      return store.ttl;
    },
    async dispose() {
      await Promise.all(opened.map((store) => store.close()));
      await deleteKeys(url, config.keyPrefix);
    },
  };
}
