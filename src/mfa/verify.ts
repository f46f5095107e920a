import { randomBytes } from 'node:crypto';
import type { Keyring } from '../crypto/keyring.js';
import type { GatewayPolicy } from '../config/types.js';
import type { ContactChannel, ContactRecord, DurableStore, FactorRecord, TtlStore } from '../store/types.js';
import type { FailureReason } from './audit.js';
import { isOtpShaped } from './code.js';
import { verifyHotp } from './hotp.js';
import { isSentCodeShaped, sentCodeCandidates } from './oob/codes.js';
import { normalizeRecoveryCode, recoveryHashCandidates } from './recovery.js';
import { usedStepKeepMs } from './replay.js';
import { findTotpDrift, verifyTotp } from './totp.js';

/**
 * One attempt of a code against a subject's factors and recovery codes. Wrong, replayed and
 * malformed codes do the same work in the same order: every factor's candidates are computed and
 * compared in constant time, every TOTP factor gets its one replay-store round trip, every key's
 * recovery hash is computed and offered to the store, and every TOTP factor's wider drift scan is
 * run. Only the outcome differs, and callers answer all of them identically; the reason is for the
 * audit log. A good code skips the drift scan: its answer already says it was good. Codes sent by
 * e-mail or SMS are tried after the OTP factors, one store round trip per contact, with the same
 * filler work for input that cannot be one.
 */

export type AttemptResult =
  | { readonly ok: true; readonly method: 'totp' | 'hotp'; readonly factorId: string }
  | { readonly ok: true; readonly method: 'recovery'; readonly remaining: number }
  /** A code sent to a contact; `backup`: to a backup contact (a recovery, for the audit log). */
  | { readonly ok: true; readonly method: ContactChannel; readonly factorId: string; readonly backup: boolean }
  | { readonly ok: false; readonly reason: FailureReason; readonly factorId?: string | undefined; readonly driftSeconds?: number | undefined };

export interface AttemptInput {
  readonly subject: string;
  readonly code: string;
  /** Factors to try (active ones; or the one pending factor being confirmed). */
  readonly factors: readonly FactorRecord[];
  /** Contacts whose sent code to try (active usable ones; or the one pending contact being confirmed). */
  readonly contacts?: readonly ContactRecord[] | undefined;
  readonly allowRecovery: boolean;
  readonly now: number;
  readonly policy: GatewayPolicy;
}

export interface CodeVerifier {
  attempt(input: AttemptInput): Promise<AttemptResult>;
  /**
   * The first of `factors` whose current code (within the window) `code` is, read-only: no replay
   * step is used and no counter moves. For factors that may no longer be used (past their lifetime),
   * so a refusal can say which one to register again.
   */
  recognise(code: string, factors: readonly FactorRecord[], now: number, policy: GatewayPolicy): FactorRecord | undefined;
}

export interface CodeVerifierDeps {
  readonly durable: Pick<DurableStore, 'advanceHotpCounter' | 'consumeRecoveryCode'>;
  readonly ttl: Pick<TtlStore, 'useOtpStep' | 'useSentCode'>;
  readonly keyring: Keyring;
  /** Called for a factor whose secret cannot be opened (tampered, swapped, unknown key): it fails closed. */
  readonly onUnreadable: (factor: FactorRecord) => void;
  /** After an HOTP compare-and-set: `moved` when this request moved the counter, else another had. */
  readonly onCounterRace?: (factor: FactorRecord, moved: boolean) => void;
}

interface FactorCheck {
  readonly factor: FactorRecord;
  readonly shaped: boolean;
  /** TOTP step or HOTP counter that matched. */
  readonly matched?: number | undefined;
  /** The opened secret (or the filler), zeroed when the attempt ends. */
  readonly secret: Buffer;
}

export function createCodeVerifier(deps: CodeVerifierDeps): CodeVerifier {
  const { durable, ttl, keyring, onUnreadable, onCounterRace } = deps;
  // Stands in for a secret that cannot be opened, so that factor costs the same and never matches.
  const filler = randomBytes(20);

  function openSecret(factor: FactorRecord): Buffer | undefined {
    try {
      return keyring.open(factor.secret, { subject: factor.subject, factorId: factor.id });
    } catch {
      onUnreadable(factor);
      return undefined;
    }
  }

  function check(factor: FactorRecord, code: string, now: number, policy: GatewayPolicy): FactorCheck {
    const opened = openSecret(factor);
    const shaped = isOtpShaped(code, factor.digits);
    const params = { secret: opened ?? filler, code, algorithm: factor.algorithm, digits: factor.digits };
    const matched =
      factor.type === 'totp'
        ? verifyTotp({ ...params, periodSeconds: factor.periodSeconds, nowMs: now, window: policy.mfa.totp.window }).step
        : verifyHotp({ ...params, counter: factor.counter, lookAhead: policy.mfa.hotp.lookAhead });
    return { factor, shaped, secret: opened ?? filler, ...(opened !== undefined ? { matched } : {}) };
  }

  /** The first TOTP factor the code would have matched with its device clock off, and by how much. */
  function driftOf(checks: readonly FactorCheck[], code: string, now: number, policy: GatewayPolicy): { factor: FactorRecord; steps: number } | undefined {
    let found: { factor: FactorRecord; steps: number } | undefined;
    for (const c of checks) {
      if (c.factor.type !== 'totp') continue;
      const steps = findTotpDrift({ secret: c.secret, code, algorithm: c.factor.algorithm, digits: c.factor.digits, periodSeconds: c.factor.periodSeconds, nowMs: now, window: policy.mfa.totp.window });
      if (found === undefined && steps !== undefined && c.secret !== filler) found = { factor: c.factor, steps };
    }
    return found;
  }

  async function judge(checks: readonly FactorCheck[], contacts: readonly ContactRecord[], subject: string, code: string, allowRecovery: boolean, now: number, policy: GatewayPolicy): Promise<AttemptResult> {
    let success: AttemptResult | undefined;
    let replayed: FactorRecord | undefined;
    for (const c of checks) {
      if (c.factor.type === 'totp') {
        const keepMs = usedStepKeepMs(c.factor.periodSeconds, policy.mfa.totp.window);
        const accepted = await ttl.useOtpStep(c.factor.id, c.matched, now, keepMs);
        if (c.matched === undefined) continue;
        if (accepted) success ??= { ok: true, method: 'totp', factorId: c.factor.id };
        else replayed ??= c.factor;
      } else if (c.matched !== undefined) {
        // A compare-and-set: of N requests racing with one code, one moves the counter.
        const moved = await durable.advanceHotpCounter(c.factor.id, c.factor.counter, c.matched + 1);
        onCounterRace?.(c.factor, moved);
        if (moved) success ??= { ok: true, method: 'hotp', factorId: c.factor.id };
        else replayed ??= c.factor;
      }
    }
    if (success !== undefined) return success;

    for (const contact of contacts) {
      const used = await ttl.useSentCode(subject, contact.id, sentCodeCandidates(keyring, subject, contact.id, code), now, policy.mfa.codes.maxAttempts);
      if (used === 'used') success ??= { ok: true, method: contact.channel, factorId: contact.id, backup: contact.purpose === 'backup' };
    }
    if (success !== undefined) return success;

    // Hashed only once no factor took the code: every failure still does it, and a good OTP code is not slowed by it.
    const recoveryCode = normalizeRecoveryCode(code);
    const hashes = allowRecovery ? recoveryHashCandidates(keyring, subject, recoveryCode) : [];
    for (const hash of hashes) {
      const { consumed, remaining } = await durable.consumeRecoveryCode(subject, hash, now);
      if (consumed && recoveryCode !== undefined) success ??= { ok: true, method: 'recovery', remaining };
    }
    if (success !== undefined) return success;

    // Every failure runs the drift scan, so a replay, a wrong and a malformed code cost the same.
    const drifted = driftOf(checks, code, now, policy);
    if (replayed !== undefined) return { ok: false, reason: 'replay', factorId: replayed.id };
    if (drifted !== undefined) return { ok: false, reason: 'drift', factorId: drifted.factor.id, driftSeconds: drifted.steps * drifted.factor.periodSeconds };
    const shaped = checks.some((c) => c.shaped) || (contacts.length > 0 && isSentCodeShaped(code)) || (allowRecovery && recoveryCode !== undefined);
    return { ok: false, reason: shaped ? 'wrong' : 'malformed' };
  }

  return {
    recognise(code, factors, now, policy) {
      const checks = factors.map((f) => check(f, code, now, policy));
      for (const c of checks) if (c.secret !== filler) c.secret.fill(0);
      return checks.find((c) => c.matched !== undefined)?.factor;
    },
    async attempt({ subject, code, factors, contacts = [], allowRecovery, now, policy }) {
      const checks = factors.map((f) => check(f, code, now, policy));
      try {
        return await judge(checks, contacts, subject, code, allowRecovery, now, policy);
      } finally {
        for (const c of checks) if (c.secret !== filler) c.secret.fill(0);
      }
    },
  };
}
