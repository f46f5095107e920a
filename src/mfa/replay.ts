/**
 * TOTP replay protection lives in the store verb `useOtpStep` (forward-only, atomic, so N concurrent
 * requests with the same code produce exactly one acceptance across every replica).
 */

/** How long a used step must be remembered: longer than any step in the window stays acceptable. */
export function usedStepKeepMs(periodSeconds: number, window: number): number {
  return Math.max(3_600_000, (2 * window + 2) * periodSeconds * 1000);
}
