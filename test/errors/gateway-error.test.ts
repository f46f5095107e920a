import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AuthConfigError } from '../../src/auth/errors.js';
import { ClusterError } from '../../src/cluster/errors.js';
import { ConfigOptionError, PolicyError } from '../../src/config/errors.js';
import { KeyringError } from '../../src/crypto/errors.js';
import { DeliveryError } from '../../src/delivery/errors.js';
import { ClientAbortedError } from '../../src/forward/errors.js';
import { GatewayError, GuardOptionError } from '../../src/index.js';
import { MfaError } from '../../src/mfa/errors.js';
import { RequestConfigError } from '../../src/request/errors.js';
import { StoreError } from '../../src/store/errors.js';

/** Every concrete subclass, each with one instance as its factories throw it. */
const SAMPLES: readonly (readonly [{ readonly name: string; readonly codes: readonly string[]; is(value: unknown): boolean }, GatewayError])[] = [
  [RequestConfigError, new RequestConfigError('trusted_proxies[0]', 'not an address')],
  [PolicyError, new PolicyError('p.yaml', [{ line: 3, path: 'routes[0].policy', message: 'unknown policy' }])],
  [ConfigOptionError, new ConfigOptionError('debounceMs', 'must be an integer')],
  [AuthConfigError, new AuthConfigError('auth.jwt.algorithms', 'must not be empty')],
  [GuardOptionError, new GuardOptionError('config', 'must be the path of a policy file')],
  [KeyringError, new KeyringError('ERR_KEYRING_MISSING', 'no key')],
  [MfaError, new MfaError('ERR_MFA_INVALID_INPUT', 'secret too short')],
  [StoreError, new StoreError('ERR_STORE_CLOSED', 'the store is closed')],
  [ClientAbortedError, new ClientAbortedError()],
  [ClusterError, new ClusterError('ERR_CLUSTER_WORKER_FAILED', 'worker 1 could not start: cannot listen')],
  [DeliveryError, new DeliveryError('ERR_DELIVERY_FAILED', 'the SMS provider answered 500')],
];

const BRAND = Symbol.for('mfa-gateway.error');
const srcDir = fileURLToPath(new URL('../../src/', import.meta.url));
const docPath = fileURLToPath(new URL('../../../docs/errors.md', import.meta.url));

test('every subclass is a GatewayError named after its class, and only its own is() accepts it', () => {
  for (const [Class, error] of SAMPLES) {
    assert.ok(error instanceof GatewayError, Class.name);
    assert.ok(error instanceof Error, Class.name);
    assert.equal(error.name, Class.name);
    assert.ok(Class.codes.includes(error.code), `${Class.name}: ${error.code}`);
    assert.ok(GatewayError.is(error), Class.name);
    for (const [Other] of SAMPLES) assert.equal(Other.is(error), Other === Class, `${Other.name}.is(${Class.name})`);
  }
});

test('the sample list names every subclass in src (so the checks below see every code)', () => {
  const declared = new Set<string>();
  for (const file of readdirSync(srcDir, { recursive: true, encoding: 'utf8' })) {
    if (!file.endsWith('.js')) continue;
    for (const match of readFileSync(srcDir + file, 'utf8').matchAll(/class (\w+) extends (?:GatewayError|OptionError)\b/g)) declared.add(match[1]!);
  }
  declared.delete('OptionError'); // abstract: the base of the option errors
  assert.deepEqual([...declared].sort(), SAMPLES.map(([Class]) => Class.name).sort());
});

test('codes follow ERR_<AREA>_<FAILURE>, belong to one class each, and are documented', () => {
  const owner = new Map<string, string>();
  for (const [Class] of SAMPLES) {
    assert.ok(Class.codes.length > 0, `${Class.name} declares its codes`);
    for (const code of Class.codes) {
      assert.match(code, /^ERR_[A-Z]+(?:_[A-Z]+)+$/);
      assert.equal(owner.get(code), undefined, `${code} is used by ${owner.get(code)} and ${Class.name}`);
      owner.set(code, Class.name);
    }
  }
  const documented = new Map<string, string>();
  for (const match of readFileSync(docPath, 'utf8').matchAll(/^\| `(ERR_[A-Z_]+)` \| `(\w+)` \|/gm)) documented.set(match[1]!, match[2]!);
  assert.deepEqual([...documented].sort(), [...owner].sort());
});

test('is() works across copies of the package, where instanceof does not', async () => {
  // A second instance of the module, as when a plugin and the application each bundle the package.
  const url = new URL('../../src/errors/gateway-error.js', import.meta.url).href;
  const copy = (await import(`${url}?second-copy`)) as typeof import('../../src/errors/gateway-error.js');
  assert.notEqual(copy.GatewayError, GatewayError);
  class TheirMfaError extends copy.GatewayError<'ERR_MFA_INVALID_INPUT'> {
    static override readonly codes = ['ERR_MFA_INVALID_INPUT'] as const;
  }
  const theirs: unknown = new TheirMfaError('ERR_MFA_INVALID_INPUT', 'secret too short');
  assert.ok(!(theirs instanceof GatewayError));
  assert.ok(!(theirs instanceof MfaError));
  assert.ok(GatewayError.is(theirs));
  assert.ok(MfaError.is(theirs));
  assert.ok(!StoreError.is(theirs));
  assert.ok(copy.GatewayError.is(new MfaError('ERR_MFA_INVALID_INPUT', 'x')));

  // The least a copy must carry: the registered brand and a code.
  const carried = { [BRAND]: true, code: 'ERR_STORE_CLOSED', message: 'the store is closed' };
  assert.ok(GatewayError.is(carried));
  assert.ok(StoreError.is(carried));
  assert.ok(!MfaError.is(carried));
});

test('is() rejects plain Errors and lookalikes', () => {
  const lookalike = Object.assign(new Error('secret too short'), { name: 'MfaError', code: 'ERR_MFA_INVALID_INPUT' });
  const candidates: unknown[] = [
    lookalike,
    new Error('x'),
    { code: 'ERR_MFA_INVALID_INPUT' },
    { [Symbol('mfa-gateway.error')]: true, code: 'ERR_MFA_INVALID_INPUT' },
    { [Symbol.for('mfa-gateway.MfaError')]: true, code: 'ERR_MFA_INVALID_INPUT' },
    { [BRAND]: 'true', code: 'ERR_MFA_INVALID_INPUT' },
    { [BRAND]: true },
    { [BRAND]: true, code: 42 },
    null,
    undefined,
    'ERR_MFA_INVALID_INPUT',
  ];
  for (const value of candidates) {
    assert.ok(!GatewayError.is(value), String(value));
    assert.ok(!MfaError.is(value), String(value));
  }
  // A branded error of another class is a GatewayError, but not an MfaError.
  assert.ok(!MfaError.is({ [BRAND]: true, code: 'ERR_MFA_SOMETHING_NEW' }));
});

test('the brand stays out of logs: not an own, enumerable property', () => {
  const error = new StoreError('ERR_STORE_CLOSED', 'the store is closed');
  assert.deepEqual(Object.getOwnPropertySymbols(error), []);
});

test('messages and extra fields are unchanged', () => {
  const guard = new GuardOptionError('watch', 'must be a boolean');
  assert.equal(guard.message, 'createMfaGuard: option "watch" must be a boolean');
  assert.equal(guard.option, 'watch');
  const request = new RequestConfigError('limits.maxHeaderBytes', 'must be an integer');
  assert.equal(request.message, 'limits.maxHeaderBytes: must be an integer');
  assert.equal(request.option, 'limits.maxHeaderBytes');
  const policy = new PolicyError('p.yaml', [{ line: 3, path: 'routes[0]', message: 'bad' }, { path: '', message: 'unreadable' }]);
  assert.equal(policy.message, 'p.yaml:3: route 1 (routes[0]): bad\np.yaml: unreadable');
  assert.deepEqual(policy.issues, [{ line: 3, path: 'routes[0]', message: 'bad' }, { path: '', message: 'unreadable' }]);
  const cause = new Error('disk');
  assert.equal(new StoreError('ERR_STORE_UNSUPPORTED', 'no', { cause }).cause, cause);
});
