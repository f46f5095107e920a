import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { fakeClock, intoCurrentStep } from '../support/clock.js';
import { sampleValue } from '../support/metrics.js';
import { call } from '../support/http.js';
import { eventually } from '../support/wait.js';
import { startEventsHarness, type EventsHarness } from './harness.js';

/**
 * The rules that end sessions or watch patterns, and the dead-letter end of delivery, on a real
 * gateway (./harness.ts) with the gateway's fake clock.
 */

const MINUTE = 60_000;

describe('risk rules and dead letters', () => {
  const clock = fakeClock(intoCurrentStep());
  let h: EventsHarness;

  before(async () => {
    h = await startEventsHarness(
      clock,
      `  signals: { country_header: X-Country }
  rules: { ip_failures: { users: 2, window: 5m } }
  delivery: { poll_interval: 100ms, retry_window: 2m }
  webhooks:
    - { name: siem, url: "RECEIVER", secret_env: MFA_TEST_WEBHOOK_SECRET }
`,
    );
  });
  after(() => h.close());

  test('the same user from two countries within the window: alert, and every session of the user ends', async () => {
    const { factorId } = await h.enrolEmail('carol');
    const verified = await h.post('/.mfa/verify', 'carol', { 'x-mfa-token': await h.mailedCode('carol', factorId), 'x-country': 'GB' });
    assert.equal(verified.status, 200, verified.text);
    const session = verified.json<{ session_token: string }>().session_token;
    h.secrets.push(session);
    const reached = h.upstream.received.length;
    const abroad = await h.get('/orders/1', 'carol', { 'x-session-token': session, 'x-country': 'BR' });
    assert.equal(abroad.status, 401, abroad.text);
    assert.equal(h.upstream.received.length, reached);
    await eventually(() => h.hooksOf('two_countries').length === 1, 5_000);
    const alert = JSON.parse(h.hooksOf('two_countries')[0]!.received.body.toString('utf8')) as { detail: Record<string, unknown> };
    assert.deepEqual(alert.detail, { other_country: 'GB', window_seconds: 3600, sessions_ended: 1 });
    // Ended: even from home the session no longer works.
    const home = await h.get('/orders/1', 'carol', { 'x-session-token': session, 'x-country': 'GB' });
    assert.equal(home.status, 401, home.text);
    assert.equal(home.json<{ code: string }>().code, 'session_invalid');
  });

  test('failed codes for several users from one address: one alert', async () => {
    for (const subject of ['dave', 'erin']) {
      await h.enrolEmail(subject);
      const wrong = await h.post('/.mfa/verify', subject, { 'x-mfa-token': '000000' });
      assert.equal(wrong.status, 401, wrong.text);
    }
    await eventually(() => h.hooksOf('ip_failures').length === 1, 5_000);
    const alert = JSON.parse(h.hooksOf('ip_failures')[0]!.received.body.toString('utf8')) as { client_ip: string; detail: Record<string, unknown> };
    assert.equal(alert.client_ip, '127.0.0.1');
    assert.deepEqual(alert.detail, { users: 2, window_seconds: 300 });
  });

  test('a receiver down past the retry window: a dead letter, counted and listed, never delivered again', async () => {
    h.answer(500);
    await h.enrolEmail('frank');
    for (let i = 0; i < 3; i++) await h.post('/.mfa/verify', 'frank', { 'x-mfa-token': '000000' });
    await eventually(() => h.hooksOf('lockout').length >= 1, 5_000);
    for (let i = 0; i < 6; i++) {
      clock.advance(MINUTE);
      await h.gw.core.events.dispatcher.deliverDue();
    }
    const tries = h.hooksOf('lockout').length;
    const dead = await h.admin('/admin/outbox?state=dead');
    assert.equal(dead.status, 200, dead.text);
    const items = dead.json<{ items: { event: string; attempts: number; lastError: string }[] }>().items.filter((i) => i.event === 'lockout');
    assert.equal(items.length, 1);
    assert.equal(items[0]!.attempts, tries);
    assert.equal(items[0]!.lastError, 'receiver answered 500');
    h.answer(204);
    clock.advance(60 * MINUTE);
    await h.gw.core.events.dispatcher.deliverDue();
    assert.equal(h.hooksOf('lockout').length, tries, 'a dead letter is not delivered again');
    const exposition = (await call(h.adminPort, 'GET', '/metrics')).text;
    assert.equal(sampleValue(exposition, 'mfa_gateway_webhook_dead_letters_total{kind="webhook"}'), 1);
  });
});
