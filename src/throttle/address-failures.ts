import type { FailureCount, FailureRule, TtlStore } from '../store/types.js';
import { addressPartition } from './partition.js';

/**
 * Failures counted per client address across all users, on the TTL store (shared by replicas once
 * the store is). The MFA layer records every failed code here and refuses a blocked address before
 * it looks at the user at all, so one address cannot spray a few guesses at each of many users,
 * each within that user's own lockout, and a blocked answer says nothing about the user.
 */

export const MFA_ADDRESS_PREFIX = 'mfa-ip:';

export interface AddressThrottle {
  /** The TTL-store key the address's failures and block are kept under (read with `TtlStore.readLockAndBlock`). */
  keyOf(ip: string): string;
  recordFailure(ip: string, now: number, rule: FailureRule): Promise<FailureCount>;
}

export function createAddressThrottle(ttl: Pick<TtlStore, 'recordFailure'>, prefix = MFA_ADDRESS_PREFIX): AddressThrottle {
  const keyOf = (ip: string): string => prefix + addressPartition(ip);
  return {
    keyOf,
    recordFailure: (ip, now, rule) => ttl.recordFailure(keyOf(ip), now, rule),
  };
}
