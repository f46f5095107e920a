import { afterEach, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openPostgresStore } from '../../src/store/postgres.js';
import { openSqliteStore } from '../../src/store/sqlite.js';
import { encodeRecord, readExport, writeExport } from '../../src/store/transfer.js';
import { fakeClock, T0 } from '../support/clock.js';
import { createTestSchema, type TestSchema } from '../support/postgres.js';
import { postgresOrSkip } from '../support/services.js';
import { active, activeContact, credential, populate } from './durable-conformance.js';

const skip = await postgresOrSkip();

/** Every line of an export but the header (which names the source and the time). */
const records = (path: string): string[] => readFileSync(path, 'utf8').split('\n').slice(1);

describe('export file', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mfa-transfer-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('SQLite → file: the exact lines, mode 0600, never over an existing file; read back to the same records', async () => {
    const store = openSqliteStore({ path: join(dir, 'a.db'), clock: fakeClock(T0) });
    try {
      await store.durable.createFactor(active({ id: 'f-1', type: 'hotp', counter: 3 }));
      await store.durable.replaceRecoveryCodes('alice', ['k1$x', 'k1$w'], T0);
      await store.durable.consumeRecoveryCode('alice', 'k1$x', T0 + 7);
      const path = join(dir, 'out.jsonl');
      await store.durable.createContact(activeContact({ id: 'c-1', channel: 'sms', purpose: 'backup' }));
      assert.deepEqual(await writeExport(path, { source: 'sqlite', exportedAt: T0 + 9 }, store.durable.exportAll()), { factors: 1, recoveryCodes: 2, contacts: 1, webauthnCredentials: 0 });
      assert.equal(statSync(path).mode & 0o777, 0o600);
      assert.equal(
        readFileSync(path, 'utf8'),
        `{"format":"mfa-gateway-store-export","version":2,"source":"sqlite","exported_at":${T0 + 9}}\n` +
          `{"type":"factor","id":"f-1","subject":"alice","factor_type":"hotp","status":"active","label":"phone","secret":{"kid":"k1","blob":"bm9uY2UtY2lwaGVydGV4dC10YWc"},"algorithm":"SHA1","digits":6,"period_seconds":30,"counter":3,"created_at":${T0},"pending_until":null,"confirmed_at":${T0}}\n` +
          `{"type":"recovery_code","subject":"alice","hash":"k1$w","created_at":${T0},"used_at":null}\n` +
          `{"type":"recovery_code","subject":"alice","hash":"k1$x","created_at":${T0},"used_at":${T0 + 7}}\n` +
          `{"type":"contact","id":"c-1","subject":"alice","channel":"sms","purpose":"backup","status":"active","label":"work mail","destination":{"kid":"k1","blob":"c2VhbGVkLWFkZHJlc3M"},"created_at":${T0},"pending_until":null,"confirmed_at":${T0}}\n` +
          `{"type":"end","factors":1,"recovery_codes":2,"contacts":1,"webauthn_credentials":0}\n`,
      );
      const read = await readExport(path);
      assert.deepEqual(read.header, { source: 'sqlite', exportedAt: T0 + 9 });
      const exported = [];
      for await (const record of store.durable.exportAll()) exported.push(record);
      assert.deepEqual(read.records, exported);

      await assert.rejects(writeExport(path, { source: 'sqlite', exportedAt: T0 }, store.durable.exportAll()), { code: 'EEXIST' });
      assert.equal(readFileSync(path, 'utf8').split('\n').length, 7, 'the existing file is untouched');
    } finally {
      await store.close();
    }
  });

  test('a file that is not a whole export of a known version is refused, naming the line', async () => {
    const header = `{"format":"mfa-gateway-store-export","version":1,"source":"postgres","exported_at":${T0}}`;
    const code = `{"type":"recovery_code","subject":"alice","hash":"k1$w","created_at":${T0},"used_at":null}`;
    const header2 = header.replace('"version":1', '"version":2');
    const contactLine = encodeRecord({ kind: 'contact', contact: activeContact({ channel: 'sms' }) });
    const credentialLine = encodeRecord({ kind: 'webauthn_credential', credential: credential() });
    const cases: [string, string][] = [
      ['', 'empty.jsonl:1: the file is empty'],
      [`{"format":"mfa-gateway-store-export","version":3,"source":"postgres","exported_at":${T0}}\n`, 'v2.jsonl:1: export format version 3 is not supported (this gateway reads versions 1 and 2)'],
      ['{"type":"factor"}\n', 'v2.jsonl:1: not an mfa-gateway store export (the first line must name the format "mfa-gateway-store-export")'],
      [`${header}\n${code}\n`, 'v2.jsonl:2: no "end" line: the file is truncated'],
      [`${header}\n${code}\n{"type":"end","factors":0,"recovery_codes":2}\n`, 'v2.jsonl:3: the "end" line does not match the records above it (0 factors, 1 recovery codes)'],
      [`${header}\n${code.slice(0, -1)}\n`, 'v2.jsonl:2: not a JSON line'],
      [`${header}\n${code.replace('"used_at":null', '"used_at":null,"extra":1')}\n`, 'v2.jsonl:2: a recovery code needs exactly the fields type, subject, hash, created_at, used_at'],
      [`${header}\n${code.replace(`${T0}`, '"soon"')}\n`, 'v2.jsonl:2: recoveryCode.createdAt must be unix milliseconds'],
      [`${header}\n{"type":"session"}\n`, 'v2.jsonl:2: unknown record type "session"'],
      [`${header}\n{"type":"end","factors":0,"recovery_codes":0}\n${code}\n`, 'v2.jsonl:3: a line after the "end" line'],
      // Version 1 knew no contacts; version 2 counts them at the end.
      [`${header}\n${contactLine}\n`, 'v2.jsonl:2: unknown record type "contact"'],
      [`${header2}\n${contactLine}\n{"type":"end","factors":0,"recovery_codes":0}\n`, 'v2.jsonl:3: the "end" line does not match the records above it (0 factors, 0 recovery codes, 1 contacts, 0 webauthn credentials)'],
      [`${header2}\n${contactLine.replace('"sms"', '"fax"')}\n`, 'v2.jsonl:2: contact.channel must be "email" or "sms"'],
      [`${header2}\n${contactLine.replace('"label"', '"name"')}\n`, 'v2.jsonl:2: a contact needs exactly the fields type, id, subject, channel, purpose, status, label, destination, created_at, pending_until, confirmed_at (destination: kid, blob)'],
      [`${header}\n${credentialLine}\n`, 'v2.jsonl:2: unknown record type "webauthn_credential"'],
      [`${header2}\n${credentialLine}\n{"type":"end","factors":0,"recovery_codes":0}\n`, 'v2.jsonl:3: the "end" line does not match the records above it (0 factors, 0 recovery codes, 0 contacts, 1 webauthn credentials)'],
      [`${header2}\n${credentialLine.replace('"synced":true', '"synced":1')}\n`, 'v2.jsonl:2: credential.synced must be true or false'],
      [`${header2}\n${credentialLine.replace('"label"', '"name"')}\n`, `v2.jsonl:2: a webauthn_credential needs exactly the fields type, id, subject, credential_id, public_key, sign_count, transports, kind, synced, label, created_at, last_used_at (public_key: kid, blob)`],
    ];
    for (const [text, message] of cases) {
      const name = text === '' ? 'empty.jsonl' : 'v2.jsonl';
      writeFileSync(join(dir, name), text);
      await assert.rejects(readExport(join(dir, name)), { name: 'StoreError', code: 'ERR_STORE_EXPORT_FORMAT', message: `${dir}/${message}` });
    }
  });

  test('a factor line is checked as createFactor checks a factor', async () => {
    const line = encodeRecord({ kind: 'factor', factor: active({ digits: 12 }) });
    writeFileSync(join(dir, 'bad.jsonl'), `{"format":"mfa-gateway-store-export","version":1,"source":"sqlite","exported_at":0}\n${line}\n{"type":"end","factors":1,"recovery_codes":0}\n`);
    await assert.rejects(readExport(join(dir, 'bad.jsonl')), { code: 'ERR_STORE_EXPORT_FORMAT', message: `${join(dir, 'bad.jsonl')}:2: factor.digits must be an integer from 6 to 10` });
  });

  test('a version 1 file (before contacts) is read as it was written', async () => {
    const line = encodeRecord({ kind: 'factor', factor: active() });
    writeFileSync(join(dir, 'v1.jsonl'), `{"format":"mfa-gateway-store-export","version":1,"source":"postgres","exported_at":${T0}}\n${line}\n{"type":"end","factors":1,"recovery_codes":0}\n`);
    assert.deepEqual(await readExport(join(dir, 'v1.jsonl')), { header: { source: 'postgres', exportedAt: T0 }, records: [{ kind: 'factor', factor: active() }] });
  });
});

describe('export/import round trip SQLite → PostgreSQL → SQLite', { skip }, () => {
  let dir: string;
  let schema: TestSchema;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mfa-transfer-'));
    schema = await createTestSchema();
  });
  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await schema.drop();
  });

  test('every record arrives byte for byte, used recovery codes included', async () => {
    const clock = fakeClock(T0);
    const a = openSqliteStore({ path: join(dir, 'a.db'), clock });
    const pg = await openPostgresStore(schema.config, { clock, migrate: 'on_start', schema: schema.name });
    const b = openSqliteStore({ path: join(dir, 'b.db'), clock });
    try {
      await populate(a.durable);
      await writeExport(join(dir, '1.jsonl'), { source: 'sqlite', exportedAt: T0 }, a.durable.exportAll());
      assert.deepEqual(await pg.durable.importAll((await readExport(join(dir, '1.jsonl'))).records, { replace: false }), { factors: 5, recoveryCodes: 13, contacts: 1, webauthnCredentials: 2 });
      await writeExport(join(dir, '2.jsonl'), { source: 'postgres', exportedAt: T0 }, pg.durable.exportAll());
      assert.deepEqual(await b.durable.importAll((await readExport(join(dir, '2.jsonl'))).records, { replace: false }), { factors: 5, recoveryCodes: 13, contacts: 1, webauthnCredentials: 2 });
      await writeExport(join(dir, '3.jsonl'), { source: 'sqlite', exportedAt: T0 }, b.durable.exportAll());

      const first = records(join(dir, '1.jsonl'));
      assert.equal(first.length, 1 + 5 + 13 + 1 + 2 + 1);
      assert.deepEqual(records(join(dir, '2.jsonl')), first);
      assert.deepEqual(records(join(dir, '3.jsonl')), first);
      assert.deepEqual(first.slice(0, 5).map((line) => (JSON.parse(line) as { id: string }).id), ['F-upper', 'f-expired', 'f-hotp', 'f-pending', 'f-totp']);

      // And the tables themselves: the same rows, column by column, in the first file and the last.
      const rows = (path: string) => {
        const db = new Database(path, { readonly: true });
        try {
          return ['factors ORDER BY id', 'recovery_codes ORDER BY subject, hash', 'contacts ORDER BY id', 'webauthn_credentials ORDER BY id'].map((table) => db.prepare(`SELECT * FROM ${table}`).all());
        } finally {
          db.close();
        }
      };
      assert.deepEqual(rows(join(dir, 'b.db')), rows(join(dir, 'a.db')));
      assert.equal(await pg.durable.countRecoveryCodes('alice'), 9);
      assert.deepEqual(await pg.durable.consumeRecoveryCode('alice', 'k1$a07', T0 + 300), { consumed: false, remaining: 9 });
    } finally {
      await a.close();
      await pg.close();
      await b.close();
    }
  });
});
