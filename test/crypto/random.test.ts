import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomToken } from '../../src/crypto/random.js';

describe('randomToken', () => {
  test('32 bytes come back as 43 base64url characters that decode to 32 bytes', () => {
    const token = randomToken(32);
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(Buffer.from(token, 'base64url').length, 32);
  });

  test('no token repeats across many refills of the pool', () => {
    // 4096-byte pool, 32 bytes a token: 20,000 tokens refill it about 156 times.
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) seen.add(randomToken(32));
    assert.equal(seen.size, 20_000);
  });

  test('sizes that do not divide the pool still get exactly their length', () => {
    for (let round = 0; round < 3; round++) {
      for (const size of [1, 7, 33, 100, 1000, 4095, 4096]) assert.equal(Buffer.from(randomToken(size), 'base64url').length, size);
    }
  });

  test('bytes are spread evenly over 0–255 (a stale or zeroed pool would not be)', () => {
    const counts = new Array<number>(256).fill(0);
    let total = 0;
    for (let i = 0; i < 8192; i++) {
      for (const byte of Buffer.from(randomToken(32), 'base64url')) counts[byte]!++;
      total += 32;
    }
    const expected = total / 256;
    const chiSquare = counts.reduce((sum, count) => sum + (count - expected) ** 2 / expected, 0);
    // 255 degrees of freedom: mean 255, standard deviation 22.6; 420 is beyond 7 of them.
    assert.ok(chiSquare < 420, `chi-square ${chiSquare.toFixed(1)} over 256 byte values`);
  });

  test('a size outside 1–4096 is refused', () => {
    for (const size of [0, -1, 1.5, 4097, Number.NaN]) assert.throws(() => randomToken(size), RangeError);
  });
});
