import type { Keyring } from '../crypto/keyring.js';
import { createLogger, type Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { DurableStore, TtlStore } from '../store/types.js';
import { createAddressThrottle } from '../throttle/address-failures.js';
import { reportUnreadable, type MfaDeps } from './attempts.js';
import { createAuditLog } from './audit.js';
import { MfaError } from './errors.js';
import { createFactorService, type FactorService } from './factors.js';
import { createLockout } from './lockout.js';
import { createSecondFactorService, type SecondFactorService } from './second-factor.js';
import { createSessionStore } from './session.js';
import { createCodeVerifier } from './verify.js';

export { INVALID_CODE_DETAIL, type Caller, type Outcome, type Refusal } from './attempts.js';
export { HOTP_RESYNC_WINDOW, MANAGEMENT_STEP_UP_MS, type Enrollment } from './factors.js';
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
  readonly metrics?: Metrics | undefined;
  readonly logger?: Logger | undefined;
  /** Audit events; default: a child of `logger` named `audit`. */
  readonly audit?: Logger | undefined;
}

export interface MfaService extends SecondFactorService, FactorService {
  /** The service's logger, for front doors that must report an unexpected error. */
  readonly logger: Logger;
}

function requireMethods(value: unknown, name: string, methods: readonly string[]): void {
  if (typeof value !== 'object' || value === null) throw new MfaError('ERR_MFA_INVALID_OPTION', `option "${name}" is required`);
  for (const m of methods) {
    if (typeof (value as Record<string, unknown>)[m] !== 'function') throw new MfaError('ERR_MFA_INVALID_OPTION', `option "${name}" must have a ${m}() method`);
  }
}

export function createMfaService(options: MfaServiceOptions): MfaService {
  if (typeof options !== 'object' || options === null) throw new MfaError('ERR_MFA_INVALID_OPTION', 'createMfaService needs an options object');
  requireMethods(options.durable, 'durable', ['listFactors', 'getFactor', 'createFactor', 'activateFactor', 'deleteFactor', 'advanceHotpCounter', 'replaceRecoveryCodes', 'consumeRecoveryCode', 'countRecoveryCodes']);
  requireMethods(options.ttl, 'ttl', ['useOtpStep', 'forgetOtpSteps', 'lockRemainingMs', 'recordLockFailure', 'clearLock', 'activeLocks', 'recordFailure', 'blockedUntil', 'swapDriftReading', 'issueSession', 'getSession', 'deleteSession', 'revokeAllSessions']);
  requireMethods(options.keyring, 'keyring', ['seal', 'open', 'hmac', 'kids']);

  const { durable, ttl, keyring, metrics } = options;
  const logger = options.logger ?? createLogger({ level: 'silent' });
  const audit = createAuditLog(options.audit ?? logger.child({ name: 'audit' }));
  const deps: MfaDeps = {
    durable,
    ttl,
    keyring,
    metrics,
    logger,
    audit,
    lockout: createLockout({ ttl }),
    addresses: createAddressThrottle(ttl),
    sessions: createSessionStore(ttl),
    verifier: createCodeVerifier({ durable, ttl, keyring, onUnreadable: (factor) => reportUnreadable({ logger, audit }, factor) }),
  };
  const secondFactor = createSecondFactorService(deps);
  return { logger, ...secondFactor, ...createFactorService(deps, secondFactor) };
}
