import { createHmac, randomUUID } from 'node:crypto';
import { request } from 'undici';
import type { EventsConfig, GatewayPolicy } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { EventStore, OutboxItem } from '../store/events.js';
import type { Clock } from '../time/clock.js';

/**
 * Delivers the outbox: webhooks (signed POSTs) and e-mails. Each replica claims due items with a
 * lease, so no two deliver one item at once; an item is retried with exponential backoff and
 * jitter until the retry window after its event has passed, then kept as a dead letter. A receiver
 * that is down never touches a request: delivery runs here, off the request path.
 */

/** How long a claim holds an item: well past one delivery's timeout, so a live holder never loses it. */
export const LEASE_MS = 60_000;
const BATCH = 20;
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 3_600_000;

/** The header a webhook's signature travels in: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`. */
export const SIGNATURE_HEADER = 'x-mfa-signature';

export function signBody(secret: string, timestamp: number, body: string): string {
  return `t=${timestamp},v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

/** Delay before retry number `attempts` (1 = the first retry): 1 s doubling to 1 h, times 0.5–1.5. */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number {
  const base = Math.min(FIRST_RETRY_MS * 2 ** Math.min(attempts - 1, 30), MAX_RETRY_MS);
  return Math.round(base * (0.5 + random()));
}

export interface EmailOut {
  /** Resolves the recipient at delivery time (the outbox never stores an address) and sends. */
  send(item: OutboxItem, policy: GatewayPolicy): Promise<void>;
}

export interface DeliveryCounters {
  delivered(result: 'success' | 'retry' | 'dead', kind: OutboxItem['kind']): void;
}

export interface Dispatcher {
  /** Look for due items now (new events call it). */
  wake(): void;
  /** One round: claim and deliver what is due; resolves when those deliveries ended. */
  deliverDue(): Promise<number>;
  close(): Promise<void>;
}

export interface DispatcherOptions {
  readonly store: EventStore;
  readonly clock: Clock;
  readonly policy: () => GatewayPolicy;
  readonly email: EmailOut;
  readonly counters: DeliveryCounters;
  readonly logger: Logger;
  readonly random?: () => number;
}

async function postWebhook(hook: EventsConfig['webhooks'][number], item: OutboxItem, timeoutMs: number, now: number): Promise<void> {
  const signal = AbortSignal.timeout(timeoutMs);
  const response = await request(hook.url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      'user-agent': 'mfa-gateway-webhooks',
      'idempotency-key': item.id,
      'x-mfa-event': item.event,
      [SIGNATURE_HEADER]: signBody(hook.secret, Math.floor(now / 1000), item.payload),
    },
    body: item.payload,
    signal,
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
  });
  await response.body.dump();
  // Redirects are not followed: a receiver that moved is a failed delivery, not a new destination.
  if (response.statusCode < 200 || response.statusCode > 299) throw new Error(`receiver answered ${response.statusCode}`);
}

/** What may be said of a failure: never the URL (it may hold a token) or a body. */
function failureText(error: unknown): string {
  if (error instanceof Error) {
    if (error.name === 'TimeoutError' || error.name === 'AbortError') return 'timed out';
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    return error.message.startsWith('receiver answered') ? error.message : 'delivery failed';
  }
  return 'delivery failed';
}

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  const { store, clock, counters, logger } = options;
  const owner = randomUUID();
  const random = options.random ?? Math.random;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<number> | undefined;
  let again = false;
  let closed = false;

  async function deliver(item: OutboxItem): Promise<void> {
    const policy = options.policy();
    const { delivery } = policy.events;
    const now = clock();
    try {
      if (item.kind === 'webhook') {
        const hook = policy.events.webhooks.find((h) => h.name === item.target);
        if (hook === undefined) throw new Error('no such webhook in the running policy');
        await postWebhook(hook, item, delivery.timeoutMs, now);
      } else {
        await options.email.send(item, policy);
      }
      await store.outboxDelivered(item.id, owner, clock());
      counters.delivered('success', item.kind);
    } catch (error) {
      const reason = failureText(error);
      const nextAt = clock() + retryDelayMs(item.attempts, random);
      if (nextAt > item.createdAt + delivery.retryWindowMs) {
        await store.outboxDead(item.id, owner, clock(), reason);
        counters.delivered('dead', item.kind);
        logger.error({ event: 'outbox_dead_letter', id: item.id, kind: item.kind, target: item.target, attempts: item.attempts, error: reason }, 'alert delivery gave up after the retry window');
      } else {
        await store.outboxRetry(item.id, owner, nextAt, reason);
        counters.delivered('retry', item.kind);
        logger.warn({ event: 'outbox_retry', id: item.id, kind: item.kind, target: item.target, attempts: item.attempts, error: reason }, 'alert delivery failed; retrying');
      }
    }
  }

  async function round(): Promise<number> {
    const items = await store.claimOutbox(owner, clock(), LEASE_MS, BATCH);
    await Promise.all(items.map((item) => deliver(item).catch((error: unknown) => logger.error({ event: 'outbox_error', id: item.id, error: failureText(error) }, 'outbox bookkeeping failed'))));
    return items.length;
  }

  function deliverDue(): Promise<number> {
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      let total = 0;
      try {
        do {
          again = false;
          let n: number;
          // A full batch means more may be due: go on at once.
          do total += n = await round();
          while (n === BATCH && !closed);
        } while (again && !closed);
      } catch (error) {
        logger.warn({ event: 'outbox_unavailable', error: failureText(error) }, 'cannot read the outbox; trying again');
      } finally {
        running = undefined;
      }
      return total;
    })();
    return running;
  }

  function schedule(): void {
    if (closed) return;
    timer = setTimeout(() => {
      void deliverDue().finally(schedule);
    }, options.policy().events.delivery.pollIntervalMs);
    timer.unref();
  }
  schedule();

  return {
    wake() {
      if (!closed) void deliverDue();
    },
    deliverDue,
    async close() {
      closed = true;
      clearTimeout(timer);
      await running;
    },
  };
}
