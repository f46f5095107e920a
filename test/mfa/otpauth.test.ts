import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildOtpauthUri, formatManualKey } from '../../src/mfa/otpauth.js';
import { renderQr, renderTerminalQr } from '../../src/mfa/qr.js';

describe('otpauth URI', () => {
  test('issuer and label are percent-encoded: `:`, `&`, `#`, newline cannot inject parameters', () => {
    const uri = buildOtpauthUri({
      type: 'totp',
      issuer: 'Acme: Orders & Co #1',
      account: 'eve&secret=AAAA#x:y\nissuer=Evil',
      secretBase32: 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ',
      algorithm: 'SHA256',
      digits: 8,
      periodSeconds: 60,
    });
    assert.equal(
      uri,
      'otpauth://totp/Acme%3A%20Orders%20%26%20Co%20%231:eve%26secret%3DAAAA%23x%3Ay%0Aissuer%3DEvil' +
        '?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%3A%20Orders%20%26%20Co%20%231&algorithm=SHA256&digits=8&period=60',
    );
    const parsed = new URL(uri);
    assert.deepEqual([...parsed.searchParams.keys()], ['secret', 'issuer', 'algorithm', 'digits', 'period']);
    assert.equal(parsed.searchParams.get('secret'), 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ');
    assert.equal(parsed.searchParams.get('issuer'), 'Acme: Orders & Co #1');
    assert.equal(parsed.hash, '');
    const label = decodeURIComponent(parsed.pathname.slice(2)).split(':');
    assert.equal(parsed.pathname.slice(2).split(':').length, 2, 'exactly one literal label separator');
    assert.ok(label.length >= 2);
  });

  test('HOTP URI carries the counter', () => {
    const uri = buildOtpauthUri({ type: 'hotp', issuer: 'X', account: 'a@b', secretBase32: 'AAAA', algorithm: 'SHA1', digits: 6, counter: 42 });
    assert.equal(uri, 'otpauth://hotp/X:a%40b?secret=AAAA&issuer=X&algorithm=SHA1&digits=6&counter=42');
  });

  test('manual key in groups of four', () => {
    assert.equal(formatManualKey('GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ'), 'GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ');
    assert.equal(formatManualKey('ABCDEF'), 'ABCD EF');
  });
});

describe('QR codes', () => {
  test('SVG and PNG are 300×300 px; terminal rendering is text', async () => {
    const uri = 'otpauth://totp/X:a?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=X';
    const qr = await renderQr(uri);
    assert.match(qr.svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg" width="300" height="300" /);
    assert.match(qr.pngDataUrl, /^data:image\/png;base64,/);
    const png = Buffer.from(qr.pngDataUrl.slice('data:image/png;base64,'.length), 'base64');
    assert.equal(png.readUInt32BE(16), 300);
    assert.equal(png.readUInt32BE(20), 300);
    const terminal = await renderTerminalQr(uri);
    assert.ok(terminal.split('\n').length > 10);
  });
});
