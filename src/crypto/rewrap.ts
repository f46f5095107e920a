import type { DurableStore } from '../store/types.js';
import { KeyringError } from './errors.js';
import type { Keyring } from './keyring.js';

/** A row that keeps losing the compare-and-set (or keeps failing) is given up after this many tries. */
const MAX_TRIES_PER_FACTOR = 3;

/**
 * Re-seals every secret not sealed with the primary kid, in batches, while the gateway runs:
 * each row is swapped by compare-and-set, so a concurrent change (delete, another rewrap) wins
 * and is simply re-read. A secret that cannot be opened (key removed, tampered row) is counted
 * as failed and left as it is.
 */
export async function rewrapFactors(store: DurableStore, keyring: Keyring, batch = 100): Promise<{ rewrapped: number; failed: number }> {
  if (!Number.isSafeInteger(batch) || batch < 1) throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'batch must be a positive integer');
  const primary = keyring.primaryKid;
  const tries = new Map<string, number>();
  const failed = new Set<string>();
  let rewrapped = 0;
  for (;;) {
    // No cursor in the contract: ask for enough rows to see `batch` beyond those given up on.
    const rows = (await store.factorsNotSealedWith(primary, batch + failed.size)).filter((f) => !failed.has(f.id));
    if (rows.length === 0) break;
    for (const factor of rows) {
      const attempt = (tries.get(factor.id) ?? 0) + 1;
      tries.set(factor.id, attempt);
      const aad = { subject: factor.subject, factorId: factor.id };
      let plaintext: Buffer;
      try {
        plaintext = keyring.open(factor.secret, aad);
      } catch {
        failed.add(factor.id);
        continue;
      }
      const next = keyring.seal(plaintext, aad);
      plaintext.fill(0);
      if (await store.replaceSecret(factor.id, factor.secret, next)) {
        rewrapped++;
      } else if (attempt >= MAX_TRIES_PER_FACTOR) {
        failed.add(factor.id);
      }
    }
  }
  return { rewrapped, failed: failed.size };
}
