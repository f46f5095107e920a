/** The decision's pure stages, exported for `explain` and the doors, on the same compiled policies. */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { authorize, challengeMaxAge, RESERVED_ROUTES, reservedEndpoint, selectRoute } from '../../src/decision/engine.js';
import type { Route } from '../../src/config/types.js';
import { ALT_POLICY_TEXT, MAIN_POLICY_TEXT, PRINCIPALS, compile, principal } from './fakes.js';

const main = compile(MAIN_POLICY_TEXT, 'main.yaml');
const alt = compile(ALT_POLICY_TEXT, 'alt.yaml');

function named(name: string): Route {
  const route = main.routes.find((r) => r.name === name);
  assert.ok(route !== undefined, name);
  return route;
}

describe('the fixture policies', () => {
  test('are compiled by the real loader: frozen, in file order, with the written names and policies', () => {
    assert.ok(Object.isFrozen(main) && Object.isFrozen(main.routes) && Object.isFrozen(main.routes[0]));
    assert.deepEqual(
      main.routes.map((r) => `${r.index} ${r.name} ${r.policy}`),
      [
        '0 health public',
        '1 docs public',
        '2 docs-secret deny',
        '3 pay step_up',
        '4 pay-other bearer',
        '5 orders-read bearer',
        '6 orders-write mfa',
        '7 api bearer',
        '8 api-8443 public',
        '9 item bearer',
        '10 reports bearer',
        '11 admin deny',
        '12 mfa-shadow public',
      ],
    );
    assert.deepEqual(named('api').match, { host: 'api.example.com', pathPrefix: '/v1/' });
    const ordersRead = named('orders-read').match;
    assert.deepEqual({ ...ordersRead, methods: [...(ordersRead.methods ?? [])] }, { pathPrefix: '/orders', methods: ['GET', 'HEAD'] });
    assert.equal(named('pay').maxAgeMs, 300_000);
    assert.equal(main.mfa.session.ttlMs, 7_200_000);
    assert.equal(main.mfa.pathPrefix, '/.mfa/');
    assert.equal(alt.mfa.session.ttlMs, 1_800_000);
    assert.equal(alt.mfa.pathPrefix, '/_gw/');
  });
});

describe('selectRoute', () => {
  test('returns the policy’s own route object for the first match', () => {
    assert.equal(selectRoute(main, { method: 'GET', host: 'gw.example.com', path: '/docs/secret' }), named('docs'));
    assert.equal(selectRoute(main, { method: 'POST', host: 'gw.example.com', path: '/payments/1' }), named('pay'));
    assert.equal(selectRoute(main, { method: 'GET', host: 'API.example.com.:443', path: '/v1/x' }), named('api'));
  });

  test('default deny is a route_not_found problem', () => {
    assert.deepEqual(selectRoute(main, { method: 'GET', host: 'gw.example.com', path: '/nowhere' }), {
      code: 'route_not_found',
      detail: 'no route matches this request',
    });
  });

  test('knows nothing of the reserved prefix: /.mfa/… goes to the routes', () => {
    assert.equal(selectRoute(main, { method: 'GET', host: 'gw.example.com', path: '/.mfa/setup' }), named('mfa-shadow'));
  });
});

describe('authorize', () => {
  test('every route scope is required; the problem names all of them', () => {
    const item = named('item');
    assert.equal(authorize(item, PRINCIPALS.carol), undefined);
    const expected = { code: 'insufficient_scope', detail: 'the token lacks a scope this route requires', scope: 'items:read items:list' };
    assert.deepEqual(authorize(item, PRINCIPALS.alice), expected);
    assert.deepEqual(authorize(item, PRINCIPALS.bob), expected);
  });

  test('any one listed role is enough; none → forbidden; scopes are checked first', () => {
    const reports = named('reports');
    assert.equal(authorize(reports, PRINCIPALS.bob), undefined);
    assert.equal(authorize(reports, PRINCIPALS.carol), undefined);
    assert.deepEqual(authorize(reports, PRINCIPALS.alice), { code: 'forbidden', detail: 'the token lacks a role this route requires' });
    const both = compile(MAIN_POLICY_TEXT.replace('roles: [auditor, admin]', 'roles: [auditor], scopes: [reports:read]'), 'both.yaml').routes.find((r) => r.name === 'reports');
    assert.ok(both !== undefined);
    assert.deepEqual(authorize(both, principal('eve', [], [])), { code: 'insufficient_scope', detail: 'the token lacks a scope this route requires', scope: 'reports:read' });
    assert.deepEqual(authorize(both, principal('eve', ['reports:read'], [])), { code: 'forbidden', detail: 'the token lacks a role this route requires' });
    assert.equal(authorize(both, principal('eve', ['reports:read'], ['auditor'])), undefined);
  });

  test('a route with neither scopes nor roles admits any principal', () => {
    assert.equal(authorize(named('pay-other'), principal('eve', [], [])), undefined);
    assert.equal(authorize(RESERVED_ROUTES.mfaApi, principal('eve', [], [])), undefined);
  });
});

describe('challengeMaxAge', () => {
  test('mfa: the session TTL; step_up: the route max_age; in seconds', () => {
    assert.equal(challengeMaxAge(main, named('orders-write')), 7200);
    assert.equal(challengeMaxAge(main, named('pay')), 300);
    assert.equal(challengeMaxAge(alt, alt.routes[0]!), 1800);
  });

  test('rounds a sub-second remainder down', () => {
    const policy = compile(MAIN_POLICY_TEXT.replace('ttl: 2h', 'ttl: 90500ms').replace('max_age: 5m', 'max_age: 1999ms'), 'ms.yaml');
    assert.equal(challengeMaxAge(policy, policy.routes.find((r) => r.name === 'orders-write')!), 90);
    assert.equal(challengeMaxAge(policy, policy.routes.find((r) => r.name === 'pay')!), 1);
  });
});

describe('reservedEndpoint', () => {
  const cases: readonly (readonly [method: string, path: string, expected: ReturnType<typeof reservedEndpoint>])[] = [
    ['GET', '/.mfa/authz/auth-request', { endpoint: { kind: 'forward-auth', subpath: 'auth-request' }, route: RESERVED_ROUTES.forwardAuth }],
    ['DELETE', '/.mfa/authz/ext-authz/a/b', { endpoint: { kind: 'forward-auth', subpath: 'ext-authz/a/b' }, route: RESERVED_ROUTES.forwardAuth }],
    ['GET', '/.mfa/authz/', { endpoint: { kind: 'forward-auth', subpath: '' }, route: RESERVED_ROUTES.forwardAuth }],
    ['GET', '/.mfa/authz', { endpoint: { kind: 'mfa-api', subpath: 'authz' }, route: RESERVED_ROUTES.mfaApi }],
    ['GET', '/.mfa/setup', { endpoint: { kind: 'setup', subpath: 'setup' }, route: RESERVED_ROUTES.setup }],
    ['POST', '/.mfa/setup', { endpoint: { kind: 'mfa-api', subpath: 'setup' }, route: RESERVED_ROUTES.mfaApi }],
    // The page's sign-in and session endpoints check their own credential (docs/setup-page.md), any method.
    ['GET', '/.mfa/setup/', { endpoint: { kind: 'setup', subpath: 'setup/' }, route: RESERVED_ROUTES.setup }],
    ['POST', '/.mfa/setup/api/totp/enroll', { endpoint: { kind: 'setup', subpath: 'setup/api/totp/enroll' }, route: RESERVED_ROUTES.setup }],
    ['POST', '/.mfa/verify', { endpoint: { kind: 'mfa-api', subpath: 'verify' }, route: RESERVED_ROUTES.mfaApi }],
    ['DELETE', '/.mfa/factors/f1', { endpoint: { kind: 'mfa-api', subpath: 'factors/f1' }, route: RESERVED_ROUTES.mfaApi }],
    ['GET', '/.mfa', undefined],
    ['GET', '/.mfax/setup', undefined],
    ['GET', '/x/.mfa/setup', undefined],
    ['GET', '/_gw/setup', undefined],
  ];
  for (const [method, path, expected] of cases) {
    test(`${method} ${path}`, () => {
      const got = reservedEndpoint(main, { method, path });
      assert.deepEqual(got, expected);
      assert.equal(got?.route, expected?.route);
    });
  }

  test('follows mfa.path_prefix', () => {
    assert.deepEqual(reservedEndpoint(alt, { method: 'GET', path: '/_gw/setup' }), { endpoint: { kind: 'setup', subpath: 'setup' }, route: RESERVED_ROUTES.setup });
    assert.equal(reservedEndpoint(alt, { method: 'GET', path: '/.mfa/setup' }), undefined);
  });
});

describe('RESERVED_ROUTES', () => {
  test('three frozen built-in routes, outside the file (index -1), forwarding nothing', () => {
    assert.ok(Object.isFrozen(RESERVED_ROUTES));
    assert.deepEqual(
      Object.entries(RESERVED_ROUTES).map(([key, route]) => [key, route.name, route.policy]),
      [
        ['forwardAuth', '(forward-auth)', 'public'],
        ['setup', '(setup)', 'public'],
        ['mfaApi', '(mfa-api)', 'bearer'],
      ],
    );
    for (const route of Object.values(RESERVED_ROUTES)) {
      assert.ok(Object.isFrozen(route) && Object.isFrozen(route.match), route.name);
      assert.deepEqual(route, { index: -1, name: route.name, line: 0, match: {}, policy: route.policy, scopes: [], roles: [], forwardAuthorization: false, websocket: false });
      // No user route can carry these names: the schema's name pattern has no parentheses.
      assert.ok(!main.routes.some((r) => r.name === route.name));
    }
  });
});
