import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { log } from './proc.js';

/**
 * `--shared`: the gateway on PostgreSQL + Redis instead of SQLite, each in a namespace of its own
 * (a schema, a key prefix) that is removed afterwards. The servers are the machine's: they are not
 * pinned, so their CPU is not in the gateway's per-request figures; `commands()` counts what the
 * gateway asked of them.
 */

export const BENCH_POSTGRES_URL = process.env.BENCH_POSTGRES_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const BENCH_REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

export interface SharedStore {
  /** The policy file's `store:` block. */
  readonly yaml: string;
  /** Redis commands and PostgreSQL statements run so far (server-wide counters: read them around a quiet span). */
  commands(): Promise<{ readonly redis: number; readonly postgres: number }>;
  /** Bytes the namespace holds: Redis keys under the prefix, PostgreSQL tables of the schema. */
  footprint(): Promise<{ readonly redisBytes: number; readonly redisKeys: number; readonly postgresBytes: number }>;
  dispose(): Promise<void>;
}

export async function prepareSharedStore(): Promise<SharedStore> {
  const suffix = randomBytes(4).toString('hex');
  const schema = `mfa_bench_${suffix}`;
  const prefix = `bench${suffix}:`;
  const url = new URL(BENCH_POSTGRES_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const admin = new pg.Client({ connectionString: BENCH_POSTGRES_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const redis = new Redis(BENCH_REDIS_URL, { maxRetriesPerRequest: 1 });
  await redis.ping();
  log(`shared store: PostgreSQL schema ${schema}, Redis key prefix ${prefix}`);

  async function keys(): Promise<string[]> {
    const found: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      found.push(...batch);
    } while (cursor !== '0');
    return found;
  }

  return {
    yaml: `store: { kind: shared, postgres: { url: "${url.toString()}", pool: { max: 10 } }, redis: { url: "${BENCH_REDIS_URL}", key_prefix: "${prefix}" } }`,
    async commands() {
      const stats = await redis.info('commandstats');
      const redisCalls = [...stats.matchAll(/calls=(\d+)/g)].reduce((sum, m) => sum + Number(m[1]), 0);
      // Every statement the gateway runs is its own transaction (autocommit), apart from the few multi-statement ones.
      const row = await admin.query<{ n: string }>('SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = current_database()');
      return { redis: redisCalls, postgres: Number(row.rows[0]!.n) };
    },
    async footprint() {
      const found = await keys();
      let redisBytes = 0;
      for (const key of found) redisBytes += Number(await redis.memory('USAGE', key));
      const size = await admin.query<{ n: string }>(`SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) AS n FROM pg_class c JOIN pg_namespace ns ON ns.oid = c.relnamespace WHERE ns.nspname = $1 AND c.relkind = 'r'`, [schema]);
      return { redisBytes, redisKeys: found.length, postgresBytes: Number(size.rows[0]!.n) };
    },
    async dispose() {
      const found = await keys();
      for (let i = 0; i < found.length; i += 500) await redis.unlink(...found.slice(i, i + 500));
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
      redis.disconnect();
    },
  };
}
