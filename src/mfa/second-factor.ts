import type { Principal } from '../auth/principal.js';
import type { GatewayPolicy } from '../config/types.js';
import type { SecondFactorInput, SecondFactorResult } from '../decision/engine.js';
import type { IssuedSession, MfaMethod } from '../decision/types.js';
import {
  auditContext,
  challenge,
  codeMethod,
  countVerification,
  failedAttempt,
  isEnrolled,
  issueSession,
  lockRefusal,
  notEnrolled,
  refuse,
  seconds,
  sessionInvalid,
  storeUnavailable,
  sessionTtlMs,
  type Caller,
  type MfaDeps,
  type Outcome,
  type Refusal,
  standingWithContacts,
} from './attempts.js';
import type { FactorMethod } from '../routes/factor-methods.js';
import { accepts, codeNotAccepted, factorExpired, factorExpiresAt, methodNotAccepted, notEnrolledFor, nothingUsable } from './standing.js';
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

/** A second factor that needs nothing more on this request; `holdUntil` only when a cache in front asked. */
function passed(caller: Pick<Caller, 'forCache'>, method: MfaMethod, mfaTime: number, holdUntil: number): SecondFactorResult {
  return caller.forCache === true ? { ok: true, method, mfaTime, holdUntil } : { ok: true, method, mfaTime };
}

export function createSecondFactorService(deps: MfaDeps): SecondFactorService {
  const { verifier, ttl, sessions, audit } = deps;

  /**
   * A code from X-MFA-Token against the subject's usable factors of the kinds the route accepts
   * (`accepted`, undefined: any), then recovery codes. A code whose kind the route does not take is
   * refused unverified; a code of a factor past its lifetime is refused naming it; neither counts as
   * a failed guess. Every other refusal counts, as before.
   */
  async function attemptCode(
    caller: Caller,
    code: string,
    maxAgeMs: number,
    withSession: boolean,
    accepted?: readonly FactorMethod[],
  ): Promise<Outcome<{ method: MfaMethod; mfaTime: number; session?: IssuedSession }>> {
    const { policy, now } = caller;
    const ctx = auditContext(caller);
    const standing = await standingWithContacts(deps, ctx.subject, now, policy, accepted);
    if (!standing.enrolled) return notEnrolled(policy);
    if (codeNotAccepted(code, accepted)) {
      audit.record(ctx, { event: 'method_not_accepted', offered: 'code' });
      return refuse(methodNotAccepted(accepted!, 'a code in X-MFA-Token', maxAgeMs));
    }
    const expiredOne = (): Refusal | undefined => {
      const which = verifier.recognise(code, standing.expiredCodeFactors, now, policy);
      if (which === undefined) return undefined;
      audit.record(ctx, { event: 'factor_expired', factorId: which.id });
      return refuse(factorExpired(policy, accepted, standing.expired.find((f) => f.id === which.id)));
    };
    if (standing.codeFactors.length === 0 && standing.contacts.length === 0 && !standing.recovery) {
      // Nothing a code could be checked against (accepted is set: without it recovery is accepted).
      if (!nothingUsable(standing)) return refuse(methodNotAccepted(accepted!, 'a code in X-MFA-Token', maxAgeMs));
      return expiredOne() ?? refuse(standing.expired.length > 0 ? factorExpired(policy, accepted, undefined) : notEnrolledFor(policy, accepted!));
    }
    const method = codeMethod(code, [...standing.codeFactors, ...standing.contacts.map((c) => ({ type: c.channel }))], standing.recovery);
    const result = await verifier.attempt({ subject: ctx.subject, code, factors: standing.codeFactors, contacts: standing.contacts, allowRecovery: standing.recovery, now, policy });
    if (!result.ok) {
      const expired = expiredOne();
      if (expired !== undefined) return expired;
      const replayed = standing.codeFactors.find((f) => f.id === result.factorId);
      const refusal = await failedAttempt(deps, caller, result, maxAgeMs, method, replayed?.type, accepted);
      // Counted all the same; but with nothing usable left, the answer says why.
      return refusal.problem.code === 'mfa_invalid' && nothingUsable(standing) && standing.expired.length > 0 ? refuse(factorExpired(policy, accepted, undefined)) : refusal;
    }
    countVerification(deps, method, 'success');
    audit.record(ctx, { event: 'verified', method: result.method, factorId: result.method === 'recovery' ? undefined : result.factorId });
    if (result.method === 'recovery') audit.record(ctx, { event: 'recovery_code_used', remaining: result.remaining });
    else if ('backup' in result && result.backup) audit.record(ctx, { event: 'backup_contact_used', factorId: result.factorId });
    const mfaTime = seconds(now);
    const used = result.method === 'recovery' ? undefined : standing.codeFactors.find((f) => f.id === result.factorId);
    const extras = { notAfter: used === undefined ? undefined : factorExpiresAt(used, policy), recoveryCodesRemaining: result.method === 'recovery' ? result.remaining : undefined };
    // Independent writes, sent together: one round trip's wait on a network store.
    const [, session] = await Promise.all([
      ttl.clearLock(ctx.subject),
      withSession ? issueSession(deps, caller, result.method, mfaTime, extras) : undefined,
      deps.risk?.passed({ subject: ctx.subject, view: caller.view, policy, now }),
    ]);
    return session === undefined ? { ok: true, method: result.method, mfaTime } : { ok: true, method: result.method, mfaTime, session };
  }

  /**
   * Lock, then X-Session-Token, then X-MFA-Token, then the challenge. A session that is valid but
   * too old, opened by a method the route does not accept, or invalid, still lets a code in the
   * same request decide.
   */
  async function secondFactor(
    caller: Caller,
    maxAgeMs: number,
    challengeCode: 'mfa_required' | 'step_up_required',
    withSession: boolean,
    accepted?: readonly FactorMethod[],
  ): Promise<SecondFactorResult> {
    const { sessionToken, mfaToken } = caller.view;
    const { now, policy } = caller;
    // A valid session is checked before the lock: the lock stops code guessing, and refusing an
    // established session would let anyone holding the bearer token lock its owner out by failing.
    const found = sessionToken === undefined ? undefined : await sessions.lookup(sessionToken, caller.principal.subject, now, caller.forCache);
    const fresh = found?.ok === true && now - found.record.mfaTime * 1000 <= maxAgeMs;
    let risky = false;
    if (fresh && accepts(accepted, found.record.method as FactorMethod)) {
      // Adaptive step-up (events.rules): a valid session from a new country still needs a fresh factor.
      const risk = deps.risk === undefined ? undefined : await deps.risk.riskCheck({ subject: caller.principal.subject, view: caller.view, policy, now });
      if (risk === undefined) {
        countVerification(deps, 'session', 'success');
        const { record } = found;
        return passed(caller, record.method, record.mfaTime, Math.min(found.holdUntil, record.expiresAt, record.mfaTime * 1000 + maxAgeMs));
      }
      risky = true;
      audit.record(auditContext(caller), { event: 'risk_step_up', reason: risk });
    }

    const ctx = auditContext(caller);
    const locked = await lockRefusal(deps, ctx, now, policy);
    if (locked !== undefined) return locked;

    if (found !== undefined && mfaToken === undefined) {
      countVerification(deps, 'session', 'failure');
      if (fresh && !risky) return refuse(methodNotAccepted(accepted!, `a session opened by ${found.record.method}`, maxAgeMs));
      return found.ok ? challenge('step_up_required', maxAgeMs, accepted) : sessionInvalid(maxAgeMs, accepted);
    }

    if (mfaToken !== undefined) return attemptCode(caller, mfaToken, maxAgeMs, withSession, accepted);

    const standing = await standingWithContacts(deps, ctx.subject, now, policy, accepted);
    if (!standing.enrolled) return notEnrolled(policy);
    if (nothingUsable(standing)) {
      if (standing.expired.length > 0) return refuse(factorExpired(policy, accepted, undefined));
      return accepted !== undefined ? refuse(notEnrolledFor(policy, accepted)) : notEnrolled(policy);
    }
    return challenge(challengeCode, maxAgeMs, accepted);
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
      const accepted = route.mfaMethods;
      // IdP-asserted MFA needs nothing from the store, so it holds even while the store is down.
      const idp = accepts(accepted, 'idp') ? idpMfaTime(principal, policy, now, maxAgeMs) : undefined;
      if (idp !== undefined) {
        countVerification(deps, 'idp', 'success');
        return passed(input, 'idp', idp, idp * 1000 + maxAgeMs);
      }
      // Fail closed: with any store backend down nothing is checked, not even a session (it could
      // belong to a factor removed meanwhile), and no failure is counted against the user.
      if (deps.storeDown() !== undefined) return storeUnavailable();
      let result: SecondFactorResult;
      try {
        result = await secondFactor(input, maxAgeMs, stepUp ? 'step_up_required' : 'mfa_required', true, accepted);
      } catch (error) {
        if (isStoreUnavailable(error)) return storeUnavailable();
        throw error;
      }
      if (result.ok || result.problem.code !== 'step_up_required' || stepUp) return result;
      // An `mfa` route whose session outlived its TTL: that is a plain "second factor required".
      return challenge('mfa_required', maxAgeMs, accepted);
    },

    async verify(caller) {
      const { policy, now } = caller;
      const maxAgeMs = sessionTtlMs(policy);
      const ctx = auditContext(caller);
      const locked = await lockRefusal(deps, ctx, now, policy);
      if (locked !== undefined) return locked;
      const code = caller.view.mfaToken;
      if (code === undefined) {
        if (!(await isEnrolled(deps, ctx.subject, now, policy))) return notEnrolled(policy);
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
