import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PROBLEMS, renderProblem, problem, type ProblemCode } from '../../src/errors/problems.js';
import { rateLimitFields } from '../../src/errors/ratelimit.js';

const docPath = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));

test('every problem code is documented with its status, and nothing else is', () => {
  const rows = new Map<string, number>();
  for (const match of readFileSync(docPath, 'utf8').matchAll(/^\| `([a-z_]+)` \| (\d{3}) \|/gm)) rows.set(match[1]!, Number(match[2]));
  const table = new Map(Object.entries(PROBLEMS).map(([code, kind]) => [code, kind.status]));
  assert.deepEqual([...rows].sort(), [...table].sort());
});

test('bearer problems carry RFC 6750 / RFC 9470 challenges', () => {
  const scope = renderProblem(problem('insufficient_scope', 'missing', { scope: 'orders:read orders:write' }));
  assert.equal(scope.status, 403);
  assert.equal(scope.headers['www-authenticate'], 'Bearer error="insufficient_scope", scope="orders:read orders:write", error_description="missing"');
  const stepUp = renderProblem(problem('step_up_required', 'fresh factor needed', { maxAge: 300 }), 'req-1');
  assert.equal(stepUp.status, 401);
  assert.equal(stepUp.headers['www-authenticate'], 'Bearer error="insufficient_user_authentication", error_description="fresh factor needed", max_age=300');
  assert.deepEqual(JSON.parse(stepUp.body), {
    type: 'https://mfa-gateway.dev/problems/step_up_required',
    title: 'Fresh second factor required',
    status: 401,
    detail: 'fresh factor needed',
    code: 'step_up_required',
    request_id: 'req-1',
  });
  assert.equal(stepUp.headers['content-type'], 'application/problem+json');
});

test('a quote or newline in a detail cannot break the challenge header', () => {
  const rendered = renderProblem(problem('invalid_token', 'a "quoted"\r\nInjected: yes'));
  assert.equal(rendered.headers['www-authenticate'], 'Bearer error="invalid_token", error_description="a \\"quoted\\"  Injected: yes"');
});

test('lockout answers carry Retry-After in whole seconds, at least 1', () => {
  const codes: [ProblemCode, number][] = [['mfa_locked', 29.2], ['overloaded', 0.1]];
  for (const [code, seconds] of codes) {
    const rendered = renderProblem(problem(code, 'wait', { retryAfter: seconds }));
    assert.equal(rendered.headers['retry-after'], String(Math.max(1, Math.ceil(seconds))));
    assert.equal(rendered.headers['www-authenticate'], undefined);
  }
});

test('rate_limited: 429 with Retry-After, RateLimit and RateLimit-Policy (draft-ietf-httpapi-ratelimit-headers-11)', () => {
  const rateLimit = { policy: 'orders-write', quota: 100, windowSeconds: 60, remaining: 0, resetSeconds: 12 };
  const rendered = renderProblem(problem('rate_limited', 'used up', { retryAfter: 12, rateLimit }), 'req-9');
  assert.equal(rendered.status, 429);
  assert.equal(rendered.headers['retry-after'], '12');
  assert.equal(rendered.headers['ratelimit-policy'], '"orders-write";q=100;w=60');
  assert.equal(rendered.headers['ratelimit'], '"orders-write";r=0;t=12');
  assert.equal(rendered.headers['www-authenticate'], undefined);
  assert.equal(JSON.parse(rendered.body).code, 'rate_limited');
  // Any other refusal of a limited route carries the quota too, without a Retry-After.
  const counted = renderProblem(problem('invalid_token', 'no token', { rateLimit: { ...rateLimit, remaining: 7 } }));
  assert.equal(counted.headers['ratelimit'], '"orders-write";r=7;t=12');
  assert.equal(counted.headers['retry-after'], undefined);
});

test('the RateLimit policy name is a valid sf-string whatever the route is called', () => {
  const fields = rateLimitFields({ policy: 'a"b\\c\u00e9', quota: 1, windowSeconds: 1, remaining: 0, resetSeconds: 1 });
  assert.equal(fields['ratelimit-policy'], '"a\\"b\\\\c?";q=1;w=1');
});
