import { redisBackend, testPrefix } from '../support/redis-server.js';
import { REDIS_URL, redisOrSkip } from '../support/services.js';
import { describeTtlConformance } from './ttl-conformance.js';

// Replicas of the shared store at REDIS_URL, under a key prefix of their own.
describeTtlConformance(
  'redis',
  async () => redisBackend({ url: REDIS_URL, topology: { mode: 'single' }, keyPrefix: testPrefix(), connectTimeoutMs: 2_000, commandTimeoutMs: 2_000 }, REDIS_URL),
  redisOrSkip,
);
