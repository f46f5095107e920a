import assert from 'node:assert/strict';
import { test } from 'node:test';
import { maskDestination, parseDestination } from '../../../src/mfa/oob/destination.js';

test('e-mail addresses: one canonical form (domain lower-cased), refusals that never repeat the input', () => {
  assert.deepEqual(parseDestination('email', 'Alice.O+tag@Mail.Example.COM'), { ok: true, value: 'Alice.O+tag@mail.example.com' });
  assert.deepEqual(parseDestination('email', "o'brien@xn--bcher-kva.example"), { ok: true, value: "o'brien@xn--bcher-kva.example" });
  const refused: [string, string][] = [
    ['alice', 'must be an e-mail address, e.g. alice@example.com'],
    ['@example.com', 'must be an e-mail address, e.g. alice@example.com'],
    [`${'a'.repeat(250)}@example.com`, 'must be an e-mail address, e.g. alice@example.com'],
    ['a..b@example.com', 'must be an e-mail address with a plain ASCII local part, e.g. alice@example.com'],
    ['"quoted"@example.com', 'must be an e-mail address with a plain ASCII local part, e.g. alice@example.com'],
    ['jörg@example.com', 'must be an e-mail address with a plain ASCII local part, e.g. alice@example.com'],
    ['alice@example.com\r\nBcc: eve@example.org', 'must be an e-mail address with a plain ASCII local part, e.g. alice@example.com'],
    ['alice@bücher.example', 'must be an e-mail address whose domain is a host name (international domains in their xn-- form)'],
    ['alice@localhost', 'must be an e-mail address whose domain is a host name (international domains in their xn-- form)'],
    ['alice@10.0.0.1', 'must be an e-mail address whose domain is a host name (international domains in their xn-- form)'],
    ['alice@-bad.example', 'must be an e-mail address whose domain is a host name (international domains in their xn-- form)'],
  ];
  for (const [input, reason] of refused) assert.deepEqual(parseDestination('email', input), { ok: false, reason }, JSON.stringify(input));
});

test('phone numbers: E.164 only (+, country code, 7 to 15 digits)', () => {
  for (const ok of ['+14155550123', '+447700900123', '+6831234', '+123456789012345']) assert.deepEqual(parseDestination('sms', ok), { ok: true, value: ok });
  const reason = 'must be a phone number in E.164 form: + and the country code, no spaces, e.g. +14155550123';
  for (const bad of ['14155550123', '+0123456789', '+1 415 555 0123', '+1-415-555-0123', '+123456', '+1234567890123456', '+１４１５５５５０１２３', '+14155550123\n']) {
    assert.deepEqual(parseDestination('sms', bad), { ok: false, reason }, JSON.stringify(bad));
  }
});

test('masks keep enough to recognise a destination, never the whole of it', () => {
  assert.equal(maskDestination('email', 'alice@mail.example.com'), 'a***@m***.com');
  assert.equal(maskDestination('email', 'b@x.io'), 'b***@x***.io');
  assert.equal(maskDestination('sms', '+447700900123'), '+44********23');
  assert.equal(maskDestination('sms', '+6831234'), '+68***34');
});
