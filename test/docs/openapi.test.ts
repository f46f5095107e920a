import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { AuthzKind } from '../../src/doors/forward-auth/rebuild.js';
import { FACTOR_ROUTE_METHODS, ROUTES } from '../../src/doors/mfa-api/endpoints.js';
import type { SetupAsset } from '../../src/doors/mfa-api/setup-page.js';
import { PROBLEMS } from '../../src/errors/problems.js';
import { PAGE_ENDPOINTS, PAGE_FACTOR_METHOD, SETUP_ENDPOINTS } from '../../src/setup/door.js';
import { createLogger } from '../../src/log/logger.js';
import { base32Encode } from '../../src/mfa/base32.js';
import { startGateway, type Gateway } from '../../src/server/gateway.js';
import { CHROMIUM, missingBinary, OATHTOOL } from '../support/binaries.js';
import { evaluate, launchBrowser, type Browser } from '../support/browser.js';
import { fakeClock, intoCurrentStep } from '../support/clock.js';
import { createWorkspace, policyHead, type Workspace } from '../support/fixture.js';
import { call, freePort, type Reply } from '../support/http.js';
import { codeIn, startMailbox, type Mailbox } from '../support/mailbox.js';
import { oathHotp, oathTotp, wrongTotp } from '../support/otp.js';
import { token } from '../support/tokens.js';
import { startUpstream, type Upstream } from '../support/upstream.js';
import { AUDIENCE, startSigninRig, type SigninRig } from '../doors/mfa-api/signin-rig.js';
import { DocumentedApi, documentText, HTTP_METHODS, loadDocument, type Answer } from './openapi-document.js';

/**
 * docs/openapi.yaml, the API reference of the gateway's own endpoints, kept true three ways:
 * it is a valid OpenAPI 3.1 document (the official schemas, through @seriousme/openapi-schema-validator);
 * it lists exactly the endpoints the gateway routes under the prefix (from the routing tables, so a
 * new endpoint without documentation fails here); and every documented operation, driven against a
 * real gateway (SQLite, a loopback upstream and SMTP server, oathtool codes, Chromium's virtual
 * authenticator for WebAuthn, and for the setup page's sign-in a real oidc-provider issuer and
 * invite links), answers with a documented status, headers and body.
 */

const PREFIX = '/.mfa/';
const silent = createLogger({ level: 'silent' });

describe('docs/openapi.yaml is a valid OpenAPI 3.1 document', () => {
  test('the official OpenAPI 3.1 schemas accept it', async () => {
    const validator = new Validator();
    const result = await validator.validate(documentText());
    assert.equal(validator.version, '3.1');
    assert.deepEqual(result.errors, undefined, JSON.stringify(result.errors, null, 2));
    assert.equal(result.valid, true);
  });

  test('the validator refuses a broken copy (the check can fail)', async () => {
    // A response without its required description.
    const broken = loadDocument() as unknown as { paths: Record<string, Record<string, { responses: Record<string, unknown> }>> };
    broken.paths['/.mfa/verify']!.post!.responses['200'] = { content: {} };
    const result = await new Validator().validate(broken as unknown as Record<string, unknown>);
    assert.equal(result.valid, false);
  });

  test('every schema and response compiles, and the problem codes are those of src/errors/problems.ts', () => {
    const api = new DocumentedApi();
    for (const schema of Object.values(api.document.components.schemas)) api.validator(schema);
    for (const [, template, operationId] of api.operations()) {
      const item = api.document.paths[template]!;
      for (const method of HTTP_METHODS) {
        const operation = item[method];
        if (operation === undefined) continue;
        for (const declared of Object.values(operation.responses)) {
          for (const media of Object.values(api.resolve(declared).content ?? {})) api.validator(media.schema);
        }
      }
      assert.match(operationId, /^[a-z][A-Za-z]+$/);
    }
    const codes = (api.document.components.schemas.ProblemCode as { enum: string[] }).enum;
    assert.deepEqual([...codes].sort(), Object.keys(PROBLEMS).sort());
  });
});

/** Which forward-auth endpoint documents each kind; a new kind fails to compile until it is listed. */
const AUTHZ_PATHS: Readonly<Record<AuthzKind, string>> = {
  'auth-request': '/.mfa/authz/auth-request',
  'forward-auth': '/.mfa/authz/forward-auth',
  'ext-authz': '/.mfa/authz/ext-authz/{path}',
};

/** The setup page's static files (GET, no bearer); a new asset fails to compile until it is listed. */
const SETUP_FILES: Readonly<Record<SetupAsset, string>> = {
  'setup.js': '/.mfa/setup.js',
  'webauthn-browser.js': '/.mfa/webauthn-browser.js',
};

describe('docs/openapi.yaml lists exactly the endpoints the gateway routes', () => {
  /** method (lower case) and path template of everything the gateway answers under the prefix. */
  function routed(): Map<string, Set<string>> {
    const out = new Map<string, Set<string>>();
    const add = (template: string, methods: string) => {
      const set = out.get(template) ?? new Set<string>();
      for (const method of methods.split(', ')) set.add(method.toLowerCase());
      out.set(template, set);
    };
    for (const [subpath, methods] of Object.entries(ROUTES)) add(PREFIX + subpath, methods);
    add(`${PREFIX}factors/{factor_id}`, FACTOR_ROUTE_METHODS);
    for (const path of Object.values(SETUP_FILES)) add(path, 'GET');
    // The setup page's sign-in and session endpoints, and the API it calls with its cookie (src/setup/door.ts).
    for (const [endpoint, method] of Object.entries(SETUP_ENDPOINTS)) add(`${PREFIX}setup/${endpoint}`, method);
    for (const [endpoint, method] of Object.entries(PAGE_ENDPOINTS)) add(`${PREFIX}setup/api/${endpoint}`, method);
    add(`${PREFIX}setup/api/factors/{factor_id}`, PAGE_FACTOR_METHOD);
    // Forward-auth answers any method (the question is in the headers); the document shows GET.
    for (const path of Object.values(AUTHZ_PATHS)) add(path, 'GET');
    return out;
  }

  test('every routed endpoint and method is documented, and nothing else is', () => {
    const api = new DocumentedApi();
    const documented = new Map<string, Set<string>>();
    for (const [method, template] of api.operations()) {
      documented.set(template, (documented.get(template) ?? new Set()).add(method));
    }
    const missing: string[] = [];
    for (const [template, methods] of routed()) {
      for (const method of methods) if (documented.get(template)?.has(method) !== true) missing.push(`${method.toUpperCase()} ${template}`);
    }
    assert.deepEqual(missing, [], 'routed but not in docs/openapi.yaml');
    const stale: string[] = [];
    const expected = routed();
    for (const [template, methods] of documented) {
      for (const method of methods) if (expected.get(template)?.has(method) !== true) stale.push(`${method.toUpperCase()} ${template}`);
    }
    assert.deepEqual(stale, [], 'in docs/openapi.yaml but not routed');
  });
});

const ROUTES_YAML = `routes:
  - { name: orders, match: { path_prefix: /orders/ }, upstream: app, policy: mfa }
default: deny
`;

const oathtoolMissing = missingBinary(OATHTOOL, 'oathtool');
const chromiumMissing = oathtoolMissing ?? missingBinary(CHROMIUM, 'chromium');

/** Fetches in the setup page (same origin, so WebAuthn's origin check holds): status, headers, body text. */
const PAGE_LIB = `window.__doc = {
  async post(bearer, path, body) {
    const headers = Object.assign({ authorization: 'Bearer ' + bearer }, body === undefined ? {} : { 'content-type': 'application/json' });
    const r = await fetch('/.mfa/' + path, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: r.status, headers: Object.fromEntries(r.headers.entries()), text: await r.text() };
  },
  async register(bearer) {
    const o = await this.post(bearer, 'webauthn/register/options');
    const response = await SimpleWebAuthnBrowser.startRegistration({ optionsJSON: JSON.parse(o.text) });
    return [o, await this.post(bearer, 'webauthn/register/verify', { response, label: 'virtual key' })];
  },
  async authenticate(bearer) {
    const o = await this.post(bearer, 'webauthn/authenticate/options');
    const response = await SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: JSON.parse(o.text) });
    return [o, await this.post(bearer, 'webauthn/authenticate/verify', { response })];
  },
};`;

/**
 * The setup page's passkey ceremonies as its script makes them (X-MFA-Setup; the browser adds Origin,
 * Sec-Fetch-Site and the HttpOnly cookies): trade the invite, register, then confirm with the passkey.
 */
const SETUP_PAGE_LIB = `window.__setup = {
  async post(path, body) {
    const headers = Object.assign({ 'x-mfa-setup': '1' }, body === undefined ? {} : { 'content-type': 'application/json' });
    const r = await fetch('/.mfa/setup/' + path, { method: 'POST', headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
    return { status: r.status, json: r.ok ? await r.json() : {} };
  },
  async passkey(invite) {
    const statuses = [];
    const step = async (path, body) => { const a = await this.post(path, body); statuses.push(a.status); return a.json; };
    await step('invite', { token: invite });
    const created = await step('api/webauthn/register/options');
    await step('api/webauthn/register/verify', { response: await SimpleWebAuthnBrowser.startRegistration({ optionsJSON: created }), label: 'virtual key' });
    const asked = await step('api/webauthn/authenticate/options');
    await step('api/webauthn/authenticate/verify', { response: await SimpleWebAuthnBrowser.startAuthentication({ optionsJSON: asked }) });
    return statuses;
  },
};`;

/** Operations whose success needs a WebAuthn credential, so the browser (the setup session's passkey ceremonies). */
const BROWSER_SUCCESSES: ReadonlySet<string> = new Set(['setupApiWebauthnRegistrationVerify', 'setupApiWebauthnAuthenticationOptions', 'setupApiWebauthnAuthenticationVerify']);

/** The outline of credential JSON (no valid signature): enough to reach the service's own checks. */
const ATTESTATION = { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: 'e30', attestationObject: 'AAAA' }, clientExtensionResults: {} };
const ASSERTION = { id: 'AAAA', rawId: 'AAAA', type: 'public-key', response: { clientDataJSON: 'e30', authenticatorData: 'AAAA', signature: 'AAAA' }, clientExtensionResults: {} };

describe('every documented operation answers a running gateway as documented', { skip: oathtoolMissing, timeout: 180_000 }, () => {
  const api = new DocumentedApi();
  const clock = fakeClock(intoCurrentStep());
  let ws: Workspace;
  let upstream: Upstream;
  let mailbox: Mailbox;
  let gateway: Gateway;
  let port = 0;

  const bearer = (subject: string) => token(subject, { now: clock(), ttlSeconds: 3600 });

  interface Ask {
    /** Sends `Authorization: Bearer <token of subject>`. */
    readonly as?: string;
    readonly headers?: Record<string, string>;
    /** JSON-encoded with Content-Type application/json; a string is sent as it is. */
    readonly body?: unknown;
    readonly localAddress?: string;
  }

  /** One request to the gateway; its answer is checked against the document, then returned. */
  async function ask(method: string, path: string, options: Ask = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...(options.as !== undefined ? { authorization: `Bearer ${await bearer(options.as)}` } : {}) };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
      headers['content-type'] = 'application/json';
    }
    Object.assign(headers, options.headers);
    const reply = await call(port, method, path, headers, body, options.localAddress !== undefined ? { localAddress: options.localAddress } : {});
    api.check(method, path.split('?')[0]!, reply);
    return reply;
  }

  /** A method the document does not list for `path`: 405 with Allow naming the documented ones. */
  async function wrongMethod(method: string, path: string, subject: string): Promise<void> {
    const reply = await call(port, method, path, { authorization: `Bearer ${await bearer(subject)}` });
    api.checkWrongMethod(method, path, reply);
    assert.equal(reply.json().code, 'method_not_allowed');
  }

  function expect(reply: Reply, status: number, code?: string): void {
    assert.equal(reply.status, status, reply.text);
    if (code !== undefined) assert.equal(reply.json().code, code);
  }

  /** Enrolls and confirms a TOTP factor for `subject`, every answer checked; the clock ends one step on. */
  async function totpUser(subject: string): Promise<{ factorId: string; secret: string; recoveryCodes: string[] }> {
    const enrolled = await ask('POST', `${PREFIX}totp/enroll`, { as: subject });
    expect(enrolled, 201);
    const { factor_id: factorId, secret } = enrolled.json<{ factor_id: string; secret: string }>();
    const confirmed = await ask('POST', `${PREFIX}totp/confirm`, { as: subject, body: { factor_id: factorId, code: oathTotp(secret, clock()) } });
    expect(confirmed, 200);
    clock.advanceStep();
    return { factorId, secret, recoveryCodes: confirmed.json<{ recovery_codes: string[] }>().recovery_codes };
  }

  const code = (secret: string) => oathTotp(secret, clock());

  before(async () => {
    ws = createWorkspace();
    upstream = await startUpstream();
    mailbox = await startMailbox();
    port = await freePort();
    const mfa = `  webauthn: { rp_id: localhost, origins: ["http://localhost:${port}"] }
  email:
    factor: true
    from: "Test Gateway <mfa@gateway.test>"
    smtp: { host: 127.0.0.1, port: ${mailbox.port}, security: none, timeout: 2s }
`;
    ws.writePolicy(policyHead(ws, upstream.url).replace('mfa:\n  issuer: Test Gateway\n', `mfa:\n  issuer: Test Gateway\n${mfa}`) + ROUTES_YAML);
    gateway = await startGateway({ configPath: ws.configPath, listen: { host: '127.0.0.1', port }, admin: false, watch: false, logger: silent, audit: silent, clock });
  });
  after(async () => {
    await gateway?.stop();
    await mailbox?.close();
    await upstream?.close();
    ws?.remove();
  });

  test('the setup page and its scripts', async () => {
    for (const path of ['setup', 'setup.js', 'webauthn-browser.js']) expect(await ask('GET', PREFIX + path), 200);
    // Anything but GET is the API's: the bearer first, then the method.
    await wrongMethod('POST', `${PREFIX}setup`, 'sam');
  });

  test('verify, sessions and recovery codes: success and the typical refusals', async () => {
    expect(await ask('POST', `${PREFIX}verify`), 401, 'invalid_token');
    expect(await ask('POST', `${PREFIX}verify`, { headers: { authorization: 'Bearer not.a.jwt' } }), 401, 'invalid_token');
    expect(await ask('POST', `${PREFIX}verify`, { headers: { authorization: `Bearer ${'a'.repeat(9000)}` } }), 431, 'header_too_large');
    expect(await ask('POST', `${PREFIX}verify`, { as: 'alice' }), 403, 'mfa_not_enrolled');
    await wrongMethod('GET', `${PREFIX}verify`, 'alice');

    const alice = await totpUser('alice');
    assert.equal(alice.recoveryCodes.length, 10);
    expect(await ask('POST', `${PREFIX}verify`, { as: 'alice' }), 401, 'mfa_required');
    const verified = await ask('POST', `${PREFIX}verify`, { as: 'alice', headers: { 'x-mfa-token': code(alice.secret) } });
    expect(verified, 200);
    clock.advanceStep();
    const first = verified.json<{ session_token: string }>().session_token;

    expect(await ask('POST', `${PREFIX}session/refresh`, { as: 'alice' }), 401, 'session_invalid');
    const refreshed = await ask('POST', `${PREFIX}session/refresh`, { as: 'alice', headers: { 'x-session-token': first } });
    expect(refreshed, 200);
    const second = refreshed.json<{ session_token: string }>().session_token;
    expect(await ask('POST', `${PREFIX}session/refresh`, { as: 'alice', headers: { 'x-session-token': first } }), 401, 'session_invalid');

    expect(await ask('POST', `${PREFIX}recovery-codes`, { as: 'alice' }), 401, 'step_up_required');
    const regenerated = await ask('POST', `${PREFIX}recovery-codes`, { as: 'alice', headers: { 'x-session-token': second } });
    expect(regenerated, 200);
    const [recovery] = regenerated.json<{ recovery_codes: string[] }>().recovery_codes;

    expect(await ask('POST', `${PREFIX}session/revoke`, { as: 'alice', headers: { 'x-session-token': second } }), 204);
    expect(await ask('POST', `${PREFIX}session/revoke`, { as: 'alice', headers: { 'x-session-token': second } }), 401, 'session_invalid');

    const byRecovery = await ask('POST', `${PREFIX}verify`, { as: 'alice', headers: { 'x-mfa-token': recovery! } });
    expect(byRecovery, 200);
    assert.equal(byRecovery.json().recovery_codes_remaining, 9);
    const third = byRecovery.json<{ session_token: string }>().session_token;
    expect(await ask('POST', `${PREFIX}session/revoke-all`, { as: 'alice' }), 401, 'step_up_required');
    const revokedAll = await ask('POST', `${PREFIX}session/revoke-all`, { as: 'alice', headers: { 'x-session-token': third } });
    expect(revokedAll, 200);
    assert.equal(revokedAll.json().revoked, 1);
  });

  test('enrolment and factor management: bodies checked, step-up, unknown ids', async () => {
    expect(await ask('POST', `${PREFIX}totp/enroll`, { as: 'bea', headers: { 'content-type': 'text/plain' }, body: 'hello' }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}totp/enroll`, { as: 'bea', body: '[1]' }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}totp/enroll`, { as: 'bea', body: { type: 'sms' } }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}totp/enroll`, { as: 'bea', body: { colour: 'red' } }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}totp/enroll`, { as: 'bea', body: { secret: 'JBSWY3DPEHPK3PXP' } }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}totp/confirm`, { as: 'bea' }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}totp/confirm`, { as: 'bea', body: { factor_id: 'nope', code: '123456' } }), 404, 'not_found');

    const pending = await ask('POST', `${PREFIX}totp/enroll`, { as: 'bea', body: { label: 'phone' } });
    expect(pending, 201);
    const { factor_id: factorId, secret } = pending.json<{ factor_id: string; secret: string }>();
    expect(await ask('POST', `${PREFIX}totp/confirm`, { as: 'bea', body: { factor_id: factorId, code: wrongTotp(secret, clock()) } }), 401, 'mfa_invalid');
    expect(await ask('POST', `${PREFIX}totp/confirm`, { as: 'bea', body: { factor_id: factorId, code: code(secret) } }), 200);
    clock.advanceStep();

    const listed = await ask('GET', `${PREFIX}factors`, { as: 'bea' });
    expect(listed, 200);
    assert.deepEqual(
      listed.json<{ factors: { id: string; status: string }[] }>().factors.map((f) => [f.id, f.status]),
      [[factorId, 'active']],
    );
    expect(await ask('GET', `${PREFIX}factors`, { as: 'nobody' }), 200);
    expect(await ask('GET', `${PREFIX}factors`), 401, 'invalid_token');
    await wrongMethod('DELETE', `${PREFIX}factors`, 'bea');

    // A second factor once one is active: step-up.
    expect(await ask('POST', `${PREFIX}totp/enroll`, { as: 'bea' }), 401, 'step_up_required');
    const factorPath = `${PREFIX}factors/${factorId}`;
    expect(await ask('PATCH', factorPath, { as: 'bea', body: { label: 'old phone' } }), 401, 'step_up_required');
    expect(await ask('PATCH', factorPath, { as: 'bea', headers: { 'x-mfa-token': code(secret) } }), 400, 'invalid_request');
    expect(await ask('PATCH', factorPath, { as: 'bea', body: { label: 'old phone' }, headers: { 'x-mfa-token': code(secret) } }), 204);
    clock.advanceStep();
    await wrongMethod('PUT', factorPath, 'bea');
    expect(await ask('DELETE', `${PREFIX}factors/no-such-factor`, { as: 'bea', headers: { 'x-mfa-token': code(secret) } }), 404, 'not_found');
    clock.advanceStep();
    expect(await ask('DELETE', factorPath, { as: 'bea' }), 401, 'step_up_required');
    expect(await ask('DELETE', factorPath, { as: 'bea', headers: { 'x-mfa-token': code(secret) } }), 204);
    clock.advanceStep();
  });

  test('HOTP: enrol an imported token, resynchronise its counter', async () => {
    const secret = base32Encode(randomBytes(20));
    const enrolled = await ask('POST', `${PREFIX}totp/enroll`, { as: 'hank', body: { type: 'hotp', secret, counter: 0 } });
    expect(enrolled, 201);
    const factorId = enrolled.json<{ factor_id: string }>().factor_id;
    expect(await ask('POST', `${PREFIX}totp/confirm`, { as: 'hank', body: { factor_id: factorId, code: oathHotp(secret, 0) } }), 200);
    expect(await ask('POST', `${PREFIX}hotp/resync`, { as: 'hank' }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}hotp/resync`, { as: 'hank', body: { factor_id: factorId, code1: '1' } }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}hotp/resync`, { as: 'hank', body: { factor_id: 'nope', code1: '123456', code2: '654321' } }), 404, 'not_found');
    expect(await ask('POST', `${PREFIX}hotp/resync`, { as: 'hank', body: { factor_id: factorId, code1: oathHotp(secret, 50), code2: oathHotp(secret, 51) } }), 200);
    expect(await ask('POST', `${PREFIX}verify`, { as: 'hank', headers: { 'x-mfa-token': oathHotp(secret, 52) } }), 200);
  });

  test('lockout: the third wrong code locks, then 429 with Retry-After', async () => {
    const lola = await totpUser('lola');
    const wrong = wrongTotp(lola.secret, clock());
    for (let i = 0; i < 3; i++) expect(await ask('POST', `${PREFIX}verify`, { as: 'lola', headers: { 'x-mfa-token': wrong } }), 401, 'mfa_invalid');
    const locked = await ask('POST', `${PREFIX}verify`, { as: 'lola', headers: { 'x-mfa-token': code(lola.secret) } });
    expect(locked, 429, 'mfa_locked');
    assert.ok(Number(locked.headers['retry-after']) >= 1);
  });

  test('e-mail codes: enrol a contact, confirm it, send a fresh code; refusals', async () => {
    expect(await ask('POST', `${PREFIX}otp/enroll`, { as: 'erin' }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}otp/enroll`, { as: 'erin', body: { channel: 'fax', destination: 'x' } }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}otp/enroll`, { as: 'erin', body: { channel: 'sms', destination: '+447700900123' } }), 403, 'forbidden');
    const seen = mailbox.messages.length;
    const enrolled = await ask('POST', `${PREFIX}otp/enroll`, { as: 'erin', body: { channel: 'email', destination: 'erin@example.test', label: 'work' } });
    expect(enrolled, 201);
    const factorId = enrolled.json<{ factor_id: string }>().factor_id;
    const mailed = codeIn((await mailbox.next(seen)).text);
    expect(await ask('POST', `${PREFIX}otp/confirm`, { as: 'erin', body: { factor_id: 'nope', code: mailed } }), 404, 'not_found');
    expect(await ask('POST', `${PREFIX}otp/confirm`, { as: 'erin', body: { factor_id: factorId, code: mailed } }), 200);
    expect(await ask('POST', `${PREFIX}otp/send`, { as: 'erin', body: { channel: 'email', factor_id: 'nope' } }), 404, 'not_found');
    const before = mailbox.messages.length;
    expect(await ask('POST', `${PREFIX}otp/send`, { as: 'erin', body: { channel: 'email', factor_id: factorId } }), 200);
    const fresh = codeIn((await mailbox.next(before)).text);
    expect(await ask('POST', `${PREFIX}verify`, { as: 'erin', headers: { 'x-mfa-token': fresh } }), 200);
    expect(await ask('GET', `${PREFIX}factors`, { as: 'erin' }), 200);
  });

  test('WebAuthn without a browser: registration options, and the refusals of each endpoint', async () => {
    expect(await ask('POST', `${PREFIX}webauthn/register/options`, { as: 'walt' }), 200);
    expect(await ask('POST', `${PREFIX}webauthn/register/options`, { as: 'walt', body: { extra: 1 } }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}webauthn/register/verify`, { as: 'walt' }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}webauthn/register/verify`, { as: 'walt', body: { response: { id: 'x' } } }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}webauthn/authenticate/options`, { as: 'walt' }), 403, 'mfa_not_enrolled');
    expect(await ask('POST', `${PREFIX}webauthn/authenticate/options`), 401, 'invalid_token');
    expect(await ask('POST', `${PREFIX}webauthn/authenticate/verify`, { as: 'walt', body: {} }), 400, 'invalid_request');
    await wrongMethod('GET', `${PREFIX}webauthn/authenticate/verify`, 'walt');

    // Once a factor is active, adding a key needs step-up.
    const wes = await totpUser('wes');
    expect(await ask('POST', `${PREFIX}webauthn/register/options`, { as: 'wes' }), 401, 'step_up_required');
    expect(await ask('POST', `${PREFIX}webauthn/register/options`, { as: 'wes', headers: { 'x-mfa-token': code(wes.secret) } }), 200);
    clock.advanceStep();
    // The credential is checked before the step-up: one that does not verify is refused either way.
    expect(await ask('POST', `${PREFIX}webauthn/register/verify`, { as: 'wes', body: { response: ATTESTATION } }), 400, 'invalid_request');
    expect(await ask('POST', `${PREFIX}webauthn/authenticate/options`, { as: 'wes' }), 403, 'mfa_not_enrolled');
    // No ceremony under way and no such credential: the same answer as any assertion that does not verify.
    expect(await ask('POST', `${PREFIX}webauthn/authenticate/verify`, { as: 'wes', body: { response: ASSERTION } }), 401, 'mfa_invalid');
  });

  test('forward-auth: allow with identity headers, challenge, bad questions, untrusted peers', async () => {
    const fay = await totpUser('fay');
    const original = { 'x-original-method': 'POST', 'x-original-url': '/orders/1' };
    const challenged = await ask('GET', `${PREFIX}authz/auth-request`, { as: 'fay', headers: original });
    expect(challenged, 401, 'mfa_required');
    assert.equal(challenged.headers['x-problem-status'], '401');
    expect(await ask('GET', `${PREFIX}authz/auth-request`, { headers: original }), 401, 'invalid_token');
    expect(await ask('GET', `${PREFIX}authz/auth-request`, { as: 'fay', headers: { 'x-original-method': 'GET' } }), 400, 'invalid_request');
    expect(await ask('GET', `${PREFIX}authz/auth-request`, { as: 'fay', headers: { 'x-original-method': 'GET', 'x-original-url': '/a/../orders/1' } }), 400, 'invalid_request');
    expect(await ask('GET', `${PREFIX}authz/auth-request`, { as: 'fay', headers: { 'x-original-method': 'GET', 'x-original-url': '/elsewhere' } }), 404, 'route_not_found');
    const allowed = await ask('GET', `${PREFIX}authz/auth-request`, { as: 'fay', headers: { ...original, 'x-mfa-token': code(fay.secret) } });
    expect(allowed, 200);
    assert.equal(allowed.headers['x-auth-subject'], 'fay');
    assert.equal(allowed.headers['x-auth-mfa'], 'totp');
    const session = String(allowed.headers['x-session-token']);
    clock.advanceStep();

    const forwarded = { 'x-forwarded-method': 'POST', 'x-forwarded-uri': '/orders/1', 'x-forwarded-host': 'app.test', 'x-forwarded-proto': 'https' };
    expect(await ask('GET', `${PREFIX}authz/forward-auth`, { as: 'fay', headers: forwarded }), 401, 'mfa_required');
    expect(await ask('GET', `${PREFIX}authz/forward-auth`, { as: 'fay', headers: { 'x-forwarded-method': 'GET' } }), 400, 'invalid_request');
    expect(await ask('GET', `${PREFIX}authz/forward-auth`, { as: 'fay', headers: { ...forwarded, 'x-session-token': session } }), 200);
    expect(await ask('GET', `${PREFIX}authz/forward-auth`, { as: 'fay', headers: forwarded, localAddress: '127.0.0.2' }), 403, 'forbidden');

    expect(await ask('GET', `${PREFIX}authz/ext-authz/orders/1?x=1`, { as: 'fay' }), 401, 'mfa_required');
    const ext = await ask('GET', `${PREFIX}authz/ext-authz/orders/1`, { as: 'fay', headers: { 'x-session-token': session } });
    expect(ext, 200);
    assert.equal(ext.headers['x-auth-subject'], 'fay');
    expect(await ask('GET', `${PREFIX}authz/ext-authz/nowhere`, { as: 'fay' }), 404, 'route_not_found');
  });

  test('the proxy contract of the description: a challenge, then the session on the backend answer', async () => {
    const pia = await totpUser('pia');
    const challenged = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${await bearer('pia')}` });
    assert.equal(challenged.status, 401);
    api.checkResponse(api.document.components.responses.ProxyChallenge!, challenged, 'proxied POST /orders/1 → 401');
    assert.equal(challenged.json().code, 'mfa_required');
    const passed = await call(port, 'POST', '/orders/1', { authorization: `Bearer ${await bearer('pia')}`, 'x-mfa-token': code(pia.secret) });
    assert.equal(passed.status, 200);
    api.assertValid(api.document.components.schemas.SessionToken!, passed.headers['x-session-token'], 'X-Session-Token on a proxied answer');
    assert.match(String(passed.headers['x-session-expires']), /^\d+$/);
  });

  describe('WebAuthn ceremonies in Chromium (virtual authenticator)', { skip: chromiumMissing }, () => {
    let dir: string;
    let browser: Browser;
    before(async () => {
      dir = mkdtempSync(join(tmpdir(), 'mfa-openapi-'));
      browser = await launchBrowser(dir);
      await browser.page.goto(`http://localhost:${port}${PREFIX}setup`);
      await browser.page.waitForLoadState('load');
      await evaluate(browser.page, PAGE_LIB);
    });
    after(async () => {
      await browser?.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    interface PageAnswer {
      readonly status: number;
      readonly headers: IncomingHttpHeaders;
      readonly text: string;
    }

    function checked(path: string, answer: PageAnswer, status: number): Answer {
      api.check('POST', PREFIX + path, answer);
      assert.equal(answer.status, status, answer.text);
      return answer;
    }

    test('register a passkey, then sign in with it', async () => {
      const [options, registered] = await evaluate<PageAnswer[]>(browser.page, `window.__doc.register(${JSON.stringify(await bearer('wendy'))})`);
      checked('webauthn/register/options', options!, 200);
      checked('webauthn/register/verify', registered!, 201);
      assert.equal(JSON.parse(registered!.text).recovery_codes.length, 10);
      const [asked, verified] = await evaluate<PageAnswer[]>(browser.page, `window.__doc.authenticate(${JSON.stringify(await bearer('wendy'))})`);
      checked('webauthn/authenticate/options', asked!, 200);
      checked('webauthn/authenticate/verify', verified!, 200);
      const listed = await ask('GET', `${PREFIX}factors`, { as: 'wendy' });
      assert.deepEqual(listed.json<{ factors: { type: string }[] }>().factors.map((f) => f.type), ['webauthn']);
    });
  });

  describe('the setup page sign-in and its API (a real oidc-provider issuer, invite links, the setup session cookie)', () => {
    let rig: SigninRig;
    before(async () => {
      rig = await startSigninRig();
    });
    after(async () => {
      await rig?.close();
    });

    interface SetupAsk {
      /** The Cookie header. */
      readonly cookie?: string;
      readonly body?: unknown;
      /** Sent last: may replace the page's own headers. */
      readonly headers?: Record<string, string>;
      /** false: none of the page's own headers (X-MFA-Setup, Sec-Fetch-Site, Origin), as a cross-site caller. */
      readonly fromPage?: boolean;
    }

    /** A call as the setup page makes it (X-MFA-Setup, same-origin, Origin on non-GET); the answer is checked against the document. */
    async function setup(method: string, path: string, options: SetupAsk = {}): Promise<Reply> {
      const reply = await setupCall(method, path, options);
      api.check(method, `${PREFIX}setup/${path}`.split('?')[0]!, reply);
      return reply;
    }
    function setupCall(method: string, path: string, { cookie, body, headers = {}, fromPage = true }: SetupAsk): Promise<Reply> {
      const sent: Record<string, string> = {
        host: `localhost:${rig.port}`,
        ...(fromPage ? { 'x-mfa-setup': '1', 'sec-fetch-site': 'same-origin', ...(method !== 'GET' ? { origin: rig.origin } : {}) } : {}),
        ...(cookie !== undefined ? { cookie } : {}),
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...headers,
      };
      return call(rig.port, method, `${PREFIX}setup/${path}`, sent, body === undefined ? undefined : JSON.stringify(body));
    }
    async function wrongSetupMethod(method: string, path: string, cookie?: string): Promise<void> {
      const reply = await setupCall(method, path, cookie !== undefined ? { cookie } : {});
      api.checkWrongMethod(method, `${PREFIX}setup/${path}`, reply);
      assert.equal(reply.json().code, 'method_not_allowed');
    }
    function cookieOf(reply: Reply, name: string): string {
      const line = (reply.headers['set-cookie'] ?? []).find((l) => l.startsWith(`${name}=`));
      assert.ok(line !== undefined, `no ${name} cookie set: ${JSON.stringify(reply.headers['set-cookie'])}`);
      return `${name}=${line.slice(name.length + 1).split(';')[0]}`;
    }
    /** A setup session for `subject` through `mfa-gateway factors invite`, as the Cookie header. */
    async function invited(subject: string): Promise<string> {
      const token = (await rig.invite(subject)).split('#invite=')[1]!;
      const reply = await setup('POST', 'invite', { body: { token } });
      expect(reply, 200);
      return cookieOf(reply, 'mfa_setup');
    }
    /** GET setup/login, through the issuer's login as `user`: the callback path and the login cookie. */
    async function signinAs(user: string): Promise<{ callback: string; loginCookie: string }> {
      const started = await setup('GET', 'login');
      expect(started, 303);
      const back = await rig.idp.login(started.headers.location!, user);
      return { callback: back.pathname.slice(`${PREFIX}setup/`.length) + back.search, loginCookie: cookieOf(started, 'mfa_setup_login') };
    }
    const totpNow = (secret: string) => oathTotp(secret, rig.clock());

    test('sign-in with the identity provider: login, callback, replay, another browser, a token the gateway refuses, sign-in off', async () => {
      expect(await setup('GET', 'login?next=https://evil.test/'), 400);
      await wrongSetupMethod('POST', 'login');

      const { callback, loginCookie } = await signinAs('sara');
      const done = await setup('GET', callback, { cookie: loginCookie });
      expect(done, 303);
      assert.equal(done.headers.location, `${PREFIX}setup`);
      const session = cookieOf(done, 'mfa_setup');
      const state = await setup('GET', 'session', { cookie: session });
      expect(state, 200);
      assert.equal(state.json().subject, 'sara');
      assert.equal(state.json().via, 'oidc');
      // The same callback again: its state was taken.
      const replayed = await setup('GET', callback, { cookie: loginCookie });
      expect(replayed, 400);
      assert.match(replayed.text, /This sign-in link has expired/);
      // Finished in a browser that did not start it (no login cookie): login CSRF.
      const elsewhere = await signinAs('sara');
      const csrf = await setup('GET', elsewhere.callback);
      expect(csrf, 400);
      assert.match(csrf.text, /Sign-in was started elsewhere/);
      await wrongSetupMethod('POST', 'callback');

      rig.rewrite({ audience: 'another-api' });
      try {
        const refused = await signinAs('sara');
        const notAccepted = await setup('GET', refused.callback, { cookie: refused.loginCookie });
        expect(notAccepted, 403);
        assert.equal(notAccepted.headers['set-cookie']?.some((l) => l.startsWith('mfa_setup=')), false);
      } finally {
        rig.rewrite({ audience: AUDIENCE });
      }

      rig.rewrite({ oidc: false });
      try {
        expect(await setup('GET', 'login'), 404);
        expect(await setup('GET', 'callback?state=x&code=y'), 404);
        assert.deepEqual((await setup('GET', 'session')).json(), { signed_in: false, signin_available: false });
      } finally {
        rig.rewrite({});
      }
    });

    test('invite, session and sign-out; calls that do not come from the page are refused', async () => {
      const before = await setup('GET', 'session');
      expect(before, 200);
      assert.deepEqual(before.json(), { signed_in: false, signin_available: true });
      expect(await setup('GET', 'session', { fromPage: false }), 403, 'forbidden');
      expect(await setup('GET', 'session', { headers: { 'sec-fetch-site': 'cross-site' } }), 403, 'forbidden');
      await wrongSetupMethod('POST', 'session');

      const token = (await rig.invite('ines')).split('#invite=')[1]!;
      expect(await setup('POST', 'invite', { body: { token }, fromPage: false }), 403, 'forbidden');
      expect(await setup('POST', 'invite', { body: { token }, headers: { origin: 'https://evil.test' } }), 403, 'forbidden');
      expect(await setup('POST', 'invite'), 400, 'invalid_request');
      expect(await setup('POST', 'invite', { body: { token, subject: 'mallory' } }), 400, 'invalid_request');
      const redeemed = await setup('POST', 'invite', { body: { token } });
      expect(redeemed, 200);
      assert.equal(redeemed.json().subject, 'ines');
      assert.equal(redeemed.json().via, 'invite');
      // Once only.
      expect(await setup('POST', 'invite', { body: { token } }), 403, 'forbidden');
      await wrongSetupMethod('GET', 'invite');

      const cookie = cookieOf(redeemed, 'mfa_setup');
      assert.equal((await setup('GET', 'session', { cookie })).json().signed_in, true);
      expect(await setup('POST', 'logout', { cookie, fromPage: false }), 403, 'forbidden');
      expect(await setup('POST', 'logout', { cookie, headers: { origin: 'https://evil.test' } }), 403, 'forbidden');
      expect(await setup('POST', 'logout', { cookie }), 204);
      assert.deepEqual((await setup('GET', 'session', { cookie })).json(), { signed_in: false, signin_available: true });
      await wrongSetupMethod('GET', 'logout');
    });

    test("the page's API as the session's subject: enrol, confirm, step-up by code, recovery codes, remove; refusals", async () => {
      const cookie = await invited('tess');
      const listed = await setup('GET', 'api/factors', { cookie });
      expect(listed, 200);
      assert.deepEqual(listed.json(), { factors: [], recovery_codes_remaining: 0 });
      expect(await setup('GET', 'api/factors'), 403, 'forbidden');
      expect(await setup('GET', 'api/factors', { cookie, fromPage: false }), 403, 'forbidden');
      await wrongSetupMethod('POST', 'api/factors', cookie);
      // Only the endpoints the page uses, and no inherited property names one.
      for (const endpoint of ['session/revoke-all', 'constructor', '__proto__', 'hasOwnProperty']) {
        const reply = await setupCall('POST', `api/${endpoint}`, { cookie });
        assert.equal(reply.status, 404, `${endpoint}: ${reply.text}`);
        assert.equal(reply.json().code, 'not_found');
      }

      expect(await setup('POST', 'api/totp/enroll', { cookie, body: { colour: 'red' } }), 400, 'invalid_request');
      const enrolled = await setup('POST', 'api/totp/enroll', { cookie });
      expect(enrolled, 201);
      const { factor_id: factorId, secret } = enrolled.json<{ factor_id: string; secret: string }>();
      expect(await setup('POST', 'api/totp/confirm', { cookie, body: { factor_id: 'nope', code: '123456' } }), 404, 'not_found');
      const confirmed = await setup('POST', 'api/totp/confirm', { cookie, body: { factor_id: factorId, code: totpNow(secret) } });
      expect(confirmed, 200);
      assert.equal(confirmed.json<{ recovery_codes: string[] }>().recovery_codes.length, 10);
      rig.clock.advanceStep();

      // Changes now need step-up: a code typed for "confirm it is you", held in the step-up cookie.
      expect(await setup('POST', 'api/totp/enroll', { cookie }), 401, 'step_up_required');
      expect(await setup('POST', 'api/recovery-codes', { cookie }), 401, 'step_up_required');
      expect(await setup('POST', 'api/webauthn/register/options', { cookie }), 401, 'step_up_required');
      expect(await setup('POST', 'api/verify', { cookie }), 401, 'mfa_required');
      expect(await setup('POST', 'api/verify', { cookie, body: {}, headers: { 'x-mfa-token': totpNow(secret) } }), 400, 'invalid_request');
      const stepped = await setup('POST', 'api/verify', { cookie, headers: { 'x-mfa-token': totpNow(secret) } });
      expect(stepped, 200);
      assert.equal(stepped.json().confirmed, true);
      rig.clock.advanceStep();
      const both = `${cookie}; ${cookieOf(stepped, 'mfa_setup_stepup')}`;

      const regenerated = await setup('POST', 'api/recovery-codes', { cookie: both });
      expect(regenerated, 200);
      assert.equal(regenerated.json<{ recovery_codes: string[] }>().recovery_codes.length, 10);
      expect(await setup('POST', 'api/webauthn/register/options', { cookie: both }), 200);
      expect(await setup('POST', 'api/webauthn/register/verify', { cookie: both, body: { response: ATTESTATION } }), 400, 'invalid_request');
      expect(await setup('POST', 'api/webauthn/authenticate/options', { cookie }), 403, 'mfa_not_enrolled');
      expect(await setup('POST', 'api/webauthn/authenticate/verify', { cookie, body: {} }), 400, 'invalid_request');

      expect(await setup('DELETE', 'api/factors/no-such-factor', { cookie: both }), 404, 'not_found');
      expect(await setup('DELETE', `api/factors/${factorId}`, { cookie }), 401, 'step_up_required');
      await wrongSetupMethod('PATCH', `api/factors/${factorId}`, cookie);
      expect(await setup('DELETE', `api/factors/${factorId}`, { cookie: both }), 204);
      assert.deepEqual((await setup('GET', 'api/factors', { cookie })).json(), { factors: [], recovery_codes_remaining: 0 });
    });

    describe('passkey ceremonies through the setup session, in Chromium', { skip: chromiumMissing }, () => {
      let dir: string;
      let browser: Browser;
      before(async () => {
        dir = mkdtempSync(join(tmpdir(), 'mfa-openapi-setup-'));
        browser = await launchBrowser(dir);
      });
      after(async () => {
        await browser?.close();
        if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      });

      test('register a passkey, then confirm it is you with it; the step-up session only in an HttpOnly cookie', async () => {
        // Every answer to the page's API calls as the browser received it, Set-Cookie included (scripts never see it).
        const answers: Promise<{ method: string; path: string; answer: Answer }>[] = [];
        browser.page.on('response', (response) => {
          const url = new URL(response.url());
          if (!url.pathname.startsWith(`${PREFIX}setup/`) || url.pathname.startsWith(`${PREFIX}setup/login`)) return;
          answers.push(
            (async () => {
              const raw = await response.allHeaders();
              const headers: IncomingHttpHeaders = { ...raw, ...(raw['set-cookie'] !== undefined ? { 'set-cookie': raw['set-cookie'].split('\n') } : {}) };
              return { method: response.request().method(), path: url.pathname, answer: { status: response.status(), headers, text: await response.text() } };
            })(),
          );
        });
        const link = await rig.invite('vera');
        await browser.page.goto(`${rig.origin}${PREFIX}setup`);
        await browser.page.waitForLoadState('load');
        await evaluate(browser.page, SETUP_PAGE_LIB);
        const statuses = await evaluate<number[]>(browser.page, `window.__setup.passkey(${JSON.stringify(link.split('#invite=')[1])})`);
        assert.deepEqual(statuses, [200, 200, 201, 200, 200]);
        const seen = await Promise.all(answers);
        const ceremony = seen.filter((s) => s.method === 'POST');
        assert.deepEqual(
          ceremony.map((s) => [s.path, s.answer.status]),
          [
            [`${PREFIX}setup/invite`, 200],
            [`${PREFIX}setup/api/webauthn/register/options`, 200],
            [`${PREFIX}setup/api/webauthn/register/verify`, 201],
            [`${PREFIX}setup/api/webauthn/authenticate/options`, 200],
            [`${PREFIX}setup/api/webauthn/authenticate/verify`, 200],
          ],
        );
        for (const { method, path, answer } of seen) api.check(method, path, answer);
        const confirmed = ceremony[4]!.answer;
        assert.deepEqual(Object.keys(JSON.parse(confirmed.text)).sort(), ['confirmed', 'valid_until']);
      });
    });
  });

  test('every documented operation was seen answering with success and with a refusal', () => {
    const seen = new Map<string, Set<number>>();
    for (const { operationId, status } of api.answered) seen.set(operationId, (seen.get(operationId) ?? new Set()).add(status));
    const lacking: string[] = [];
    for (const [method, template, operationId] of api.operations()) {
      const statuses = [...(seen.get(operationId) ?? [])];
      // The verify ceremonies' success needs the browser; without one (reason printed above) only their refusals were seen.
      const needsBrowser = chromiumMissing !== undefined && (BROWSER_SUCCESSES.has(operationId) || (operationId.startsWith('webauthn') && operationId.endsWith('Verify')));
      // A redirect is the success of the sign-in's navigations (setup/login, setup/callback).
      if (!needsBrowser && !statuses.some((s) => s >= 200 && s < 400)) lacking.push(`${method.toUpperCase()} ${template}: no success`);
      // The static setup files have no refusal a client can reach but a malformed request.
      if (!template.endsWith('.js') && template !== `${PREFIX}setup` && !statuses.some((s) => s >= 400)) lacking.push(`${method.toUpperCase()} ${template}: no refusal`);
    }
    assert.deepEqual(lacking, []);
  });
});
