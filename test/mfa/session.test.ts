import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { createSessionStore, type SessionStore } from '../../src/mfa/session.js';
import { createRig, type Rig } from './support.js';

describe('session store on SQLite', () => {
  let rig: Rig;
  let sessions: SessionStore;
  beforeEach(() => {
    rig = createRig();
    sessions = createSessionStore(rig.store.ttl);
  });
  afterEach(() => rig.close());
  const hour = 3_600_000;

  test('a 32-byte base64url token; only its SHA-256 is a key; bound to the subject', async () => {
    const now = rig.clock();
    const issued = await sessions.issue({ subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), now, ttlMs: 12 * hour, maxPerSubject: 20 });
    assert.match(issued.token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(issued.token, 'base64url').length, 32);
    assert.equal(issued.record.expiresAt, now + 12 * hour);
    assert.equal(issued.logId.length, 8);
    const found = await sessions.lookup(issued.token, 'alice', now);
    assert.equal(found.ok, true);
    assert.deepEqual(found.ok && found.record, { subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), issuedAt: now, expiresAt: now + 12 * hour });
    assert.equal((await sessions.lookup(issued.token, 'bob', now)).ok, false);
    // The store keys sessions by the token's hash, never the token.
    assert.equal(await rig.store.ttl.getSession(issued.token, 'alice', now), undefined);
  });

  test('tampered, unknown, expired and revoked sessions are not ok', async () => {
    const now = rig.clock();
    const issued = await sessions.issue({ subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), now, ttlMs: hour, maxPerSubject: 20 });
    const flipped = (issued.token[0] === 'A' ? 'B' : 'A') + issued.token.slice(1);
    assert.equal((await sessions.lookup(flipped, 'alice', now)).ok, false);
    assert.equal((await sessions.lookup(`${issued.token}=`, 'alice', now)).ok, false);
    assert.equal((await sessions.lookup('', 'alice', now)).ok, false);
    assert.equal((await sessions.lookup(issued.token, 'alice', now + hour)).ok, false);
    assert.equal(await sessions.revoke(issued.token, 'bob', now), false);
    assert.equal(await sessions.revoke(issued.token, 'alice', now), true);
    assert.equal((await sessions.lookup(issued.token, 'alice', now)).ok, false);
    assert.equal(await sessions.revoke(issued.token, 'alice', now), false);
  });

  test('a token of the wrong shape is refused without a store read; a cached session is answered from memory', async () => {
    const now = rig.clock();
    const issued = await sessions.issue({ subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), now, ttlMs: hour, maxPerSubject: 20 });
    const ttl = rig.store.ttl;
    const read = ttl.getSession.bind(ttl);
    let reads = 0;
    const counted = createSessionStore({ ...ttl, getSession: (...args: Parameters<typeof read>) => (reads++, read(...args)), issueSession: ttl.issueSession.bind(ttl), deleteSession: ttl.deleteSession.bind(ttl), revokeAllSessions: ttl.revokeAllSessions.bind(ttl) });
    for (const malformed of [`${issued.token}=`, issued.token.slice(1), `${issued.token.slice(1)}.`, `${issued.token.slice(1)}+`, 'x'.repeat(256)]) {
      assert.equal((await counted.lookup(malformed, 'alice', now)).ok, false, malformed);
    }
    assert.equal(reads, 0);
    assert.equal((await counted.lookup(issued.token, 'alice', now)).ok, true);
    assert.equal(reads, 1);
    // The second answer is the cached one: no promise, no read.
    const cached = counted.lookup(issued.token, 'alice', now);
    assert.equal(cached instanceof Promise, false);
    assert.equal((await cached).ok, true);
    assert.equal((await counted.lookup(issued.token, 'bob', now)).ok, false, 'the cache still binds the subject');
    assert.equal(reads, 1);
  });

  test('refresh rotates the token and never renews mfaTime or stretches past mfaTime + TTL', async () => {
    const start = rig.clock();
    const mfaTime = Math.floor(start / 1000);
    const issued = await sessions.issue({ subject: 'alice', method: 'hotp', mfaTime, now: start, ttlMs: 12 * hour, maxPerSubject: 20 });
    rig.clock.advance(6 * hour);
    const later = rig.clock();
    const refreshed = await sessions.refresh(issued.token, 'alice', later, 12 * hour, 20);
    assert.ok(refreshed !== undefined);
    assert.notEqual(refreshed.token, issued.token);
    assert.equal(refreshed.record.mfaTime, mfaTime);
    assert.equal(refreshed.record.method, 'hotp');
    assert.equal(refreshed.record.expiresAt, mfaTime * 1000 + 12 * hour);
    assert.equal((await sessions.lookup(issued.token, 'alice', later)).ok, false);
    assert.equal(await sessions.refresh(refreshed.token, 'bob', later, 12 * hour, 20), undefined);
  });

  test('the in-process cache: revoking here ends a cached session at once; revoked elsewhere, it ends within cacheMs', async () => {
    const now = rig.clock();
    const here = createSessionStore(rig.store.ttl, { cacheMs: 200 });
    const elsewhere = createSessionStore(rig.store.ttl, { cacheMs: 200 });
    const a = await here.issue({ subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), now, ttlMs: hour, maxPerSubject: 20 });
    assert.equal((await here.lookup(a.token, 'alice', now)).ok, true);
    assert.equal(await here.revoke(a.token, 'alice', now), true);
    assert.equal((await here.lookup(a.token, 'alice', now)).ok, false, 'a revocation through this process is immediate');

    const b = await here.issue({ subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), now, ttlMs: hour, maxPerSubject: 20 });
    assert.equal((await here.lookup(b.token, 'alice', now)).ok, true);
    assert.equal(await elsewhere.revoke(b.token, 'alice', now), true);
    assert.equal((await here.lookup(b.token, 'alice', now)).ok, true, 'still cached here right after another process revoked it');
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.equal((await here.lookup(b.token, 'alice', now)).ok, false, 'gone once the cache entry ran out');
    // A cached session still expires by the injected clock, not by the cache's.
    const c = await here.issue({ subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), now, ttlMs: hour, maxPerSubject: 20 });
    assert.equal((await here.lookup(c.token, 'alice', now)).ok, true);
    assert.equal((await here.lookup(c.token, 'alice', now + hour)).ok, false);
  });

  test('read through: a revocation elsewhere is seen at once, and only a store read lets an answer be held for the cache lifetime', async () => {
    const now = rig.clock();
    const here = createSessionStore(rig.store.ttl, { cacheMs: 2_000 });
    const elsewhere = createSessionStore(rig.store.ttl, { cacheMs: 2_000 });
    const a = await here.issue({ subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), now, ttlMs: hour, maxPerSubject: 20 });
    const reading = here.lookup(a.token, 'alice', now);
    assert.ok(reading instanceof Promise, 'a store read is answered through a promise');
    const read = await reading;
    assert.ok(read.ok);
    assert.equal(read.holdUntil, now + 2_000, 'read from the store: held for the cache lifetime');
    const cached = here.lookup(a.token, 'alice', now + 500);
    assert.ok(!(cached instanceof Promise), 'a cached session is answered at once');
    assert.ok(cached.ok);
    assert.equal(cached.holdUntil, now + 500, 'from the cache: nothing beyond this request');
    const through = await here.lookup(a.token, 'alice', now + 500, true);
    assert.ok(through.ok);
    assert.equal(through.holdUntil, now + 2_500);

    assert.equal(await elsewhere.revoke(a.token, 'alice', now + 600), true);
    assert.equal((await here.lookup(a.token, 'alice', now + 700)).ok, true, 'this process still has it cached');
    assert.deepEqual(await here.lookup(a.token, 'alice', now + 700, true), { ok: false, logId: a.logId }, 'read through, the revocation is seen');

    const uncached = createSessionStore(rig.store.ttl, { cacheMs: 0 });
    const b = await uncached.issue({ subject: 'alice', method: 'totp', mfaTime: Math.floor(now / 1000), now, ttlMs: hour, maxPerSubject: 20 });
    const bRead = await uncached.lookup(b.token, 'alice', now, true);
    assert.equal(bRead.ok && bRead.holdUntil, now, 'without a cache, no answer may be held');
  });
});
