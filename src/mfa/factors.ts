import type { GatewayPolicy } from '../config/types.js';
import type { Keyring } from '../crypto/keyring.js';
import { problem } from '../errors/problems.js';
import { createLogger, type Logger } from '../log/logger.js';
import type { DurableStore, FactorRecord, FactorType, InvalidationBus, TtlStore } from '../store/types.js';
import { systemClock, type Clock } from '../time/clock.js';
import {
  auditContext,
  countEnrollment,
  countVerification,
  failedAttempt,
  firstFactorConfirmed,
  freshIfEnrolled,
  isEnrolled,
  lockRefusal,
  MANAGEMENT_STEP_UP_MS,
  notEnrolled,
  refuse,
  reportUnreadable,
  seconds,
  sessionTtlMs,
  type Caller,
  type MfaDeps,
  type Outcome,
} from './attempts.js';
import { createAnnouncer, type Announce } from './announce.js';
import { createAuditLog, type AuditContext, type AuditLog } from './audit.js';
import { buildFactor, issueRecoveryCodes, MAX_FACTORS, MAX_PENDING_FACTORS, validLabel, type FactorRequest } from './enrollment.js';
import { listing, type FactorListing } from './listing.js';
import { MfaError } from './errors.js';
import { resyncHotp } from './hotp.js';
import { renderQr, renderTerminalQr, type QrImages } from './qr.js';
import type { SecondFactorService } from './second-factor.js';
import { createSessionStore, type SessionStore } from './session.js';

/**
 * Factor management: enrolment and confirmation, listing, removal, recovery codes and HOTP resync,
 * for the `/.mfa/` endpoints (a caller with a bearer, step-up once a factor is active) and for the
 * `factors` CLI (a trusted operator, straight on the stores). What both do — removing a factor,
 * issuing recovery codes — is one function used by both.
 */

export interface Enrollment {
  readonly factorId: string;
  readonly type: FactorRecord['type'];
  readonly secretBase32: string;
  readonly otpauthUri: string;
  readonly manualKey: string;
  readonly qr: QrImages;
  /** Unix seconds. */
  readonly pendingUntil: number;
}

export interface FactorService {
  enroll(caller: Caller, request: FactorRequest): Promise<Outcome<{ enrollment: Enrollment }>>;
  confirm(caller: Caller, factorId: string, code: string): Promise<Outcome<{ factorId: string; recoveryCodes?: string[] }>>;
  /** Factors then WebAuthn credentials, with their lifetimes under `policy`. */
  listFactors(subject: string, now: number, policy: GatewayPolicy): Promise<FactorListing>;
  /** A new label for a factor or credential (step-up, like every change to factors). */
  renameFactor(caller: Caller, factorId: string, label: string): Promise<Outcome<object>>;
  removeFactor(caller: Caller, factorId: string): Promise<Outcome<object>>;
  regenerateRecoveryCodes(caller: Caller): Promise<Outcome<{ recoveryCodes: string[] }>>;
  resyncHotp(caller: Caller, factorId: string, code1: string, code2: string): Promise<Outcome<{ factorId: string }>>;
  /** "Log me out everywhere": every session of the caller, with step-up. */
  revokeAllSessions(caller: Caller): Promise<Outcome<{ revoked: number }>>;
  /** The operator's revoke-all (admin API): no step-up; audited as `operator`. */
  endSessionsOf(subject: string, now: number): Promise<number>;
}

export { MANAGEMENT_STEP_UP_MS };
/** How far past its counter a hardware token is searched for a resync pair. */
export const HOTP_RESYNC_WINDOW = 200;

/**
 * False when the subject has no such factor. Every session of the subject ends with it: a session
 * minted by a removed (perhaps stolen) factor must not outlive it. With no active factor left, the
 * recovery codes go too.
 */
async function deleteFactor(
  deps: {
    readonly durable: DurableStore;
    readonly ttl?: Pick<TtlStore, 'forgetOtpSteps'> | undefined;
    readonly sessions?: SessionStore | undefined;
    readonly audit?: AuditLog | undefined;
    readonly announce?: Announce | undefined;
  },
  ctx: AuditContext,
  factorId: string,
  now: number,
): Promise<boolean> {
  // One id space: an OTP factor, an e-mail or SMS contact, or a WebAuthn credential, removed alike.
  if (!(await deps.durable.deleteFactor(factorId, ctx.subject)) && !(await deps.durable.deleteContact(factorId, ctx.subject)) && !(await deps.durable.deleteWebAuthnCredential(factorId, ctx.subject))) return false;
  deps.announce?.({ kind: 'factors', subject: ctx.subject });
  await deps.ttl?.forgetOtpSteps(factorId);
  deps.audit?.record(ctx, { event: 'factor_removed', factorId });
  if (deps.sessions !== undefined) {
    const count = await deps.sessions.revokeAll(ctx.subject, now);
    deps.audit?.record(ctx, { event: 'sessions_revoked', count, reason: 'factor_removed' });
  }
  // Recovery codes only stand in for a factor; with none left (OTP, passkey, e-mail or SMS) they go too.
  const [factors, credentials, contacts] = await Promise.all([deps.durable.listFactors(ctx.subject, now), deps.durable.listWebAuthnCredentials(ctx.subject), deps.durable.listContacts(ctx.subject, now)]);
  const left = factors.some((f) => f.status === 'active') || credentials.length > 0 || contacts.some((c) => c.purpose === 'factor' && c.status === 'active');
  if (!left) await deps.durable.replaceRecoveryCodes(ctx.subject, [], now);
  return true;
}

async function newRecoveryCodes(deps: { readonly durable: DurableStore; readonly keyring: Keyring; readonly audit?: AuditLog | undefined }, ctx: AuditContext, policy: GatewayPolicy, now: number): Promise<string[]> {
  const codes = await issueRecoveryCodes(deps.durable, deps.keyring, ctx.subject, policy.mfa.recoveryCodes.count, now);
  deps.audit?.record(ctx, { event: 'recovery_codes_generated', count: codes.length });
  return codes;
}

export function createFactorService(deps: MfaDeps, secondFactor: Pick<SecondFactorService, 'requireFresh'>): FactorService {
  const { durable, ttl, keyring, verifier, audit } = deps;
  const stepUp = (caller: Caller) => freshIfEnrolled(deps, secondFactor, caller);

  return {
    async enroll(caller, request) {
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      const stale = await stepUp(caller);
      if (stale !== undefined) return stale;
      const existing = await durable.listFactors(ctx.subject, now);
      if (existing.length + (await durable.listWebAuthnCredentials(ctx.subject)).length >= MAX_FACTORS) return refuse(problem('invalid_request', `a user may have at most ${MAX_FACTORS} factors; remove one first`));
      if (existing.filter((f) => f.status === 'pending').length >= MAX_PENDING_FACTORS) {
        return refuse(problem('invalid_request', 'too many pending enrollments; confirm one or wait for it to expire'));
      }
      let built;
      try {
        built = buildFactor({ subject: ctx.subject, request, policy, keyring, now });
      } catch (error) {
        if (MfaError.is(error)) return refuse(problem('invalid_request', error.message));
        throw error;
      }
      await durable.createFactor(built.record);
      countEnrollment(deps, built.record.type, 'started');
      audit.record(ctx, { event: 'enrolled', factorId: built.record.id, type: built.record.type });
      return {
        ok: true,
        enrollment: {
          factorId: built.record.id,
          type: built.record.type,
          secretBase32: built.secretBase32,
          otpauthUri: built.otpauthUri,
          manualKey: built.manualKey,
          qr: await renderQr(built.otpauthUri),
          pendingUntil: seconds(built.record.pendingUntil ?? now),
        },
      };
    },

    async confirm(caller, factorId, code) {
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      const locked = await lockRefusal(deps, ctx, now, policy);
      if (locked !== undefined) return locked;
      const factor = await durable.getFactor(factorId);
      const mine = factor !== undefined && factor.subject === ctx.subject && factor.status === 'pending' && (factor.pendingUntil ?? 0) > now;
      if (!mine) return refuse(problem('not_found', 'no pending factor with this id (it may have expired; enroll again)'));
      // Once a factor is active, activating another is a new enrolment: the same step-up. Else a
      // bearer thief could plant a pending factor, wait for the owner's first one, then confirm his.
      const stale = await stepUp(caller);
      if (stale !== undefined) return stale;
      // The confirm code is used up like any other: the replay guard sees it.
      const result = await verifier.attempt({ subject: ctx.subject, code, factors: [factor], allowRecovery: false, now, policy });
      // Tried as this one factor only: its kind is the method label, success or failure (codeMethod).
      if (!result.ok) return failedAttempt(deps, caller, result, sessionTtlMs(policy), factor.type, factor.type);
      const hadActive = await isEnrolled(deps, ctx.subject, now, policy);
      if (!(await durable.activateFactor(factor.id, ctx.subject, now))) {
        return refuse(problem('not_found', 'no pending factor with this id (it may have expired; enroll again)'));
      }
      deps.announce({ kind: 'factors', subject: ctx.subject });
      await ttl.clearLock(ctx.subject);
      countVerification(deps, factor.type, 'success');
      countEnrollment(deps, factor.type, 'confirmed');
      audit.record(ctx, { event: 'confirmed', factorId: factor.id, type: factor.type });
      if (hadActive) return { ok: true, factorId: factor.id };
      return { ok: true, factorId: factor.id, recoveryCodes: await firstFactorConfirmed(deps, ctx, factor.id, policy, now) };
    },

    async listFactors(subject, now, policy) {
      const [factors, credentials, recoveryCodesRemaining] = await Promise.all([durable.listFactors(subject, now), durable.listWebAuthnCredentials(subject), durable.countRecoveryCodes(subject)]);
      return listing(factors, credentials, recoveryCodesRemaining, now, policy);
    },

    async renameFactor(caller, factorId, label) {
      if (!validLabel(label)) return refuse(problem('invalid_request', '"label" must be 1-64 printable characters'));
      const stale = await stepUp(caller);
      if (stale !== undefined) return stale;
      const ctx = auditContext(caller);
      const renamed = (await durable.renameFactor(factorId, ctx.subject, label)) || (await durable.renameWebAuthnCredential(factorId, ctx.subject, label));
      if (!renamed) return refuse(problem('not_found', 'no factor with this id'));
      deps.announce({ kind: 'factors', subject: ctx.subject });
      audit.record(ctx, { event: 'factor_renamed', factorId });
      return { ok: true };
    },

    async removeFactor(caller, factorId) {
      const stale = await stepUp(caller);
      if (stale !== undefined) return stale;
      if (!(await deleteFactor(deps, auditContext(caller), factorId, caller.now))) return refuse(problem('not_found', 'no factor with this id'));
      return { ok: true };
    },

    async regenerateRecoveryCodes(caller) {
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      if (!(await isEnrolled(deps, ctx.subject, now, policy))) return notEnrolled(policy);
      const fresh = await secondFactor.requireFresh(caller, MANAGEMENT_STEP_UP_MS);
      if (!fresh.ok) return fresh;
      return { ok: true, recoveryCodes: await newRecoveryCodes(deps, ctx, policy, now) };
    },

    async revokeAllSessions(caller) {
      const ctx = auditContext(caller);
      const fresh = await secondFactor.requireFresh(caller, MANAGEMENT_STEP_UP_MS);
      if (!fresh.ok) return fresh;
      const revoked = await deps.sessions.revokeAll(ctx.subject, caller.now);
      audit.record(ctx, { event: 'sessions_revoked', count: revoked, reason: 'user' });
      return { ok: true, revoked };
    },

    async endSessionsOf(subject, now) {
      const revoked = await deps.sessions.revokeAll(subject, now);
      audit.record({ subject, requestId: 'admin' }, { event: 'sessions_revoked', count: revoked, reason: 'operator' });
      return revoked;
    },

    async resyncHotp(caller, factorId, code1, code2) {
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      const locked = await lockRefusal(deps, ctx, now, policy);
      if (locked !== undefined) return locked;
      const factor = await durable.getFactor(factorId);
      if (factor === undefined || factor.subject !== ctx.subject || factor.type !== 'hotp' || factor.status !== 'active') {
        return refuse(problem('not_found', 'no active HOTP factor with this id'));
      }
      let secret: Buffer | undefined;
      try {
        secret = keyring.open(factor.secret, { subject: factor.subject, factorId: factor.id });
      } catch {
        reportUnreadable(deps, factor, ctx);
      }
      const next =
        secret === undefined
          ? undefined
          : resyncHotp({ secret, counter: factor.counter, code1, code2, searchWindow: HOTP_RESYNC_WINDOW, algorithm: factor.algorithm, digits: factor.digits });
      secret?.fill(0);
      if (next === undefined || !(await durable.advanceHotpCounter(factor.id, factor.counter, next))) {
        return failedAttempt(deps, caller, { ok: false, reason: 'wrong', factorId: factor.id }, sessionTtlMs(policy), 'hotp');
      }
      deps.announce({ kind: 'factors', subject: ctx.subject });
      await ttl.clearLock(ctx.subject);
      // Counted like its failure is, so hotp's success rate includes resyncs.
      countVerification(deps, 'hotp', 'success');
      audit.record(ctx, { event: 'hotp_resynced', factorId: factor.id });
      return { ok: true, factorId: factor.id };
    },
  };
}

/*
 * The `mfa-gateway factors enroll|list|remove --user SUB` CLI: straight on the stores, no HTTP, no
 * bearer (the operator is trusted). Audit events carry `request_id: "cli"`.
 */

export interface OfflineDeps {
  readonly policy: GatewayPolicy;
  readonly durable: DurableStore;
  readonly keyring: Keyring;
  /** When given, a removed factor's replay state is cleared too. */
  readonly ttl?: TtlStore | undefined;
  /** When given (the shared store), running gateways hear of the change at once instead of within their cache TTL. */
  readonly bus?: InvalidationBus | undefined;
  readonly clock?: Clock | undefined;
  readonly audit?: Logger | undefined;
}

export interface OfflineEnrollInput extends Omit<FactorRequest, 'type'> {
  readonly subject: string;
  /** Default totp. */
  readonly type?: FactorType | undefined;
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

function cliContext(subject: string): AuditContext {
  return { subject, requestId: 'cli' };
}

/** The CLI has no caches of its own: it only tells the running gateways, when there is a bus. */
function publisher(bus: InvalidationBus | undefined): Announce | undefined {
  return bus === undefined ? undefined : createAnnouncer({ bus, logger: createLogger(), apply: () => undefined });
}

/** Throws MfaError `ERR_MFA_INVALID_INPUT` for a bad request (message names the field, never the secret). */
export async function enrollFactorOffline(deps: OfflineDeps, input: OfflineEnrollInput): Promise<OfflineEnrollment> {
  const now = (deps.clock ?? systemClock)();
  const type = input.type ?? 'totp';
  const activate = input.activate ?? true;
  // A security key or passkey is a factor too: with one, this is not the first (no new recovery codes).
  const [factors, credentials] = await Promise.all([deps.durable.listFactors(input.subject, now), deps.durable.listWebAuthnCredentials(input.subject)]);
  const hadActive = factors.some((f) => f.status === 'active') || credentials.length > 0;
  const built = buildFactor({
    subject: input.subject,
    request: { type, secret: input.secret, counter: input.counter, label: input.label, algorithm: input.algorithm, digits: input.digits },
    policy: deps.policy,
    keyring: deps.keyring,
    now,
    active: activate,
  });
  await deps.durable.createFactor(built.record);
  if (activate) publisher(deps.bus)?.({ kind: 'factors', subject: input.subject });
  const audit = deps.audit === undefined ? undefined : createAuditLog(deps.audit);
  const ctx = cliContext(input.subject);
  audit?.record(ctx, { event: 'enrolled', factorId: built.record.id, type });
  const recoveryCodes = activate && !hadActive ? await newRecoveryCodes({ durable: deps.durable, keyring: deps.keyring, audit }, ctx, deps.policy, now) : undefined;
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

export async function listFactorsOffline(deps: Pick<OfflineDeps, 'durable' | 'clock' | 'policy'>, subject: string): Promise<FactorListing> {
  const now = (deps.clock ?? systemClock)();
  const [factors, credentials, remaining] = await Promise.all([deps.durable.listFactors(subject, now), deps.durable.listWebAuthnCredentials(subject), deps.durable.countRecoveryCodes(subject)]);
  return listing(factors, credentials, remaining, now, deps.policy);
}

/** False when the subject has no such factor. */
export async function removeFactorOffline(deps: Pick<OfflineDeps, 'durable' | 'ttl' | 'bus' | 'clock' | 'audit'>, subject: string, factorId: string): Promise<boolean> {
  const audit = deps.audit === undefined ? undefined : createAuditLog(deps.audit);
  const announce = publisher(deps.bus);
  const sessions = deps.ttl === undefined ? undefined : createSessionStore(deps.ttl, { cacheMs: 0, ...(announce !== undefined ? { announce } : {}) });
  return deleteFactor({ durable: deps.durable, ttl: deps.ttl, sessions, audit, announce }, cliContext(subject), factorId, (deps.clock ?? systemClock)());
}

/**
 * `factors revoke-sessions --user SUB`: ends every session of the subject. Running gateways hear
 * of it through the bus (shared store); without one (SQLite), a gateway process that read one of
 * the sessions in the last 2 s (its session cache) honours the revocation that much later.
 */
export async function revokeSessionsOffline(deps: Pick<OfflineDeps, 'clock' | 'audit' | 'bus'> & { readonly ttl: TtlStore }, subject: string): Promise<number> {
  const announce = publisher(deps.bus);
  const count = await createSessionStore(deps.ttl, { cacheMs: 0, ...(announce !== undefined ? { announce } : {}) }).revokeAll(subject, (deps.clock ?? systemClock)());
  if (deps.audit !== undefined) createAuditLog(deps.audit).record(cliContext(subject), { event: 'sessions_revoked', count, reason: 'operator' });
  return count;
}
