import type { DurableStore, SealedSecret } from '../store/types.js';
import { KeyringError } from './errors.js';
import type { Keyring } from './keyring.js';

/** A row that keeps losing the compare-and-set (or keeps failing) is given up after this many tries. */
const MAX_TRIES_PER_FACTOR = 3;

/** One table of sealed values: how to find rows sealed with an old key, and swap one by compare-and-set. */
interface SealedRows<R> {
  notSealedWith(kid: string, limit: number): Promise<R[]>;
  sealed(row: R): { readonly id: string; readonly subject: string; readonly secret: SealedSecret };
  replace(id: string, expected: SealedSecret, next: SealedSecret): Promise<boolean>;
}

async function rewrapRows<R>(rows: SealedRows<R>, keyring: Keyring, batch: number): Promise<{ rewrapped: number; failed: number }> {
  const primary = keyring.primaryKid;
  const tries = new Map<string, number>();
  const failed = new Set<string>();
  let rewrapped = 0;
  for (;;) {
    // No cursor in the contract: ask for enough rows to see `batch` beyond those given up on.
    const page = (await rows.notSealedWith(primary, batch + failed.size)).map((row) => rows.sealed(row)).filter((row) => !failed.has(row.id));
    if (page.length === 0) break;
    for (const row of page) {
      const attempt = (tries.get(row.id) ?? 0) + 1;
      tries.set(row.id, attempt);
      const aad = { subject: row.subject, factorId: row.id };
      let plaintext: Buffer;
      try {
        plaintext = keyring.open(row.secret, aad);
      } catch {
        failed.add(row.id);
        continue;
      }
      const next = keyring.seal(plaintext, aad);
      plaintext.fill(0);
      if (await rows.replace(row.id, row.secret, next)) {
        rewrapped++;
      } else if (attempt >= MAX_TRIES_PER_FACTOR) {
        failed.add(row.id);
      }
    }
  }
  return { rewrapped, failed: failed.size };
}

/**
 * Re-seals every secret not sealed with the primary kid — factor secrets, contact destinations and
 * WebAuthn public keys — in batches, while the gateway runs: each row is swapped by compare-and-set, so a concurrent change
 * (delete, another rewrap) wins and is simply re-read. A value that cannot be opened (key removed,
 * tampered row) is counted as failed and left as it is.
 */
export async function rewrapFactors(store: DurableStore, keyring: Keyring, batch = 100): Promise<{ rewrapped: number; failed: number }> {
  if (!Number.isSafeInteger(batch) || batch < 1) throw new KeyringError('ERR_KEYRING_INVALID_OPTION', 'batch must be a positive integer');
  const factors = await rewrapRows(
    { notSealedWith: (kid, limit) => store.factorsNotSealedWith(kid, limit), sealed: (f) => f, replace: (id, expected, next) => store.replaceSecret(id, expected, next) },
    keyring,
    batch,
  );
  const credentials = await rewrapRows(
    {
      notSealedWith: (kid, limit) => store.webAuthnCredentialsNotSealedWith(kid, limit),
      sealed: (c) => ({ id: c.id, subject: c.subject, secret: c.publicKey }),
      replace: (id, expected, next) => store.replaceWebAuthnPublicKey(id, expected, next),
    },
    keyring,
    batch,
  );
  const contacts = await rewrapRows(
    {
      notSealedWith: (kid, limit) => store.contactsNotSealedWith(kid, limit),
      sealed: (c) => ({ id: c.id, subject: c.subject, secret: c.destination }),
      replace: (id, expected, next) => store.replaceContactDestination(id, expected, next),
    },
    keyring,
    batch,
  );
  return { rewrapped: factors.rewrapped + credentials.rewrapped + contacts.rewrapped, failed: factors.failed + credentials.failed + contacts.failed };
}
