import type { PostgresConfig } from '../config/types.js';
import { systemClock, type Clock } from '../time/clock.js';
import { checkContact, checkFactor, checkLabel, checkLimit, checkNextCounter, checkNextSecret, checkRecoveryHashes, checkSignCount, checkWebAuthnCredential, importTally, notEmpty } from './checks.js';
import { credentialConflict, StoreError } from './errors.js';
import { createPostgresEventStore, type EventStore } from './events.js';
import { migratePostgres, postgresMigrationStatus, schemaBehind, type MigrationResult, type MigrationStatus } from './migrate.js';
import { createPgPool, type PgPool, type PgQuery } from './pg-pool.js';
import { contactParams, factorParams, POSTGRES_ONLY, rebind, rowToContact, rowToFactor, rowToRecoveryCode, rowToWebAuthn, statementsFor, webAuthnParams, type ContactRow, type FactorRow, type RecoveryCodeRow, type StatementName, type WebAuthnRow } from './sql.js';
import type { ContactRecord, DurableRecord, DurableStore, FactorRecord, FactorType, PendingPurged, RecoveryCodeRecord, WebAuthnCredentialRecord } from './types.js';

/**
 * The shared backend's durable half: factors and recovery codes in PostgreSQL, for many gateway
 * replicas at once. Every check-and-set is ONE statement whose WHERE clause is the check, so the
 * database's row locks decide races between replicas (a waiting UPDATE re-checks the row once the
 * winner commits); the two multi-statement verbs run in one transaction with an explicit lock.
 * Times are BIGINT unix ms from the injected clock, never the server's.
 */

export interface PostgresStoreOptions {
  readonly clock?: Clock | undefined;
  /** on_start: apply pending migrations while opening; manual: refuse to open while any is pending. */
  readonly migrate: 'on_start' | 'manual';
  /** First schema of the search_path instead of the URL's or server's default (tests use one each). */
  readonly schema?: string | undefined;
  /** How often expired pending factors are deleted (default 60 s); every replica may do it, it is idempotent. */
  readonly cleanupIntervalMs?: number | undefined;
  /** Told of a failure on an idle connection (already dropped; the next call reconnects). */
  readonly onIdleError?: ((error: StoreError) => void) | undefined;
  readonly onPendingPurged?: PendingPurged | undefined;
}

export interface PostgresStore {
  readonly durable: DurableStore;
  /** The audit trail, the outbox and first-seen signals (branch events). */
  readonly events: EventStore;
  /** What opening did: the versions it applied (none in manual mode) and the status after. */
  readonly migrations: MigrationResult;
  /** Deletes expired pending factors and contacts now; resolves to how many. */
  cleanup(): Promise<number>;
  close(): Promise<void>;
}

/** `store status` / `store migrate`: the schema without the store (no refusal when it is behind). */
export interface PostgresMigrator {
  status(): Promise<MigrationStatus>;
  migrate(): Promise<MigrationResult>;
  close(): Promise<void>;
}

const DURABLE_STATEMENTS = [
  'ping',
  'insertFactor',
  'getFactor',
  'listFactors',
  'activateFactor',
  'deleteFactor',
  'advanceHotpCounter',
  'replaceSecret',
  'factorsNotSealedWith',
  'purgePendingFactors',
  'deleteRecoveryCodes',
  'countRecoveryCodes',
  'exportFactors',
  'exportRecoveryCodes',
  'countFactors',
  'deleteAllFactors',
  'deleteAllRecoveryCodes',
  'insertContact',
  'getContact',
  'listContacts',
  'activateContact',
  'deleteContact',
  'replaceContactDestination',
  'contactsNotSealedWith',
  'purgePendingContacts',
  'exportContacts',
  'countContacts',
  'deleteAllContacts',
  'renameFactor',
  'insertWebAuthn',
  'listWebAuthn',
  'advanceWebAuthnCounter',
  'renameWebAuthn',
  'deleteWebAuthn',
  'replaceWebAuthnKey',
  'webAuthnNotSealedWith',
  'exportWebAuthn',
  'deleteAllWebAuthn',
] as const satisfies readonly StatementName[];

type DurableStatement = (typeof DURABLE_STATEMENTS)[number];

/** The shared statements this backend runs, and its own, rebound to $n once at load. */
const SQL = (() => {
  const common = statementsFor('postgres');
  return Object.fromEntries(DURABLE_STATEMENTS.map((name) => [name, rebind(common[name])])) as Record<DurableStatement, string>;
})();
const PG = Object.fromEntries(Object.entries(POSTGRES_ONLY).map(([name, text]) => [name, rebind(text)])) as Record<keyof typeof POSTGRES_ONLY, string>;

/** One round trip's worth of an import, per table. */
interface Batch {
  readonly factors: FactorRecord[];
  readonly codes: RecoveryCodeRecord[];
  readonly contacts: ContactRecord[];
  readonly credentials: WebAuthnCredentialRecord[];
}

/** Rows per round trip when exporting (cursor FETCH) and importing (unnest batch). */
const BATCH = 500;
const UNIQUE_VIOLATION = '23505';

function checkOptions(options: { clock?: unknown; cleanupIntervalMs?: unknown }): { clock: Clock; cleanupIntervalMs: number } {
  if (typeof options !== 'object' || options === null) throw new StoreError('ERR_STORE_INVALID_OPTION', 'the PostgreSQL store needs an options object');
  const clock = (options.clock ?? systemClock) as Clock;
  if (typeof clock !== 'function') throw new StoreError('ERR_STORE_INVALID_OPTION', 'option "clock" must be a function');
  const cleanupIntervalMs = options.cleanupIntervalMs ?? 60_000;
  if (typeof cleanupIntervalMs !== 'number' || !Number.isSafeInteger(cleanupIntervalMs) || cleanupIntervalMs <= 0) {
    throw new StoreError('ERR_STORE_INVALID_OPTION', 'option "cleanupIntervalMs" must be a positive integer of milliseconds');
  }
  return { clock, cleanupIntervalMs };
}

/** Opens the schema alone, for the store commands. Connects lazily: the first call does. */
export function openPostgresMigrator(config: PostgresConfig, options: { clock?: Clock | undefined; schema?: string | undefined } = {}): PostgresMigrator {
  const { clock } = checkOptions(options);
  const pool = createPgPool(config, { schema: options.schema });
  let ended: Promise<void> | undefined;
  const live = (): void => {
    if (ended !== undefined) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  };
  return {
    async status() {
      live();
      return pool.withClient((client) => postgresMigrationStatus(client));
    },
    async migrate() {
      live();
      return pool.withClient((client) => migratePostgres(client, clock()));
    },
    close: () => (ended ??= pool.end()),
  };
}

/**
 * Connects, brings the schema up to date (`on_start`) or checks that it is (`manual`), and returns
 * the store. Fails with ERR_STORE_UNAVAILABLE when the server cannot be reached, ERR_STORE_SCHEMA_BEHIND
 * in manual mode with migrations pending, ERR_STORE_SCHEMA_TOO_NEW after a downgrade.
 */
export async function openPostgresStore(config: PostgresConfig, options: PostgresStoreOptions): Promise<PostgresStore> {
  const { clock, cleanupIntervalMs } = checkOptions(options);
  if (options.migrate !== 'on_start' && options.migrate !== 'manual') throw new StoreError('ERR_STORE_INVALID_OPTION', 'option "migrate" must be "on_start" or "manual"');
  const pool = createPgPool(config, { schema: options.schema, onIdleError: options.onIdleError });
  let migrations: MigrationResult;
  try {
    migrations =
      options.migrate === 'on_start'
        ? await pool.withClient((client) => migratePostgres(client, clock()))
        : { applied: [], status: await pool.withClient((client) => postgresMigrationStatus(client)) };
    if (migrations.status.pending.length > 0) throw schemaBehind(migrations.status);
  } catch (error) {
    await pool.end();
    throw error;
  }
  return createStore(pool, clock, cleanupIntervalMs, migrations, options.onPendingPurged);
}

function createStore(pool: PgPool, clock: Clock, cleanupIntervalMs: number, migrations: MigrationResult, onPendingPurged: PendingPurged | undefined): PostgresStore {
  let ended: Promise<void> | undefined;
  const timer = setInterval(() => {
    // Unavailable now: the next round tries again, and reads ignore expired pending factors anyway.
    cleanup().catch(() => undefined);
  }, cleanupIntervalMs);
  timer.unref();

  function live(): void {
    if (ended !== undefined) throw new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  }

  async function cleanup(): Promise<number> {
    live();
    const now = clock();
    const purged = await pool.query<{ type: FactorType }>(SQL.purgePendingFactors, [now]);
    if (purged.length > 0) onPendingPurged?.(purged.map((row) => row.type));
    return purged.length + (await pool.execute(SQL.purgePendingContacts, [now]));
  }

  /** Column-wise arrays: unnest() zips them back into rows, a whole batch per statement. */
  const columnsOf = (rows: (string | number | null)[][]): (string | number | null)[][] => rows[0]!.map((_, i) => rows.map((row) => row[i]!));

  async function importBatch(query: PgQuery, batch: Batch): Promise<void> {
    if (batch.factors.length > 0) await query(PG.importFactors, columnsOf(batch.factors.map(factorParams)));
    if (batch.codes.length > 0) {
      const { codes } = batch;
      await query(PG.importRecoveryCodes, [codes.map((c) => c.subject), codes.map((c) => c.hash), codes.map((c) => c.createdAt), codes.map((c) => c.usedAt ?? null)]);
    }
    if (batch.contacts.length > 0) await query(PG.importContacts, columnsOf(batch.contacts.map(contactParams)));
    if (batch.credentials.length > 0) {
      try {
        await query(PG.importWebAuthn, columnsOf(batch.credentials.map(webAuthnParams)));
      } catch (error) {
        if ((error as { code?: unknown }).code === UNIQUE_VIOLATION) throw credentialConflict();
        throw error;
      }
    }
  }

  const durable: DurableStore = {
    async createFactor(factor) {
      live();
      checkFactor(factor);
      try {
        await pool.query(SQL.insertFactor, factorParams(factor));
      } catch (error) {
        if ((error as { code?: unknown }).code === UNIQUE_VIOLATION) throw new StoreError('ERR_STORE_CONFLICT', 'a factor with this id already exists');
        throw error;
      }
    },
    async getFactor(id) {
      live();
      const [row] = await pool.query<FactorRow>(SQL.getFactor, [id, clock()]);
      return row === undefined ? undefined : rowToFactor(row);
    },
    async listFactors(subject, now) {
      live();
      return (await pool.query<FactorRow>(SQL.listFactors, [subject, now])).map(rowToFactor);
    },
    async activateFactor(id, subject, now) {
      live();
      return (await pool.execute(SQL.activateFactor, [now, id, subject, now])) === 1;
    },
    async deleteFactor(id, subject) {
      live();
      return (await pool.execute(SQL.deleteFactor, [id, subject])) === 1;
    },
    async advanceHotpCounter(id, expected, next) {
      live();
      checkNextCounter(next);
      // No stored counter equals a non-integer; say so here rather than let BIGINT refuse the cast.
      if (!Number.isSafeInteger(expected)) return false;
      return (await pool.execute(SQL.advanceHotpCounter, [next, id, expected])) === 1;
    },
    async replaceSecret(id, expected, next) {
      live();
      checkNextSecret(next);
      return (await pool.execute(SQL.replaceSecret, [next.kid, next.blob, id, expected.kid, expected.blob])) === 1;
    },
    async factorsNotSealedWith(kid, limit) {
      live();
      checkLimit(limit);
      return (await pool.query<FactorRow>(SQL.factorsNotSealedWith, [kid, limit])).map(rowToFactor);
    },
    async replaceRecoveryCodes(subject, hashes, now) {
      live();
      checkRecoveryHashes(subject, hashes);
      await pool.transaction(async (query) => {
        await query(PG.lockRecoveryCodes, [subject]);
        await query(SQL.deleteRecoveryCodes, [subject]);
        if (hashes.length > 0) await query(PG.insertRecoveryCodes, [subject, [...hashes], now]);
      });
    },
    async consumeRecoveryCode(subject, hash, now) {
      live();
      const [row] = await pool.query<{ consumed: string; remaining: string }>(PG.consumeRecoveryCode, [now, subject, hash, subject]);
      return { consumed: Number(row!.consumed) === 1, remaining: Number(row!.remaining) };
    },
    async countRecoveryCodes(subject) {
      live();
      const [row] = await pool.query<{ n: string }>(SQL.countRecoveryCodes, [subject]);
      return Number(row!.n);
    },
    async createContact(contact) {
      live();
      checkContact(contact);
      try {
        await pool.query(SQL.insertContact, contactParams(contact));
      } catch (error) {
        if ((error as { code?: unknown }).code === UNIQUE_VIOLATION) throw new StoreError('ERR_STORE_CONFLICT', 'a contact with this id already exists');
        throw error;
      }
    },
    async getContact(id, now) {
      live();
      const [row] = await pool.query<ContactRow>(SQL.getContact, [id, now]);
      return row === undefined ? undefined : rowToContact(row);
    },
    async listContacts(subject, now) {
      live();
      return (await pool.query<ContactRow>(SQL.listContacts, [subject, now])).map(rowToContact);
    },
    async activateContact(id, subject, now) {
      live();
      return (await pool.execute(SQL.activateContact, [now, id, subject, now])) === 1;
    },
    async deleteContact(id, subject) {
      live();
      return (await pool.execute(SQL.deleteContact, [id, subject])) === 1;
    },
    async replaceContactDestination(id, expected, next) {
      live();
      checkNextSecret(next);
      return (await pool.execute(SQL.replaceContactDestination, [next.kid, next.blob, id, expected.kid, expected.blob])) === 1;
    },
    async contactsNotSealedWith(kid, limit) {
      live();
      checkLimit(limit);
      return (await pool.query<ContactRow>(SQL.contactsNotSealedWith, [kid, limit])).map(rowToContact);
    },
    async renameFactor(id, subject, label) {
      live();
      checkLabel(label);
      return (await pool.execute(SQL.renameFactor, [label, id, subject])) === 1;
    },
    async createWebAuthnCredential(credential) {
      live();
      checkWebAuthnCredential(credential);
      try {
        await pool.query(SQL.insertWebAuthn, webAuthnParams(credential));
      } catch (error) {
        if ((error as { code?: unknown }).code === UNIQUE_VIOLATION) throw credentialConflict();
        throw error;
      }
    },
    async listWebAuthnCredentials(subject) {
      live();
      return (await pool.query<WebAuthnRow>(SQL.listWebAuthn, [subject])).map(rowToWebAuthn);
    },
    async advanceWebAuthnCounter(id, next, usedAt) {
      live();
      checkSignCount(next);
      return (await pool.execute(SQL.advanceWebAuthnCounter, [next, usedAt, id, next, next])) === 1;
    },
    async renameWebAuthnCredential(id, subject, label) {
      live();
      checkLabel(label);
      return (await pool.execute(SQL.renameWebAuthn, [label, id, subject])) === 1;
    },
    async deleteWebAuthnCredential(id, subject) {
      live();
      return (await pool.execute(SQL.deleteWebAuthn, [id, subject])) === 1;
    },
    async replaceWebAuthnPublicKey(id, expected, next) {
      live();
      checkNextSecret(next);
      return (await pool.execute(SQL.replaceWebAuthnKey, [next.kid, next.blob, id, expected.kid, expected.blob])) === 1;
    },
    async webAuthnCredentialsNotSealedWith(kid, limit) {
      live();
      checkLimit(limit);
      return (await pool.query<WebAuthnRow>(SQL.webAuthnNotSealedWith, [kid, limit])).map(rowToWebAuthn);
    },
    exportAll() {
      live();
      const toRecord = [
        (row: unknown): DurableRecord => ({ kind: 'factor', factor: rowToFactor(row as FactorRow) }),
        (row: unknown): DurableRecord => ({ kind: 'recovery_code', code: rowToRecoveryCode(row as RecoveryCodeRow) }),
        (row: unknown): DurableRecord => ({ kind: 'contact', contact: rowToContact(row as ContactRow) }),
        (row: unknown): DurableRecord => ({ kind: 'webauthn_credential', credential: rowToWebAuthn(row as WebAuthnRow) }),
      ];
      return (async function* (): AsyncGenerator<DurableRecord> {
        for await (const batch of pool.snapshot([SQL.exportFactors, SQL.exportRecoveryCodes, SQL.exportContacts, SQL.exportWebAuthn], BATCH)) {
          for (const row of batch.rows) yield toRecord[batch.statement]!(row);
        }
      })();
    },
    async importAll(records, options) {
      live();
      const replace = options?.replace === true;
      return pool.transaction(async (query) => {
        await query(PG.lockForImport);
        const [{ n }] = (await query<{ n: string }>(SQL.countFactors)) as [{ n: string }];
        const [{ n: c }] = (await query<{ n: string }>(SQL.countContacts)) as [{ n: string }];
        if (Number(n) + Number(c) > 0 && !replace) throw notEmpty(Number(n), Number(c));
        if (replace) {
          await query(SQL.deleteAllRecoveryCodes);
          await query(SQL.deleteAllFactors);
          await query(SQL.deleteAllContacts);
          await query(SQL.deleteAllWebAuthn);
        }
        const tally = importTally();
        const empty = (): Batch => ({ factors: [], codes: [], contacts: [], credentials: [] });
        let batch = empty();
        let rows = 0;
        for (const record of records) {
          tally.add(record);
          if (record.kind === 'factor') batch.factors.push(record.factor);
          else if (record.kind === 'contact') batch.contacts.push(record.contact);
          else if (record.kind === 'webauthn_credential') batch.credentials.push(record.credential);
          else batch.codes.push(record.code);
          if (++rows >= BATCH) {
            await importBatch(query, batch);
            batch = empty();
            rows = 0;
          }
        }
        await importBatch(query, batch);
        return tally.counts();
      });
    },
    async ping() {
      live();
      await pool.query(SQL.ping);
    },
    async close() {
      await close();
    },
  };

  function close(): Promise<void> {
    if (ended === undefined) {
      clearInterval(timer);
      ended = pool.end();
    }
    return ended;
  }

  return { durable, events: createPostgresEventStore(pool), migrations, cleanup, close };
}
