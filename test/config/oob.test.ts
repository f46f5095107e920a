import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HEAD, issuesOf, parse, ROUTE } from './support.js';

/** `mfa.codes`, `mfa.email`, `mfa.sms`, `mfa.backup_contact`: the policy file as the loader reads it. */

const SID = `AC${'ab'.repeat(16)}`;
const withMfa = (mfa: string): string => `mfa:\n${mfa}${HEAD}${ROUTE}`;

describe('e-mail and SMS settings', () => {
  test('a full block compiles: secrets from the environment, defaults filled in', () => {
    const policy = parse(
      withMfa(`  codes: { ttl: 5m, max_attempts: 3, message: "Code {code} ({minutes} min)" }
  email:
    factor: true
    from: "Example <mfa@example.com>"
    smtp: { host: smtp.example.com, username: mfa, password_env: SMTP_PW }
  sms:
    provider: { kind: twilio, account_sid: ${SID}, auth_token_env: TW, messaging_service_sid: MG${'cd'.repeat(16)} }
  backup_contact: { enabled: true }
`),
      { SMTP_PW: 'smtp-password', TW: 'twilio-token' },
    );
    assert.deepEqual(policy.mfa.codes, { ttlMs: 300_000, maxAttempts: 3, message: 'Code {code} ({minutes} min)', sendLimits: { perUser: { sends: 5, perMs: 900_000 }, perDestination: { sends: 3, perMs: 900_000 } } });
    assert.deepEqual(policy.mfa.email, {
      factor: true,
      subject: 'Your {issuer} verification code',
      from: 'Example <mfa@example.com>',
      smtp: { host: 'smtp.example.com', port: 587, security: 'starttls', username: 'mfa', password: 'smtp-password', timeoutMs: 10_000 },
    });
    assert.deepEqual(policy.mfa.sms, {
      factor: true,
      provider: { kind: 'twilio', apiUrl: 'https://api.twilio.com', accountSid: SID, authToken: 'twilio-token', messagingServiceSid: `MG${'cd'.repeat(16)}`, timeoutMs: 10_000 },
    });
    assert.deepEqual(policy.mfa.backupContact, { enabled: true });
  });

  test('implicit TLS defaults to port 465; the generic provider keeps its template and header', () => {
    const policy = parse(
      withMfa(`  email: { from: "mfa@example.com", smtp: { host: smtp.example.com, security: tls } }
  sms:
    provider: { kind: http, url: "https://sms.example.com/send", auth_env: SMS_KEY, content_type: application/x-www-form-urlencoded, body: "to={to}&text={message}" }
`),
      { SMS_KEY: 'Bearer key' },
    );
    assert.equal(policy.mfa.email.smtp?.port, 465);
    assert.equal(policy.mfa.email.factor, false);
    assert.deepEqual(policy.mfa.sms.provider, {
      kind: 'http',
      url: 'https://sms.example.com/send',
      authHeader: 'Authorization',
      authValue: 'Bearer key',
      contentType: 'application/x-www-form-urlencoded',
      body: 'to={to}&text={message}',
      timeoutMs: 10_000,
    });
  });

  test('each mistake is refused at its line, and no secret is shown', () => {
    const issues = issuesOf(
      withMfa(`  email:
    factor: true
    smtp: { host: smtp.example.com, security: none, password_env: SMTP_PW }
  sms:
    provider: { kind: http, url: "http://sms.example.com/send", auth_env: SMS_KEY, body: '{"to":{to},"text":"{message}"}' }
`),
      { env: { SMS_KEY: 'line\r\nInjected: yes' } },
    );
    assert.deepEqual(issues, [
      't.yaml:3: mfa.email.from: is required with smtp',
      't.yaml:4: mfa.email.smtp.security: none (plain text) is allowed only to a loopback host; use starttls or tls',
      't.yaml:4: mfa.email.smtp.password_env: needs username',
      't.yaml:4: mfa.email.smtp.password_env: environment variable SMTP_PW is not set',
      't.yaml:6: mfa.sms.provider.url: must use https (http only to a loopback host)',
      't.yaml:6: mfa.sms.provider.body: is not JSON once {to} and {message} are filled in (put them inside quotes)',
      't.yaml:6: mfa.sms.provider.auth_env: environment variable SMS_KEY holds a line break or NUL',
    ]);
  });

  test('e-mail as a factor or backup contacts without a transport, and schema-level mistakes', () => {
    assert.deepEqual(issuesOf(withMfa('  email: { factor: true }\n  backup_contact: { enabled: true }\n')), [
      't.yaml:2: mfa.email.factor: needs mfa.email.smtp to send the codes',
      't.yaml:3: mfa.backup_contact.enabled: needs mfa.email.smtp or mfa.sms.provider to send the codes',
    ]);
    assert.deepEqual(issuesOf(withMfa(`  codes: { message: "no placeholder" }\n  sms: { provider: { kind: twilio, account_sid: AC1, auth_token_env: TW, from: "0044" } }\n`)), [
      't.yaml:2: mfa.codes.message: must contain {code}',
      't.yaml:3: mfa.sms.provider.account_sid: must be a Twilio account SID (AC and 32 hex digits)',
      't.yaml:3: mfa.sms.provider.from: must be an E.164 phone number, e.g. +14155550123',
    ]);
    assert.deepEqual(issuesOf(withMfa(`  sms: { provider: { kind: twilio, account_sid: ${SID}, auth_token_env: TW } }\n`), { env: { TW: 't' } }), [
      't.yaml:2: mfa.sms.provider: needs from or messaging_service_sid (one of them)',
    ]);
  });
});
