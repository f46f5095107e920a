/**
 * What the primary does when a worker exits on its own: fork a replacement after a backoff, or give
 * up. Pure: the primary passes what happened and how long the worker lived, and keeps the history.
 *
 * - A worker that exits before it ever reported ready failed to START. Its replacement reads the same
 *   policy file and binds the same port, so failing again is likely: after MAX_START_FAILURES in a
 *   row in one slot the primary gives up (and at the first start of the cluster it does not retry at
 *   all, see primary.ts), instead of forking forever.
 * - A worker that was serving and then crashed is replaced, waiting longer for each crash in a row
 *   (RESTART_BACKOFF_MS); one that had run for STABLE_AFTER_MS starts the ladder over.
 */

export const RESTART_BACKOFF_MS: readonly number[] = [100, 250, 500, 1_000, 2_000, 5_000, 10_000];
/** A worker that ran this long before it exited was healthy: its slot's backoff starts over. */
export const STABLE_AFTER_MS = 30_000;
/** Replacements in one slot that fail to start, in a row, before the primary gives up. */
export const MAX_START_FAILURES = 5;

export interface SlotHistory {
  /** Exits in a row of workers that lived less than STABLE_AFTER_MS. */
  readonly quickExits: number;
  /** Exits in a row of workers that never reported ready. */
  readonly startFailures: number;
}

export const FRESH_HISTORY: SlotHistory = { quickExits: 0, startFailures: 0 };

export type AfterExit =
  | { readonly action: 'restart'; readonly delayMs: number; readonly history: SlotHistory }
  | { readonly action: 'give-up'; readonly history: SlotHistory };

export function afterExit(history: SlotHistory, exit: { readonly wasReady: boolean; readonly livedMs: number }): AfterExit {
  const quickExits = exit.livedMs >= STABLE_AFTER_MS ? 1 : history.quickExits + 1;
  const startFailures = exit.wasReady ? 0 : history.startFailures + 1;
  const next: SlotHistory = { quickExits, startFailures };
  if (startFailures >= MAX_START_FAILURES) return { action: 'give-up', history: next };
  return { action: 'restart', delayMs: RESTART_BACKOFF_MS[Math.min(quickExits, RESTART_BACKOFF_MS.length) - 1]!, history: next };
}
