import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { fakeClock, intoCurrentStep } from '../support/clock.js';
import { eventually } from '../support/wait.js';
import { startEventsHarness, type EventsHarness } from './harness.js';

/** What the store keeps of a device-id header: its hash, never the value. */
const deviceHash = (id: string): string => createHash('sha256').update(`id\0${id}`).digest('hex').slice(0, 32);

describe('countries and devices a subject was seen from', () => {
  const clock = fakeClock(intoCurrentStep());
  let h: EventsHarness;
  let factorId = '';
  const newDeviceMails = () => h.mailbox.messages.filter((m) => m.subject.includes('new device'));
  const seen = () => h.gw.core.events.store.listSeen('carol');

  async function passFrom(device: string): Promise<void> {
    const verified = await h.post('/.mfa/verify', 'carol', { 'x-mfa-token': await h.mailedCode('carol', factorId), 'x-country': 'NL', 'x-device-id': device });
    assert.equal(verified.status, 200, verified.text);
  }

  before(async () => {
    h = await startEventsHarness(clock, '  signals: { country_header: X-Country }\n');
    ({ factorId } = await h.enrolEmail('carol'));
  });

  after(() => h.close());

  test('the first device is learnt without a notice, and written again at most once a minute', async () => {
    const first = clock();
    await passFrom('desk-1');
    assert.deepEqual(await seen(), [
      { kind: 'country', value: 'NL', firstSeen: first, lastSeen: first },
      { kind: 'device', value: deviceHash('desk-1'), firstSeen: first, lastSeen: first },
    ]);
    clock.advance(30_000);
    await passFrom('desk-1');
    assert.deepEqual((await seen()).map((s) => s.lastSeen), [first, first], 'touched within the minute: not written');
    clock.advance(31_000);
    await passFrom('desk-1');
    assert.deepEqual((await seen()).map((s) => s.lastSeen), [clock(), clock()]);
    await h.gw.core.events.flush();
    await h.gw.core.events.dispatcher.deliverDue();
    assert.equal(newDeviceMails().length, 0, 'the device the user enrolled on is not news');
  });

  test('a second device is told to its user once', async () => {
    clock.advance(1_000);
    await passFrom('phone-2');
    await eventually(() => newDeviceMails().length === 1, 5_000);
    clock.advance(61_000);
    await passFrom('phone-2');
    await h.gw.core.events.flush();
    await h.gw.core.events.dispatcher.deliverDue();
    assert.equal(newDeviceMails().length, 1);
    assert.deepEqual(newDeviceMails()[0]!.rcptTo, ['carol@example.test']);
  });

  test('a seen-store write that failed is made by the next pass, not skipped for a minute', async () => {
    // A real fault in the real file: a trigger refusing every update of the table, from a second connection.
    const side = new Database(h.dbPath);
    try {
      side.exec(`CREATE TRIGGER refuse_seen BEFORE UPDATE ON risk_seen BEGIN SELECT RAISE(ABORT, 'refused by the test'); END`);
      clock.advance(61_000);
      const refusedAt = clock();
      await passFrom('desk-1');
      const desk = async () => (await seen()).find((s) => s.value === deviceHash('desk-1'))!;
      assert.ok((await desk()).lastSeen < refusedAt, 'the refused write changed nothing');
      side.exec('DROP TRIGGER refuse_seen');
      clock.advance(1_000);
      await passFrom('desk-1');
      assert.equal((await desk()).lastSeen, clock());
    } finally {
      side.close();
    }
  });
});
