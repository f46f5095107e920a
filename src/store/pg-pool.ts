import pg from 'pg';
import type { PoolClient, PoolConfig, QueryConfig, QueryResultRow } from 'pg';
import type { PostgresConfig } from '../config/types.js';
import { StoreError } from './errors.js';

/**
 * The connection side of the PostgreSQL backend: one `pg.Pool` built from the policy's
 * `store.postgres`, and the one place where driver failures become store errors. Every
 * connection-level failure (refused, reset, timed out, pool exhausted, server shutting down,
 * statement timeout) is ERR_STORE_UNAVAILABLE with a message of our own: the URL holds credentials,
 * so neither it nor a driver message that might quote it reaches an error. The pool reconnects by
 * itself (a new client per checkout once the server is back); nothing here retries.
 */

export interface PgPoolOptions {
  /** Put this schema first on the search_path (tests use one schema each); [a-z_][a-z0-9_]*. */
  readonly schema?: string | undefined;
  /** Told of a failure on an idle connection, which the pool has already dropped. */
  readonly onIdleError?: ((error: StoreError) => void) | undefined;
}

export interface PgPool {
  /** One statement on any pooled connection, bounded by statement_timeout (server) and a read timeout (client). */
  query<R extends QueryResultRow>(text: string, values?: readonly unknown[]): Promise<R[]>;
  /** As `query`, for a data-modifying statement: resolves to how many rows it changed. */
  execute(text: string, values?: readonly unknown[]): Promise<number>;
  /** `work` on one connection inside BEGIN … COMMIT (ROLLBACK if it throws). */
  transaction<T>(work: (query: PgQuery) => Promise<T>, begin?: string): Promise<T>;
  /**
   * The rows of each statement in turn, `batch` at a time through cursors, all inside ONE read-only
   * REPEATABLE READ transaction: a consistent snapshot however slowly the caller reads.
   */
  snapshot(statements: readonly string[], batch: number): AsyncGenerator<SnapshotBatch>;
  /** `work` on one dedicated connection, no transaction and no read timeout (migrations set their own). */
  withClient<T>(work: (client: PoolClient) => Promise<T>): Promise<T>;
  end(): Promise<void>;
}

export interface SnapshotBatch {
  /** Index of the statement these rows answer. */
  readonly statement: number;
  readonly rows: readonly QueryResultRow[];
}

export type PgQuery = <R extends QueryResultRow>(text: string, values?: readonly unknown[]) => Promise<R[]>;

/** pg honours `query_timeout` per query at run time; its types only know it on the pool config. */
interface TimedQueryConfig extends QueryConfig<unknown[]> {
  readonly query_timeout: number;
}

const APPLICATION_NAME = 'mfa-gateway';
/** How much longer than statement_timeout the client waits for an answer before giving up on the connection. */
const READ_TIMEOUT_MARGIN_MS = 1000;
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
/** Connection-string parameters that set TLS in the URL (pg-connection-string reads these). */
const URL_TLS_PARAMS = ['ssl', 'sslmode', 'sslcert', 'sslkey', 'sslrootcert', 'sslnegotiation'];

const invalid = (message: string) => new StoreError('ERR_STORE_INVALID_OPTION', message);

function positiveMs(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) throw invalid(`store.postgres.${name} must be a positive integer of milliseconds`);
  return value;
}

/** Checks the config (messages name the field, never the URL's value) and maps it to pg's. */
export function pgPoolConfig(config: PostgresConfig, options: PgPoolOptions = {}): PoolConfig {
  if (typeof config !== 'object' || config === null) throw invalid('store.postgres must be an object');
  if (typeof config.url !== 'string' || !/^postgres(ql)?:\/\//.test(config.url)) throw invalid('store.postgres.url must be a postgres:// or postgresql:// URL');
  let params: URLSearchParams;
  try {
    params = new URL(config.url).searchParams;
  } catch {
    throw invalid('store.postgres.url is not a valid URL');
  }
  if (!Number.isSafeInteger(config.poolMax) || config.poolMax < 1) throw invalid('store.postgres.poolMax must be a positive integer');
  const pool: PoolConfig = {
    connectionString: config.url,
    max: config.poolMax,
    idleTimeoutMillis: positiveMs(config.idleTimeoutMs, 'idleTimeoutMs'),
    connectionTimeoutMillis: positiveMs(config.connectTimeoutMs, 'connectTimeoutMs'),
    // Sent in the startup packet: the server enforces it on every statement of every connection.
    statement_timeout: positiveMs(config.statementTimeoutMs, 'statementTimeoutMs'),
    // A URL's own application_name wins (pg reads the URL last); so does its options=.
    application_name: APPLICATION_NAME,
    // Finds a peer that vanished without a FIN (a dead load balancer) between statements.
    keepAlive: true,
  };
  if (config.tls !== undefined) {
    // pg lets the URL's ssl* parameters replace the `ssl` object whole: with both, the CA (or
    // verification itself) could silently be lost. One place only.
    const clash = URL_TLS_PARAMS.find((name) => params.has(name));
    if (clash !== undefined) throw invalid(`store.postgres.tls is set and the URL sets ${clash}: configure TLS in one place`);
    const { ca, cert, key, serverName, verify } = config.tls;
    pool.ssl = {
      rejectUnauthorized: verify,
      ...(ca !== undefined ? { ca } : {}),
      ...(cert !== undefined ? { cert } : {}),
      ...(key !== undefined ? { key } : {}),
      ...(serverName !== undefined ? { servername: serverName } : {}),
    };
  }
  if (options.schema !== undefined) {
    if (typeof options.schema !== 'string' || !SCHEMA_NAME.test(options.schema)) throw invalid('option "schema" must be a lower-case SQL identifier ([a-z_][a-z0-9_]*)');
    if (params.has('options')) throw invalid('option "schema" and the URL\'s options= parameter both set connection options: use one');
    pool.options = `-c search_path=${options.schema}`;
  }
  return pool;
}

// Why the server or the road to it cannot answer, by Node system error code…
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'EADDRNOTAVAIL']);

// …by SQLSTATE (https://www.postgresql.org/docs/current/errcodes-appendix.html), exact code or class…
const SQLSTATES: readonly (readonly [RegExp, string])[] = [
  [/^08/, 'the connection failed'],
  [/^53/, 'the server is out of resources (connections, memory or disk)'],
  [/^57P0[12]$/, 'the server is shutting down'],
  [/^57P03$/, 'the server is not accepting connections yet'],
  [/^57P0[45]$/, 'the server ended the session'],
  [/^57014$/, 'the statement ran past statement_timeout or was cancelled'],
  [/^55P03$/, 'a lock wait timed out'],
  [/^28/, 'the server refused the credentials'],
  [/^3D000$/, 'the database does not exist'],
  [/^25006$/, 'the server is read-only (a standby?)'],
];

// …and by the messages pg and pg-pool raise without a code (their wording, pg 8.23).
const DRIVER_MESSAGES: ReadonlyMap<string, string> = new Map([
  ['timeout expired', 'connecting timed out (connect_timeout)'],
  ['Connection terminated due to connection timeout', 'connecting timed out (connect_timeout)'],
  ['timeout exceeded when trying to connect', 'no connection could be had within connect_timeout (the pool is exhausted or the server slow)'],
  ['Connection terminated unexpectedly', 'the connection was closed by the server or the network'],
  ['Connection terminated', 'the connection was closed'],
  ['Query read timeout', 'no answer within statement_timeout'],
  ['Client has encountered a connection error and is not queryable', 'the connection had failed'],
  ['The server does not support SSL connections', 'TLS is configured but the server does not offer it'],
]);

/** Why `error` means the database cannot answer now, or undefined when it is some other failure. */
export function unavailableReason(error: unknown): string | undefined {
  if (!(error instanceof Error)) return undefined;
  // Connecting to a name with several addresses fails with all their errors; the first says enough.
  if (error instanceof AggregateError && error.errors[0] instanceof Error) return unavailableReason(error.errors[0]);
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (NETWORK_CODES.has(code)) return `cannot reach the server (${code})`;
    if (/^[0-9A-Z]{5}$/.test(code)) {
      const known = SQLSTATES.find(([pattern]) => pattern.test(code));
      if (known !== undefined) return `${known[1]} (SQLSTATE ${code})`;
    }
    if (/CERT|TLS|SSL|SELF_SIGNED|UNABLE_TO_/.test(code)) return `the TLS handshake failed (${code})`;
  }
  const known = DRIVER_MESSAGES.get(error.message);
  return known ?? undefined;
}

/** ERR_STORE_UNAVAILABLE for a connection-level failure; any other error unchanged. */
export function translatePgError(error: unknown): unknown {
  if (StoreError.is(error)) return error;
  if (error instanceof Error && error.message === 'Cannot use a pool after calling end on the pool') return new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  const reason = unavailableReason(error);
  return reason === undefined ? error : new StoreError('ERR_STORE_UNAVAILABLE', `PostgreSQL is unavailable: ${reason}`);
}

export function createPgPool(config: PostgresConfig, options: PgPoolOptions = {}): PgPool {
  const poolConfig = pgPoolConfig(config, options);
  const readTimeoutMs = config.statementTimeoutMs + READ_TIMEOUT_MARGIN_MS;
  const pool = new pg.Pool(poolConfig);
  // An idle connection the server or network closes emits 'error' on the pool; with no listener
  // that would crash the process. The pool has already dropped it and opens a new one on demand.
  pool.on('error', (error) => {
    const translated = translatePgError(error);
    options.onIdleError?.(StoreError.is(translated) ? translated : new StoreError('ERR_STORE_UNAVAILABLE', 'PostgreSQL is unavailable: an idle connection failed'));
  });

  const timed = (text: string, values: readonly unknown[] | undefined): TimedQueryConfig => ({ text, values: values === undefined ? [] : [...values], query_timeout: readTimeoutMs });

  async function checkout(): Promise<{ client: PoolClient; done: (broken: boolean) => void; failure: () => unknown }> {
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      throw translatePgError(error);
    }
    // A checked-out client has no pool listener: the server closing it between two statements
    // would emit an unheard 'error' and crash the process.
    let failed: unknown;
    const onError = (error: Error): void => {
      failed = error;
    };
    client.on('error', onError);
    return {
      client,
      failure: () => failed,
      done: (broken) => {
        client.off('error', onError);
        // A connection whose state is unknown is closed, not handed to the next caller.
        client.release(broken || failed !== undefined);
      },
    };
  }

  return {
    async query<R extends QueryResultRow>(text: string, values?: readonly unknown[]) {
      try {
        return (await pool.query<R>(timed(text, values))).rows;
      } catch (error) {
        throw translatePgError(error);
      }
    },

    async execute(text: string, values?: readonly unknown[]) {
      try {
        return (await pool.query(timed(text, values))).rowCount ?? 0;
      } catch (error) {
        throw translatePgError(error);
      }
    },

    async transaction<T>(work: (query: PgQuery) => Promise<T>, begin = 'BEGIN') {
      const { client, done, failure } = await checkout();
      const query: PgQuery = async <R extends QueryResultRow>(text: string, values?: readonly unknown[]) => (await client.query<R>(timed(text, values))).rows;
      let broken = false;
      try {
        await query(begin);
        const result = await work(query);
        await query('COMMIT');
        return result;
      } catch (error) {
        broken = unavailableReason(error) !== undefined || failure() !== undefined;
        // Over a broken connection ROLLBACK would only wait; the server drops the transaction with it.
        if (!broken) await query('ROLLBACK').catch(() => (broken = true));
        throw translatePgError(error);
      } finally {
        done(broken);
      }
    },

    async *snapshot(statements: readonly string[], batch: number) {
      const { client, done, failure } = await checkout();
      const query: PgQuery = async <R extends QueryResultRow>(text: string, values?: readonly unknown[]) => (await client.query<R>(timed(text, values))).rows;
      let broken = false;
      let finished = false;
      try {
        await query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
        for (const [i, text] of statements.entries()) {
          await query(`DECLARE snapshot_${i} NO SCROLL CURSOR FOR ${text}`);
          for (;;) {
            const rows = await query(`FETCH ${batch} FROM snapshot_${i}`);
            if (rows.length > 0) yield { statement: i, rows };
            if (rows.length < batch) break;
          }
        }
        await query('COMMIT');
        finished = true;
      } catch (error) {
        broken = unavailableReason(error) !== undefined || failure() !== undefined;
        throw translatePgError(error);
      } finally {
        // Also when the reader stopped early (return() on the generator): end the snapshot.
        if (!finished && !broken) await query('ROLLBACK').catch(() => (broken = true));
        done(broken);
      }
    },

    async withClient<T>(work: (client: PoolClient) => Promise<T>) {
      const { client, done, failure } = await checkout();
      let broken = false;
      try {
        return await work(client);
      } catch (error) {
        broken = unavailableReason(error) !== undefined || failure() !== undefined;
        throw translatePgError(error);
      } finally {
        done(broken);
      }
    },

    end: () => pool.end(),
  };
}
