import { DURATION_BOUNDS, type DurationBounds } from './bounds.js';
import { parsedUrl, type Add, type Segment } from './locate.js';
import type { CodesConfig, EmailConfig, SmsConfig, SmsProviderConfig, SmtpConfig } from './types.js';

/**
 * The `mfa.codes`, `mfa.email`, `mfa.sms` and `mfa.backup_contact` blocks: codes sent out of band.
 * Secrets come from the environment (`*_env`), as the store's URLs do, and never reach a message.
 * Plain-text transports (SMTP without TLS, an http:// provider) are allowed only to this machine.
 */

interface RawSendLimit {
  readonly sends: number;
  readonly per: string;
}

export interface RawOob {
  readonly codes: {
    readonly ttl: string;
    readonly max_attempts: number;
    readonly message: string;
    readonly send_limits: { readonly per_user: RawSendLimit; readonly per_destination: RawSendLimit };
  };
  readonly email: {
    readonly factor: boolean;
    readonly from?: string;
    readonly subject: string;
    readonly smtp?: {
      readonly host: string;
      readonly port?: number;
      readonly security: 'starttls' | 'tls' | 'none';
      readonly username?: string;
      readonly password_env?: string;
      readonly timeout: string;
    };
  };
  readonly sms: {
    readonly factor: boolean;
    readonly provider?:
      | {
          readonly kind: 'http';
          readonly url: string;
          readonly auth_header: string;
          readonly auth_env?: string;
          readonly content_type: 'application/json' | 'application/x-www-form-urlencoded';
          readonly body: string;
          readonly timeout: string;
        }
      | {
          readonly kind: 'twilio';
          readonly account_sid: string;
          readonly auth_token_env: string;
          readonly from?: string;
          readonly messaging_service_sid?: string;
          readonly api_url: string;
          readonly timeout: string;
        };
  };
  readonly backup_contact: { readonly enabled: boolean };
}

export interface OobContext {
  readonly env: Readonly<Record<string, string | undefined>>;
}

type Duration = (path: readonly Segment[], text: string, bounds: DurationBounds) => number;

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** Whether `host` is this machine: the only place a plain-text transport may go. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase()) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** The value of the environment variable `name`, or an issue at `path` (never showing a value). */
function secretFrom(ctx: OobContext, name: string, path: readonly Segment[], add: Add): string | undefined {
  const value = ctx.env[name];
  if (value === undefined || value === '') {
    add(path, `environment variable ${name} is not set`);
    return undefined;
  }
  // A header value or SMTP command with a line break could smuggle another one in.
  if (/[\r\n\0]/.test(value)) {
    add(path, `environment variable ${name} holds a line break or NUL`);
    return undefined;
  }
  return value;
}

/** An http(s) URL of a provider: https, or http to this machine only; no user info. */
function providerUrl(text: string, path: readonly Segment[], add: Add): string {
  const url = parsedUrl(text, path, add);
  if (url === undefined) return text;
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) add(path, 'must use https (http only to a loopback host)');
  return url.href.replace(/\/$/, '');
}

/** The body template filled with sample values is what the provider will get: for JSON, it must parse. */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>, escape: (value: string) => string = (v) => v): string {
  return template.replace(/\{([a-z]+)\}/g, (whole, name: string) => (Object.hasOwn(values, name) ? escape(values[name]!) : whole));
}

/** A value escaped for the inside of a JSON string, or for a form field. */
export function escapeFor(contentType: 'application/json' | 'application/x-www-form-urlencoded'): (value: string) => string {
  return contentType === 'application/json' ? (value) => JSON.stringify(value).slice(1, -1) : (value) => encodeURIComponent(value);
}

function compileProvider(raw: NonNullable<RawOob['sms']['provider']>, ctx: OobContext, add: Add, duration: Duration): SmsProviderConfig | undefined {
  const base: Segment[] = ['mfa', 'sms', 'provider'];
  const timeoutMs = duration([...base, 'timeout'], raw.timeout, DURATION_BOUNDS['mfa.sms.provider.timeout']);
  if (raw.kind === 'http') {
    const url = providerUrl(raw.url, [...base, 'url'], add);
    for (const name of ['to', 'message']) if (!raw.body.includes(`{${name}}`)) add([...base, 'body'], `must contain {${name}}`);
    if (raw.content_type === 'application/json') {
      try {
        JSON.parse(fillTemplate(raw.body, { to: '+15550100', message: 'a "quoted"\nmessage' }, escapeFor(raw.content_type)));
      } catch {
        add([...base, 'body'], 'is not JSON once {to} and {message} are filled in (put them inside quotes)');
      }
    }
    const authValue = raw.auth_env === undefined ? undefined : secretFrom(ctx, raw.auth_env, [...base, 'auth_env'], add);
    return { kind: 'http', url, authHeader: raw.auth_header, ...(authValue !== undefined ? { authValue } : {}), contentType: raw.content_type, body: raw.body, timeoutMs };
  }
  if ((raw.from === undefined) === (raw.messaging_service_sid === undefined)) add(base, 'needs from or messaging_service_sid (one of them)');
  const apiUrl = providerUrl(raw.api_url, [...base, 'api_url'], add);
  const authToken = secretFrom(ctx, raw.auth_token_env, [...base, 'auth_token_env'], add);
  if (authToken === undefined) return undefined;
  return {
    kind: 'twilio',
    apiUrl,
    accountSid: raw.account_sid,
    authToken,
    ...(raw.from !== undefined ? { from: raw.from } : {}),
    ...(raw.messaging_service_sid !== undefined ? { messagingServiceSid: raw.messaging_service_sid } : {}),
    timeoutMs,
  };
}

function compileSmtp(raw: NonNullable<RawOob['email']['smtp']>, ctx: OobContext, add: Add, duration: Duration): SmtpConfig {
  const base: Segment[] = ['mfa', 'email', 'smtp'];
  if (raw.security === 'none' && !isLoopbackHost(raw.host)) add([...base, 'security'], 'none (plain text) is allowed only to a loopback host; use starttls or tls');
  if (raw.password_env !== undefined && raw.username === undefined) add([...base, 'password_env'], 'needs username');
  const password = raw.password_env === undefined ? undefined : secretFrom(ctx, raw.password_env, [...base, 'password_env'], add);
  return {
    host: raw.host,
    port: raw.port ?? (raw.security === 'tls' ? 465 : 587),
    security: raw.security,
    ...(raw.username !== undefined ? { username: raw.username } : {}),
    ...(password !== undefined ? { password } : {}),
    timeoutMs: duration([...base, 'timeout'], raw.timeout, DURATION_BOUNDS['mfa.email.smtp.timeout']),
  };
}

export function compileOob(raw: RawOob, ctx: OobContext, add: Add, duration: Duration): { codes: CodesConfig; email: EmailConfig; sms: SmsConfig; backupContact: { enabled: boolean } } {
  const limits = raw.codes.send_limits;
  const codes: CodesConfig = {
    ttlMs: duration(['mfa', 'codes', 'ttl'], raw.codes.ttl, DURATION_BOUNDS['mfa.codes.ttl']),
    maxAttempts: raw.codes.max_attempts,
    message: raw.codes.message,
    sendLimits: {
      perUser: { sends: limits.per_user.sends, perMs: duration(['mfa', 'codes', 'send_limits', 'per_user', 'per'], limits.per_user.per, DURATION_BOUNDS['mfa.codes.send_limits.per_user.per']) },
      perDestination: {
        sends: limits.per_destination.sends,
        perMs: duration(['mfa', 'codes', 'send_limits', 'per_destination', 'per'], limits.per_destination.per, DURATION_BOUNDS['mfa.codes.send_limits.per_destination.per']),
      },
    },
  };

  const smtp = raw.email.smtp === undefined ? undefined : compileSmtp(raw.email.smtp, ctx, add, duration);
  if (smtp !== undefined && raw.email.from === undefined) add(['mfa', 'email', 'from'], 'is required with smtp');
  if (raw.email.factor && smtp === undefined) add(['mfa', 'email', 'factor'], 'needs mfa.email.smtp to send the codes');
  const email: EmailConfig = { factor: raw.email.factor, subject: raw.email.subject, ...(raw.email.from !== undefined ? { from: raw.email.from } : {}), ...(smtp !== undefined ? { smtp } : {}) };

  const provider = raw.sms.provider === undefined ? undefined : compileProvider(raw.sms.provider, ctx, add, duration);
  const sms: SmsConfig = { factor: raw.sms.factor, ...(provider !== undefined ? { provider } : {}) };

  if (raw.backup_contact.enabled && smtp === undefined && raw.sms.provider === undefined) {
    add(['mfa', 'backup_contact', 'enabled'], 'needs mfa.email.smtp or mfa.sms.provider to send the codes');
  }
  return { codes, email, sms, backupContact: { enabled: raw.backup_contact.enabled } };
}
