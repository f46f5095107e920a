/**
 * How long an allow may be held by a cache in front of the gateway (nginx `auth_request` with
 * `proxy_cache`, docs/plugin-mode.md): never longer than the gateway itself trusts what it read.
 * The bound is the session cache's (src/mfa/session.ts), so a revocation, a removed factor or a
 * policy reload reaches a cached answer no later than it reaches the gateway's own caches.
 */
export const ANSWER_HOLD_MS = 2_000;

/**
 * Whole seconds for nginx's `X-Accel-Expires` when an answer holds until `holdUntil` (ms), or 0:
 * do not cache. nginx keeps an answer while its second-resolution clock has not passed the second
 * it stored it in plus N, so up to N + 1 seconds; N + 1 must therefore fit before `holdUntil`, and
 * N = 0 would mean "do not cache" to nginx anyway.
 */
export function holdSeconds(holdUntil: number | undefined, now: number): number {
  if (holdUntil === undefined) return 0;
  return Math.max(0, Math.floor((holdUntil - now) / 1000) - 1);
}
