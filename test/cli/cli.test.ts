import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createWorkspace, policyHead } from '../support/fixture.js';
import { call } from '../support/http.js';
import { token } from '../support/tokens.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../../', import.meta.url));

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('cli', () => {
  test('check prints the route table of the shipped policy and exits 0', () => {
    const result = run(['check', '--config', 'config/gateway.yaml']);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /config\/gateway\.yaml: ok, \d+ routes/);
    assert.match(result.stdout, /default: deny/);
  });

  test('check warns on a shadowed rule', () => {
    const ws = createWorkspace();
    try {
      ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + `routes:
  - { name: all-orders, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: read-orders, match: { path_prefix: /orders/, methods: [GET] }, upstream: app, policy: bearer }
default: deny
`);
      const result = run(['check', '--config', ws.configPath]);
      assert.equal(result.status, 0, result.stderr);
      assert.match(result.stdout, /warning: route 2 \(read-orders\) is shadowed by route 1 \(all-orders\)/);
    } finally {
      ws.remove();
    }
  });

  test('check warns when a deny rule sits below a broader weaker rule; check --strict fails on it', () => {
    const ws = createWorkspace();
    try {
      ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + `routes:
  - { name: api, match: { path_prefix: /api/ }, upstream: app, policy: bearer }
  - { name: api-admin, match: { path_prefix: /api/admin/ }, policy: deny }
default: deny
`);
      const warning = /^warning: route 2 \(api-admin, deny\) comes after the weaker route 1 \(api, bearer\), which decides every request it names first; move it above$/m;
      const loose = run(['check', '--config', ws.configPath]);
      assert.equal(loose.status, 0, loose.stderr);
      assert.match(loose.stdout, warning);
      const strict = run(['check', '--strict', '--config', ws.configPath]);
      assert.equal(strict.status, 1);
      assert.match(strict.stdout, warning);
      assert.equal(strict.stderr, 'mfa-gateway: check --strict: 1 stricter rule below a weaker one (see the warnings above)\n');
      assert.equal(run(['check', '--strict', '--config', 'config/gateway.yaml']).status, 0, 'the shipped policy passes --strict');
    } finally {
      ws.remove();
    }
  });

  test('check names the NTP server the clock is checked against', () => {
    const ws = createWorkspace();
    try {
      ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + 'clock: { ntp_server: "[2001:db8::1]", interval: 1h }\nroutes:\n  - { name: p, match: { path: /p }, upstream: app, policy: public }\ndefault: deny\n');
      const result = run(['check', '--config', ws.configPath]);
      assert.equal(result.status, 0, result.stderr);
      assert.equal(result.stdout.split('\n')[1], 'clock: NTP server [2001:db8::1]:123, asked every 1h, 2s to answer');
    } finally {
      ws.remove();
    }
  });

  test('check on a broken file exits non-zero naming the line', () => {
    const ws = createWorkspace();
    try {
      ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + `routes:
  - { name: r, match: { path_prefix: /x/ }, upstream: nowhere, policy: public }
default: deny
`);
      const result = run(['check', '--config', ws.configPath]);
      assert.equal(result.status, 1);
      assert.match(result.stderr, /gateway\.yaml:1\d: .*nowhere/);
    } finally {
      ws.remove();
    }
  });

  test('explain names the rule and policy, and refuses ambiguous URLs as the server would', () => {
    const ok = run(['explain', '--config', 'config/gateway.yaml', 'POST', 'http://localhost:8080/payments/42']);
    assert.equal(ok.status, 0, ok.stderr);
    assert.match(ok.stdout, /policy: {2}step_up max_age=5m/);
    const ambiguous = run(['explain', '--config', 'config/gateway.yaml', 'GET', 'http://localhost:8080/public/../admin/x']);
    assert.match(ambiguous.stdout, /rejected before routing: 400 invalid_request/);
    const vault = run(['explain', '--config', 'config/gateway.yaml', 'GET', 'http://localhost:8080/vault/1']);
    assert.match(vault.stdout, /^needs: {3}valid bearer JWT \+ second factor by webauthn not older than 5m \(max_age=300s\)$/m);
    const none = run(['explain', '--config', 'config/gateway.yaml', 'GET', 'http://localhost:8080/unknown']);
    assert.match(none.stdout, /default deny \(404 route_not_found\)/);
  });

  test('explain shows the normalised path it matches on, and refuses double encodings', () => {
    const escaped = run(['explain', '--config', 'config/gateway.yaml', 'GET', 'http://localhost:8080/%6Frders/%7e1']);
    assert.equal(escaped.status, 0, escaped.stderr);
    assert.match(escaped.stdout, /^request: GET host=localhost:8080 path=\/orders\/~1$/m);
    assert.match(escaped.stdout, /^rule: {4}#3 orders-read/m);
    const doubled = run(['explain', '--config', 'config/gateway.yaml', 'GET', 'http://localhost:8080/orders/%252e%252e/x']);
    assert.match(doubled.stdout, /rejected before routing: 400 invalid_request \(the path contains a double-encoded/);
  });

  test('serve with a bad policy exits non-zero and never listens', () => {
    const ws = createWorkspace();
    try {
      ws.writePolicy('listen: { port: 0\n');
      const result = run(['serve', '--config', ws.configPath]);
      assert.notEqual(result.status, 0);
      assert.match(result.stderr, /gateway\.yaml/);
    } finally {
      ws.remove();
    }
  });

  test('serve with the admin port taken prints why and exits 1 instead of proxying without an admin listener', async () => {
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const busy = (squatter.address() as AddressInfo).port;
    const ws = createWorkspace();
    try {
      ws.writePolicy(policyHead(ws, 'http://127.0.0.1:9').replace('admin: { host: 127.0.0.1, port: 0 }', `admin: { host: 127.0.0.1, port: ${busy} }`) + 'routes:\n  - { match: { path: /x }, upstream: app, policy: public }\n');
      const result = run(['serve', '--config', ws.configPath]);
      assert.equal(result.status, 1, `exit status (stderr: ${result.stderr})`);
      assert.match(result.stderr, new RegExp(`^mfa-gateway: cannot listen: listen EADDRINUSE: address already in use 127\\.0\\.0\\.1:${busy}$`, 'm'));
      assert.doesNotMatch(result.stdout, /mfa-gateway ready/);
    } finally {
      squatter.close();
      ws.remove();
    }
  });

  test('SIGTERM drains: the in-flight request completes, then the process exits 0', async () => {
    const slow = createServer((_req, res) => setTimeout(() => res.end('slow done'), 600));
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    const ws = createWorkspace();
    const upstreamUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    ws.writePolicy(
      policyHead(ws, upstreamUrl).replace('port: 0 }\nadmin', 'port: 0 }\nadmin') +
        'routes:\n  - { name: slow, match: { path: /slow }, upstream: app, policy: bearer }\ndefault: deny\n',
    );
    const child = spawn(process.execPath, [CLI, 'serve', '--config', ws.configPath], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const port = await new Promise<number>((resolve, reject) => {
        let log = '';
        child.stdout.on('data', (chunk: Buffer) => {
          log += chunk.toString();
          const match = /"address":"127\.0\.0\.1:(\d+)"/.exec(log);
          if (match) resolve(Number(match[1]));
        });
        child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
      });
      const jwt = await token('dave');
      const inFlight = call(port, 'GET', '/slow', { authorization: `Bearer ${jwt}` });
      await new Promise((resolve) => setTimeout(resolve, 150));
      child.kill('SIGTERM');
      const reply = await inFlight;
      assert.equal(reply.status, 200);
      assert.equal(reply.text, 'slow done');
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
      slow.close();
      ws.remove();
    }
  });

  test('promtool accepts the metrics exposition', async (t) => {
    const promtool = spawnSync('promtool', ['--version']);
    if (promtool.error !== undefined) {
      if (process.env.CI === 'true') assert.fail('promtool is required under CI (apt-get install prometheus)');
      t.skip('promtool not installed (Debian package prometheus)');
      return;
    }
    const { startGateway } = await import('../../src/server/gateway.js');
    const { createLogger } = await import('../../src/log/logger.js');
    const ws = createWorkspace();
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + 'routes:\n  - { name: p, match: { path: /p }, upstream: app, policy: public }\ndefault: deny\n');
    const gateway = await startGateway({ configPath: ws.configPath, logger: createLogger({ level: 'silent' }), watch: false });
    try {
      await call(gateway.address.port, 'GET', '/p');
      await call(gateway.address.port, 'GET', '/q');
      const metrics = await call(gateway.adminAddress!.port, 'GET', '/metrics');
      const output = execFileSync('promtool', ['check', 'metrics'], { input: metrics.text, encoding: 'utf8' });
      assert.equal(output.trim(), '');
    } finally {
      await gateway.stop();
      ws.remove();
    }
  });
});
