/**
 * The range of every duration in the policy file, in milliseconds, both ends included. The JSON
 * Schema holds the other bounds (integers, lengths, patterns); durations are strings to it, so
 * their ranges live here and compile.ts enforces them. Together the two are the one place where a
 * policy value is checked: code past the loader relies on a GatewayPolicy being in range and does
 * not check it again. The schema's descriptions quote these ranges for editors, and
 * test/config/bounds.test.ts keeps the two in step.
 */
import { RATE_LIMIT_PER_BOUNDS, STEP_UP_MAX_AGE_BOUNDS } from '../routes/compile.js';

export interface DurationBounds {
  readonly min: number;
  readonly max: number;
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** Keyed by where the duration sits: `*` stands for an upstream's name, `[]` for a list's items. */
export const DURATION_BOUNDS = {
  // max-age=0 is how a site tells browsers to forget HSTS; two years is the longest value in common use.
  'listen.tls.hsts.max_age': { min: 0, max: 730 * DAY },
  'auth.jwt.clock_tolerance': { min: 0, max: 5 * MINUTE },
  'auth.jwt.jwks.cooldown': { min: 1, max: HOUR },
  'auth.jwt.jwks.timeout': { min: 1, max: MINUTE },
  'auth.jwt.jwks.cache_max_age': { min: SECOND, max: DAY },
  'auth.jwt.cache.max_ttl': { min: 0, max: HOUR },
  // The source document's MFA session is 12–24 h; shorter ones are allowed for tests and demos.
  'mfa.session.ttl': { min: MINUTE, max: DAY },
  'mfa.lockout.find_time': { min: SECOND, max: DAY },
  'mfa.lockout.backoff[]': { min: SECOND, max: DAY },
  'mfa.ip_throttle.find_time': { min: SECOND, max: DAY },
  'mfa.ip_throttle.block': { min: SECOND, max: DAY },
  'mfa.enrollment.pending_ttl': { min: MINUTE, max: HOUR },
  // The source document's e-mail/SMS codes live 10 minutes; a code older than an hour is no longer "one-time".
  'mfa.codes.ttl': { min: MINUTE, max: HOUR },
  'mfa.codes.send_limits.per_user.per': { min: SECOND, max: DAY },
  'mfa.codes.send_limits.per_destination.per': { min: SECOND, max: DAY },
  'mfa.email.smtp.timeout': { min: SECOND, max: MINUTE },
  'mfa.sms.provider.timeout': { min: SECOND, max: MINUTE },
  // Factor lifetimes: the source document renews security keys every 2 years, biometrics every year.
  'mfa.totp.max_age': { min: DAY, max: 3650 * DAY },
  'mfa.hotp.max_age': { min: DAY, max: 3650 * DAY },
  'mfa.webauthn.max_age.security_key': { min: DAY, max: 3650 * DAY },
  'mfa.webauthn.max_age.platform': { min: DAY, max: 3650 * DAY },
  // A WebAuthn ceremony: the browser's own timeout hints run from 30 s to 10 min.
  'mfa.webauthn.timeout': { min: 30 * SECOND, max: 10 * MINUTE },
  // Branch events: the source document's webhooks time out after 5 s and retry for 72 h.
  'events.audit.retention': { min: DAY, max: 3650 * DAY },
  'events.audit.flush_interval': { min: 10, max: 5 * SECOND },
  'events.rules.two_countries.window': { min: MINUTE, max: DAY },
  'events.rules.ip_failures.window': { min: SECOND, max: DAY },
  'events.rules.backup_switching.window': { min: MINUTE, max: 7 * DAY },
  'events.delivery.timeout': { min: 100, max: 30 * SECOND },
  'events.delivery.retry_window': { min: MINUTE, max: 7 * DAY },
  'events.delivery.poll_interval': { min: 10, max: MINUTE },
  'keys.rotation': { min: DAY, max: 3650 * DAY },
  'store.postgres.pool.idle_timeout': { min: SECOND, max: HOUR },
  'store.postgres.connect_timeout': { min: 100, max: MINUTE },
  'store.postgres.statement_timeout': { min: 10, max: MINUTE },
  'store.redis.connect_timeout': { min: 100, max: MINUTE },
  'store.redis.command_timeout': { min: 10, max: MINUTE },
  'limits.drain_timeout': { min: 0, max: 10 * MINUTE },
  // RFC 4330 §10: an SNTP client must not poll more often than every 15 s.
  'clock.interval': { min: 15 * SECOND, max: DAY },
  'clock.timeout': { min: 100, max: 10 * SECOND },
  // Upstream keep-alive 60 s by default, 300 s at most; request timeout 10 s, 30 s at most.
  'upstreams.*.pool.keep_alive': { min: SECOND, max: 300 * SECOND },
  'upstreams.*.pool.keep_alive_max': { min: SECOND, max: 300 * SECOND },
  'upstreams.*.timeout': { min: 1, max: 30 * SECOND },
  'upstreams.*.connect_timeout': { min: 1, max: 30 * SECOND },
  'upstreams.*.retries.initial': { min: 1, max: 30 * SECOND },
  'upstreams.*.retries.jitter': { min: 0, max: 10 * SECOND },
  // Compiled with the routes, so the bound is defined there.
  'routes[].max_age': STEP_UP_MAX_AGE_BOUNDS,
  'routes[].rate_limit.per': RATE_LIMIT_PER_BOUNDS,
} as const satisfies Readonly<Record<string, DurationBounds>>;

export type DurationKey = keyof typeof DURATION_BOUNDS;
