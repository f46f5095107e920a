import { randomUUID } from 'node:crypto';
import { Counter, type Registry } from 'prom-client';
import type { GatewayPolicy } from '../config/types.js';
import type { Awaitable } from '../async/awaitable.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Delivery } from '../delivery/index.js';
import type { Logger } from '../log/logger.js';
import type { AuditContext, AuditEvent } from '../mfa/audit.js';
import type { RequestView } from '../request/view.js';
import type { AuditRecord, AuditResult, EventStore, NewOutboxItem, OutboxItem } from '../store/events.js';
import type { DurableStore } from '../store/types.js';
import type { Clock } from '../time/clock.js';
import { ExpiringMap } from '../time/ttl-cache.js';
import { createDispatcher, type Dispatcher } from './outbox.js';
import { createSignalReader, type Signals } from './signals.js';

/**
 * Security events as one hub: every audit event is written to the durable trail behind the
 * request (batched every `flush_interval`; a clean shutdown writes everything, a crash loses at
 * most the unflushed batch), the rules of `events.rules` turn some into alerts (outbox items for
 * each webhook and e-mails), and the request path asks `riskCheck` whether a valid session must
 * still pass a fresh second factor. Nothing here may fail a request except the seen-store read of
 * `riskCheck`, which fails closed like every other store read.
 */

export type AlertType = 'country_change' | 'new_device' | 'recovery_code_used' | 'lockout' | 'two_countries' | 'ip_failures' | 'backup_switching';

export interface RiskCaller {
  readonly subject: string;
  readonly view: RequestView;
  readonly policy: GatewayPolicy;
  readonly now: number;
}

export interface EventHub {
  /** The audit sink: trail, then rules. Never throws, never waits. */
  record(ctx: AuditContext, event: AuditEvent): void;
  /**
   * Before a valid session is accepted: 'country_change' when this request needs a fresh second
   * factor. Without country rules, or without a country for this request, it answers at once.
   */
  riskCheck(caller: RiskCaller): Awaitable<'country_change' | undefined>;
  /** A second factor just passed: learn the country and device (and tell the user of a new device). */
  passed(caller: RiskCaller): Promise<void>;
  /** Writes what is buffered now. */
  flush(): Promise<void>;
  readonly dispatcher: Dispatcher;
  readonly store: EventStore;
  /** Deletes audit records and finished outbox items past the retention now. */
  purge(now: number): Promise<{ audit: number; outbox: number }>;
  close(): Promise<void>;
}

export interface EventHubOptions {
  readonly store: EventStore;
  readonly durable: DurableStore;
  readonly keyring: Keyring;
  readonly delivery: Delivery;
  readonly clock: Clock;
  readonly policy: () => GatewayPolicy;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Ends every session of a subject (two countries at once). */
  readonly endSessions: (subject: string, now: number) => Promise<number>;
}

const SUCCESS: ReadonlySet<string> = new Set(['verified', 'confirmed', 'enrolled', 'session_issued', 'session_refreshed', 'recovery_codes_generated', 'code_sent', 'hotp_resynced']);
const FAILURE: ReadonlySet<string> = new Set(['failed', 'replay', 'locked', 'lock_refused', 'address_blocked', 'address_block_refused', 'factor_unreadable', 'code_send_failed', 'code_send_limited', 'risk_step_up']);

/** Beyond this many buffered records (store down for long), the oldest are dropped and counted. */
const MAX_BUFFERED = 50_000;
/** The last-seen time of a country or device is written at most this often per subject and value. */
const TOUCH_EVERY_MS = 60_000;
/** Known countries per subject are trusted in process this long (our own writes update it at once). */
const SEEN_CACHE_MS = 30_000;

function resultOf(event: string): AuditResult {
  return SUCCESS.has(event) ? 'success' : FAILURE.has(event) ? 'failure' : 'info';
}

/** Which fields of an event are columns; the rest (numbers, flags, masked destinations) go to detail. */
function toRecord(ctx: AuditContext, event: AuditEvent, at: number, signals: Signals): AuditRecord {
  const detail: Record<string, string | number | boolean> = {};
  let factorId: string | undefined;
  let method: string | undefined;
  let reason: string | undefined;
  for (const [key, value] of Object.entries(event)) {
    if (key === 'event' || value === undefined) continue;
    if (key === 'factorId') factorId = String(value);
    else if (key === 'method' || key === 'type' || key === 'channel') method ??= String(value);
    else if (key === 'reason') reason = String(value);
    else if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') detail[key] = value;
  }
  return {
    at,
    subject: ctx.subject,
    event: event.event,
    result: resultOf(event.event),
    requestId: ctx.requestId,
    clientIp: ctx.clientIp,
    country: signals.country,
    device: signals.device,
    route: ctx.view?.path,
    factorId,
    method,
    reason,
    detail,
  };
}

export function createEventHub(options: EventHubOptions): EventHub {
  const { store, clock, logger } = options;
  const signalReader = createSignalReader();
  const deliveries = new Counter({ name: 'mfa_gateway_webhook_deliveries_total', help: 'Alert deliveries (webhooks and e-mails) by result: success, retry (failed, will retry), dead (failed past the retry window).', labelNames: ['result', 'kind'], registers: [options.registry] });
  const deadLetters = new Counter({ name: 'mfa_gateway_webhook_dead_letters_total', help: 'Alert deliveries given up after the retry window (kept as dead letters, GET /admin/outbox?state=dead).', labelNames: ['kind'], registers: [options.registry] });
  const dropped = new Counter({ name: 'mfa_gateway_audit_dropped_total', help: 'Audit records dropped because the store did not take them for too long (buffer full).', registers: [options.registry] });
  for (const result of ['success', 'retry', 'dead']) for (const kind of ['webhook', 'email']) deliveries.inc({ result, kind }, 0);

  let audit: AuditRecord[] = [];
  let outbox: NewOutboxItem[] = [];
  let flushing: Promise<void> | undefined;
  let closed = false;

  const dispatcher = createDispatcher({
    store,
    clock,
    policy: options.policy,
    logger,
    counters: {
      delivered(result, kind) {
        deliveries.inc({ result, kind });
        if (result === 'dead') deadLetters.inc({ kind });
      },
    },
    email: {
      async send(item, policy) {
        const mailer = options.delivery.sender('email', policy.mfa);
        if (mailer === undefined) throw new Error('no SMTP settings in the running policy');
        const body = JSON.parse(item.payload) as { subject: string; text: string; to_subject?: string };
        const to = item.target === 'admin' ? policy.events.notify.adminEmail : await userAddress(body.to_subject ?? '', clock());
        if (to === undefined) throw new Error('no address to send to');
        await mailer.send({ to, subject: body.subject, text: body.text });
      },
    },
  });

  /** The subject's verified e-mail contact (the oldest active one), opened only to send. */
  async function userAddress(subject: string, now: number): Promise<string | undefined> {
    const contacts = await options.durable.listContacts(subject, now);
    const contact = contacts.find((c) => c.channel === 'email' && c.status === 'active');
    if (contact === undefined) return undefined;
    return options.keyring.open(contact.destination, { subject, factorId: contact.id }).toString('utf8');
  }

  function schedule(): void {
    if (closed) return;
    const timer = setTimeout(() => {
      void flush().finally(schedule);
    }, options.policy().events.audit.flushIntervalMs);
    timer.unref();
  }
  schedule();
  // Retention: every replica purges hourly; the deletes are idempotent.
  const purgeTimer = setInterval(() => {
    const now = clock();
    void Promise.all([store.purgeAudit(now - options.policy().events.audit.retentionMs), store.purgeOutbox(now - options.policy().events.audit.retentionMs)]).catch(() => undefined);
  }, 3_600_000);
  purgeTimer.unref();

  async function writeOnce(): Promise<void> {
    if (audit.length === 0 && outbox.length === 0) return;
    const [a, o] = [audit, outbox];
    audit = [];
    outbox = [];
    try {
      await store.append(a, o);
    } catch (error) {
      // Kept for the next round, oldest first; past the bound the oldest audit records go (alerts stay).
      audit = a.concat(audit);
      outbox = o.concat(outbox);
      if (audit.length > MAX_BUFFERED) {
        dropped.inc(audit.length - MAX_BUFFERED);
        audit = audit.slice(audit.length - MAX_BUFFERED);
      }
      logger.warn({ event: 'audit_write_failed', buffered: audit.length + outbox.length, error: error instanceof Error ? error.message : String(error) }, 'audit trail not written; retrying');
      return;
    }
    if (o.length > 0) dispatcher.wake();
  }

  function flush(): Promise<void> {
    flushing ??= writeOnce().finally(() => (flushing = undefined));
    return flushing;
  }

  // ---- rules ----

  function alert(type: AlertType, ctx: { subject: string; requestId?: string | undefined; clientIp?: string | undefined }, signals: Signals, detail: Record<string, string | number | boolean>, policy: GatewayPolicy, at: number): void {
    const id = randomUUID();
    const payload = {
      id,
      type,
      created_at: new Date(at).toISOString(),
      subject: ctx.subject,
      ...(ctx.requestId !== undefined ? { request_id: ctx.requestId } : {}),
      ...(ctx.clientIp !== undefined ? { client_ip: ctx.clientIp } : {}),
      ...(signals.country !== undefined ? { country: signals.country } : {}),
      ...(signals.device !== undefined ? { device: signals.device } : {}),
      detail,
    };
    const body = JSON.stringify(payload);
    for (const hook of policy.events.webhooks) {
      if (hook.events !== undefined && !hook.events.includes(type)) continue;
      outbox.push({ id: `${id}.${hook.name}`, kind: 'webhook', target: hook.name, event: type, payload: body, createdAt: at });
    }
    const admin = type !== 'new_device' && policy.events.notify.adminEmail !== undefined && policy.mfa.email.smtp !== undefined;
    if (admin) {
      const text = `Security alert from ${policy.mfa.issuer}: ${type.replace(/_/g, ' ')}\n\nuser: ${ctx.subject}\ntime: ${payload.created_at}\n${ctx.clientIp !== undefined ? `address: ${ctx.clientIp}\n` : ''}${signals.country !== undefined ? `country: ${signals.country}\n` : ''}${Object.entries(detail).map(([k, v]) => `${k}: ${String(v)}\n`).join('')}`;
      outbox.push({ id: `${id}.admin`, kind: 'email', target: 'admin', event: type, payload: JSON.stringify({ subject: `[${policy.mfa.issuer}] security alert: ${type.replace(/_/g, ' ')}`, text }), createdAt: at });
    }
    audit.push({ at, subject: ctx.subject, event: `alert_${type}`, result: 'info', requestId: ctx.requestId, clientIp: ctx.clientIp, country: signals.country, device: signals.device, detail: { alert_id: id, ...detail } });
  }

  // In-process windows (per replica): failed subjects per address, backup methods per subject.
  const failuresByIp = new Map<string, Map<string, number>>();
  const alertedIp = new Map<string, number>();
  const backupUses = new Map<string, { method: string; at: number }[]>();

  function ipFailures(ctx: AuditContext, policy: GatewayPolicy, at: number, signals: Signals): void {
    const rule = policy.events.rules.ipFailures;
    if (!rule.enabled || ctx.clientIp === undefined) return;
    let subjects = failuresByIp.get(ctx.clientIp);
    if (subjects === undefined) failuresByIp.set(ctx.clientIp, (subjects = new Map()));
    subjects.set(ctx.subject, at);
    for (const [s, t] of subjects) if (at - t > rule.windowMs) subjects.delete(s);
    if (failuresByIp.size > 10_000) failuresByIp.delete(failuresByIp.keys().next().value!);
    if (subjects.size >= rule.users && at - (alertedIp.get(ctx.clientIp) ?? -Infinity) > rule.windowMs) {
      alertedIp.set(ctx.clientIp, at);
      alert('ip_failures', ctx, signals, { users: subjects.size, window_seconds: Math.round(rule.windowMs / 1000) }, policy, at);
    }
  }

  function backupSwitching(ctx: AuditContext, methodUsed: string, policy: GatewayPolicy, at: number, signals: Signals): void {
    const rule = policy.events.rules.backupSwitching;
    if (!rule.enabled) return;
    const uses = (backupUses.get(ctx.subject) ?? []).filter((u) => at - u.at <= rule.windowMs);
    uses.push({ method: methodUsed, at });
    backupUses.set(ctx.subject, uses);
    let switches = 0;
    for (let i = 1; i < uses.length; i++) if (uses[i]!.method !== uses[i - 1]!.method) switches++;
    if (switches >= rule.switches) {
      backupUses.delete(ctx.subject);
      alert('backup_switching', ctx, signals, { switches, window_seconds: Math.round(rule.windowMs / 1000) }, policy, at);
    }
  }

  // ---- first-seen signals ----

  // Each entry carries its own time, which decides; the maps' lifetimes only let sweeps free them.
  const seenCache = new ExpiringMap<string, { at: number; values: Map<string, number> }>(10_000, SEEN_CACHE_MS);
  const touched = new ExpiringMap<string, number>(50_000, TOUCH_EVERY_MS);

  async function seenOf(subject: string, now: number): Promise<Map<string, number>> {
    const cached = seenCache.get(subject);
    if (cached !== undefined && now - cached.at < SEEN_CACHE_MS) return cached.values;
    const values = new Map((await store.listSeen(subject)).map((s) => [`${s.kind}:${s.value}`, s.lastSeen] as const));
    seenCache.set(subject, { at: now, values });
    return values;
  }

  /**
   * Records the value seen now; true when this call saw it first. The store write is skipped when
   * this process wrote it within a minute: rows are never deleted, so it is there and not new.
   */
  async function see(subject: string, kind: 'country' | 'device', value: string, now: number): Promise<boolean> {
    const key = `${subject}\0${kind}:${value}`;
    if ((touched.get(key) ?? -Infinity) > now - TOUCH_EVERY_MS) return false;
    const first = await store.markSeen(subject, kind, value, now);
    // Only once written: a failed write is tried again by the next request, not skipped for a minute.
    touched.set(key, now);
    seenCache.get(subject)?.values.set(`${kind}:${value}`, now);
    return first;
  }

  /** A second factor passed here: the country and device become known; a new device is told to its user. */
  async function learn(caller: RiskCaller): Promise<void> {
    const { country, device } = signalReader.of(caller.view, caller.policy.events.signals);
    const { subject, now } = caller;
    // Both writes in one store round trip (one group commit on SQLite).
    const [, first] = await Promise.all([
      country === undefined ? undefined : see(subject, 'country', country, now),
      device === undefined ? false : see(subject, 'device', device, now),
    ]);
    if (device === undefined || !first || !caller.policy.events.rules.newDevice) return;
    // The very first device is the one the user enrolled on: nothing new to tell. Read only for a
    // device seen first just now, so a pass from a known device costs one write and no read.
    const seen = await store.listSeen(subject);
    if (!seen.some((s) => s.kind === 'device' && s.value !== device)) return;
    const ctx = { subject, requestId: caller.view.requestId, clientIp: caller.view.clientIp };
    alert('new_device', ctx, { ...(country !== undefined ? { country } : {}), device }, {}, caller.policy, now);
    if (caller.policy.mfa.email.smtp !== undefined) {
      const policy = caller.policy;
      const when = new Date(now).toISOString();
      const text = `A new device passed the second factor for your account at ${policy.mfa.issuer}.\n\ntime: ${when}\naddress: ${caller.view.clientIp}\n${country !== undefined ? `country: ${country}\n` : ''}\nIf this was not you, revoke your sessions and contact your administrator.`;
      outbox.push({ id: `${randomUUID()}.user`, kind: 'email', target: 'user', event: 'new_device', payload: JSON.stringify({ subject: `[${policy.mfa.issuer}] new device signed in`, text, to_subject: subject }), createdAt: now });
    }
  }

  /** A request from `country`: learnt, or a step-up (and the alert) when the rules ask for one. */
  async function countryRisk(caller: RiskCaller, signals: Signals, country: string): Promise<'country_change' | undefined> {
    const rules = caller.policy.events.rules;
    const seen = await seenOf(caller.subject, caller.now);
    const countries = [...seen].filter(([k]) => k.startsWith('country:'));
    if (countries.length === 0) {
      // Nothing known yet (sessions older than this feature): learn, do not challenge.
      await see(caller.subject, 'country', country, caller.now);
      return undefined;
    }
    const ctx = { subject: caller.subject, requestId: caller.view.requestId, clientIp: caller.view.clientIp };
    if (rules.twoCountries.enabled) {
      const other = countries.find(([k, last]) => k !== `country:${country}` && caller.now - last <= rules.twoCountries.windowMs);
      if (other !== undefined) {
        const ended = await options.endSessions(caller.subject, caller.now);
        alert('two_countries', ctx, signals, { other_country: other[0].slice('country:'.length), window_seconds: Math.round(rules.twoCountries.windowMs / 1000), sessions_ended: ended }, caller.policy, caller.now);
        seenCache.delete(caller.subject);
        return 'country_change';
      }
    }
    if (!seen.has(`country:${country}`)) {
      if (!rules.countryChange) {
        // No step-up wanted: the country is simply learnt, so two_countries can see it.
        await see(caller.subject, 'country', country, caller.now);
        return undefined;
      }
      alert('country_change', ctx, signals, { known_countries: countries.map(([k]) => k.slice('country:'.length)).join(',') }, caller.policy, caller.now);
      return 'country_change';
    }
    // Known: keep its last-seen time current (at most once a minute), off the request path.
    see(caller.subject, 'country', country, caller.now).catch(() => undefined);
    return undefined;
  }

  return {
    record(ctx, event) {
      const policy = ctx.policy ?? options.policy();
      if (closed) return;
      const at = clock();
      let signals: Signals = {};
      try {
        if (ctx.view !== undefined) signals = signalReader.of(ctx.view, policy.events.signals);
      } catch (error) {
        logger.warn({ event: 'risk_signals_failed', error: error instanceof Error ? error.message : String(error) }, 'risk signals unreadable');
      }
      if (policy.events.audit.enabled) {
        audit.push(toRecord(ctx, event, at, signals));
        if (audit.length > MAX_BUFFERED) {
          dropped.inc();
          audit.shift();
        }
      }
      const rules = policy.events.rules;
      switch (event.event) {
        case 'recovery_code_used':
          if (rules.recoveryCodeUsed) alert('recovery_code_used', ctx, signals, { remaining: event.remaining }, policy, at);
          backupSwitching(ctx, 'recovery', policy, at, signals);
          break;
        case 'backup_contact_used':
          backupSwitching(ctx, `contact:${event.factorId}`, policy, at, signals);
          break;
        case 'locked':
          if (rules.lockout) alert('lockout', ctx, signals, { retry_after_seconds: event.retryAfterSeconds, level: event.level }, policy, at);
          break;
        case 'failed':
          ipFailures(ctx, policy, at, signals);
          break;
        default:
          break;
      }
    },

    riskCheck(caller) {
      const rules = caller.policy.events.rules;
      const sources = caller.policy.events.signals;
      if ((!rules.countryChange && !rules.twoCountries.enabled) || (sources.countryHeader === undefined && sources.geoipDatabase === undefined)) return undefined;
      const signals = signalReader.of(caller.view, sources);
      if (signals.country === undefined) return undefined;
      return countryRisk(caller, signals, signals.country);
    },

    async passed(caller) {
      try {
        await learn(caller);
      } catch (error) {
        // The factor did pass: not learning only means the next request from here is asked again (fail closed).
        logger.warn({ event: 'risk_signals_failed', error: error instanceof Error ? error.message : String(error) }, 'country / device not recorded');
      }
    },

    flush,
    dispatcher,
    store,
    async purge(now) {
      const retention = options.policy().events.audit.retentionMs;
      const [a, o] = await Promise.all([store.purgeAudit(now - retention), store.purgeOutbox(now - retention)]);
      return { audit: a, outbox: o };
    },
    async close() {
      // Everything recorded before the close is written (clean shutdown loses nothing), then delivery stops.
      await flush();
      if (audit.length > 0 || outbox.length > 0) await writeOnce();
      closed = true;
      clearInterval(purgeTimer);
      await dispatcher.close();
    },
  };
}

export type { OutboxItem };
