import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { matchRoute, pathHasPrefix } from '../../src/routes/match.js';
import { routesOf } from '../config/support.js';

/** Name of the route that wins, or '-' for none (default deny). */
function winner(routeLines: string, method: string, host: string, path: string): string {
  return matchRoute(routesOf(routeLines), method, host, path)?.name ?? '-';
}

describe('matchRoute', () => {
  test('exact path: the whole path and nothing else', () => {
    const routes = routesOf('  - { name: hz, match: { path: /healthz }, upstream: app, policy: public }\n');
    const names = ['/healthz', '/healthz/', '/healthz/x', '/healthzx', '/Healthz', '/'].map((p) => matchRoute(routes, 'GET', 'h', p)?.name ?? '-');
    assert.deepEqual(names, ['hz', '-', '-', '-', '-', '-']);
  });

  test('path_prefix on segment boundaries', () => {
    const slash = routesOf('  - { name: s, match: { path_prefix: /orders/ }, upstream: app, policy: public }\n');
    const bare = routesOf('  - { name: b, match: { path_prefix: /orders }, upstream: app, policy: public }\n');
    const root = routesOf('  - { name: r, match: { path_prefix: / }, upstream: app, policy: public }\n');
    const paths = ['/orders/', '/orders/x', '/orders/x/y', '/orders', '/ordersx', '/orders-x', '/order', '/', '/x'];
    assert.deepEqual(
      paths.map((p) => matchRoute(slash, 'GET', 'h', p)?.name ?? '-'),
      ['s', 's', 's', '-', '-', '-', '-', '-', '-'],
    );
    assert.deepEqual(
      paths.map((p) => matchRoute(bare, 'GET', 'h', p)?.name ?? '-'),
      ['b', 'b', 'b', 'b', '-', '-', '-', '-', '-'],
    );
    assert.deepEqual(
      paths.map((p) => matchRoute(root, 'GET', 'h', p)?.name ?? '-'),
      ['r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    );
  });

  test('path_regex is anchored on the whole path and never sees the query', () => {
    const routes = routesOf("  - { name: re, match: { path_regex: '/orders/\\d+' }, upstream: app, policy: public }\n");
    const paths = ['/orders/42', '/orders/42/items', '/x/orders/42', '/orders/', '/orders/4a'];
    assert.deepEqual(
      paths.map((p) => matchRoute(routes, 'GET', 'h', p)?.name ?? '-'),
      ['re', '-', '-', '-', '-'],
    );
    // An alternation stays inside the anchors: '/a|/b' is ^(?:/a|/b)$, not ^/a or /b$.
    const alt = routesOf("  - { name: alt, match: { path_regex: '/a|/b' }, upstream: app, policy: public }\n");
    assert.deepEqual(
      ['/a', '/b', '/a/x', '/x/b', '/ab'].map((p) => matchRoute(alt, 'GET', 'h', p)?.name ?? '-'),
      ['alt', 'alt', '-', '-', '-'],
    );
  });

  test('host: exact after normalisation, on both sides', () => {
    const lines = '  - { name: api, match: { host: API.example.com. }, upstream: app, policy: public }\n';
    const hosts = ['api.example.com', 'API.EXAMPLE.COM', 'api.example.com.', 'api.example.com:80', 'api.example.com:443', 'Api.Example.Com.:443', 'api.example.com:8080', 'api.example.com:0443', 'x.api.example.com', 'example.com', '', 'api.example.com..'];
    assert.deepEqual(
      hosts.map((h) => winner(lines, 'GET', h, '/')),
      ['api', 'api', 'api', 'api', 'api', 'api', '-', '-', '-', '-', '-', '-'],
    );
    const v6 = '  - { name: v6, match: { host: "[::1]:443" }, upstream: app, policy: public }\n';
    assert.deepEqual(['[::1]', '[0:0:0:0:0:0:0:1]', '[::1]:80', '[::1]:8443'].map((h) => winner(v6, 'GET', h, '/')), ['v6', '-', 'v6', '-']);
    const withPort = '  - { name: p, match: { host: "api.example.com:8080" }, upstream: app, policy: public }\n';
    assert.deepEqual(
      ['api.example.com:8080', 'API.example.com:8080', 'api.example.com'].map((h) => winner(withPort, 'GET', h, '/')),
      ['p', 'p', '-'],
    );
  });

  test('methods: a set, compared as sent (HTTP methods are case-sensitive)', () => {
    const routes = routesOf('  - { name: rw, match: { methods: [get, POST] }, upstream: app, policy: public }\n');
    assert.deepEqual(
      ['GET', 'POST', 'PUT', 'HEAD', 'get'].map((m) => matchRoute(routes, m, 'h', '/')?.name ?? '-'),
      ['rw', 'rw', '-', '-', '-'],
    );
  });

  test('first match wins; no match is undefined (default deny)', () => {
    const routes = routesOf(`  - { name: pay, match: { path_prefix: /payments/, methods: [POST] }, upstream: app, policy: step_up, max_age: 5m }
  - { name: read, match: { path_prefix: /orders/, methods: [GET] }, upstream: app, policy: bearer }
  - { name: write, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
  - { name: admin-host, match: { host: admin.test }, policy: deny }
  - { name: catch, match: { path_prefix: /public/ }, upstream: app, policy: public }
`);
    const cases: [string, string, string, string][] = [
      ['GET', 'h', '/orders/1', 'read'],
      ['DELETE', 'h', '/orders/1', 'write'],
      ['POST', 'h', '/payments/1', 'pay'],
      ['GET', 'h', '/payments/1', '-'],
      ['GET', 'admin.test', '/public/x', 'admin-host'],
      ['GET', 'other.test', '/public/x', 'catch'],
      ['GET', 'h', '/nothing', '-'],
    ];
    for (const [method, host, path, expected] of cases) {
      assert.equal(matchRoute(routes, method, host, path)?.name ?? '-', expected, `${method} ${host} ${path}`);
    }
    assert.equal(matchRoute([], 'GET', 'h', '/'), undefined);
    // The route object itself comes back, with its index and line.
    const route = matchRoute(routes, 'GET', 'h', '/orders/1')!;
    assert.deepEqual([route.index, route.line, route.policy], [1, 10, 'bearer']);
  });

  test('case_insensitive: per route or for the whole file; the rule path and the request path compared lower-cased', () => {
    const perRoute = routesOf(
      '  - { name: admin, match: { path_prefix: /Admin/, case_insensitive: true }, policy: deny }\n' +
        '  - { name: exact, match: { path: /Health, case_insensitive: true }, upstream: app, policy: public }\n' +
        '  - { name: re, match: { path_regex: "/api/v[0-9]+/x", case_insensitive: true }, upstream: app, policy: public }\n' +
        '  - { name: strict, match: { path_prefix: /Strict/ }, upstream: app, policy: public }\n' +
        '  - { name: rest, match: { path_prefix: / }, upstream: app, policy: bearer }\n',
    );
    const names = ['/admin/x', '/ADMIN/x', '/aDmIn/x', '/health', '/HEALTH', '/API/V2/X', '/Strict/a', '/strict/a'].map((p) => matchRoute(perRoute, 'GET', 'h', p)?.name ?? '-');
    assert.deepEqual(names, ['admin', 'admin', 'admin', 'exact', 'exact', 're', 'strict', 'rest']);
    const global = routesOf('  - { name: admin, match: { path_prefix: /admin/ }, policy: deny }\n  - { name: rest, match: { path_prefix: /, case_insensitive: false }, upstream: app, policy: bearer }\n', 'case_insensitive: true\n');
    assert.equal(matchRoute(global, 'GET', 'h', '/ADMIN/users')?.name, 'admin');
  });

  test('a rule path is written in the one form requests are matched in: %61 in the rule is an a', () => {
    const routes = routesOf('  - { name: admin, match: { path_prefix: /%61dmin/ }, policy: deny }\n  - { name: rest, match: { path_prefix: / }, upstream: app, policy: bearer }\n');
    assert.equal(routes[0]!.match.pathPrefix, '/admin/');
    assert.equal(matchRoute(routes, 'GET', 'h', '/admin/x')?.name, 'admin');
  });

  test('a route with an empty match takes every request', () => {
    assert.equal(winner('  - { name: all, match: {}, policy: deny }\n', 'PATCH', 'x', '/any/thing'), 'all');
    assert.equal(winner('  - { name: all, policy: deny }\n', 'GET', '', '/'), 'all');
  });
});

describe('pathHasPrefix', () => {
  test('pathHasPrefix', () => {
    assert.equal(pathHasPrefix('/a/', '/a/b'), true);
    assert.equal(pathHasPrefix('/a/', '/a'), false);
    assert.equal(pathHasPrefix('/a', '/a'), true);
    assert.equal(pathHasPrefix('/a', '/a/'), true);
    assert.equal(pathHasPrefix('/a', '/ab'), false);
    assert.equal(pathHasPrefix('/', '/anything'), true);
  });
});
