import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../auth/principal.js';
import type { GatewayPolicy } from '../config/types.js';
import type { BearerVerifier } from '../decision/engine.js';
import { problem, type Problem } from '../errors/problems.js';
import { sendEmpty, sendJson, sendProblem } from '../http/respond.js';
import type { Logger } from '../log/logger.js';
import type { MfaService } from '../mfa/service.js';
import type { RequestView } from '../request/view.js';
import { isStoreUnavailable } from '../store/health.js';
import { storeUnavailable } from '../mfa/service.js';
import { handleMfaEndpoint } from '../doors/mfa-api/endpoints.js';
import { readJson, onlyFields, stringField, isProblem } from '../doors/mfa-api/body.js';
import { verifyBody } from '../doors/mfa-api/webauthn.js';
import { MANAGEMENT_STEP_UP_MS } from '../mfa/service.js';
import { serveSetupNotice } from '../doors/mfa-api/setup-page.js';
import { LOGIN_COOKIE, readTokenCookie, SESSION_COOKIE, setCookie, STEP_UP_COOKIE } from './cookies.js';
import { randomPKCECodeVerifier, type OidcClient } from './oidc.js';
import { sameText, sha256Hex } from '../crypto/digest.js';
import { newToken, SETUP_SESSION_TTL_MS, SIGNIN_TTL_MS, type SetupSession, type SetupStore } from './store.js';

/**
 * The setup page's own endpoints under `<prefix>setup/`, reached without a bearer (the page's
 * point is that people never handle one):
 *
 *   GET  setup/login     → 303 to the issuer (PKCE S256, state, nonce), login cookie set
 *   GET  setup/callback  → state taken once + login cookie matched → code exchanged → access token
 *                          verified like any bearer → setup session cookie → 303 to the page
 *   POST setup/invite    {token} → the invite taken once → setup session cookie
 *   GET  setup/session   → who is signed in (or not, and whether sign-in is offered)
 *   POST setup/logout    → the session ended, cookie cleared
 *   *    setup/api/<endpoint> → the MFA API endpoints the page uses, as the session's subject
 *
 * The session cookie is accepted here and nowhere else: the proxy path and the bearer API never
 * read it, and the forwarder strips it. Every call that carries it, and the invite (which sets
 * it), must come from the page itself: the `X-MFA-Setup: 1` header (a cross-site page cannot send
 * it without a CORS preflight, which is never granted), `Sec-Fetch-Site` same-origin when the
 * browser sends it, and an `Origin` of the gateway's own on anything but GET — on top of
 * SameSite=Strict. Step-up for removing a factor is unchanged: the page sends the code the person
 * typed in X-MFA-Token, and the service checks it as for any caller.
 */

export interface SetupDeps {
  readonly store: SetupStore;
  /** The sign-in client of the policy, or undefined when `setup.oidc` is off. */
  oidcClient(policy: GatewayPolicy): OidcClient | undefined;
}

export interface SetupContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly view: RequestView;
  /** What follows `<prefix>setup/`. */
  readonly subpath: string;
  readonly policy: GatewayPolicy;
  readonly bearer: BearerVerifier;
  readonly mfa: MfaService;
  readonly logger: Logger;
  readonly now: number;
}

/**
 * The setup door's own endpoints under `<prefix>setup/` and the one method each answers. Exported
 * for the API reference's test: an endpoint added here needs a handler (SETUP_HANDLERS) and an
 * entry in docs/openapi.yaml.
 */
export const SETUP_ENDPOINTS = {
  login: 'GET',
  callback: 'GET',
  invite: 'POST',
  session: 'GET',
  logout: 'POST',
} as const;
export type SetupEndpoint = keyof typeof SETUP_ENDPOINTS;

/** The MFA API endpoints a setup session may call under `setup/api/`: what the page does, nothing more. */
export const PAGE_ENDPOINTS: Readonly<Record<string, string>> = {
  verify: 'POST',
  'totp/enroll': 'POST',
  'totp/confirm': 'POST',
  factors: 'GET',
  'recovery-codes': 'POST',
  'webauthn/register/options': 'POST',
  'webauthn/register/verify': 'POST',
  'webauthn/authenticate/options': 'POST',
  'webauthn/authenticate/verify': 'POST',
};
const FACTOR_PATH = /^factors\/[A-Za-z0-9_-]{1,64}$/;
/** The method of `setup/api/factors/<id>`: the page removes factors, nothing else. */
export const PAGE_FACTOR_METHOD = 'DELETE';

const SETUP_HEADER = 'x-mfa-setup';

/** The origin browsers use for this gateway: `setup.public_url`, else what this request was addressed to. */
function ownOrigin(policy: GatewayPolicy, view: RequestView): string {
  return policy.setup.publicOrigin ?? `${view.proto}://${view.host}`;
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The page's own request, or a refusal: the custom header, a same-origin fetch, and on state
 * changes an Origin equal to ours (browsers send Origin on every non-GET fetch).
 */
function fromThePage(ctx: SetupContext): Problem | undefined {
  const { req, view, policy } = ctx;
  if (headerOf(req, SETUP_HEADER) !== '1') return problem('forbidden', `setup calls must come from the setup page (the ${SETUP_HEADER} header is missing)`);
  const site = headerOf(req, 'sec-fetch-site');
  if (site !== undefined && site !== 'same-origin') return problem('forbidden', 'setup calls must come from the setup page (cross-site request)');
  if (view.method !== 'GET') {
    const origin = headerOf(req, 'origin');
    if (origin === undefined || origin !== ownOrigin(policy, view)) return problem('forbidden', 'setup calls must come from the setup page (Origin missing or not this gateway)');
  }
  return undefined;
}

function cookiePath(policy: GatewayPolicy, tail = ''): string {
  return `${policy.mfa.pathPrefix}setup${tail}`;
}

function sessionCookie(ctx: SetupContext, value: string, maxAgeMs: number, name = SESSION_COOKIE): string {
  return setCookie(name, value, { path: cookiePath(ctx.policy), sameSite: 'Strict', maxAge: Math.floor(maxAgeMs / 1000), secure: ctx.view.proto === 'https' });
}

function loginCookie(ctx: SetupContext, value: string, maxAgeMs: number): string {
  return setCookie(LOGIN_COOKIE, value, { path: cookiePath(ctx.policy, '/callback'), sameSite: 'Lax', maxAge: Math.floor(maxAgeMs / 1000), secure: ctx.view.proto === 'https' });
}

/** The session the request's cookie names, if it is live. */
async function currentSession(ctx: FullContext): Promise<{ token: string; session: SetupSession } | undefined> {
  const token = readTokenCookie(ctx.req.headers.cookie, SESSION_COOKIE);
  if (token === undefined) return undefined;
  const session = await ctx.deps.store.readSession(token, ctx.now);
  return session === undefined ? undefined : { token, session };
}

/** A principal for the MFA service: the session's subject, no scopes or roles, no IdP-asserted MFA. */
function principalOf(session: SetupSession, token: string): Principal {
  return { subject: session.subject, scopes: new Set(), roles: new Set(), expiresAt: Math.floor(session.expiresAt / 1000), amr: [], tokenHash: sha256Hex(token) };
}

const SIGNED_OUT = problem('forbidden', 'not signed in to the setup page, or the sign-in expired', { hint: 'sign in again, or open a new invite link' });

export async function serveSetupEndpoint(deps: SetupDeps, ctx: SetupContext): Promise<void> {
  const full: FullContext = { ...ctx, deps };
  const fail = (p: Problem): void => sendProblem(ctx.res, p, ctx.view.requestId);
  try {
    await route(full, fail);
  } catch (error) {
    if (isStoreUnavailable(error)) return fail(storeUnavailable().problem);
    ctx.logger.error({ event: 'setup_endpoint_error', request_id: ctx.view.requestId, endpoint: ctx.subpath.startsWith('api/') ? 'api' : ctx.subpath, error: error instanceof Error ? error.message : 'unknown' }, 'setup endpoint failed');
    fail(problem('internal_error', 'the request could not be completed'));
  }
}

type FullContext = SetupContext & { readonly deps: SetupDeps };

const SETUP_HANDLERS: Readonly<Record<SetupEndpoint, (ctx: FullContext, fail: (p: Problem) => void) => Promise<void>>> = {
  login: (ctx) => startSignin(ctx),
  callback: (ctx) => finishSignin(ctx),
  invite: redeemInvite,
  session: describeSession,
  logout: signOut,
};

async function route(ctx: FullContext, fail: (p: Problem) => void): Promise<void> {
  const { subpath, view } = ctx;
  const method = (allowed: string): boolean => {
    if (view.method === allowed) return true;
    sendProblem(ctx.res, problem('method_not_allowed', `use ${allowed} for this endpoint`), view.requestId, { allow: allowed });
    return false;
  };
  // Own keys only: `constructor` or `__proto__` must not name an endpoint.
  if (Object.hasOwn(SETUP_ENDPOINTS, subpath)) {
    const endpoint = subpath as SetupEndpoint;
    return method(SETUP_ENDPOINTS[endpoint]) ? SETUP_HANDLERS[endpoint](ctx, fail) : undefined;
  }
  if (subpath.startsWith('api/')) return callApi(ctx, subpath.slice('api/'.length), fail);
  fail(problem('not_found', 'no such gateway endpoint'));
}

async function startSignin(ctx: FullContext): Promise<void> {
  const client = ctx.deps.oidcClient(ctx.policy);
  if (client === undefined) return serveSetupNotice(ctx.res, 404, 'Sign-in is not set up', 'This gateway does not offer sign-in with an identity provider. Ask your administrator for an invite link.', ctx.policy);
  // Nothing the request says chooses where the browser goes, now or after the callback: no open redirect.
  if (ctx.view.search !== '') return serveSetupNotice(ctx.res, 400, 'Sign-in link not valid', 'The sign-in address takes no parameters. Open the setup page and choose “Sign in”.', ctx.policy);
  const state = newToken();
  const nonce = newToken();
  const codeVerifier = randomPKCECodeVerifier();
  const binding = newToken();
  let url: URL;
  try {
    ({ url } = await client.start({ redirectUri: redirectUri(ctx.policy), state, nonce, codeVerifier }));
  } catch (error) {
    ctx.logger.warn({ event: 'setup_signin_unavailable', request_id: ctx.view.requestId, error: error instanceof Error ? error.message : 'unknown' }, 'setup sign-in: the issuer could not be discovered');
    return serveSetupNotice(ctx.res, 503, 'Sign-in is unavailable', 'The identity provider cannot be reached right now. Try again in a minute.', ctx.policy);
  }
  await ctx.deps.store.putSignin(state, { codeVerifier, nonce, bindingHash: sha256Hex(binding) }, ctx.now);
  ctx.res.setHeader('set-cookie', loginCookie(ctx, binding, SIGNIN_TTL_MS));
  sendEmpty(ctx.res, 303, { location: url.href, 'referrer-policy': 'no-referrer' });
}

export function redirectUri(policy: GatewayPolicy): string {
  return `${policy.setup.publicOrigin ?? ''}${policy.mfa.pathPrefix}setup/callback`;
}

async function finishSignin(ctx: FullContext): Promise<void> {
  const { policy, view, res } = ctx;
  const client = ctx.deps.oidcClient(policy);
  if (client === undefined) return serveSetupNotice(res, 404, 'Sign-in is not set up', 'This gateway does not offer sign-in with an identity provider. Ask your administrator for an invite link.', policy);
  const params = new URLSearchParams(view.search);
  const state = params.get('state') ?? '';
  // Taken, not read: a replayed callback (the same state again) finds nothing.
  const started = await ctx.deps.store.takeSignin(state, ctx.now);
  const clearLogin = loginCookie(ctx, '', 0);
  if (started === undefined) {
    res.setHeader('set-cookie', clearLogin);
    return serveSetupNotice(res, 400, 'This sign-in link has expired', 'It was already used, or took longer than 10 minutes. Open the setup page and sign in again.', policy);
  }
  // Login CSRF: the browser finishing the sign-in must be the one that started it.
  const binding = readTokenCookie(ctx.req.headers.cookie, LOGIN_COOKIE);
  res.setHeader('set-cookie', clearLogin);
  if (binding === undefined || !sameText(sha256Hex(binding), started.bindingHash)) {
    ctx.logger.warn({ event: 'setup_signin_refused', request_id: view.requestId, reason: 'browser_mismatch' }, 'setup sign-in refused: the callback came to a browser that did not start it');
    return serveSetupNotice(res, 400, 'Sign-in was started elsewhere', 'This sign-in was not started in this browser, so it was stopped. Open the setup page and sign in again.', policy);
  }
  let accessToken: string;
  let idSubject: string;
  try {
    ({ accessToken, idSubject } = await client.finish(new URL(redirectUri(policy) + view.search), { state, nonce: started.nonce, codeVerifier: started.codeVerifier }));
  } catch (error) {
    ctx.logger.warn({ event: 'setup_signin_refused', request_id: view.requestId, reason: 'oidc', error: error instanceof Error ? error.message : 'unknown' }, 'setup sign-in refused by the OIDC checks');
    return serveSetupNotice(res, 400, 'Sign-in did not complete', 'The identity provider did not confirm who you are. Open the setup page and sign in again.', policy);
  }
  // Exactly the bearer rules of every route: issuer, audience, algorithms, keys, expiry.
  const verified = await ctx.bearer.verify(`Bearer ${accessToken}`);
  if (!verified.ok || verified.principal.subject !== idSubject) {
    ctx.logger.warn({ event: 'setup_signin_refused', request_id: view.requestId, reason: verified.ok ? 'subject_mismatch' : verified.problem.code }, 'setup sign-in refused: the access token does not pass the gateway’s bearer checks');
    return serveSetupNotice(res, 403, 'Sign-in not accepted', 'Your identity provider signed you in, but its access token is not accepted by this gateway. Tell your administrator.', policy);
  }
  const opened = await ctx.deps.store.openSession(verified.principal.subject, 'oidc', ctx.now);
  ctx.logger.info({ event: 'setup_signed_in', request_id: view.requestId, subject: opened.session.subject, via: 'oidc' }, 'setup page: signed in');
  res.setHeader('set-cookie', [clearLogin, sessionCookie(ctx, opened.token, SETUP_SESSION_TTL_MS)]);
  // Always the page itself, by path: nothing in the request picks where this goes.
  sendEmpty(res, 303, { location: cookiePath(policy), 'referrer-policy': 'no-referrer' });
}

async function redeemInvite(ctx: FullContext, fail: (p: Problem) => void): Promise<void> {
  const refused = fromThePage(ctx);
  if (refused !== undefined) return fail(refused);
  const read = await readJson(ctx.req);
  if (!read.ok) return fail(read.problem);
  if (read.body === undefined) return fail(problem('invalid_request', 'a JSON body {token} is required'));
  const unknown = onlyFields(read.body, ['token']);
  if (unknown !== undefined) return fail(unknown);
  const token = stringField(read.body, 'token');
  if (isProblem(token)) return fail(token);
  const subject = await ctx.deps.store.redeemInvite(token, ctx.now);
  if (subject === undefined) {
    ctx.logger.warn({ event: 'setup_invite_refused', request_id: ctx.view.requestId }, 'setup invite refused: used, expired or unknown');
    return fail(problem('forbidden', 'this invite link was already used or has expired', { hint: 'ask your administrator for a new invite link' }));
  }
  const opened = await ctx.deps.store.openSession(subject, 'invite', ctx.now);
  ctx.logger.info({ event: 'setup_signed_in', request_id: ctx.view.requestId, subject, via: 'invite' }, 'setup page: signed in');
  ctx.res.setHeader('set-cookie', sessionCookie(ctx, opened.token, SETUP_SESSION_TTL_MS));
  sendJson(ctx.res, 200, sessionJson(ctx, opened.session));
}

function sessionJson(ctx: FullContext, session: SetupSession | undefined): Record<string, unknown> {
  const signin = ctx.deps.oidcClient(ctx.policy) !== undefined;
  if (session === undefined) return { signed_in: false, signin_available: signin };
  return { signed_in: true, signin_available: signin, subject: session.subject, via: session.via, expires_at: Math.floor(session.expiresAt / 1000) };
}

async function describeSession(ctx: FullContext, fail: (p: Problem) => void): Promise<void> {
  const refused = fromThePage(ctx);
  if (refused !== undefined) return fail(refused);
  const current = await currentSession(ctx);
  sendJson(ctx.res, 200, sessionJson(ctx, current?.session));
}

async function signOut(ctx: FullContext, fail: (p: Problem) => void): Promise<void> {
  const refused = fromThePage(ctx);
  if (refused !== undefined) return fail(refused);
  const token = readTokenCookie(ctx.req.headers.cookie, SESSION_COOKIE);
  const current = token === undefined ? undefined : await ctx.deps.store.readSession(token, ctx.now);
  if (token !== undefined) await ctx.deps.store.endSession(token, ctx.now);
  // A passkey confirmation's MFA session ends with the sign-in.
  const stepUp = readTokenCookie(ctx.req.headers.cookie, STEP_UP_COOKIE);
  if (current !== undefined && stepUp !== undefined) {
    await ctx.mfa.revokeSession({ principal: principalOf(current, token!), view: { ...ctx.view, sessionToken: stepUp }, policy: ctx.policy, now: ctx.now });
  }
  ctx.res.setHeader('set-cookie', [sessionCookie(ctx, '', 0), sessionCookie(ctx, '', 0, STEP_UP_COOKIE)]);
  sendEmpty(ctx.res, 204);
}

async function callApi(ctx: FullContext, endpoint: string, fail: (p: Problem) => void): Promise<void> {
  const allowed = FACTOR_PATH.test(endpoint) ? PAGE_FACTOR_METHOD : Object.hasOwn(PAGE_ENDPOINTS, endpoint) ? PAGE_ENDPOINTS[endpoint] : undefined;
  if (allowed === undefined) return fail(problem('not_found', 'no such setup endpoint'));
  const refused = fromThePage(ctx);
  if (refused !== undefined) return fail(refused);
  const current = await currentSession(ctx);
  if (current === undefined) return fail(SIGNED_OUT);
  if (ctx.view.method !== allowed) return sendProblem(ctx.res, problem('method_not_allowed', `use ${allowed} for this endpoint`), ctx.view.requestId, { allow: allowed });
  const principal = principalOf(current.session, current.token);
  if (endpoint === 'webauthn/authenticate/verify' || endpoint === 'verify') return confirmIdentity(ctx, endpoint, principal, fail);
  // A code typed for this call is the step-up; else a passkey confirmation's session, if any.
  const stepUp = readTokenCookie(ctx.req.headers.cookie, STEP_UP_COOKIE);
  const view = ctx.view.mfaToken === undefined && ctx.view.sessionToken === undefined && stepUp !== undefined ? { ...ctx.view, sessionToken: stepUp } : ctx.view;
  await handleMfaEndpoint(ctx.mfa, { req: ctx.req, res: ctx.res, view, subpath: endpoint, principal, policy: ctx.policy, now: ctx.now });
}

/**
 * "Confirm it is you" (a code in X-MFA-Token, or a passkey): the MFA API answers these with a
 * session token for the caller to send as X-Session-Token. The page must never hold a token, so
 * here it goes into the HttpOnly step-up cookie instead, for as long as a management step-up
 * counts (5 minutes), and the page is told only until when. The checks themselves (lockout,
 * replay, the ladder) are the service's, unchanged.
 */
async function confirmIdentity(ctx: FullContext, endpoint: 'verify' | 'webauthn/authenticate/verify', principal: Principal, fail: (p: Problem) => void): Promise<void> {
  const read = await readJson(ctx.req);
  if (!read.ok) return fail(read.problem);
  const caller = { principal, view: ctx.view, policy: ctx.policy, now: ctx.now };
  let result: Awaited<ReturnType<MfaService['verify']>> | Awaited<ReturnType<MfaService['verifyAuthentication']>>;
  if (endpoint === 'verify') {
    if (read.body !== undefined) return fail(problem('invalid_request', 'send the code in X-MFA-Token, with no body'));
    if (ctx.mfa.storeDown() !== undefined) return fail(storeUnavailable().problem);
    result = await ctx.mfa.verify(caller);
  } else {
    const body = verifyBody(read.body, ['response']);
    if (isProblem(body)) return fail(body);
    if (ctx.mfa.storeDown() !== undefined) return fail(storeUnavailable().problem);
    result = await ctx.mfa.verifyAuthentication(caller, body.response);
  }
  if (!result.ok) return fail(result.problem);
  const untilMs = Math.min(result.session.expiresAt * 1000, ctx.now + MANAGEMENT_STEP_UP_MS);
  ctx.res.setHeader('set-cookie', sessionCookie(ctx, result.session.token, untilMs - ctx.now, STEP_UP_COOKIE));
  const remaining = result.session.recoveryCodesRemaining;
  sendJson(ctx.res, 200, { confirmed: true, valid_until: Math.floor(untilMs / 1000), ...(remaining !== undefined ? { recovery_codes_remaining: remaining } : {}) });
}
