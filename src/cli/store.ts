import type { GatewayPolicy } from '../config/types.js';
import { storeAdmin } from '../store/admin.js';
import { StoreError } from '../store/errors.js';
import { readExport, writeExport } from '../store/transfer.js';
import type { ImportCounts } from '../store/types.js';
import { systemClock } from '../time/clock.js';
import { UsageError, type CliValues } from './options.js';

type Print = (text: string) => void;

export const STORE_USAGE = 'usage: store status | migrate | export --out FILE | import --in FILE [--replace]';

/** `store status` exits with this when migrations are pending, so a deploy step can wait on it. */
export const EXIT_PENDING = 3;

const plural = (n: number, one: string, many: string): string => `${n} ${n === 1 ? one : many}`;
const tally = (counts: ImportCounts): string =>
  `${plural(counts.factors, 'factor', 'factors')}, ${plural(counts.recoveryCodes, 'recovery code', 'recovery codes')}, ${plural(counts.contacts, 'contact', 'contacts')} and ${plural(counts.webauthnCredentials, 'WebAuthn credential', 'WebAuthn credentials')}`;
const list = (versions: readonly number[]): string => (versions.length === 0 ? 'none' : versions.join(', '));

/**
 * `store status|migrate|export|import`: the durable store's schema and contents, without a running
 * gateway. Output names the backend, never its URL (it holds credentials).
 */
export async function runStoreCommand(policy: GatewayPolicy, args: readonly string[], values: CliValues, print: Print): Promise<number> {
  const [action, ...extra] = args;
  if (extra.length > 0) throw new UsageError(STORE_USAGE);
  const admin = storeAdmin(policy.store, systemClock);
  switch (action) {
    case 'status': {
      const status = await admin.status();
      print(`backend: ${admin.backend}`);
      print(`schema version: ${status.current} (latest ${status.latest})`);
      print(`pending migrations: ${list(status.pending)}`);
      return status.pending.length > 0 ? EXIT_PENDING : 0;
    }
    case 'migrate': {
      const { applied, status } = await admin.migrate();
      print(applied.length === 0 ? `${admin.backend} schema is at version ${status.current}: nothing to apply` : `${admin.backend} schema migrated to version ${status.current} (applied ${list(applied)})`);
      return 0;
    }
    case 'export': {
      const path = values.out;
      if (path === undefined || path === '') throw new UsageError('store export needs --out FILE');
      const counts = await admin.withDurable((durable) => writeExport(path, { source: admin.backend, exportedAt: systemClock() }, durable.exportAll()), { mustExist: true });
      print(`exported ${tally(counts)} from ${admin.backend} to ${path}`);
      return 0;
    }
    case 'import': {
      const path = values.in;
      if (path === undefined || path === '') throw new UsageError('store import needs --in FILE');
      // The whole file is read and checked before the store is opened: a bad file changes nothing.
      const { records } = await readExport(path);
      const replace = values.replace === true;
      try {
        const counts = await admin.withDurable((durable) => durable.importAll(records, { replace }));
        print(`imported ${tally(counts)} into ${admin.backend}${replace ? ' (replacing what it held)' : ''}`);
        return 0;
      } catch (error) {
        if (StoreError.is(error) && error.code === 'ERR_STORE_NOT_EMPTY') throw new Error(`${error.message}; pass --replace to delete them (and the recovery codes) first`);
        throw error;
      }
    }
    default:
      throw new UsageError(STORE_USAGE);
  }
}
