import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import type { OtpAlgorithm } from '../../src/config/types.js';
import { base32Decode, base32Encode } from '../../src/mfa/base32.js';
import { codeMatcher, isOtpShaped } from '../../src/mfa/code.js';
import { hotpCode, resyncHotp, verifyHotp } from '../../src/mfa/hotp.js';
import { findTotpDrift, totpCode, totpStep, verifyTotp } from '../../src/mfa/totp.js';
import { T0 } from '../support/clock.js';
import { oathHotp, oathHotpHex, oathTotp } from '../support/otp.js';

interface Vectors {
  rfc4226_hotp: { secret_ascii: string; secret_base32: string; digits: number; codes_by_counter: string[] };
  rfc6238_totp: { period: number; digits: number; secrets_ascii: Record<OtpAlgorithm, string>; vectors: ({ time: number } & Record<OtpAlgorithm, string>)[] };
}

const vectors = JSON.parse(readFileSync('/work/shared/source/otp-test-vectors.json', 'utf8')) as Vectors;
const ALGORITHMS: OtpAlgorithm[] = ['SHA1', 'SHA256', 'SHA512'];

describe('RFC test vectors', () => {
  test('RFC 4226 HOTP: counters 0-9', () => {
    const v = vectors.rfc4226_hotp;
    const secret = Buffer.from(v.secret_ascii, 'ascii');
    assert.deepEqual(base32Decode(v.secret_base32), secret);
    const codes = v.codes_by_counter.map((_, counter) => hotpCode(secret, counter, { algorithm: 'SHA1', digits: 6 }));
    assert.deepEqual(codes, v.codes_by_counter);
  });

  test('RFC 6238 TOTP: SHA1/SHA256/SHA512, 8 digits, every time in the table', () => {
    const v = vectors.rfc6238_totp;
    for (const algorithm of ALGORITHMS) {
      const secret = Buffer.from(v.secrets_ascii[algorithm], 'ascii');
      for (const row of v.vectors) {
        const step = totpStep(row.time * 1000, v.period);
        assert.equal(totpCode(secret, step, { algorithm, digits: 8, periodSeconds: 30 }), row[algorithm], `${algorithm} at ${row.time}`);
        const verified = verifyTotp({ secret, code: row[algorithm], nowMs: row.time * 1000, window: 0, algorithm, digits: 8, periodSeconds: 30 });
        assert.equal(verified.step, step);
      }
    }
  });
});

describe('against oathtool', () => {
  test('TOTP codes agree for each algorithm, 6 and 8 digits, 30 s and 60 s periods', () => {
    for (const algorithm of ALGORITHMS) {
      const secret = randomBytes(algorithm === 'SHA1' ? 20 : algorithm === 'SHA256' ? 32 : 64);
      const b32 = base32Encode(secret);
      for (const digits of [6, 8]) {
        for (const period of [30, 60]) {
          const at = T0 + 12_345_000;
          const expected = oathTotp(b32, at, { algorithm, digits, period });
          assert.equal(totpCode(secret, totpStep(at, period), { algorithm, digits, periodSeconds: period }), expected, `${algorithm}/${digits}/${period}`);
        }
      }
    }
  });

  test('HOTP codes agree (base32 and hex secret forms)', () => {
    const secret = randomBytes(20);
    for (const counter of [0, 1, 7, 1000, 2 ** 31 + 5]) {
      assert.equal(hotpCode(secret, counter, { algorithm: 'SHA1', digits: 6 }), oathHotp(base32Encode(secret), counter));
      assert.equal(hotpCode(secret, counter, { algorithm: 'SHA1', digits: 8 }), oathHotpHex(secret.toString('hex'), counter, 8));
    }
  });
});

describe('TOTP verification', () => {
  const secret = randomBytes(20);
  const b32 = base32Encode(secret);
  const params = { secret, algorithm: 'SHA1' as const, digits: 6, periodSeconds: 30 };

  test('accepts ±window steps and reports the matched step', () => {
    const now = T0 + 15_000;
    const step = totpStep(now, 30);
    for (const offset of [-1, 0, 1]) {
      const code = oathTotp(b32, now + offset * 30_000);
      assert.deepEqual(verifyTotp({ ...params, code, nowMs: now, window: 1 }), { step: step + offset });
    }
    const two = oathTotp(b32, now + 60_000);
    assert.equal(verifyTotp({ ...params, code: two, nowMs: now, window: 1 }).step, undefined);
    assert.equal(verifyTotp({ ...params, code: two, nowMs: now, window: 2 }).step, step + 2);
  });

  test('a code outside the window but within ±10 steps is not accepted; the drift scan of a failure names its offset', () => {
    const now = T0 + 15_000;
    const ahead = oathTotp(b32, now + 4 * 30_000);
    assert.deepEqual(verifyTotp({ ...params, code: ahead, nowMs: now, window: 1 }), {});
    assert.equal(findTotpDrift({ ...params, code: ahead, nowMs: now, window: 1 }), 4);
    const behind = oathTotp(b32, now - 10 * 30_000);
    assert.deepEqual(verifyTotp({ ...params, code: behind, nowMs: now, window: 1 }), {});
    assert.equal(findTotpDrift({ ...params, code: behind, nowMs: now, window: 1 }), -10);
    // Within the window is no drift; eleven steps away is neither accepted nor hinted (unless it collides with a nearer step by chance).
    assert.equal(findTotpDrift({ ...params, code: oathTotp(b32, now + 30_000), nowMs: now, window: 1 }), undefined);
    const far = oathTotp(b32, now - 11 * 30_000);
    assert.equal(verifyTotp({ ...params, code: far, nowMs: now, window: 1 }).step, undefined);
  });

  test('malformed input never matches, even with the right digits inside', () => {
    const now = T0 + 15_000;
    const code = oathTotp(b32, now);
    const arabicIndic = [...code].map((d) => String.fromCharCode(0x0660 + Number(d))).join('');
    const fullwidth = [...code].map((d) => String.fromCharCode(0xff10 + Number(d))).join('');
    for (const bad of [` ${code}`, `${code} `, `+${code}`, `${code.slice(0, 3)} ${code.slice(3)}`, arabicIndic, fullwidth, code.slice(0, 5), `${code}0`, `0${code}00`, '']) {
      assert.deepEqual(verifyTotp({ ...params, code: bad, nowMs: now, window: 1 }), {}, JSON.stringify(bad));
      assert.equal(findTotpDrift({ ...params, code: bad, nowMs: now, window: 1 }), undefined, JSON.stringify(bad));
    }
  });
});

describe('HOTP verification and resync', () => {
  const secret = randomBytes(20);
  const b32 = base32Encode(secret);
  const params = { secret, algorithm: 'SHA1' as const, digits: 6 };

  test('look-ahead window returns the matched counter', () => {
    assert.equal(verifyHotp({ ...params, code: oathHotp(b32, 10), counter: 10, lookAhead: 5 }), 10);
    assert.equal(verifyHotp({ ...params, code: oathHotp(b32, 15), counter: 10, lookAhead: 5 }), 15);
    assert.equal(verifyHotp({ ...params, code: oathHotp(b32, 16), counter: 10, lookAhead: 5 }), undefined);
    assert.equal(verifyHotp({ ...params, code: oathHotp(b32, 9), counter: 10, lookAhead: 5 }), undefined);
  });

  test('resync with two consecutive codes far ahead; non-consecutive codes fail', () => {
    const c1 = oathHotp(b32, 150);
    const c2 = oathHotp(b32, 151);
    assert.equal(resyncHotp({ ...params, counter: 3, code1: c1, code2: c2, searchWindow: 200 }), 152);
    assert.equal(resyncHotp({ ...params, counter: 3, code1: c1, code2: oathHotp(b32, 152), searchWindow: 200 }), undefined);
    assert.equal(resyncHotp({ ...params, counter: 3, code1: c2, code2: c1, searchWindow: 200 }), undefined);
    assert.equal(resyncHotp({ ...params, counter: 3, code1: c1, code2: c2, searchWindow: 100 }), undefined);
  });
});

describe('code shape and helpers', () => {
  test('exactly N ASCII digits', () => {
    assert.equal(isOtpShaped('123456', 6), true);
    assert.equal(isOtpShaped('12345678', 8), true);
    for (const bad of ['12345', '1234567', '123456789', '+12345', ' 12345', '12345a', '١٢٣٤٥٦', '１２３４５６']) assert.equal(isOtpShaped(bad, 6), false, bad);
  });

  test('base32 round trip and strict decoding', () => {
    for (let n = 1; n < 40; n++) {
      const bytes = randomBytes(n);
      assert.deepEqual(base32Decode(base32Encode(bytes)), bytes);
    }
    assert.deepEqual(base32Decode('gezd gnbv-gy3t qojq===='), base32Decode('GEZDGNBVGY3TQOJQ'));
    assert.throws(() => base32Decode('GEZ1'), { name: 'MfaError', code: 'ERR_MFA_INVALID_INPUT' });
    assert.throws(() => base32Decode(''), { name: 'MfaError', code: 'ERR_MFA_INVALID_INPUT' });
  });

  test('constant-time comparison handles unequal lengths', () => {
    assert.equal(codeMatcher('123456').matches('123456'), true);
    assert.equal(codeMatcher('123456').matches('1234567'), false);
    assert.equal(codeMatcher('').matches('123456'), false);
  });
});
