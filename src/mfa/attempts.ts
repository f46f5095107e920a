import type { Principal } from '../auth/principal.js';
import type { GatewayPolicy } from '../config/types.js';
import type { Awaitable } from '../async/awaitable.js';
import type { Keyring } from '../crypto/keyring.js';
import type { SecondFactorResult } from '../decision/engine.js';
import type { IssuedSession, MfaMethod } from '../decision/types.js';
import { problem, type Problem } from '../errors/problems.js';
import type { Logger } from '../log/logger.js';
import type { EnrollmentEvent, Metrics } from '../metrics/metrics.js';
import type { RequestView } from '../request/view.js';
import type { Delivery } from '../delivery/index.js';
import type { ContactChannel, ContactRecord, DurableStore, FactorRecord, FactorType, TtlStore } from '../store/types.js';
import type { AddressThrottle } from '../throttle/address-failures.js';
import type { Announce } from './announce.js';
import type { AuditContext, AuditLog } from './audit.js';
import { issueRecoveryCodes } from './enrollment.js';
import type { FactorCache } from './factor-cache.js';
import { contactsInUse, usableContacts } from './oob/usable.js';
import { normalizeRecoveryCode } from './recovery.js';
import type { SessionStore } from './session.js';
import type { AttemptResult, CodeVerifier } from './verify.js';
import type { FactorMethod } from '../routes/factor-methods.js';
import type { WebAuthnFailure } from './audit.js';
import { recoveryCodesHint } from './listing.js';
import { standingOf, type Standing } from './standing.js';

/**
 * What request-time checking (second-factor.ts) and factor management (factors.ts) share: the
 * stores and their helpers, and the bookkeeping of one code attempt — lock refusal, failure
 * counting, audit events, metrics, session minting — so both count a wrong code the same way.
 */

export interface MfaDeps {
  readonly durable: DurableStore;
  readonly ttl: TtlStore;
  readonly keyring: Keyring;
  readonly metrics: Metrics | undefined;
  readonly logger: Logger;
  readonly audit: AuditLog;
  /** Failed codes per client address, across all users (`mfa.ip_throttle`). */
  readonly addresses: AddressThrottle;
  readonly sessions: SessionStore;
  /** Active factors per subject, for request-time checks; management reads the store itself. */
  readonly factorCache: FactorCache;
  /** Makes a change known to this process's caches and the other replicas'. */
  readonly announce: Announce;
  /** Why a store backend is down right now, or undefined: checked before any second-factor work. */
  readonly storeDown: () => string | undefined;
  readonly verifier: CodeVerifier;
  /** SMTP and SMS transports of the pinned policy, for codes sent to contacts. */
  readonly delivery: Delivery;
  /** Risk rules (src/events/hub.ts): a valid session may still need a fresh factor; a passed one is learnt from. */
  readonly risk?: RiskHooks | undefined;
}

export interface RiskHooks {
  riskCheck(caller: { subject: string; view: RequestView; policy: GatewayPolicy; now: number }): Awaitable<'country_change' | undefined>;
  passed(caller: { subject: string; view: RequestView; policy: GatewayPolicy; now: number }): Promise<void>;
}

/**
 * Who is asking, for every request-time operation: the verified bearer, the canonical request,
 * and the policy and clock reading the request pinned when it was admitted.
 */
export interface Caller {
  readonly principal: Principal;
  readonly view: RequestView;
  readonly policy: GatewayPolicy;
  /** Milliseconds. */
  readonly now: number;
  /** The answer may be held by a cache in front of the gateway: sessions are read from the store. */
  readonly forCache?: boolean;
}

export type Refusal = { readonly ok: false; readonly problem: Problem };
export type Outcome<T> = ({ readonly ok: true } & T) | Refusal;

/** Every rejected code gets exactly this detail, whatever the reason. */
export const INVALID_CODE_DETAIL = 'the second factor was not accepted';

export function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

export function refuse(p: Problem): Refusal {
  return { ok: false, problem: p };
}

export function sessionTtlMs(policy: GatewayPolicy): number {
  return policy.mfa.session.ttlMs;
}

export function auditContext(caller: Pick<Caller, 'principal' | 'view'> & { readonly policy?: GatewayPolicy }): AuditContext {
  return { subject: caller.principal.subject, requestId: caller.view.requestId, clientIp: caller.view.clientIp, view: caller.view, policy: caller.policy };
}

/** Seconds a client is told to wait when the store does not answer (it is probed every second). */
export const STORE_RETRY_AFTER_SECONDS = 5;

/** The store cannot answer: fail closed, never allow and never count it against the user. */
export function storeUnavailable(): Refusal {
  return refuse(problem('store_unavailable', 'the second-factor store is not answering; try again shortly', { retryAfter: STORE_RETRY_AFTER_SECONDS }));
}

export function notEnrolled(policy: GatewayPolicy): Refusal {
  const prefix = policy.mfa.pathPrefix;
  const passkey = policy.mfa.webauthn === undefined ? '' : `, or register a security key or passkey with POST ${prefix}webauthn/register/options`;
  return refuse(
    problem('mfa_not_enrolled', 'no active second factor is enrolled for this user', {
      hint: `enroll one with POST ${prefix}totp/enroll, then activate it with POST ${prefix}totp/confirm${passkey}`,
    }),
  );
}

/** `methods`: what the route accepts, when its `methods:` restricts it (said in the challenge and the body). */
export function challenge(code: 'mfa_required' | 'step_up_required', maxAgeMs: number, methods?: readonly FactorMethod[]): Refusal {
  const detail = code === 'mfa_required' ? 'a second factor is required for this route' : 'a fresh second factor is required for this operation';
  return refuse(problem(code, detail, { maxAge: seconds(maxAgeMs), ...(methods !== undefined ? { methods } : {}) }));
}

export function sessionInvalid(maxAgeMs: number, methods?: readonly FactorMethod[]): Refusal {
  return refuse(problem('session_invalid', 'the MFA session is invalid, expired or revoked', { maxAge: seconds(maxAgeMs), ...(methods !== undefined ? { methods } : {}) }));
}

/**
 * The `method` label of mfa_gateway_mfa_verifications_total: how the second factor was offered.
 * A code is labelled by codeMethod() before it is checked (`otp` when it was tried against factors
 * of several kinds), a session as `session`, IdP-asserted MFA as `idp`, and a refusal by the lock
 * before anything was tried as `none`.
 */
export type VerificationMethod = MfaMethod | 'session' | 'otp';

export function countVerification(deps: MfaDeps, method: VerificationMethod, result: 'success' | 'failure' | 'locked'): void {
  deps.metrics?.mfaVerifications.cell(`${method}\0${result}`, { method, result }).inc();
}

/** One step of an enrolment, for the registration rate (confirmed / started). */
export function countEnrollment(deps: Pick<MfaDeps, 'metrics'>, type: FactorType, event: EnrollmentEvent): void {
  deps.metrics?.mfaEnrollments.inc({ type, event });
}

/**
 * The method label of one code attempt, decided before the code is checked from what the client
 * sent (a recovery code's shape) and the kinds of factor it is tried against, never from the
 * outcome: the success and the failure of an attempt carry the same label, and a wrong code's label
 * cannot tell which factor it came closest to (a neighbouring TOTP step, a used HOTP counter). A
 * subject with factors of two kinds gets `otp` either way; which one matched is in the audit log.
 */
export function codeMethod(code: string, factors: readonly { readonly type: FactorType | ContactChannel }[], allowRecovery: boolean): VerificationMethod {
  if (allowRecovery && normalizeRecoveryCode(code) !== undefined) return 'recovery';
  const kind = factors[0]?.type;
  return kind !== undefined && factors.every((f) => f.type === kind) ? kind : 'otp';
}

export function activeFactors(deps: MfaDeps, subject: string, now: number): Promise<FactorRecord[]> {
  return deps.factorCache.active(subject, now);
}

/**
 * The subject's active contacts the policy lets satisfy a second factor (e-mail and SMS factors,
 * backup contacts). No store call when the policy allows none: deployments without them pay nothing.
 */
export async function usableContactsOf(deps: MfaDeps, subject: string, now: number, policy: GatewayPolicy): Promise<ContactRecord[]> {
  if (!contactsInUse(policy.mfa)) return [];
  return usableContacts(policy.mfa, await deps.durable.listContacts(subject, now));
}

/** standingOf with the subject's usable contacts: what a route can take from this subject now. */
export async function standingWithContacts(deps: MfaDeps, subject: string, now: number, policy: GatewayPolicy, accepted?: readonly FactorMethod[]): Promise<Standing> {
  const contacts = await usableContactsOf(deps, subject, now, policy);
  return standingOf(deps.factorCache, subject, now, policy, accepted, contacts);
}

/**
 * Whether the subject has a second factor of its own, whatever its kind or age: an active OTP
 * factor, a WebAuthn credential, or a usable e-mail or SMS factor. A backup contact alone is not
 * one (it only stands in for one).
 */
export async function isEnrolled(deps: MfaDeps, subject: string, now: number, policy: GatewayPolicy): Promise<boolean> {
  return (await standingWithContacts(deps, subject, now, policy)).enrolled;
}

/** Step-up for managing factors and recovery codes: a second factor within the last 5 minutes. */
export const MANAGEMENT_STEP_UP_MS = 5 * 60_000;

/** Step-up only when the subject already has a second factor (the first one needs none). */
export async function freshIfEnrolled(deps: MfaDeps, secondFactor: { requireFresh(caller: Caller, maxAgeMs: number): Promise<SecondFactorResult> }, caller: Caller): Promise<Refusal | undefined> {
  if (!(await isEnrolled(deps, caller.principal.subject, caller.now, caller.policy))) return undefined;
  const fresh = await secondFactor.requireFresh(caller, MANAGEMENT_STEP_UP_MS);
  return fresh.ok ? undefined : fresh;
}

/**
 * The subject's first second factor was just confirmed (`keepId`): whatever else is pending, OTP
 * factor or contact, was enrolled without any second factor and is voided; the recovery codes that
 * come with a first factor are issued and returned for display.
 */
export async function firstFactorConfirmed(deps: MfaDeps, ctx: AuditContext, keepId: string, policy: GatewayPolicy, now: number): Promise<string[]> {
  const [factors, contacts] = await Promise.all([deps.durable.listFactors(ctx.subject, now), deps.durable.listContacts(ctx.subject, now)]);
  for (const other of [...factors, ...contacts]) {
    if (other.status !== 'pending' || other.id === keepId) continue;
    const voided = 'channel' in other ? await deps.durable.deleteContact(other.id, ctx.subject) : await deps.durable.deleteFactor(other.id, ctx.subject);
    if (!voided) continue;
    if (!('channel' in other)) countEnrollment(deps, other.type, 'expired');
    deps.audit.record(ctx, { event: 'pending_factor_voided', factorId: other.id });
  }
  const codes = await issueRecoveryCodes(deps.durable, deps.keyring, ctx.subject, policy.mfa.recoveryCodes.count, now);
  deps.audit.record(ctx, { event: 'recovery_codes_generated', count: codes.length });
  return codes;
}

/**
 * Refuses while the client address or the subject is locked: nothing is verified, not even a
 * correct code. The address is judged first, so a blocked address gets the same answer for every
 * user, enrolled, locked or unknown.
 */
export async function lockRefusal(deps: MfaDeps, ctx: AuditContext, now: number, policy: GatewayPolicy): Promise<Refusal | undefined> {
  const blockKey = policy.mfa.ipThrottle.enabled && ctx.clientIp !== undefined ? deps.addresses.keyOf(ctx.clientIp) : undefined;
  // Both read together (one statement on SQLite, one round trip's wait on Redis), and the same store work whatever either finds.
  const { lockMs: remaining, blockedUntil } = await deps.ttl.readLockAndBlock(ctx.subject, blockKey, now);
  if (blockedUntil > now) {
    const retryAfter = Math.ceil((blockedUntil - now) / 1000);
    countVerification(deps, 'none', 'locked');
    deps.metrics?.throttled.inc({ limit: 'mfa_ip' });
    deps.audit.record(ctx, { event: 'address_block_refused', retryAfterSeconds: retryAfter });
    return refuse(problem('mfa_locked', 'too many failed second-factor attempts from this network address; try again later', { retryAfter }));
  }
  if (remaining <= 0) return undefined;
  const retryAfter = Math.ceil(remaining / 1000);
  countVerification(deps, 'none', 'locked');
  deps.audit.record(ctx, { event: 'lock_refused', retryAfterSeconds: retryAfter });
  return refuse(problem('mfa_locked', 'too many failed second-factor attempts; try again later', { retryAfter }));
}

/** A failed code: audited, counted against the lockout ladder, answered like every other failure. */
export async function failedAttempt(
  deps: MfaDeps,
  caller: Pick<Caller, 'principal' | 'view' | 'policy' | 'now'>,
  result: Extract<AttemptResult, { ok: false }> | { readonly ok: false; readonly reason: WebAuthnFailure; readonly factorId?: string | undefined },
  maxAgeMs: number,
  method: VerificationMethod,
  replayMethod?: MfaMethod,
  methods?: readonly FactorMethod[],
): Promise<Refusal> {
  const ctx = auditContext(caller);
  const { metrics, audit } = deps;
  countVerification(deps, method, 'failure');
  if (result.reason === 'replay') {
    metrics?.mfaReplays.inc();
    audit.record(ctx, { event: 'replay', method: replayMethod ?? 'totp', factorId: result.factorId });
  }
  audit.record(ctx, { event: 'failed', reason: result.reason, factorId: result.factorId, driftSeconds: 'driftSeconds' in result ? result.driftSeconds : undefined });
  const outcome = await deps.ttl.recordLockFailure(ctx.subject, caller.now, caller.policy.mfa.lockout);
  if (outcome.lockedNow) {
    metrics?.mfaLockouts.inc();
    audit.record(ctx, { event: 'locked', retryAfterSeconds: Math.ceil(outcome.retryAfterMs / 1000), level: outcome.level });
    if (metrics !== undefined) metrics.mfaActiveLocks.set(await deps.ttl.activeLocks(caller.now));
  }
  // And per client address, across all users: what each user's own lockout cannot see.
  const throttle = caller.policy.mfa.ipThrottle;
  if (throttle.enabled) {
    const counted = await deps.addresses.recordFailure(caller.view.clientIp, caller.now, throttle);
    if (counted.blockedNow) {
      metrics?.mfaAddressBlocks.inc();
      audit.record(ctx, { event: 'address_blocked', retryAfterSeconds: Math.ceil(throttle.blockMs / 1000), failures: counted.failures });
    }
  }
  // An assertion has no clock to drift: read as a wrong code, for the same store work.
  const codeFailure: Extract<AttemptResult, { ok: false }> = result.reason.startsWith('webauthn_') ? { ok: false, reason: 'wrong' } : (result as Extract<AttemptResult, { ok: false }>);
  const drift = await confirmedDrift(deps, ctx.subject, codeFailure, caller.now, caller.policy.mfa.lockout.findTimeMs);
  const hint = drift === undefined ? undefined : `device clock looks off by about ${Math.abs(drift)} seconds; sync it with NTP`;
  return refuse(problem('mfa_invalid', INVALID_CODE_DETAIL, { maxAge: seconds(maxAgeMs), ...(hint !== undefined ? { hint } : {}), ...(methods !== undefined ? { methods } : {}) }));
}

/**
 * The clock-drift hint says "that code was valid N seconds away": told after one attempt, it would
 * tell a guesser that a random code hit a neighbouring step, widening brute force about tenfold.
 * So it is given only when two consecutive failures of the subject show the same offset — the
 * signature of a skewed clock, which a guesser hits by chance about once in 10^10 tries.
 */
async function confirmedDrift(deps: MfaDeps, subject: string, result: Extract<AttemptResult, { ok: false }>, now: number, keepMs: number): Promise<number | undefined> {
  // The same store verb for every failure, drift or not: the store work must not tell a code
  // valid a few steps away from a wrong one, or the timing would say what the hint withholds.
  const seen = result.reason === 'drift' && result.driftSeconds !== undefined ? result.driftSeconds : null;
  const previous = await deps.ttl.swapDriftReading(subject, seen, now, keepMs);
  return seen !== null && previous === seen ? seen : undefined;
}

export interface SessionExtras {
  /** Unix ms when the factor that opened it reaches the end of its lifetime: the session ends by then too. */
  readonly notAfter?: number | undefined;
  /** Opened by a recovery code: how many are left (told to the client, never to the backend). */
  readonly recoveryCodesRemaining?: number | undefined;
}

export async function issueSession(deps: MfaDeps, caller: Caller, method: MfaMethod, mfaTime: number, extras: SessionExtras = {}): Promise<IssuedSession> {
  const ctx = auditContext(caller);
  const ttlMs = Math.min(sessionTtlMs(caller.policy), (extras.notAfter ?? Infinity) - caller.now);
  const issued = await deps.sessions.issue({ subject: ctx.subject, method, mfaTime, now: caller.now, ttlMs, maxPerSubject: caller.policy.mfa.session.maxPerSubject });
  deps.metrics?.mfaSessionsIssued.inc();
  const expiresAt = seconds(issued.record.expiresAt);
  deps.audit.record(ctx, { event: 'session_issued', sessionId: issued.logId, method, expiresAt });
  const remaining = extras.recoveryCodesRemaining;
  if (remaining === undefined) return { token: issued.token, expiresAt };
  const hint = recoveryCodesHint(caller.policy, remaining);
  return { token: issued.token, expiresAt, recoveryCodesRemaining: remaining, ...(hint !== undefined ? { recoveryCodesHint: hint } : {}) };
}

/** Logs and audits a factor whose secret cannot be opened (tampering or a lost key); it fails closed. */
export function reportUnreadable(deps: Pick<MfaDeps, 'logger' | 'audit'>, factor: Pick<FactorRecord, 'id' | 'subject' | 'secret'>, ctx: AuditContext = { subject: factor.subject }): void {
  deps.logger.error({ event: 'factor_unreadable', factor_id: factor.id, subject: factor.subject, kid: factor.secret.kid }, 'a factor secret cannot be decrypted; the factor is refused');
  deps.audit.record(ctx, { event: 'factor_unreadable', factorId: factor.id });
}
