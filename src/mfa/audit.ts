import type { GatewayPolicy } from '../config/types.js';
import type { Logger } from '../log/logger.js';
import type { RequestView } from '../request/view.js';
import type { MfaMethod } from '../decision/types.js';
import type { ContactChannel, ContactPurpose, FactorType, WebAuthnKind } from '../store/types.js';

/**
 * Audit events of the second factor, on their own logger (`name: audit`). Each says who (subject),
 * on which request (request id, client ip) and which factor, never what: no secret, code, token or
 * full token hash is ever a field here, and the typed events leave no place to put one.
 */

export type FailureReason = 'wrong' | 'replay' | 'malformed' | 'drift';
/** Why an assertion was refused (the audit log tells them apart; the client gets one answer). */
export type WebAuthnFailure = 'webauthn_unknown_credential' | 'webauthn_challenge' | 'webauthn_unverified' | 'webauthn_counter';

export type AuditEvent =
  | { readonly event: 'enrolled'; readonly factorId: string; readonly type: FactorType | ContactChannel; readonly purpose?: ContactPurpose }
  | { readonly event: 'confirmed'; readonly factorId: string; readonly type: FactorType | ContactChannel; readonly purpose?: ContactPurpose }
  | { readonly event: 'verified'; readonly method: MfaMethod; readonly factorId?: string | undefined }
  | { readonly event: 'failed'; readonly reason: FailureReason | WebAuthnFailure; readonly factorId?: string | undefined; readonly driftSeconds?: number | undefined }
  | { readonly event: 'replay'; readonly method: MfaMethod; readonly factorId?: string | undefined }
  | { readonly event: 'locked'; readonly retryAfterSeconds: number; readonly level: number }
  | { readonly event: 'lock_refused'; readonly retryAfterSeconds: number }
  | { readonly event: 'address_blocked'; readonly retryAfterSeconds: number; readonly failures: number }
  | { readonly event: 'address_block_refused'; readonly retryAfterSeconds: number }
  | { readonly event: 'recovery_code_used'; readonly remaining: number }
  | { readonly event: 'recovery_codes_generated'; readonly count: number }
  | { readonly event: 'session_issued'; readonly sessionId: string; readonly method: MfaMethod; readonly expiresAt: number }
  | { readonly event: 'session_revoked'; readonly sessionId: string }
  | { readonly event: 'session_refreshed'; readonly sessionId: string; readonly previousSessionId: string }
  | { readonly event: 'factor_removed'; readonly factorId: string }
  | { readonly event: 'pending_factor_voided'; readonly factorId: string }
  | { readonly event: 'sessions_revoked'; readonly count: number; readonly reason: 'user' | 'factor_removed' | 'operator' }
  | { readonly event: 'hotp_resynced'; readonly factorId: string }
  | { readonly event: 'factor_unreadable'; readonly factorId: string }
  // Codes sent by e-mail or SMS: `destination` is always masked (a***@e***.com, +44*******89).
  | { readonly event: 'code_sent'; readonly factorId: string; readonly channel: ContactChannel; readonly destination: string }
  | { readonly event: 'code_send_failed'; readonly factorId: string; readonly channel: ContactChannel; readonly destination: string; readonly reason: string }
  | { readonly event: 'code_send_limited'; readonly factorId: string; readonly limit: 'user' | 'destination'; readonly retryAfterSeconds: number }
  | { readonly event: 'backup_contact_used'; readonly factorId: string }
  | { readonly event: 'webauthn_registered'; readonly factorId: string; readonly kind: WebAuthnKind; readonly synced: boolean }
  | { readonly event: 'factor_renamed'; readonly factorId: string }
  | { readonly event: 'factor_expired'; readonly factorId?: string | undefined }
  | { readonly event: 'method_not_accepted'; readonly offered: string }
  // Adaptive step-up: a valid session was not enough for this request (events.rules).
  | { readonly event: 'risk_step_up'; readonly reason: 'country_change' };

export interface AuditContext {
  readonly subject: string;
  readonly requestId?: string | undefined;
  readonly clientIp?: string | undefined;
  /** The request and the policy it pinned, for the audit trail's signals and rules (never logged as such). */
  readonly view?: RequestView | undefined;
  readonly policy?: GatewayPolicy | undefined;
}

/** Where each audit event goes besides the log line: the durable trail and the rules (src/events). */
export type AuditSink = (ctx: AuditContext, event: AuditEvent) => void;

export interface AuditLog {
  record(ctx: AuditContext, event: AuditEvent): void;
}

const SNAKE: Readonly<Record<string, string>> = {
  factorId: 'factor_id',
  driftSeconds: 'drift_seconds',
  retryAfterSeconds: 'retry_after_seconds',
  sessionId: 'session_id',
  previousSessionId: 'previous_session_id',
  expiresAt: 'expires_at',
};

const WARNINGS: ReadonlySet<AuditEvent['event']> = new Set(['failed', 'replay', 'locked', 'address_blocked', 'factor_unreadable', 'code_send_failed', 'risk_step_up']);

export function createAuditLog(logger: Logger, sink?: AuditSink): AuditLog {
  return {
    record(ctx, event) {
      const fields: Record<string, unknown> = { subject: ctx.subject };
      if (ctx.requestId !== undefined) fields.request_id = ctx.requestId;
      if (ctx.clientIp !== undefined) fields.client_ip = ctx.clientIp;
      for (const [key, value] of Object.entries(event)) {
        if (value !== undefined) fields[SNAKE[key] ?? key] = value;
      }
      const level = WARNINGS.has(event.event) ? 'warn' : 'info';
      logger[level](fields, `mfa ${event.event}`);
      sink?.(ctx, event);
    },
  };
}
