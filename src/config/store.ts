import { resolve } from 'node:path';
import { DURATION_BOUNDS, type DurationBounds } from './bounds.js';
import type { Add, Segment } from './locate.js';
import type { HostPort, PostgresConfig, RedisConfig, RedisTopology, StoreConfig, StoreTlsConfig } from './types.js';

/** The `store:` block as the schema describes it, defaults filled in. */
export type RawStore =
  | { readonly kind: 'sqlite'; readonly path?: string }
  | { readonly kind: 'shared'; readonly migrate: 'on_start' | 'manual'; readonly postgres: RawPostgres; readonly redis: RawRedis };

interface RawClientTls {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly server_name?: string;
  readonly verify: boolean;
}

interface RawPostgres {
  readonly url?: string;
  readonly url_env?: string;
  readonly pool: { readonly max: number; readonly idle_timeout: string };
  readonly connect_timeout: string;
  readonly statement_timeout: string;
  readonly tls?: RawClientTls;
}

interface RawRedis {
  readonly url?: string;
  readonly url_env?: string;
  readonly sentinel?: { readonly master: string; readonly nodes: readonly string[] };
  readonly cluster?: { readonly nodes: readonly string[] };
  readonly key_prefix: string;
  readonly connect_timeout: string;
  readonly command_timeout: string;
  readonly tls?: RawClientTls;
}

export interface StoreCompileContext {
  readonly baseDir: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readFile: (path: string) => string;
}

type Duration = (path: readonly Segment[], text: string, bounds: DurationBounds) => number;

const URL_SCHEMES = { postgres: /^postgres(ql)?:\/\//, redis: /^rediss?:\/\// } as const;

/** `url`, or the environment variable `url_env` names; the value itself never reaches a message. */
function connectionUrl(base: Segment[], raw: { url?: string; url_env?: string }, scheme: keyof typeof URL_SCHEMES, ctx: StoreCompileContext, add: Add): string | undefined {
  if (raw.url !== undefined && raw.url_env !== undefined) {
    add([...base, 'url_env'], 'set url or url_env, not both');
    return undefined;
  }
  if (raw.url !== undefined) return raw.url;
  if (raw.url_env === undefined) return undefined;
  const value = ctx.env[raw.url_env];
  if (value === undefined || value === '') {
    add([...base, 'url_env'], `environment variable ${raw.url_env} is not set`);
    return undefined;
  }
  if (!URL_SCHEMES[scheme].test(value)) {
    add([...base, 'url_env'], `environment variable ${raw.url_env} does not hold a ${scheme} URL`);
    return undefined;
  }
  try {
    new URL(value);
  } catch {
    add([...base, 'url_env'], `environment variable ${raw.url_env} does not hold a valid URL`);
    return undefined;
  }
  return value;
}

function compileClientTls(base: Segment[], raw: RawClientTls | undefined, ctx: StoreCompileContext, add: Add): StoreTlsConfig | undefined {
  if (raw === undefined) return undefined;
  const read = (key: 'ca' | 'cert' | 'key'): string | undefined => {
    const file = raw[key];
    if (file === undefined) return undefined;
    try {
      const text = ctx.readFile(resolve(ctx.baseDir, file));
      if (!text.includes('-----BEGIN ')) add([...base, 'tls', key], `"${file}" is not a PEM file`);
      return text;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      add([...base, 'tls', key], `cannot read "${file}" (${code === 'ENOENT' ? 'no such file' : code})`);
      return undefined;
    }
  };
  const ca = read('ca');
  const cert = read('cert');
  const key = read('key');
  return {
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(raw.server_name !== undefined ? { serverName: raw.server_name } : {}),
    verify: raw.verify,
  };
}

function hostPort(text: string): HostPort {
  const colon = text.lastIndexOf(':');
  const host = text.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  return { host, port: Number(text.slice(colon + 1)) };
}

function compileNodes(path: Segment[], nodes: readonly string[], add: Add): HostPort[] {
  return nodes.map((text, i) => {
    const node = hostPort(text);
    if (!(node.port >= 1 && node.port <= 65535)) add([...path, i], `port of "${text}" must be 1–65535`);
    return node;
  });
}

function compilePostgres(raw: RawPostgres, ctx: StoreCompileContext, add: Add, duration: Duration): PostgresConfig | undefined {
  const base: Segment[] = ['store', 'postgres'];
  const url = connectionUrl(base, raw, 'postgres', ctx, add);
  const tls = compileClientTls(base, raw.tls, ctx, add);
  const config = {
    poolMax: raw.pool.max,
    idleTimeoutMs: duration([...base, 'pool', 'idle_timeout'], raw.pool.idle_timeout, DURATION_BOUNDS['store.postgres.pool.idle_timeout']),
    connectTimeoutMs: duration([...base, 'connect_timeout'], raw.connect_timeout, DURATION_BOUNDS['store.postgres.connect_timeout']),
    statementTimeoutMs: duration([...base, 'statement_timeout'], raw.statement_timeout, DURATION_BOUNDS['store.postgres.statement_timeout']),
    ...(tls !== undefined ? { tls } : {}),
  };
  return url === undefined ? undefined : { url, ...config };
}

function compileRedis(raw: RawRedis, ctx: StoreCompileContext, add: Add, duration: Duration): RedisConfig | undefined {
  const base: Segment[] = ['store', 'redis'];
  const url = connectionUrl(base, raw, 'redis', ctx, add);
  if (raw.sentinel !== undefined && raw.cluster !== undefined) add([...base, 'cluster'], 'set sentinel or cluster, not both');
  let topology: RedisTopology = { mode: 'single' };
  if (raw.sentinel !== undefined) topology = { mode: 'sentinel', master: raw.sentinel.master, nodes: compileNodes([...base, 'sentinel', 'nodes'], raw.sentinel.nodes, add) };
  if (raw.cluster !== undefined) topology = { mode: 'cluster', nodes: compileNodes([...base, 'cluster', 'nodes'], raw.cluster.nodes, add) };
  if (topology.mode === 'single' && url === undefined) {
    if (raw.url_env === undefined) add(base, 'needs url (or url_env), sentinel or cluster');
    return undefined;
  }
  const tls = compileClientTls(base, raw.tls, ctx, add);
  return {
    ...(url !== undefined ? { url } : {}),
    topology,
    keyPrefix: raw.key_prefix,
    connectTimeoutMs: duration([...base, 'connect_timeout'], raw.connect_timeout, DURATION_BOUNDS['store.redis.connect_timeout']),
    commandTimeoutMs: duration([...base, 'command_timeout'], raw.command_timeout, DURATION_BOUNDS['store.redis.command_timeout']),
    ...(tls !== undefined ? { tls } : {}),
  };
}

export function compileStore(raw: RawStore, ctx: StoreCompileContext, add: Add, duration: Duration): StoreConfig | undefined {
  if (raw.kind === 'sqlite') return { kind: 'sqlite', path: raw.path ?? './data/mfa.db' };
  const postgres = compilePostgres(raw.postgres, ctx, add, duration);
  const redis = compileRedis(raw.redis, ctx, add, duration);
  if (postgres === undefined || redis === undefined) return undefined;
  return { kind: 'shared', migrate: raw.migrate, postgres, redis };
}
