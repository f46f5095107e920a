import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { after, before, describe, test } from 'node:test';
import { fakeClock, intoCurrentStep } from '../support/clock.js';
import { call } from '../support/http.js';
import { sampleValue } from '../support/metrics.js';
import type { ReceivedRequest } from '../support/upstream.js';
import { eventually } from '../support/wait.js';
import { startEventsHarness, WEBHOOK_SECRET as SECRET, type EventsHarness } from './harness.js';

/**
 * Security events end to end: a real gateway on loopback with a real upstream, a real SMTP server
 * and a real webhook receiver (./harness.ts). The receiver checks every signature with its own
 * HMAC. Time-driven behaviour (retries, retention) runs on the gateway's fake clock; only the
 * detection latency is measured in real time.
 */

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Verifies `x-mfa-signature` the way docs/events.md tells a receiver to: HMAC-SHA256 of "t.body", compared in constant time. */
function verifySignature(request: ReceivedRequest, secret: string, nowSeconds: number, toleranceSeconds = 300): boolean {
  const header = String(request.headers['x-mfa-signature'] ?? '');
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(nowSeconds - t) > toleranceSeconds || parts.v1 === undefined) return false;
  const expected = createHmac('sha256', secret).update(`${t}.${request.body.toString('utf8')}`).digest();
  const given = Buffer.from(parts.v1, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

describe('security events through the gateway', () => {
  const clock = fakeClock(intoCurrentStep());
  let h: EventsHarness;
  let factorId = '';
  let recoveryCodes: string[] = [];
  let session = '';
  const mailsWith = (subject: string) => h.mailbox.messages.filter((m) => m.subject.includes(subject));

  before(async () => {
    h = await startEventsHarness(
      clock,
      `  signals: { country_header: X-Country }
  rules: { two_countries: { enabled: false } }
  notify: { admin_email: secops@example.test }
  delivery: { poll_interval: 100ms }
  webhooks:
    - { name: siem, url: "RECEIVER", secret_env: MFA_TEST_WEBHOOK_SECRET }
`,
    );
    // alice's first factor is her e-mail address: her verified e-mail contact, where notices go.
    ({ factorId, recoveryCodes } = await h.enrolEmail('alice'));
  });

  after(() => h.close());

  test('a valid session from a new country is challenged (RFC 9470) and alerted within 5 s; the upstream sees nothing until a fresh code', async () => {
    const verified = await h.post('/.mfa/verify', 'alice', { 'x-mfa-token': await h.mailedCode('alice', factorId), 'x-country': 'GB', 'x-device-id': 'laptop-1' });
    assert.equal(verified.status, 200, verified.text);
    session = verified.json<{ session_token: string }>().session_token;
    h.secrets.push(session);

    const home = await h.get('/orders/1', 'alice', { 'x-session-token': session, 'x-country': 'GB', 'x-device-id': 'laptop-1' });
    assert.equal(home.status, 200, home.text);
    const reached = h.upstream.received.length;

    const started = performance.now();
    const abroad = await h.get('/orders/1', 'alice', { 'x-session-token': session, 'x-country': 'FR', 'x-device-id': 'laptop-1' });
    assert.equal(abroad.status, 401, abroad.text);
    assert.match(String(abroad.headers['www-authenticate']), /error="insufficient_user_authentication"/);
    assert.equal(h.upstream.received.length, reached, 'the upstream must not see the challenged request');

    await eventually(() => h.hooksOf('country_change').length === 1, 5_000);
    const latencyMs = h.hooksOf('country_change')[0]!.at - started;
    console.log(`# detection latency (request → signed webhook received): ${latencyMs.toFixed(0)} ms`);
    assert.ok(latencyMs < 4_000, `detection latency ${latencyMs} ms must stay under 5 s with margin`);
    const payload = JSON.parse(h.hooksOf('country_change')[0]!.received.body.toString('utf8')) as Record<string, unknown>;
    console.log(`# webhook payload: ${JSON.stringify(payload)}`);
    assert.equal(payload.subject, 'alice');
    assert.equal(payload.country, 'FR');

    // A fresh code from the new country lets the same request through, and the country is learnt.
    const fresh = await h.get('/orders/1', 'alice', { 'x-session-token': session, 'x-country': 'FR', 'x-device-id': 'laptop-1', 'x-mfa-token': await h.mailedCode('alice', factorId) });
    assert.equal(fresh.status, 200, fresh.text);
    assert.equal(h.upstream.received.length, reached + 1);
    const again = await h.get('/orders/1', 'alice', { 'x-session-token': session, 'x-country': 'FR', 'x-device-id': 'laptop-1' });
    assert.equal(again.status, 200, again.text);
  });

  test('a second factor passed on a new device sends exactly one e-mail to the user', async () => {
    const before = mailsWith('new device').length;
    assert.equal(before, 0);
    const verified = await h.post('/.mfa/verify', 'alice', { 'x-mfa-token': await h.mailedCode('alice', factorId), 'x-country': 'GB', 'x-device-id': 'phone-7' });
    assert.equal(verified.status, 200, verified.text);
    await eventually(() => mailsWith('new device').length === 1, 5_000);
    // Once more from the same device: nothing new.
    const again = await h.post('/.mfa/verify', 'alice', { 'x-mfa-token': await h.mailedCode('alice', factorId), 'x-country': 'GB', 'x-device-id': 'phone-7' });
    assert.equal(again.status, 200, again.text);
    await h.gw.core.events.flush();
    await h.gw.core.events.dispatcher.deliverDue();
    const mails = mailsWith('new device');
    assert.equal(mails.length, 1);
    assert.deepEqual(mails[0]!.rcptTo, ['alice@example.test']);
    assert.match(mails[0]!.text, /country: GB/);
  });

  test('a recovery code used sends one admin notification and one webhook', async () => {
    const used = await h.post('/.mfa/verify', 'alice', { 'x-mfa-token': recoveryCodes[0]!, 'x-country': 'GB', 'x-device-id': 'phone-7' });
    assert.equal(used.status, 200, used.text);
    await eventually(() => mailsWith('recovery code used').length === 1 && h.hooksOf('recovery_code_used').length === 1, 5_000);
    await h.gw.core.events.dispatcher.deliverDue();
    const mails = mailsWith('recovery code used');
    assert.equal(mails.length, 1);
    assert.deepEqual(mails[0]!.rcptTo, ['secops@example.test']);
    assert.match(mails[0]!.text, /user: alice/);
    assert.equal(h.hooksOf('recovery_code_used').length, 1);
  });

  test('receiver down for hours, then up: the lockout alert arrives exactly once, with one idempotency key', async () => {
    h.answer(503);
    for (let i = 0; i < 3; i++) {
      const wrong = await h.post('/.mfa/verify', 'alice', { 'x-mfa-token': '000000', 'x-country': 'GB' });
      assert.equal(wrong.status, 401, wrong.text);
    }
    const locked = await h.post('/.mfa/verify', 'alice', { 'x-mfa-token': '000000', 'x-country': 'GB' });
    assert.equal(locked.status, 429, locked.text);
    await eventually(() => h.hooksOf('lockout').length >= 1, 5_000);
    // The receiver being down never touched a request: the answers above came at once.
    for (const step of [HOUR, 3 * HOUR, 12 * HOUR]) {
      clock.advance(step);
      await h.gw.core.events.dispatcher.deliverDue();
    }
    const failed = h.hooksOf('lockout').length;
    assert.ok(failed >= 3, `retries while down: ${failed}`);
    h.answer(204);
    clock.advance(12 * HOUR);
    await h.gw.core.events.dispatcher.deliverDue();
    clock.advance(12 * HOUR);
    await h.gw.core.events.dispatcher.deliverDue();
    const attempts = h.hooksOf('lockout');
    assert.equal(attempts.filter((h) => h.status === 204).length, 1, 'delivered exactly once');
    assert.equal(attempts.length, failed + 1);
    const keys = new Set(attempts.map((h) => h.received.headers['idempotency-key']));
    assert.equal(keys.size, 1);
    assert.equal(new Set(attempts.map((h) => h.received.body.toString('utf8'))).size, 1, 'the same payload on every attempt');
    const exposition = (await call(h.adminPort, 'GET', '/metrics')).text;
    assert.ok(sampleValue(exposition, 'mfa_gateway_webhook_deliveries_total{result="retry",kind="webhook"}')! >= failed);
    assert.ok(sampleValue(exposition, 'mfa_gateway_webhook_deliveries_total{result="success",kind="webhook"}')! >= 3);
    assert.equal(exposition.includes('mfa_gateway_webhook_dead_letters_total'), true);
  });

  test('every webhook carries a signature the receiver verifies with its own HMAC; a tampered body fails it', () => {
    assert.ok(h.hooks.length >= 4);
    for (const hook of h.hooks) {
      const t = Number(/t=(\d+)/.exec(String(hook.received.headers['x-mfa-signature']))![1]);
      assert.equal(verifySignature(hook.received, SECRET, t), true);
      assert.equal(verifySignature(hook.received, 'another-secret-entirely', t), false);
      assert.equal(verifySignature({ ...hook.received, body: Buffer.concat([hook.received.body, Buffer.from(' ')]) }, SECRET, t), false);
      assert.equal(verifySignature(hook.received, SECRET, t + 3600), false, 'an old signature is refused (replay)');
      assert.equal(hook.received.headers['content-type'], 'application/json');
    }
  });

  test('the audit API filters and pages, and holds no code, token or address', async () => {
    const refused = await call(h.adminPort, 'GET', '/admin/audit');
    assert.equal(refused.status, 403);
    const failures = await h.admin('/admin/audit?subject=alice&result=failure&limit=2');
    assert.equal(failures.status, 200, failures.text);
    const page1 = failures.json<{ events: { id: number; event: string; result: string; subject: string }[]; next_cursor?: string }>();
    assert.equal(page1.events.length, 2);
    assert.ok(page1.events.every((e) => e.subject === 'alice' && e.result === 'failure'));
    assert.ok(page1.next_cursor !== undefined);
    const page2 = (await h.admin(`/admin/audit?subject=alice&result=failure&limit=2&cursor=${page1.next_cursor}`)).json<typeof page1>();
    assert.ok(page2.events.length >= 1);
    assert.ok(page2.events[0]!.id < page1.events[1]!.id, 'older records on the next page');
    const lockedEvents = (await h.admin('/admin/audit?event=locked')).json<typeof page1>().events;
    assert.equal(lockedEvents.length, 1);
    const window = (await h.admin(`/admin/audit?from=${new Date(clock() + DAY).toISOString()}`)).json<typeof page1>().events;
    assert.deepEqual(window, []);
    assert.equal((await h.admin('/admin/audit?limit=0')).status, 400);
    assert.equal((await h.admin('/admin/audit?cursor=bm9wZQ')).status, 400);
    const everything = await h.admin('/admin/audit?limit=1000');
    const text = everything.text;
    assert.ok(text.includes('"event":"risk_step_up"'));
    assert.ok(text.includes('"country":"FR"'));
    for (const secret of [...h.secrets, 'alice@example.test', 'laptop-1', 'phone-7']) assert.equal(text.includes(secret), false, 'the audit trail must not hold a secret or raw identifier');
  });

  test('retention: records older than the retention are purged', async () => {
    const before = (await h.admin('/admin/audit?limit=1000')).json<{ events: unknown[] }>().events.length;
    assert.ok(before > 0);
    clock.advance(91 * DAY);
    const purged = await h.admin('/admin/audit/purge', 'POST');
    assert.equal(purged.status, 200, purged.text);
    assert.equal(purged.json<{ audit: number }>().audit, before);
    assert.deepEqual((await h.admin('/admin/audit?limit=1000')).json<{ events: unknown[] }>().events, []);
  });
});
