import type { GatewayPolicy } from '../config/types.js';
import { problem } from '../errors/problems.js';
import { CODE_METHODS, type FactorMethod } from '../routes/factor-methods.js';
import type { ContactRecord, FactorRecord, WebAuthnCredentialRecord } from '../store/types.js';
import type { FactorCache } from './factor-cache.js';
import { normalizeRecoveryCode } from './recovery.js';

/**
 * What a subject can prove right now, for one route: which of its factors are of a kind the route
 * accepts (its `methods:`, undefined: any) and still within their lifetime (`max_age` per method).
 * Pure functions of the factors, the policy and `now`, plus the refusals that name what is missing.
 *
 * Lifetimes count from registration (a TOTP factor's confirmation): security keys and passkeys by
 * kind (`mfa.webauthn.max_age`), TOTP and HOTP only when `mfa.totp.max_age` / `mfa.hotp.max_age` is
 * set, recovery codes never (they are single use and renewed as a set). A factor past its lifetime
 * still counts as enrolled — adding a new one needs a step-up, which a recovery code or another
 * factor gives — so a stolen bearer cannot register its own factor because the owner's got old.
 */

export interface Standing {
  /** Active OTP factors the route accepts, within their lifetime. */
  readonly codeFactors: readonly FactorRecord[];
  /** Credentials the route accepts, within their lifetime (none while mfa.webauthn is off; read only when `codeFactors` is empty). */
  readonly credentials: readonly WebAuthnCredentialRecord[];
  /** Usable e-mail/SMS contacts (factors and backup contacts) of a channel the route accepts. */
  readonly contacts: readonly ContactRecord[];
  /** The route accepts a recovery code. */
  readonly recovery: boolean;
  /** Active OTP factors of an accepted kind past their lifetime (to recognise a code of one). */
  readonly expiredCodeFactors: readonly FactorRecord[];
  /** Every factor of an accepted kind past its lifetime. */
  readonly expired: readonly ExpiredFactor[];
  /** Any active factor, credential or e-mail/SMS factor at all, whatever its kind or age (a backup contact is none). */
  readonly enrolled: boolean;
}

export interface ExpiredFactor {
  readonly id: string;
  readonly label: string;
  /** Unix ms. */
  readonly expiredAt: number;
}

export function accepts(accepted: readonly FactorMethod[] | undefined, method: FactorMethod): boolean {
  return accepted === undefined || accepted.includes(method);
}

/** When a TOTP/HOTP factor stops satisfying routes (unix ms); undefined: never. */
export function factorExpiresAt(f: FactorRecord, policy: GatewayPolicy): number | undefined {
  const maxAgeMs = f.type === 'totp' ? policy.mfa.totp.maxAgeMs : policy.mfa.hotp.maxAgeMs;
  return maxAgeMs === undefined ? undefined : (f.confirmedAt ?? f.createdAt) + maxAgeMs;
}

/** When a credential stops satisfying routes (unix ms); undefined while WebAuthn is off (it satisfies nothing then). */
export function credentialExpiresAt(c: WebAuthnCredentialRecord, policy: GatewayPolicy): number | undefined {
  const webauthn = policy.mfa.webauthn;
  if (webauthn === undefined) return undefined;
  return c.createdAt + (c.kind === 'security_key' ? webauthn.maxAgeMs.securityKey : webauthn.maxAgeMs.platform);
}

const live = (expiresAt: number | undefined, now: number): boolean => expiresAt === undefined || now < expiresAt;

/**
 * `credentials` (and the credentials among `expired`) are read only when no code factor is usable:
 * that is the only time they change an answer, so the hot path — a TOTP user sending a code — costs
 * no extra store read.
 */
export async function standingOf(
  cache: FactorCache,
  subject: string,
  now: number,
  policy: GatewayPolicy,
  accepted?: readonly FactorMethod[],
  /** The subject's contacts the policy lets satisfy a second factor (usableContactsOf). */
  contacts: readonly ContactRecord[] = [],
): Promise<Standing> {
  const factors = await cache.active(subject, now);
  const kinds = factors.filter((f) => accepts(accepted, f.type));
  const codeFactors = kinds.filter((f) => live(factorExpiresAt(f, policy), now));
  const expiredCodeFactors = kinds.filter((f) => !live(factorExpiresAt(f, policy), now));
  const credentials = codeFactors.length === 0 ? await cache.credentials(subject) : [];
  const webauthn = policy.mfa.webauthn !== undefined && accepts(accepted, 'webauthn') ? credentials : [];
  const expiredCredentials = webauthn.filter((c) => !live(credentialExpiresAt(c, policy), now));
  return {
    codeFactors,
    credentials: webauthn.filter((c) => live(credentialExpiresAt(c, policy), now)),
    contacts: contacts.filter((c) => accepts(accepted, c.channel)),
    recovery: accepts(accepted, 'recovery'),
    expiredCodeFactors,
    expired: [
      ...expiredCodeFactors.map((f) => ({ id: f.id, label: f.label, expiredAt: factorExpiresAt(f, policy)! })),
      ...expiredCredentials.map((c) => ({ id: c.id, label: c.label, expiredAt: credentialExpiresAt(c, policy)! })),
    ],
    enrolled: factors.length > 0 || credentials.length > 0 || contacts.some((c) => c.purpose === 'factor'),
  };
}

/** Nothing the route accepts is usable, though the subject has factors: what to answer when nothing else is sent. */
export function nothingUsable(standing: Standing): boolean {
  return standing.codeFactors.length === 0 && standing.credentials.length === 0 && standing.contacts.length === 0;
}

/** The second-factor kinds a code in X-MFA-Token can be, from its shape alone ([] when it is no code at all). */
export function codeKinds(code: string): readonly FactorMethod[] {
  // Codes sent by e-mail or SMS are six digits too: the shape cannot tell them from an OTP.
  if (/^\d{6}$/.test(code)) return ['totp', 'hotp', 'email', 'sms'];
  if (/^\d{8}$/.test(code)) return ['totp', 'hotp'];
  if (normalizeRecoveryCode(code) !== undefined) return ['recovery'];
  return [];
}

/**
 * A code the route cannot accept whatever it is: its shape names only kinds the route does not list,
 * or the route takes no code at all. Refused before any check, so it never counts as a failed guess.
 */
export function codeNotAccepted(code: string, accepted: readonly FactorMethod[] | undefined): boolean {
  if (accepted === undefined) return false;
  const acceptedCodes = CODE_METHODS.filter((m) => accepted.includes(m));
  const kinds = codeKinds(code);
  return acceptedCodes.length === 0 || (kinds.length > 0 && !kinds.some((k) => acceptedCodes.includes(k)));
}

function list(methods: readonly string[]): string {
  return methods.length === 1 ? methods[0]! : `${methods.slice(0, -1).join(', ')} or ${methods.at(-1)!}`;
}

const seconds = (ms: number): number => Math.floor(ms / 1000);

/** `offered`: what was sent, e.g. "a code in X-MFA-Token" or "a session opened by totp". */
export function methodNotAccepted(accepted: readonly FactorMethod[], offered: string, maxAgeMs: number) {
  return problem('mfa_method_not_accepted', `this route accepts a second factor by ${list(accepted)} only; ${offered} does not satisfy it`, {
    maxAge: seconds(maxAgeMs),
    methods: accepted,
  });
}

/** How to register each kind, for hints. */
function howToRegister(policy: GatewayPolicy, accepted: readonly FactorMethod[] | undefined): string {
  const prefix = policy.mfa.pathPrefix;
  const ways: string[] = [];
  if (policy.mfa.webauthn !== undefined && accepts(accepted, 'webauthn')) ways.push(`a security key or passkey with POST ${prefix}webauthn/register/options`);
  if (accepts(accepted, 'totp')) ways.push(`an authenticator app with POST ${prefix}totp/enroll`);
  if (ways.length === 0 && accepts(accepted, 'hotp')) ways.push(`a hardware token with POST ${prefix}totp/enroll {"type":"hotp"}`);
  return ways.join(', or ');
}

/** The subject has factors, none of a kind the route accepts. */
export function notEnrolledFor(policy: GatewayPolicy, accepted: readonly FactorMethod[]) {
  const how = howToRegister(policy, accepted);
  return problem('mfa_not_enrolled', `no second factor of a kind this route accepts (${list(accepted)}) is enrolled for this user`, {
    methods: accepted,
    ...(how !== '' ? { hint: `register ${how}` } : {}),
  });
}

/** `which`: the factor offered (an assertion or a code of it), else every accepted one has expired. */
export function factorExpired(policy: GatewayPolicy, accepted: readonly FactorMethod[] | undefined, which: ExpiredFactor | undefined) {
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  const detail =
    which !== undefined
      ? `the second factor ${JSON.stringify(which.label)} reached the end of its lifetime on ${day(which.expiredAt)}; register it again`
      : 'every second factor of this user that this route accepts has reached the end of its lifetime; register a new one';
  const how = howToRegister(policy, accepted);
  return problem('factor_expired', detail, {
    hint: `register ${how === '' ? 'a new factor' : how}; the step-up that asks for takes a recovery code, then remove the old factor with DELETE ${policy.mfa.pathPrefix}factors/{id}`,
    ...(accepted !== undefined ? { methods: accepted } : {}),
  });
}
