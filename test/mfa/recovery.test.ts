import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { loadKeyring } from '../../src/crypto/keyring.js';
import { generateRecoveryCodes, normalizeRecoveryCode, RECOVERY_ALPHABET, recoveryHash, recoveryHashCandidates } from '../../src/mfa/recovery.js';
import { writeKeyFile } from '../support/fixture.js';
import { createRig } from './support.js';
import { join } from 'node:path';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';

describe('recovery codes', () => {
  test('10 distinct codes xxxx-xxxx-xxxx from a 32-character unambiguous alphabet (60 bits)', () => {
    assert.equal(new Set(RECOVERY_ALPHABET).size, 32);
    for (const ch of 'ilou') assert.ok(!RECOVERY_ALPHABET.includes(ch));
    const codes = generateRecoveryCodes(10);
    assert.equal(new Set(codes).size, 10);
    for (const code of codes) assert.match(code, /^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$/);
    assert.ok(12 * Math.log2(RECOVERY_ALPHABET.length) >= 60);
  });

  test('accepted case-insensitively, with or without dashes, look-alikes folded; junk refused', () => {
    assert.equal(normalizeRecoveryCode('ab2c-d3ef-9gh0'), 'ab2cd3ef9gh0');
    assert.equal(normalizeRecoveryCode('AB2CD3EF9GH0'), 'ab2cd3ef9gh0');
    assert.equal(normalizeRecoveryCode('AB2C-D3EF-9GHO'), 'ab2cd3ef9gh0');
    assert.equal(normalizeRecoveryCode('1l1i-0000-0000'), '111100000000');
    for (const bad of ['ab2c-d3ef-9gh', 'ab2c-d3ef-9gh00', 'ab2c d3ef 9gh0', 'ab2c-d3ef-9gu0', '+b2c-d3ef-9gh0', 'ａb2c-d3ef-9gh0', '']) {
      assert.equal(normalizeRecoveryCode(bad), undefined, bad);
    }
  });

  describe('keyed hashes', () => {
    const rig = createRig();
    after(() => rig.close());

    test('hash is kid$hex, bound to the subject; every kid is tried after rotation', () => {
      const h = recoveryHash(rig.keyring, 'alice', 'ab2cd3ef9gh0');
      assert.match(h, /^k1\$[0-9a-f]{64}$/);
      assert.notEqual(h, recoveryHash(rig.keyring, 'bob', 'ab2cd3ef9gh0'));
      // A second keyring with a new primary k2 and the old k1: the old hash is still among the candidates.
      const file = join(rig.dir, 'keys2');
      writeKeyFile(file, 'k2');
      const old = readFileSync(rig.keyFile, 'utf8').replace(' primary', '');
      appendFileSync(file, old);
      const rotated = loadKeyring({ file, rotationMs: 90 * 86_400_000, clock: rig.clock });
      const candidates = recoveryHashCandidates(rotated, 'alice', 'ab2cd3ef9gh0');
      assert.equal(candidates.length, 2);
      assert.match(candidates[0]!, /^k2\$/);
      assert.equal(candidates[1], h);
      writeFileSync(file, '');
    });
  });
});
