import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigOptionError } from '../../src/config/errors.js';
import { loadPolicyFile } from '../../src/config/load.js';
import type { GatewayPolicy } from '../../src/config/types.js';
import { createFileSetWatcher, createPolicyWatcher, type PolicyWatcher } from '../../src/config/watch.js';
import { HEAD } from './support.js';

const DEBOUNCE_MS = 20;
/** Long enough for any event of a write to have been seen and debounced; the only fixed wait here. */
const QUIET_MS = 200;

function policyText(routeName: string): string {
  return `${HEAD}  - { name: ${routeName}, match: { path: /x }, upstream: app, policy: public }\n`;
}

type Event = { kind: 'reload'; policy: GatewayPolicy } | { kind: 'error'; error: Error };

interface Harness {
  readonly watcher: PolicyWatcher;
  next(timeoutMs?: number): Promise<Event>;
  quiet(): Promise<void>;
  [Symbol.dispose](): void;
}

function watchFile(path: string, hooks: { onReload?: (policy: GatewayPolicy) => void } = {}): Harness {
  const queue: Event[] = [];
  let wake: (() => void) | undefined;
  const push = (event: Event): void => {
    queue.push(event);
    wake?.();
  };
  const watcher = createPolicyWatcher({
    path,
    load: (p) => loadPolicyFile(p, { env: {} }),
    onReload: (policy) => {
      hooks.onReload?.(policy);
      push({ kind: 'reload', policy });
    },
    onError: (error) => push({ kind: 'error', error }),
    debounceMs: DEBOUNCE_MS,
  });
  return {
    watcher,
    async next(timeoutMs = 3000) {
      if (queue.length === 0) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no watcher event within ${timeoutMs} ms`)), timeoutMs);
          wake = () => {
            clearTimeout(timer);
            wake = undefined;
            resolve();
          };
        });
      }
      return queue.shift()!;
    },
    async quiet() {
      await new Promise((resolve) => setTimeout(resolve, QUIET_MS));
      assert.deepEqual(queue.map((e) => (e.kind === 'reload' ? `reload ${e.policy.routes[0]?.name}` : `error ${e.error.message}`)), []);
    },
    [Symbol.dispose]: () => watcher.close(),
  };
}

function routeName(event: Event): string {
  assert.equal(event.kind, 'reload', event.kind === 'error' ? event.error.message : '');
  return (event as { policy: GatewayPolicy }).policy.routes[0]!.name;
}

function errorMessage(event: Event): string {
  assert.equal(event.kind, 'error', event.kind === 'reload' ? 'unexpected reload' : '');
  return (event as { error: Error }).error.message;
}

function workspace(): { dir: string; file: string; [Symbol.dispose](): void } {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-watch-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, policyText('v1'));
  return { dir, file, [Symbol.dispose]: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('createPolicyWatcher', () => {
  test('a change is reloaded once, with the new policy', async () => {
    using ws = workspace();
    using h = watchFile(ws.file);
    writeFileSync(ws.file, policyText('v2'));
    assert.equal(routeName(await h.next()), 'v2');
    await h.quiet();
  });

  test('identical content and a touch reload nothing; the next real change does', async () => {
    using ws = workspace();
    using h = watchFile(ws.file);
    writeFileSync(ws.file, policyText('v1'));
    utimesSync(ws.file, new Date(), new Date());
    await h.quiet();
    writeFileSync(ws.file, policyText('v3'));
    assert.equal(routeName(await h.next()), 'v3');
  });

  test('an editor’s write-then-rename is seen', async () => {
    using ws = workspace();
    using h = watchFile(ws.file);
    writeFileSync(join(ws.dir, '.gateway.yaml.swp'), policyText('renamed'));
    renameSync(join(ws.dir, '.gateway.yaml.swp'), ws.file);
    assert.equal(routeName(await h.next()), 'renamed');
    await h.quiet();
  });

  test('a syntax error, an empty file and a half-written file each report an error and reload nothing', async () => {
    using ws = workspace();
    using h = watchFile(ws.file);
    writeFileSync(ws.file, policyText('v2').replace('policy: public }', 'policy: public'));
    assert.equal(errorMessage(await h.next()), `${ws.file}:9: YAML: Flow map in block collection must be sufficiently indented and end with a }`);
    // Reported once: more events on the same refused bytes say nothing new.
    utimesSync(ws.file, new Date(), new Date());
    await h.quiet();
    writeFileSync(ws.file, '');
    assert.equal(errorMessage(await h.next()), `${ws.file}:1: the policy file is empty`);
    await h.quiet();
    // Cut in the middle of a line, as a writer that has not finished would leave it.
    const full = policyText('v2');
    writeFileSync(ws.file, full.slice(0, full.indexOf('upstream: app')));
    assert.match(errorMessage(await h.next()), new RegExp(`^${ws.file}:9: YAML: `));
    await h.quiet();
    // Back to the policy in force: nothing to do.
    writeFileSync(ws.file, policyText('v1'));
    await h.quiet();
  });

  test('a policy that parses but fails validation is refused with its line', async () => {
    using ws = workspace();
    using h = watchFile(ws.file);
    writeFileSync(ws.file, policyText('v2').replace('upstream: app', 'upstream: gone'));
    assert.equal(errorMessage(await h.next()), `${ws.file}:9: route 1 (routes[0]).upstream: unknown upstream "gone" (defined: app)`);
    await h.quiet();
  });

  test('a deleted file reports an error; the file coming back is reloaded', async () => {
    using ws = workspace();
    using h = watchFile(ws.file);
    unlinkSync(ws.file);
    assert.equal(errorMessage(await h.next()), `${ws.file}: cannot read the policy file: the file is gone (deleted, or a symlink to nothing); keeping the running policy`);
    await h.quiet();
    writeFileSync(ws.file, policyText('back'));
    assert.equal(routeName(await h.next()), 'back');
  });

  test('Kubernetes-style ..data symlink swaps: to a new version reloads, to nothing reports an error', async () => {
    using ws = workspace();
    const version = (name: string, content?: string): void => {
      mkdirSync(join(ws.dir, name));
      if (content !== undefined) writeFileSync(join(ws.dir, name, 'policy.yaml'), content);
    };
    const swap = (target: string): void => {
      symlinkSync(target, join(ws.dir, '..data_tmp'));
      renameSync(join(ws.dir, '..data_tmp'), join(ws.dir, '..data'));
    };
    version('..v1', policyText('k1'));
    symlinkSync('..v1', join(ws.dir, '..data'));
    const path = join(ws.dir, 'policy.yaml');
    symlinkSync('..data/policy.yaml', path);
    using h = watchFile(path);

    version('..v2', policyText('k2'));
    swap('..v2');
    assert.equal(routeName(await h.next()), 'k2');
    await h.quiet();

    version('..v3');
    swap('..v3');
    assert.match(errorMessage(await h.next()), /cannot read the policy file: the file is gone/);
    await h.quiet();
  });

  test('reload() (SIGHUP) reloads at once, even when the bytes did not change', async () => {
    using ws = workspace();
    using h = watchFile(ws.file);
    h.watcher.reload();
    assert.equal(routeName(await h.next(0)), 'v1');
    writeFileSync(ws.file, 'routes: [');
    h.watcher.reload();
    assert.match(errorMessage(await h.next(0)), /^.*gateway\.yaml:1: YAML: /);
    await h.quiet();
  });

  test('an onReload that throws is reported through onError and the policy is not taken as in force', async () => {
    using ws = workspace();
    let fail = true;
    using h = watchFile(ws.file, {
      onReload: () => {
        if (fail) throw new Error('applying failed');
      },
    });
    writeFileSync(ws.file, policyText('v2'));
    assert.equal(errorMessage(await h.next()), 'applying failed');
    fail = false;
    // Same bytes again: not taken as in force before, so they are applied now.
    writeFileSync(ws.file, policyText('v2'));
    assert.equal(routeName(await h.next()), 'v2');
  });

  test('after close() nothing is reported', async () => {
    using ws = workspace();
    using h = watchFile(ws.file);
    writeFileSync(ws.file, policyText('v2'));
    h.watcher.close();
    writeFileSync(ws.file, policyText('v3'));
    await h.quiet();
  });

  test('options are validated at creation, naming the bad one', () => {
    using ws = workspace();
    const base = { path: ws.file, load: (p: string) => loadPolicyFile(p), onReload: () => {}, onError: () => {} };
    const optionOf = (make: () => unknown): string => {
      try {
        (make() as PolicyWatcher).close();
      } catch (error) {
        assert.ok(error instanceof ConfigOptionError);
        return error.option;
      }
      return 'accepted';
    };
    assert.equal(optionOf(() => createPolicyWatcher({ ...base, debounceMs: -1 })), 'debounceMs');
    assert.equal(optionOf(() => createPolicyWatcher({ ...base, debounceMs: 1.5 })), 'debounceMs');
    assert.equal(optionOf(() => createPolicyWatcher({ ...base, path: '' })), 'path');
    assert.equal(optionOf(() => createPolicyWatcher({ ...base, path: join(ws.dir, 'no/such/dir/gateway.yaml') })), 'path');
    assert.equal(optionOf(() => createPolicyWatcher({ ...base, onError: undefined as unknown as () => void })), 'onError');
    assert.equal(optionOf(() => createPolicyWatcher(base)), 'accepted');
  });
});

describe('file set watcher (the files a policy names, e.g. the TLS certificate and key)', () => {
  test('one call per change of the bytes: a touch, another file, or the same bytes again do nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mfa-gw-fileset-'));
    const cert = join(dir, 'tls.crt');
    const key = join(dir, 'tls.key');
    writeFileSync(cert, 'cert 1');
    writeFileSync(key, 'key 1');
    let calls = 0;
    const errors: Error[] = [];
    const watcher = createFileSetWatcher({ paths: [cert, key], onChange: () => calls++, onError: (error) => errors.push(error), debounceMs: DEBOUNCE_MS });
    const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, QUIET_MS));
    try {
      utimesSync(cert, new Date(), new Date());
      writeFileSync(join(dir, 'unrelated'), 'x');
      writeFileSync(key, 'key 1');
      await settle();
      assert.equal(calls, 0);

      // A pair written together (temp file + rename, as deploy tools do) is one change.
      writeFileSync(`${cert}.tmp`, 'cert 2');
      renameSync(`${cert}.tmp`, cert);
      writeFileSync(key, 'key 2');
      await settle();
      assert.equal(calls, 1);

      // A file that disappears is a change (the reload then reports it), and so is its return.
      unlinkSync(key);
      await settle();
      assert.equal(calls, 2);
      writeFileSync(key, 'key 2');
      await settle();
      assert.equal(calls, 3);

      // A throwing onChange goes to onError; the watcher goes on.
      watcher.close();
      const failing = createFileSetWatcher({ paths: [cert], onChange: () => { throw new Error('refused'); }, onError: (error) => errors.push(error), debounceMs: DEBOUNCE_MS });
      writeFileSync(cert, 'cert 3');
      await settle();
      failing.close();
      assert.deepEqual(errors.map((error) => error.message), ['refused']);
    } finally {
      watcher.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('bad options are refused at creation', () => {
    const noop = (): void => undefined;
    assert.throws(() => createFileSetWatcher({ paths: [], onChange: noop, onError: noop }), (error: unknown) => ConfigOptionError.is(error) && error.option === 'paths');
    assert.throws(() => createFileSetWatcher({ paths: ['/tmp/x'], onChange: noop, onError: noop, debounceMs: -1 }), (error: unknown) => ConfigOptionError.is(error) && error.option === 'debounceMs');
  });
});
