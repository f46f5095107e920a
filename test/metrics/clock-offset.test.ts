import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { createClockWatch } from '../../src/metrics/clock-offset.js';
import type { Gateway } from '../../src/server/gateway.js';
import { systemClock } from '../../src/time/clock.js';
import { fakeClock, intoCurrentStep, type FakeClock } from '../support/clock.js';
import { createWorkspace, policyHead } from '../support/fixture.js';
import { startGatewayRig, type GatewayRig } from '../support/gateway.js';
import { call } from '../support/http.js';
import { captureLog, type LogCapture } from '../support/log.js';
import { sampleValue, seriesOf } from '../support/metrics.js';
import { startServe, type ServeProcess } from '../support/serve.js';
import { failOnUnhandledRejections } from '../support/unhandled.js';
import { startSntpResponder, type SntpResponder } from '../support/sntp.js';
import { eventually } from '../support/wait.js';

/**
 * The host's clock against an NTP server the test runs on loopback (test/support/sntp.ts), which
 * reads the gateway's own fake clock: the offset it answers is the offset the gateway must export,
 * exactly. A server that never answers must cost nothing but a 0 and a log line.
 */

failOnUnhandledRejections();

const ROUTES = 'routes:\n  - { name: p, match: { path: /p }, upstream: app, policy: public }\ndefault: deny\n';
const CLOCK_SERIES = ['mfa_gateway_clock_offset_seconds', 'mfa_gateway_clock_last_sync_timestamp_seconds', 'mfa_gateway_clock_sync_success'];

function clockLines(text: string): string[] {
  return CLOCK_SERIES.flatMap((name) => seriesOf(text, name));
}

function clockEvents(log: LogCapture): Record<string, unknown>[] {
  return log.events().filter((event) => String(event.event).startsWith('clock_'));
}

describe('the clock offset of a gateway', () => {
  let clock: FakeClock;
  let log: LogCapture;
  let rig: GatewayRig;
  let gateway: Gateway;
  let behind: SntpResponder;
  let near: SntpResponder;
  let mute: SntpResponder;
  const asking = (server: SntpResponder): string => `clock: { ntp_server: "${server.address}", timeout: 200ms }\n${ROUTES}`;

  before(async () => {
    clock = fakeClock(intoCurrentStep());
    [behind, near, mute] = await Promise.all([
      startSntpResponder({ clock, offsetSeconds: 45 }),
      startSntpResponder({ clock, offsetSeconds: -3 }),
      startSntpResponder({ clock, mode: 'silent' }),
    ]);
    log = captureLog();
    rig = await startGatewayRig(asking(behind), { logger: log.logger, audit: log.logger, clock });
    gateway = rig.gateway;
  });
  after(async () => {
    await rig.close();
    await Promise.all([behind.close(), near.close(), mute.close()]);
  });

  test('45 s behind the server: the offset exactly, the time of the reading, and a warning (TOTP fails past 30 s)', async () => {
    await eventually(async () => sampleValue(await rig.scrape(), 'mfa_gateway_clock_sync_success') === 1);
    assert.deepEqual(clockLines(await rig.scrape()), [
      'mfa_gateway_clock_offset_seconds 45',
      `mfa_gateway_clock_last_sync_timestamp_seconds ${clock() / 1000}`,
      'mfa_gateway_clock_sync_success 1',
    ]);
    assert.equal(behind.requests.length, 1, 'asked once at start; the next poll is 5 minutes away');
    const [warning, ...others] = clockEvents(log);
    assert.deepEqual(others, []);
    assert.equal(warning?.level, 40);
    assert.equal(warning?.event, 'clock_offset');
    assert.equal(warning?.offset_seconds, 45);
    assert.equal(warning?.server, behind.address);
    assert.equal(warning?.msg, "this host's clock is 45.0 s behind the NTP server; TOTP codes fail past 30 s: fix the host's time sync");
  });

  test('a reload names a server within 30 s: asked at once, the new offset, and word that the clock is fine again', async () => {
    rig.rewrite(asking(near));
    assert.deepEqual(gateway.reload(), { ok: true });
    await eventually(async () => sampleValue(await rig.scrape(), 'mfa_gateway_clock_offset_seconds') === -3);
    assert.deepEqual(clockLines(await rig.scrape()), [
      'mfa_gateway_clock_offset_seconds -3',
      `mfa_gateway_clock_last_sync_timestamp_seconds ${clock() / 1000}`,
      'mfa_gateway_clock_sync_success 1',
    ]);
    assert.equal(near.requests.length, 1);
    const fine = clockEvents(log).at(-1);
    assert.deepEqual(clockEvents(log).map((event) => event.event), ['clock_offset', 'clock_offset_ok']);
    assert.equal(fine?.level, 30);
    assert.equal(fine?.offset_seconds, -3);
    assert.equal(fine?.msg, "this host's clock is within 30 s of the NTP server again");
  });

  test('a server that never answers: sync_success 0, no offset claimed, a warning; the gateway serves on', async () => {
    rig.rewrite(asking(mute));
    assert.deepEqual(gateway.reload(), { ok: true });
    await eventually(async () => sampleValue(await rig.scrape(), 'mfa_gateway_clock_sync_success') === 0);
    assert.deepEqual(clockLines(await rig.scrape()), ['mfa_gateway_clock_sync_success 0']);
    const failed = clockEvents(log).at(-1);
    assert.equal(failed?.level, 40);
    assert.equal(failed?.event, 'clock_sync_failed');
    assert.equal(failed?.error, 'no answer within 200 ms');
    assert.equal(mute.requests.length, 1);
    assert.equal((await call(gateway.address.port, 'GET', '/nowhere')).status, 404);
    assert.equal((await call(gateway.adminAddress!.port, 'GET', '/readyz')).status, 200);
  });

  test('clock: removed on reload: polling stops and the series go', async () => {
    rig.rewrite(ROUTES);
    assert.deepEqual(gateway.reload(), { ok: true });
    assert.deepEqual(clockLines(await rig.scrape()), []);
  });
});

describe('createClockWatch: polling on its interval', () => {
  test('keeps asking, and a server that comes back turns sync_success back to 1', async () => {
    const clock = fakeClock(intoCurrentStep());
    const responder = await startSntpResponder({ clock, offsetSeconds: 2, mode: 'silent' });
    const registry = new Registry();
    const log = captureLog();
    const watch = createClockWatch({ registry, logger: log.logger, clock });
    try {
      // Shorter than the policy allows (15 s at least): the watch itself takes what it is given.
      watch.apply({ server: { host: '127.0.0.1', port: responder.port }, intervalMs: 30, timeoutMs: 50 });
      await eventually(async () => sampleValue(await registry.metrics(), 'mfa_gateway_clock_sync_success') === 0);
      await eventually(() => responder.requests.length >= 3);
      responder.mode = 'answer';
      await eventually(async () => sampleValue(await registry.metrics(), 'mfa_gateway_clock_sync_success') === 1);
      assert.equal(sampleValue(await registry.metrics(), 'mfa_gateway_clock_offset_seconds'), 2);
      watch.close();
      const asked = responder.requests.length;
      await new Promise((resolve) => setTimeout(resolve, 150));
      assert.ok(responder.requests.length <= asked + 1, 'closed: at most the poll in flight, no more');
    } finally {
      watch.close();
      await responder.close();
    }
  });
});

describe('serve --workers 2', () => {
  test('the primary alone asks the NTP server, and exports one offset', async () => {
    // A real process on the real clock: the offset is 45 s give or take the loopback round trip.
    const responder = await startSntpResponder({ clock: systemClock, offsetSeconds: 45 });
    const ws = createWorkspace();
    let served: ServeProcess | undefined;
    try {
      ws.writePolicy(policyHead(ws, 'http://127.0.0.1:1') + `clock: { ntp_server: "${responder.address}" }\n` + ROUTES);
      served = await startServe(['--config', ws.configPath, '--workers', '2']);
      const admin = served.adminPort;
      let text = '';
      await eventually(async () => sampleValue((text = (await call(admin, 'GET', '/metrics')).text), 'mfa_gateway_clock_sync_success') === 1, 5_000);
      const offset = sampleValue(text, 'mfa_gateway_clock_offset_seconds')!;
      assert.ok(Math.abs(offset - 45) < 0.5, `offset ${offset}`);
      assert.equal(seriesOf(text, 'mfa_gateway_clock_offset_seconds').length, 1);
      // Both workers are up (the ready line waits for them): had they polled, there would be 3 requests.
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(responder.requests.length, 1);
      assert.ok(served.events().some((event) => event.event === 'clock_offset' && event.role === 'primary'));
    } finally {
      served?.child.kill('SIGTERM');
      await served?.exited;
      await responder.close();
      ws.remove();
    }
  });
});
