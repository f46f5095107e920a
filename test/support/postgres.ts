import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { PostgresConfig } from '../../src/config/types.js';
import { POSTGRES_URL } from './services.js';

/**
 * A schema of its own for each test (CREATE SCHEMA mfa_t_<random>), so test files run in parallel
 * against one server; dropped with everything in it at the end.
 */
export interface TestSchema {
  readonly name: string;
  /** As the gateway's config would hold it; pass `schema: name` to the store. */
  readonly config: PostgresConfig;
  /** The URL with this schema as search_path (for a policy file: the CLI has no schema option). */
  readonly url: string;
  /** A statement as the test's own superuser session, inside the schema (setup, inspection, locks). */
  query<R extends pg.QueryResultRow = Record<string, unknown>>(text: string, values?: unknown[]): Promise<R[]>;
  /** A dedicated session inside the schema, e.g. to hold a lock across statements; end it yourself. */
  session(): Promise<pg.Client>;
  drop(): Promise<void>;
}

/** The gateway's PostgreSQL config for `url`, with test-sized timeouts; `over` changes any of it. */
export function postgresConfig(url = POSTGRES_URL, over: Partial<PostgresConfig> = {}): PostgresConfig {
  return { url, poolMax: 10, idleTimeoutMs: 10_000, connectTimeoutMs: 3_000, statementTimeoutMs: 5_000, ...over };
}

/** `url` with `search_path` set to `schema` through libpq's options= parameter. */
export function withSearchPath(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

export async function createTestSchema(): Promise<TestSchema> {
  const name = `mfa_t_${randomBytes(6).toString('hex')}`;
  const url = withSearchPath(POSTGRES_URL, name);
  const admin = new pg.Pool({ connectionString: url, max: 2 });
  admin.on('error', () => undefined);
  await admin.query(`CREATE SCHEMA ${name}`);
  return {
    name,
    config: postgresConfig(),
    url,
    query: async (text, values) => (await admin.query(text, values)).rows,
    async session() {
      const client = new pg.Client({ connectionString: url });
      client.on('error', () => undefined);
      await client.connect();
      return client;
    },
    async drop() {
      try {
        await admin.query(`DROP SCHEMA ${name} CASCADE`);
      } finally {
        await admin.end();
      }
    },
  };
}
