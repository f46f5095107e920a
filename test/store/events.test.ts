import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openPostgresStore } from '../../src/store/postgres.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { createTestSchema } from '../support/postgres.js';
import { postgresOrSkip } from '../support/services.js';
import { eventsConformance } from './events-conformance.js';

eventsConformance('SQLite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-events-'));
  const path = join(dir, 'mfa.db');
  const stores = [openSqliteStore({ path })];
  return {
    events: stores[0]!.events,
    async replica() {
      const store = openSqliteStore({ path });
      stores.push(store);
      return store.events;
    },
    async close() {
      for (const store of stores) await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

eventsConformance(
  'PostgreSQL',
  async () => {
    const schema = await createTestSchema();
    const stores = [await openPostgresStore(schema.config, { migrate: 'on_start', schema: schema.name })];
    return {
      events: stores[0]!.events,
      async replica() {
        const store = await openPostgresStore(schema.config, { migrate: 'manual', schema: schema.name });
        stores.push(store);
        return store.events;
      },
      async close() {
        for (const store of stores) await store.close();
        await schema.drop();
      },
    };
  },
  postgresOrSkip,
);
