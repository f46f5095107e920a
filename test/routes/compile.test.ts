import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { compileRoutes, type KeyPath, type RawRoute } from '../../src/routes/compile.js';
import { HEAD, ROUTE, issuesOf, parse } from '../config/support.js';

/** A raw route with the defaults the schema would fill in. */
function raw(route: Partial<RawRoute> & Pick<RawRoute, 'policy'>): RawRoute {
  return { match: {}, scopes: [], roles: [], forward_authorization: true, websocket: false, ...route };
}

/** compileRoutes on its own: issues as `path: message`, lines as 10 + route index. */
function compile(routes: readonly RawRoute[], upstreams: readonly string[] = ['app'], caseInsensitive = false): { routes: ReturnType<typeof compileRoutes>; issues: string[] } {
  const issues: string[] = [];
  const format = (path: KeyPath): string => path.map((segment) => (typeof segment === 'number' ? `[${segment}]` : `.${segment}`)).join('').slice(1);
  const compiled = compileRoutes(routes, {
    upstreams,
    mfaPathPrefix: '/.mfa/',
    caseInsensitive,
    report: (path, message) => issues.push(`${format(path)}: ${message}`),
    lineOf: (path) => 10 + Number(path[1]),
    // Whole seconds only: enough for these cases.
    duration: (_path, text) => Number.parseInt(text, 10) * 1000,
  });
  return { routes: compiled, issues };
}

describe('compileRoutes', () => {
  test('works without a policy file: the caller supplies lines, issue reporting and durations', () => {
    const { routes, issues } = compile([
      raw({ name: 'pay', match: { path_prefix: '/pay/', methods: ['post'] }, upstream: 'app', policy: 'step_up', max_age: '90s', scopes: ['a', 'a'] }),
      raw({ match: { host: 'Api.Test.', path_regex: '/x/\\d+' }, policy: 'deny' }),
    ]);
    assert.deepEqual(issues, []);
    assert.deepEqual(
      routes.map((r) => [r.index, r.name, r.line, r.match.host, r.match.methods && [...r.match.methods], r.match.pathRegex?.source, r.maxAgeMs, r.scopes]),
      [
        [0, 'pay', 10, undefined, ['POST'], undefined, 90_000, ['a']],
        [1, 'route_2', 11, 'api.test', undefined, '/x/\\d+', undefined, []],
      ],
    );
  });

  test('reports every problem by key path and goes on', () => {
    const { issues } = compile(
      [raw({ name: 'a', match: { path: '/a', path_prefix: '/a/' }, upstream: 'nowhere', policy: 'mfa', max_age: '5m' }), raw({ name: 'a', policy: 'step_up', upstream: 'app' })],
      [],
    );
    assert.deepEqual(issues, [
      'routes[0].match: at most one of path, path_prefix, path_regex (found path, path_prefix)',
      'routes[0].max_age: applies to step_up only, not to mfa',
      'routes[0].upstream: unknown upstream "nowhere" (no upstreams are defined)',
      'routes[1].name: duplicate route name "a" (route 1 at line 10 has it)',
      'routes[1].policy: step_up needs max_age: how old the last second factor may be, e.g. 5m',
      'routes[1].upstream: unknown upstream "app" (no upstreams are defined)',
    ]);
  });
});

describe('route compile through the loader', () => {
  test('host values are normalised like requests and methods upper-cased', () => {
    const policy = parse(
      HEAD +
        `  - { match: { host: Api.Example.com. }, upstream: app, policy: public }
  - { match: { host: "api.example.com:80" }, upstream: app, policy: public }
  - { match: { host: "API.example.com:8080" }, upstream: app, policy: public }
  - { match: { host: "[::1]:443", methods: [delete, Get, get] }, upstream: app, policy: public }
`,
    );
    assert.deepEqual(
      policy.routes.map((r) => r.match.host),
      ['api.example.com', 'api.example.com', 'api.example.com:8080', '[::1]'],
    );
    assert.deepEqual([...policy.routes[3]!.match.methods!], ['DELETE', 'GET']);
  });
});

describe('route compile errors name the file and line', () => {
  const cases: { name: string; text: string; issues: string[] }[] = [
    {
      name: 'more than one of path, path_prefix, path_regex',
      text: HEAD + '  - name: r0\n    match:\n      path: /a\n      path_prefix: /a/\n    upstream: app\n    policy: public\n',
      issues: ['t.yaml:10: route 1 (routes[0]).match: at most one of path, path_prefix, path_regex (found path, path_prefix)'],
    },
    {
      name: 'paths no canonical request can carry',
      text:
        HEAD +
        '  - { match: { path: "/a?b=1" }, upstream: app, policy: public }\n  - { match: { path_prefix: /a/../b/ }, upstream: app, policy: public }\n  - { match: { path_prefix: /.mfa/x/ }, upstream: app, policy: public }\n',
      issues: [
        "t.yaml:9: route 1 (routes[0]).match.path: matches the path only: a '?' or '#' here could never match",
        "t.yaml:10: route 2 (routes[1]).match.path_prefix: holds '//', a dot segment, ';', '\\' or an encoded '.', '/', '\\' or NUL: requests carrying those are refused with 400, so this could never match",
        't.yaml:11: route 3 (routes[2]).match.path_prefix: lies under mfa.path_prefix (/.mfa/), which the gateway answers itself, so this could never match',
      ],
    },
    {
      name: 'a path_regex that does not compile, or that escapes its anchors',
      text: HEAD + "  - { match: { path_regex: '/orders/(\\d+' }, upstream: app, policy: public }\n  - { match: { path_regex: '/x)|(.*' }, upstream: app, policy: public }\n",
      issues: ["t.yaml:9: route 1 (routes[0]).match.path_regex: invalid regular expression: Unterminated group", "t.yaml:10: route 2 (routes[1]).match.path_regex: invalid regular expression: Unmatched ')'"],
    },
    {
      name: 'a path_regex outside what the linear-time matcher runs',
      text:
        HEAD +
        "  - name: r0\n    match:\n      path_regex: '/a/(?=b)'\n    upstream: app\n    policy: public\n" +
        "  - { match: { path_regex: '/(a)\\1' }, upstream: app, policy: public }\n" +
        "  - { match: { path_regex: '/x/[^/]{1,2000}' }, upstream: app, policy: public }\n",
      issues: [
        "t.yaml:11: route 1 (routes[0]).match.path_regex: lookahead '(?=' at offset 3 is not supported: path_regex is matched in linear time, which rules out lookaround, backreferences and word boundaries",
        "t.yaml:14: route 2 (routes[1]).match.path_regex: backreference '\\1' at offset 4 is not supported: path_regex is matched in linear time, which rules out lookaround, backreferences and word boundaries",
        't.yaml:15: route 3 (routes[2]).match.path_regex: too large: it expands to about 4002 automaton states (at most 1000); counted repetitions like {1,500} copy what they repeat, so prefer + or * there',
      ],
    },
    {
      name: 'step_up without max_age, max_age on another policy',
      text: HEAD + '  - { match: { path: /a }, upstream: app, policy: step_up }\n  - { match: { path: /b }, upstream: app, policy: mfa, max_age: 5m }\n',
      issues: [
        't.yaml:9: route 1 (routes[0]).policy: step_up needs max_age: how old the last second factor may be, e.g. 5m',
        't.yaml:10: route 2 (routes[1]).max_age: applies to step_up only, not to mfa',
      ],
    },
    {
      name: 'upstream missing for a policy other than deny; dangling upstream names',
      text: HEAD + '  - { match: { path: /a }, policy: bearer }\n  - { match: { path: /b }, upstream: nowhere, policy: mfa }\n  - { match: { path: /c }, policy: deny }\n',
      issues: [
        't.yaml:9: route 1 (routes[0]).upstream: required for policy bearer (only deny routes forward nowhere)',
        't.yaml:10: route 2 (routes[1]).upstream: unknown upstream "nowhere" (defined: app)',
      ],
    },
    {
      name: 'scopes on a route that checks no token',
      text: HEAD + '  - { match: { path: /a }, upstream: app, policy: public, scopes: [admin] }\n',
      issues: ['t.yaml:9: route 1 (routes[0]).scopes: a public route checks no token, so scopes and roles would never be enforced'],
    },
    {
      name: 'a duplicate name, including one given by default',
      text: HEAD + ROUTE + '  - { name: r0, match: { path: /y }, upstream: app, policy: public }\n  - { name: route_4, match: { path: /w }, upstream: app, policy: public }\n  - { match: { path: /v }, upstream: app, policy: public }\n',
      issues: ['t.yaml:10: route 2 (routes[1]).name: duplicate route name "r0" (route 1 at line 9 has it)', 't.yaml:12: route 4 (routes[3]): duplicate route name "route_4" (route 3 at line 11 has it)'],
    },
    {
      name: 'host values that are not hosts',
      text:
        HEAD +
        '  - { match: { host: "*.example.com" }, upstream: app, policy: public }\n  - { match: { host: "a b" }, upstream: app, policy: public }\n' +
        '  - { match: { host: "user@example.com" }, upstream: app, policy: public }\n  - { match: { host: "example.com:99999" }, upstream: app, policy: public }\n',
      issues: [
        't.yaml:9: route 1 (routes[0]).match.host: wildcards are not supported: list each host in its own route',
        't.yaml:10: route 2 (routes[1]).match.host: not a host name, IP literal or host:port',
        't.yaml:11: route 3 (routes[2]).match.host: not a host name, IP literal or host:port',
        't.yaml:12: route 4 (routes[3]).match.host: not a host name, IP literal or host:port',
      ],
    },
  ];
  for (const { name, text, issues } of cases) {
    test(name, () => {
      assert.deepEqual(issuesOf(text), issues);
    });
  }
});
