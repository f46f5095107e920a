import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ContactRecord, DurableRecord, DurableStore, FactorRecord, WebAuthnCredentialRecord } from '../../src/store/types.js';
import { fakeClock, T0, type FakeClock } from '../support/clock.js';

/**
 * What every DurableStore must do, whatever database is behind it: registered once per backend
 * (SQLite, PostgreSQL) by `durableConformance(name, open)`. The concurrency tests open three
 * stores on the same database, as three gateway replicas would, and race them.
 */

export interface DurableFixture {
  /** The store under test; its close() ends it (a backend holding more than the durable half closes that at open). */
  readonly durable: DurableStore;
  /** Another store on the same database with its own connection(s), as another replica opens it. */
  replica(): Promise<DurableStore>;
  /** Closes every store opened, and removes the database. */
  close(): Promise<void>;
}

/** Opens an empty database for one test; the clock is the stores' clock. */
export type OpenDurable = (clock: FakeClock) => Promise<DurableFixture>;

const PENDING_MS = 10 * 60_000;

export function factor(over: Partial<FactorRecord> = {}): FactorRecord {
  return {
    id: 'f-1',
    subject: 'alice',
    type: 'totp',
    status: 'pending',
    label: 'phone',
    secret: { kid: 'k1', blob: 'bm9uY2UtY2lwaGVydGV4dC10YWc' },
    algorithm: 'SHA1',
    digits: 6,
    periodSeconds: 30,
    counter: 0,
    createdAt: T0,
    pendingUntil: T0 + PENDING_MS,
    ...over,
  };
}

export function active(over: Partial<FactorRecord> = {}): FactorRecord {
  const { pendingUntil: _drop, ...rest } = factor({ status: 'active', confirmedAt: T0, ...over });
  return rest;
}

export function contact(over: Partial<ContactRecord> = {}): ContactRecord {
  return {
    id: 'c-1',
    subject: 'alice',
    channel: 'email',
    purpose: 'factor',
    status: 'pending',
    label: 'work mail',
    destination: { kid: 'k1', blob: 'c2VhbGVkLWFkZHJlc3M' },
    createdAt: T0,
    pendingUntil: T0 + PENDING_MS,
    ...over,
  };
}

export function credential(over: Partial<WebAuthnCredentialRecord> = {}): WebAuthnCredentialRecord {
  return {
    id: 'w-1',
    subject: 'alice',
    credentialId: 'Y3JlZC0x',
    publicKey: { kid: 'k1', blob: 'c2VhbGVkLWNvc2Uta2V5' },
    signCount: 0,
    transports: ['internal', 'hybrid'],
    kind: 'platform',
    synced: true,
    label: 'Laptop passkey',
    createdAt: T0,
    ...over,
  };
}

export function activeContact(over: Partial<ContactRecord> = {}): ContactRecord {
  const { pendingUntil: _drop, ...rest } = contact({ status: 'active', confirmedAt: T0, ...over });
  return rest;
}

export const hashes = (prefix: string, count = 10): string[] => Array.from({ length: count }, (_, i) => `k1$${prefix}${String(i).padStart(2, '0')}`);

/** A store with every kind of row: pending (live and expired), active TOTP and HOTP, odd labels, used and unused codes. */
export async function populate(durable: DurableStore): Promise<void> {
  await durable.createFactor(active({ id: 'f-totp', subject: 'alice', label: 'Handy "Arbeit" 📱', algorithm: 'SHA256', digits: 8, periodSeconds: 60 }));
  await durable.createFactor(active({ id: 'f-hotp', subject: 'alice', type: 'hotp', counter: Number.MAX_SAFE_INTEGER - 1, secret: { kid: 'k0', blob: 'b2xkLXNlYWxlZA' } }));
  await durable.createFactor(factor({ id: 'f-pending', subject: 'bob', pendingUntil: T0 + 60_000 }));
  await durable.createFactor(factor({ id: 'f-expired', subject: 'bob', pendingUntil: T0 - 1 }));
  await durable.createFactor(active({ id: 'F-upper', subject: 'Ünïcode', label: '', confirmedAt: T0 + 5 }));
  await durable.replaceRecoveryCodes('alice', hashes('a'), T0);
  await durable.replaceRecoveryCodes('Ünïcode', hashes('u', 3), T0 + 1);
  await durable.consumeRecoveryCode('alice', 'k1$a07', T0 + 100);
  await durable.consumeRecoveryCode('Ünïcode', 'k1$u00', T0 + 200);
  await durable.createContact(activeContact({ id: 'c-sms', subject: 'alice', channel: 'sms', purpose: 'backup', label: 'Handy 📞' }));
  await durable.createWebAuthnCredential(credential({ id: 'w-key', credentialId: 'a2V5LTE', kind: 'security_key', synced: false, transports: ['usb', 'nfc'], label: 'YubiKey 5 "blue" 🔑', signCount: 2 ** 32 - 1 }));
  await durable.createWebAuthnCredential(credential({ id: 'w-pass', subject: 'bob', credentialId: 'cGFzcy0x', transports: [], lastUsedAt: T0 + 300 }));
}

async function collect(records: AsyncIterable<DurableRecord>): Promise<DurableRecord[]> {
  const out: DurableRecord[] = [];
  for await (const record of records) out.push(record);
  return out;
}

/** `calls` calls of `call`, spread round-robin over `stores`, all started before any is awaited. */
function race<T>(stores: readonly DurableStore[], calls: number, call: (store: DurableStore, i: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: calls }, (_, i) => call(stores[i % stores.length]!, i)));
}

export function durableConformance(name: string, open: OpenDurable, options: { readonly skip?: string | undefined } = {}): void {
  describe(`durable store conformance: ${name}`, { skip: options.skip }, () => {
    let fx: DurableFixture;
    let durable: DurableStore;
    let time: FakeClock;
    beforeEach(async () => {
      time = fakeClock(T0);
      fx = await open(time);
      durable = fx.durable;
    });
    afterEach(() => fx.close());

    /** The store and two replicas: three "gateways" on one database. */
    const replicas = async (): Promise<DurableStore[]> => [durable, await fx.replica(), await fx.replica()];

    test('create, get, list (oldest first, then id byte order), delete by owner only', async () => {
      await durable.createFactor(active({ id: 'f-z', createdAt: T0 + 2 }));
      await durable.createFactor(active({ id: 'f-a', createdAt: T0 + 1, type: 'hotp', counter: 7, algorithm: 'SHA256', digits: 8, label: 'Schlüssel 🔑' }));
      // Same createdAt: ordered by id as bytes (uppercase before lowercase before non-ASCII), in every backend.
      for (const id of ['f-ä', 'f-b', 'f-B']) await durable.createFactor(active({ id, createdAt: T0 + 3 }));
      await durable.createFactor(active({ id: 'f-bob', subject: 'bob' }));
      assert.deepEqual(await durable.getFactor('f-a'), {
        id: 'f-a',
        subject: 'alice',
        type: 'hotp',
        status: 'active',
        label: 'Schlüssel 🔑',
        secret: { kid: 'k1', blob: 'bm9uY2UtY2lwaGVydGV4dC10YWc' },
        algorithm: 'SHA256',
        digits: 8,
        periodSeconds: 30,
        counter: 7,
        createdAt: T0 + 1,
        confirmedAt: T0,
      });
      assert.deepEqual((await durable.listFactors('alice', time())).map((f) => f.id), ['f-a', 'f-z', 'f-B', 'f-b', 'f-ä']);
      assert.deepEqual((await durable.listFactors('bob', time())).map((f) => f.id), ['f-bob']);
      assert.deepEqual(await durable.listFactors('nobody', time()), []);
      assert.equal(await durable.getFactor('nope'), undefined);

      assert.equal(await durable.deleteFactor('f-a', 'bob'), false);
      assert.equal(await durable.deleteFactor('f-a', 'alice'), true);
      assert.equal(await durable.deleteFactor('f-a', 'alice'), false);
      assert.equal(await durable.getFactor('f-a'), undefined);
    });

    test('a pending factor reads back with pendingUntil and no confirmedAt; the largest counter survives', async () => {
      await durable.createFactor(factor({ id: 'p', type: 'hotp', counter: Number.MAX_SAFE_INTEGER }));
      assert.deepEqual(await durable.getFactor('p'), {
        id: 'p',
        subject: 'alice',
        type: 'hotp',
        status: 'pending',
        label: 'phone',
        secret: { kid: 'k1', blob: 'bm9uY2UtY2lwaGVydGV4dC10YWc' },
        algorithm: 'SHA1',
        digits: 6,
        periodSeconds: 30,
        counter: Number.MAX_SAFE_INTEGER,
        createdAt: T0,
        pendingUntil: T0 + PENDING_MS,
      });
    });

    test('duplicate ids and invalid records are refused with typed errors', async () => {
      await durable.createFactor(factor());
      await assert.rejects(durable.createFactor(factor()), { name: 'StoreError', code: 'ERR_STORE_CONFLICT', message: 'a factor with this id already exists' });
      await assert.rejects(durable.createFactor(factor({ id: 'x', digits: 5 })), { code: 'ERR_STORE_INVALID_OPTION', message: 'factor.digits must be an integer from 6 to 10' });
      await assert.rejects(durable.createFactor(factor({ id: 'x', pendingUntil: undefined })), {
        code: 'ERR_STORE_INVALID_OPTION',
        message: 'factor.pendingUntil is required (unix ms) for a pending factor',
      });
      await assert.rejects(durable.createFactor(factor({ id: 'x', secret: { kid: 'k1', blob: '' } })), { code: 'ERR_STORE_INVALID_OPTION', message: 'factor.secret must be a sealed secret { kid, blob }' });
      assert.equal(await durable.getFactor('x'), undefined);
    });

    test('activate: only the owner, only while pending and unexpired, only once', async () => {
      await durable.createFactor(factor());
      assert.equal(await durable.activateFactor('f-1', 'mallory', time()), false);
      assert.equal((await durable.getFactor('f-1'))?.status, 'pending');
      time.advance(1000);
      assert.equal(await durable.activateFactor('f-1', 'alice', time()), true);
      assert.equal(await durable.activateFactor('f-1', 'alice', time()), false);
      const got = await durable.getFactor('f-1');
      assert.equal(got?.status, 'active');
      assert.equal(got?.pendingUntil, undefined);
      assert.equal(got?.confirmedAt, T0 + 1000);
      assert.equal(await durable.activateFactor('absent', 'alice', time()), false);
    });

    test('pending factors past pendingUntil are invisible and cannot be activated', async () => {
      await durable.createFactor(factor({ id: 'p1' }));
      await durable.createFactor(factor({ id: 'p2', pendingUntil: T0 + 2 * PENDING_MS }));
      await durable.createFactor(active({ id: 'a1' }));
      time.set(T0 + PENDING_MS - 1);
      assert.deepEqual((await durable.listFactors('alice', time())).map((f) => f.id), ['a1', 'p1', 'p2']);
      assert.equal((await durable.getFactor('p1'))?.id, 'p1');
      time.set(T0 + PENDING_MS);
      assert.equal(await durable.getFactor('p1'), undefined);
      assert.deepEqual((await durable.listFactors('alice', time())).map((f) => f.id), ['a1', 'p2']);
      assert.equal(await durable.activateFactor('p1', 'alice', time()), false);
      assert.equal(await durable.activateFactor('p2', 'alice', time()), true);
    });

    test('HOTP counter compare-and-set: only from the expected value, only on HOTP factors', async () => {
      await durable.createFactor(active({ id: 'h', type: 'hotp', counter: 5 }));
      await durable.createFactor(active({ id: 't', type: 'totp' }));
      assert.equal(await durable.advanceHotpCounter('h', 5, 6), true);
      assert.equal(await durable.advanceHotpCounter('h', 5, 7), false);
      assert.equal(await durable.advanceHotpCounter('h', 5.5, 7), false);
      assert.equal((await durable.getFactor('h'))?.counter, 6);
      assert.equal(await durable.advanceHotpCounter('t', 0, 1), false);
      assert.equal(await durable.advanceHotpCounter('absent', 0, 1), false);
      await assert.rejects(durable.advanceHotpCounter('h', 6, -1), { code: 'ERR_STORE_INVALID_OPTION', message: 'the next HOTP counter must be a non-negative integer' });
    });

    test('replaceSecret is a compare-and-set on kid and blob; factorsNotSealedWith finds the rest by id', async () => {
      await durable.createFactor(active({ id: 'c', secret: { kid: 'k1', blob: 'CCCC' } }));
      await durable.createFactor(active({ id: 'a', secret: { kid: 'k1', blob: 'AAAA' } }));
      await durable.createFactor(active({ id: 'b', secret: { kid: 'k2', blob: 'BBBB' } }));
      assert.deepEqual((await durable.factorsNotSealedWith('k2', 10)).map((f) => f.id), ['a', 'c']);
      assert.deepEqual((await durable.factorsNotSealedWith('k2', 1)).map((f) => f.id), ['a']);
      assert.equal(await durable.replaceSecret('a', { kid: 'k1', blob: 'WRONG' }, { kid: 'k2', blob: 'NEW' }), false);
      assert.equal(await durable.replaceSecret('a', { kid: 'k1', blob: 'AAAA' }, { kid: 'k2', blob: 'NEW' }), true);
      assert.equal(await durable.replaceSecret('a', { kid: 'k1', blob: 'AAAA' }, { kid: 'k2', blob: 'NEWER' }), false);
      assert.deepEqual((await durable.getFactor('a'))?.secret, { kid: 'k2', blob: 'NEW' });
      assert.deepEqual((await durable.factorsNotSealedWith('k2', 10)).map((f) => f.id), ['c']);
      await assert.rejects(durable.replaceSecret('c', { kid: 'k1', blob: 'CCCC' }, { kid: '', blob: 'x' }), { code: 'ERR_STORE_INVALID_OPTION' });
      await assert.rejects(durable.factorsNotSealedWith('k2', 0), { code: 'ERR_STORE_INVALID_OPTION', message: 'limit must be a positive integer' });
    });

    test('recovery codes: replace, consume once, count remaining, regenerate, per subject', async () => {
      await durable.replaceRecoveryCodes('alice', hashes('a'), T0);
      await durable.replaceRecoveryCodes('bob', hashes('b', 3), T0);
      assert.equal(await durable.countRecoveryCodes('alice'), 10);
      assert.deepEqual(await durable.consumeRecoveryCode('alice', 'k1$a03', T0 + 1), { consumed: true, remaining: 9 });
      assert.deepEqual(await durable.consumeRecoveryCode('alice', 'k1$a03', T0 + 2), { consumed: false, remaining: 9 });
      assert.deepEqual(await durable.consumeRecoveryCode('bob', 'k1$a04', T0 + 2), { consumed: false, remaining: 3 });
      assert.deepEqual(await durable.consumeRecoveryCode('alice', 'k1$zz', T0 + 2), { consumed: false, remaining: 9 });
      await durable.replaceRecoveryCodes('alice', hashes('n', 4), T0 + 3);
      assert.equal(await durable.countRecoveryCodes('alice'), 4);
      assert.deepEqual(await durable.consumeRecoveryCode('alice', 'k1$a04', T0 + 4), { consumed: false, remaining: 4 });
      await durable.replaceRecoveryCodes('alice', [], T0 + 5);
      assert.equal(await durable.countRecoveryCodes('alice'), 0);
      assert.equal(await durable.countRecoveryCodes('bob'), 3);
      await assert.rejects(durable.replaceRecoveryCodes('alice', ['x', 'x'], T0), { code: 'ERR_STORE_INVALID_OPTION', message: 'hashes must be unique' });
      await assert.rejects(durable.replaceRecoveryCodes('', ['x'], T0), { code: 'ERR_STORE_INVALID_OPTION', message: 'subject must be a non-empty string' });
    });

    test('contacts: create, get and list live ones (oldest first), activate once by the owner, delete by the owner', async () => {
      await durable.createContact(contact({ id: 'c-p', createdAt: T0 + 2 }));
      await durable.createContact(activeContact({ id: 'c-a', channel: 'sms', purpose: 'backup', createdAt: T0 + 1, label: 'Handy 📞' }));
      await durable.createContact(contact({ id: 'c-old', pendingUntil: T0 + 5 }));
      await durable.createContact(activeContact({ id: 'c-bob', subject: 'bob' }));
      assert.deepEqual(await durable.getContact('c-a', T0), {
        id: 'c-a',
        subject: 'alice',
        channel: 'sms',
        purpose: 'backup',
        status: 'active',
        label: 'Handy 📞',
        destination: { kid: 'k1', blob: 'c2VhbGVkLWFkZHJlc3M' },
        createdAt: T0 + 1,
        confirmedAt: T0,
      });
      assert.deepEqual(await durable.getContact('c-p', T0), contact({ id: 'c-p', createdAt: T0 + 2 }));
      assert.deepEqual((await durable.listContacts('alice', T0)).map((c) => c.id), ['c-old', 'c-a', 'c-p']);
      // Pending past pendingUntil: invisible, and it cannot be activated.
      assert.deepEqual((await durable.listContacts('alice', T0 + 5)).map((c) => c.id), ['c-a', 'c-p']);
      assert.equal(await durable.getContact('c-old', T0 + 5), undefined);
      assert.equal(await durable.activateContact('c-old', 'alice', T0 + 5), false);

      assert.equal(await durable.activateContact('c-p', 'mallory', T0 + 9), false);
      assert.equal(await durable.activateContact('c-p', 'alice', T0 + 9), true);
      assert.equal(await durable.activateContact('c-p', 'alice', T0 + 9), false);
      assert.deepEqual(await durable.getContact('c-p', T0 + PENDING_MS * 9), activeContact({ id: 'c-p', createdAt: T0 + 2, confirmedAt: T0 + 9 }));

      assert.equal(await durable.deleteContact('c-a', 'bob'), false);
      assert.equal(await durable.deleteContact('c-a', 'alice'), true);
      assert.equal(await durable.deleteContact('c-a', 'alice'), false);
      assert.equal(await durable.getContact('c-a', T0), undefined);
      assert.equal(await durable.getContact('nope', T0), undefined);
      assert.deepEqual((await durable.listContacts('bob', T0)).map((c) => c.id), ['c-bob']);
    });

    test('contacts: duplicate ids and invalid records are refused with typed errors', async () => {
      await durable.createContact(contact());
      await assert.rejects(durable.createContact(contact()), { name: 'StoreError', code: 'ERR_STORE_CONFLICT', message: 'a contact with this id already exists' });
      const cases: [Partial<ContactRecord>, string][] = [
        [{ channel: 'fax' as ContactRecord['channel'] }, 'contact.channel must be "email" or "sms"'],
        [{ purpose: 'spare' as ContactRecord['purpose'] }, 'contact.purpose must be "factor" or "backup"'],
        [{ pendingUntil: undefined }, 'contact.pendingUntil is required (unix ms) for a pending contact'],
        [{ destination: { kid: 'k1', blob: '' } }, 'contact.destination must be a sealed secret { kid, blob }'],
        [{ subject: '' }, 'contact.subject must be a non-empty string'],
      ];
      for (const [over, message] of cases) await assert.rejects(durable.createContact(contact({ id: 'x', ...over })), { code: 'ERR_STORE_INVALID_OPTION', message });
      assert.equal(await durable.getContact('x', T0), undefined);
    });

    test('contacts: replaceContactDestination is a compare-and-set; contactsNotSealedWith finds the rest by id', async () => {
      await durable.createContact(activeContact({ id: 'c', destination: { kid: 'k1', blob: 'CCCC' } }));
      await durable.createContact(activeContact({ id: 'a', destination: { kid: 'k1', blob: 'AAAA' } }));
      await durable.createContact(activeContact({ id: 'b', destination: { kid: 'k2', blob: 'BBBB' } }));
      assert.deepEqual((await durable.contactsNotSealedWith('k2', 10)).map((c) => c.id), ['a', 'c']);
      assert.deepEqual((await durable.contactsNotSealedWith('k2', 1)).map((c) => c.id), ['a']);
      assert.equal(await durable.replaceContactDestination('a', { kid: 'k1', blob: 'WRONG' }, { kid: 'k2', blob: 'NEW' }), false);
      assert.equal(await durable.replaceContactDestination('a', { kid: 'k1', blob: 'AAAA' }, { kid: 'k2', blob: 'NEW' }), true);
      assert.equal(await durable.replaceContactDestination('a', { kid: 'k1', blob: 'AAAA' }, { kid: 'k2', blob: 'NEWER' }), false);
      assert.deepEqual((await durable.getContact('a', T0))?.destination, { kid: 'k2', blob: 'NEW' });
      assert.deepEqual((await durable.contactsNotSealedWith('k2', 10)).map((c) => c.id), ['c']);
      await assert.rejects(durable.replaceContactDestination('c', { kid: 'k1', blob: 'CCCC' }, { kid: '', blob: 'x' }), { code: 'ERR_STORE_INVALID_OPTION' });
      await assert.rejects(durable.contactsNotSealedWith('k2', 0), { code: 'ERR_STORE_INVALID_OPTION', message: 'limit must be a positive integer' });
    });

    test('3 replicas, 30 parallel activations of one pending contact: exactly one succeeds', async () => {
      const stores = await replicas();
      await durable.createContact(contact({ id: 'race' }));
      const results = await race(stores, 30, (store) => store.activateContact('race', 'alice', T0 + 1));
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal((await durable.getContact('race', T0 + 1))?.status, 'active');
    });

    test('WebAuthn credentials: create, list (oldest first), rename and delete by owner only; ids unique across subjects', async () => {
      await durable.createWebAuthnCredential(credential({ id: 'w-b', createdAt: T0 + 2, credentialId: 'Yg' }));
      await durable.createWebAuthnCredential(credential({ id: 'w-a', createdAt: T0 + 1, credentialId: 'YQ', kind: 'security_key', synced: false, transports: ['usb'] }));
      await durable.createWebAuthnCredential(credential({ id: 'w-bob', subject: 'bob', credentialId: 'Ym9i' }));
      assert.deepEqual(await durable.listWebAuthnCredentials('alice'), [
        credential({ id: 'w-a', createdAt: T0 + 1, credentialId: 'YQ', kind: 'security_key', synced: false, transports: ['usb'] }),
        credential({ id: 'w-b', createdAt: T0 + 2, credentialId: 'Yg' }),
      ]);
      assert.deepEqual(await durable.listWebAuthnCredentials('nobody'), []);
      // The authenticator's credential id is unique across every subject, and so is ours.
      await assert.rejects(durable.createWebAuthnCredential(credential({ id: 'w-x', subject: 'mallory', credentialId: 'YQ' })), {
        name: 'StoreError',
        code: 'ERR_STORE_CONFLICT',
        message: 'a WebAuthn credential with this id or credential id is already registered',
      });
      await assert.rejects(durable.createWebAuthnCredential(credential({ id: 'w-a', credentialId: 'bmV3' })), { code: 'ERR_STORE_CONFLICT' });
      await assert.rejects(durable.createWebAuthnCredential(credential({ id: 'w-y', credentialId: 'not base64url!' })), {
        code: 'ERR_STORE_INVALID_OPTION',
        message: 'credential.credentialId must be base64url (at most 1023 bytes)',
      });
      await assert.rejects(durable.createWebAuthnCredential(credential({ id: 'w-y', kind: 'phone' as 'platform' })), { code: 'ERR_STORE_INVALID_OPTION', message: 'credential.kind must be "security_key" or "platform"' });
      assert.equal((await durable.listWebAuthnCredentials('mallory')).length, 0);

      assert.equal(await durable.renameWebAuthnCredential('w-a', 'bob', 'stolen'), false);
      assert.equal(await durable.renameWebAuthnCredential('w-a', 'alice', 'Blue key'), true);
      assert.equal((await durable.listWebAuthnCredentials('alice'))[0]!.label, 'Blue key');
      assert.equal(await durable.deleteWebAuthnCredential('w-a', 'bob'), false);
      assert.equal(await durable.deleteWebAuthnCredential('w-a', 'alice'), true);
      assert.equal(await durable.deleteWebAuthnCredential('w-a', 'alice'), false);
      assert.deepEqual((await durable.listWebAuthnCredentials('alice')).map((c) => c.id), ['w-b']);
    });

    test('the signature counter only moves forward (0 → 0 allowed for counterless authenticators); last use is kept', async () => {
      await durable.createWebAuthnCredential(credential({ id: 'w-0' }));
      assert.equal(await durable.advanceWebAuthnCounter('w-0', 0, T0 + 1), true);
      assert.equal(await durable.advanceWebAuthnCounter('w-0', 0, T0 + 2), true);
      assert.equal((await durable.listWebAuthnCredentials('alice'))[0]!.lastUsedAt, T0 + 2);
      assert.equal(await durable.advanceWebAuthnCounter('w-0', 5, T0 + 3), true);
      assert.equal(await durable.advanceWebAuthnCounter('w-0', 5, T0 + 4), false);
      assert.equal(await durable.advanceWebAuthnCounter('w-0', 4, T0 + 4), false);
      assert.equal(await durable.advanceWebAuthnCounter('w-0', 0, T0 + 4), false);
      assert.equal(await durable.advanceWebAuthnCounter('w-0', 2 ** 32 - 1, T0 + 5), true);
      const [kept] = await durable.listWebAuthnCredentials('alice');
      assert.equal(kept!.signCount, 2 ** 32 - 1);
      assert.equal(kept!.lastUsedAt, T0 + 5);
      assert.equal(await durable.advanceWebAuthnCounter('absent', 9, T0), false);
      await assert.rejects(durable.advanceWebAuthnCounter('w-0', 2 ** 32, T0), { code: 'ERR_STORE_INVALID_OPTION', message: 'the signature counter must be an integer from 0 to 2^32 - 1' });
    });

    test('3 replicas, 30 parallel assertions with one counter value: exactly one moves it', async () => {
      const stores = await replicas();
      await durable.createWebAuthnCredential(credential({ id: 'w-race', signCount: 10 }));
      const results = await race(stores, 30, (store) => store.advanceWebAuthnCounter('w-race', 11, T0));
      assert.equal(results.filter(Boolean).length, 1);
    });

    test('renameFactor: only the owner; public keys rewrap by compare-and-set like secrets', async () => {
      await durable.createFactor(active({ id: 'f-r' }));
      assert.equal(await durable.renameFactor('f-r', 'bob', 'x'), false);
      assert.equal(await durable.renameFactor('f-r', 'alice', 'Work phone'), true);
      assert.equal((await durable.getFactor('f-r'))?.label, 'Work phone');
      await assert.rejects(durable.renameFactor('f-r', 'alice', 7 as unknown as string), { code: 'ERR_STORE_INVALID_OPTION', message: 'label must be a string' });

      await durable.createWebAuthnCredential(credential({ id: 'w-c', credentialId: 'Yw', publicKey: { kid: 'k1', blob: 'CCCC' } }));
      await durable.createWebAuthnCredential(credential({ id: 'w-d', credentialId: 'ZA', publicKey: { kid: 'k2', blob: 'DDDD' } }));
      assert.deepEqual((await durable.webAuthnCredentialsNotSealedWith('k2', 10)).map((c) => c.id), ['w-c']);
      assert.equal(await durable.replaceWebAuthnPublicKey('w-c', { kid: 'k1', blob: 'WRONG' }, { kid: 'k2', blob: 'NEW' }), false);
      assert.equal(await durable.replaceWebAuthnPublicKey('w-c', { kid: 'k1', blob: 'CCCC' }, { kid: 'k2', blob: 'NEW' }), true);
      assert.deepEqual((await durable.webAuthnCredentialsNotSealedWith('k2', 10)).map((c) => c.id), []);
      assert.deepEqual((await durable.listWebAuthnCredentials('alice')).find((c) => c.id === 'w-c')?.publicKey, { kid: 'k2', blob: 'NEW' });
    });

    test('exportAll: every factor by id (pending, expired, other subjects), then every code by subject and hash, used ones with usedAt', async () => {
      await durable.createFactor(active({ id: 'f-b', subject: 'bob' }));
      await durable.createFactor(factor({ id: 'f-a', pendingUntil: T0 + 1 }));
      await durable.replaceRecoveryCodes('bob', ['k1$y', 'k1$x'], T0);
      await durable.replaceRecoveryCodes('alice', ['k1$z'], T0);
      await durable.consumeRecoveryCode('bob', 'k1$y', T0 + 9);
      await durable.createContact(activeContact({ id: 'c-b', subject: 'bob', channel: 'sms' }));
      await durable.createContact(contact({ id: 'c-a', pendingUntil: T0 + 1 }));
      time.advance(10);
      assert.deepEqual(await collect(durable.exportAll()), [
        { kind: 'factor', factor: factor({ id: 'f-a', pendingUntil: T0 + 1 }) },
        { kind: 'factor', factor: active({ id: 'f-b', subject: 'bob' }) },
        { kind: 'recovery_code', code: { subject: 'alice', hash: 'k1$z', createdAt: T0 } },
        { kind: 'recovery_code', code: { subject: 'bob', hash: 'k1$x', createdAt: T0 } },
        { kind: 'recovery_code', code: { subject: 'bob', hash: 'k1$y', createdAt: T0, usedAt: T0 + 9 } },
        { kind: 'contact', contact: contact({ id: 'c-a', pendingUntil: T0 + 1 }) },
        { kind: 'contact', contact: activeContact({ id: 'c-b', subject: 'bob', channel: 'sms' }) },
      ]);
      await durable.createWebAuthnCredential(credential({ id: 'w-z', credentialId: 'eg' }));
      await durable.createWebAuthnCredential(credential({ id: 'w-b', credentialId: 'Yg', subject: 'bob', lastUsedAt: T0 + 4 }));
      assert.deepEqual((await collect(durable.exportAll())).slice(7), [
        { kind: 'webauthn_credential', credential: credential({ id: 'w-b', credentialId: 'Yg', subject: 'bob', lastUsedAt: T0 + 4 }) },
        { kind: 'webauthn_credential', credential: credential({ id: 'w-z', credentialId: 'eg' }) },
      ]);
    });

    test('importAll: into an empty store; refused over factors unless replace; all or nothing', async () => {
      const records: DurableRecord[] = [
        { kind: 'factor', factor: active({ id: 'i-1', type: 'hotp', counter: 42 }) },
        { kind: 'factor', factor: factor({ id: 'i-2' }) },
        { kind: 'recovery_code', code: { subject: 'alice', hash: 'k1$u', createdAt: T0, usedAt: T0 + 5 } },
        { kind: 'recovery_code', code: { subject: 'alice', hash: 'k1$v', createdAt: T0 } },
        { kind: 'contact', contact: activeContact({ id: 'i-c', purpose: 'backup' }) },
        { kind: 'webauthn_credential', credential: credential({ id: 'w-i', lastUsedAt: T0 + 3 }) },
      ];
      assert.deepEqual(await durable.importAll(records, { replace: false }), { factors: 2, recoveryCodes: 2, contacts: 1, webauthnCredentials: 1 });
      assert.deepEqual(await collect(durable.exportAll()), records);
      assert.equal(await durable.countRecoveryCodes('alice'), 1);
      assert.deepEqual(await durable.consumeRecoveryCode('alice', 'k1$u', T0 + 6), { consumed: false, remaining: 1 });

      await assert.rejects(durable.importAll(records, { replace: false }), {
        name: 'StoreError',
        code: 'ERR_STORE_NOT_EMPTY',
        // Credentials count as factors here: they share the factors' id space.
        message: 'the store already holds 3 factors and 1 contact; an import would mix two sets',
      });
      // A duplicate half-way through: nothing of the import stays, and the replace is undone with it.
      const broken: DurableRecord[] = [records[0]!, { kind: 'factor', factor: active({ id: 'i-3' }) }, records[0]!];
      await assert.rejects(durable.importAll(broken, { replace: true }), { code: 'ERR_STORE_CONFLICT', message: 'the import holds factor "i-1" twice' });
      await assert.rejects(durable.importAll([records[2]!, records[2]!], { replace: true }), { code: 'ERR_STORE_CONFLICT', message: 'the import holds a recovery code of "alice" twice' });
      await assert.rejects(durable.importAll([records[4]!, records[4]!], { replace: true }), { code: 'ERR_STORE_CONFLICT', message: 'the import holds contact "i-c" twice' });
      await assert.rejects(durable.importAll([records[5]!, { kind: 'webauthn_credential', credential: credential({ id: 'w-j' }) }], { replace: true }), {
        code: 'ERR_STORE_CONFLICT',
        message: 'the import holds the WebAuthn credential of factor "w-j" twice',
      });
      await assert.rejects(durable.importAll([records[0]!, { kind: 'webauthn_credential', credential: credential({ id: 'i-1' }) }], { replace: true }), {
        code: 'ERR_STORE_CONFLICT',
        message: 'the import holds factor "i-1" twice',
      });
      await assert.rejects(durable.importAll([{ kind: 'factor', factor: factor({ id: 'x', digits: 4 }) }], { replace: true }), {
        code: 'ERR_STORE_INVALID_OPTION',
        message: 'factor.digits must be an integer from 6 to 10',
      });
      assert.deepEqual(await collect(durable.exportAll()), records);

      const replacement: DurableRecord[] = [{ kind: 'factor', factor: active({ id: 'r-1', subject: 'carol' }) }];
      assert.deepEqual(await durable.importAll(replacement, { replace: true }), { factors: 1, recoveryCodes: 0, contacts: 0, webauthnCredentials: 0 });
      assert.deepEqual(await collect(durable.exportAll()), replacement);
      // A store holding only a credential is not empty either.
      const onlyCredential: DurableRecord[] = [{ kind: 'webauthn_credential', credential: credential() }];
      assert.deepEqual(await durable.importAll(onlyCredential, { replace: true }), { factors: 0, recoveryCodes: 0, contacts: 0, webauthnCredentials: 1 });
      await assert.rejects(durable.importAll(replacement, { replace: false }), { code: 'ERR_STORE_NOT_EMPTY', message: 'the store already holds 1 factor; an import would mix two sets' });
      assert.deepEqual(await durable.importAll([], { replace: true }), { factors: 0, recoveryCodes: 0, contacts: 0, webauthnCredentials: 0 });
      assert.deepEqual(await collect(durable.exportAll()), []);
      // A store holding only contacts is not empty either.
      await durable.createContact(contact({ id: 'c-only' }));
      await assert.rejects(durable.importAll(replacement, { replace: false }), { code: 'ERR_STORE_NOT_EMPTY', message: 'the store already holds 0 factors and 1 contact; an import would mix two sets' });
    });

    test('a large import arrives whole (more rows than one batch)', async () => {
      const many: DurableRecord[] = [
        ...Array.from({ length: 1203 }, (_, i): DurableRecord => ({ kind: 'factor', factor: active({ id: `m-${String(i).padStart(5, '0')}`, subject: `s-${i % 7}` }) })),
        ...Array.from({ length: 777 }, (_, i): DurableRecord => ({ kind: 'recovery_code', code: { subject: 's-0', hash: `k1$${String(i).padStart(4, '0')}`, createdAt: T0 } })),
      ];
      many.push(...Array.from({ length: 611 }, (_, i): DurableRecord => ({ kind: 'contact', contact: activeContact({ id: `c-${String(i).padStart(5, '0')}`, subject: `s-${i % 5}` }) })));
      many.push(...Array.from({ length: 611 }, (_, i): DurableRecord => ({ kind: 'webauthn_credential', credential: credential({ id: `w-${String(i).padStart(5, '0')}`, credentialId: `c${i}` }) })));
      assert.deepEqual(await durable.importAll(many, { replace: false }), { factors: 1203, recoveryCodes: 777, contacts: 611, webauthnCredentials: 611 });
      assert.deepEqual(await collect(durable.exportAll()), many);
    });

    test('3 replicas, 50 parallel uses of one recovery code: exactly one consumed', async () => {
      const stores = await replicas();
      await durable.replaceRecoveryCodes('alice', hashes('r'), T0);
      const results = await race(stores, 50, (store, i) => store.consumeRecoveryCode('alice', 'k1$r05', T0 + i));
      assert.equal(results.filter((r) => r.consumed).length, 1);
      assert.equal(results.find((r) => r.consumed)?.remaining, 9);
      assert.equal(await durable.countRecoveryCodes('alice'), 9);
    });

    test('3 replicas, 30 parallel activations of one pending factor: exactly one succeeds', async () => {
      const stores = await replicas();
      await durable.createFactor(factor({ id: 'race' }));
      const results = await race(stores, 30, (store) => store.activateFactor('race', 'alice', T0 + 1));
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal((await durable.getFactor('race'))?.status, 'active');
    });

    test('3 replicas, 50 parallel HOTP advances from one counter: exactly one wins, and its value stays', async () => {
      const stores = await replicas();
      await durable.createFactor(active({ id: 'h', type: 'hotp', counter: 6 }));
      const results = await race(stores, 50, (store, i) => store.advanceHotpCounter('h', 6, 7 + i));
      assert.equal(results.filter(Boolean).length, 1);
      assert.equal((await durable.getFactor('h'))?.counter, 7 + results.indexOf(true));
    });

    test('3 replicas, 9 parallel regenerations: one whole set remains, never a mix', async () => {
      const stores = await replicas();
      await race(stores, 9, (store, i) => store.replaceRecoveryCodes('alice', hashes(`g${i}-`), T0 + i));
      const codes = (await collect(durable.exportAll())).flatMap((r) => (r.kind === 'recovery_code' ? [r.code] : []));
      assert.equal(codes.length, 10);
      const set = codes[0]!.hash.slice(0, 6);
      assert.deepEqual(codes.map((c) => c.hash), hashes(set.slice(3)));
      assert.ok(codes.every((c) => c.createdAt === codes[0]!.createdAt));
    });

    test('ping answers; a closed store refuses every call; close twice is fine', async () => {
      await durable.ping();
      await durable.close();
      await durable.close();
      await assert.rejects(durable.getFactor('x'), { name: 'StoreError', code: 'ERR_STORE_CLOSED', message: 'the store is closed' });
      await assert.rejects(durable.ping(), { code: 'ERR_STORE_CLOSED' });
      assert.throws(() => durable.exportAll(), { code: 'ERR_STORE_CLOSED' });
    });
  });
}
