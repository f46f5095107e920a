import type { GatewayPolicy } from '../config/types.js';
import type { Keyring } from '../crypto/keyring.js';
import type { Logger } from '../log/logger.js';
import type { DurableStore, FactorType, TtlStore } from '../store/types.js';
import { systemClock, type Clock } from '../time/clock.js';
import { createAuditLog } from './audit.js';
import { buildFactor, issueRecoveryCodes, summarizeFactor, type FactorSummary } from './enrollment.js';
import { renderTerminalQr } from './qr.js';
import { OTP_STEP_PREFIX } from './replay.js';
import type { OtpAlgorithm } from '../config/types.js';

/**
 * What the `mfa-gateway factors enroll|list|remove --user SUB` CLI needs, working straight on the
 * stores (no HTTP, no bearer): the operator is trusted. Audit events carry `request_id: "cli"`.
 */

export interface OfflineDeps {
  readonly policy: GatewayPolicy;
  readonly durable: DurableStore;
  readonly keyring: Keyring;
  /** When given, a removed factor's replay state is cleared too. */
  readonly ttl?: TtlStore | undefined;
  readonly clock?: Clock | undefined;
  readonly audit?: Logger | undefined;
}

export interface OfflineEnrollInput {
  readonly subject: string;
  readonly type?: FactorType | undefined;
  /** HOTP: the token's base32 secret. */
  readonly secret?: string | undefined;
  readonly counter?: number | undefined;
  readonly label?: string | undefined;
  readonly algorithm?: OtpAlgorithm | undefined;
  readonly digits?: number | undefined;
  /**
   * Active at once (default), or pending for the user to confirm with a code through
   * `POST <prefix>totp/confirm` within the enrollment timeout.
   */
  readonly activate?: boolean | undefined;
}

export interface OfflineEnrollment {
  readonly factorId: string;
  readonly type: FactorType;
  readonly status: 'pending' | 'active';
  readonly secretBase32: string;
  readonly otpauthUri: string;
  readonly manualKey: string;
  /** The otpauth URI as a QR code for a terminal. */
  readonly terminalQr: string;
  /** Present when this is the subject's first active factor: show once, then forget. */
  readonly recoveryCodes?: string[];
}

const CLI_CONTEXT = { requestId: 'cli' };

/** Throws MfaError `invalid_input` for a bad request (message names the field, never the secret). */
export async function enrollFactorOffline(deps: OfflineDeps, input: OfflineEnrollInput): Promise<OfflineEnrollment> {
  const now = (deps.clock ?? systemClock)();
  const type = input.type ?? 'totp';
  const activate = input.activate ?? true;
  const hadActive = (await deps.durable.listFactors(input.subject, now)).some((f) => f.status === 'active');
  const built = buildFactor({
    subject: input.subject,
    request: { type, secret: input.secret, counter: input.counter, label: input.label, algorithm: input.algorithm, digits: input.digits },
    policy: deps.policy,
    keyring: deps.keyring,
    now,
    active: activate,
  });
  await deps.durable.createFactor(built.record);
  const audit = deps.audit === undefined ? undefined : createAuditLog(deps.audit);
  audit?.record({ subject: input.subject, ...CLI_CONTEXT }, { event: 'enrolled', factorId: built.record.id, type });
  let recoveryCodes: string[] | undefined;
  if (activate && !hadActive) {
    recoveryCodes = await issueRecoveryCodes(deps.durable, deps.keyring, input.subject, deps.policy.mfa.recoveryCodes.count, now);
    audit?.record({ subject: input.subject, ...CLI_CONTEXT }, { event: 'recovery_codes_generated', count: recoveryCodes.length });
  }
  return {
    factorId: built.record.id,
    type,
    status: built.record.status,
    secretBase32: built.secretBase32,
    otpauthUri: built.otpauthUri,
    manualKey: built.manualKey,
    terminalQr: await renderTerminalQr(built.otpauthUri),
    ...(recoveryCodes !== undefined ? { recoveryCodes } : {}),
  };
}

export async function listFactors(deps: Pick<OfflineDeps, 'durable' | 'clock'>, subject: string): Promise<FactorSummary[]> {
  return (await deps.durable.listFactors(subject, (deps.clock ?? systemClock)())).map(summarizeFactor);
}

/** False when the subject has no such factor. With no active factor left, the recovery codes go too. */
export async function removeFactor(deps: Pick<OfflineDeps, 'durable' | 'ttl' | 'clock' | 'audit'>, subject: string, factorId: string): Promise<boolean> {
  const now = (deps.clock ?? systemClock)();
  if (!(await deps.durable.deleteFactor(factorId, subject))) return false;
  await deps.ttl?.delete(OTP_STEP_PREFIX + factorId);
  if (!(await deps.durable.listFactors(subject, now)).some((f) => f.status === 'active')) await deps.durable.replaceRecoveryCodes(subject, [], now);
  if (deps.audit !== undefined) createAuditLog(deps.audit).record({ subject, ...CLI_CONTEXT }, { event: 'factor_removed', factorId });
  return true;
}
