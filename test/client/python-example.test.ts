import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { missingBinary, OATHTOOL } from '../support/binaries.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../support/clock.js';
import { enrollTotpOverHttp } from '../support/enroll.js';
import { startGatewayRig, type GatewayRig } from '../support/gateway.js';
import { REPO } from '../support/serve.js';
import { token } from '../support/tokens.js';

/**
 * examples/python/mfa_client.py, run with python3 against the real gateway: bearer → 401 challenge
 * → a code from the command it is given (oathtool, the secret on its stdin) → 200 and a session →
 * the next path on the session without a code. Its output goes to the test log, to be quoted.
 */

const PYTHON = '/usr/bin/python3';
const EXAMPLE = join(REPO, 'examples/python/mfa_client.py');
const skip = missingBinary(OATHTOOL, 'oathtool') ?? missingBinary(PYTHON, 'python3');

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the example; `stdin` is what its code command reads (the TOTP secret), never an argument. */
function runExample(args: readonly string[], env: NodeJS.ProcessEnv, stdin: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [EXAMPLE, ...args], { env: { PATH: process.env.PATH, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe('examples/python/mfa_client.py against the real gateway', { skip }, () => {
  let rig: GatewayRig;
  let clock: FakeClock;
  before(async () => {
    clock = fakeClock(intoCurrentStep());
    rig = await startGatewayRig(
      `routes:
  - { name: secure, match: { path_prefix: /secure/ }, upstream: app, policy: mfa }
default: deny
`,
      { clock },
    );
  });
  after(() => rig.close());

  test('challenge, code from the command, session reused for the second path; no secret printed', async () => {
    assert.ok(existsSync(EXAMPLE));
    const bearer = await token('alice', { now: clock() });
    const { secret } = await enrollTotpOverHttp(rig.port, bearer, clock);
    const at = Math.floor(clock() / 1000);
    const codeCommand = `${OATHTOOL} --totp=sha1 --base32 -d 6 -s 30s --now=@${at} -`;
    const before = rig.upstream.received.length;
    const run = await runExample(['--base-url', `http://127.0.0.1:${rig.port}`, '--code-command', codeCommand, '/secure/orders/1', '/secure/orders/2'], { MFA_BEARER: bearer }, secret);
    console.log(`# python3 examples/python/mfa_client.py output:\n${run.stdout.replace(/^/gm, '#   ')}`);
    assert.equal(run.stderr, '');
    assert.equal(run.code, 0);
    const expiresAt = at + 43_200;
    const digest = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    assert.equal(
      run.stdout,
      [
        'GET /secure/orders/1 -> 401 mfa_required, asking for a code',
        `GET /secure/orders/1 -> 200, session opened until ${expiresAt}`,
        `GET /secure/orders/1 -> 200: {"ok":true,"url":"/secure/orders/1","bytes":0,"sha256":"${digest}"}`,
        `GET /secure/orders/2 -> 200 on the session, no code: {"ok":true,"url":"/secure/orders/2","bytes":0,"sha256":"${digest}"}`,
        '',
      ].join('\n'),
    );
    assert.equal(rig.upstream.received.length - before, 2, 'each path reached the backend once');
    for (const request of rig.upstream.received.slice(before)) {
      const names = rig.upstream.headerNames(request);
      assert.ok(!names.includes('x-mfa-token') && !names.includes('x-session-token'));
    }
    for (const secretValue of [bearer, secret]) assert.ok(!run.stdout.includes(secretValue));
  });
});
