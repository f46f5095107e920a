import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { startGateway, type Gateway } from '../../../src/server/gateway.js';
import { createLogger } from '../../../src/log/logger.js';
import { missingBinary, OATHTOOL } from '../../support/binaries.js';
import { fakeClock, intoCurrentStep } from '../../support/clock.js';
import { enrollTotpOverHttp } from '../../support/enroll.js';
import { createWorkspace, policyHead, type Workspace } from '../../support/fixture.js';
import { call, type Reply } from '../../support/http.js';
import { captureLog, type LogCapture } from '../../support/log.js';
import { codeIn, startMailbox, type Mailbox } from '../../support/mailbox.js';
import { counterValue } from '../../support/metrics.js';
import { oathTotp, wrongTotp } from '../../support/otp.js';
import { startResettingServer, type StandInServer } from '../../support/tcp-proxy.js';
import { token } from '../../support/tokens.js';
import { startUpstream, type ReceivedRequest, type Upstream } from '../../support/upstream.js';
import { assertProblem } from '../support.js';

/**
 * E-mail and SMS codes end to end: a real gateway on loopback, a real SMTP server (smtp-server; the
 * test reads each code out of the message it received), a real HTTP receiver standing in for the
 * SMS provider, and a real upstream that records what reached it. Every user and destination is a
 * test's own, so quotas and locks never cross tests; the fake clock only moves forward.
 */

const skip = missingBinary(OATHTOOL, 'oathtool');
const silent = createLogger({ level: 'silent' });
const MINUTE = 60_000;
const ACCOUNT = `AC${'0123456789abcdef'.repeat(2)}`;
const TWILIO_TOKEN = 'twilio-test-token-not-a-secret';
const SMS_KEY = 'Bearer sms-test-key-not-a-secret';
const MESSAGE = (code: string) => `${code} is your Test Gateway verification code. It expires in 10 minutes.`;
const ROUTES = `routes:
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
default: deny
`;

/** The `mfa:` keys of a test policy, after `issuer`. */
function oobSettings(smtpPort: number, sms: string, extra = ''): string {
  return `  codes: { send_limits: { per_user: { sends: 4, per: 15m }, per_destination: { sends: 3, per: 15m } } }
  email:
    factor: true
    from: "Test Gateway <mfa@gateway.test>"
    smtp: { host: 127.0.0.1, port: ${smtpPort}, security: none, timeout: 2s }
  sms:
    provider: ${sms}
${extra}`;
}

function policyWith(ws: Workspace, upstream: Upstream, settings: string): string {
  return policyHead(ws, upstream.url).replace('mfa:\n  issuer: Test Gateway\n', `mfa:\n  issuer: Test Gateway\n${settings}`) + ROUTES;
}

/** An SMS provider on loopback: records each request and answers with the status set by `answer` (201 to begin with). */
async function startSmsReceiver(): Promise<SmsReceiver> {
  let status = 201;
  const upstream = await startUpstream({
    handler: (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{"sid":"SM00000000000000000000000000000000"}');
    },
  });
  return Object.assign(upstream, { answer: (next: number) => void (status = next) });
}

type SmsReceiver = Upstream & { answer(status: number): void };

/** The code in the last request an SMS receiver got, from either provider shape. */
function smsCode(received: ReceivedRequest): string {
  return codeIn(decodeURIComponent(received.body.toString('utf8').replaceAll('+', ' ')));
}

function json(subject: string, extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${subject}`, 'content-type': 'application/json', ...extra };
}

function withoutRequestId(reply: Reply): Record<string, unknown> {
  const { request_id: _drop, ...body } = reply.json();
  return body;
}

describe('e-mail and SMS codes through the gateway', { skip }, () => {
  const clock = fakeClock(intoCurrentStep());
  let ws: Workspace;
  let upstream: Upstream;
  let mailbox: Mailbox;
  let sms: SmsReceiver;
  let gw: Gateway;
  let audit: LogCapture;
  let logs: LogCapture;
  let port = 0;
  let policy = '';
  /** Every code and destination the tests handled: none may reach a log line. */
  const secrets: string[] = [];

  const bearer = (subject: string) => token(subject, { now: clock(), ttlSeconds: 3600 });
  const post = async (path: string, subject: string, body?: unknown, extra: Record<string, string> = {}): Promise<Reply> =>
    call(port, 'POST', path, json(await bearer(subject), extra), body === undefined ? undefined : JSON.stringify(body));

  /** Enrols and confirms `destination` as `subject`'s first factor on `channel`; returns its id. */
  async function emailFactor(subject: string, destination: string, extra: Record<string, string> = {}): Promise<string> {
    const enrolled = await post('/.mfa/otp/enroll', subject, { channel: 'email', destination }, extra);
    assert.equal(enrolled.status, 201, enrolled.text);
    const code = codeIn((await mailbox.next(mailbox.messages.length - 1)).text);
    secrets.push(destination, code);
    const id = enrolled.json<{ factor_id: string }>().factor_id;
    const confirmed = await post('/.mfa/otp/confirm', subject, { factor_id: id, code }, extra);
    assert.equal(confirmed.status, 200, confirmed.text);
    return id;
  }

  /** Sends a fresh code to contact `id` and reads it from the mailbox. */
  async function mailedCode(subject: string, id: string): Promise<string> {
    const seen = mailbox.messages.length;
    const sent = await post('/.mfa/otp/send', subject, { channel: 'email', factor_id: id });
    assert.equal(sent.status, 200, sent.text);
    const code = codeIn((await mailbox.next(seen)).text);
    secrets.push(code);
    return code;
  }

  async function order(subject: string, headers: Record<string, string>): Promise<Reply> {
    return call(port, 'POST', '/orders/1', { authorization: `Bearer ${await bearer(subject)}`, ...headers });
  }

  before(async () => {
    process.env.MFA_TEST_TWILIO_TOKEN = TWILIO_TOKEN;
    ws = createWorkspace();
    upstream = await startUpstream();
    mailbox = await startMailbox();
    sms = await startSmsReceiver();
    const twilio = `{ kind: twilio, account_sid: ${ACCOUNT}, auth_token_env: MFA_TEST_TWILIO_TOKEN, from: "+15005550006", api_url: "${sms.url}", timeout: 2s }`;
    policy = policyWith(ws, upstream, oobSettings(mailbox.port, twilio, '  backup_contact: { enabled: true }\n'));
    ws.writePolicy(policy);
    audit = captureLog('audit');
    logs = captureLog('mfa-gateway');
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: false, watch: false, logger: logs.logger, audit: audit.logger, clock });
    port = gw.address.port;
  });
  after(async () => {
    await gw.stop();
    await Promise.all([upstream.close(), mailbox.close(), sms.close()]);
    ws.remove();
    delete process.env.MFA_TEST_TWILIO_TOKEN;
  });

  test('e-mail: enrol, prove the address with the mailed code, then a mailed code on an mfa route reaches the backend as X-Auth-MFA: email', async () => {
    const enrolled = await post('/.mfa/otp/enroll', 'erin', { channel: 'email', destination: 'Erin.Example@Example.COM' });
    assert.equal(enrolled.status, 201, enrolled.text);
    const body = enrolled.json<Record<string, unknown>>();
    const id = body.factor_id as string;
    const now = Math.floor(clock() / 1000);
    assert.deepEqual(body, { factor_id: id, type: 'email', purpose: 'factor', status: 'pending', label: 'E-mail', destination: 'E***@e***.com', pending_until: now + 600, code_expires_at: now + 600 });
    const mail = mailbox.messages.at(-1)!;
    const code = codeIn(mail.text);
    secrets.push('Erin.Example@example.com', code);
    // The domain is lower-cased, the local part kept as typed.
    assert.deepEqual(mail.rcptTo, ['Erin.Example@example.com']);
    assert.equal(mail.mailFrom, 'mfa@gateway.test');
    assert.equal(mail.subject, 'Your Test Gateway verification code');
    assert.equal(mail.text.trim(), MESSAGE(code));

    // Pending proves nothing yet: the user has no second factor.
    assertProblem(await order('erin', { 'x-mfa-token': code }), 403, 'mfa_not_enrolled');
    const wrong = code === '000000' ? '111111' : '000000';
    const refused = await post('/.mfa/otp/confirm', 'erin', { factor_id: id, code: wrong });
    assertProblem(refused, 401, 'mfa_invalid', 'the second factor was not accepted');
    const confirmed = await post('/.mfa/otp/confirm', 'erin', { factor_id: id, code });
    assert.equal(confirmed.status, 200, confirmed.text);
    assert.deepEqual(Object.keys(confirmed.json()), ['factor_id', 'status', 'recovery_codes']);
    assert.equal(confirmed.json<{ recovery_codes: string[] }>().recovery_codes.length, 10);

    const listed = await call(port, 'GET', '/.mfa/factors', { authorization: `Bearer ${await bearer('erin')}` });
    assert.deepEqual(listed.json(), {
      factors: [{ id, type: 'email', purpose: 'factor', status: 'active', label: 'E-mail', destination: 'E***@e***.com', created_at: now, confirmed_at: now }],
      recovery_codes_remaining: 10,
    });

    assertProblem(await order('erin', {}), 401, 'mfa_required');
    const seen = upstream.received.length;
    const mailed = await mailedCode('erin', id);
    const reply = await order('erin', { 'x-mfa-token': mailed });
    assert.equal(reply.status, 200, reply.text);
    assert.match(String(reply.headers['x-session-token']), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(reply.headers['x-session-expires'], String(now + 12 * 3600));
    assert.equal(upstream.received.length, seen + 1);
    const got = upstream.received.at(-1)!;
    assert.equal(got.headers['x-auth-subject'], 'erin');
    assert.equal(got.headers['x-auth-mfa'], 'email');
    assert.equal(got.headers['x-auth-mfa-time'], String(now));
    assert.ok(!upstream.headerNames(got).includes('x-mfa-token'), 'the code never reaches the backend');
    assert.ok(!upstream.headerNames(got).includes('x-session-token'));

    // Single use: the same code again is refused like any wrong code.
    assertProblem(await order('erin', { 'x-mfa-token': mailed }), 401, 'mfa_invalid', 'the second factor was not accepted');
    assert.equal(await counterValue(gw.metrics.mfaVerifications, { method: 'email', result: 'success' }), 2);
    assert.equal(await counterValue(gw.metrics.mfaCodeDeliveries, { channel: 'email', result: 'sent' }), 2);
  });

  test('a new send replaces the old code; a code expires after 10 minutes', async () => {
    const id = await emailFactor('fred', 'fred@mail.example');
    const first = await mailedCode('fred', id);
    const second = await mailedCode('fred', id);
    assertProblem(await order('fred', { 'x-mfa-token': first }), 401, 'mfa_invalid');
    assert.equal((await order('fred', { 'x-mfa-token': second })).status, 200);

    // A new quarter of an hour: the address's quota of 3 codes is free again.
    clock.advance(15 * MINUTE);
    const late = await mailedCode('fred', id);
    clock.advance(10 * MINUTE);
    assertProblem(await order('fred', { 'x-mfa-token': late }), 401, 'mfa_invalid');
    const fresh = await mailedCode('fred', id);
    clock.advance(10 * MINUTE - 1000);
    assert.equal((await order('fred', { 'x-mfa-token': fresh })).status, 200);
  });

  test('wrong e-mail codes and wrong TOTP codes add up to one lockout', async () => {
    const totp = await enrollTotpOverHttp(port, await bearer('gina'), clock);
    const verified = await call(port, 'POST', '/.mfa/verify', { authorization: `Bearer ${await bearer('gina')}`, 'x-mfa-token': oathTotp(totp.secret, clock()) });
    assert.equal(verified.status, 200, verified.text);
    // Adding a second factor needs a fresh one: the session just opened by a TOTP code.
    const session = { 'x-session-token': verified.json<{ session_token: string }>().session_token };
    const id = await emailFactor('gina', 'gina@mail.example', session);
    const stale = await mailedCode('gina', id);
    const good = await mailedCode('gina', id);
    clock.advanceStep();
    assertProblem(await order('gina', { 'x-mfa-token': stale }), 401, 'mfa_invalid');
    assertProblem(await order('gina', { 'x-mfa-token': wrongTotp(totp.secret, clock()) }), 401, 'mfa_invalid');
    // The third failure starts the lock (and is answered as the failure it was).
    assertProblem(await order('gina', { 'x-mfa-token': stale }), 401, 'mfa_invalid');
    // Locked: even the right e-mail code is refused, and kept for later.
    const locked = await order('gina', { 'x-mfa-token': good });
    assertProblem(locked, 429, 'mfa_locked', 'too many failed second-factor attempts; try again later');
    assert.equal(locked.headers['retry-after'], '30');
    clock.advance(30_000);
    assert.equal((await order('gina', { 'x-mfa-token': good })).status, 200);
    const failures = audit.events().filter((e) => e.subject === 'gina' && e.event === 'failed');
    assert.deepEqual(failures.map((e) => e.reason), ['wrong', 'wrong', 'wrong']);
  });

  test('sends are limited per user and per destination: 429 with Retry-After to the end of the window', async () => {
    const throttled = (limit: string) => counterValue(gw.metrics.throttled, { limit: `code_send_${limit}` });
    const before = { destination: await throttled('destination'), user: await throttled('user') };
    const id = await emailFactor('hana', 'hana@mail.example');
    await mailedCode('hana', id);
    await mailedCode('hana', id);
    // Three codes went to the address: the fourth send is refused for it (the user's own quota has one left).
    const perDestination = await post('/.mfa/otp/send', 'hana', { channel: 'email', factor_id: id });
    assertProblem(perDestination, 429, 'rate_limited', 'too many codes were sent to this destination; try again later');
    assert.equal(perDestination.headers['retry-after'], '900');
    assert.deepEqual(withoutRequestId(perDestination), {
      type: 'https://mfa-gateway.dev/problems/rate_limited',
      title: 'Too many requests',
      status: 429,
      detail: 'too many codes were sent to this destination; try again later',
      code: 'rate_limited',
    });
    // The same address for another user: the destination's quota is everyone's.
    assertProblem(await post('/.mfa/otp/enroll', 'ivan', { channel: 'email', destination: 'hana@mail.example' }), 429, 'rate_limited', 'too many codes were sent to this destination; try again later');
    // The refused send took the user's fourth token: the next is refused for the user.
    clock.advance(MINUTE);
    const perUser = await post('/.mfa/otp/send', 'hana', { channel: 'email', factor_id: id });
    assertProblem(perUser, 429, 'rate_limited', 'too many codes were sent for this user; try again later');
    assert.equal(perUser.headers['retry-after'], '840');
    assert.equal(mailbox.messages.filter((m) => m.rcptTo[0] === 'hana@mail.example').length, 3);
    assert.deepEqual({ destination: await throttled('destination'), user: await throttled('user') }, { destination: before.destination + 2, user: before.user + 1 });
    clock.advance(14 * MINUTE);
    await mailedCode('hana', id);
  });

  test('SMS (Twilio Messages API): the exact request, then the code as a second factor', async () => {
    const enrolled = await post('/.mfa/otp/enroll', 'jack', { channel: 'sms', destination: '+447700900123', label: 'Handy' });
    assert.equal(enrolled.status, 201, enrolled.text);
    assert.equal(enrolled.json().destination, '+44********23');
    const request = sms.received.at(-1)!;
    const code = smsCode(request);
    secrets.push('+447700900123', code);
    assert.equal(request.method, 'POST');
    assert.equal(request.url, `/2010-04-01/Accounts/${ACCOUNT}/Messages.json`);
    assert.equal(request.headers['content-type'], 'application/x-www-form-urlencoded');
    assert.equal(request.headers.authorization, `Basic ${Buffer.from(`${ACCOUNT}:${TWILIO_TOKEN}`).toString('base64')}`);
    assert.equal(request.body.toString('utf8'), `To=%2B447700900123&From=%2B15005550006&Body=${MESSAGE(code).replaceAll(' ', '+')}`);
    const id = enrolled.json<{ factor_id: string }>().factor_id;
    assert.equal((await post('/.mfa/otp/confirm', 'jack', { factor_id: id, code })).status, 200);

    assert.equal((await post('/.mfa/otp/send', 'jack', { channel: 'sms', factor_id: id })).status, 200);
    const texted = smsCode(sms.received.at(-1)!);
    secrets.push(texted);
    // The channel must match the contact's.
    assertProblem(await post('/.mfa/otp/send', 'jack', { channel: 'email', factor_id: id }), 404, 'not_found', 'no e-mail contact with this id');
    const reply = await order('jack', { 'x-mfa-token': texted });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(upstream.received.at(-1)!.headers['x-auth-mfa'], 'sms');

    // The same number twice is refused (after the step-up a second contact needs).
    const session = { 'x-session-token': String(reply.headers['x-session-token']) };
    assertProblem(await post('/.mfa/otp/enroll', 'jack', { channel: 'sms', destination: '+447700900123' }), 401, 'step_up_required');
    assertProblem(await post('/.mfa/otp/enroll', 'jack', { channel: 'sms', destination: '+447700900123' }, session), 400, 'invalid_request', 'this phone number is already one of your contacts');
    // Removed like any factor: its sessions end, and with no factor left the recovery codes go.
    const auth = { authorization: `Bearer ${await bearer('jack')}` };
    assert.equal((await call(port, 'DELETE', `/.mfa/factors/${id}`, { ...auth, ...session })).status, 204);
    assert.deepEqual((await call(port, 'GET', '/.mfa/factors', auth)).json(), { factors: [], recovery_codes_remaining: 0 });
    assertProblem(await order('jack', session), 401, 'session_invalid');
  });

  test('bad input is refused by name and changes nothing', async () => {
    const cases: [string, unknown, string][] = [
      ['/.mfa/otp/enroll', { channel: 'fax', destination: 'x' }, '"channel" must be "email" or "sms"'],
      ['/.mfa/otp/enroll', { channel: 'sms', destination: '07700 900123' }, '"destination" must be a phone number in E.164 form: + and the country code, no spaces, e.g. +14155550123'],
      ['/.mfa/otp/enroll', { channel: 'email', destination: 'kim@localhost' }, '"destination" must be an e-mail address whose domain is a host name (international domains in their xn-- form)'],
      ['/.mfa/otp/enroll', { channel: 'email', destination: 'kim@example.com\r\nBcc: x@evil.test' }, '"destination" must be an e-mail address with a plain ASCII local part, e.g. alice@example.com'],
      ['/.mfa/otp/enroll', { channel: 'email', destination: 'kim@example.com', purpose: 'spare' }, '"purpose" must be "factor" or "backup"'],
      ['/.mfa/otp/enroll', { channel: 'email', destination: 'kim@example.com', to: 1 }, 'unknown field "to"'],
      ['/.mfa/otp/send', { channel: 'email' }, '"factor_id" must be a non-empty string'],
      ['/.mfa/otp/confirm', { factor_id: 'x', code: 123456 }, '"code" must be a non-empty string'],
    ];
    const sent = mailbox.messages.length + sms.received.length;
    for (const [path, body, detail] of cases) assertProblem(await post(path, 'kim', body), 400, 'invalid_request', detail);
    assertProblem(await post('/.mfa/otp/send', 'kim', { channel: 'email', factor_id: 'nope' }), 404, 'not_found', 'no e-mail contact with this id');
    assertProblem(await post('/.mfa/otp/confirm', 'kim', { factor_id: 'nope', code: '123456' }), 404, 'not_found');
    assert.equal(mailbox.messages.length + sms.received.length, sent);
    const listed = await call(port, 'GET', '/.mfa/factors', { authorization: `Bearer ${await bearer('kim')}` });
    assert.deepEqual(listed.json(), { factors: [], recovery_codes_remaining: 0 });
  });

  test('backup contact: a verified secondary address recovers a user whose authenticator is gone; off in the policy, it does nothing', async () => {
    // Only a user with a factor may add one, with a fresh second factor.
    assertProblem(await post('/.mfa/otp/enroll', 'lena', { channel: 'email', destination: 'lena@backup.example', purpose: 'backup' }), 403, 'mfa_not_enrolled');
    const totp = await enrollTotpOverHttp(port, await bearer('lena'), clock);
    assertProblem(await post('/.mfa/otp/enroll', 'lena', { channel: 'email', destination: 'lena@backup.example', purpose: 'backup' }), 401, 'step_up_required');
    const step = { 'x-mfa-token': oathTotp(totp.secret, clock()) };
    const enrolled = await post('/.mfa/otp/enroll', 'lena', { channel: 'email', destination: 'lena@backup.example', purpose: 'backup' }, step);
    assert.equal(enrolled.status, 201, enrolled.text);
    assert.equal(enrolled.json().label, 'Backup e-mail');
    const id = enrolled.json<{ factor_id: string }>().factor_id;
    const code = codeIn(mailbox.messages.at(-1)!.text);
    secrets.push('lena@backup.example', code);
    clock.advanceStep();
    const confirmed = await post('/.mfa/otp/confirm', 'lena', { factor_id: id, code }, { 'x-mfa-token': oathTotp(totp.secret, clock()) });
    assert.equal(confirmed.status, 200, confirmed.text);
    // Not a first factor: no new recovery codes.
    assert.deepEqual(confirmed.json(), { factor_id: id, status: 'active' });

    // The phone is lost: a code to the backup address satisfies the route.
    const recovery = await mailedCode('lena', id);
    const reply = await order('lena', { 'x-mfa-token': recovery });
    assert.equal(reply.status, 200, reply.text);
    assert.equal(upstream.received.at(-1)!.headers['x-auth-mfa'], 'email');
    assert.ok(audit.events().some((e) => e.subject === 'lena' && e.event === 'backup_contact_used' && e.factor_id === id));

    // The operator turns backup contacts (and e-mail as a factor) off: a code already sent is worth nothing.
    const unsent = await mailedCode('lena', id);
    ws.writePolicy(policy.replace('backup_contact: { enabled: true }', 'backup_contact: { enabled: false }').replace('factor: true', 'factor: false'));
    try {
      assert.deepEqual(gw.reload(), { ok: true });
      assertProblem(await order('lena', { 'x-mfa-token': unsent }), 401, 'mfa_invalid');
      assertProblem(await post('/.mfa/otp/send', 'lena', { channel: 'email', factor_id: id }), 403, 'forbidden', 'backup contacts by e-mail are not enabled on this gateway');
      assertProblem(await post('/.mfa/otp/enroll', 'mona', { channel: 'email', destination: 'mona@mail.example' }), 403, 'forbidden', 'e-mail codes are not enabled as a second factor on this gateway');
      // Erin's only factor is e-mail: with e-mail off she has no usable second factor.
      assertProblem(await order('erin', {}), 403, 'mfa_not_enrolled');
    } finally {
      ws.writePolicy(policy);
      assert.deepEqual(gw.reload(), { ok: true });
    }
  });

  test('no code or destination ever reaches a log line; audit events show destinations masked', () => {
    const text = audit.text() + logs.text();
    // A code is looked for as a number of its own (log lines hold timestamps full of digits).
    for (const secret of secrets) assert.ok(!new RegExp(`(?<![0-9])${secret.replace(/[.+*]/g, '\\$&')}(?![0-9])`).test(text), `a log line holds a ${secret.length}-character secret`);
    const sent = audit.events().filter((e) => e.event === 'code_sent');
    assert.ok(sent.length > 10);
    for (const event of sent) assert.match(String(event.destination), /^(\w\*\*\*@\w\*\*\*\.\w+|\+\d\d\*+\d\d)$/);
  });
});

describe('delivery failures', { skip }, () => {
  const clock = fakeClock(intoCurrentStep());
  let ws: Workspace;
  let upstream: Upstream;
  let sms: SmsReceiver;
  let smtpDown: StandInServer;
  let gw: Gateway;
  let audit: LogCapture;
  let port = 0;

  const post = async (path: string, subject: string, body: unknown): Promise<Reply> =>
    call(port, 'POST', path, json(await token(subject, { now: clock(), ttlSeconds: 3600 })), JSON.stringify(body));

  before(async () => {
    process.env.MFA_TEST_SMS_KEY = SMS_KEY;
    ws = createWorkspace();
    upstream = await startUpstream();
    sms = await startSmsReceiver();
    // The SMTP server resets every connection. Not a merely free port: another test file running
    // beside this one could bind it meanwhile, and a listener that never greets times out instead.
    smtpDown = await startResettingServer();
    // The SMS provider is the generic HTTP shape.
    const generic = `{ kind: http, url: "${sms.url}/v1/messages", auth_header: X-Api-Key, auth_env: MFA_TEST_SMS_KEY, body: '{"to":"{to}","text":"{message}"}', timeout: 2s }`;
    ws.writePolicy(policyWith(ws, upstream, oobSettings(smtpDown.port, generic)));
    audit = captureLog('audit');
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: false, watch: false, logger: silent, audit: audit.logger, clock });
    port = gw.address.port;
  });
  after(async () => {
    await gw.stop();
    await Promise.all([upstream.close(), sms.close(), smtpDown.close()]);
    ws.remove();
    delete process.env.MFA_TEST_SMS_KEY;
  });

  test('SMTP down: 502 delivery_failed, counted and audited, nothing stored', async () => {
    const reply = await post('/.mfa/otp/enroll', 'nina', { channel: 'email', destination: 'nina@mail.example' });
    assertProblem(reply, 502, 'delivery_failed');
    assert.deepEqual(withoutRequestId(reply), {
      type: 'https://mfa-gateway.dev/problems/delivery_failed',
      title: 'Code delivery failed',
      status: 502,
      detail: 'the code could not be sent by e-mail; nothing was changed, try again later',
      code: 'delivery_failed',
    });
    assert.equal(await counterValue(gw.metrics.mfaCodeDeliveries, { channel: 'email', result: 'failed' }), 1);
    const event = audit.events().find((e) => e.event === 'code_send_failed')!;
    assert.deepEqual([event.subject, event.channel, event.destination, event.reason], ['nina', 'email', 'n***@m***.example', 'sending the e-mail failed (ESOCKET)']);
    const listed = await call(port, 'GET', '/.mfa/factors', { authorization: `Bearer ${await token('nina', { now: clock() })}` });
    assert.deepEqual(listed.json(), { factors: [], recovery_codes_remaining: 0 });
    assert.ok(!audit.text().includes('nina@mail.example'));
  });

  test('generic SMS provider: the exact request; a 500 from it is 502 delivery_failed and the earlier code still works', async () => {
    const enrolled = await post('/.mfa/otp/enroll', 'omar', { channel: 'sms', destination: '+14155550123' });
    assert.equal(enrolled.status, 201, enrolled.text);
    const request = sms.received.at(-1)!;
    const code = smsCode(request);
    assert.equal(request.method, 'POST');
    assert.equal(request.url, '/v1/messages');
    assert.equal(request.headers['content-type'], 'application/json');
    assert.equal(request.headers['x-api-key'], SMS_KEY);
    assert.equal(request.headers.authorization, undefined);
    assert.equal(request.body.toString('utf8'), `{"to":"+14155550123","text":"${MESSAGE(code)}"}`);

    sms.answer(500);
    try {
      const id = enrolled.json<{ factor_id: string }>().factor_id;
      const failed = await post('/.mfa/otp/send', 'omar', { channel: 'sms', factor_id: id });
      assertProblem(failed, 502, 'delivery_failed', 'the code could not be sent by SMS; nothing was changed, try again later');
      assert.equal(await counterValue(gw.metrics.mfaCodeDeliveries, { channel: 'sms', result: 'failed' }), 1);
      assert.equal(audit.events().find((e) => e.event === 'code_send_failed' && e.channel === 'sms')?.reason, 'the SMS provider answered 500');
      // The failed send replaced nothing: the code from the enrolment still confirms.
      const confirmed = await post('/.mfa/otp/confirm', 'omar', { factor_id: id, code });
      assert.equal(confirmed.status, 200, confirmed.text);
    } finally {
      sms.answer(201);
    }
  });

  test('e-mail as a factor off by default; backup contacts off by default', async () => {
    const off = policyWith(ws, upstream, `  sms:\n    provider: { kind: http, url: "${sms.url}/v1/messages", body: '{"to":"{to}","text":"{message}"}' }\n`);
    ws.writePolicy(off);
    assert.deepEqual(gw.reload(), { ok: true });
    assertProblem(await post('/.mfa/otp/enroll', 'pia', { channel: 'email', destination: 'pia@mail.example' }), 403, 'forbidden', 'e-mail codes are not enabled as a second factor on this gateway');
    assertProblem(await post('/.mfa/otp/enroll', 'omar', { channel: 'sms', destination: '+14155550199', purpose: 'backup' }), 403, 'forbidden', 'backup contacts by SMS are not enabled on this gateway');
  });
});
