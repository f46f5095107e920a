import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call, freePort } from '../support/http.js';
import { CLI, REPO, startServe } from '../support/serve.js';

/** The real CLI: exit code, stdout and stderr exactly. */
/** The CLI as a process; `withoutDacOverride`: as root, but bound by file permissions like any user. */
function run(args: readonly string[], options: { readonly withoutDacOverride?: boolean; readonly env?: NodeJS.ProcessEnv } = {}): { status: number | null; stdout: string; stderr: string } {
  const command = options.withoutDacOverride === true ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--inh-caps=-dac_override,-dac_read_search', '--', process.execPath] : [process.execPath];
  const result = spawnSync(command[0]!, [...command.slice(1), CLI, ...args], { cwd: REPO, encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...options.env } });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const usageError = (line: string) => ({ status: 2, stdout: '', stderr: `mfa-gateway: ${line}\n` });
const ROUTE = 'routes:\n  - { name: p, match: { path: /p }, upstream: app, policy: public }\n  - { match: { path: /q }, upstream: app, policy: public }\ndefault: deny\n';

describe('cli: usage mistakes are one line on stderr and exit 2', () => {
  test('an unknown option, an option without its value, a value for a switch', () => {
    assert.deepEqual(run(['check', '--confg', 'config/gateway.yaml']), usageError('unknown option --confg; mfa-gateway --help lists the options'));
    assert.deepEqual(run(['check', '--config']), usageError('option --config needs a value'));
    assert.deepEqual(run(['check', '-c']), usageError('option --config needs a value'));
    assert.deepEqual(run(['serve', '--demo=yes']), usageError('option --demo takes no value'));
  });

  test('no command, an unknown command, an argument a command does not take, an unknown action', () => {
    assert.deepEqual(run([]), usageError('no command given; mfa-gateway --help lists the commands'));
    assert.deepEqual(run(['chek']), usageError('unknown command "chek"; mfa-gateway --help lists the commands'));
    assert.deepEqual(run(['check', 'config/gateway.yaml']), usageError('check takes no argument "config/gateway.yaml"; mfa-gateway --help lists the commands'));
    assert.deepEqual(run(['keys', 'list']), usageError('usage: keys init [--file PATH] | status | rotate | rewrap'));
    assert.deepEqual(run(['factors', 'delete', '--user', 'u']), usageError('usage: factors enroll|list|remove|revoke-sessions|invite --user SUBJECT'));
    assert.deepEqual(run(['factors', 'list']), usageError('factors needs --user SUBJECT'));
    assert.deepEqual(run(['factors', 'remove', '--user', 'u']), usageError('factors remove needs --id FACTOR_ID'));
    assert.deepEqual(run(['explain', 'GET']), usageError('explain needs METHOD URL, e.g. explain GET http://localhost/orders/1'));
    assert.deepEqual(run(['dev-token']), usageError('dev-token needs --sub SUBJECT'));
    assert.deepEqual(run(['dev-token', '--sub', 'a', '--ttl', 'soon']), usageError('--ttl: not a duration: soon'));
  });

  test('--help and help print the usage on stdout and exit 0', () => {
    for (const args of [['--help'], ['-h'], ['help'], ['check', '--help']]) {
      const result = run(args);
      assert.equal(result.status, 0, args.join(' '));
      assert.equal(result.stderr, '');
      assert.match(result.stdout, /^usage: mfa-gateway <command> \[options\]\n/);
      assert.match(result.stdout, /^ {2}keys init \[--file PATH\] /m);
      assert.match(result.stdout, /^ {2}healthcheck --config F /m);
      assert.match(result.stdout, /^exit codes: 0 done, 1 the operation failed, 2 the command line was wrong/m);
    }
  });
});

describe('cli: operations that change nothing fail; JSON is snake_case', () => {
  let ws: Workspace;
  before(() => {
    ws = createWorkspace();
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:9') + ROUTE);
  });
  after(() => ws.remove());

  test('factors remove of an unknown id exits 1 on stderr; factors list prints the API fields of each factor', () => {
    assert.deepEqual(run(['factors', 'remove', '--user', 'u', '--id', 'nope', '--config', ws.configPath]), { status: 1, stdout: '', stderr: 'mfa-gateway: u has no factor nope; nothing was removed\n' });
    const enrolled = run(['factors', 'enroll', '--user', 'u', '--type', 'hotp', '--secret', 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP', '--counter', '0', '--label', 'Token', '--config', ws.configPath]);
    assert.equal(enrolled.status, 0, enrolled.stderr);
    const listed = run(['factors', 'list', '--user', 'u', '--config', ws.configPath]);
    assert.equal(listed.status, 0, listed.stderr);
    const lines = listed.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 1, listed.stdout);
    const factor = JSON.parse(lines[0]!) as Record<string, unknown>;
    assert.deepEqual(Object.keys(factor), ['id', 'type', 'status', 'label', 'algorithm', 'digits', 'created_at', 'confirmed_at']);
    assert.deepEqual([factor.type, factor.status, factor.label, factor.algorithm, factor.digits], ['hotp', 'active', 'Token', 'SHA1', 6]);
    assert.equal(factor.created_at, factor.confirmed_at);
    const removed = run(['factors', 'remove', '--user', 'u', '--id', String(factor.id), '--config', ws.configPath]);
    assert.equal(removed.status, 0, removed.stderr);
    // The audit trail of the removal is logged as JSON lines on stdout beside the answer.
    const answer = removed.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('{"level":'));
    assert.deepEqual(answer, [`removed factor ${String(factor.id)} of u`]);
    assert.deepEqual(run(['factors', 'list', '--user', 'u', '--config', ws.configPath]), { status: 0, stdout: 'u has no factors\n', stderr: '' });
  });

  test('routes are numbered from 1 in loader errors, check, explain and the default names the metrics use', async () => {
    const broken = createWorkspace();
    try {
      broken.writePolicy(policyHead(broken, 'http://127.0.0.1:9') + 'routes:\n  - { name: p, match: { path: /p }, upstream: app, policy: public }\n  - { match: { path_regex: "/(?=x)" }, upstream: app, policy: public }\n');
      const refused = run(['check', '--config', broken.configPath]);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /^mfa-gateway: \S+gateway\.yaml:\d+: route 2 \(routes\[1\]\)\.match\.path_regex: lookahead/);
    } finally {
      broken.remove();
    }
    const checked = run(['check', '--config', ws.configPath]);
    assert.match(checked.stdout, /^2 {2}route_2 /m);
    const explained = run(['explain', '--config', ws.configPath, 'GET', 'http://localhost/q']);
    assert.match(explained.stdout, /^rule: {4}#2 route_2 \(line \d+\)$/m);
    const gateway = await startServe(['--config', ws.configPath]);
    try {
      await call(gateway.port, 'GET', '/q');
      const metrics = await call(gateway.adminPort, 'GET', '/metrics');
      assert.match(metrics.text, /^mfa_gateway_requests_total\{route="route_2",policy="public",status="502"\} 1$/m);
    } finally {
      gateway.kill();
    }
  });
});

describe('cli: keys init', () => {
  let ws: Workspace;
  before(() => {
    ws = createWorkspace();
  });
  after(() => ws.remove());

  test('every command that needs a key and finds none names keys init and docs/keys.md', () => {
    const keyFile = join(ws.dir, 'fresh', 'keys');
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:9').replace(`keys: { file: ${ws.keyFile} }`, `keys: { file: ${keyFile} }`) + ROUTE);
    const missing = `key file ${keyFile} does not exist; the gateway does not start without an encryption key: create one with \`mfa-gateway keys init --file ${keyFile}\` (see docs/keys.md)`;
    for (const args of [['serve'], ['keys', 'status'], ['keys', 'rewrap'], ['factors', 'enroll', '--user', 'u']]) {
      assert.deepEqual(run([...args, '--config', ws.configPath]), { status: 1, stdout: '', stderr: `mfa-gateway: ${missing}\n` }, args.join(' '));
    }
    assert.deepEqual(run(['keys', 'rotate', '--config', ws.configPath]), {
      status: 1,
      stdout: '',
      stderr: `mfa-gateway: key file ${keyFile} does not exist; create one with \`mfa-gateway keys init --file ${keyFile}\` (see docs/keys.md)\n`,
    });
    assert.equal(existsSync(keyFile), false, 'none of them created it');
  });

  test('writes a 0600 file with one primary key that serve and keys status use, and never overwrites it', async () => {
    const keyFile = join(ws.dir, 'made', 'keys');
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:9').replace(`keys: { file: ${ws.keyFile} }`, `keys: { file: ${keyFile} }`) + ROUTE);
    const made = run(['keys', 'init', '--config', ws.configPath]);
    assert.equal(made.status, 0, made.stderr);
    const kid = /primary key (k\d{8})/.exec(made.stdout)?.[1];
    assert.equal(made.stdout, `created key file ${keyFile} (mode 0600) with primary key ${kid}; keep it secret and back it up: without it the stored secrets cannot be opened\n`);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(ws.dir, 'made')).mode & 0o777, 0o700);
    const text = readFileSync(keyFile, 'utf8');
    const keyLines = text.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    assert.equal(keyLines.length, 1);
    assert.match(keyLines[0]!, new RegExp(`^${kid} [A-Za-z0-9+/]{43}= \\d{4}-\\d{2}-\\d{2} primary$`));

    const status = run(['keys', 'status', '--config', ws.configPath]);
    assert.equal(status.status, 0, status.stderr);
    assert.match(status.stdout, new RegExp(`^\\* ${kid} +created \\d{4}-\\d{2}-\\d{2} {2}age 0d\\n$`));
    const gateway = await startServe(['--config', ws.configPath]);
    gateway.kill();

    const refusal = `mfa-gateway: key file ${keyFile} already exists; it is never overwritten (its keys open the stored secrets): use \`mfa-gateway keys rotate\` to add a key\n`;
    assert.deepEqual(run(['keys', 'init', '--config', ws.configPath]), { status: 1, stdout: '', stderr: refusal });
    assert.deepEqual(run(['keys', 'init', '--file', keyFile]), { status: 1, stdout: '', stderr: refusal });
    assert.equal(readFileSync(keyFile, 'utf8'), text, 'the file is unchanged');
  });

  test('--file needs no policy; without it, a policy with no keys.file is a usage mistake', () => {
    const keyFile = join(ws.dir, 'standalone');
    const made = run(['keys', 'init', '--file', keyFile, '--config', join(ws.dir, 'no-such-policy.yaml')]);
    assert.equal(made.status, 0, made.stderr);
    assert.equal(statSync(keyFile).mode & 0o777, 0o600);
    const envOnly = join(ws.dir, 'env-keys.yaml');
    writeFileSync(envOnly, policyHead(ws, 'http://127.0.0.1:9').replace(`keys: { file: ${ws.keyFile} }`, 'keys: { env: SOME_KEYS }') + ROUTE);
    assert.deepEqual(run(['keys', 'init', '--config', envOnly]), usageError(`keys init needs --file PATH (${envOnly} sets no keys.file)`));
    assert.deepEqual(run(['keys', 'init', 'extra', '--file', keyFile]), usageError('keys init takes no argument "extra"; mfa-gateway --help lists the commands'));
  });
});

describe('cli: healthcheck', () => {
  let ws: Workspace;
  before(() => {
    ws = createWorkspace();
  });
  after(() => ws.remove());

  test('exit 0 while the admin listener answers /healthz, 1 with one line once it does not', async () => {
    const adminPort = await freePort();
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:9').replace('admin: { host: 127.0.0.1, port: 0 }', `admin: { host: 0.0.0.0, port: ${adminPort} }`) + ROUTE);
    const gateway = await startServe(['--config', ws.configPath]);
    try {
      const exposed = await gateway.waitFor((event) => event.event === 'admin_exposed');
      assert.equal(exposed.level, 40);
      assert.equal(exposed.msg, 'the admin listener is bound to 0.0.0.0, beyond loopback: /metrics, /healthz and /readyz answer anyone who reaches it (the admin API still needs the admin token); firewall it to the scraper');
      assert.deepEqual(run(['healthcheck', '--config', ws.configPath]), { status: 0, stdout: `http://127.0.0.1:${adminPort}/healthz: 200 {"status":"ok"}\n`, stderr: '' });
      // MFA_GATEWAY_CONFIG stands for --config (the container's HEALTHCHECK passes none).
      assert.equal(run(['healthcheck'], { env: { MFA_GATEWAY_CONFIG: ws.configPath } }).status, 0);
    } finally {
      gateway.child.kill('SIGTERM');
      await gateway.exited;
    }
    assert.deepEqual(run(['healthcheck', '--config', ws.configPath]), { status: 1, stdout: '', stderr: `mfa-gateway: healthcheck: http://127.0.0.1:${adminPort}/healthz: unreachable (ECONNREFUSED)\n` });
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:9') + ROUTE);
    assert.deepEqual(run(['healthcheck', '--config', ws.configPath]), {
      status: 1,
      stdout: '',
      stderr: 'mfa-gateway: healthcheck: admin.port is 0 (a port chosen at start): set a fixed admin port for the healthcheck to reach\n',
    });
  });
});

describe('cli: a data directory the running user may not write', () => {
  let ws: Workspace;
  before(() => {
    ws = createWorkspace();
  });
  after(() => {
    chmodSync(join(ws.dir, 'volume'), 0o755);
    ws.remove();
  });

  test('names the path, the uid and the fix, exit 1, no stack trace', () => {
    // As root (a container's build step, this test machine) permissions do not bind: the CLI runs
    // without CAP_DAC_OVERRIDE (setpriv), on a volume owned by uid 1000, the image's user. Running it
    // as uid 1000 instead would need the checkout readable by that user, which a fresh clone in a
    // 0700 temporary directory is not. Not root: the directory is made read-only for ourselves.
    const asRoot = process.getuid?.() === 0;
    const uid = process.getuid!();
    const gid = process.getgid!();
    const volume = join(ws.dir, 'volume');
    mkdirSync(volume, { mode: 0o755 });
    if (asRoot) chownSync(volume, 1000, 1000);
    else chmodSync(volume, 0o555);
    ws.writePolicy(policyHead(ws, 'http://127.0.0.1:9').replace(`path: ${join(ws.dir, 'mfa.db')}`, `path: ${join(volume, 'mfa.db')}`).replace(`keys: { file: ${ws.keyFile} }`, `keys: { file: ${join(volume, 'keys')} }`) + ROUTE);
    chmodSync(ws.configPath, 0o644);
    const as = { withoutDacOverride: asRoot };
    const fix = `uid ${uid} may not write ${volume}; make it theirs (chown -R ${uid}:${gid} ${volume}, as root or on the volume's directory on the host) or run the container with --user set to the volume's owner`;
    assert.deepEqual(run(['keys', 'init', '--config', ws.configPath], as), { status: 1, stdout: '', stderr: `mfa-gateway: cannot create key file ${join(volume, 'keys')} (EACCES): ${fix}\n` });
    assert.deepEqual(run(['factors', 'list', '--user', 'u', '--config', ws.configPath], as), { status: 1, stdout: '', stderr: `mfa-gateway: EACCES: permission denied, open '${join(volume, 'mfa.db')}': ${fix}\n` });
    rmSync(join(volume, 'keys'), { force: true });
  });
});
