import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDemoKeyFile, generateKeyLine, KeyringError, loadKeyring, rotateKeyFile, type Keyring } from '../../src/crypto/keyring.js';
import { createLogger } from '../../src/log/logger.js';
import { createMetrics } from '../../src/metrics/metrics.js';

const DAY = 86_400_000;
const ROTATION = 90 * DAY;
const KEY_A = randomBytes(32).toString('base64');
const KEY_B = randomBytes(32).toString('base64');
const KEY_C = randomBytes(32).toString('base64');
const AAD = { subject: 'alice', factorId: 'f-1' };

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'mfa-keyring-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function keyFile(text: string): string {
  const path = join(dir, `keys-${++n}`);
  writeFileSync(path, text, { mode: 0o600 });
  return path;
}

function captureLogger() {
  const lines: string[] = [];
  const logger = createLogger({ level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  return { logger, lines, records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

/** Flips one bit of the decoded blob at `index` (negative counts from the end). */
function flip(blob: string, index: number): string {
  const raw = Buffer.from(blob, 'base64url');
  const i = index < 0 ? raw.length + index : index;
  raw[i]! ^= 0x01;
  return raw.toString('base64url');
}

function assertDecryptFails(keyring: Keyring, sealed: { kid: string; blob: string }, aad = AAD): void {
  assert.throws(() => keyring.open(sealed, aad), (err: unknown) => {
    assert.ok(KeyringError.is(err));
    assert.equal(err.code, 'ERR_KEYRING_DECRYPT_FAILED');
    assert.equal(err.message, 'the secret cannot be decrypted');
    return true;
  });
}

describe('keyring: seal and open', () => {
  let keyring: Keyring;
  before(() => {
    keyring = loadKeyring({ file: keyFile(`k1 ${KEY_A} 2026-11-01 primary\n`), rotationMs: ROTATION });
  });

  test('round trip; blob is base64url of nonce ‖ ciphertext ‖ tag; every seal uses a fresh nonce', () => {
    const plaintext = Buffer.from('JBSWY3DPEHPK3PXP');
    const sealed = keyring.seal(plaintext, AAD);
    assert.equal(sealed.kid, 'k1');
    assert.match(sealed.blob, /^[A-Za-z0-9_-]+$/);
    assert.equal(Buffer.from(sealed.blob, 'base64url').length, 12 + plaintext.length + 16);
    assert.ok(!sealed.blob.includes(plaintext.toString('base64url')));
    assert.deepEqual(keyring.open(sealed, AAD), plaintext);
    const again = keyring.seal(plaintext, AAD);
    assert.notEqual(again.blob, sealed.blob);
    assert.notDeepEqual(Buffer.from(again.blob, 'base64url').subarray(0, 12), Buffer.from(sealed.blob, 'base64url').subarray(0, 12));
    assert.deepEqual(keyring.open(again, AAD), plaintext);
  });

  test('a flipped bit in nonce, ciphertext or tag → decrypt_failed', () => {
    const sealed = keyring.seal(Buffer.from('secret-bytes-0123456789'), AAD);
    for (const index of [0, 11, 12, 20, -17, -1]) assertDecryptFails(keyring, { kid: 'k1', blob: flip(sealed.blob, index) });
  });

  test('truncated, extended, empty or non-base64url blobs → decrypt_failed', () => {
    const sealed = keyring.seal(Buffer.from('secret'), AAD);
    const raw = Buffer.from(sealed.blob, 'base64url');
    for (const blob of [
      raw.subarray(0, raw.length - 1).toString('base64url'),
      Buffer.concat([raw, Buffer.from([0])]).toString('base64url'),
      raw.subarray(0, 27).toString('base64url'),
      '',
      `${sealed.blob}=`,
      sealed.blob.replace(/[A-Za-z]/, '+'),
    ]) {
      assertDecryptFails(keyring, { kid: 'k1', blob });
    }
  });

  test('a blob moved to another subject or factor → decrypt_failed (AAD binds the row)', () => {
    const sealed = keyring.seal(Buffer.from('secret'), AAD);
    assertDecryptFails(keyring, sealed, { subject: 'bob', factorId: 'f-1' });
    assertDecryptFails(keyring, sealed, { subject: 'alice', factorId: 'f-2' });
    // The length prefixes keep ("ab","c") and ("a","bc") apart.
    const split = keyring.seal(Buffer.from('secret'), { subject: 'ab', factorId: 'c' });
    assertDecryptFails(keyring, split, { subject: 'a', factorId: 'bc' });
    assert.deepEqual(keyring.open(split, { subject: 'ab', factorId: 'c' }), Buffer.from('secret'));
  });

  test('an unknown kid or a malformed sealed value → decrypt_failed', () => {
    const sealed = keyring.seal(Buffer.from('secret'), AAD);
    assertDecryptFails(keyring, { kid: 'k9', blob: sealed.blob });
    assertDecryptFails(keyring, { kid: '', blob: sealed.blob });
    assertDecryptFails(keyring, { kid: 'k1', blob: 42 } as unknown as { kid: string; blob: string });
  });

  test('a bad aad or plaintext is a programming error: invalid_option', () => {
    assert.throws(() => keyring.seal(Buffer.from('x'), { subject: 'a' } as unknown as typeof AAD), { name: 'KeyringError', code: 'ERR_KEYRING_INVALID_OPTION' });
    assert.throws(() => keyring.seal('x' as unknown as Buffer, AAD), { name: 'KeyringError', code: 'ERR_KEYRING_INVALID_OPTION' });
  });
});

describe('keyring: several keys', () => {
  test('two keys, one primary: seals with the primary, opens with either; relabelled kid fails', () => {
    const oldOnly = loadKeyring({ file: keyFile(`k1 ${KEY_A} 2026-08-01 primary\n`), rotationMs: ROTATION });
    const oldSealed = oldOnly.seal(Buffer.from('old secret'), AAD);

    const both = loadKeyring({ file: keyFile(`# keys\n\nk1 ${KEY_A} 2026-08-01\nk2 ${KEY_B} 2026-11-01 primary\n`), rotationMs: ROTATION });
    assert.equal(both.primaryKid, 'k2');
    assert.deepEqual(both.kids(), ['k2', 'k1']);
    const newSealed = both.seal(Buffer.from('new secret'), AAD);
    assert.equal(newSealed.kid, 'k2');
    assert.deepEqual(both.open(oldSealed, AAD), Buffer.from('old secret'));
    assert.deepEqual(both.open(newSealed, AAD), Buffer.from('new secret'));
    // The kid is in the AAD: claiming the other key fails even though that key exists.
    assertDecryptFails(both, { kid: 'k1', blob: newSealed.blob });
    assertDecryptFails(both, { kid: 'k2', blob: oldSealed.blob });
    // The old keyring does not know k2.
    assertDecryptFails(oldOnly, newSealed);
  });

  test('wrong key file (same kid, other key) → decrypt_failed', () => {
    const right = loadKeyring({ file: keyFile(`k1 ${KEY_A} 2026-11-01 primary\n`), rotationMs: ROTATION });
    const wrong = loadKeyring({ file: keyFile(`k1 ${KEY_C} 2026-11-01 primary\n`), rotationMs: ROTATION });
    assertDecryptFails(wrong, right.seal(Buffer.from('secret'), AAD));
  });

  test('keys from the environment variable, newline or ";" separated, merged with the file', () => {
    const name = 'MFA_TEST_KEYS_MERGE';
    process.env[name] = ` k2 ${KEY_B} 2026-10-01 ; k3 ${KEY_C} 2026-11-01 primary\n# note\n`;
    try {
      const fileOnly = loadKeyring({ file: keyFile(`k1 ${KEY_A} 2026-08-01 primary\n`), rotationMs: ROTATION });
      const sealed = fileOnly.seal(Buffer.from('s'), AAD);
      const merged = loadKeyring({ file: keyFile(`k1 ${KEY_A} 2026-08-01\n`), env: name, rotationMs: ROTATION });
      assert.equal(merged.primaryKid, 'k3');
      assert.deepEqual(merged.kids(), ['k3', 'k1', 'k2']);
      assert.deepEqual(merged.open(sealed, AAD), Buffer.from('s'));
      const envOnly = loadKeyring({ env: name, rotationMs: ROTATION });
      assert.deepEqual(envOnly.kids(), ['k3', 'k2']);
    } finally {
      delete process.env[name];
    }
  });
});

describe('keyring: refusing to start', () => {
  const missing = (message: string) => ({ name: 'KeyringError', code: 'ERR_KEYRING_MISSING', message });

  test('no key at all → keys_missing', () => {
    const absent = join(dir, 'does-not-exist');
    assert.throws(() => loadKeyring({ file: absent, rotationMs: ROTATION }), missing(`key file ${absent} does not exist; the gateway does not start without an encryption key: create one with \`mfa-gateway keys init --file ${absent}\` (see docs/keys.md)`));
    const empty = keyFile('# only a comment\n\n   \n');
    assert.throws(() => loadKeyring({ file: empty, rotationMs: ROTATION }), missing(`no encryption key found in key file ${empty}; the gateway does not start without one: delete the empty key file and create one with \`mfa-gateway keys init --file ${empty}\` (see docs/keys.md)`));
    delete process.env.MFA_TEST_KEYS_UNSET;
    assert.throws(() => loadKeyring({ env: 'MFA_TEST_KEYS_UNSET', rotationMs: ROTATION }), missing('no encryption key found in key variable MFA_TEST_KEYS_UNSET; the gateway does not start without one: set MFA_TEST_KEYS_UNSET to key lines (see docs/keys.md)'));
    assert.throws(
      () => loadKeyring({ file: empty, env: 'MFA_TEST_KEYS_UNSET', rotationMs: ROTATION }),
      missing(`no encryption key found in key file ${empty} and key variable MFA_TEST_KEYS_UNSET; the gateway does not start without one: delete the empty key file and create one with \`mfa-gateway keys init --file ${empty}\` (see docs/keys.md)`),
    );
    assert.throws(() => loadKeyring({ rotationMs: ROTATION }), missing('no key source configured (keys.file or keys.env); the gateway does not start without an encryption key: set keys.file and create one with `mfa-gateway keys init --file PATH` (see docs/keys.md)'));
  });

  test('malformed lines name the line number and never the key material', () => {
    const short = randomBytes(31).toString('base64');
    const long = randomBytes(33).toString('base64');
    const urlsafe = Buffer.from(KEY_A, 'base64').toString('base64url');
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
    // The last character of 32 bytes carries 2 unused bits; setting one makes a second spelling of a key.
    const badPadding = `${KEY_B.slice(0, 42)}${alphabet[alphabet.indexOf(KEY_B[42]!) | 1]}=`;
    const keyErr = 'the key must be standard base64 of exactly 32 bytes (44 characters ending in "=")';
    const cases: [string, number, string][] = [
      [`k1 ${short} 2026-11-01 primary`, 3, keyErr],
      [`k1 ${long} 2026-11-01 primary`, 3, keyErr],
      [`k1 ${urlsafe} 2026-11-01 primary`, 3, keyErr],
      [`k1 ${badPadding} 2026-11-01 primary`, 3, keyErr],
      [`${KEY_A} k1 2026-11-01 primary`, 3, 'the key id must be 1-32 characters of A-Z a-z 0-9 _ -'],
      [`k1 ${KEY_A} 2026-02-30 primary`, 3, 'the created date must be a valid YYYY-MM-DD'],
      [`k1 ${KEY_A} 01/11/2026 primary`, 3, 'the created date must be a valid YYYY-MM-DD'],
      [`k1 ${KEY_A} 2026-11-01 primry`, 3, 'the fourth field may only be "primary"'],
      [`k1 ${KEY_A}`, 3, 'expected "<kid> <base64 key> <YYYY-MM-DD> [primary]" (2 fields found)'],
      [`k1 ${KEY_A} 2026-11-01 primary extra`, 3, 'expected "<kid> <base64 key> <YYYY-MM-DD> [primary]" (5 fields found)'],
      [`${'k'.repeat(33)} ${KEY_A} 2026-11-01 primary`, 3, 'the key id must be 1-32 characters of A-Z a-z 0-9 _ -'],
    ];
    for (const [line, number, reason] of cases) {
      const path = keyFile(`# header\nk0 ${KEY_C} 2026-01-01\n${line}\n`);
      assert.throws(
        () => loadKeyring({ file: path, rotationMs: ROTATION }),
        (err: unknown) => {
          assert.ok(KeyringError.is(err));
          assert.equal(err.code, 'ERR_KEYRING_MALFORMED');
          assert.equal(err.message, `key file ${path} line ${number}: ${reason}`);
          for (const secret of [KEY_A, KEY_C, short, long, urlsafe, badPadding]) assert.ok(!err.message.includes(secret.slice(0, 12)));
          return true;
        },
      );
    }
  });

  test('set rules: duplicate kid, no primary, two primaries (across file and variable too)', () => {
    const dup = keyFile(`k1 ${KEY_A} 2026-01-01\n\nk1 ${KEY_B} 2026-02-01 primary\n`);
    assert.throws(() => loadKeyring({ file: dup, rotationMs: ROTATION }), {
      code: 'ERR_KEYRING_MALFORMED',
      message: `key file ${dup} line 3: key id "k1" is already used (key file ${dup} line 1)`,
    });
    const none = keyFile(`k1 ${KEY_A} 2026-01-01\nk2 ${KEY_B} 2026-02-01\n`);
    assert.throws(() => loadKeyring({ file: none, rotationMs: ROTATION }), { code: 'ERR_KEYRING_MALFORMED', message: 'no key is marked "primary" (exactly one must be)' });
    const two = keyFile(`k1 ${KEY_A} 2026-01-01 primary\nk2 ${KEY_B} 2026-02-01 primary\n`);
    assert.throws(() => loadKeyring({ file: two, rotationMs: ROTATION }), {
      code: 'ERR_KEYRING_MALFORMED',
      message: `more than one key is marked "primary": key file ${two} line 1, key file ${two} line 2`,
    });
    const name = 'MFA_TEST_KEYS_DUP';
    process.env[name] = `k9 ${KEY_C} 2026-03-01;k1 ${KEY_B} 2026-02-01 primary`;
    try {
      const file = keyFile(`k1 ${KEY_A} 2026-01-01\n`);
      assert.throws(() => loadKeyring({ file, env: name, rotationMs: ROTATION }), {
        code: 'ERR_KEYRING_MALFORMED',
        message: `key variable ${name} entry 2: key id "k1" is already used (key file ${file} line 1)`,
      });
      process.env[name] = `k9 ${KEY_C} 2026-03-01;k8 ${KEY_A.slice(1)} 2026-02-01 primary`;
      assert.throws(() => loadKeyring({ env: name, rotationMs: ROTATION }), (err: unknown) => {
        assert.ok(KeyringError.is(err));
        assert.equal(err.message, `key variable ${name} entry 2: the key must be standard base64 of exactly 32 bytes (44 characters ending in "=")`);
        return true;
      });
    } finally {
      delete process.env[name];
    }
  });

  test('bad options fail at creation with the option named', () => {
    const file = keyFile(`k1 ${KEY_A} 2026-11-01 primary\n`);
    assert.throws(() => loadKeyring({ file, rotationMs: 0 }), { code: 'ERR_KEYRING_INVALID_OPTION', message: 'option "rotationMs" must be a positive integer of milliseconds' });
    assert.throws(() => loadKeyring({ file, env: 'NOT-A-NAME', rotationMs: ROTATION }), { code: 'ERR_KEYRING_INVALID_OPTION', message: 'option "env" must be an environment variable name' });
    assert.throws(() => loadKeyring({ file: '', rotationMs: ROTATION }), { code: 'ERR_KEYRING_INVALID_OPTION', message: 'option "file" must be a non-empty path' });
  });
});

describe('keyring: keyed hashes', () => {
  test('hmac = kid$hex(HMAC-SHA256 under HKDF(key, purpose)); per purpose and per kid', () => {
    const keyring = loadKeyring({ file: keyFile(`old ${KEY_A} 2026-01-01\nnew ${KEY_B} 2026-11-01 primary\n`), rotationMs: ROTATION });
    const expected = (key: string, purpose: string, data: string) => {
      const sub = Buffer.from(hkdfSync('sha256', Buffer.from(key, 'base64'), Buffer.from('mfa-gateway/hmac/v1'), Buffer.from(purpose), 32));
      return createHmac('sha256', sub).update(data).digest('hex');
    };
    const h = keyring.hmac('recovery-code', 'alice:ABCD-EFGH');
    assert.equal(h, `new$${expected(KEY_B, 'recovery-code', 'alice:ABCD-EFGH')}`);
    assert.equal(keyring.hmac('recovery-code', 'alice:ABCD-EFGH'), h);
    assert.equal(keyring.hmac('recovery-code', 'alice:ABCD-EFGH', 'old'), `old$${expected(KEY_A, 'recovery-code', 'alice:ABCD-EFGH')}`);
    assert.notEqual(keyring.hmac('other-purpose', 'alice:ABCD-EFGH'), h);
    assert.throws(() => keyring.hmac('recovery-code', 'x', 'nope'), { code: 'ERR_KEYRING_UNKNOWN_KID' });
    assert.throws(() => keyring.hmac('', 'x'), { code: 'ERR_KEYRING_INVALID_OPTION' });
  });
});

describe('keyring: key age', () => {
  const created = Date.UTC(2026, 0, 1);

  test('warns once when the primary is older than the rotation period; gauges per kid', async () => {
    const file = keyFile(`k0 ${KEY_A} 2025-06-01\nk1 ${KEY_B} 2026-01-01 primary\n`);
    const log = captureLogger();
    const metrics = createMetrics();
    const now = created + 91 * DAY;
    const keyring = loadKeyring({ file, rotationMs: ROTATION, clock: () => now, logger: log.logger, metrics });
    const warnings = log.records().filter((r) => r.event === 'key_rotation_due');
    assert.equal(warnings.length, 1);
    assert.deepEqual(
      { level: warnings[0]!.level, kid: warnings[0]!.kid, age_days: warnings[0]!.age_days, rotation_days: warnings[0]!.rotation_days },
      { level: 40, kid: 'k1', age_days: 91, rotation_days: 90 },
    );
    const gauge = await metrics.keyAge.get();
    assert.deepEqual(
      gauge.values.map((v) => ({ labels: v.labels, value: v.value })),
      [
        { labels: { kid: 'k1', primary: 'true' }, value: (91 * DAY) / 1000 },
        { labels: { kid: 'k0', primary: 'false' }, value: (now - Date.UTC(2025, 5, 1)) / 1000 },
      ],
    );
    assert.deepEqual(keyring.keyAges(created - DAY), [
      { kid: 'k1', primary: true, createdAt: created, ageMs: 0 },
      { kid: 'k0', primary: false, createdAt: Date.UTC(2025, 5, 1), ageMs: Date.UTC(2025, 11, 31) - Date.UTC(2025, 5, 1) },
    ]);
    for (const line of log.lines) for (const key of [KEY_A, KEY_B]) assert.ok(!line.includes(key) && !line.includes(key.slice(0, 16)));
  });

  test('no warning inside the rotation period, nor for an old non-primary key', () => {
    const log = captureLogger();
    loadKeyring({ file: keyFile(`k0 ${KEY_A} 2020-01-01\nk1 ${KEY_B} 2026-01-01 primary\n`), rotationMs: ROTATION, clock: () => created + 89 * DAY, logger: log.logger });
    assert.deepEqual(log.records(), []);
  });

  test('a key file readable by others is warned about', () => {
    const file = keyFile(`k1 ${KEY_A} 2026-01-01 primary\n`);
    chmodSync(file, 0o644);
    const log = captureLogger();
    loadKeyring({ file, rotationMs: ROTATION, clock: () => created, logger: log.logger });
    assert.deepEqual(log.records().map((r) => [r.event, r.file]), [['key_file_permissions', file]]);
  });
});

describe('key files: generate, rotate, demo', () => {
  test('generateKeyLine: kid, base64 of 32 random bytes, UTC date, optional primary', () => {
    const line = generateKeyLine('k-1', Date.UTC(2026, 10, 28, 23, 59));
    assert.match(line, /^k-1 [A-Za-z0-9+/]{43}= 2026-11-28$/);
    assert.equal(Buffer.from(line.split(' ')[1]!, 'base64').length, 32);
    assert.match(generateKeyLine('k2', 0, true), /^k2 \S{44} 1970-01-01 primary$/);
    assert.notEqual(generateKeyLine('k', 0).split(' ')[1], generateKeyLine('k', 0).split(' ')[1]);
    assert.throws(() => generateKeyLine('bad kid', 0), { code: 'ERR_KEYRING_INVALID_OPTION' });
  });

  test('rotateKeyFile appends a new primary, keeps the old keys and comments, mode 0600', () => {
    const file = keyFile(`# production keys\nk1 ${KEY_A} 2026-01-01 primary\n`);
    const before = loadKeyring({ file, rotationMs: ROTATION });
    const sealed = before.seal(Buffer.from('secret'), AAD);
    const now = Date.UTC(2026, 3, 2, 12);
    assert.deepEqual(rotateKeyFile(file, () => now), { kid: 'k20260402', previousKid: 'k1' });
    assert.deepEqual(rotateKeyFile(file, () => now), { kid: 'k20260402-2', previousKid: 'k20260402' });
    const lines = readFileSync(file, 'utf8').split('\n');
    assert.equal(lines.length, 5);
    assert.deepEqual([lines[0], lines[1], lines[4]], ['# production keys', `k1 ${KEY_A} 2026-01-01`, '']);
    assert.match(lines[2]!, /^k20260402 \S{44} 2026-04-02$/);
    assert.match(lines[3]!, /^k20260402-2 \S{44} 2026-04-02 primary$/);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const after = loadKeyring({ file, rotationMs: ROTATION });
    assert.equal(after.primaryKid, 'k20260402-2');
    assert.deepEqual(after.kids(), ['k20260402-2', 'k1', 'k20260402']);
    assert.deepEqual(after.open(sealed, AAD), Buffer.from('secret'));
    assert.throws(() => rotateKeyFile(join(dir, 'absent'), () => now), { code: 'ERR_KEYRING_MISSING' });
    const broken = keyFile(`k1 ${KEY_A} 2026-01-01\n`);
    assert.throws(() => rotateKeyFile(broken, () => now), { code: 'ERR_KEYRING_MALFORMED' });
    assert.equal(readFileSync(broken, 'utf8'), `k1 ${KEY_A} 2026-01-01\n`);
  });

  test('ensureDemoKeyFile creates one primary key (mode 0600, parent dir) and never overwrites', () => {
    const file = join(dir, 'demo', 'nested', 'keys');
    const now = Date.UTC(2026, 10, 28);
    assert.equal(ensureDemoKeyFile(file, () => now), true);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const text = readFileSync(file, 'utf8');
    assert.match(text, /\nk20261128 [A-Za-z0-9+/]{43}= 2026-11-28 primary\n$/);
    assert.equal(ensureDemoKeyFile(file, () => now + DAY), false);
    assert.equal(readFileSync(file, 'utf8'), text);
    const keyring = loadKeyring({ file, rotationMs: ROTATION });
    assert.equal(keyring.primaryKid, 'k20261128');
  });
});

