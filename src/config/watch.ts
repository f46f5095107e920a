/**
 * Hot reload of the policy file. The DIRECTORY is watched, not the file: editors write a temp file
 * and rename it over the old one, and Kubernetes swaps a `..data` symlink, and a watch on the old
 * file's inode sees neither. Events are debounced; then the whole file is read and validated, and
 * only a complete, valid policy reaches onReload. Anything else goes to onError and changes nothing.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigOptionError } from './errors.js';
import type { GatewayPolicy } from './types.js';

export interface PolicyWatcherOptions {
  readonly path: string;
  /** Reads and validates the file (loadPolicyFile); throws when it is not usable. */
  readonly load: (path: string) => GatewayPolicy;
  readonly onReload: (policy: GatewayPolicy) => void;
  readonly onError: (error: Error) => void;
  /** Quiet time after the last change before reading, so a burst of writes is read once. */
  readonly debounceMs?: number;
}

export interface PolicyWatcher {
  /** Reload now (SIGHUP), even if the file's bytes did not change (key files it names may have). */
  reload(): void;
  close(): void;
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value));
}

export function createPolicyWatcher(options: PolicyWatcherOptions): PolicyWatcher {
  const { path, load, onReload, onError } = options;
  const debounceMs = options.debounceMs ?? 100;
  if (typeof path !== 'string' || path === '') throw new ConfigOptionError('path', 'must be a non-empty file path');
  if (typeof load !== 'function') throw new ConfigOptionError('load', 'must be a function');
  if (typeof onReload !== 'function') throw new ConfigOptionError('onReload', 'must be a function');
  if (typeof onError !== 'function') throw new ConfigOptionError('onError', 'must be a function');
  if (!Number.isInteger(debounceMs) || debounceMs < 0 || debounceMs > 60_000) {
    throw new ConfigOptionError('debounceMs', 'must be an integer from 0 to 60000');
  }

  const directory = dirname(resolve(path));
  // The bytes of the policy now in force: a change back to them, or a touch, reloads nothing.
  let lastGood = readOrUndefined(path);
  // What the last refused attempt saw (the bytes, or the read error's code): reported once, not on
  // every later event in the directory. SIGHUP retries regardless.
  let lastRefused: Buffer | string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  function report(error: unknown): void {
    try {
      onError(asError(error));
    } catch {
      // A failing error handler must not take the watcher (or the process) down with it.
    }
  }

  function refuse(seen: Buffer | string, error: unknown, force: boolean): void {
    const repeated = typeof seen === 'string' ? seen === lastRefused : Buffer.isBuffer(lastRefused) && seen.equals(lastRefused);
    lastRefused = seen;
    if (!repeated || force) report(error);
  }

  function apply(force: boolean): void {
    if (closed) return;
    let current: Buffer;
    try {
      current = readFileSync(path);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
      const why = code === 'ENOENT' ? 'the file is gone (deleted, or a symlink to nothing)' : code;
      refuse(code, new Error(`${path}: cannot read the policy file: ${why}; keeping the running policy`), force);
      return;
    }
    if (!force && lastGood !== undefined && current.equals(lastGood)) {
      lastRefused = undefined;
      return;
    }
    let policy: GatewayPolicy;
    try {
      policy = load(path);
    } catch (error) {
      refuse(current, error, force);
      return;
    }
    lastRefused = undefined;
    try {
      onReload(policy);
      lastGood = current;
    } catch (error) {
      // Not in force: the same bytes will be tried again on the next event.
      report(error);
    }
  }

  function schedule(): void {
    if (closed) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      apply(false);
    }, debounceMs);
    timer.unref();
  }

  let watcher: FSWatcher;
  try {
    // persistent: false — the listeners keep the process alive, a watcher alone must not.
    watcher = watch(directory, { persistent: false }, () => schedule());
  } catch (error) {
    throw new ConfigOptionError('path', `cannot watch ${directory}: ${(error as NodeJS.ErrnoException).code ?? asError(error).message}`);
  }
  watcher.on('error', (error) => report(new Error(`${path}: the directory watch failed (${error.message}); reload with SIGHUP`)));

  return {
    reload() {
      if (timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
      apply(true);
    },
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      watcher.close();
    },
  };
}

function readOrUndefined(path: string): Buffer | undefined {
  try {
    return readFileSync(path);
  } catch {
    return undefined;
  }
}

export interface FileSetWatcherOptions {
  /** Files read by the policy loader besides the policy file (e.g. the TLS certificate and key). */
  readonly paths: readonly string[];
  /** Called once for each change of the files' bytes (or of which of them can be read). */
  readonly onChange: () => void;
  readonly onError: (error: Error) => void;
  readonly debounceMs?: number;
}

/**
 * Watches files the policy names, for the same reasons and in the same way as the policy file:
 * their directories, debounced, by content. A touch or a change to another file in the directory
 * does nothing; a pair rewritten within the debounce window (a certificate and its key) is one change.
 */
export function createFileSetWatcher(options: FileSetWatcherOptions): { close(): void } {
  const { paths, onChange, onError } = options;
  const debounceMs = options.debounceMs ?? 100;
  if (!Array.isArray(paths) || paths.length === 0 || paths.some((p) => typeof p !== 'string' || p === '')) {
    throw new ConfigOptionError('paths', 'must be a non-empty list of file paths');
  }
  if (typeof onChange !== 'function') throw new ConfigOptionError('onChange', 'must be a function');
  if (typeof onError !== 'function') throw new ConfigOptionError('onError', 'must be a function');
  if (!Number.isInteger(debounceMs) || debounceMs < 0 || debounceMs > 60_000) {
    throw new ConfigOptionError('debounceMs', 'must be an integer from 0 to 60000');
  }

  // One entry per path: its bytes, or the code of the error that stopped the read.
  const snapshot = (): (Buffer | string)[] =>
    paths.map((path) => {
      try {
        return readFileSync(path);
      } catch (error) {
        return (error as NodeJS.ErrnoException).code ?? 'unreadable';
      }
    });
  const same = (a: Buffer | string, b: Buffer | string): boolean => (typeof a === 'string' || typeof b === 'string' ? a === b : a.equals(b));
  let seen = snapshot();
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  function check(): void {
    timer = undefined;
    if (closed) return;
    const now = snapshot();
    if (now.every((entry, i) => same(entry, seen[i]!))) return;
    seen = now;
    try {
      onChange();
    } catch (error) {
      try {
        onError(asError(error));
      } catch {
        // A failing error handler must not take the watcher (or the process) down with it.
      }
    }
  }

  const watchers: FSWatcher[] = [];
  try {
    for (const directory of new Set(paths.map((path) => dirname(resolve(path))))) {
      // persistent: false — the listeners keep the process alive, a watcher alone must not.
      const watcher = watch(directory, { persistent: false }, () => {
        if (closed) return;
        if (timer !== undefined) clearTimeout(timer);
        timer = setTimeout(check, debounceMs);
        timer.unref();
      });
      watcher.on('error', (error) => onError(new Error(`${directory}: the directory watch failed (${error.message}); reload with SIGHUP`)));
      watchers.push(watcher);
    }
  } catch (error) {
    for (const watcher of watchers) watcher.close();
    throw new ConfigOptionError('paths', `cannot watch the directory of ${paths.join(', ')}: ${(error as NodeJS.ErrnoException).code ?? asError(error).message}`);
  }

  return {
    close() {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      for (const watcher of watchers) watcher.close();
    },
  };
}
