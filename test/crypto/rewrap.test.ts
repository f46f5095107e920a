import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadKeyring, rotateKeyFile, type Keyring } from '../../src/crypto/keyring.js';
import { rewrapFactors } from '../../src/crypto/rewrap.js';
import { openSqliteStore, type SqliteStore } from '../../src/store/sqlite.js';
import type { FactorRecord } from '../../src/store/types.js';

const T0 = Date.UTC(2026, 10, 28);
const ROTATION = 90 * 86_400_000;
const COUNT = 230;

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mfa-rewrap-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function record(keyring: Keyring, id: string, subject: string, secret: Buffer): FactorRecord {
  return {
    id,
    subject,
    type: 'totp',
    status: 'active',
    label: 'phone',
    secret: keyring.seal(secret, { subject, factorId: id }),
    algorithm: 'SHA1',
    digits: 6,
    periodSeconds: 30,
    counter: 0,
    createdAt: T0,
    confirmedAt: T0,
  };
}

async function seed(name: string) {
  const keyFile = join(dir, `${name}.keys`);
  writeFileSync(keyFile, `k1 ${randomBytes(32).toString('base64')} 2026-08-01 primary\n`, { mode: 0o600 });
  const oldRing = loadKeyring({ file: keyFile, rotationMs: ROTATION });
  const store = openSqliteStore({ path: join(dir, `${name}.db`), clock: () => T0 });
  const secrets = new Map<string, Buffer>();
  for (let i = 0; i < COUNT; i++) {
    const id = `f-${String(i).padStart(4, '0')}`;
    const secret = randomBytes(20);
    secrets.set(id, secret);
    await store.durable.createFactor(record(oldRing, id, `user-${i % 7}`, secret));
  }
  return { keyFile, oldRing, store, secrets };
}

async function assertAllOpen(store: SqliteStore, keyring: Keyring, secrets: Map<string, Buffer>, kid: string, skip: ReadonlySet<string> = new Set()) {
  for (const [id, secret] of secrets) {
    if (skip.has(id)) continue;
    const f = await store.durable.getFactor(id);
    assert.ok(f !== undefined);
    assert.equal(f.secret.kid, kid, id);
    assert.deepEqual(keyring.open(f.secret, { subject: f.subject, factorId: id }), secret);
  }
}

test('rotate then rewrap: every old secret is re-sealed with the new primary and still opens', async () => {
  const { keyFile, oldRing, store, secrets } = await seed('basic');
  const credentialKeys = new Map([
    ['w-1', randomBytes(77)],
    ['w-2', randomBytes(91)],
  ]);
  try {
    for (const [id, key] of credentialKeys) {
      await store.durable.createWebAuthnCredential({
        id,
        subject: 'user-w',
        credentialId: Buffer.from(id).toString('base64url'),
        publicKey: oldRing.seal(key, { subject: 'user-w', factorId: id }),
        signCount: 0,
        transports: [],
        kind: 'platform',
        synced: true,
        label: 'passkey',
        createdAt: T0,
      });
    }
    // A row whose ciphertext was swapped in from another row: cannot be opened, stays as it is.
    const victim = (await store.durable.getFactor('f-0001'))!;
    const donor = (await store.durable.getFactor('f-0002'))!;
    assert.equal(await store.durable.replaceSecret('f-0001', victim.secret, donor.secret), true);

    const { kid } = rotateKeyFile(keyFile, () => T0);
    const newRing = loadKeyring({ file: keyFile, rotationMs: ROTATION });
    assert.equal(newRing.primaryKid, kid);
    // New factors sealed meanwhile are left alone.
    const fresh = randomBytes(20);
    secrets.set('f-new', fresh);
    await store.durable.createFactor(record(newRing, 'f-new', 'user-x', fresh));

    assert.deepEqual(await rewrapFactors(store.durable, newRing, 100), { rewrapped: COUNT - 1 + 2, failed: 1 });
    // WebAuthn public keys are sealed the same way and re-sealed with the factors.
    for (const [id, key] of credentialKeys) {
      const [sealed] = (await store.durable.listWebAuthnCredentials('user-w')).filter((c) => c.id === id);
      assert.equal(sealed!.publicKey.kid, kid);
      assert.deepEqual(newRing.open(sealed!.publicKey, { subject: 'user-w', factorId: id }), key);
    }
    const broken = new Set(['f-0001']);
    await assertAllOpen(store, newRing, secrets, kid, broken);
    assert.equal((await store.durable.getFactor('f-0001'))!.secret.kid, 'k1');
    // The old keyring no longer opens the re-sealed rows.
    const sample = (await store.durable.getFactor('f-0010'))!;
    assert.throws(() => oldRing.open(sample.secret, { subject: sample.subject, factorId: sample.id }), { code: 'ERR_KEYRING_DECRYPT_FAILED' });
    // Idempotent: nothing left but the broken row.
    assert.deepEqual(await rewrapFactors(store.durable, newRing, 7), { rewrapped: 0, failed: 1 });
    await assert.rejects(rewrapFactors(store.durable, newRing, 0), { code: 'ERR_KEYRING_INVALID_OPTION' });
  } finally {
    await store.close();
  }
});

test('two rewraps at once (compare-and-set): each secret is re-sealed exactly once', async () => {
  const { keyFile, store, secrets } = await seed('race');
  const other = openSqliteStore({ path: join(dir, 'race.db'), clock: () => T0 });
  try {
    const { kid } = rotateKeyFile(keyFile, () => T0);
    const ringA = loadKeyring({ file: keyFile, rotationMs: ROTATION });
    const ringB = loadKeyring({ file: keyFile, rotationMs: ROTATION });
    const [a, b] = await Promise.all([rewrapFactors(store.durable, ringA, 10), rewrapFactors(other.durable, ringB, 10)]);
    assert.equal(a.failed + b.failed, 0);
    assert.equal(a.rewrapped + b.rewrapped, COUNT);
    await assertAllOpen(store, ringA, secrets, kid);
  } finally {
    await other.close();
    await store.close();
  }
});

test('contact destinations are re-sealed too, bound to the same subject and id', async () => {
  const { keyFile, oldRing, store } = await seed('contacts');
  try {
    const address = Buffer.from('alice@example.com');
    const destination = oldRing.seal(address, { subject: 'alice', factorId: 'c-1' });
    await store.durable.createContact({ id: 'c-1', subject: 'alice', channel: 'email', purpose: 'factor', status: 'active', label: 'mail', destination, createdAt: T0, confirmedAt: T0 });
    const { kid } = rotateKeyFile(keyFile, () => T0);
    const newRing = loadKeyring({ file: keyFile, rotationMs: ROTATION });
    assert.deepEqual(await rewrapFactors(store.durable, newRing, 50), { rewrapped: COUNT + 1, failed: 0 });
    const contact = (await store.durable.getContact('c-1', T0))!;
    assert.equal(contact.destination.kid, kid);
    assert.deepEqual(newRing.open(contact.destination, { subject: 'alice', factorId: 'c-1' }), address);
    assert.deepEqual(await store.durable.contactsNotSealedWith(kid, 10), []);
  } finally {
    await store.close();
  }
});
