import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { AuditRecord, EventStore, NewOutboxItem } from '../../src/store/events.js';
import { T0 } from '../support/clock.js';

/**
 * What every EventStore must do (audit trail, outbox, first-seen signals), registered once per
 * backend. The lease tests open a second store on the same database, as another replica would.
 */

export interface EventsFixture {
  readonly events: EventStore;
  replica(): Promise<EventStore>;
  close(): Promise<void>;
}

export type OpenEvents = () => Promise<EventsFixture>;

function record(over: Partial<AuditRecord> = {}): AuditRecord {
  return { at: T0, subject: 'alice', event: 'verified', result: 'success', requestId: 'r-1', clientIp: '203.0.113.9', method: 'totp', detail: {}, ...over };
}

function item(id: string, over: Partial<NewOutboxItem> = {}): NewOutboxItem {
  return { id, kind: 'webhook', target: 'siem', event: 'lockout', payload: JSON.stringify({ id }), createdAt: T0, ...over };
}

export function eventsConformance(name: string, open: OpenEvents, skip: () => Promise<string | undefined> = async () => undefined): void {
  describe(`${name} event store`, async () => {
    const reason = await skip();
    let fixture: EventsFixture;
    beforeEach(async () => {
      if (reason === undefined) fixture = await open();
    });
    afterEach(async () => {
      if (reason === undefined) await fixture.close();
    });

    test('audit records come back newest first, filtered, with every column', { skip: reason }, async () => {
      const { events } = fixture;
      await events.append(
        [
          record({ at: T0 + 1, detail: { remaining: 9 } }),
          record({ at: T0 + 2, subject: 'bob', event: 'failed', result: 'failure', reason: 'wrong', country: 'GB', device: 'd1', route: '/orders/1', factorId: 'f-1' }),
          record({ at: T0 + 3, event: 'locked', result: 'failure' }),
        ],
        [],
      );
      const all = await events.queryAudit({ limit: 10 });
      assert.deepEqual(all.map((r) => r.at), [T0 + 3, T0 + 2, T0 + 1]);
      const bob = await events.queryAudit({ subject: 'bob', limit: 10 });
      assert.equal(bob.length, 1);
      const { id, ...rest } = bob[0]!;
      assert.ok(id > 0);
      assert.deepEqual(rest, { at: T0 + 2, subject: 'bob', event: 'failed', result: 'failure', requestId: 'r-1', clientIp: '203.0.113.9', country: 'GB', device: 'd1', route: '/orders/1', factorId: 'f-1', method: 'totp', reason: 'wrong', detail: {} });
      assert.deepEqual((await events.queryAudit({ result: 'failure', subject: 'alice', limit: 10 })).map((r) => r.event), ['locked']);
      assert.deepEqual((await events.queryAudit({ event: 'verified', limit: 10 }))[0]!.detail, { remaining: 9 });
      assert.deepEqual((await events.queryAudit({ from: T0 + 2, to: T0 + 3, limit: 10 })).map((r) => r.at), [T0 + 2]);
      // Paging: the cursor is the last id of the page.
      const first = await events.queryAudit({ limit: 2 });
      const second = await events.queryAudit({ limit: 2, beforeId: first.at(-1)!.id });
      assert.deepEqual([...first, ...second].map((r) => r.at), [T0 + 3, T0 + 2, T0 + 1]);
    });

    test('purge deletes audit records older than the cut-off only', { skip: reason }, async () => {
      const { events } = fixture;
      await events.append([record({ at: T0 }), record({ at: T0 + 10 }), record({ at: T0 + 20 })], []);
      assert.equal(await events.purgeAudit(T0 + 10), 1);
      assert.deepEqual((await events.queryAudit({ limit: 10 })).map((r) => r.at), [T0 + 20, T0 + 10]);
    });

    test('an outbox item is claimed by one replica at a time, until its lease runs out', { skip: reason }, async () => {
      const { events } = fixture;
      const other = await fixture.replica();
      await events.append([], [item('a'), item('b', { createdAt: T0 + 1 })]);
      // Both claim at once: every item goes to exactly one of them.
      const [mine, theirs] = await Promise.all([events.claimOutbox('one', T0 + 5, 60_000, 10), other.claimOutbox('two', T0 + 5, 60_000, 10)]);
      assert.deepEqual([...mine, ...theirs].map((i) => i.id).sort(), ['a', 'b']);
      assert.ok([...mine, ...theirs].every((i) => i.attempts === 1));
      assert.deepEqual(await other.claimOutbox('two', T0 + 10, 60_000, 10), []);
      // The lease ran out (its holder died): another replica takes it, and the old holder can no longer finish it.
      const holder = mine.length > 0 ? 'one' : 'two';
      const taken = await other.claimOutbox('three', T0 + 5 + 60_000, 60_000, 10);
      assert.equal(taken.length, 2);
      assert.ok(taken.every((i) => i.attempts === 2));
      assert.equal(await events.outboxDelivered(taken[0]!.id, holder, T0), false);
      assert.equal(await events.outboxDelivered(taken[0]!.id, 'three', T0 + 70_000), true);
      assert.equal(await events.outboxDelivered(taken[0]!.id, 'three', T0 + 70_000), false);
    });

    test('retry puts an item back for later, dead keeps it as a dead letter, the id is never enqueued twice', { skip: reason }, async () => {
      const { events } = fixture;
      await events.append([], [item('x')]);
      await events.append([], [item('x')]);
      const [claimed] = await events.claimOutbox('one', T0, 60_000, 10);
      assert.equal(await events.outboxRetry(claimed!.id, 'one', T0 + 5000, 'ECONNREFUSED'), true);
      assert.deepEqual(await events.claimOutbox('one', T0 + 4999, 60_000, 10), []);
      const [again] = await events.claimOutbox('one', T0 + 5000, 60_000, 10);
      assert.equal(again!.attempts, 2);
      assert.equal(again!.lastError, 'ECONNREFUSED');
      assert.equal(await events.outboxDead(again!.id, 'one', T0 + 6000, 'timed out'), true);
      const dead = await events.listOutbox('dead', 10);
      assert.deepEqual(dead.map((i) => [i.id, i.state, i.attempts, i.lastError, i.doneAt]), [['x', 'dead', 2, 'timed out', T0 + 6000]]);
      assert.deepEqual(await events.claimOutbox('one', T0 + 10 ** 9, 60_000, 10), []);
      assert.equal(await events.purgeOutbox(T0 + 6001), 1);
      assert.deepEqual(await events.listOutbox('dead', 10), []);
    });

    test('markSeen says "first" to exactly one of concurrent callers and keeps last_seen moving forward', { skip: reason }, async () => {
      const { events } = fixture;
      const other = await fixture.replica();
      const firsts = await Promise.all([events.markSeen('alice', 'country', 'GB', T0), other.markSeen('alice', 'country', 'GB', T0), events.markSeen('alice', 'country', 'GB', T0)]);
      assert.equal(firsts.filter(Boolean).length, 1);
      assert.equal(await events.markSeen('alice', 'country', 'GB', T0 + 100), false);
      assert.equal(await events.markSeen('alice', 'country', 'GB', T0 + 50), false);
      assert.equal(await events.markSeen('alice', 'device', 'abc', T0 + 7), true);
      assert.deepEqual(await events.listSeen('alice'), [
        { kind: 'country', value: 'GB', firstSeen: T0, lastSeen: T0 + 100 },
        { kind: 'device', value: 'abc', firstSeen: T0 + 7, lastSeen: T0 + 7 },
      ]);
      assert.deepEqual(await events.listSeen('bob'), []);
    });
  });
}
