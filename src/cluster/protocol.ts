/**
 * What the primary and its workers say to each other over the cluster IPC channel. The primary asks
 * (one call, one answer, matched by id); a worker reports two events of its own: it is ready, or it
 * could not start. Every message carries CHANNEL, so anything else on the channel (Node's own
 * cluster messages, a library's) is ignored by both sides. The channel uses `serialization:
 * 'advanced'` (structured clone), so numbers such as NaN and Infinity in metrics survive the trip.
 */
import type { MetricObjectWithValues, MetricValueWithName } from 'prom-client';
import type { ReloadResult } from '../core/gateway-core.js';
import { parseInvalidation } from '../store/invalidation.js';
import type { Invalidation } from '../store/types.js';

export const CHANNEL = 'mfa-gateway/cluster';

/** One worker's registry as `registry.getMetricsAsJSON()` returns it. */
export type MetricsSnapshot = readonly MetricObjectWithValues<MetricValueWithName<string>>[];

export type WorkerCall =
  | { readonly kind: 'metrics' }
  | { readonly kind: 'ready' }
  | { readonly kind: 'reload' }
  | { readonly kind: 'revoke-sessions'; readonly subject: string }
  | { readonly kind: 'pools' }
  | { readonly kind: 'stop' };

export type CallKind = WorkerCall['kind'];

/** What each call resolves to in the worker, and so in the primary. */
export interface CallResults {
  readonly metrics: MetricsSnapshot;
  /** null when ready; otherwise why not ('draining', 'store unavailable'). */
  readonly ready: string | null;
  readonly reload: ReloadResult;
  /** How many sessions were live and are now ended. */
  readonly 'revoke-sessions': number;
  readonly pools: unknown;
  /** The worker drains and exits, maybe before this answer is out: the primary waits for the exit instead. */
  readonly stop: null;
}

/** Primary → worker. */
export interface CallMessage {
  readonly channel: typeof CHANNEL;
  readonly id: number;
  readonly call: WorkerCall;
}

/** Worker → primary. */
export type WorkerMessage =
  | { readonly channel: typeof CHANNEL; readonly type: 'answer'; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly channel: typeof CHANNEL; readonly type: 'answer'; readonly id: number; readonly ok: false; readonly error: string }
  | { readonly channel: typeof CHANNEL; readonly type: 'ready'; readonly address: string }
  | { readonly channel: typeof CHANNEL; readonly type: 'failed'; readonly error: string }
  /** A cache change for the other workers (the SQLite store has no bus of its own; the primary relays). */
  | { readonly channel: typeof CHANNEL; readonly type: 'invalidate'; readonly change: Invalidation };

/** Primary → worker: a change another worker announced. */
export interface InvalidateMessage {
  readonly channel: typeof CHANNEL;
  readonly type: 'invalidate';
  readonly change: Invalidation;
}

export function isInvalidateMessage(value: unknown): value is InvalidateMessage {
  return onChannel(value) && value.type === 'invalidate' && parseInvalidation(value.change) !== undefined;
}

const CALL_KINDS: ReadonlySet<string> = new Set<CallKind>(['metrics', 'ready', 'reload', 'revoke-sessions', 'pools', 'stop']);

function onChannel(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && (value as { channel?: unknown }).channel === CHANNEL;
}

export function isCallMessage(value: unknown): value is CallMessage {
  if (!onChannel(value) || typeof value.id !== 'number') return false;
  const call = value.call as { kind?: unknown; subject?: unknown } | null | undefined;
  if (typeof call !== 'object' || call === null || typeof call.kind !== 'string' || !CALL_KINDS.has(call.kind)) return false;
  return call.kind !== 'revoke-sessions' || typeof call.subject === 'string';
}

export function isWorkerMessage(value: unknown): value is WorkerMessage {
  if (!onChannel(value)) return false;
  switch (value.type) {
    case 'answer':
      return typeof value.id === 'number' && (value.ok === true || (value.ok === false && typeof value.error === 'string'));
    case 'ready':
      return typeof value.address === 'string';
    case 'failed':
      return typeof value.error === 'string';
    case 'invalidate':
      return parseInvalidation(value.change) !== undefined;
    default:
      return false;
  }
}
