import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';

/**
 * The least work a fresh X-MFA-Token verification can do on Node, each step measured on its own:
 * the three HMACs of the ±1 window, opening the AES-256-GCM sealed secret, reading the user's
 * factors, the replay record (read-modify-write in one SQLite transaction, WAL + synchronous=NORMAL,
 * as the gateway's store), a new session (random token, SHA-256, insert). Added to the minimal
 * undici proxy's cost per request it bounds how many verifications/s one core can do here.
 */

export interface FloorStep {
  readonly name: string;
  readonly micros: number;
}

/** Mean µs of each step over 20,000 verifications (after 2,000 not counted). */
export function measureVerificationFloor(): FloorStep[] {
  const dir = mkdtempSync(join(tmpdir(), 'mfa-floor-'));
  const db = new Database(join(dir, 'floor.db'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    db.exec(`CREATE TABLE factors (id TEXT PRIMARY KEY, subject TEXT NOT NULL, secret TEXT NOT NULL, status TEXT NOT NULL);
             CREATE INDEX factors_subject ON factors(subject);
             CREATE TABLE ttl (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL);`);
    const insertFactor = db.prepare('INSERT INTO factors VALUES (?, ?, ?, ?)');
    db.transaction(() => {
      for (let i = 0; i < 20_000; i++) insertFactor.run(`f${i}`, `user${i}`, randomBytes(60).toString('base64url'), 'active');
    })();
    const listFactors = db.prepare('SELECT * FROM factors WHERE subject = ?');
    const ttlGet = db.prepare('SELECT value FROM ttl WHERE key = ? AND expires_at > ?');
    const ttlUpsert = db.prepare('INSERT INTO ttl (key, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at');
    const replay = db.transaction((key: string, step: number, now: number) => {
      const row = ttlGet.get(key, now) as { value: string } | undefined;
      const last = row === undefined ? -1 : (JSON.parse(row.value) as { step: number }).step;
      if (step > last) ttlUpsert.run(key, JSON.stringify({ step, keepUntil: now + 3_600_000 }), now + 3_600_000);
    });

    const [secret, key, nonce, aad] = [randomBytes(20), randomBytes(32), randomBytes(12), Buffer.from('user|factor')];
    const cipher = createCipheriv('aes-256-gcm', key, nonce).setAAD(aad);
    const sealed = Buffer.concat([cipher.update(secret), cipher.final()]);
    const tag = cipher.getAuthTag();
    const counter = Buffer.alloc(8);

    // One verification after another, as the gateway does them, each step timed on its own:
    // the WAL's checkpoints land in whichever write triggers them, as they would in the gateway.
    const names = [
      '3 × HMAC-SHA1 (TOTP ±1 window)',
      'AES-256-GCM open of the factor secret',
      "SQLite: read the user's factors",
      'SQLite: replay record (read-modify-write transaction)',
      'session: 32 random bytes, SHA-256, SQLite insert',
    ];
    const totals = names.map(() => 0n);
    const [verifications, warm] = [20_000, 2_000];
    for (let i = 0; i < warm + verifications; i++) {
      const user = i % 20_000;
      const marks = [process.hrtime.bigint()];
      for (let k = 0; k < 3; k++) {
        counter.writeUInt32BE(i + k, 4);
        createHmac('sha1', secret).update(counter).digest();
      }
      marks.push(process.hrtime.bigint());
      const d = createDecipheriv('aes-256-gcm', key, nonce).setAAD(aad).setAuthTag(tag);
      Buffer.concat([d.update(sealed), d.final()]);
      marks.push(process.hrtime.bigint());
      listFactors.all(`user${user}`);
      marks.push(process.hrtime.bigint());
      replay(`otp-step:f${user}`, 1000 + i, Date.now());
      marks.push(process.hrtime.bigint());
      const token = randomBytes(32).toString('base64url');
      ttlUpsert.run(`session:${createHash('sha256').update(token).digest('hex')}`, JSON.stringify({ subject: `user${user}`, mfa: 'totp', at: Date.now() }), Date.now() + 43_200_000);
      marks.push(process.hrtime.bigint());
      if (i >= warm) for (let k = 0; k < names.length; k++) totals[k]! += marks[k + 1]! - marks[k]!;
    }
    return names.map((name, k) => ({ name, micros: Number(totals[k]!) / verifications / 1000 }));
  } finally {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
