import type { Keyring } from '../crypto/keyring.js';
import { createDelivery, type Delivery } from '../delivery/index.js';
import { createLogger, type Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { DurableStore, Invalidation, InvalidationBus, TtlStore } from '../store/types.js';
import { createAddressThrottle } from '../throttle/address-failures.js';
import { reportUnreadable, type MfaDeps } from './attempts.js';
import { createAnnouncer } from './announce.js';
import { createAuditLog, type AuditSink } from './audit.js';
import { createContactService, type ContactService } from './contacts.js';
import { MfaError } from './errors.js';
import { createFactorCache } from './factor-cache.js';
import { createFactorService, type FactorService } from './factors.js';
import { createSecondFactorService, type SecondFactorService } from './second-factor.js';
import { createSessionStore } from './session.js';
import { createCodeVerifier } from './verify.js';
import { createWebAuthnService, type WebAuthnService } from './webauthn.js';

export { INVALID_CODE_DETAIL, storeUnavailable, type Caller, type Outcome, type Refusal } from './attempts.js';
export { HOTP_RESYNC_WINDOW, MANAGEMENT_STEP_UP_MS, type Enrollment } from './factors.js';
export type { ContactRequest, ContactSummary, SentCode } from './contacts.js';
export type { SecondFactorResult } from '../decision/engine.js';

/**
 * The second factor as one service: request-time checking (second-factor.ts) and factor
 * management (factors.ts) over the same stores. All state lives in the injected stores (atomic
 * there); the policy and the time come with each call, from the request that pinned them.
 * Refusals are Problem values.
 */

export interface MfaServiceOptions {
  readonly durable: DurableStore;
  readonly ttl: TtlStore;
  readonly keyring: Keyring;
  /** What other replicas sharing the store tell this one to forget (and this one tells them). */
  readonly bus?: InvalidationBus | undefined;
  /** Why a store backend is down right now (undefined: all answer); default: never down. */
  readonly storeDown?: (() => string | undefined) | undefined;
  /** How long factors and sessions read from the store are trusted in process (default 2 s; 0: off). */
  readonly cacheMs?: number | undefined;
  readonly metrics?: Metrics | undefined;
  readonly logger?: Logger | undefined;
  /** Audit events; default: a child of `logger` named `audit`. */
  readonly audit?: Logger | undefined;
  /** Where audit events go besides the log line (the durable trail and alert rules). */
  readonly auditSink?: AuditSink | undefined;
  /** Risk rules on the request path (src/events); default: none. */
  readonly risk?: MfaDeps['risk'];
  /** The SMTP / SMS transports (shared with e-mail alerts); default: built here. */
  readonly delivery?: Delivery | undefined;
}

export interface MfaService extends SecondFactorService, FactorService, ContactService, WebAuthnService {
  /** The service's logger, for front doors that must report an unexpected error. */
  readonly logger: Logger;
  /** Why a store backend is down right now, or undefined. */
  storeDown(): string | undefined;
}

function requireMethods(value: unknown, name: string, methods: readonly string[]): void {
  if (typeof value !== 'object' || value === null) throw new MfaError('ERR_MFA_INVALID_OPTION', `option "${name}" is required`);
  for (const m of methods) {
    if (typeof (value as Record<string, unknown>)[m] !== 'function') throw new MfaError('ERR_MFA_INVALID_OPTION', `option "${name}" must have a ${m}() method`);
  }
}

export function createMfaService(options: MfaServiceOptions): MfaService {
  if (typeof options !== 'object' || options === null) throw new MfaError('ERR_MFA_INVALID_OPTION', 'createMfaService needs an options object');
  requireMethods(options.durable, 'durable', [
    'listFactors',
    'getFactor',
    'createFactor',
    'activateFactor',
    'deleteFactor',
    'advanceHotpCounter',
    'replaceRecoveryCodes',
    'consumeRecoveryCode',
    'countRecoveryCodes',
    'renameFactor',
    'createWebAuthnCredential',
    'listWebAuthnCredentials',
    'advanceWebAuthnCounter',
    'renameWebAuthnCredential',
    'deleteWebAuthnCredential',
    'createContact',
    'getContact',
    'listContacts',
    'activateContact',
    'deleteContact',
  ]);
  requireMethods(options.ttl, 'ttl', [
    'useOtpStep',
    'forgetOtpSteps',
    'lockRemainingMs',
    'recordLockFailure',
    'clearLock',
    'activeLocks',
    'recordFailure',
    'blockedUntil',
    'readLockAndBlock',
    'swapDriftReading',
    'issueSession',
    'getSession',
    'deleteSession',
    'revokeAllSessions',
    'takeToken',
    'putSentCode',
    'useSentCode',
    'putChallenge',
    'takeChallenge',
  ]);
  requireMethods(options.keyring, 'keyring', ['seal', 'open', 'hmac', 'kids']);

  const { durable, ttl, keyring, metrics } = options;
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const audit = createAuditLog(options.audit ?? logger.child({ name: 'audit' }), options.auditSink);
  // Without a bus, a factor added or removed by another process would go unseen until expiry.
  const factorCache = createFactorCache(durable, { ttlMs: options.bus === undefined ? 0 : options.cacheMs });
  const forget = (change: Invalidation): void => {
    if (change.kind === 'factors') factorCache.forget(change.subject);
    else if (change.kind === 'sessions') sessions.dropSubject(change.subject);
    else sessions.drop(change.hash);
  };
  options.bus?.subscribe(forget);
  const announce = createAnnouncer({ bus: options.bus, logger, apply: forget });
  const sessions = createSessionStore(ttl, { announce, ...(options.cacheMs !== undefined ? { cacheMs: options.cacheMs } : {}) });
  const deps: MfaDeps = {
    durable,
    ttl,
    keyring,
    metrics,
    logger,
    audit,
    addresses: createAddressThrottle(ttl),
    sessions,
    factorCache,
    announce,
    storeDown: options.storeDown ?? (() => undefined),
    verifier: createCodeVerifier({
      durable,
      ttl,
      keyring,
      onUnreadable: (factor) => reportUnreadable({ logger, audit }, factor),
      // Moved: every replica re-reads it. Not moved: this replica's copy may be stale; re-read it here.
      onCounterRace: (factor, moved) => (moved ? announce({ kind: 'factors', subject: factor.subject }) : factorCache.forget(factor.subject)),
    }),
    delivery: options.delivery ?? createDelivery(),
    risk: options.risk,
  };
  const secondFactor = createSecondFactorService(deps);
  return { logger, storeDown: deps.storeDown, ...secondFactor, ...createFactorService(deps, secondFactor), ...createContactService(deps, secondFactor), ...createWebAuthnService(deps, secondFactor) };
}
