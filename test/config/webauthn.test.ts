import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { FACTOR_METHODS } from '../../src/routes/factor-methods.js';
import { formatRouteTable } from '../../src/routes/table.js';
import { HEAD, issuesOf, parse, SECRET } from './support.js';

/**
 * `mfa.webauthn`, factor lifetimes and a route's own `methods:` as the loader reads them: defaults,
 * and every refusal with a message that names the level (`methods` is a route key and, under
 * `match`, a list of HTTP methods).
 */

const WEBAUTHN = `mfa:
  webauthn:
    rp_id: example.com
    origins: [https://app.example.com, "https://example.com:8443"]
`;
const head = (mfa: string) => HEAD.replace('upstreams:', `${mfa}upstreams:`);

describe('mfa.webauthn and lifetimes', () => {
  test('defaults: off without the section; with it, preferred verification, 5 m ceremonies, 2 years for keys and 1 year for passkeys', () => {
    const off = parse(`${HEAD}  - { match: { path: /x }, upstream: app, policy: mfa }\n`);
    assert.equal(off.mfa.webauthn, undefined);
    assert.equal(off.mfa.totp.maxAgeMs, undefined);
    assert.equal(off.mfa.hotp.maxAgeMs, undefined);
    const on = parse(`${head(WEBAUTHN)}  - { match: { path: /x }, upstream: app, policy: mfa, methods: [webauthn] }\n`);
    assert.deepEqual(on.mfa.webauthn, {
      rpId: 'example.com',
      rpName: 'mfa-gateway',
      origins: ['https://app.example.com', 'https://example.com:8443'],
      userVerification: 'preferred',
      timeoutMs: 300_000,
      maxAgeMs: { securityKey: 730 * 86_400_000, platform: 365 * 86_400_000 },
    });
    assert.deepEqual(on.routes[0]!.mfaMethods, ['webauthn']);
  });

  test('every setting written out', () => {
    const policy = parse(`${head(`mfa:
  issuer: Orders
  totp: { max_age: 180d }
  hotp: { max_age: 3650d }
  webauthn:
    rp_id: localhost
    rp_name: Orders passkeys
    origins: [http://localhost:8080]
    user_verification: required
    timeout: 30s
    max_age: { security_key: 1d, platform: 90d }
`)}  - { match: { path: /x }, upstream: app, policy: step_up, max_age: 5m, methods: [webauthn, totp, recovery] }\n`);
    assert.equal(policy.mfa.totp.maxAgeMs, 180 * 86_400_000);
    assert.equal(policy.mfa.hotp.maxAgeMs, 3650 * 86_400_000);
    assert.deepEqual(policy.mfa.webauthn, {
      rpId: 'localhost',
      rpName: 'Orders passkeys',
      origins: ['http://localhost:8080'],
      userVerification: 'required',
      timeoutMs: 30_000,
      maxAgeMs: { securityKey: 86_400_000, platform: 90 * 86_400_000 },
    });
    assert.deepEqual(policy.routes[0]!.mfaMethods, ['webauthn', 'totp', 'recovery']);
    assert.ok(Object.isFrozen(policy.routes[0]!.mfaMethods));
    assert.match(formatRouteTable(policy), /step_up max_age=5m accepts=webauthn,totp,recovery/);
  });

  test('origins and rp_id the browser would refuse are refused here, naming the origin', () => {
    const bad = (webauthn: string) => issuesOf(`${head(`mfa:\n  webauthn:\n${webauthn}`)}  - { match: { path: /x }, upstream: app, policy: mfa }\n`);
    assert.deepEqual(bad('    rp_id: Example.com\n    origins: [https://example.com]\n'), [
      't.yaml:8: mfa.webauthn.rp_id: must be a lower-case domain name without scheme, port or path, e.g. example.com',
    ]);
    assert.deepEqual(bad('    rp_id: example.com\n    origins: [http://example.com, https://evil.test, https://app.example.com/login, https://xexample.com]\n'), [
      't.yaml:9: mfa.webauthn.origins[0]: must use https (browsers allow WebAuthn over http only on localhost)',
      't.yaml:9: mfa.webauthn.origins[1]: host evil.test is neither rp_id (example.com) nor under it, so browsers would refuse every ceremony from it',
      't.yaml:9: mfa.webauthn.origins[2]: must be an origin only (scheme://host[:port]), without path, query, user info or upper case: https://app.example.com',
      't.yaml:9: mfa.webauthn.origins[3]: host xexample.com is neither rp_id (example.com) nor under it, so browsers would refuse every ceremony from it',
    ]);
    assert.deepEqual(bad('    rp_id: example.com\n'), ['t.yaml:7: mfa.webauthn.origins: required key is missing']);
    assert.deepEqual(bad('    rp_id: example.com\n    origins: [https://example.com]\n    user_verification: always\n'), [
      't.yaml:10: mfa.webauthn.user_verification: must be one of: required, preferred, discouraged',
    ]);
    assert.deepEqual(bad('    rp_id: example.com\n    origins: [https://example.com]\n    max_age: { security_key: 20y }\n'), [
      't.yaml:10: mfa.webauthn.max_age.security_key: not a duration "20y": write a whole number and a unit (ms, s, m, h or d), e.g. 30s',
    ]);
  });
});

describe("a route's own methods: (second factors) and match.methods (HTTP)", () => {
  const route = (line: string, mfa = WEBAUTHN) => issuesOf(`${head(mfa)}  - ${line}\n`);

  test('names outside the one list are refused, pointing HTTP methods to match.methods', () => {
    assert.deepEqual(route('{ match: { path: /x }, upstream: app, policy: mfa, methods: [GET, webauthn, fax] }'), [
      `t.yaml:13: route 1 (routes[0]).methods[0]: "GET" is not a second-factor method (known: ${FACTOR_METHODS.join(', ')}); to match HTTP methods use match.methods`,
      `t.yaml:13: route 1 (routes[0]).methods[2]: "fax" is not a second-factor method (known: ${FACTOR_METHODS.join(', ')}); to match HTTP methods use match.methods`,
    ]);
  });

  test('a second-factor method under match.methods is refused, pointing to the route key', () => {
    assert.deepEqual(route('{ match: { path: /x, methods: [POST, WebAuthn] }, upstream: app, policy: mfa }'), [
      't.yaml:13: route 1 (routes[0]).match.methods[1]: "WebAuthn" is a second-factor method, not an HTTP method: list it in the route\'s own methods (routes[0].methods)',
    ]);
  });

  test('only mfa and step_up routes take them; an empty or repeated list is refused', () => {
    assert.deepEqual(route('{ match: { path: /x }, upstream: app, policy: bearer, methods: [totp] }'), [
      't.yaml:13: route 1 (routes[0]).methods: second-factor methods apply to mfa and step_up routes only, not to bearer; to match HTTP methods use match.methods',
    ]);
    assert.deepEqual(route('{ match: { path: /x }, upstream: app, policy: mfa, methods: [] }'), ['t.yaml:13: route 1 (routes[0]).methods: must not be empty']);
    assert.deepEqual(route('{ match: { path: /x }, upstream: app, policy: mfa, methods: [totp, totp] }'), ['t.yaml:13: route 1 (routes[0]).methods: must not repeat an item']);
  });

  test('a method the policy cannot offer is refused: webauthn without mfa.webauthn, idp without accept_idp_mfa', () => {
    assert.deepEqual(route('{ match: { path: /x }, upstream: app, policy: step_up, max_age: 1m, methods: [totp, webauthn, idp] }', ''), [
      't.yaml:9: route 1 (routes[0]).methods[1]: webauthn needs mfa.webauthn (rp_id and origins) in the policy',
      't.yaml:9: route 1 (routes[0]).methods[2]: idp needs auth.jwt.accept_idp_mfa: true',
    ]);
    const withIdp = HEAD.replace(`hmac_secret: ${SECRET}`, `hmac_secret: ${SECRET}\n    accept_idp_mfa: true`);
    assert.deepEqual(parse(`${withIdp}  - { match: { path: /x }, upstream: app, policy: mfa, methods: [idp] }\n`).routes[0]!.mfaMethods, ['idp']);
  });
});
