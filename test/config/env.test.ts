import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePolicy } from '../../src/config/load.js';
import { PolicyError } from '../../src/config/errors.js';

const policy = (issuer: string, extra = '') => `auth:
  jwt:
    issuer: ${issuer}
    audience: api
    jwks_uri: https://idp.example.com/jwks
    algorithms: [RS256]
mfa: { issuer: "T" }
keys: { env: K }
upstreams: { app: { url: "http://127.0.0.1:9" } }
routes:
  - { match: { path: /x }, upstream: app, policy: bearer }
${extra}`;

function issues(text: string, env: Record<string, string | undefined>): string[] {
  try {
    parsePolicy(text, 't.yaml', '/', { env });
  } catch (error) {
    assert.ok(error instanceof PolicyError, String(error));
    return error.message.split('\n');
  }
  return [];
}

test('${NAME} in a string value is the variable; ${NAME:-default} falls back; $${ is a literal ${', () => {
  const loaded = parsePolicy(policy('"${ISSUER}"'), 't.yaml', '/', { env: { ISSUER: 'https://idp.example.com/' } });
  assert.equal(loaded.auth.jwt.issuer, 'https://idp.example.com/');
  const fallback = parsePolicy(policy('"${ISSUER:-https://fallback.example/}"'), 't.yaml', '/', { env: { ISSUER: '' } });
  assert.equal(fallback.auth.jwt.issuer, 'https://fallback.example/');
  const literal = parsePolicy(policy('"https://idp.example.com/$${x}"'), 't.yaml', '/', { env: {} });
  assert.equal(literal.auth.jwt.issuer, 'https://idp.example.com/${x}');
  const inside = parsePolicy(policy('"https://${HOST}/realms/${REALM}"'), 't.yaml', '/', { env: { HOST: 'idp.example.com', REALM: 'main' } });
  assert.equal(inside.auth.jwt.issuer, 'https://idp.example.com/realms/main');
});

test('an unset or empty variable, or a malformed reference, is an error naming the line and the key, never a value', () => {
  assert.deepEqual(issues(policy('"${ISSUER}"'), {}), ['t.yaml:3: auth.jwt.issuer: environment variable ISSUER is not set (referenced as ${ISSUER}; give it a value or write ${ISSUER:-default})']);
  assert.deepEqual(issues(policy('"${ISSUER}"'), { ISSUER: '' }), ['t.yaml:3: auth.jwt.issuer: environment variable ISSUER is empty (referenced as ${ISSUER}; give it a value or write ${ISSUER:-default})']);
  assert.deepEqual(issues(policy('"${1SSUER}"'), {}), [
    't.yaml:3: auth.jwt.issuer: "${1SSUER}" is not a variable reference: write ${NAME} or ${NAME:-default} with NAME of A-Z a-z 0-9 _ (or $${ for a literal ${)',
  ]);
  // The value of a variable that is set never appears in an error about another key.
  const messages = issues(policy('"${ISSUER}"', 'default: "${NOPE}"\n'), { ISSUER: 'https://secret-host.example/' });
  assert.deepEqual(messages, ['t.yaml:12: default: environment variable NOPE is not set (referenced as ${NOPE}; give it a value or write ${NOPE:-default})']);
});

test('keys are never substituted, and a substituted value is validated like any value', () => {
  const badUrl = issues(policy('x').replace('url: "http://127.0.0.1:9"', 'url: "${UPSTREAM}"'), { UPSTREAM: 'not a url' });
  assert.equal(badUrl.length, 1, badUrl.join('\n'));
  assert.match(badUrl[0]!, /^t\.yaml:9: upstreams\.app\.url: /);
  const key = issues(policy('x', 'listen: { "${PORT_KEY}": 1 }\n'), { PORT_KEY: 'port' });
  assert.equal(key.length, 1, key.join('\n'));
  assert.match(key[0]!, /^t\.yaml:12: listen\["\$\{PORT_KEY\}"\]: unknown key/);
});
