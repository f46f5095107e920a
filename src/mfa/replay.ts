import type { TtlStore } from '../store/types.js';

/**
 * TOTP replay protection: per factor, the last accepted time step. A step is accepted only if it is
 * strictly later than the last one, in one atomic update of the TTL store, so N concurrent requests
 * with the same code produce exactly one acceptance across every replica.
 */
export const OTP_STEP_PREFIX = 'otp-step:';

interface UsedStep {
  readonly step: number;
  /** Unix ms after which the entry may go (kept so an unchanged entry keeps its expiry). */
  readonly keepUntil: number;
}

/**
 * Marks `step` used for `factorId`; true if it was later than every step used before. With `step`
 * undefined (no code matched) it performs the same store round trip and changes nothing, so a
 * wrong code costs what a replayed one does.
 */
export async function useTotpStep(ttl: Pick<TtlStore, 'update'>, factorId: string, step: number | undefined, now: number, keepMs: number): Promise<boolean> {
  let accepted = false;
  await ttl.update<UsedStep>(OTP_STEP_PREFIX + factorId, (current) => {
    // The last call is what the store committed; an optimistic backend may call this again.
    accepted = step !== undefined && (current === undefined || step > current.step);
    if (accepted) return { value: { step: step!, keepUntil: now + keepMs }, ttlMs: keepMs };
    if (current === undefined) return undefined;
    return { value: current, ttlMs: Math.max(1, current.keepUntil - now) };
  });
  return accepted;
}

/** How long a used step must be remembered: longer than any step in the window stays acceptable. */
export function usedStepKeepMs(periodSeconds: number, window: number): number {
  return Math.max(3_600_000, (2 * window + 2) * periodSeconds * 1000);
}
