import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { backoffDelay, parseBearerChallenge, retryAfterMs } from '../../src/client/index.js';
import { MFA_CHALLENGE } from '../doors/support.js';
import type { ProblemCode as ClientProblemCode } from '../../src/client/index.js';
import type { ProblemCode as GatewayProblemCode } from '../../src/errors/problems.js';

/** The client's pure parts, and the rule that keeps it usable in a browser. */

describe('parseBearerChallenge (RFC 6750 / RFC 9470 auth-params)', () => {
  test('the gateway\'s own challenge, as it sends it', () => {
    assert.deepEqual(parseBearerChallenge(MFA_CHALLENGE), {
      error: 'insufficient_user_authentication',
      errorDescription: 'a second factor is required for this route',
      maxAge: 43200,
      acrValues: undefined,
      mfaMethods: undefined,
      scope: undefined,
    });
  });

  test('quoted escapes, mfa_methods and scope lists, other schemes beside it, any case of the names', () => {
    const field = 'Basic realm="x", Newauth abc==, BEARER Error="insufficient_user_authentication", error_description="say \\"hi\\", then go", MFA_METHODS="totp recovery", max_age=300, scope="a b"';
    assert.deepEqual(parseBearerChallenge(field), {
      error: 'insufficient_user_authentication',
      errorDescription: 'say "hi", then go',
      maxAge: 300,
      acrValues: undefined,
      mfaMethods: ['totp', 'recovery'],
      scope: ['a', 'b'],
    });
  });

  test('no Bearer challenge, or a malformed field, gives undefined rather than a guess', () => {
    for (const field of [null, undefined, '', 'Basic realm="x"', 'Bearer error="a", error="b"', 'Bearer error="unterminated', 'Bearer error=a b=c', '"quoted-scheme"']) {
      assert.equal(parseBearerChallenge(field), undefined, String(field));
    }
    assert.equal(parseBearerChallenge('Bearer max_age=-5')?.maxAge, undefined);
    assert.equal(parseBearerChallenge('Bearer max_age="1e3"')?.maxAge, undefined);
  });
});

describe('backoffDelay and retryAfterMs', () => {
  test('1 s × 2 with ±500 ms: random 0 is −500 ms, 0.5 none, just under 1 is +500 ms', () => {
    assert.deepEqual([1, 2, 3].map((n) => backoffDelay(n, 0.5)), [1_000, 2_000, 4_000]);
    assert.deepEqual([1, 2, 3].map((n) => backoffDelay(n, 0)), [500, 1_500, 3_500]);
    assert.deepEqual([1, 2, 3].map((n) => backoffDelay(n, 0.999999)), [1_500, 2_500, 4_500]);
    assert.equal(backoffDelay(1, 0, { initialMs: 100, multiplier: 2, jitterMs: 500 }), 0, 'never negative');
  });

  test('delay-seconds, IMF-fixdate (past dates are 0), anything else is unreadable', () => {
    const now = Date.UTC(2026, 0, 1, 0, 0, 0);
    assert.equal(retryAfterMs('30', now), 30_000);
    assert.equal(retryAfterMs(' 0 ', now), 0);
    assert.equal(retryAfterMs('Thu, 01 Jan 2026 00:00:07 GMT', now), 7_000);
    assert.equal(retryAfterMs('Wed, 31 Dec 2025 23:59:00 GMT', now), 0);
    for (const bad of [null, '', '-1', '1.5', '1e3', 'Thursday, 01-Jan-26 00:00:07 GMT', 'soon', '9999999999']) assert.equal(retryAfterMs(bad, now), undefined, String(bad));
  });
});

// src/client keeps its own copy of the gateway's problem codes (it imports nothing outside itself);
// these two lines stop compiling when the copies drift: every gateway code is one the client names,
// and every name the client knows besides any string is the gateway's.
type Named<C> = C extends unknown ? (string extends C ? never : C) : never;
type KnownClientCode = Named<ClientProblemCode>;
const gatewayCodesAreKnown: GatewayProblemCode extends KnownClientCode ? true : false = true;
const clientCodesAreTheGateways: KnownClientCode extends GatewayProblemCode ? true : false = true;

describe('mfa-gateway/client stays a browser library', () => {
  test('the problem codes the client names are the gateway\'s (checked by the compiler)', () => {
    assert.equal(gatewayCodesAreKnown && clientCodesAreTheGateways, true);
  });

  test('src/client imports only its own files: nothing Node-only, no server code, no package', () => {
    const dir = fileURLToPath(new URL('../../../src/client/', import.meta.url));
    const files = readdirSync(dir).filter((name) => name.endsWith('.ts'));
    assert.ok(files.includes('index.ts'));
    for (const file of files) {
      const source = readFileSync(dir + file, 'utf8');
      for (const match of source.matchAll(/(?:import|export)[^'";]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]/g)) {
        const target = match[1] ?? match[2]!;
        assert.match(target, /^\.\/[a-z-]+\.js$/, `${file} imports ${target}`);
      }
      assert.ok(!/\b(?:process|Buffer|require)\b[.(]/.test(source), `${file} uses a Node global`);
    }
  });

  test('package.json exports ./client with its types and its ESM entry', () => {
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { exports: Record<string, unknown> };
    assert.deepEqual(pkg.exports['./client'], { types: './dist/src/client/index.d.ts', import: './dist/src/client/index.js' });
  });
});
