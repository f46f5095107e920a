import type { AuditQuery, AuditResult, OutboxState, StoredAuditRecord } from '../store/events.js';
import type { Clock } from '../time/clock.js';
import type { EventHub } from './hub.js';

/**
 * The admin API over the audit trail: filters (subject, event, result, from/to as RFC 3339 or unix
 * ms), newest first, `limit` per page (default 100, at most 1000), and an opaque `cursor` naming
 * where the next page starts. Records hold no code, token or secret, so the answer holds none.
 */

export interface AuditPage {
  readonly events: readonly Record<string, unknown>[];
  /** Pass as `cursor` for the next (older) page; absent on the last page. */
  readonly next_cursor?: string;
}

export interface EventsAdmin {
  audit(query: AuditQuery): Promise<AuditPage>;
  purge(): Promise<{ audit: number; outbox: number }>;
  outbox(state: OutboxState): Promise<{ items: readonly Record<string, unknown>[] }>;
}

const RESULTS: ReadonlySet<string> = new Set(['success', 'failure', 'info']);

function instant(text: string): number | undefined {
  const ms = /^\d+$/.test(text) ? Number(text) : Date.parse(text);
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** The query string as an AuditQuery, or what is wrong with it. */
export function parseAuditQuery(params: URLSearchParams): AuditQuery | string {
  const limitText = params.get('limit') ?? '100';
  const limit = Number(limitText);
  if (!/^\d+$/.test(limitText) || limit < 1 || limit > 1000) return 'limit must be an integer from 1 to 1000';
  const result = params.get('result') ?? undefined;
  if (result !== undefined && !RESULTS.has(result)) return 'result must be success, failure or info';
  const times: Partial<Record<'from' | 'to', number>> = {};
  for (const key of ['from', 'to'] as const) {
    const text = params.get(key);
    if (text === null) continue;
    const ms = instant(text);
    if (ms === undefined) return `${key} must be an RFC 3339 time or unix milliseconds`;
    times[key] = ms;
  }
  let beforeId: number | undefined;
  const cursor = params.get('cursor');
  if (cursor !== null) {
    const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
    if (!/^a\d{1,15}$/.test(decoded)) return 'cursor is not one this API gave out';
    beforeId = Number(decoded.slice(1));
  }
  return {
    subject: params.get('subject') ?? undefined,
    event: params.get('event') ?? undefined,
    result: result as AuditResult | undefined,
    from: times.from,
    to: times.to,
    beforeId,
    limit,
  };
}

function present(record: StoredAuditRecord): Record<string, unknown> {
  const { id, at, requestId, clientIp, factorId, ...rest } = record;
  return {
    id,
    time: new Date(at).toISOString(),
    ...rest,
    ...(requestId !== undefined ? { request_id: requestId } : {}),
    ...(clientIp !== undefined ? { client_ip: clientIp } : {}),
    ...(factorId !== undefined ? { factor_id: factorId } : {}),
  };
}

export function eventsAdmin(hub: EventHub, clock: Clock): EventsAdmin {
  return {
    async audit(query) {
      // What was recorded before this question is part of the answer.
      await hub.flush();
      const rows = await hub.store.queryAudit({ ...query, limit: query.limit + 1 });
      const page = rows.slice(0, query.limit);
      const last = page.at(-1);
      return { events: page.map(present), ...(rows.length > query.limit && last !== undefined ? { next_cursor: Buffer.from(`a${last.id}`).toString('base64url') } : {}) };
    },
    purge: () => hub.purge(clock()),
    async outbox(state) {
      const items = await hub.store.listOutbox(state, 1000);
      return { items: items.map(({ payload, ...item }) => ({ ...item, payload: JSON.parse(payload) as unknown })) };
    },
  };
}
