import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import { fakeClock, intoCurrentStep } from '../support/clock.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call, type Reply } from '../support/http.js';
import { codeIn, startMailbox, type Mailbox } from '../support/mailbox.js';
import { sampleValue } from '../support/metrics.js';
import { token } from '../support/tokens.js';
import { startUpstream, type ReceivedRequest, type Upstream } from '../support/upstream.js';
import { eventually } from '../support/wait.js';

/**
 * Security events end to end: a real gateway on loopback with a real upstream, a real SMTP server
 * and a real webhook receiver. The receiver checks every signature with its own HMAC. Time-driven
 * behaviour (retries, retention) runs on the gateway's fake clock; only the detection latency is
 * measured in real time.
 */

const silent = createLogger({ level: 'silent' });
const SECRET = 'webhook-secret-for-the-events-tests';
const ADMIN_TOKEN = 'admin-token-for-the-events-tests';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Hook {
  readonly received: ReceivedRequest;
  readonly status: number;
  readonly at: number;
}

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
  let ws: Workspace;
  let upstream: Upstream;
  let receiver: Upstream;
  let mailbox: Mailbox;
  let gw: Gateway;
  let port = 0;
  let adminPort = 0;
  let receiverStatus = 204;
  const hooks: Hook[] = [];
  const secrets: string[] = [];
  let recoveryCodes: string[] = [];
  let session = '';

  const bearer = (subject: string): Promise<string> => token(subject, { now: clock(), ttlSeconds: 3600 });
  async function post(path: string, subject: string, headers: Record<string, string> = {}, body?: unknown): Promise<Reply> {
    return call(port, 'POST', path, { authorization: `Bearer ${await bearer(subject)}`, 'content-type': 'application/json', ...headers }, body === undefined ? undefined : JSON.stringify(body));
  }
  async function mailedCode(subject: string, id: string): Promise<string> {
    const seen = mailbox.messages.length;
    const sent = await post('/.mfa/otp/send', subject, {}, { channel: 'email', factor_id: id });
    assert.equal(sent.status, 200, sent.text);
    // Alerts share the mailbox: the code is in the next verification mail.
    const isCode = (m: { subject: string }): boolean => m.subject.includes('verification code');
    await eventually(() => mailbox.messages.slice(seen).some(isCode), 5_000);
    const code = codeIn(mailbox.messages.slice(seen).find(isCode)!.text);
    secrets.push(code);
    return code;
  }
  const admin = (path: string, method = 'GET'): Promise<Reply> => call(adminPort, method, path, { authorization: `Bearer ${ADMIN_TOKEN}` });
  const hooksOf = (type: string): Hook[] => hooks.filter((h) => JSON.parse(h.received.body.toString('utf8')).type === type);
  const mailsWith = (subject: string) => mailbox.messages.filter((m) => m.subject.includes(subject));
  let factorId = '';

  before(async () => {
    process.env.MFA_TEST_WEBHOOK_SECRET = SECRET;
    process.env.MFA_TEST_EVENTS_ADMIN = ADMIN_TOKEN;
    ws = createWorkspace();
    upstream = await startUpstream();
    mailbox = await startMailbox();
    receiver = await startUpstream({
      handler: (_req: IncomingMessage, res: ServerResponse, received) => {
        hooks.push({ received, status: receiverStatus, at: performance.now() });
        res.writeHead(receiverStatus);
        res.end();
      },
    });
    const policy =
      policyHead(ws, upstream.url)
        .replace('admin: { host: 127.0.0.1, port: 0 }', 'admin: { host: 127.0.0.1, port: 0, token_env: MFA_TEST_EVENTS_ADMIN }\ntrusted_proxies: [127.0.0.1/32]')
        .replace(
          'mfa:\n  issuer: Test Gateway\n',
          `mfa:
  issuer: Test Gateway
  codes: { send_limits: { per_user: { sends: 100, per: 1m }, per_destination: { sends: 100, per: 1m } } }
  email:
    factor: true
    from: "Test Gateway <mfa@gateway.test>"
    smtp: { host: 127.0.0.1, port: ${mailbox.port}, security: none, timeout: 2s }
events:
  signals: { country_header: X-Country }
  rules: { two_countries: { enabled: false } }
  notify: { admin_email: secops@example.test }
  delivery: { poll_interval: 100ms }
  webhooks:
    - { name: siem, url: "${receiver.url}/hooks/mfa", secret_env: MFA_TEST_WEBHOOK_SECRET }
`,
        ) +
      `routes:
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
default: deny
`;
    ws.writePolicy(policy);
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: { port: 0 }, watch: false, logger: silent, audit: silent, clock });
    port = gw.address.port;
    adminPort = gw.adminAddress!.port;

    // alice's first factor is her e-mail address: her verified e-mail contact, where notices go.
    const enrolled = await post('/.mfa/otp/enroll', 'alice', {}, { channel: 'email', destination: 'alice@example.test' });
    assert.equal(enrolled.status, 201, enrolled.text);
    factorId = enrolled.json<{ factor_id: string }>().factor_id;
    const code = codeIn((await mailbox.next(mailbox.messages.length - 1)).text);
    const confirmed = await post('/.mfa/otp/confirm', 'alice', {}, { factor_id: factorId, code });
    assert.equal(confirmed.status, 200, confirmed.text);
    recoveryCodes = confirmed.json<{ recovery_codes: string[] }>().recovery_codes;
    secrets.push(code, ...recoveryCodes);
  });

  after(async () => {
    await gw.stop();
    await Promise.all([upstream.close(), mailbox.close(), receiver.close()]);
    ws.remove();
    delete process.env.MFA_TEST_WEBHOOK_SECRET;
    delete process.env.MFA_TEST_EVENTS_ADMIN;
  });

  test('a valid session from a new country is challenged (RFC 9470) and alerted within 5 s; the upstream sees nothing until a fresh code', async () => {
    const verified = await post('/.mfa/verify', 'alice', { 'x-mfa-token': await mailedCode('alice', factorId), 'x-country': 'GB', 'x-device-id': 'laptop-1' });
    assert.equal(verified.status, 200, verified.text);
    session = verified.json<{ session_token: string }>().session_token;
    secrets.push(session);

    const home = await call(port, 'GET', '/orders/1', { authorization: `Bearer ${await bearer('alice')}`, 'x-session-token': session, 'x-country': 'GB', 'x-device-id': 'laptop-1' });
    assert.equal(home.status, 200, home.text);
    const reached = upstream.received.length;

    const started = performance.now();
    const abroad = await call(port, 'GET', '/orders/1', { authorization: `Bearer ${await bearer('alice')}`, 'x-session-token': session, 'x-country': 'FR', 'x-device-id': 'laptop-1' });
    assert.equal(abroad.status, 401, abroad.text);
    assert.match(String(abroad.headers['www-authenticate']), /error="insufficient_user_authentication"/);
    assert.equal(upstream.received.length, reached, 'the upstream must not see the challenged request');

    await eventually(() => hooksOf('country_change').length === 1, 5_000);
    const latencyMs = hooksOf('country_change')[0]!.at - started;
    console.log(`# detection latency (request → signed webhook received): ${latencyMs.toFixed(0)} ms`);
    assert.ok(latencyMs < 4_000, `detection latency ${latencyMs} ms must stay under 5 s with margin`);
    const payload = JSON.parse(hooksOf('country_change')[0]!.received.body.toString('utf8')) as Record<string, unknown>;
    console.log(`# webhook payload: ${JSON.stringify(payload)}`);
    assert.equal(payload.subject, 'alice');
    assert.equal(payload.country, 'FR');

    // A fresh code from the new country lets the same request through, and the country is learnt.
    const fresh = await call(port, 'GET', '/orders/1', { authorization: `Bearer ${await bearer('alice')}`, 'x-session-token': session, 'x-country': 'FR', 'x-device-id': 'laptop-1', 'x-mfa-token': await mailedCode('alice', factorId) });
    assert.equal(fresh.status, 200, fresh.text);
    assert.equal(upstream.received.length, reached + 1);
    const again = await call(port, 'GET', '/orders/1', { authorization: `Bearer ${await bearer('alice')}`, 'x-session-token': session, 'x-country': 'FR', 'x-device-id': 'laptop-1' });
    assert.equal(again.status, 200, again.text);
  });

  test('a second factor passed on a new device sends exactly one e-mail to the user', async () => {
    const before = mailsWith('new device').length;
    assert.equal(before, 0);
    const verified = await post('/.mfa/verify', 'alice', { 'x-mfa-token': await mailedCode('alice', factorId), 'x-country': 'GB', 'x-device-id': 'phone-7' });
    assert.equal(verified.status, 200, verified.text);
    await eventually(() => mailsWith('new device').length === 1, 5_000);
    // Once more from the same device: nothing new.
    const again = await post('/.mfa/verify', 'alice', { 'x-mfa-token': await mailedCode('alice', factorId), 'x-country': 'GB', 'x-device-id': 'phone-7' });
    assert.equal(again.status, 200, again.text);
    await gw.core.events.flush();
    await gw.core.events.dispatcher.deliverDue();
    const mails = mailsWith('new device');
    assert.equal(mails.length, 1);
    assert.deepEqual(mails[0]!.rcptTo, ['alice@example.test']);
    assert.match(mails[0]!.text, /country: GB/);
  });

  test('a recovery code used sends one admin notification and one webhook', async () => {
    const used = await post('/.mfa/verify', 'alice', { 'x-mfa-token': recoveryCodes[0]!, 'x-country': 'GB', 'x-device-id': 'phone-7' });
    assert.equal(used.status, 200, used.text);
    await eventually(() => mailsWith('recovery code used').length === 1 && hooksOf('recovery_code_used').length === 1, 5_000);
    await gw.core.events.dispatcher.deliverDue();
    const mails = mailsWith('recovery code used');
    assert.equal(mails.length, 1);
    assert.deepEqual(mails[0]!.rcptTo, ['secops@example.test']);
    assert.match(mails[0]!.text, /user: alice/);
    assert.equal(hooksOf('recovery_code_used').length, 1);
  });

  test('receiver down for hours, then up: the lockout alert arrives exactly once, with one idempotency key', async () => {
    receiverStatus = 503;
    for (let i = 0; i < 3; i++) {
      const wrong = await post('/.mfa/verify', 'alice', { 'x-mfa-token': '000000', 'x-country': 'GB' });
      assert.equal(wrong.status, 401, wrong.text);
    }
    const locked = await post('/.mfa/verify', 'alice', { 'x-mfa-token': '000000', 'x-country': 'GB' });
    assert.equal(locked.status, 429, locked.text);
    await eventually(() => hooksOf('lockout').length >= 1, 5_000);
    // The receiver being down never touched a request: the answers above came at once.
    for (const step of [HOUR, 3 * HOUR, 12 * HOUR]) {
      clock.advance(step);
      await gw.core.events.dispatcher.deliverDue();
    }
    const failed = hooksOf('lockout').length;
    assert.ok(failed >= 3, `retries while down: ${failed}`);
    receiverStatus = 204;
    clock.advance(12 * HOUR);
    await gw.core.events.dispatcher.deliverDue();
    clock.advance(12 * HOUR);
    await gw.core.events.dispatcher.deliverDue();
    const attempts = hooksOf('lockout');
    assert.equal(attempts.filter((h) => h.status === 204).length, 1, 'delivered exactly once');
    assert.equal(attempts.length, failed + 1);
    const keys = new Set(attempts.map((h) => h.received.headers['idempotency-key']));
    assert.equal(keys.size, 1);
    assert.equal(new Set(attempts.map((h) => h.received.body.toString('utf8'))).size, 1, 'the same payload on every attempt');
    const exposition = (await call(adminPort, 'GET', '/metrics')).text;
    assert.ok(sampleValue(exposition, 'mfa_gateway_webhook_deliveries_total{result="retry",kind="webhook"}')! >= failed);
    assert.ok(sampleValue(exposition, 'mfa_gateway_webhook_deliveries_total{result="success",kind="webhook"}')! >= 3);
    assert.equal(exposition.includes('mfa_gateway_webhook_dead_letters_total'), true);
  });

  test('every webhook carries a signature the receiver verifies with its own HMAC; a tampered body fails it', () => {
    assert.ok(hooks.length >= 4);
    for (const hook of hooks) {
      const t = Number(/t=(\d+)/.exec(String(hook.received.headers['x-mfa-signature']))![1]);
      assert.equal(verifySignature(hook.received, SECRET, t), true);
      assert.equal(verifySignature(hook.received, 'another-secret-entirely', t), false);
      assert.equal(verifySignature({ ...hook.received, body: Buffer.concat([hook.received.body, Buffer.from(' ')]) }, SECRET, t), false);
      assert.equal(verifySignature(hook.received, SECRET, t + 3600), false, 'an old signature is refused (replay)');
      assert.equal(hook.received.headers['content-type'], 'application/json');
    }
  });

  test('the audit API filters and pages, and holds no code, token or address', async () => {
    const refused = await call(adminPort, 'GET', '/admin/audit');
    assert.equal(refused.status, 403);
    const failures = await admin('/admin/audit?subject=alice&result=failure&limit=2');
    assert.equal(failures.status, 200, failures.text);
    const page1 = failures.json<{ events: { id: number; event: string; result: string; subject: string }[]; next_cursor?: string }>();
    assert.equal(page1.events.length, 2);
    assert.ok(page1.events.every((e) => e.subject === 'alice' && e.result === 'failure'));
    assert.ok(page1.next_cursor !== undefined);
    const page2 = (await admin(`/admin/audit?subject=alice&result=failure&limit=2&cursor=${page1.next_cursor}`)).json<typeof page1>();
    assert.ok(page2.events.length >= 1);
    assert.ok(page2.events[0]!.id < page1.events[1]!.id, 'older records on the next page');
    const lockedEvents = (await admin('/admin/audit?event=locked')).json<typeof page1>().events;
    assert.equal(lockedEvents.length, 1);
    const window = (await admin(`/admin/audit?from=${new Date(clock() + DAY).toISOString()}`)).json<typeof page1>().events;
    assert.deepEqual(window, []);
    assert.equal((await admin('/admin/audit?limit=0')).status, 400);
    assert.equal((await admin('/admin/audit?cursor=bm9wZQ')).status, 400);
    const everything = await admin('/admin/audit?limit=1000');
    const text = everything.text;
    assert.ok(text.includes('"event":"risk_step_up"'));
    assert.ok(text.includes('"country":"FR"'));
    for (const secret of [...secrets, 'alice@example.test', 'laptop-1', 'phone-7']) assert.equal(text.includes(secret), false, 'the audit trail must not hold a secret or raw identifier');
  });

  test('retention: records older than the retention are purged', async () => {
    const before = (await admin('/admin/audit?limit=1000')).json<{ events: unknown[] }>().events.length;
    assert.ok(before > 0);
    clock.advance(91 * DAY);
    const purged = await admin('/admin/audit/purge', 'POST');
    assert.equal(purged.status, 200, purged.text);
    assert.equal(purged.json<{ audit: number }>().audit, before);
    assert.deepEqual((await admin('/admin/audit?limit=1000')).json<{ events: unknown[] }>().events, []);
  });
});
