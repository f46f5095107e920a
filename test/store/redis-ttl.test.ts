import type { RedisConfig } from '../../src/config/types.js';
import { openRedisTtlStore, type RedisTtlStore } from '../../src/store/redis.js';
import { deleteKeys, testPrefix } from '../support/redis-server.js';
import { REDIS_URL, redisOrSkip } from '../support/services.js';
import { describeTtlConformance } from './ttl-conformance.js';

// Replicas of the shared store: separate connections (each its own command and pub/sub pair) to
// the shared Redis, under a key prefix of this backend's own, whose keys dispose() deletes.
describeTtlConformance(
  'redis',
  async () => {
    const config: RedisConfig = { url: REDIS_URL, topology: { mode: 'single' }, keyPrefix: testPrefix(), connectTimeoutMs: 2_000, commandTimeoutMs: 2_000 };
    const opened: RedisTtlStore[] = [];
    return {
      async connect() {
        const store = await openRedisTtlStore(config);
        opened.push(store);
        return store.ttl;
      },
      async dispose() {
        await Promise.all(opened.map((store) => store.close()));
        await deleteKeys(REDIS_URL, config.keyPrefix);
      },
    };
  },
  redisOrSkip,
);
