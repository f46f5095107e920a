import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startGatewayRig, type GatewayRig } from '../../support/gateway.js';
import { call } from '../../support/http.js';
import { seriesOf } from '../../support/metrics.js';
import { token } from '../../support/tokens.js';

/**
 * A forward-auth answer is counted under the user route that decided it, exactly as the same
 * request proxied by the gateway: requests_total, request_duration and denials mean the same
 * whichever door asked. What no route decided gets a fixed name, never anything from the request.
 */

const ROUTES = `routes:
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: bearer, scopes: [orders:read] }
  - { name: closed, match: { path_prefix: /closed/ }, policy: deny }
default: deny
authz: { trusted_proxies: [127.0.0.1/32] }
`;

describe('forward-auth answers are labelled by the route they decided', () => {
  let rig: GatewayRig;
  let port: number;

  before(async () => {
    rig = await startGatewayRig(ROUTES);
    port = rig.port;
  });
  after(() => rig.close());

  /** nginx's question about `url`. */
  const nginx = (url: string, headers: Record<string, string> = {}) => call(port, 'GET', '/.mfa/authz/auth-request', { 'x-original-method': 'GET', 'x-original-url': url, ...headers });
  /** Traefik's and Caddy's question about `uri`. */
  const traefik = (uri: string, headers: Record<string, string> = {}) =>
    call(port, 'GET', '/.mfa/authz/forward-auth', { 'x-forwarded-method': 'GET', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'api.example.com', 'x-forwarded-uri': uri, ...headers });

  test('each door, the same route label; unmatched, rejected and the endpoint\'s own refusals under fixed names', async () => {
    const bearer = await token('alice', { scopes: ['orders:read'] });
    const expected: [Promise<{ status: number }>, number][] = [
      // A public route: asked by nginx, by Traefik, and proxied.
      [nginx('/public/a'), 200],
      [traefik('/public/b'), 200],
      [call(port, 'GET', '/public/c'), 200],
      // A bearer route without, then with a token.
      [nginx('/orders/1'), 401],
      [call(port, 'GET', '/orders/1'), 401],
      [traefik('/orders/2', { authorization: `Bearer ${bearer}` }), 200],
      // A route closed by policy.
      [nginx('/closed/x'), 403],
      [call(port, 'GET', '/closed/x'), 403],
      // No route matches.
      [traefik('/nowhere'), 404],
      [call(port, 'GET', '/nowhere'), 404],
      // Ambiguous: refused before matching, whether nginx relays it or a client sends it.
      [nginx('/public/%2e%2e/orders/1'), 400],
      [call(port, 'GET', '/public/%2e%2e/orders/1'), 400],
      // nginx sent no X-Original-URL: the original request cannot be rebuilt.
      [call(port, 'GET', '/.mfa/authz/auth-request', { 'x-original-method': 'GET' }), 400],
      // The endpoint's own refusals: an unknown proxy family, an untrusted peer. No route judged them.
      [call(port, 'GET', '/.mfa/authz/unknown'), 404],
      [call(port, 'GET', '/.mfa/authz/auth-request', { 'x-original-method': 'GET', 'x-original-url': '/public/a' }, undefined, { localAddress: '127.0.0.2' }), 403],
    ];
    for (const [reply, status] of expected) assert.equal((await reply).status, status);

    const text = await rig.scrape();
    assert.deepEqual(seriesOf(text, 'mfa_gateway_requests_total'), [
      'mfa_gateway_requests_total{route="(forward-auth)",policy="public",status="403"} 1',
      'mfa_gateway_requests_total{route="(forward-auth)",policy="public",status="404"} 1',
      'mfa_gateway_requests_total{route="(none)",policy="(none)",status="404"} 2',
      'mfa_gateway_requests_total{route="(rejected)",policy="(none)",status="400"} 3',
      'mfa_gateway_requests_total{route="closed",policy="deny",status="403"} 2',
      'mfa_gateway_requests_total{route="orders",policy="bearer",status="200"} 1',
      'mfa_gateway_requests_total{route="orders",policy="bearer",status="401"} 2',
      'mfa_gateway_requests_total{route="public",policy="public",status="200"} 3',
    ]);
    assert.deepEqual(seriesOf(text, 'mfa_gateway_request_duration_seconds_count'), [
      'mfa_gateway_request_duration_seconds_count{route="(forward-auth)"} 2',
      'mfa_gateway_request_duration_seconds_count{route="(none)"} 2',
      'mfa_gateway_request_duration_seconds_count{route="(rejected)"} 3',
      'mfa_gateway_request_duration_seconds_count{route="closed"} 2',
      'mfa_gateway_request_duration_seconds_count{route="orders"} 3',
      'mfa_gateway_request_duration_seconds_count{route="public"} 3',
    ]);
    assert.deepEqual(seriesOf(text, 'mfa_gateway_denials_total'), [
      'mfa_gateway_denials_total{code="forbidden",route="(forward-auth)"} 1',
      'mfa_gateway_denials_total{code="forbidden",route="closed"} 2',
      'mfa_gateway_denials_total{code="invalid_request",route="(rejected)"} 3',
      'mfa_gateway_denials_total{code="invalid_token",route="orders"} 2',
      'mfa_gateway_denials_total{code="not_found",route="(forward-auth)"} 1',
      'mfa_gateway_denials_total{code="route_not_found",route="(none)"} 2',
    ]);
    assert.deepEqual(seriesOf(text, 'mfa_gateway_rejected_requests_total'), [
      'mfa_gateway_rejected_requests_total{reason="authz_original"} 1',
      'mfa_gateway_rejected_requests_total{reason="dot_segment"} 2',
    ]);
  });
});
