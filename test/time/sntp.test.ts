import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { querySntp } from '../../src/time/sntp.js';
import { systemClock } from '../../src/time/clock.js';
import { fakeClock, T0 } from '../support/clock.js';
import { failOnUnhandledRejections } from '../support/unhandled.js';
import { startSntpResponder } from '../support/sntp.js';

/** One SNTP exchange against a loopback responder that shares the client's (frozen) clock. */

failOnUnhandledRejections();

const loopback = (port: number) => ({ host: '127.0.0.1', port });

describe('querySntp', () => {
  test('the offset of the server from this clock, exactly, both ways; no delay on a frozen clock', async () => {
    const clock = fakeClock(T0 + 123);
    const responder = await startSntpResponder({ clock, offsetSeconds: 45 });
    try {
      assert.deepEqual(await querySntp(loopback(responder.port), { timeoutMs: 1000, clock }), { offsetSeconds: 45, delaySeconds: 0, stratum: 2 });
      responder.offsetSeconds = -3600;
      assert.deepEqual(await querySntp(loopback(responder.port), { timeoutMs: 1000, clock }), { offsetSeconds: -3600, delaySeconds: 0, stratum: 2 });
      assert.equal(responder.requests.length, 2);
    } finally {
      await responder.close();
    }
  });

  test('across the NTP era rollover of 2036-02-07T06:28:16Z', async () => {
    const clock = fakeClock(Date.UTC(2036, 1, 7, 6, 28, 14, 500));
    const responder = await startSntpResponder({ clock, offsetSeconds: 5 });
    try {
      assert.equal((await querySntp(loopback(responder.port), { timeoutMs: 1000, clock })).offsetSeconds, 5);
      clock.set(Date.UTC(2036, 1, 7, 6, 28, 20));
      responder.offsetSeconds = -10;
      assert.equal((await querySntp(loopback(responder.port), { timeoutMs: 1000, clock })).offsetSeconds, -10);
    } finally {
      await responder.close();
    }
  });

  test('on the real clock: near zero against a server on the same clock, the round trip measured', async () => {
    const responder = await startSntpResponder({ clock: systemClock });
    try {
      const reading = await querySntp(loopback(responder.port), { timeoutMs: 1000, clock: systemClock });
      // Date.now() has whole milliseconds; a loopback round trip takes well under 50 of them.
      assert.ok(Math.abs(reading.offsetSeconds) < 0.05, `offset ${reading.offsetSeconds}`);
      assert.ok(reading.delaySeconds >= 0 && reading.delaySeconds < 0.05, `delay ${reading.delaySeconds}`);
    } finally {
      await responder.close();
    }
  });

  test('a server that never answers: rejected after the timeout', async () => {
    const responder = await startSntpResponder({ clock: systemClock, mode: 'silent' });
    try {
      const started = Date.now();
      await assert.rejects(querySntp(loopback(responder.port), { timeoutMs: 200, clock: systemClock }), { message: 'no answer within 200 ms' });
      const waited = Date.now() - started;
      assert.ok(waited >= 190 && waited < 2000, `waited ${waited} ms`);
      assert.equal(responder.requests.length, 1);
    } finally {
      await responder.close();
    }
  });

  test("a kiss-o'-death is a refusal, with its code", async () => {
    const responder = await startSntpResponder({ clock: systemClock, mode: { kiss: 'RATE' } });
    try {
      await assert.rejects(querySntp(loopback(responder.port), { timeoutMs: 1000, clock: systemClock }), { message: `kiss-o'-death "RATE"` });
    } finally {
      await responder.close();
    }
  });

  test('an answer to another request (wrong originate time) is ignored: the answer is still awaited', async () => {
    const responder = await startSntpResponder({ clock: systemClock, mode: 'forged' });
    try {
      await assert.rejects(querySntp(loopback(responder.port), { timeoutMs: 200, clock: systemClock }), { message: 'no answer within 200 ms' });
    } finally {
      await responder.close();
    }
  });

  test('a port nobody listens on: the refusal, well before the timeout', async () => {
    // Bind and close a socket to get a port that is free now.
    const probe = createSocket('udp4');
    const port = await new Promise<number>((resolve) => probe.bind(0, '127.0.0.1', () => resolve(probe.address().port)));
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const started = Date.now();
    await assert.rejects(querySntp(loopback(port), { timeoutMs: 5000, clock: systemClock }), /ECONNREFUSED/);
    assert.ok(Date.now() - started < 2000);
  });
});
