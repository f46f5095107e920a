import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { retryDelay, type RetryAttempt } from '../../src/forward/retry.js';

const config = { max: 3, initialMs: 1_000, multiplier: 2, jitterMs: 500 };
const refused = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
const socketClosed = Object.assign(new Error('other side closed'), { code: 'UND_ERR_SOCKET' });
const headersTimeout = Object.assign(new Error('Headers Timeout Error'), { code: 'UND_ERR_HEADERS_TIMEOUT' });
const first: RetryAttempt = { method: 'GET', hasBody: false, retriesDone: 0, written: false, now: 0, deadline: 10_000 };

describe('retryDelay', () => {
  test('initial × multiplier^n ± jitter, at most max', () => {
    assert.equal(retryDelay(config, first, refused, 0.5), 1_000);
    assert.equal(retryDelay(config, first, refused, 0), 500);
    assert.equal(retryDelay(config, { ...first, retriesDone: 1 }, refused, 0.5), 2_000);
    assert.equal(retryDelay(config, { ...first, retriesDone: 2 }, refused, 0.75), 4_250);
    assert.equal(retryDelay(config, { ...first, retriesDone: 3 }, refused, 0.5), undefined);
  });

  test('only idempotent methods without a body', () => {
    for (const method of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']) assert.equal(retryDelay(config, { ...first, method }, refused, 0.5), 1_000, method);
    for (const method of ['POST', 'PATCH', 'TRACE', 'CONNECT']) assert.equal(retryDelay(config, { ...first, method }, refused, 0.5), undefined, method);
    assert.equal(retryDelay(config, { ...first, hasBody: true }, refused, 0.5), undefined);
  });

  test('only when no byte can have reached the upstream', () => {
    assert.equal(retryDelay(config, first, socketClosed, 0.5), 1_000);
    assert.equal(retryDelay(config, { ...first, written: true }, socketClosed, 0.5), undefined);
    assert.equal(retryDelay(config, { ...first, written: true }, refused, 0.5), 1_000);
    assert.equal(retryDelay(config, first, headersTimeout, 0.5), undefined);
    assert.equal(retryDelay(config, first, new Error('no code'), 0.5), undefined);
  });

  test('never past the timeout budget', () => {
    assert.equal(retryDelay(config, { ...first, now: 8_999 }, refused, 0.5), 1_000);
    assert.equal(retryDelay(config, { ...first, now: 9_000 }, refused, 0.5), undefined);
  });

  test('max 0 never retries', () => {
    assert.equal(retryDelay({ ...config, max: 0 }, first, refused, 0.5), undefined);
  });
});
