import { randomUUID, timingSafeEqual } from 'node:crypto';
import type {
  AuthenticationResponseJSON,
  AuthenticatorTransportFuture,
  PublicKeyCredentialCreationOptionsJSON,
  PublicKeyCredentialRequestOptionsJSON,
  RegistrationResponseJSON,
} from '@simplewebauthn/server';
import type { UserVerification, WebAuthnConfig } from '../config/types.js';
import type { IssuedSession } from '../decision/types.js';
import { problem } from '../errors/problems.js';
import type { WebAuthnCredentialRecord, WebAuthnKind } from '../store/types.js';
import { StoreError } from '../store/errors.js';
import {
  auditContext,
  countVerification,
  failedAttempt,
  firstFactorConfirmed,
  issueSession,
  lockRefusal,
  notEnrolled,
  refuse,
  reportUnreadable,
  seconds,
  sessionTtlMs,
  type Caller,
  type MfaDeps,
  type Outcome,
  type Refusal,
} from './attempts.js';
import type { WebAuthnFailure } from './audit.js';
import { MAX_FACTORS, validLabel } from './enrollment.js';
import { MANAGEMENT_STEP_UP_MS } from './factors.js';
import type { SecondFactorService } from './second-factor.js';
import { credentialExpiresAt, factorExpired, notEnrolledFor, standingOf } from './standing.js';


// Loaded on the first ceremony: the library and its CBOR/COSE dependencies are about 17 MB of RSS a
// gateway without security keys would carry for nothing.
let library: Promise<typeof import('@simplewebauthn/server')> | undefined;
const simpleWebAuthn = (): Promise<typeof import('@simplewebauthn/server')> => (library ??= import('@simplewebauthn/server'));

/**
 * WebAuthn (security keys and passkeys): the two ceremonies, each an options call and a verify call
 * (`@simplewebauthn/server` does the CBOR, COSE and signature work). What this module adds:
 *
 * - Challenges are single use and expire: each options call puts one in the TTL store (one
 *   outstanding per subject and ceremony; a new one replaces it) and each verify call takes it,
 *   whatever the outcome, so an assertion can be replayed never and a stale one never verifies.
 * - User verification is decided once, at the options call, stored with the challenge and required
 *   at verification exactly as asked, so a policy reload between the two cannot loosen it.
 * - RP id and allowed origins come from the policy (`mfa.webauthn`); the origin is checked against
 *   the list, never against the request's Host.
 * - Credentials are looked up among the caller's own (the bearer's subject), so another user's
 *   credential never verifies; their public keys are sealed and bound to (subject, id).
 * - The signature counter only moves forward (0 → 0 allowed: synced passkeys keep none), judged
 *   after the signature verified and set by one compare-and-set in the store.
 * - A good assertion is a second factor like a good code: the lock is checked first, a failure
 *   counts on the same ladder and per-address throttle, success clears the lock and opens a session.
 *
 * Nothing here logs a challenge, a credential id, a public key or a library message (they quote
 * challenges); failures are audited by kind only.
 */

export interface WebAuthnRegistrationRequest {
  /** A name for the new credential (default "Security key" / "Passkey" once its kind is known). */
  readonly label?: string | undefined;
}

export interface WebAuthnRegistered {
  readonly factorId: string;
  readonly kind: WebAuthnKind;
  readonly label: string;
  /** Unix seconds: when it stops satisfying routes. */
  readonly expiresAt: number;
  /** Present when this is the subject's first factor: show once. */
  readonly recoveryCodes?: string[];
}

export interface WebAuthnService {
  registrationOptions(caller: Caller): Promise<Outcome<{ options: PublicKeyCredentialCreationOptionsJSON }>>;
  verifyRegistration(caller: Caller, response: unknown, request: WebAuthnRegistrationRequest): Promise<Outcome<{ registered: WebAuthnRegistered }>>;
  authenticationOptions(caller: Caller): Promise<Outcome<{ options: PublicKeyCredentialRequestOptionsJSON }>>;
  /** A good assertion opens a session, as `POST verify` does with a code. */
  verifyAuthentication(caller: Caller, response: unknown): Promise<Outcome<{ session: IssuedSession; factorId: string }>>;
}

const REGISTER = 'webauthn-register';
const AUTHENTICATE = 'webauthn-authenticate';
/** EdDSA, ES256, RS256: what simplewebauthn verifies, most compact first. */
const ALGORITHMS = [-8, -7, -257];
const TRANSPORTS: ReadonlySet<string> = new Set<AuthenticatorTransportFuture>(['ble', 'cable', 'hybrid', 'internal', 'nfc', 'smart-card', 'usb']);

/** What the TTL store keeps between an options call and its verify call. */
interface ChallengeRecord {
  /** The challenge (base64url), as sent to the browser. */
  readonly c: string;
  /** User verification as asked in the options. */
  readonly uv: UserVerification;
  /** Registration only: the subject passed a step-up (or had no factor) when asking. */
  readonly fresh?: boolean;
}

function parseRecord(text: string | undefined): ChallengeRecord | undefined {
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as Partial<ChallengeRecord>;
    if (typeof parsed.c !== 'string' || (parsed.uv !== 'required' && parsed.uv !== 'preferred' && parsed.uv !== 'discouraged')) return undefined;
    return { c: parsed.c, uv: parsed.uv, ...(parsed.fresh === true ? { fresh: true } : {}) };
  } catch {
    return undefined;
  }
}

/** The challenge in a response is compared in constant time with the one kept (a function, so the library never compares it itself). */
function sameChallenge(kept: string): (challenge: string) => boolean {
  const expected = Buffer.from(kept, 'utf8');
  return (challenge) => {
    const got = Buffer.from(challenge, 'utf8');
    return got.length === expected.length && timingSafeEqual(got, expected);
  };
}

/** A response of the right outline (the library checks the rest); anything else never reaches it. */
function isCredentialJson(value: unknown, kind: 'attestation' | 'assertion'): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as Record<string, unknown>;
  const inner = v.response as Record<string, unknown> | undefined;
  const field = kind === 'attestation' ? 'attestationObject' : 'signature';
  return (
    typeof v.id === 'string' &&
    /^[A-Za-z0-9_-]{1,1366}$/.test(v.id) &&
    v.rawId === v.id &&
    v.type === 'public-key' &&
    typeof inner === 'object' &&
    inner !== null &&
    typeof inner.clientDataJSON === 'string' &&
    typeof inner[field] === 'string'
  );
}

/**
 * Security key or platform/passkey, from what registration told. Roaming only when the browser
 * said cross-platform, the credential is not synced and no transport says built-in or phone; when
 * unsure, `platform`, whose lifetime is the shorter by default.
 */
function kindOf(attachment: unknown, synced: boolean, transports: readonly string[]): WebAuthnKind {
  const builtIn = transports.includes('internal') || transports.includes('hybrid');
  return attachment === 'cross-platform' && !synced && !builtIn ? 'security_key' : 'platform';
}

/** Which check an assertion failed, for the audit log; never the library's message (it quotes challenges). */
function failureKind(error: unknown): WebAuthnFailure {
  const message = error instanceof Error ? error.message : '';
  return /challenge/i.test(message) ? 'webauthn_challenge' : 'webauthn_unverified';
}

const REGISTRATION_UNVERIFIED = 'the registration response did not verify (origin, RP id, challenge, user verification or attestation); ask for new options and try again';

export function createWebAuthnService(deps: MfaDeps, secondFactor: Pick<SecondFactorService, 'requireFresh'>): WebAuthnService {
  const { durable, ttl, keyring, audit } = deps;

  function configOf(caller: Caller): WebAuthnConfig | Refusal {
    const config = caller.policy.mfa.webauthn;
    return config ?? refuse(problem('not_found', 'WebAuthn is not enabled on this gateway (mfa.webauthn in the policy)'));
  }

  /** An opaque, stable user handle: the subject never goes to an authenticator. */
  function userHandle(subject: string): Uint8Array {
    const mac = keyring.hmac('webauthn-user', subject);
    return Buffer.from(mac.slice(mac.indexOf('$') + 1), 'hex').subarray(0, 32);
  }

  async function stepUp(caller: Caller): Promise<Refusal | undefined> {
    const fresh = await secondFactor.requireFresh(caller, MANAGEMENT_STEP_UP_MS);
    return fresh.ok ? undefined : fresh;
  }

  return {
    async registrationOptions(caller) {
      const config = configOf(caller);
      if ('problem' in config) return config;
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      const standing = await standingOf(deps.factorCache, ctx.subject, now, policy);
      // Adding a factor once one exists is a change to the account: the same step-up as enrolling.
      if (standing.enrolled) {
        const stale = await stepUp(caller);
        if (stale !== undefined) return stale;
      }
      const [factors, credentials] = await Promise.all([durable.listFactors(ctx.subject, now), durable.listWebAuthnCredentials(ctx.subject)]);
      if (factors.length + credentials.length >= MAX_FACTORS) return refuse(problem('invalid_request', `a user may have at most ${MAX_FACTORS} factors; remove one first`));
      const options = await (await simpleWebAuthn()).generateRegistrationOptions({
        rpName: config.rpName,
        rpID: config.rpId,
        userName: ctx.subject,
        userID: userHandle(ctx.subject) as Uint8Array<ArrayBuffer>,
        userDisplayName: ctx.subject,
        timeout: config.timeoutMs,
        attestationType: 'none',
        // The same authenticator twice would be one factor counted as two.
        excludeCredentials: credentials.map((c) => ({ id: c.credentialId, transports: c.transports.filter((t) => TRANSPORTS.has(t)) as AuthenticatorTransportFuture[] })),
        authenticatorSelection: { residentKey: 'preferred', userVerification: config.userVerification },
        supportedAlgorithmIDs: ALGORITHMS,
      });
      const record: ChallengeRecord = { c: options.challenge, uv: config.userVerification, ...(standing.enrolled ? { fresh: true } : {}) };
      await ttl.putChallenge(ctx.subject, REGISTER, JSON.stringify(record), now, config.timeoutMs);
      return { ok: true, options };
    },

    async verifyRegistration(caller, response, request) {
      const config = configOf(caller);
      if ('problem' in config) return config;
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      if (!isCredentialJson(response, 'attestation')) return refuse(problem('invalid_request', '"response" must be the JSON of a registration credential (startRegistration() gives it)'));
      if (request.label !== undefined && !validLabel(request.label)) return refuse(problem('invalid_request', '"label" must be 1-64 printable characters'));
      // Taken before anything else: whatever happens next, this challenge is spent.
      const record = parseRecord(await ttl.takeChallenge(ctx.subject, REGISTER, now));
      if (record === undefined) return refuse(problem('invalid_request', 'no registration is in progress (its options expired or were already used); ask for new options'));
      const standing = await standingOf(deps.factorCache, ctx.subject, now, policy);
      // Options asked for before the first factor was confirmed elsewhere: now it takes a step-up
      // (else a bearer thief could start a registration early and finish it after the owner enrolled).
      if (standing.enrolled && record.fresh !== true) {
        const stale = await stepUp(caller);
        if (stale !== undefined) return stale;
      }
      let info;
      const library = await simpleWebAuthn();
      try {
        const verified = await library.verifyRegistrationResponse({
          response: response as RegistrationResponseJSON,
          expectedChallenge: sameChallenge(record.c),
          expectedOrigin: [...config.origins],
          expectedRPID: config.rpId,
          requireUserVerification: record.uv === 'required',
          supportedAlgorithmIDs: ALGORITHMS,
        });
        info = verified.verified ? verified.registrationInfo : undefined;
      } catch {
        info = undefined;
      }
      if (info === undefined) {
        audit.record(ctx, { event: 'failed', reason: 'webauthn_unverified' });
        return refuse(problem('invalid_request', REGISTRATION_UNVERIFIED));
      }
      const transports = (info.credential.transports ?? []).filter((t) => TRANSPORTS.has(t)).slice(0, 8);
      const synced = info.credentialDeviceType === 'multiDevice';
      const kind = kindOf((response as RegistrationResponseJSON).authenticatorAttachment, synced, transports);
      const id = randomUUID();
      const credential: WebAuthnCredentialRecord = {
        id,
        subject: ctx.subject,
        credentialId: info.credential.id,
        publicKey: keyring.seal(Buffer.from(info.credential.publicKey), { subject: ctx.subject, factorId: id }),
        signCount: info.credential.counter,
        transports,
        kind,
        synced,
        label: request.label ?? (kind === 'security_key' ? 'Security key' : 'Passkey'),
        createdAt: now,
      };
      const [factors, credentials] = await Promise.all([durable.listFactors(ctx.subject, now), durable.listWebAuthnCredentials(ctx.subject)]);
      if (factors.length + credentials.length >= MAX_FACTORS) return refuse(problem('invalid_request', `a user may have at most ${MAX_FACTORS} factors; remove one first`));
      try {
        await durable.createWebAuthnCredential(credential);
      } catch (error) {
        if (StoreError.is(error) && error.code === 'ERR_STORE_CONFLICT') return refuse(problem('invalid_request', 'this security key or passkey is already registered'));
        throw error;
      }
      deps.announce({ kind: 'factors', subject: ctx.subject });
      audit.record(ctx, { event: 'webauthn_registered', factorId: id, kind, synced });
      const expiresAt = seconds(credentialExpiresAt(credential, policy)!);
      const registered: WebAuthnRegistered = { factorId: id, kind, label: credential.label, expiresAt };
      if (standing.enrolled) return { ok: true, registered };
      return { ok: true, registered: { ...registered, recoveryCodes: await firstFactorConfirmed(deps, ctx, id, policy, now) } };
    },

    async authenticationOptions(caller) {
      const config = configOf(caller);
      if ('problem' in config) return config;
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      const standing = await standingOf(deps.factorCache, ctx.subject, now, policy, ['webauthn']);
      if (standing.credentials.length === 0) {
        if (!standing.enrolled) return notEnrolled(policy);
        if (standing.expired.length > 0) return refuse(factorExpired(policy, ['webauthn'], undefined));
        return refuse(notEnrolledFor(policy, ['webauthn']));
      }
      const options = await (await simpleWebAuthn()).generateAuthenticationOptions({
        rpID: config.rpId,
        allowCredentials: standing.credentials.map((c) => ({ id: c.credentialId, transports: c.transports.filter((t) => TRANSPORTS.has(t)) as AuthenticatorTransportFuture[] })),
        userVerification: config.userVerification,
        timeout: config.timeoutMs,
      });
      const record: ChallengeRecord = { c: options.challenge, uv: config.userVerification };
      await ttl.putChallenge(ctx.subject, AUTHENTICATE, JSON.stringify(record), now, config.timeoutMs);
      return { ok: true, options };
    },

    async verifyAuthentication(caller, response) {
      const config = configOf(caller);
      if ('problem' in config) return config;
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      if (!isCredentialJson(response, 'assertion')) return refuse(problem('invalid_request', '"response" must be the JSON of an authentication credential (startAuthentication() gives it)'));
      const locked = await lockRefusal(deps, ctx, now, policy);
      if (locked !== undefined) return locked;
      const maxAgeMs = sessionTtlMs(policy);
      const fail = (reason: WebAuthnFailure, factorId?: string) => failedAttempt(deps, caller, { ok: false, reason, factorId }, maxAgeMs, 'webauthn');

      const record = parseRecord(await ttl.takeChallenge(ctx.subject, AUTHENTICATE, now));
      if (record === undefined) return fail('webauthn_challenge');
      const assertion = response as AuthenticationResponseJSON;
      // Read from the store, not the cache: the counter below must be the current one.
      const credential = (await durable.listWebAuthnCredentials(ctx.subject)).find((c) => c.credentialId === assertion.id);
      if (credential === undefined) return fail('webauthn_unknown_credential');
      const expiresAt = credentialExpiresAt(credential, policy)!;
      if (now >= expiresAt) {
        audit.record(ctx, { event: 'factor_expired', factorId: credential.id });
        return refuse(factorExpired(policy, undefined, { id: credential.id, label: credential.label, expiredAt: expiresAt }));
      }
      let publicKey: Buffer;
      try {
        publicKey = keyring.open(credential.publicKey, { subject: credential.subject, factorId: credential.id });
      } catch {
        reportUnreadable(deps, { id: credential.id, subject: credential.subject, secret: credential.publicKey }, ctx);
        return fail('webauthn_unverified', credential.id);
      }
      let next: number | undefined;
      const library = await simpleWebAuthn();
      try {
        const verified = await library.verifyAuthenticationResponse({
          response: assertion,
          expectedChallenge: sameChallenge(record.c),
          expectedOrigin: [...config.origins],
          expectedRPID: config.rpId,
          // Counter 0 here: the library would judge it before the signature; it is judged below, after.
          credential: { id: credential.credentialId, publicKey: new Uint8Array(publicKey), counter: 0 },
          requireUserVerification: record.uv === 'required',
        });
        next = verified.verified ? verified.authenticationInfo.newCounter : undefined;
      } catch (error) {
        return fail(failureKind(error), credential.id);
      } finally {
        publicKey.fill(0);
      }
      if (next === undefined) return fail('webauthn_unverified', credential.id);
      // Forward-only, in one statement: a counter that did not grow means a cloned authenticator
      // (or a race with this one's own later assertion, which the later count wins).
      if (!(next > credential.signCount || (next === 0 && credential.signCount === 0)) || !(await durable.advanceWebAuthnCounter(credential.id, next, now))) {
        return fail('webauthn_counter', credential.id);
      }
      countVerification(deps, 'webauthn', 'success');
      audit.record(ctx, { event: 'verified', method: 'webauthn', factorId: credential.id });
      const mfaTime = seconds(now);
      const [, session] = await Promise.all([ttl.clearLock(ctx.subject), issueSession(deps, caller, 'webauthn', mfaTime, { notAfter: expiresAt })]);
      return { ok: true, session, factorId: credential.id };
    },
  };
}
