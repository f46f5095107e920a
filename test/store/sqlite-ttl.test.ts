import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite.js';
import { describeTtlConformance } from './ttl-conformance.js';

// Replicas of the embedded store: separate connections to one SQLite file.
describeTtlConformance('sqlite', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-ttl-'));
  const opened: SqliteStore[] = [];
  return {
    async connect() {
      const store = openSqliteStore({ path: join(dir, 'mfa.db') });
      opened.push(store);
      return store.ttl;
    },
    async dispose() {
      await Promise.all(opened.map((store) => store.close()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
