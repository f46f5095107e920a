import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

/**
 * The Traefik and Envoy examples are checked by reading against each proxy's documentation (the
 * nginx and Caddy examples also run in a real nginx / caddy: nginx.test.ts, caddy.test.ts). This
 * test keeps them parseable and pins the settings the gateway's contract depends on, so an edit
 * cannot silently drop one.
 */

const read = (name: string): string => readFileSync(fileURLToPath(new URL(`../../../../config/examples/${name}`, import.meta.url)), 'utf8');

type Tree = Record<string, unknown>;
function at(tree: unknown, ...path: (string | number)[]): unknown {
  let node = tree;
  for (const key of path) {
    assert.ok(typeof node === 'object' && node !== null, `missing ${path.join('.')}`);
    node = (node as Tree)[key as string];
  }
  return node;
}

describe('config/examples', () => {
  test('traefik.yml: forwardAuth to /.mfa/authz/forward-auth, identity replaced, credentials stripped after the decision', () => {
    const doc = parse(read('traefik.yml')) as Tree;
    const forwardAuth = at(doc, 'http', 'middlewares', 'mfa-gateway', 'forwardAuth') as Tree;
    assert.equal(forwardAuth.address, 'http://127.0.0.1:8080/.mfa/authz/forward-auth');
    assert.equal(forwardAuth.trustForwardHeader, false);
    assert.deepEqual(forwardAuth.authRequestHeaders, ['Authorization', 'X-MFA-Token', 'X-Session-Token']);
    const regex = new RegExp(String(forwardAuth.authResponseHeadersRegex).replace('(?i)', ''), 'i');
    for (const name of ['X-Auth-Subject', 'X-Auth-Scopes', 'X-Auth-Mfa', 'X-Auth-Mfa-Time', 'X_auth_subject']) assert.ok(regex.test(name), name);
    assert.ok(!regex.test('X-Session-Token'), 'a session token must never be copied to the backend');
    assert.deepEqual(at(doc, 'http', 'middlewares', 'strip-mfa-credentials', 'headers', 'customRequestHeaders'), { 'X-MFA-Token': '', 'X-Session-Token': '' });
    assert.deepEqual(at(doc, 'http', 'routers', 'api', 'middlewares'), ['mfa-gateway', 'strip-mfa-credentials']);
    assert.match(String(at(doc, 'http', 'routers', 'mfa-endpoints', 'rule')), /!PathPrefix\(`\/\.mfa\/authz\/`\)/);
  });

  // test/doors/forward-auth/caddy.test.ts runs this file in a real Caddy; this pins its shape.
  test('Caddyfile: client copies removed, the decision, then only the identity the gateway set, then the credential deletes, inside one ordered route', () => {
    const text = read('Caddyfile');
    const route = text.slice(text.indexOf('route {'));
    const order = [
      'request_header -X-Auth-*',
      'request_header -X_Auth_*',
      'request_header -X.Auth.*',
      'request_header -X-Request-Id',
      'request_header @mfa_no_upgrade -Connection',
      'reverse_proxy 127.0.0.1:8080 {',
      'method GET',
      'rewrite /.mfa/authz/forward-auth',
      'header_up X-Forwarded-Method {http.request.method}',
      'header_up X-Forwarded-Uri {http.request.uri}',
      '@allowed status 2xx',
      'handle_response @allowed {',
      'mfa_subject {http.reverse_proxy.header.X-Auth-Subject}',
      '@mfa_subject not vars mfa_subject ""',
      'request_header @mfa_subject X-Auth-Subject {http.vars.mfa_subject}',
      'request_header @mfa_time X-Auth-MFA-Time {http.vars.mfa_time}',
      'request_header -X-MFA-Token',
      'request_header -X-Session-Token',
      'header @mfa_session_token X-Session-Token {http.vars.mfa_session_token}',
      'reverse_proxy 127.0.0.1:9000',
    ];
    let from = 0;
    for (const line of order) {
      const found = route.indexOf(line, from);
      assert.ok(found >= from, `"${line}" missing or out of order`);
      from = found + line.length;
    }
    assert.match(text, /handle \/\.mfa\/authz\/\* \{\s*respond 404\s*\}/);
    // copy_headers leaves `{http.reverse_proxy.header.…}` as written when the answer lacks the header (Caddy < 2.9).
    assert.doesNotMatch(text, /^\s*(forward_auth|copy_headers)\b/m);
    assert.doesNotMatch(text, /request_header[^\n]*X-Session-Token \{/, 'a session token is never set on the backend request');
  });

  test('envoy.yaml: ext_authz HTTP service on /.mfa/authz/ext-authz, fail closed, headers in both directions', () => {
    const doc = parse(read('envoy.yaml')) as Tree;
    const hcm = at(doc, 'static_resources', 'listeners', 0, 'filter_chains', 0, 'filters', 0, 'typed_config') as Tree;
    assert.equal(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
    const filters = hcm.http_filters as Tree[];
    assert.deepEqual(
      filters.map((f) => f.name),
      ['envoy.filters.http.header_mutation', 'envoy.filters.http.ext_authz', 'envoy.filters.http.router'],
    );
    const extAuthz = filters[1]!.typed_config as Tree;
    assert.equal(extAuthz['@type'], 'type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz');
    assert.equal(extAuthz.failure_mode_allow, false);
    assert.equal(at(extAuthz, 'http_service', 'path_prefix'), '/.mfa/authz/ext-authz');
    const patterns = (list: unknown): string[] => (at(list, 'patterns') as Tree[]).map((p) => String(p.exact));
    assert.ok(patterns(extAuthz.allowed_headers).includes('x-mfa-token'));
    assert.ok(patterns(extAuthz.allowed_headers).includes('x-session-token'));
    const response = at(extAuthz, 'http_service', 'authorization_response');
    assert.deepEqual(patterns(at(response, 'allowed_upstream_headers')), ['x-auth-subject', 'x-auth-scopes', 'x-auth-mfa', 'x-auth-mfa-time', 'x-request-id']);
    for (const name of ['retry-after', 'ratelimit', 'ratelimit-policy']) assert.ok(patterns(at(response, 'allowed_client_headers')).includes(name), name);
    assert.deepEqual(patterns(at(response, 'allowed_client_headers_on_success')), ['x-session-token', 'x-session-expires', 'ratelimit', 'ratelimit-policy']);
    const removed = (at(filters[0], 'typed_config', 'mutations', 'request_mutations') as Tree[]).map((m) => m.remove);
    assert.deepEqual(removed, ['x-auth-subject', 'x-auth-scopes', 'x-auth-mfa', 'x-auth-mfa-time']);
    const routes = at(hcm, 'route_config', 'virtual_hosts', 0, 'routes') as Tree[];
    assert.deepEqual(at(routes.at(-1), 'request_headers_to_remove'), ['x-mfa-token', 'x-session-token']);
    assert.equal(at(routes[0], 'match', 'prefix'), '/.mfa/authz/');
    assert.equal(at(routes[0], 'direct_response', 'status'), 404);
  });
});
