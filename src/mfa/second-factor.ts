import type { Principal } from '../auth/principal.js';
import type { GatewayPolicy } from '../config/types.js';
import { then, type Awaitable } from '../async/awaitable.js';
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
import { sessionLogId, type SessionLookup } from './session.js';

/**
 * Request-time checking of the second factor: IdP-asserted MFA, MFA sessions, codes (TOTP, HOTP,
 * recovery) and the lockout, for proxied requests and for the `verify` / session endpoints. Every
 * call works on the policy and `now` its request pinned.
 */

export interface SecondFactorService {
  /** For requests on `mfa` / `step_up` routes, from the decision engine. */
  checkSecondFactor(input: SecondFactorInput): Awaitable<SecondFactorResult>;
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

/** What one second-factor check is asked: for whom, how fresh, which challenge, which methods. */
interface Question {
  readonly caller: Caller;
  readonly maxAgeMs: number;
  readonly challengeCode: 'mfa_required' | 'step_up_required';
  /** A code that passes opens a session (not for the step-up of the gateway's own endpoints). */
  readonly withSession: boolean;
  readonly accepted?: readonly FactorMethod[] | undefined;
}

/** On an `mfa` route a session that outlived its TTL is a plain "second factor required", not a step-up. */
function forRoute(result: SecondFactorResult, question: Question): SecondFactorResult {
  if (result.ok || result.problem.code !== 'step_up_required' || question.challengeCode === 'step_up_required') return result;
  return challenge('mfa_required', question.maxAgeMs, question.accepted);
}

/** A store that stopped answering mid-check is a 503 `store_unavailable`; anything else is a fault to surface. */
function storeFault(error: unknown): SecondFactorResult {
  if (isStoreUnavailable(error)) return storeUnavailable();
  throw error;
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
   * same request decide. A fresh session from this process's cache, with no risk rule to ask,
   * is answered without a promise.
   */
  function secondFactor(question: Question): Awaitable<SecondFactorResult> {
    const { caller, maxAgeMs, accepted } = question;
    const { sessionToken } = caller.view;
    // A valid session is checked before the lock: the lock stops code guessing, and refusing an
    // established session would let anyone holding the bearer token lock its owner out by failing.
    if (sessionToken === undefined) return afterSession(question, undefined, false, false);
    return then(sessions.lookup(sessionToken, caller.principal.subject, caller.now, caller.forCache), (found) => {
      if (!found.ok) return afterSession(question, found, false, false);
      const { record, holdUntil } = found;
      const fresh = caller.now - record.mfaTime * 1000 <= maxAgeMs;
      if (!fresh || !accepts(accepted, record.method as FactorMethod)) return afterSession(question, found, fresh, false);
      // Adaptive step-up (events.rules): a valid session from a new country still needs a fresh factor.
      const risk = deps.risk?.riskCheck({ subject: caller.principal.subject, view: caller.view, policy: caller.policy, now: caller.now });
      return then(risk, (reason) => {
        if (reason === undefined) {
          countVerification(deps, 'session', 'success');
          return passed(caller, record.method, record.mfaTime, Math.min(holdUntil, record.expiresAt, record.mfaTime * 1000 + maxAgeMs));
        }
        audit.record(auditContext(caller), { event: 'risk_step_up', reason });
        return afterSession(question, found, fresh, true);
      });
    });
  }

  /** The session (if any) did not settle it: the lock, then a code, then the challenge. */
  async function afterSession(question: Question, found: SessionLookup | undefined, fresh: boolean, risky: boolean): Promise<SecondFactorResult> {
    const { caller, maxAgeMs, challengeCode, withSession, accepted } = question;
    const { mfaToken } = caller.view;
    const { now, policy } = caller;
    const ctx = auditContext(caller);
    const locked = await lockRefusal(deps, ctx, now, policy);
    if (locked !== undefined) return locked;

    if (found !== undefined && mfaToken === undefined) {
      countVerification(deps, 'session', 'failure');
      if (fresh && !risky && found.ok) return refuse(methodNotAccepted(accepted!, `a session opened by ${found.record.method}`, maxAgeMs));
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
    return secondFactor({ caller, maxAgeMs, challengeCode: 'step_up_required', withSession: false });
  }

  return {
    checkSecondFactor(input) {
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
      const question: Question = { caller: input, maxAgeMs, challengeCode: stepUp ? 'step_up_required' : 'mfa_required', withSession: true, accepted };
      let result: Awaitable<SecondFactorResult>;
      try {
        result = secondFactor(question);
      } catch (error) {
        return storeFault(error);
      }
      return result instanceof Promise ? result.then((settled) => forRoute(settled, question), storeFault) : forRoute(result, question);
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
