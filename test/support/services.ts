import pg from 'pg';

/**
 * External services some tests need (PostgreSQL now; Redis beside it later), found the way
 * binaries.ts finds programs: a test asks, gets undefined (run) or a printed reason (skip), and
 * under CI=true an unreachable service fails the run instead of skipping it.
 */

/** Where the tests' PostgreSQL is: trust auth, a database they may create schemas in. */
export const POSTGRES_URL = process.env.MFA_TEST_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

const probes = new Map<string, Promise<string | undefined>>();

/** host:port of a service URL: what a message may show (the URL itself may hold a password). */
export function serviceAddress(url: string): string {
  const { hostname, port } = new URL(url);
  return `${hostname}:${port}`;
}

/**
 * Why a test that needs the service `name` cannot run, or undefined when it can: pass it as the
 * `skip` option of a test or describe. `probe` rejects when the service does not answer at
 * `address`. Probed once per process; the reason is printed, so a skip is never silent. Under
 * CI=true it rejects instead, failing the test file.
 */
export function requireService(name: string, address: string, probe: () => Promise<void>): Promise<string | undefined> {
  const key = `${name} ${address}`;
  let found = probes.get(key);
  if (found === undefined) {
    found = probe().then(
      () => undefined,
      (error: unknown) => {
        const reason = `${name} not reachable at ${address}: ${error instanceof Error ? error.message : String(error)}`;
        if (process.env.CI === 'true') throw new Error(`${reason}, and CI=true: start it`);
        console.log(`# skipped: ${reason}`);
        return reason;
      },
    );
    probes.set(key, found);
  }
  return found;
}

/** PostgreSQL at POSTGRES_URL answers `SELECT 1` within 3 s, or the reason it does not. */
export function postgresOrSkip(): Promise<string | undefined> {
  return requireService('PostgreSQL', serviceAddress(POSTGRES_URL), async () => {
    const client = new pg.Client({ connectionString: POSTGRES_URL, connectionTimeoutMillis: 3000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
    } finally {
      await client.end().catch(() => undefined);
    }
  });
}

/** Where the tests' Redis is; tests share it, each under a key prefix of its own (never FLUSHDB). */
export const REDIS_URL = process.env.MFA_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Redis at REDIS_URL answers PING within 3 s, or the reason it does not. */
export function redisOrSkip(): Promise<string | undefined> {
  return requireService('Redis', serviceAddress(REDIS_URL), async () => {
    const { Redis } = await import('ioredis');
    const client = new Redis(REDIS_URL, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.ping();
    } finally {
      client.disconnect();
    }
  });
}
