import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { parsePolicy } from '../../src/config/load.js';
import type { GatewayPolicy } from '../../src/config/types.js';
import { TLS_CIPHERS } from '../../src/tls/credentials.js';
import { makeCertificate, type TestCertificate } from '../support/tls.js';
import { HEAD, issuesOf, ROUTE } from './support.js';

/** HEAD + one route, then `listen:` (line 10), `tls:` (line 11) and the block (from line 12). */
function withTls(block: string): string {
  return `${HEAD}${ROUTE}listen:\n  tls:\n${block}`;
}

describe('listen.tls in the policy file', () => {
  let dir: string;
  let cert: TestCertificate;
  let other: TestCertificate;
  let keyText: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'mfa-gw-tls-config-'));
    cert = makeCertificate(dir, 'server');
    other = makeCertificate(dir, 'other');
    keyText = readFileSync(cert.keyFile, 'utf8');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const parseIn = (text: string, baseDir = dir): GatewayPolicy => parsePolicy(text, 't.yaml', baseDir, { env: {} });
  const issuesIn = (text: string): string[] => issuesOf(text, { baseDir: dir });

  test('a matching pair loads: TLS 1.3 by default, no HSTS, the certificate identified by its fingerprint', () => {
    const policy = parseIn(withTls(`    cert: ${cert.certFile}\n    key: ${cert.keyFile}\n`));
    const tls = policy.listen.tls;
    assert.ok(tls !== undefined);
    assert.equal(tls.certFile, cert.certFile);
    assert.equal(tls.keyFile, cert.keyFile);
    assert.equal(tls.minVersion, 'TLSv1.3');
    assert.equal(tls.hsts, undefined);
    assert.equal(tls.credentials.fingerprint256, cert.fingerprint256);
    assert.equal(tls.credentials.subject, 'CN=server');
    assert.equal(tls.credentials.cert, readFileSync(cert.certFile, 'utf8'));
    assert.equal(tls.credentials.privateKey(), keyText);
    assert.ok(Object.isFrozen(tls) && Object.isFrozen(tls.credentials));
  });

  test('the private key never shows in JSON or inspect output of the policy', () => {
    const policy = parseIn(withTls(`    cert: ${cert.certFile}\n    key: ${cert.keyFile}\n`));
    const keyBody = keyText.split('\n')[1]!;
    for (const shown of [JSON.stringify(policy.listen), inspect(policy, { depth: Infinity, showHidden: true }), inspect(policy.listen.tls?.credentials)]) {
      assert.ok(!shown.includes('PRIVATE KEY') && !shown.includes(keyBody), shown.slice(0, 200));
    }
    assert.ok(JSON.stringify(policy.listen).includes(cert.fingerprint256));
  });

  test('relative paths are relative to the policy file’s directory', () => {
    const sub = join(dir, 'conf');
    mkdirSync(join(sub, 'tls'), { recursive: true });
    writeFileSync(join(sub, 'tls', 'c.pem'), readFileSync(cert.certFile));
    writeFileSync(join(sub, 'tls', 'k.pem'), keyText);
    const tls = parseIn(withTls('    cert: tls/c.pem\n    key: ./tls/k.pem\n    min_version: TLSv1.2\n'), sub).listen.tls;
    assert.equal(tls?.certFile, join(sub, 'tls', 'c.pem'));
    assert.equal(tls?.keyFile, join(sub, 'tls', 'k.pem'));
    assert.equal(tls?.minVersion, 'TLSv1.2');
  });

  test('hsts compiles to whole seconds', () => {
    const base = `    cert: ${cert.certFile}\n    key: ${cert.keyFile}\n`;
    assert.deepEqual(parseIn(withTls(`${base}    hsts: { max_age: 365d, include_subdomains: true, preload: true }\n`)).listen.tls?.hsts, {
      maxAgeSeconds: 31_536_000,
      includeSubdomains: true,
      preload: true,
    });
    assert.deepEqual(parseIn(withTls(`${base}    hsts: { max_age: 0s }\n`)).listen.tls?.hsts, { maxAgeSeconds: 0, includeSubdomains: false, preload: false });
  });

  test('unreadable, swapped, mismatched and encrypted files are refused with the line and the file named', () => {
    const encrypted = join(dir, 'encrypted.key');
    execFileSync('openssl', ['pkcs8', '-topk8', '-in', cert.keyFile, '-passout', 'pass:not-a-secret', '-out', encrypted], { stdio: 'pipe' });
    const traditional = join(dir, 'traditional.key');
    execFileSync('openssl', ['ec', '-in', cert.keyFile, '-aes256', '-passout', 'pass:not-a-secret', '-out', traditional], { stdio: 'pipe' });
    const cases: ReadonlyArray<readonly [string, string, string]> = [
      [join(dir, 'missing.crt'), join(dir, 'missing.key'), `t.yaml:12: listen.tls.cert: cannot read certificate file "${join(dir, 'missing.crt')}" (no such file)`],
      [cert.keyFile, cert.keyFile, `t.yaml:12: listen.tls.cert: certificate file "${cert.keyFile}" holds no PEM certificate (-----BEGIN CERTIFICATE-----)`],
      [cert.certFile, cert.certFile, `t.yaml:13: listen.tls.key: key file "${cert.certFile}" holds no usable PEM private key`],
      [cert.certFile, other.keyFile, `t.yaml:13: listen.tls.key: key file "${other.keyFile}" is not the private key of the certificate (the first one in the certificate file)`],
      [cert.certFile, encrypted, `t.yaml:13: listen.tls.key: key file "${encrypted}" holds an encrypted private key; give it unencrypted and protect the file (mode 0600)`],
      [cert.certFile, traditional, `t.yaml:13: listen.tls.key: key file "${traditional}" holds an encrypted private key; give it unencrypted and protect the file (mode 0600)`],
      [dir, cert.keyFile, `t.yaml:12: listen.tls.cert: cannot read certificate file "${dir}" (EISDIR)`],
    ];
    for (const [certFile, keyFile, expected] of cases) {
      const lines = issuesIn(withTls(`    cert: ${certFile}\n    key: ${keyFile}\n`));
      if (certFile.endsWith('missing.crt')) {
        assert.deepEqual(lines, [expected, `t.yaml:13: listen.tls.key: cannot read key file "${keyFile}" (no such file)`]);
      } else {
        assert.deepEqual(lines, [expected]);
      }
    }
  });

  test('a broken certificate block is named without quoting the file', () => {
    const broken = join(dir, 'broken.crt');
    writeFileSync(broken, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
    const lines = issuesIn(withTls(`    cert: ${broken}\n    key: ${cert.keyFile}\n`));
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, new RegExp(`^t\\.yaml:12: listen\\.tls\\.cert: certificate file "${broken}" holds a certificate that cannot be read \\([^)]+\\)$`));
    assert.ok(!lines[0]!.includes('bm90'));
  });

  test('the shape is checked by the schema: required files, versions, unknown keys, HSTS rules', () => {
    const files = `    cert: ${cert.certFile}\n    key: ${cert.keyFile}\n`;
    const cases: ReadonlyArray<readonly [string, readonly string[]]> = [
      [`    cert: ${cert.certFile}\n`, ['t.yaml:11: listen.tls.key: required key is missing']],
      [`${files}    min_version: TLSv1.1\n`, ['t.yaml:14: listen.tls.min_version: must be one of: TLSv1.3, TLSv1.2']],
      [`${files}    ciphers: ALL\n`, ['t.yaml:14: listen.tls.ciphers: unknown key (known keys: cert, key, min_version, hsts)']],
      [`${files}    hsts: { include_subdomains: true }\n`, ['t.yaml:14: listen.tls.hsts.max_age: required key is missing']],
      [`${files}    hsts: { max_age: 1500ms }\n`, ['t.yaml:14: listen.tls.hsts.max_age: must be whole seconds (max-age counts seconds)']],
      [`${files}    hsts: { max_age: 731d }\n`, ['t.yaml:14: listen.tls.hsts.max_age: must be at most 730d']],
      [`${files}    hsts: { max_age: 365d, preload: true }\n`, ['t.yaml:14: listen.tls.hsts.preload: needs include_subdomains: true']],
      [`${files}    hsts: { max_age: 30d, include_subdomains: true, preload: true }\n`, ['t.yaml:14: listen.tls.hsts.preload: needs a max_age of at least 365d']],
      [`${files}    hsts: { max_age: 1y }\n`, ['t.yaml:14: listen.tls.hsts.max_age: not a duration "1y": write a whole number and a unit (ms, s, m, h or d), e.g. 30s']],
    ];
    for (const [block, expected] of cases) assert.deepEqual(issuesIn(withTls(block)), expected, block);
  });

  test('the TLS 1.2 suites are ECDHE with AEAD only, and TLS 1.3 is not switched off by the list', () => {
    const suites = TLS_CIPHERS.split(':');
    assert.deepEqual(
      suites.filter((suite) => suite.startsWith('TLS_')),
      ['TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256', 'TLS_AES_128_GCM_SHA256'],
    );
    for (const suite of suites.filter((s) => !s.startsWith('TLS_'))) assert.match(suite, /^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$/);
  });
});
