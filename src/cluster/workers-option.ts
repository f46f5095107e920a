import { availableParallelism } from 'node:os';

/** More workers than this on one host is a typo, not a plan (and each one opens its own store connection and pools). */
export const MAX_WORKERS = 64;

export type WorkersOption = { readonly ok: true; readonly workers: number } | { readonly ok: false; readonly error: string };

/**
 * `--workers N|auto`: absent means 1 (one process, no cluster); `auto` is the CPUs this process may
 * use (`os.availableParallelism()`), at most MAX_WORKERS. Anything but a plain whole number from 1
 * to MAX_WORKERS is refused with a sentence for the command line, never a stack trace.
 */
export function parseWorkersOption(text: string | undefined, cpus: () => number = availableParallelism): WorkersOption {
  if (text === undefined) return { ok: true, workers: 1 };
  if (text === 'auto') return { ok: true, workers: Math.max(1, Math.min(MAX_WORKERS, cpus())) };
  const workers = /^[0-9]{1,3}$/.test(text) ? Number(text) : Number.NaN;
  if (!(workers >= 1 && workers <= MAX_WORKERS)) {
    return { ok: false, error: `--workers: expected a whole number from 1 to ${MAX_WORKERS}, or "auto"; got ${JSON.stringify(text)}` };
  }
  return { ok: true, workers };
}
