import { resolve } from 'node:path';
import { DURATION_BOUNDS, type DurationKey } from './bounds.js';
import { parsedUrl, type Add, type Segment } from './locate.js';
import type { EventsConfig } from './types.js';

/**
 * The `events:` block (issue 13): audit trail, risk signals, rules, notifications and webhooks.
 * Webhook secrets come from the environment, as other secrets do, and never reach a message.
 */

interface RawRule {
  readonly enabled: boolean;
}

export interface RawEvents {
  readonly audit: { readonly enabled: boolean; readonly retention: string; readonly flush_interval: string };
  readonly signals: { readonly country_header?: string; readonly geoip_database?: string; readonly device_header: string };
  readonly rules: {
    readonly country_change: RawRule;
    readonly new_device: RawRule;
    readonly recovery_code_used: RawRule;
    readonly lockout: RawRule;
    readonly two_countries: RawRule & { readonly window: string };
    readonly ip_failures: RawRule & { readonly users: number; readonly window: string };
    readonly backup_switching: RawRule & { readonly switches: number; readonly window: string };
  };
  readonly notify: { readonly admin_email?: string };
  readonly delivery: { readonly timeout: string; readonly retry_window: string; readonly poll_interval: string };
  readonly webhooks: readonly { readonly name: string; readonly url: string; readonly secret_env: string; readonly events?: readonly string[] }[];
}

type Duration = (path: readonly Segment[], text: string, bounds: { min: number; max: number }) => number;

/** A shorter HMAC key is guessable offline from one signed payload. */
export const MIN_WEBHOOK_SECRET_LENGTH = 16;

export function compileEvents(raw: RawEvents, ctx: { readonly baseDir: string; readonly env: Readonly<Record<string, string | undefined>> }, add: Add, duration: Duration): EventsConfig {
  const d = (key: DurationKey, text: string): number => duration(key.split('.'), text, DURATION_BOUNDS[key]);
  const names = new Set<string>();
  const webhooks = raw.webhooks.map((hook, i) => {
    const path: Segment[] = ['events', 'webhooks', i];
    if (names.has(hook.name)) add([...path, 'name'], `webhook "${hook.name}" is named twice`);
    names.add(hook.name);
    const url = parsedUrl(hook.url, [...path, 'url'], add);
    if (url !== undefined && (url.username !== '' || url.password !== '')) add([...path, 'url'], 'must not carry user info');
    const secret = ctx.env[hook.secret_env] ?? '';
    if (secret.length < MIN_WEBHOOK_SECRET_LENGTH) add([...path, 'secret_env'], `environment variable ${hook.secret_env} must hold a secret of at least ${MIN_WEBHOOK_SECRET_LENGTH} characters`);
    return { name: hook.name, url: hook.url, secret, ...(hook.events !== undefined ? { events: [...hook.events] } : {}) };
  });
  const r = raw.rules;
  return {
    audit: { enabled: raw.audit.enabled, retentionMs: d('events.audit.retention', raw.audit.retention), flushIntervalMs: d('events.audit.flush_interval', raw.audit.flush_interval) },
    signals: {
      ...(raw.signals.country_header !== undefined ? { countryHeader: raw.signals.country_header.toLowerCase() } : {}),
      ...(raw.signals.geoip_database !== undefined ? { geoipDatabase: resolve(ctx.baseDir, raw.signals.geoip_database) } : {}),
      deviceHeader: raw.signals.device_header.toLowerCase(),
    },
    rules: {
      countryChange: r.country_change.enabled,
      newDevice: r.new_device.enabled,
      recoveryCodeUsed: r.recovery_code_used.enabled,
      lockout: r.lockout.enabled,
      twoCountries: { enabled: r.two_countries.enabled, windowMs: d('events.rules.two_countries.window', r.two_countries.window) },
      ipFailures: { enabled: r.ip_failures.enabled, users: r.ip_failures.users, windowMs: d('events.rules.ip_failures.window', r.ip_failures.window) },
      backupSwitching: { enabled: r.backup_switching.enabled, switches: r.backup_switching.switches, windowMs: d('events.rules.backup_switching.window', r.backup_switching.window) },
    },
    notify: { ...(raw.notify.admin_email !== undefined ? { adminEmail: raw.notify.admin_email } : {}) },
    delivery: {
      timeoutMs: d('events.delivery.timeout', raw.delivery.timeout),
      retryWindowMs: d('events.delivery.retry_window', raw.delivery.retry_window),
      pollIntervalMs: d('events.delivery.poll_interval', raw.delivery.poll_interval),
    },
    webhooks,
  };
}
