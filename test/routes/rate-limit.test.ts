import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { explain } from '../../src/cli/commands.js';
import { formatRouteTable } from '../../src/routes/table.js';
import { HEAD, issuesOf, parse, routesOf } from '../config/support.js';

/** `rate_limit:` on a route, through the loader: its shape, its default key, and what cannot work. */
describe('route rate_limit', () => {
  test('compiles to requests, a window in ms and a key (ip by default); routes without it have none', () => {
    const routes = routesOf(`  - { name: a, match: { path: /a }, upstream: app, policy: public, rate_limit: { requests: 100, per: 1m } }
  - { name: b, match: { path: /b }, upstream: app, policy: bearer, rate_limit: { requests: 5, per: 1h, key: subject } }
  - { name: c, match: { path: /c }, upstream: app, policy: mfa, rate_limit: { requests: 1, per: 1s, key: ip } }
  - { name: d, match: { path: /d }, upstream: app, policy: public }
`);
    assert.deepEqual(
      routes.map((r) => r.rateLimit),
      [{ requests: 100, perMs: 60_000, key: 'ip' }, { requests: 5, perMs: 3_600_000, key: 'subject' }, { requests: 1, perMs: 1000, key: 'ip' }, undefined],
    );
    assert.ok(Object.isFrozen(routes[0]!.rateLimit));
  });

  const cases: { name: string; line: string; issues: string[] }[] = [
    {
      name: 'a deny route: nothing to count',
      line: '  - { match: { path: /a }, policy: deny, rate_limit: { requests: 1, per: 1m } }\n',
      issues: ['t.yaml:9: route 1 (routes[0]).rate_limit: a deny route refuses every request already; a rate limit would never count'],
    },
    {
      name: 'key: subject on a public route: no token, no subject',
      line: '  - { match: { path: /a }, upstream: app, policy: public, rate_limit: { requests: 1, per: 1m, key: subject } }\n',
      issues: ['t.yaml:9: route 1 (routes[0]).rate_limit.key: a public route checks no token, so there is no subject to count: use key: ip'],
    },
    {
      name: 'a window that is not whole seconds (RateLimit-Policy w is in seconds)',
      line: '  - { match: { path: /a }, upstream: app, policy: public, rate_limit: { requests: 1, per: 1500ms } }\n',
      issues: ['t.yaml:9: route 1 (routes[0]).rate_limit.per: must be whole seconds (RateLimit-Policy counts its window in seconds)'],
    },
    {
      name: 'a window under a second or over a day',
      line: '  - { match: { path: /a }, upstream: app, policy: public, rate_limit: { requests: 1, per: 500ms } }\n  - { match: { path: /b }, upstream: app, policy: public, rate_limit: { requests: 1, per: 2d } }\n',
      issues: [
        't.yaml:9: route 1 (routes[0]).rate_limit.per: must be at least 1s',
        't.yaml:9: route 1 (routes[0]).rate_limit.per: must be whole seconds (RateLimit-Policy counts its window in seconds)',
        't.yaml:10: route 2 (routes[1]).rate_limit.per: must be at most 1d',
      ],
    },
    {
      name: 'schema: requests and per are required, requests is at least 1, key is ip or subject',
      line: '  - { match: { path: /a }, upstream: app, policy: public, rate_limit: { requests: 0, per: 1m, key: user } }\n  - { match: { path: /b }, upstream: app, policy: public, rate_limit: { per: 1m } }\n',
      issues: [
        't.yaml:9: route 1 (routes[0]).rate_limit.requests: must be at least 1',
        't.yaml:9: route 1 (routes[0]).rate_limit.key: must be one of: ip, subject',
        't.yaml:10: route 2 (routes[1]).rate_limit.requests: required key is missing',
      ],
    },
  ];
  for (const { name, line, issues } of cases) {
    test(name, () => {
      assert.deepEqual(issuesOf(HEAD + line), issues);
    });
  }
});

describe('rate_limit in check and explain', () => {
  const policy = parse(`${HEAD}  - { name: feed, match: { path_prefix: /feed/ }, upstream: app, policy: public, rate_limit: { requests: 100, per: 1m } }
  - { name: pay, match: { path: /pay }, upstream: app, policy: step_up, max_age: 5m, rate_limit: { requests: 5, per: 1h, key: subject } }
`);

  test('the route table shows each limit beside the policy', () => {
    const table = formatRouteTable(policy);
    assert.match(table, /public rate_limit=100\/1m:ip /);
    assert.match(table, /step_up max_age=5m rate_limit=5\/1h:subject /);
  });

  test('explain says what is counted and when', () => {
    assert.match(explain(policy, 'GET', 'http://localhost/feed/1'), /\nlimit: {3}100 per 1m per client address, before authentication \(then 429 rate_limited\)$/);
    assert.match(explain(policy, 'POST', 'http://localhost/pay'), /\nlimit: {3}5 per 1h per token subject, after authentication \(then 429 rate_limited\)$/);
  });
});
