import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadPolicyFile } from '../../src/config/load.js';
import { parseJwtPublicKeyFile } from '../../src/config/jwt-public-keys.js';
import { HEAD, ROUTE, SECRET, issuesOf, tempDir } from './support.js';

describe('parseJwtPublicKeyFile', () => {
  test('splits PEM blocks and JWK Sets into one string per key', () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }).toString().trim();
    const b = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }).toString().trim();
    assert.deepEqual(parseJwtPublicKeyFile(`# two keys\n${a}\n\n${b}\n`), [a, b]);
    const jwk = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' });
    assert.deepEqual(parseJwtPublicKeyFile(JSON.stringify({ keys: [jwk] })), [JSON.stringify(jwk)]);
  });

  test('says why a file is refused, without quoting it', () => {
    assert.equal(parseJwtPublicKeyFile('{ not json'), 'is not valid JSON');
    assert.equal(parseJwtPublicKeyFile('{"keys": []}'), 'holds an empty key set');
    assert.equal(parseJwtPublicKeyFile('{"keys": [42]}'), 'holds something that is not a JWK');
    assert.equal(parseJwtPublicKeyFile('{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}'), 'holds a JWK that is not a usable public key');
    assert.equal(parseJwtPublicKeyFile('-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n'), 'holds a PEM block that is not a usable public key');
    // An encryption-key line of `keys:` is another format altogether.
    assert.equal(parseJwtPublicKeyFile(`k1 ${'A'.repeat(43)}= 2026-01-01 primary\n`), 'is neither a PEM public key (-----BEGIN PUBLIC KEY-----) nor a JWK');
  });
});

describe('public_keys files', () => {
  test('PEM and JWK files load relative to the policy file; a JWKS file is split into keys', () => {
    using tmp = tempDir();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    mkdirSync(join(tmp.dir, 'keys'));
    const pem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const jwk = { ...ec.publicKey.export({ format: 'jwk' }), kid: 'ec1' };
    writeFileSync(join(tmp.dir, 'keys/rsa.pem'), pem);
    writeFileSync(join(tmp.dir, 'keys/ec.jwk'), JSON.stringify(jwk));
    writeFileSync(join(tmp.dir, 'keys/set.json'), JSON.stringify({ keys: [jwk, { ...jwk, kid: 'ec2' }] }));
    const text = HEAD.replace(`hmac_secret: ${SECRET}`, 'public_keys: [keys/rsa.pem, ./keys/ec.jwk, keys/set.json]') + ROUTE;
    writeFileSync(join(tmp.dir, 'gw.yaml'), text);
    const policy = loadPolicyFile(join(tmp.dir, 'gw.yaml'), { env: {} });
    assert.deepEqual(policy.auth.jwt.staticKeys, [pem.trim(), JSON.stringify(jwk), JSON.stringify(jwk), JSON.stringify({ ...jwk, kid: 'ec2' })]);
    assert.deepEqual(policy.auth.jwt.algorithms, ['RS256', 'ES256']);
  });

  test('a missing file, a private key, a symmetric JWK and junk are refused by line, without their content', () => {
    using tmp = tempDir();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const privatePem = rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    writeFileSync(join(tmp.dir, 'private.pem'), privatePem);
    writeFileSync(join(tmp.dir, 'private.jwk'), JSON.stringify(rsa.privateKey.export({ format: 'jwk' })));
    writeFileSync(join(tmp.dir, 'oct.jwk'), JSON.stringify({ kty: 'oct', k: 'c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA' }));
    writeFileSync(join(tmp.dir, 'junk.txt'), 'hunter2 hunter2\n');
    const text = HEAD.replace(`hmac_secret: ${SECRET}`, 'public_keys:\n      - missing.pem\n      - private.pem\n      - private.jwk\n      - oct.jwk\n      - junk.txt') + ROUTE;
    const lines = issuesOf(text, { baseDir: tmp.dir });
    assert.deepEqual(lines, [
      't.yaml:6: auth.jwt.public_keys[0]: cannot read key file "missing.pem" (no such file)',
      't.yaml:7: auth.jwt.public_keys[1]: key file "private.pem" holds a private key; give the public key only',
      't.yaml:8: auth.jwt.public_keys[2]: key file "private.jwk" holds a private or symmetric key; give the public key only',
      't.yaml:9: auth.jwt.public_keys[3]: key file "oct.jwk" holds a private or symmetric key; give the public key only',
      't.yaml:10: auth.jwt.public_keys[4]: key file "junk.txt" is neither a PEM public key (-----BEGIN PUBLIC KEY-----) nor a JWK',
    ]);
    assert.ok(!lines.join('\n').includes('hunter2'));
  });
});
