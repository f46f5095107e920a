import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { RequestConfigError } from '../../src/request/errors.js';
import { publicServerOptions } from '../../src/request/server-options.js';

test('defaults: strict parser, duplicates kept apart, Host required, bounded timeouts', () => {
  assert.deepEqual(publicServerOptions({ maxHeaderBytes: 16384 }), {
    maxHeaderSize: 16384,
    insecureHTTPParser: false,
    joinDuplicateHeaders: false,
    requireHostHeader: true,
    headersTimeout: 10_000,
    requestTimeout: 60_000,
    keepAliveTimeout: 65_000,
    connectionsCheckingInterval: 1000,
    noDelay: true,
  });
});

test('overrides are applied and accepted by node:http', () => {
  const options = publicServerOptions({ maxHeaderBytes: 4096, headersTimeoutMs: 200, requestTimeoutMs: 1000, keepAliveTimeoutMs: 3000 });
  assert.equal(options.connectionsCheckingInterval, 50);
  const server = createServer(options);
  assert.deepEqual([server.headersTimeout, server.requestTimeout, server.keepAliveTimeout], [200, 1000, 3000]);
  server.close();
});

test('bad limits are refused at creation, naming the option', () => {
  const cases: ReadonlyArray<readonly [Parameters<typeof publicServerOptions>[0], string]> = [
    [{ maxHeaderBytes: 100 }, 'limits.maxHeaderBytes'],
    [{ maxHeaderBytes: 2 * 1024 * 1024 }, 'limits.maxHeaderBytes'],
    [{ maxHeaderBytes: Number.NaN }, 'limits.maxHeaderBytes'],
    [{ maxHeaderBytes: 16384.5 }, 'limits.maxHeaderBytes'],
    [{ maxHeaderBytes: 16384, headersTimeoutMs: 0 }, 'limits.headersTimeoutMs'],
    [{ maxHeaderBytes: 16384, requestTimeoutMs: -1 }, 'limits.requestTimeoutMs'],
    [{ maxHeaderBytes: 16384, keepAliveTimeoutMs: Number.POSITIVE_INFINITY }, 'limits.keepAliveTimeoutMs'],
    [{ maxHeaderBytes: 16384, headersTimeoutMs: 5000, requestTimeoutMs: 1000 }, 'limits.headersTimeoutMs'],
  ];
  for (const [limits, option] of cases) {
    assert.throws(
      () => publicServerOptions(limits),
      (error: unknown) => RequestConfigError.is(error) && error.option === option && error.code === 'ERR_REQUEST_INVALID_OPTION',
      option,
    );
  }
});
