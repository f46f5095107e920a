import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { findShadowedRoutes, findWeakerRules, formatRouteTable } from '../../src/routes/table.js';
import { HEAD, parse, routesOf } from '../config/support.js';

function shadows(routeLines: string): string[] {
  return findShadowedRoutes(routesOf(routeLines)).map(({ route, shadowedBy }) => `${route.name}<${shadowedBy.name}`);
}

const r = (name: string, match: string, rest = 'upstream: app, policy: bearer'): string => `  - { name: ${name}, match: { ${match} }, ${rest} }\n`;

describe('findShadowedRoutes', () => {
  test('a broader earlier rule shadows a narrower later one', () => {
    assert.deepEqual(shadows(r('all', 'path_prefix: /orders/') + r('get', 'path_prefix: /orders/, methods: [GET]')), ['get<all']);
    assert.deepEqual(shadows(r('any', '') + r('x', "path_regex: '/x/\\d+'")), ['x<any']);
    assert.deepEqual(shadows(r('pre', 'path_prefix: /a') + r('exact', 'path: /a/b') + r('sub', 'path_prefix: /a/b/') + r('self', 'path: /a')), ['exact<pre', 'sub<pre', 'self<pre']);
    assert.deepEqual(shadows(r('re', 'path_regex: "/a/[0-9]+"') + r('exact', 'path: /a/12')), ['exact<re']);
    assert.deepEqual(shadows(r('nohost', 'path: /a') + r('host', 'host: a.test, path: /a')), ['host<nohost']);
    assert.deepEqual(shadows(r('gp', 'path: /a, methods: [GET, POST]') + r('g', 'path: /a, methods: [GET]')), ['g<gp']);
    // Reported against the first rule that shadows it.
    assert.deepEqual(shadows(r('one', 'path_prefix: /') + r('two', 'path_prefix: /a/') + r('three', 'path: /a/b')), ['two<one', 'three<one']);
  });

  test('a rule any request could still reach is not reported', () => {
    assert.deepEqual(shadows(r('get', 'path_prefix: /orders/, methods: [GET]') + r('all', 'path_prefix: /orders/')), []);
    assert.deepEqual(shadows(r('slash', 'path_prefix: /orders/') + r('bare', 'path_prefix: /orders')), []);
    assert.deepEqual(shadows(r('x', 'path_prefix: /orders') + r('y', 'path_prefix: /ordersx/')), []);
    assert.deepEqual(shadows(r('host', 'host: a.test') + r('other', 'host: b.test') + r('none', 'path: /')), []);
    assert.deepEqual(shadows(r('g', 'path: /a, methods: [GET]') + r('gp', 'path: /a, methods: [GET, POST]')), []);
    assert.deepEqual(shadows(r('g', 'methods: [GET]') + r('any', '')), []);
    // An earlier regex never counts as covering a prefix or another regex: it cannot be decided.
    assert.deepEqual(shadows(r('re', 'path_regex: "/a/.*"') + r('pre', 'path_prefix: /a/') + r('re2', 'path_regex: "/a/b"')), []);
    assert.deepEqual(shadows(r('pre', 'path_prefix: /a/') + r('re', 'path_regex: "/a/b"')), []);
    assert.deepEqual(shadows(r('re', 'path_regex: "/a/[0-9]+"') + r('exact', 'path: /a/b')), []);
  });
});

describe('formatRouteTable', () => {
  test('a fixed-width table, then a warning per shadowed rule, then the default', () => {
    const policy = parse(
      HEAD +
        `  - { name: health, match: { path: /healthz }, upstream: app, policy: public }
  - { name: orders-all, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: orders-read, match: { path_prefix: /orders/, methods: [GET, HEAD] }, upstream: app, policy: bearer, scopes: [orders:read, x] }
  - { name: pay, match: { host: Pay.Test, path_regex: '/pay/\\d+', methods: [POST] }, upstream: app, policy: step_up, max_age: 90s, roles: [payer] }
  - { match: { path_prefix: /v1 }, policy: deny }
`,
    );
    assert.equal(
      formatRouteTable(policy),
      [
        '#  name         host      methods   path       policy               upstream  scopes/roles',
        '1  health       *         *         /healthz   public               app       -',
        '2  orders-all   *         *         /orders/*  mfa                  app       -',
        '3  orders-read  *         GET,HEAD  /orders/*  bearer               app       scopes=orders:read,x',
        '4  pay          pay.test  POST      ~/pay/\\d+  step_up max_age=90s  app       roles=payer',
        '5  route_5      *         *         /v1[/*]    deny                 -         -',
        'warning: route 3 (orders-read) is shadowed by route 2 (orders-all)',
        'default: deny',
      ].join('\n'),
    );
  });

  test('no routes at all', () => {
    assert.equal(
      formatRouteTable(parse(HEAD.replace('routes:\n', 'routes: []\n'))),
      ['#  name  host  methods  path  policy  upstream  scopes/roles', '(no routes: every request is refused)', 'default: deny'].join('\n'),
    );
  });
});

describe('stricter rules below broader weaker ones', () => {
  const weaker = (routeLines: string): string[] =>
    findWeakerRules(routesOf(routeLines)).map(({ route, by, whole }) => `${route.name}<${by.name}${whole ? '' : ' (some)'}`);
  const p = (name: string, match: string, policy: string): string => `  - { name: ${name}, match: { ${match} }, upstream: app, policy: ${policy} }\n`;
  const deny = (name: string, match: string): string => `  - { name: ${name}, match: { ${match} }, policy: deny }\n`;

  test('a deny or mfa rule under a broader bearer or public rule is reported, whole or in part', () => {
    assert.deepEqual(weaker(p('api', 'path_prefix: /api/', 'bearer') + deny('admin', 'path_prefix: /api/admin/')), ['admin<api']);
    assert.deepEqual(weaker(p('api', 'path_prefix: /api/, methods: [GET]', 'bearer') + deny('admin', 'path_prefix: /api/admin/')), ['admin<api (some)']);
    assert.deepEqual(weaker(p('all', '', 'public') + p('pay', 'path: /pay', 'step_up, max_age: 5m')), ['pay<all']);
    assert.deepEqual(weaker(p('api', 'path_prefix: /API/, case_insensitive: true', 'bearer') + p('acct', 'path_prefix: /api/account/', 'mfa')), ['acct<api']);
  });

  test('not reported: a stricter or equal rule first, a method carve-out on the same path, a narrower exception, disjoint rules', () => {
    assert.deepEqual(weaker(deny('admin', 'path_prefix: /api/admin/') + p('api', 'path_prefix: /api/', 'bearer')), []);
    assert.deepEqual(weaker(p('read', 'path_prefix: /orders/, methods: [GET]', 'bearer') + p('write', 'path_prefix: /orders/', 'mfa')), []);
    assert.deepEqual(weaker(p('health', 'path: /api/admin/health', 'public') + deny('admin', 'path_prefix: /api/admin/')), []);
    assert.deepEqual(weaker(p('get', 'path_prefix: /api/, methods: [GET]', 'bearer') + deny('del', 'path_prefix: /api/admin/, methods: [DELETE]')), []);
    assert.deepEqual(weaker(p('a', 'path_prefix: /a/', 'public') + p('b', 'path_prefix: /b/', 'mfa')), []);
    // A case-sensitive rule does not take the other spellings a case-insensitive one names.
    assert.deepEqual(weaker(p('api', 'path_prefix: /api/', 'bearer') + p('acct', 'path_prefix: /api/account/, case_insensitive: true', 'mfa')), []);
  });

  test('the route table says so, once per rule, with what to do', () => {
    const text = formatRouteTable({ routes: routesOf(p('api', 'path_prefix: /api/', 'bearer') + deny('admin', 'path_prefix: /api/admin/')), default: 'deny' });
    assert.match(text, /^warning: route 2 \(admin, deny\) comes after the weaker route 1 \(api, bearer\), which decides every request it names first; move it above$/m);
    assert.doesNotMatch(text, /is shadowed by/);
  });
});
