import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { parseDocument } from 'yaml';
import { missingBinary, OATHTOOL } from '../support/binaries.js';
import { freePort } from '../support/http.js';
import { REPO, startServe, type ServeProcess } from '../support/serve.js';
import { extractSteps, outputMatches, type Step } from './script.js';

/**
 * The README's walk-through, run as one bash script against the demo configuration
 * (`serve --config config/gateway.yaml --demo`, what `npm start` runs), so it cannot drift from
 * the code: every command runs as written, with nothing set beforehand (`set -u`: a variable the
 * README leaves for the reader to fill in fails the run), and every output it shows is compared
 * with the real one (rules in ./script.ts).
 *
 * The run happens in a temp dir laid out like the repository (dist and node_modules linked, its
 * own config/ and data/), so that `node dist/src/cli/main.js …` works as the README writes it.
 * Only the ports move, so that tests do not collide: the gateway and admin listeners take free
 * ports, the demo backend and the README's mail sink free ones too; in the commands, the demo's
 * `localhost:8080` and mail port become those, and in the outputs the gateway's port is written back.
 *
 * WALKTHROUGH_CAPTURE=FILE writes each step's command and real output to FILE, to refresh the README from.
 */

const CURL = '/usr/bin/curl';
const BASH = '/usr/bin/bash';
const README = join(REPO, 'README.md');
// One TOTP period of waiting (the README waits for the next code) plus the rest of the script.
const SCRIPT_TIMEOUT_MS = 150_000;

const steps = extractSteps(readFileSync(README, 'utf8'));

interface StepResult {
  readonly ran: boolean;
  readonly output: string;
}

/** Everything the run needs that is not the README: the demo ports it names, and where they moved. */
interface Ports {
  readonly readmeGateway: number;
  readonly readmeMail: number;
  readonly mail: number;
}

/**
 * The demo configuration with its listeners on free loopback ports. Returns the ports the README
 * uses (the demo's) and the mail sink's new one. Edited as a YAML document, so a key the demo
 * renames fails here rather than leaving the test on the demo's own ports.
 */
async function writeDemoConfig(path: string): Promise<Ports> {
  const document = parseDocument(readFileSync(join(REPO, 'config', 'gateway.yaml'), 'utf8'));
  const number = (keys: readonly string[]): number => {
    const value: unknown = document.getIn(keys);
    if (typeof value !== 'number') throw new Error(`config/gateway.yaml: ${keys.join('.')} is not a number`);
    return value;
  };
  const readmeGateway = number(['listen', 'port']);
  const readmeMail = number(['mfa', 'email', 'smtp', 'port']);
  const upstream: unknown = document.getIn(['upstreams', 'demo', 'url']);
  if (typeof upstream !== 'string') throw new Error('config/gateway.yaml: upstreams.demo.url is not a string');
  const mail = await freePort();
  const backend = new URL(upstream);
  backend.port = String(await freePort());
  document.setIn(['listen', 'host'], '127.0.0.1');
  document.setIn(['listen', 'port'], 0);
  document.setIn(['admin', 'port'], 0);
  document.setIn(['upstreams', 'demo', 'url'], backend.origin);
  document.setIn(['mfa', 'email', 'smtp', 'port'], mail);
  writeFileSync(path, String(document));
  return { readmeGateway, readmeMail, mail };
}

/** The README's commands as one script; a marker line before each step splits the output again. */
function buildScript(commands: readonly string[]): string {
  const lines = [
    'set -eu -o pipefail',
    'exec 2>&1',
    // The mail sink the README starts in the background must not outlive the run.
    "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT",
  ];
  commands.forEach((command, i) => lines.push(`printf '\\n@@step ${i}@@\\n'`, command));
  lines.push(`printf '\\n@@step ${commands.length}@@\\n'`);
  return `${lines.join('\n')}\n`;
}

function runBash(script: string, cwd: string): Promise<{ readonly output: string; readonly code: number | null; readonly signal: NodeJS.Signals | null }> {
  // Nothing from this environment but PATH: the README must set every variable it uses. Its
  // mktemp files land in the run's dir, removed with it even when a step fails.
  const child = spawn(BASH, ['--noprofile', '--norc', '-c', script], {
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: cwd, TMPDIR: cwd, LANG: 'C.UTF-8' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => (output += chunk));
  child.stderr.on('data', (chunk: string) => (output += chunk));
  const timer = setTimeout(() => {
    // The whole group: bash, and the mail sink it started.
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  }, SCRIPT_TIMEOUT_MS);
  return new Promise((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      resolve({ output, code, signal });
    });
  });
}

/** The output of each step; a step the script never reached (it stopped on an error) did not run. */
function splitOutput(output: string, count: number): StepResult[] {
  const results: StepResult[] = [];
  for (let i = 0; i < count; i++) {
    const begin = output.indexOf(`\n@@step ${i}@@\n`);
    const finish = output.indexOf(`\n@@step ${i + 1}@@\n`);
    if (begin === -1) {
      results.push({ ran: false, output: '' });
      continue;
    }
    const from = begin + `\n@@step ${i}@@\n`.length;
    results.push({ ran: true, output: output.slice(from, finish === -1 ? undefined : finish) });
  }
  return results;
}

const skip = missingBinary(OATHTOOL, 'oathtool') ?? missingBinary(CURL, 'curl') ?? missingBinary(BASH, 'bash');

describe('README walk-through, run as a script against the demo', { skip }, () => {
  let dir = '';
  let served: ServeProcess | undefined;
  let results: StepResult[] = [];
  let run: { readonly output: string; readonly code: number | null; readonly signal: NodeJS.Signals | null } | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mfa-gw-readme-'));
    symlinkSync(join(REPO, 'dist'), join(dir, 'dist'));
    symlinkSync(join(REPO, 'node_modules'), join(dir, 'node_modules'));
    mkdirSync(join(dir, 'config'));
    const ports = await writeDemoConfig(join(dir, 'config', 'gateway.yaml'));
    served = await startServe(['--config', 'config/gateway.yaml', '--demo'], { cwd: dir });
    const gatewayInReadme = new RegExp(`\\blocalhost:${ports.readmeGateway}\\b`, 'g');
    const mailInReadme = new RegExp(`\\b${ports.readmeMail}\\b`, 'g');
    const commands = steps.map((step) => step.command.replace(gatewayInReadme, `localhost:${served!.port}`).replace(mailInReadme, String(ports.mail)));
    run = await runBash(buildScript(commands), dir);
    const gatewayHere = new RegExp(`\\blocalhost:${served.port}\\b`, 'g');
    results = splitOutput(run.output, steps.length).map((result) => ({ ...result, output: result.output.replace(gatewayHere, `localhost:${ports.readmeGateway}`) }));
    // To refresh the README's outputs from a real run: each step's command and what it printed.
    const capture = process.env.WALKTHROUGH_CAPTURE;
    if (capture !== undefined && capture !== '') {
      writeFileSync(capture, steps.map((step, i) => `README.md:${step.line}\n$ ${step.command}\n${results[i]!.output.replace(/\r/g, '')}\n`).join('\n'));
    }
  });

  after(async () => {
    served?.kill();
    if (served !== undefined) await served.exited;
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('finds the walk-through and its steps in README.md', () => {
    // A renamed heading or a changed fence convention must not leave nothing to check.
    assert.ok(steps.length >= 30, `only ${steps.length} steps found in the walk-through`);
  });

  it('runs every step to the end, without an error', () => {
    assert.ok(run !== undefined);
    const stopped = results.findIndex((result) => !result.ran);
    assert.equal(run.code, 0, `bash exited with ${run.code ?? run.signal}${stopped === -1 ? '' : `; the last step that ran is at README.md:${steps[stopped - 1]?.line}`}:\n${run.output.slice(-2000)}`);
    // Inside $(…) an unset variable ends only the substitution, not the script: look for it too.
    assert.doesNotMatch(run.output, /: unbound variable$/m, 'a command uses a variable the README never sets');
  });

  steps.forEach((step: Step, i) => {
    it(`README.md:${step.line}: ${step.command.split('\n')[0]!.slice(0, 90)}`, () => {
      const result = results[i];
      assert.ok(result?.ran === true, 'the script stopped before this step');
      const actual = result.output.replace(/\r/g, '').replace(/\n+$/, '');
      assert.ok(outputMatches(step.expected, actual), `README.md:${step.line} shows:\n${step.expected}\n\nthe run printed:\n${actual}`);
    });
  });
});
