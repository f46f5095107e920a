import type { GatewayPolicy } from '../config/types.js';
import type { FactorRecord, WebAuthnCredentialRecord, WebAuthnKind } from '../store/types.js';
import { summarizeFactor, type FactorSummary } from './enrollment.js';
import { credentialExpiresAt, factorExpiresAt } from './standing.js';

/**
 * What `GET /.mfa/factors` and `factors list` show: every factor and credential with its lifetime
 * under the policy in force, and how many recovery codes are left — with a suggestion to make a new
 * set once two or fewer remain (the source document: "generate a new set after use").
 */

/** When a factor stops satisfying routes, if it ever does. Unix seconds. */
export interface Lifetime {
  readonly expiresAt?: number;
  readonly expired?: boolean;
}

export interface CredentialSummary extends Lifetime {
  readonly id: string;
  readonly type: 'webauthn';
  readonly status: 'active';
  readonly label: string;
  readonly kind: WebAuthnKind;
  readonly synced: boolean;
  readonly transports: readonly string[];
  /** Unix seconds. */
  readonly createdAt: number;
  readonly lastUsedAt?: number;
}

export type ListedFactor = (FactorSummary & Lifetime) | CredentialSummary;

export interface FactorListing {
  readonly factors: readonly ListedFactor[];
  readonly recoveryCodesRemaining: number;
  /** Set when the user has a factor and two or fewer recovery codes are left. */
  readonly recoveryCodesHint?: string;
}

/** At or below this many unused recovery codes, answers suggest a new set. */
export const LOW_RECOVERY_CODES = 2;

const seconds = (ms: number): number => Math.floor(ms / 1000);

function lifetime(expiresAt: number | undefined, now: number): Lifetime {
  return expiresAt === undefined ? {} : { expiresAt: seconds(expiresAt), expired: now >= expiresAt };
}

/** The suggestion to regenerate, when `remaining` is low; undefined otherwise. */
export function recoveryCodesHint(policy: GatewayPolicy, remaining: number): string | undefined {
  if (remaining > LOW_RECOVERY_CODES) return undefined;
  const left = remaining === 0 ? 'no recovery codes are left' : `only ${remaining} recovery code${remaining === 1 ? ' is' : 's are'} left`;
  return `${left}; generate a new set with POST ${policy.mfa.pathPrefix}recovery-codes`;
}

export function listing(factors: readonly FactorRecord[], credentials: readonly WebAuthnCredentialRecord[], recoveryCodesRemaining: number, now: number, policy: GatewayPolicy): FactorListing {
  const listed: ListedFactor[] = [
    ...factors.map((f) => ({ ...summarizeFactor(f), ...(f.status === 'active' ? lifetime(factorExpiresAt(f, policy), now) : {}) })),
    ...credentials.map(
      (c): CredentialSummary => ({
        id: c.id,
        type: 'webauthn',
        status: 'active',
        label: c.label,
        kind: c.kind,
        synced: c.synced,
        transports: c.transports,
        createdAt: seconds(c.createdAt),
        ...(c.lastUsedAt !== undefined ? { lastUsedAt: seconds(c.lastUsedAt) } : {}),
        ...lifetime(credentialExpiresAt(c, policy), now),
      }),
    ),
  ];
  const enrolled = factors.some((f) => f.status === 'active') || credentials.length > 0;
  const hint = enrolled ? recoveryCodesHint(policy, recoveryCodesRemaining) : undefined;
  return { factors: listed, recoveryCodesRemaining, ...(hint !== undefined ? { recoveryCodesHint: hint } : {}) };
}
