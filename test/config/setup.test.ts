import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { HEAD, ROUTE, issuesOf, parse } from './support.js';

/** `setup:` (docs/setup-page.md): compiled values, and refusals that name the line to edit. */

const TEXT = HEAD + ROUTE; // lines 1–9; setup: starts on line 10

describe('setup: in the policy', () => {
  test('absent: no sign-in, no public URL', () => {
    assert.deepEqual(parse(TEXT).setup, {});
  });

  test('sign-in with a public client and defaults; a secret from the environment', () => {
    const base = `${TEXT}setup:\n  public_url: https://gw.example.com\n  oidc: { client_id: setup-page }\n`;
    assert.deepEqual(parse(base).setup, { publicOrigin: 'https://gw.example.com', oidc: { clientId: 'setup-page', scopes: ['openid'] } });
    const confidential = `${TEXT}setup:\n  public_url: https://gw.example.com/\n  oidc: { client_id: c, client_secret_env: OIDC_SECRET, scopes: [openid, profile], resource: "https://api.example.com/" }\n`;
    assert.deepEqual(parse(confidential, { OIDC_SECRET: 's3cret' }).setup, {
      publicOrigin: 'https://gw.example.com',
      oidc: { clientId: 'c', clientSecret: 's3cret', scopes: ['openid', 'profile'], resource: 'https://api.example.com/' },
    });
    assert.deepEqual(parse(`${TEXT}setup: { public_url: "http://localhost:8080" }\n`).setup, { publicOrigin: 'http://localhost:8080' });
  });

  test('what cannot work is refused, naming the line', () => {
    const cases: [string, Record<string, string>, string[]][] = [
      ['setup:\n  public_url: https://gw.example.com/app\n', {}, ['t.yaml:11: setup.public_url: must be an origin only (scheme://host[:port]), without path, query, user info or upper case: https://gw.example.com']],
      ['setup:\n  public_url: http://gw.example.com\n', {}, ['t.yaml:11: setup.public_url: must use https (http only for localhost): the sign-in cookie and invite links would travel in clear text']],
      ['setup:\n  public_url: not a url\n', {}, ['t.yaml:11: setup.public_url: not a valid URL']],
      ['setup:\n  oidc: { client_id: c }\n', {}, ['t.yaml:11: setup.oidc: needs setup.public_url: the redirect URI the issuer sends the browser back to is built on it']],
      ['setup:\n  public_url: https://gw.example.com\n  oidc:\n    client_id: c\n    scopes: [profile]\n', {}, ['t.yaml:14: setup.oidc.scopes: must include openid']],
      ['setup:\n  public_url: https://gw.example.com\n  oidc:\n    client_id: c\n    client_secret_env: NOPE\n', {}, ['t.yaml:14: setup.oidc.client_secret_env: $NOPE is not set']],
      ['setup:\n  public_url: https://gw.example.com\n  oidc:\n    client_secret_env: X\n', { X: 'y' }, ['t.yaml:12: setup.oidc.client_id: required key is missing']],
      ['setup:\n  public_url: https://gw.example.com\n  redirect_uri: https://evil.example/\n', {}, ['t.yaml:12: setup.redirect_uri: unknown key (known keys: public_url, oidc)']],
    ];
    for (const [tail, env, issues] of cases) assert.deepEqual(issuesOf(TEXT + tail, { env }), issues, tail);
  });
});
