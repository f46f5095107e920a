import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isHeaderName, isLooseHeaderName } from '../../src/request/header-name.js';

test('isHeaderName: ASCII letters in any case match; length, other characters and non-ASCII letters do not', () => {
  for (const name of ['x-session-token', 'X-Session-Token', 'X-SESSION-TOKEN', 'x-SeSsIoN-tOkEn']) assert.equal(isHeaderName(name, 'x-session-token'), true, name);
  for (const name of ['x-session-toke', 'x-session-tokens', '', 'x_session-token', 'x.session-token', 'x-session-tokeN ', 'x-sesſion-token', 'x-sess\u0130on-token']) {
    assert.equal(isHeaderName(name, 'x-session-token'), false, JSON.stringify(name));
  }
  // Only A-Z fold: '[' (91) and '@' (64) sit beside them and must not become '{' or '`'.
  assert.equal(isHeaderName('[', '{'), false);
  assert.equal(isHeaderName('@', '`'), false);
});

test('isLooseHeaderName: `_` and `.` also stand for `-`; length and other characters still differ', () => {
  for (const name of ['x-session-token', 'X_Session_Token', 'x.session.token', 'X-SESSION_TOKEN']) assert.equal(isLooseHeaderName(name, 'x-session-token'), true, name);
  for (const name of ['x session token', 'x~session-token', 'x__session-token', 'x-session-toke', '']) assert.equal(isLooseHeaderName(name, 'x-session-token'), false, JSON.stringify(name));
});
