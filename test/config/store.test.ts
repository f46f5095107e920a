import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parsePolicy } from '../../src/config/load.js';
import { HEAD, ROUTE, issuesOf, parse, tempDir } from './support.js';

/** The store block starts on line 10 (HEAD is 8 lines, ROUTE the 9th). */
const shared = (body: string): string => `${HEAD}${ROUTE}store:\n  kind: shared\n${body}`;

describe('store: shared (PostgreSQL + Redis)', () => {
  test('defaults: migrate on start, pool of 10, 5 s connect, 2 s statements, 1 s Redis commands, prefix mfa:', () => {
    const policy = parse(shared('  postgres: { url: "postgres://gw@db/mfa" }\n  redis: { url: "redis://cache:6379/2" }\n'));
    assert.deepEqual(policy.store, {
      kind: 'shared',
      migrate: 'on_start',
      postgres: { url: 'postgres://gw@db/mfa', poolMax: 10, idleTimeoutMs: 30_000, connectTimeoutMs: 5_000, statementTimeoutMs: 2_000 },
      redis: { url: 'redis://cache:6379/2', topology: { mode: 'single' }, keyPrefix: 'mfa:', connectTimeoutMs: 5_000, commandTimeoutMs: 1_000 },
    });
  });

  test('URLs from the environment; sentinel and cluster topologies', () => {
    const env = { PG_URL: 'postgres://gw:pw@db/mfa', REDIS_URL: 'redis://:pw@ignored:1/3' };
    const sentinel = parse(shared('  postgres: { url_env: PG_URL }\n  redis: { url_env: REDIS_URL, sentinel: { master: main, nodes: ["10.0.0.1:26379", "[fd00::2]:26379"] } }\n'), env);
    assert.equal(sentinel.store.kind === 'shared' && sentinel.store.postgres.url, 'postgres://gw:pw@db/mfa');
    assert.deepEqual(sentinel.store.kind === 'shared' && sentinel.store.redis.topology, {
      mode: 'sentinel',
      master: 'main',
      nodes: [
        { host: '10.0.0.1', port: 26379 },
        { host: 'fd00::2', port: 26379 },
      ],
    });
    const cluster = parse(shared('  postgres: { url_env: PG_URL }\n  redis: { cluster: { nodes: ["r1:7000"] } }\n'), env);
    assert.deepEqual(cluster.store.kind === 'shared' && cluster.store.redis, {
      topology: { mode: 'cluster', nodes: [{ host: 'r1', port: 7000 }] },
      keyPrefix: 'mfa:',
      connectTimeoutMs: 5_000,
      commandTimeoutMs: 1_000,
    });
  });

  test('TLS files are read relative to the policy file and must be PEM', () => {
    using temp = tempDir();
    const { dir } = temp;
    writeFileSync(join(dir, 'ca.pem'), '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    writeFileSync(join(dir, 'not.pem'), 'hello');
    const text = shared('  postgres: { url: "postgres://db/x", tls: { ca: ca.pem, server_name: db.internal } }\n  redis: { url: "rediss://r", tls: { ca: not.pem, verify: false } }\n');
    assert.deepEqual(issuesOf(text, { baseDir: dir }), ['t.yaml:13: store.redis.tls.ca: "not.pem" is not a PEM file']);
    const ok = parsePolicy(text.replace('ca: not.pem', 'ca: ca.pem'), 't.yaml', dir, { env: {} });
    assert.deepEqual(ok.store.kind === 'shared' && ok.store.postgres.tls, { ca: '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', serverName: 'db.internal', verify: true });
    assert.deepEqual(issuesOf(shared('  postgres: { url: "postgres://db/x", tls: { cert: c.pem } }\n  redis: { url: "redis://r" }\n'), { baseDir: dir }), [
      't.yaml:12: store.postgres.tls: must have property key when property cert is present',
    ]);
  });

  test('every mistake is named with its line, and a URL or password never appears in a message', () => {
    const env = { PG_URL: 'mysql://u:hunter2@db/x', EMPTY: '' };
    const lines = issuesOf(
      shared(
        '  postgres: { url: "postgres://u:hunter2@db/x", url_env: PG_URL, pool: { max: 0 }, statement_timeout: 5m }\n' +
          '  redis: { sentinel: { master: m, nodes: ["h:99999"] }, cluster: { nodes: ["h:1"] }, key_prefix: "a b" }\n',
      ),
      { env },
    );
    assert.deepEqual(lines, [
      't.yaml:12: store.postgres.pool.max: must be at least 1',
      't.yaml:13: store.redis.key_prefix: must match pattern "^[A-Za-z0-9:_.-]{0,64}$"',
    ]);
    const semantic = issuesOf(
      shared('  postgres: { url: "postgres://u:hunter2@db/x", url_env: PG_URL, statement_timeout: 5m }\n  redis: { sentinel: { master: m, nodes: ["h:99999"] }, cluster: { nodes: ["h:1"] } }\n'),
      { env },
    );
    assert.deepEqual(semantic, [
      't.yaml:12: store.postgres.url_env: set url or url_env, not both',
      't.yaml:12: store.postgres.statement_timeout: must be at most 1m',
      't.yaml:13: store.redis.cluster: set sentinel or cluster, not both',
      't.yaml:13: store.redis.sentinel.nodes[0]: port of "h:99999" must be 1–65535',
    ]);
    assert.deepEqual(issuesOf(shared('  postgres: { url_env: PG_URL }\n  redis: { url_env: EMPTY }\n'), { env }), [
      't.yaml:12: store.postgres.url_env: environment variable PG_URL does not hold a postgres URL',
      't.yaml:13: store.redis.url_env: environment variable EMPTY is not set',
    ]);
    assert.deepEqual(issuesOf(shared('  postgres: { url: "postgres://db/x" }\n  redis: { key_prefix: "gw:" }\n')), [
      't.yaml:13: store.redis: needs url (or url_env), sentinel or cluster',
    ]);
    assert.ok(![...lines, ...semantic].join('\n').includes('hunter2'));
  });
});
