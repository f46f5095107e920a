import type { RateLimiter } from '../decision/engine.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { TokenTake, TtlStore } from '../store/types.js';
import { addressPartition } from './partition.js';

/**
 * Routes' `rate_limit:` on the TTL store, the same store as lockouts and sessions, so replicas
 * sharing a store share each quota. A fixed window per (route, quota, key): it opens at the first
 * request and allows `requests` until it ends. That is what RateLimit's `r` and `t` describe
 * exactly; the price is that a client can spend up to twice the quota across a window boundary.
 */

export const RATE_LIMIT_PREFIX = 'rl:';

export interface RouteLimiterDeps {
  readonly ttl: Pick<TtlStore, 'takeToken'>;
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
}

export function createRouteLimiter(deps: RouteLimiterDeps): RateLimiter {
  const { ttl, logger, metrics } = deps;
  return {
    async take({ route, limit, partition, now }) {
      const who = limit.key === 'ip' ? addressPartition(partition) : partition;
      // The quota is part of the key: a reload that changes it starts a fresh count rather than
      // judging an old window by new numbers.
      const key = `${RATE_LIMIT_PREFIX}${route.name}:${limit.requests}/${limit.perMs}:${limit.key}:${who}`;
      let taken: TokenTake;
      try {
        taken = await ttl.takeToken(key, now, { limit: limit.requests, windowMs: limit.perMs });
      } catch (error) {
        // A store that cannot answer: public and bearer routes go on (DESIGN §4); mfa and step_up
        // routes fail closed at the second factor, which needs the same store.
        logger.warn({ event: 'rate_limit_unavailable', route: route.name, error: error instanceof Error ? error.message : String(error) }, 'rate limit store did not answer; limit skipped');
        return undefined;
      }
      if (!taken.taken) metrics?.throttled.inc({ limit: limit.key === 'ip' ? 'route_ip' : 'route_subject' });
      return {
        allowed: taken.taken,
        state: {
          policy: route.name,
          quota: limit.requests,
          windowSeconds: Math.floor(limit.perMs / 1000),
          remaining: taken.remaining,
          resetSeconds: Math.max(1, Math.ceil((taken.resetAt - now) / 1000)),
        },
      };
    },
  };
}
