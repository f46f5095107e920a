import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { createSignalReader } from '../../src/events/signals.js';
import { RAW_HEADERS, type RequestView } from '../../src/request/view.js';
import { createWorkspace } from '../support/fixture.js';
import { buildCountryMmdb } from '../support/mmdb.js';

function view(clientIp: string, peerTrusted: boolean, headers: string[]): RequestView {
  const v = { method: 'GET', path: '/orders/1', search: '', host: 'api', proto: 'http', clientIp, forwardedFor: clientIp, forwardedHost: 'api', requestId: 'r', peerTrusted } as const;
  return { ...v, [RAW_HEADERS]: headers } as RequestView;
}

test('country: the trusted header first, else the MaxMind database (read by the real maxmind reader), never an untrusted peer\'s header', () => {
  const ws = createWorkspace();
  try {
    const db = join(ws.dir, 'country.mmdb');
    writeFileSync(db, buildCountryMmdb({ '203.0.113.0/24': 'GB', '198.51.100.0/24': 'FR' }));
    const reader = createSignalReader();
    const config = { countryHeader: 'x-country', geoipDatabase: db, deviceHeader: 'x-device-id' };
    assert.equal(reader.of(view('203.0.113.9', true, ['X-Country', 'de']), config).country, 'DE');
    assert.equal(reader.of(view('203.0.113.9', false, ['X-Country', 'DE']), config).country, 'GB', 'an untrusted peer cannot choose its country');
    assert.equal(reader.of(view('198.51.100.7', true, []), config).country, 'FR');
    assert.equal(reader.of(view('192.0.2.1', true, ['X-Country', 'not-a-country']), config).country, undefined);
    assert.equal(reader.of(view('203.0.113.9', false, []), { deviceHeader: 'x-device-id' }).country, undefined);
  } finally {
    ws.remove();
  }
});

test('device: the device-id header, else a User-Agent fingerprint, always hashed', () => {
  const reader = createSignalReader();
  const config = { deviceHeader: 'x-device-id' };
  const byId = reader.of(view('192.0.2.1', false, ['X-Device-Id', 'laptop-1', 'User-Agent', 'curl/8']), config).device!;
  assert.match(byId, /^[0-9a-f]{32}$/);
  assert.notEqual(byId, 'laptop-1');
  assert.equal(reader.of(view('192.0.2.9', false, ['x-device-id', 'laptop-1']), config).device, byId, 'the same id, the same device');
  const byUa = reader.of(view('192.0.2.1', false, ['User-Agent', 'curl/8']), config).device!;
  assert.notEqual(byUa, byId);
  assert.notEqual(reader.of(view('192.0.2.1', false, ['User-Agent', 'curl/8', 'Accept-Language', 'fr']), config).device, byUa);
  assert.equal(reader.of(view('192.0.2.1', false, []), config).device, undefined);
});
