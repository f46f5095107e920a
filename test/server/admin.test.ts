import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../../src/log/logger.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { missingBinary, OATHTOOL } from '../support/binaries.js';
import { fakeClock, intoCurrentStep } from '../support/clock.js';
import { enrollTotpOverHttp } from '../support/enroll.js';
import { call } from '../support/http.js';
import { oathTotp } from '../support/otp.js';
import { token } from '../support/tokens.js';
import { startUpstream, type Upstream } from '../support/upstream.js';

/** The admin API's "log this user out everywhere", and the user's own, over real listeners. */

const skip = missingBinary(OATHTOOL, 'oathtool');
const silent = createLogger({ level: 'silent' });
const ADMIN_TOKEN = 'admin-token-for-the-session-tests';

describe('ending a user\'s sessions', { skip }, () => {
  let ws: Workspace;
  let upstream: Upstream;
  let gw: Gateway;
  const clock = fakeClock(intoCurrentStep());

  before(async () => {
    process.env.MFA_GW_TEST_ADMIN = ADMIN_TOKEN;
    ws = createWorkspace();
    upstream = await startUpstream();
    ws.writePolicy(
      policyHead(ws, upstream.url).replace('admin: { host: 127.0.0.1, port: 0 }', 'admin: { host: 127.0.0.1, port: 0, token_env: MFA_GW_TEST_ADMIN }') +
        'routes:\n  - { match: { path_prefix: /account/ }, upstream: app, policy: mfa }\n',
    );
    gw = await startGateway({ configPath: ws.configPath, listen: { port: 0 }, admin: { port: 0 }, watch: false, logger: silent, audit: silent, clock });
  });
  after(async () => {
    await gw.stop();
    await upstream.close();
    ws.remove();
    delete process.env.MFA_GW_TEST_ADMIN;
  });

  async function session(subject: string, secret: string): Promise<string> {
    clock.advanceStep();
    const verified = await call(gw.address.port, 'POST', '/.mfa/verify', { authorization: `Bearer ${await token(subject, { now: clock() })}`, 'x-mfa-token': oathTotp(secret, clock()) });
    assert.equal(verified.status, 200, verified.text);
    return verified.json<{ session_token: string }>().session_token;
  }

  async function usable(subject: string, sessionToken: string): Promise<number> {
    return (await call(gw.address.port, 'GET', '/account/x', { authorization: `Bearer ${await token(subject, { now: clock() })}`, 'x-session-token': sessionToken })).status;
  }

  test('POST /admin/sessions/revoke?subject=… needs the admin token, then ends every session of that subject only', async () => {
    const admin = gw.adminAddress!.port;
    const vera = (await enrollTotpOverHttp(gw.address.port, await token('vera', { now: clock() }), clock)).secret;
    const walt = (await enrollTotpOverHttp(gw.address.port, await token('walt', { now: clock() }), clock)).secret;
    const veras = [await session('vera', vera), await session('vera', vera)];
    const walts = await session('walt', walt);

    const anonymous = await call(admin, 'POST', '/admin/sessions/revoke?subject=vera');
    assert.equal(anonymous.status, 403);
    const unnamed = await call(admin, 'POST', '/admin/sessions/revoke', { authorization: `Bearer ${ADMIN_TOKEN}` });
    assert.equal(unnamed.status, 400);
    assert.equal(unnamed.json().code, 'invalid_request');

    const revoked = await call(admin, 'POST', '/admin/sessions/revoke?subject=vera', { authorization: `Bearer ${ADMIN_TOKEN}` });
    assert.equal(revoked.status, 200);
    assert.deepEqual(revoked.json(), { subject: 'vera', revoked: 2 });
    for (const token of veras) assert.equal(await usable('vera', token), 401);
    assert.equal(await usable('walt', walts), 200);
  });

  test('POST /.mfa/session/revoke-all: the user\'s own, with a fresh second factor', async () => {
    const xena = (await enrollTotpOverHttp(gw.address.port, await token('xena', { now: clock() }), clock)).secret;
    const first = await session('xena', xena);
    const jwt = await token('xena', { now: clock() });
    const stale = await call(gw.address.port, 'POST', '/.mfa/session/revoke-all', { authorization: `Bearer ${jwt}` });
    assert.equal(stale.status, 401);
    assert.equal(stale.json().code, 'step_up_required');
    const done = await call(gw.address.port, 'POST', '/.mfa/session/revoke-all', { authorization: `Bearer ${jwt}`, 'x-session-token': first });
    assert.equal(done.status, 200, done.text);
    assert.deepEqual(done.json(), { revoked: 1 });
    assert.equal(await usable('xena', first), 401);
  });
});
