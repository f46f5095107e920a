import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore } from '../../src/store/sqlite.js';
import type { DurableStore } from '../../src/store/types.js';
import { durableConformance } from './durable-conformance.js';

/** The durable conformance suite on SQLite: one file per test, "replicas" are more connections to it. */
durableConformance('sqlite', async (clock) => {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-durable-'));
  const path = join(dir, 'mfa.db');
  const opened: { close(): Promise<void> }[] = [];
  const open = async (): Promise<DurableStore> => {
    const store = openSqliteStore({ path, clock });
    opened.push(store);
    // The suite drives the durable half alone: with the TTL half closed, durable.close() ends the file.
    await store.ttl.close();
    return store.durable;
  };
  return {
    durable: await open(),
    replica: open,
    async close() {
      for (const store of opened) await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
