import type { Principal } from '../auth/principal.js';
import type { GatewayPolicy } from '../config/types.js';
import type { SecondFactorInput, SecondFactorResult } from '../decision/engine.js';
import type { IssuedSession, MfaMethod } from '../decision/types.js';
import {
  activeFactors,
  auditContext,
  challenge,
  codeMethod,
  countVerification,
  failedAttempt,
  issueSession,
  lockRefusal,
  notEnrolled,
  seconds,
  sessionInvalid,
  storeUnavailable,
  sessionTtlMs,
  type Caller,
  type MfaDeps,
  type Outcome,
} from './attempts.js';
import { isStoreUnavailable } from '../store/health.js';
import { sessionLogId } from './session.js';

/**
 * Request-time checking of the second factor: IdP-asserted MFA, MFA sessions, codes (TOTP, HOTP,
 * recovery) and the lockout, for proxied requests and for the `verify` / session endpoints. Every
 * call works on the policy and `now` its request pinned.
 */

export interface SecondFactorService {
  /** For requests on `mfa` / `step_up` routes, from the decision engine. */
  checkSecondFactor(input: SecondFactorInput): Promise<SecondFactorResult>;
  /** `POST verify`: an X-MFA-Token in, a session out. */
  verify(caller: Caller): Promise<Outcome<{ method: MfaMethod; mfaTime: number; session: IssuedSession }>>;
  /** Step-up for sensitive operations: a second factor within `maxAgeMs` (session, code or IdP). */
  requireFresh(caller: Caller, maxAgeMs: number): Promise<SecondFactorResult>;
  revokeSession(caller: Caller): Promise<Outcome<object>>;
  refreshSession(caller: Caller): Promise<Outcome<{ session: IssuedSession }>>;
  /** Users locked out right now (for the active-locks gauge). */
  activeLocks(now: number): Promise<number>;
}

const IDP_MFA_AMR = new Set(['mfa', 'otp', 'hwk']);

/** IdP-asserted MFA (amr + auth_time) younger than maxAgeMs, when the policy accepts it: its time, else undefined. */
function idpMfaTime(principal: Principal, policy: GatewayPolicy, now: number, maxAgeMs: number): number | undefined {
  if (!policy.auth.jwt.acceptIdpMfa || principal.authTime === undefined) return undefined;
  if (!principal.amr.some((m) => IDP_MFA_AMR.has(m))) return undefined;
  const ageMs = now - principal.authTime * 1000;
  // An auth_time in the future beyond the clock tolerance is not believed.
  if (ageMs < -policy.auth.jwt.clockToleranceMs || ageMs > maxAgeMs) return undefined;
  return principal.authTime;
}

export function createSecondFactorService(deps: MfaDeps): SecondFactorService {
  const { verifier, ttl, sessions, audit } = deps;

  /** A code from X-MFA-Token against the subject's active factors, then recovery codes. */
  async function attemptCode(caller: Caller, code: string, maxAgeMs: number, withSession: boolean): Promise<Outcome<{ method: MfaMethod; mfaTime: number; session?: IssuedSession }>> {
    const { policy, now } = caller;
    const ctx = auditContext(caller);
    const factors = await activeFactors(deps, ctx.subject, now);
    if (factors.length === 0) return notEnrolled(policy);
    const method = codeMethod(code, factors, true);
    const result = await verifier.attempt({ subject: ctx.subject, code, factors, allowRecovery: true, now, policy });
    if (!result.ok) {
      const replayed = factors.find((f) => f.id === result.factorId);
      return failedAttempt(deps, caller, result, maxAgeMs, method, replayed?.type);
    }
    countVerification(deps, method, 'success');
    audit.record(ctx, { event: 'verified', method: result.method, factorId: result.method === 'recovery' ? undefined : result.factorId });
    if (result.method === 'recovery') audit.record(ctx, { event: 'recovery_code_used', remaining: result.remaining });
    const mfaTime = seconds(now);
    // Independent writes, sent together: one round trip's wait on a network store.
    const [, session] = await Promise.all([ttl.clearLock(ctx.subject), withSession ? issueSession(deps, caller, result.method, mfaTime) : undefined]);
    return session === undefined ? { ok: true, method: result.method, mfaTime } : { ok: true, method: result.method, mfaTime, session };
  }

  /**
   * Lock, then X-Session-Token, then X-MFA-Token, then the challenge. A session that is valid but
   * too old, or invalid, still lets a code in the same request decide.
   */
  async function secondFactor(caller: Caller, maxAgeMs: number, challengeCode: 'mfa_required' | 'step_up_required', withSession: boolean): Promise<SecondFactorResult> {
    const { sessionToken, mfaToken } = caller.view;
    const { now } = caller;
    // A valid session is checked before the lock: the lock stops code guessing, and refusing an
    // established session would let anyone holding the bearer token lock its owner out by failing.
    const found = sessionToken === undefined ? undefined : await sessions.lookup(sessionToken, caller.principal.subject, now);
    if (found?.ok === true && now - found.record.mfaTime * 1000 <= maxAgeMs) {
      countVerification(deps, 'session', 'success');
      return { ok: true, method: found.record.method, mfaTime: found.record.mfaTime };
    }

    const ctx = auditContext(caller);
    const locked = await lockRefusal(deps, ctx, now, caller.policy);
    if (locked !== undefined) return locked;

    if (found !== undefined && mfaToken === undefined) {
      countVerification(deps, 'session', 'failure');
      return found.ok ? challenge('step_up_required', maxAgeMs) : sessionInvalid(maxAgeMs);
    }

    if (mfaToken !== undefined) return attemptCode(caller, mfaToken, maxAgeMs, withSession);

    if ((await activeFactors(deps, ctx.subject, now)).length === 0) return notEnrolled(caller.policy);
    return challenge(challengeCode, maxAgeMs);
  }

  async function requireFresh(caller: Caller, maxAgeMs: number): Promise<SecondFactorResult> {
    const idp = idpMfaTime(caller.principal, caller.policy, caller.now, maxAgeMs);
    if (idp !== undefined) return { ok: true, method: 'idp', mfaTime: idp };
    return secondFactor(caller, maxAgeMs, 'step_up_required', false);
  }

  return {
    async checkSecondFactor(input) {
      const { principal, route, policy, now } = input;
      const stepUp = route.policy === 'step_up';
      const maxAgeMs = stepUp && route.maxAgeMs !== undefined ? route.maxAgeMs : sessionTtlMs(policy);
      // IdP-asserted MFA needs nothing from the store, so it holds even while the store is down.
      const idp = idpMfaTime(principal, policy, now, maxAgeMs);
      if (idp !== undefined) {
        countVerification(deps, 'idp', 'success');
        return { ok: true, method: 'idp', mfaTime: idp };
      }
      // Fail closed: with any store backend down nothing is checked, not even a session (it could
      // belong to a factor removed meanwhile), and no failure is counted against the user.
      if (deps.storeDown() !== undefined) return storeUnavailable();
      let result: SecondFactorResult;
      try {
        result = await secondFactor(input, maxAgeMs, stepUp ? 'step_up_required' : 'mfa_required', true);
      } catch (error) {
        if (isStoreUnavailable(error)) return storeUnavailable();
        throw error;
      }
      if (result.ok || result.problem.code !== 'step_up_required' || stepUp) return result;
      // An `mfa` route whose session outlived its TTL: that is a plain "second factor required".
      return challenge('mfa_required', maxAgeMs);
    },

    async verify(caller) {
      const { policy, now } = caller;
      const maxAgeMs = sessionTtlMs(policy);
      const ctx = auditContext(caller);
      const locked = await lockRefusal(deps, ctx, now, policy);
      if (locked !== undefined) return locked;
      const code = caller.view.mfaToken;
      if (code === undefined) {
        if ((await activeFactors(deps, ctx.subject, now)).length === 0) return notEnrolled(policy);
        return challenge('mfa_required', maxAgeMs);
      }
      const result = await attemptCode(caller, code, maxAgeMs, true);
      if (!result.ok) return result;
      return { ok: true, method: result.method, mfaTime: result.mfaTime, session: result.session! };
    },

    requireFresh,

    async revokeSession(caller) {
      const token = caller.view.sessionToken;
      const ctx = auditContext(caller);
      if (token === undefined || !(await sessions.revoke(token, ctx.subject, caller.now))) return sessionInvalid(sessionTtlMs(caller.policy));
      audit.record(ctx, { event: 'session_revoked', sessionId: sessionLogId(token) });
      return { ok: true };
    },

    async refreshSession(caller) {
      const token = caller.view.sessionToken;
      const ctx = auditContext(caller);
      const refreshed = token === undefined ? undefined : await sessions.refresh(token, ctx.subject, caller.now, sessionTtlMs(caller.policy), caller.policy.mfa.session.maxPerSubject);
      if (token === undefined || refreshed === undefined) return sessionInvalid(sessionTtlMs(caller.policy));
      audit.record(ctx, { event: 'session_refreshed', sessionId: refreshed.logId, previousSessionId: sessionLogId(token) });
      return { ok: true, session: { token: refreshed.token, expiresAt: seconds(refreshed.record.expiresAt) } };
    },

    activeLocks: (now) => ttl.activeLocks(now),
  };
}
