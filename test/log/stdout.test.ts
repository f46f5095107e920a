import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ATOMIC_WRITE_BYTES, TurnBatchedLines } from '../../src/log/stdout.js';

const LOGGER_MODULE = fileURLToPath(new URL('../../src/log/logger.js', import.meta.url));

function recorder(): { chunks: string[]; lines: TurnBatchedLines; runTurnEnd: () => void } {
  const chunks: string[] = [];
  let pendingTask: (() => void) | undefined;
  const lines = new TurnBatchedLines({ write: (chunk) => chunks.push(chunk) }, (task) => {
    assert.equal(pendingTask, undefined, 'a second flush was scheduled in the same turn');
    pendingTask = task;
  });
  const runTurnEnd = (): void => {
    const task = pendingTask;
    pendingTask = undefined;
    task?.();
  };
  return { chunks, lines, runTurnEnd };
}

test('the lines of one turn are written together when the turn ends, in order', () => {
  const { chunks, lines, runTurnEnd } = recorder();
  lines.write('{"a":1}\n');
  lines.write('{"b":2}\n');
  lines.write('{"c":3}\n');
  assert.deepEqual(chunks, []);
  runTurnEnd();
  assert.deepEqual(chunks, ['{"a":1}\n{"b":2}\n{"c":3}\n']);
  lines.write('{"d":4}\n');
  runTurnEnd();
  assert.deepEqual(chunks, ['{"a":1}\n{"b":2}\n{"c":3}\n', '{"d":4}\n']);
  runTurnEnd();
  assert.equal(chunks.length, 2, 'an empty turn writes nothing');
});

test('chunks hold whole lines and at most ATOMIC_WRITE_BYTES, counted in bytes; a longer line goes alone', () => {
  const { chunks, lines, runTurnEnd } = recorder();
  // 1,000 bytes each, of which 'é' is two: four fit in 4,096, a fifth does not.
  const line = (n: number): string => `${String(n).padStart(4, '0')}${'é'.repeat(100)}${'x'.repeat(795)}\n`;
  assert.equal(Buffer.byteLength(line(0)), 1000);
  for (let i = 0; i < 10; i++) lines.write(line(i));
  const long = `${'y'.repeat(ATOMIC_WRITE_BYTES + 10)}\n`;
  lines.write(long);
  lines.write(line(10));
  runTurnEnd();
  assert.deepEqual(
    chunks.map((c) => Buffer.byteLength(c)),
    [4000, 4000, 2000, ATOMIC_WRITE_BYTES + 11, 1000],
  );
  assert.equal(chunks.join(''), [...Array.from({ length: 10 }, (_, i) => line(i)), long, line(10)].join(''));
});

function scratchDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-log-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Writes `body` as an ES module that has `createLogger` in scope; its path. */
function loggerModule(dir: string, name: string, body: string): string {
  const script = join(dir, `${name}.mjs`);
  writeFileSync(script, `const { createLogger } = await import(${JSON.stringify(LOGGER_MODULE)});\n${body}`);
  return script;
}

/**
 * Runs a command with its stdout on a pipe to this process: collected, closed at once
 * (`closeStdout`), or read a chunk per millisecond (`slowReader`). Its stdout, stderr and exit code.
 */
function run(command: string, args: readonly string[], options: { closeStdout?: boolean; slowReader?: boolean } = {}): Promise<{ stdout: string; stderr: string; code: number | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LOG_LEVEL: 'info' } });
    let stdout = '';
    let stderr = '';
    if (options.closeStdout === true) child.stdout.destroy();
    else
      child.stdout.on('data', (d: Buffer) => {
        stdout += d.toString('utf8');
        if (options.slowReader !== true) return;
        child.stdout.pause();
        setTimeout(() => child.stdout.resume(), 1);
      });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => resolve({ stdout, stderr, code }));
  });
}

test('a process that exits in the turn it logged still writes those lines; the main and audit loggers share one ordered stream', async (t) => {
  const script = loggerModule(
    scratchDir(t),
    'exit-now',
    `const main = createLogger();
const audit = createLogger({ name: 'audit' });
main.info({ event: 'first' }, 'one');
audit.info({ event: 'second', authorization: 'Bearer secret-token' }, 'two');
main.warn({ event: 'third' }, 'three');
process.exit(0);`,
  );
  const { stdout, stderr, code } = await run(process.execPath, [script]);
  assert.equal(stderr, '');
  assert.equal(code, 0);
  const lines = stdout.split('\n');
  assert.equal(lines.pop(), '', 'stdout ends with a whole line');
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.deepEqual(
    parsed.map((l) => [l.name, l.event, l.msg]),
    [
      ['mfa-gateway', 'first', 'one'],
      ['audit', 'second', 'two'],
      ['mfa-gateway', 'third', 'three'],
    ],
  );
  assert.equal(parsed[1]!.authorization, '[redacted]');
  assert.doesNotMatch(stdout, /secret-token/);
});

test('two processes logging hard into one pipe never split each other\'s lines', async (t) => {
  const dir = scratchDir(t);
  // Each writes 3,000 lines of about 600 bytes over 75 turns (24 KB a turn), as two cluster
  // workers share the primary's stdout.
  const writer = loggerModule(
    dir,
    'writer',
    `const logger = createLogger({ name: process.argv[2] });
const pad = 'p'.repeat(520);
let turn = 0;
const step = () => {
  for (let i = 0; i < 40; i++) logger.info({ who: process.argv[2], n: turn * 40 + i, pad }, 'line');
  if (++turn < 75) setImmediate(step);
};
step();`,
  );
  const both = join(dir, 'both.mjs');
  writeFileSync(
    both,
    `import { spawn } from 'node:child_process';
const run = (who) => new Promise((resolve) => spawn(process.execPath, [${JSON.stringify(writer)}, who], { stdio: ['ignore', 'inherit', 'inherit'] }).on('close', resolve));
await Promise.all([run('w1'), run('w2')]);`,
  );
  // Through a pipe(2) (sh's `|`), read slowly: the pipe fills, and a write larger than the
  // kernel's atomic size would be split around the other writer's.
  const { stdout, stderr, code } = await run('sh', ['-c', `${JSON.stringify(process.execPath)} ${JSON.stringify(both)} | cat`], { slowReader: true });
  assert.equal(stderr, '');
  assert.equal(code, 0);
  const lines = stdout.split('\n');
  assert.equal(lines.pop(), '');
  const seen = { w1: [] as number[], w2: [] as number[] };
  for (const line of lines) {
    const parsed = JSON.parse(line) as { who: 'w1' | 'w2'; n: number };
    seen[parsed.who].push(parsed.n);
  }
  const expected = Array.from({ length: 3000 }, (_, i) => i);
  assert.deepEqual(seen.w1, expected);
  assert.deepEqual(seen.w2, expected);
});

test('a closed stdout does not stop the process: logging goes on silently', async (t) => {
  const script = loggerModule(
    scratchDir(t),
    'closed',
    `const logger = createLogger();
let turn = 0;
const step = () => {
  for (let i = 0; i < 20; i++) logger.info({ n: turn * 20 + i, pad: 'q'.repeat(400) }, 'into a closed pipe');
  if (++turn < 200) setImmediate(step);
  else process.stderr.write('survived');
};
setTimeout(step, 50);`,
  );
  const { stderr, code } = await run(process.execPath, [script], { closeStdout: true });
  assert.equal(stderr, 'survived');
  assert.equal(code, 0);
});
