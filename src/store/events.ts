import type Database from 'better-sqlite3';
import { StoreError } from './errors.js';
import type { PgPool } from './pg-pool.js';
import type { WriteBatcher } from './sqlite-batch.js';
import { EVENT_STATEMENTS, POSTGRES_EVENT_OVERRIDES, rebind, type Dialect, type EventStatementName } from './sql.js';

/**
 * The durable side of security events (issue 13): the audit trail, the outbox that webhooks and
 * e-mail notifications are delivered from, and the countries and devices each subject was seen
 * from. On SQLite beside the factors, on PostgreSQL for replicas. Times are unix ms from the
 * injected clock. Nothing here ever holds a code, token or secret: callers pass typed, secret-free
 * fields, and device values are hashes.
 */

export type AuditResult = 'success' | 'failure' | 'info';

export interface AuditRecord {
  /** Unix ms. */
  readonly at: number;
  readonly subject: string;
  readonly event: string;
  readonly result: AuditResult;
  readonly requestId?: string | undefined;
  readonly clientIp?: string | undefined;
  /** ISO 3166-1 alpha-2, when known. */
  readonly country?: string | undefined;
  /** A hash of the device id or user-agent fingerprint, when known. */
  readonly device?: string | undefined;
  readonly route?: string | undefined;
  readonly factorId?: string | undefined;
  readonly method?: string | undefined;
  readonly reason?: string | undefined;
  /** The event's other fields (retry_after_seconds, remaining, …), secret-free by type. */
  readonly detail: Readonly<Record<string, string | number | boolean>>;
}

export interface StoredAuditRecord extends AuditRecord {
  /** Increasing with insertion: the paging cursor. */
  readonly id: number;
}

export interface AuditQuery {
  readonly subject?: string | undefined;
  readonly event?: string | undefined;
  readonly result?: AuditResult | undefined;
  /** Unix ms, inclusive. */
  readonly from?: number | undefined;
  /** Unix ms, exclusive. */
  readonly to?: number | undefined;
  /** Only records older (smaller id) than this one: the previous page's cursor. */
  readonly beforeId?: number | undefined;
  readonly limit: number;
}

export type OutboxKind = 'webhook' | 'email';
export type OutboxState = 'pending' | 'delivered' | 'dead';

export interface NewOutboxItem {
  /** Stable across retries: the Idempotency-Key a receiver deduplicates on. */
  readonly id: string;
  readonly kind: OutboxKind;
  /** The webhook's name, or who an e-mail goes to (`admin`, `user:<subject>`). */
  readonly target: string;
  readonly event: string;
  /** JSON text, secret-free. */
  readonly payload: string;
  readonly createdAt: number;
}

export interface OutboxItem extends NewOutboxItem {
  readonly nextAt: number;
  /** Deliveries tried so far, the current one included once claimed. */
  readonly attempts: number;
  readonly state: OutboxState;
  readonly lastError?: string | undefined;
  readonly doneAt?: number | undefined;
}

export interface SeenValue {
  readonly kind: 'country' | 'device';
  readonly value: string;
  readonly firstSeen: number;
  readonly lastSeen: number;
}

export interface EventStore {
  /** Audit records and outbox items in ONE transaction: all are kept, or none. */
  append(audit: readonly AuditRecord[], outbox: readonly NewOutboxItem[]): Promise<void>;
  /** Newest first. */
  queryAudit(query: AuditQuery): Promise<StoredAuditRecord[]>;
  /** Deletes audit records older than `before` (unix ms); resolves to how many. */
  purgeAudit(before: number): Promise<number>;
  /**
   * Leases up to `limit` due items to `owner` until now + leaseMs (attempts + 1). An item leased to
   * another owner is skipped until its lease runs out, so replicas never deliver one item at once.
   */
  claimOutbox(owner: string, now: number, leaseMs: number, limit: number): Promise<OutboxItem[]>;
  /** The three ends of one delivery; each only while `owner` still holds the lease. */
  outboxDelivered(id: string, owner: string, now: number): Promise<boolean>;
  outboxRetry(id: string, owner: string, nextAt: number, error: string): Promise<boolean>;
  outboxDead(id: string, owner: string, now: number, error: string): Promise<boolean>;
  listOutbox(state: OutboxState, limit: number): Promise<OutboxItem[]>;
  /** Deletes delivered and dead items finished before `before`. */
  purgeOutbox(before: number): Promise<number>;
  /** Records `value` as seen for `subject` at `now`; true only for the one call that saw it first. */
  markSeen(subject: string, kind: SeenValue['kind'], value: string, now: number): Promise<boolean>;
  listSeen(subject: string): Promise<SeenValue[]>;
}

type Param = string | number | null;

/** The little a dialect must do: run a statement, read rows, run several statements as one transaction. */
interface Runner {
  all<R>(name: EventStatementName | string, params: readonly Param[]): Promise<R[]>;
  run(name: EventStatementName, params: readonly Param[]): Promise<number>;
  /** A request-path write whose RETURNING rows the caller reads (SQLite: in the group commit). */
  write<R>(name: EventStatementName, params: readonly Param[]): Promise<R[]>;
  batch(statements: readonly (readonly [EventStatementName, readonly Param[]])[]): Promise<void>;
}

type Num = number | string | bigint;
interface AuditRow {
  readonly id: Num;
  readonly at: Num;
  readonly subject: string;
  readonly event: string;
  readonly result: string;
  readonly request_id: string | null;
  readonly client_ip: string | null;
  readonly country: string | null;
  readonly device: string | null;
  readonly route: string | null;
  readonly factor_id: string | null;
  readonly method: string | null;
  readonly reason: string | null;
  readonly detail: string;
}
interface OutboxRow {
  readonly id: string;
  readonly kind: string;
  readonly target: string;
  readonly event: string;
  readonly payload: string;
  readonly created_at: Num;
  readonly next_at: Num;
  readonly attempts: Num;
  readonly state: string;
  readonly last_error: string | null;
  readonly done_at: Num | null;
}

const optional = <K extends string, V>(key: K, value: V | null): { [P in K]?: V } => (value === null ? {} : ({ [key]: value } as { [P in K]: V }));

function rowToAudit(row: AuditRow): StoredAuditRecord {
  return {
    id: Number(row.id),
    at: Number(row.at),
    subject: row.subject,
    event: row.event,
    result: row.result as AuditResult,
    ...optional('requestId', row.request_id),
    ...optional('clientIp', row.client_ip),
    ...optional('country', row.country),
    ...optional('device', row.device),
    ...optional('route', row.route),
    ...optional('factorId', row.factor_id),
    ...optional('method', row.method),
    ...optional('reason', row.reason),
    detail: JSON.parse(row.detail) as AuditRecord['detail'],
  };
}

function rowToOutbox(row: OutboxRow): OutboxItem {
  return {
    id: row.id,
    kind: row.kind as OutboxKind,
    target: row.target,
    event: row.event,
    payload: row.payload,
    createdAt: Number(row.created_at),
    nextAt: Number(row.next_at),
    attempts: Number(row.attempts),
    state: row.state as OutboxState,
    ...optional('lastError', row.last_error),
    ...(row.done_at === null ? {} : { doneAt: Number(row.done_at) }),
  };
}

function auditParams(r: AuditRecord): Param[] {
  return [r.at, r.subject, r.event, r.result, r.requestId ?? null, r.clientIp ?? null, r.country ?? null, r.device ?? null, r.route ?? null, r.factorId ?? null, r.method ?? null, r.reason ?? null, JSON.stringify(r.detail)];
}

/** Upper bound of one page and of one claim (the admin API's 1000, plus one to see whether more follow). */
export const MAX_PAGE = 1001;

function checkLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) throw new StoreError('ERR_STORE_INVALID_OPTION', `limit must be an integer from 1 to ${MAX_PAGE}`);
}

/** The audit query: a fixed prefix and only fixed filter fragments, values always bound. */
function auditSelect(query: AuditQuery): { text: string; params: Param[] } {
  const where: string[] = [];
  const params: Param[] = [];
  const add = (fragment: string, value: Param | undefined): void => {
    if (value === undefined) return;
    where.push(fragment);
    params.push(value);
  };
  add('subject = ?', query.subject);
  add('event = ?', query.event);
  add('result = ?', query.result);
  add('at >= ?', query.from);
  add('at < ?', query.to);
  add('id < ?', query.beforeId);
  params.push(query.limit);
  return { text: `${EVENT_STATEMENTS.selectAudit}${where.length > 0 ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`, params };
}

function createEventStore(runner: Runner): EventStore {
  return {
    async append(audit, outbox) {
      if (audit.length === 0 && outbox.length === 0) return;
      await runner.batch([...audit.map((r) => ['insertAudit', auditParams(r)] as const), ...outbox.map((o) => ['insertOutbox', [o.id, o.kind, o.target, o.event, o.payload, o.createdAt, o.createdAt]] as const)]);
    },
    async queryAudit(query) {
      checkLimit(query.limit);
      const { text, params } = auditSelect(query);
      return (await runner.all<AuditRow>(text, params)).map(rowToAudit);
    },
    purgeAudit: (before) => runner.run('purgeAudit', [before]),
    async claimOutbox(owner, now, leaseMs, limit) {
      checkLimit(limit);
      const rows = await runner.all<OutboxRow>('claimOutbox', [owner, now + leaseMs, now, now, limit]);
      return rows.map(rowToOutbox).sort((a, b) => a.nextAt - b.nextAt || (a.id < b.id ? -1 : 1));
    },
    outboxDelivered: async (id, owner, now) => (await runner.run('deliveredOutbox', [now, id, owner])) === 1,
    outboxRetry: async (id, owner, nextAt, error) => (await runner.run('retryOutbox', [nextAt, error, id, owner])) === 1,
    outboxDead: async (id, owner, now, error) => (await runner.run('deadOutbox', [now, error, id, owner])) === 1,
    async listOutbox(state, limit) {
      checkLimit(limit);
      return (await runner.all<OutboxRow>('listOutbox', [state, limit])).map(rowToOutbox);
    },
    purgeOutbox: (before) => runner.run('purgeOutbox', [before]),
    async markSeen(subject, kind, value, now) {
      const written = await runner.write<{ first_seen: Num }>('markSeen', [subject, kind, value, now, now]);
      return written.length === 1 && Number(written[0]!.first_seen) === now;
    },
    async listSeen(subject) {
      const rows = await runner.all<{ kind: string; value: string; first_seen: Num; last_seen: Num }>('listSeen', [subject]);
      return rows.map((r) => ({ kind: r.kind as SeenValue['kind'], value: r.value, firstSeen: Number(r.first_seen), lastSeen: Number(r.last_seen) }));
    },
  };
}

function statementText(dialect: Dialect, name: string): string {
  if (!Object.hasOwn(EVENT_STATEMENTS, name)) return name;
  const key = name as EventStatementName;
  return dialect === 'postgres' ? (POSTGRES_EVENT_OVERRIDES[key] ?? EVENT_STATEMENTS[key]) : EVENT_STATEMENTS[key];
}

/** On the embedded store's connection: writes go through its group commit, like the short-lived verbs. */
export function createSqliteEventStore(db: Database.Database, live: () => void, batcher: WriteBatcher): EventStore {
  const prepared = new Map<string, Database.Statement>();
  const prepare = (name: string): Database.Statement => {
    let st = prepared.get(name);
    if (st === undefined) prepared.set(name, (st = db.prepare(statementText('sqlite', name))));
    return st;
  };
  const batch = db.transaction((statements: readonly (readonly [EventStatementName, readonly Param[]])[]) => {
    for (const [name, params] of statements) prepare(name).run(...params);
  });
  return createEventStore({
    async all<R>(name: string, params: readonly Param[]) {
      live();
      return prepare(name).all(...params) as R[];
    },
    run: (name, params) => batcher.run(() => prepare(name).run(...params).changes),
    write: <R>(name: EventStatementName, params: readonly Param[]) => batcher.run(() => prepare(name).all(...params) as R[]),
    batch: (statements) => batcher.run(() => batch(statements)),
  });
}

/** On the shared store's pool: the batch is one BEGIN … COMMIT, the claim skips rows other replicas lock. */
export function createPostgresEventStore(pool: PgPool): EventStore {
  const text = new Map<string, string>();
  const sql = (name: string): string => {
    let t = text.get(name);
    if (t === undefined) text.set(name, (t = rebind(statementText('postgres', name))));
    return t;
  };
  return createEventStore({
    all: <R>(name: string, params: readonly Param[]) => pool.query(sql(name), params) as Promise<R[]>,
    run: (name, params) => pool.execute(sql(name), params),
    write: <R>(name: EventStatementName, params: readonly Param[]) => pool.query(sql(name), params) as Promise<R[]>,
    async batch(statements) {
      await pool.transaction(async (query) => {
        for (const [name, params] of statements) await query(sql(name), params);
      });
    },
  });
}
