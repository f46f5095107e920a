import type { Principal } from '../auth/principal.js';
import type { GatewayPolicy, Route } from '../config/types.js';
import type { Keyring } from '../crypto/keyring.js';
import type { SecondFactorChecker, SecondFactorResult } from '../decision/engine.js';
import type { IssuedSession, MfaMethod } from '../decision/types.js';
import { problem, type Problem } from '../errors/problems.js';
import { createLogger, type Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { RequestView } from '../request/view.js';
import type { DurableStore, FactorRecord, TtlStore } from '../store/types.js';
import { systemClock, type Clock } from '../time/clock.js';
import { createAuditLog, type AuditContext, type AuditLog } from './audit.js';
import { buildFactor, issueRecoveryCodes, MAX_FACTORS, MAX_PENDING_FACTORS, summarizeFactor, type FactorRequest, type FactorSummary } from './enrollment.js';
import { MfaError } from './errors.js';
import { resyncHotp } from './hotp.js';
import { createLockout, type Lockout } from './lockout.js';
import { renderQr, type QrImages } from './qr.js';
import { OTP_STEP_PREFIX } from './replay.js';
import { createSessionStore, MAX_SESSION_TTL_MS, sessionLogId as sessionIdOf, type SessionStore } from './session.js';
import { createCodeVerifier, type AttemptResult, type CodeVerifier } from './verify.js';

export type { SecondFactorResult } from '../decision/engine.js';

/**
 * The second factor: IdP-asserted MFA, lockout, MFA sessions and codes (TOTP, HOTP, recovery),
 * plus the enrollment operations the endpoints and the CLI call. All state lives in the injected
 * stores (atomic there), the policy is read per call (reloads apply at once), time comes from the
 * clock. Refusals are Problem values.
 */

export interface MfaServiceOptions {
  readonly getPolicy: () => GatewayPolicy;
  readonly durable: DurableStore;
  readonly ttl: TtlStore;
  readonly keyring: Keyring;
  readonly metrics?: Metrics | undefined;
  readonly logger?: Logger | undefined;
  /** Audit events; default: a child of `logger` named `audit`. */
  readonly audit?: Logger | undefined;
  readonly clock?: Clock | undefined;
}

/** Who is asking, for every operation: the verified bearer and the canonical request. */
export interface Caller {
  readonly principal: Principal;
  readonly view: RequestView;
}

export type Refusal = { readonly ok: false; readonly problem: Problem };
export type Outcome<T> = ({ readonly ok: true } & T) | Refusal;

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

export interface MfaService extends SecondFactorChecker {
  /** The service's logger, for front doors that must report an unexpected error. */
  readonly logger: Logger;
  /** For proxied requests on `mfa` / `step_up` routes. */
  checkSecondFactor(input: { principal: Principal; route: Route; view: RequestView }): Promise<SecondFactorResult>;
  /** `POST verify`: an X-MFA-Token in, a session out. */
  verify(caller: Caller): Promise<Outcome<{ method: MfaMethod; mfaTime: number; session: IssuedSession }>>;
  /** Step-up for sensitive operations: a second factor within `maxAgeMs` (session, code or IdP). */
  requireFresh(caller: Caller, maxAgeMs: number): Promise<SecondFactorResult>;
  enroll(caller: Caller, request: FactorRequest): Promise<Outcome<{ enrollment: Enrollment }>>;
  confirm(caller: Caller, factorId: string, code: string): Promise<Outcome<{ factorId: string; recoveryCodes?: string[] }>>;
  listFactors(subject: string): Promise<{ factors: FactorSummary[]; recoveryCodesRemaining: number }>;
  removeFactor(caller: Caller, factorId: string): Promise<Outcome<object>>;
  regenerateRecoveryCodes(caller: Caller): Promise<Outcome<{ recoveryCodes: string[] }>>;
  resyncHotp(caller: Caller, factorId: string, code1: string, code2: string): Promise<Outcome<{ factorId: string }>>;
  revokeSession(caller: Caller): Promise<Outcome<object>>;
  refreshSession(caller: Caller): Promise<Outcome<{ session: IssuedSession }>>;
  /** Users locked out right now (for the active-locks gauge). */
  activeLocks(): Promise<number>;
}

/** Step-up for managing factors and recovery codes: a second factor within the last 5 minutes. */
export const MANAGEMENT_STEP_UP_MS = 5 * 60_000;
/** How far past its counter a hardware token is searched for a resync pair. */
export const HOTP_RESYNC_WINDOW = 200;
const IDP_MFA_AMR = new Set(['mfa', 'otp', 'hwk']);

/** Every rejected code gets exactly this detail, whatever the reason. */
export const INVALID_CODE_DETAIL = 'the second factor was not accepted';

function requireFunction(value: unknown, name: string): void {
  if (typeof value !== 'function') throw new MfaError('invalid_option', `option "${name}" must be a function`);
}

function requireMethods(value: unknown, name: string, methods: readonly string[]): void {
  if (typeof value !== 'object' || value === null) throw new MfaError('invalid_option', `option "${name}" is required`);
  for (const m of methods) {
    if (typeof (value as Record<string, unknown>)[m] !== 'function') throw new MfaError('invalid_option', `option "${name}" must have a ${m}() method`);
  }
}

function seconds(ms: number): number {
  return Math.floor(ms / 1000);
}

export function createMfaService(options: MfaServiceOptions): MfaService {
  if (typeof options !== 'object' || options === null) throw new MfaError('invalid_option', 'createMfaService needs an options object');
  requireFunction(options.getPolicy, 'getPolicy');
  requireMethods(options.durable, 'durable', ['listFactors', 'getFactor', 'createFactor', 'activateFactor', 'deleteFactor', 'advanceHotpCounter', 'replaceRecoveryCodes', 'consumeRecoveryCode', 'countRecoveryCodes']);
  requireMethods(options.ttl, 'ttl', ['get', 'set', 'delete', 'update', 'countPrefix']);
  requireMethods(options.keyring, 'keyring', ['seal', 'open', 'hmac', 'kids']);
  if (options.clock !== undefined) requireFunction(options.clock, 'clock');

  const { getPolicy, durable, ttl, keyring, metrics } = options;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const audit: AuditLog = createAuditLog(options.audit ?? logger.child({ name: 'audit' }));
  const lockout: Lockout = createLockout({ ttl, config: () => getPolicy().mfa.lockout });
  const sessions: SessionStore = createSessionStore(ttl);
  const verifier: CodeVerifier = createCodeVerifier({
    durable,
    ttl,
    keyring,
    onUnreadable: (factor) => {
      // Fails closed: the factor never matches. Loud, because it means tampering or a lost key.
      logger.error({ event: 'factor_unreadable', factor_id: factor.id, subject: factor.subject, kid: factor.secret.kid }, 'a factor secret cannot be decrypted; the factor is refused');
      audit.record({ subject: factor.subject }, { event: 'factor_unreadable', factorId: factor.id });
    },
  });

  function sessionTtlMs(policy: GatewayPolicy): number {
    return Math.min(policy.mfa.session.ttlMs, MAX_SESSION_TTL_MS);
  }

  function auditContext(caller: Caller): AuditContext {
    return { subject: caller.principal.subject, requestId: caller.view.requestId, clientIp: caller.view.clientIp };
  }

  function countVerification(method: string, result: 'success' | 'failure' | 'locked'): void {
    metrics?.mfaVerifications.inc({ method, result });
  }

  function refuse(p: Problem): Refusal {
    return { ok: false, problem: p };
  }

  function notEnrolled(policy: GatewayPolicy): Refusal {
    return refuse(
      problem('mfa_not_enrolled', 'no active second factor is enrolled for this user', {
        hint: `enroll one with POST ${policy.mfa.pathPrefix}totp/enroll, then activate it with POST ${policy.mfa.pathPrefix}totp/confirm`,
      }),
    );
  }

  function challenge(code: 'mfa_required' | 'step_up_required', maxAgeMs: number): Refusal {
    const detail = code === 'mfa_required' ? 'a second factor is required for this route' : 'a fresh second factor is required for this operation';
    return refuse(problem(code, detail, { maxAge: seconds(maxAgeMs) }));
  }

  function invalidCode(maxAgeMs: number, hint?: string): Refusal {
    return refuse(problem('mfa_invalid', INVALID_CODE_DETAIL, { maxAge: seconds(maxAgeMs), ...(hint !== undefined ? { hint } : {}) }));
  }

  async function activeFactors(subject: string, now: number): Promise<FactorRecord[]> {
    return (await durable.listFactors(subject, now)).filter((f) => f.status === 'active');
  }

  /** IdP-asserted MFA (amr + auth_time) younger than maxAgeMs, when the policy accepts it: its time, else undefined. */
  function idpMfaTime(principal: Principal, policy: GatewayPolicy, now: number, maxAgeMs: number): number | undefined {
    if (!policy.auth.jwt.acceptIdpMfa || principal.authTime === undefined) return undefined;
    if (!principal.amr.some((m) => IDP_MFA_AMR.has(m))) return undefined;
    const ageMs = now - principal.authTime * 1000;
    // An auth_time in the future beyond the clock tolerance is not believed.
    if (ageMs < -policy.auth.jwt.clockToleranceMs || ageMs > maxAgeMs) return undefined;
    return principal.authTime;
  }

  /** Refuses while the subject is locked: nothing is verified, not even a correct code. */
  async function lockRefusal(ctx: AuditContext, now: number): Promise<Refusal | undefined> {
    const remaining = await lockout.remainingMs(ctx.subject, now);
    if (remaining <= 0) return undefined;
    const retryAfter = Math.ceil(remaining / 1000);
    countVerification('none', 'locked');
    audit.record(ctx, { event: 'lock_refused', retryAfterSeconds: retryAfter });
    return refuse(problem('mfa_locked', 'too many failed second-factor attempts; try again later', { retryAfter }));
  }

  async function issueSession(ctx: AuditContext, method: MfaMethod, mfaTime: number, now: number, policy: GatewayPolicy): Promise<IssuedSession> {
    const issued = await sessions.issue({ subject: ctx.subject, method, mfaTime, now, ttlMs: sessionTtlMs(policy) });
    metrics?.mfaSessionsIssued.inc();
    const expiresAt = seconds(issued.record.expiresAt);
    audit.record(ctx, { event: 'session_issued', sessionId: issued.logId, method, expiresAt });
    return { token: issued.token, expiresAt };
  }

  /** Counts one failed code against the subject's lockout ladder. */
  async function countFailure(ctx: AuditContext, now: number): Promise<void> {
    const outcome = await lockout.recordFailure(ctx.subject, now);
    if (!outcome.lockedNow) return;
    metrics?.mfaLockouts.inc();
    audit.record(ctx, { event: 'locked', retryAfterSeconds: Math.ceil(outcome.retryAfterMs / 1000), level: outcome.level });
    if (metrics !== undefined) metrics.mfaActiveLocks.set(await lockout.activeLocks());
  }

  async function failedAttempt(ctx: AuditContext, result: Extract<AttemptResult, { ok: false }>, now: number, maxAgeMs: number, replayMethod?: MfaMethod): Promise<Refusal> {
    countVerification('code', 'failure');
    if (result.reason === 'replay') {
      metrics?.mfaReplays.inc();
      audit.record(ctx, { event: 'replay', method: replayMethod ?? 'totp', factorId: result.factorId });
    }
    audit.record(ctx, { event: 'failed', reason: result.reason, factorId: result.factorId, driftSeconds: result.driftSeconds });
    await countFailure(ctx, now);
    const hint =
      result.reason === 'drift' && result.driftSeconds !== undefined
        ? `device clock looks off by about ${Math.abs(result.driftSeconds)} seconds; sync it with NTP`
        : undefined;
    return invalidCode(maxAgeMs, hint);
  }

  /** A code from X-MFA-Token against the subject's active factors, then recovery codes. */
  async function attemptCode(
    caller: Caller,
    code: string,
    policy: GatewayPolicy,
    now: number,
    maxAgeMs: number,
    withSession: boolean,
  ): Promise<Outcome<{ method: MfaMethod; mfaTime: number; session?: IssuedSession }>> {
    const ctx = auditContext(caller);
    const factors = await activeFactors(ctx.subject, now);
    if (factors.length === 0) return notEnrolled(policy);
    const result = await verifier.attempt({ subject: ctx.subject, code, factors, allowRecovery: true, now, policy });
    if (!result.ok) {
      const replayed = factors.find((f) => f.id === result.factorId);
      return failedAttempt(ctx, result, now, maxAgeMs, replayed?.type);
    }
    await lockout.recordSuccess(ctx.subject, now);
    countVerification(result.method, 'success');
    audit.record(ctx, { event: 'verified', method: result.method, factorId: result.method === 'recovery' ? undefined : result.factorId });
    if (result.method === 'recovery') audit.record(ctx, { event: 'recovery_code_used', remaining: result.remaining });
    const mfaTime = seconds(now);
    if (!withSession) return { ok: true, method: result.method, mfaTime };
    return { ok: true, method: result.method, mfaTime, session: await issueSession(ctx, result.method, mfaTime, now, policy) };
  }

  /**
   * Lock, then X-Session-Token, then X-MFA-Token, then the challenge. A session that is valid but
   * too old, or invalid, still lets a code in the same request decide.
   */
  async function secondFactor(
    caller: Caller,
    policy: GatewayPolicy,
    now: number,
    maxAgeMs: number,
    challengeCode: 'mfa_required' | 'step_up_required',
    withSession: boolean,
  ): Promise<SecondFactorResult> {
    const { sessionToken, mfaToken } = caller.view;
    // A valid session is checked before the lock: the lock stops code guessing, and refusing an
    // established session would let anyone holding the bearer token lock its owner out by failing.
    const found = sessionToken === undefined ? undefined : await sessions.lookup(sessionToken, caller.principal.subject, now);
    if (found?.ok === true && now - found.record.mfaTime * 1000 <= maxAgeMs) {
      countVerification('session', 'success');
      return { ok: true, method: found.record.method, mfaTime: found.record.mfaTime };
    }

    const ctx = auditContext(caller);
    const locked = await lockRefusal(ctx, now);
    if (locked !== undefined) return locked;

    if (found !== undefined && mfaToken === undefined) {
      countVerification('session', 'failure');
      return found.ok
        ? challenge('step_up_required', maxAgeMs)
        : refuse(problem('session_invalid', 'the MFA session is invalid, expired or revoked', { maxAge: seconds(maxAgeMs) }));
    }

    if (mfaToken !== undefined) return attemptCode(caller, mfaToken, policy, now, maxAgeMs, withSession);

    if ((await activeFactors(ctx.subject, now)).length === 0) return notEnrolled(policy);
    return challenge(challengeCode, maxAgeMs);
  }

  async function requireFresh(caller: Caller, maxAgeMs: number): Promise<SecondFactorResult> {
    const policy = getPolicy();
    const now = clock();
    const idp = idpMfaTime(caller.principal, policy, now, maxAgeMs);
    if (idp !== undefined) return { ok: true, method: 'idp', mfaTime: idp };
    return secondFactor(caller, policy, now, maxAgeMs, 'step_up_required', false);
  }

  /** Step-up only when the subject already has an active factor (the first one needs none). */
  async function freshIfEnrolled(caller: Caller, now: number): Promise<Refusal | undefined> {
    if ((await activeFactors(caller.principal.subject, now)).length === 0) return undefined;
    const fresh = await requireFresh(caller, MANAGEMENT_STEP_UP_MS);
    return fresh.ok ? undefined : fresh;
  }

  return {
    logger,
    async checkSecondFactor({ principal, route, view }) {
      const policy = getPolicy();
      const now = clock();
      const stepUp = route.policy === 'step_up';
      const maxAgeMs = stepUp && route.maxAgeMs !== undefined ? route.maxAgeMs : sessionTtlMs(policy);
      const idp = idpMfaTime(principal, policy, now, maxAgeMs);
      if (idp !== undefined) {
        countVerification('idp', 'success');
        return { ok: true, method: 'idp', mfaTime: idp };
      }
      const result = await secondFactor({ principal, view }, policy, now, maxAgeMs, stepUp ? 'step_up_required' : 'mfa_required', true);
      if (result.ok || result.problem.code !== 'step_up_required' || stepUp) return result;
      // An `mfa` route whose session outlived its TTL: that is a plain "second factor required".
      return challenge('mfa_required', maxAgeMs);
    },

    async verify(caller) {
      const policy = getPolicy();
      const now = clock();
      const maxAgeMs = sessionTtlMs(policy);
      const ctx = auditContext(caller);
      const locked = await lockRefusal(ctx, now);
      if (locked !== undefined) return locked;
      const code = caller.view.mfaToken;
      if (code === undefined) {
        if ((await activeFactors(ctx.subject, now)).length === 0) return notEnrolled(policy);
        return challenge('mfa_required', maxAgeMs);
      }
      const result = await attemptCode(caller, code, policy, now, maxAgeMs, true);
      if (!result.ok) return result;
      return { ok: true, method: result.method, mfaTime: result.mfaTime, session: result.session! };
    },

    requireFresh,

    async enroll(caller, request) {
      const policy = getPolicy();
      const now = clock();
      const ctx = auditContext(caller);
      const stale = await freshIfEnrolled(caller, now);
      if (stale !== undefined) return stale;
      const existing = await durable.listFactors(ctx.subject, now);
      if (existing.length >= MAX_FACTORS) return refuse(problem('invalid_request', `a user may have at most ${MAX_FACTORS} factors; remove one first`));
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
      const policy = getPolicy();
      const now = clock();
      const ctx = auditContext(caller);
      const maxAgeMs = sessionTtlMs(policy);
      const locked = await lockRefusal(ctx, now);
      if (locked !== undefined) return locked;
      const factor = await durable.getFactor(factorId);
      const mine = factor !== undefined && factor.subject === ctx.subject && factor.status === 'pending' && (factor.pendingUntil ?? 0) > now;
      if (!mine) return refuse(problem('not_found', 'no pending factor with this id (it may have expired; enroll again)'));
      // The confirm code is used up like any other: the replay guard sees it.
      const result = await verifier.attempt({ subject: ctx.subject, code, factors: [factor], allowRecovery: false, now, policy });
      if (!result.ok) return failedAttempt(ctx, result, now, maxAgeMs, factor.type);
      const hadActive = (await activeFactors(ctx.subject, now)).length > 0;
      if (!(await durable.activateFactor(factor.id, ctx.subject, now))) {
        return refuse(problem('not_found', 'no pending factor with this id (it may have expired; enroll again)'));
      }
      await lockout.recordSuccess(ctx.subject, now);
      countVerification(factor.type, 'success');
      audit.record(ctx, { event: 'confirmed', factorId: factor.id, type: factor.type });
      if (hadActive) return { ok: true, factorId: factor.id };
      const recoveryCodes = await issueRecoveryCodes(durable, keyring, ctx.subject, policy.mfa.recoveryCodes.count, now);
      audit.record(ctx, { event: 'recovery_codes_generated', count: recoveryCodes.length });
      return { ok: true, factorId: factor.id, recoveryCodes };
    },

    async listFactors(subject) {
      const now = clock();
      const [factors, recoveryCodesRemaining] = await Promise.all([durable.listFactors(subject, now), durable.countRecoveryCodes(subject)]);
      return { factors: factors.map(summarizeFactor), recoveryCodesRemaining };
    },

    async removeFactor(caller, factorId) {
      const now = clock();
      const ctx = auditContext(caller);
      const stale = await freshIfEnrolled(caller, now);
      if (stale !== undefined) return stale;
      if (!(await durable.deleteFactor(factorId, ctx.subject))) return refuse(problem('not_found', 'no factor with this id'));
      await ttl.delete(OTP_STEP_PREFIX + factorId);
      audit.record(ctx, { event: 'factor_removed', factorId });
      // Recovery codes only stand in for a factor; with none left they go too.
      if ((await activeFactors(ctx.subject, now)).length === 0) await durable.replaceRecoveryCodes(ctx.subject, [], now);
      return { ok: true };
    },

    async regenerateRecoveryCodes(caller) {
      const policy = getPolicy();
      const now = clock();
      const ctx = auditContext(caller);
      if ((await activeFactors(ctx.subject, now)).length === 0) return notEnrolled(policy);
      const fresh = await requireFresh(caller, MANAGEMENT_STEP_UP_MS);
      if (!fresh.ok) return fresh;
      const recoveryCodes = await issueRecoveryCodes(durable, keyring, ctx.subject, policy.mfa.recoveryCodes.count, now);
      audit.record(ctx, { event: 'recovery_codes_generated', count: recoveryCodes.length });
      return { ok: true, recoveryCodes };
    },

    async resyncHotp(caller, factorId, code1, code2) {
      const policy = getPolicy();
      const now = clock();
      const ctx = auditContext(caller);
      const maxAgeMs = sessionTtlMs(policy);
      const locked = await lockRefusal(ctx, now);
      if (locked !== undefined) return locked;
      const factor = await durable.getFactor(factorId);
      if (factor === undefined || factor.subject !== ctx.subject || factor.type !== 'hotp' || factor.status !== 'active') {
        return refuse(problem('not_found', 'no active HOTP factor with this id'));
      }
      let secret: Buffer | undefined;
      try {
        secret = keyring.open(factor.secret, { subject: factor.subject, factorId: factor.id });
      } catch {
        logger.error({ event: 'factor_unreadable', factor_id: factor.id, subject: factor.subject, kid: factor.secret.kid }, 'a factor secret cannot be decrypted; the factor is refused');
        audit.record(ctx, { event: 'factor_unreadable', factorId: factor.id });
      }
      const next =
        secret === undefined
          ? undefined
          : resyncHotp({ secret, counter: factor.counter, code1, code2, searchWindow: HOTP_RESYNC_WINDOW, algorithm: factor.algorithm, digits: factor.digits });
      secret?.fill(0);
      if (next === undefined || !(await durable.advanceHotpCounter(factor.id, factor.counter, next))) {
        return failedAttempt(ctx, { ok: false, reason: 'wrong', factorId: factor.id }, now, maxAgeMs);
      }
      await lockout.recordSuccess(ctx.subject, now);
      audit.record(ctx, { event: 'hotp_resynced', factorId: factor.id });
      return { ok: true, factorId: factor.id };
    },

    async revokeSession(caller) {
      const policy = getPolicy();
      const now = clock();
      const token = caller.view.sessionToken;
      const ctx = auditContext(caller);
      if (token === undefined || !(await sessions.revoke(token, ctx.subject, now))) {
        return refuse(problem('session_invalid', 'the MFA session is invalid, expired or revoked', { maxAge: seconds(sessionTtlMs(policy)) }));
      }
      audit.record(ctx, { event: 'session_revoked', sessionId: sessionIdOf(token) });
      return { ok: true };
    },

    async refreshSession(caller) {
      const policy = getPolicy();
      const now = clock();
      const token = caller.view.sessionToken;
      const ctx = auditContext(caller);
      const refreshed = token === undefined ? undefined : await sessions.refresh(token, ctx.subject, now, sessionTtlMs(policy));
      if (token === undefined || refreshed === undefined) {
        return refuse(problem('session_invalid', 'the MFA session is invalid, expired or revoked', { maxAge: seconds(sessionTtlMs(policy)) }));
      }
      audit.record(ctx, { event: 'session_refreshed', sessionId: refreshed.logId, previousSessionId: sessionIdOf(token) });
      return { ok: true, session: { token: refreshed.token, expiresAt: seconds(refreshed.record.expiresAt) } };
    },

    activeLocks: () => lockout.activeLocks(),
  };
}
