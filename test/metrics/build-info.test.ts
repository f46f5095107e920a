import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '../../src/log/logger.js';
import { readBuildInfo } from '../../src/metrics/build-info.js';
import { startGateway } from '../../src/server/gateway.js';
import { createWorkspace, policyHead } from '../support/fixture.js';
import { call } from '../support/http.js';
import { seriesOf } from '../support/metrics.js';
import { REPO, startServe } from '../support/serve.js';

/** What package.json says, read here rather than through the code under test. */
const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
const NODE = process.versions.node;
const ROUTES = 'routes:\n  - { name: p, match: { path: /p }, upstream: app, policy: public }\ndefault: deny\n';

describe('mfa_gateway_build_info', () => {
  test('one gateway without MFA_GATEWAY_COMMIT: version and node, commit unknown', async () => {
    // Whatever the machine running the tests has set.
    delete process.env.MFA_GATEWAY_COMMIT;
    const ws = createWorkspace();
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + ROUTES);
    const gateway = await startGateway({ configPath: ws.configPath, logger: createLogger({ level: 'silent' }), watch: false });
    try {
      const text = (await call(gateway.adminAddress!.port, 'GET', '/metrics')).text;
      assert.deepEqual(seriesOf(text, 'mfa_gateway_build_info'), [`mfa_gateway_build_info{version="${VERSION}",node="${NODE}",commit="unknown"} 1`]);
    } finally {
      await gateway.stop();
      ws.remove();
    }
  });

  test('serve --workers 2 with the commit the image build set: one series, value 1, not one per worker', async () => {
    const ws = createWorkspace();
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + ROUTES);
    const commit = '0123456789abcdef0123456789abcdef01234567';
    const served = await startServe(['--config', ws.configPath, '--workers', '2'], { env: { MFA_GATEWAY_COMMIT: commit } });
    try {
      const text = (await call(served.adminPort, 'GET', '/metrics')).text;
      assert.deepEqual(seriesOf(text, 'mfa_gateway_build_info'), [`mfa_gateway_build_info{version="${VERSION}",node="${NODE}",commit="${commit}"} 1`]);
    } finally {
      served.child.kill('SIGTERM');
      await served.exited;
      ws.remove();
    }
  });

  test('a commit label is a hex hash or unknown, whatever the environment holds', () => {
    const commitOf = (value: string | undefined) => readBuildInfo(value === undefined ? {} : { MFA_GATEWAY_COMMIT: value }).commit;
    assert.equal(commitOf(undefined), 'unknown');
    assert.equal(commitOf(''), 'unknown');
    assert.equal(commitOf('ABCDEF1'), 'abcdef1');
    assert.equal(commitOf(' 0123abc\n'), '0123abc');
    assert.equal(commitOf('abc123'), 'unknown', 'shorter than git --short');
    assert.equal(commitOf('0'.repeat(41)), 'unknown');
    assert.equal(commitOf('v1.2.3'), 'unknown');
    assert.equal(commitOf('deadbeef"} 1\nmfa_gateway_fake 1'), 'unknown');
    assert.equal(readBuildInfo({}).version, VERSION);
  });
});
