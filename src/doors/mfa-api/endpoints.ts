import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Principal } from '../../auth/principal.js';
import type { GatewayPolicy, OtpAlgorithm } from '../../config/types.js';
import { problem, type Problem } from '../../errors/problems.js';
import { sendEmpty, sendJson, sendProblem } from '../../http/respond.js';
import type { RequestView } from '../../request/view.js';
import type { FactorRequest } from '../../mfa/enrollment.js';
import type { ListedFactor } from '../../mfa/listing.js';
import type { IssuedSession } from '../../decision/types.js';
import { handleWebAuthnEndpoint, webAuthnFactorJson, WEBAUTHN_ROUTES } from './webauthn.js';
import { storeUnavailable, type Caller, type MfaService } from '../../mfa/service.js';
import { isStoreUnavailable } from '../../store/health.js';
import { serveSetupPage } from './setup-page.js';
import { isProblem, onlyFields, readJson, stringField, type Json } from './body.js';
import { contactJson, handleOtpEndpoint, OTP_ROUTES } from './otp.js';

/**
 * The gateway's own endpoints under the reserved prefix. The gateway has verified the bearer
 * already; this only translates HTTP ⇄ service calls: JSON in (≤ 16 KiB, application/json only,
 * known fields only), JSON or problem+json out, never a secret in an error.
 */

export interface MfaEndpointContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly view: RequestView;
  /** The path after the prefix, e.g. `totp/enroll`. */
  readonly subpath: string;
  readonly principal: Principal;
  /** The policy and clock reading the request pinned when it was admitted. */
  readonly policy: GatewayPolicy;
  readonly now: number;
}

export { MAX_BODY_BYTES } from './body.js';
const FACTOR_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** `factors/{id}`: a factor is removed (DELETE) or renamed (PATCH {label}). */
export const FACTOR_ROUTE_METHODS = 'DELETE, PATCH';


function factorRequestFrom(body: Json | undefined): FactorRequest | Problem {
  if (body === undefined) return { type: 'totp' };
  const unknown = onlyFields(body, ['type', 'secret', 'counter', 'label', 'algorithm', 'digits']);
  if (unknown !== undefined) return unknown;
  const type = body.type ?? 'totp';
  if (type !== 'totp' && type !== 'hotp') return problem('invalid_request', '"type" must be "totp" or "hotp"');
  for (const key of ['secret', 'label', 'algorithm'] as const) {
    if (body[key] !== undefined && typeof body[key] !== 'string') return problem('invalid_request', `"${key}" must be a string`);
  }
  for (const key of ['counter', 'digits'] as const) {
    if (body[key] !== undefined && typeof body[key] !== 'number') return problem('invalid_request', `"${key}" must be a number`);
  }
  return {
    type,
    secret: body.secret as string | undefined,
    counter: body.counter as number | undefined,
    label: body.label as string | undefined,
    algorithm: body.algorithm as OtpAlgorithm | undefined,
    digits: body.digits as number | undefined,
  };
}

/** A factor as GET /.mfa/factors shows it; `factors list` prints the same fields. */
export function factorJson(f: ListedFactor): Json {
  const lifetime = { ...(f.expiresAt !== undefined ? { expires_at: f.expiresAt, expired: f.expired === true } : {}) };
  if (f.type === 'webauthn') return webAuthnFactorJson(f, lifetime);
  return {
    id: f.id,
    type: f.type,
    status: f.status,
    label: f.label,
    algorithm: f.algorithm,
    digits: f.digits,
    ...(f.periodSeconds !== undefined ? { period: f.periodSeconds } : {}),
    created_at: f.createdAt,
    ...(f.confirmedAt !== undefined ? { confirmed_at: f.confirmedAt } : {}),
    ...(f.pendingUntil !== undefined ? { pending_until: f.pendingUntil } : {}),
    ...lifetime,
  };
}

/** What a session answer adds after a recovery code: how many are left, and the suggestion once few are. */
function recoveryJson(session: IssuedSession): Json {
  if (session.recoveryCodesRemaining === undefined) return {};
  return { recovery_codes_remaining: session.recoveryCodesRemaining, ...(session.recoveryCodesHint !== undefined ? { recovery_codes_hint: session.recoveryCodesHint } : {}) };
}

/**
 * Every sub-path the MFA API answers, with its methods (`factors/{id}` has FACTOR_ROUTE_METHODS). Exported for
 * test/docs/openapi.test.ts: an endpoint added here without an entry in docs/openapi.yaml fails it.
 */
export const ROUTES: Readonly<Record<string, string>> = {
  'totp/enroll': 'POST',
  'totp/confirm': 'POST',
  'hotp/resync': 'POST',
  verify: 'POST',
  'session/revoke': 'POST',
  'session/refresh': 'POST',
  'session/revoke-all': 'POST',
  factors: 'GET',
  'recovery-codes': 'POST',
  setup: 'GET',
  ...OTP_ROUTES,
  ...WEBAUTHN_ROUTES,
};

export async function handleMfaEndpoint(service: MfaService, ctx: MfaEndpointContext): Promise<void> {
  const { req, res, view, subpath } = ctx;
  const requestId = view.requestId;
  const caller: Caller = { principal: ctx.principal, view, policy: ctx.policy, now: ctx.now };
  const fail = (p: Problem, extra?: Record<string, string>, close = false) => sendProblem(res, p, requestId, extra, close);

  const factorPath = /^factors\/([^/]+)$/.exec(subpath);
  // Own keys only: `constructor` or `__proto__` must be a 404, not Object.prototype's members.
  const allowed = factorPath !== null ? FACTOR_ROUTE_METHODS : Object.hasOwn(ROUTES, subpath) ? ROUTES[subpath] : undefined;
  if (allowed === undefined) {
    fail(problem('not_found', 'no such gateway endpoint'));
    return;
  }
  if (!allowed.split(', ').includes(view.method)) {
    fail(problem('method_not_allowed', `use ${allowed} for this endpoint`), { allow: allowed });
    return;
  }

  try {
    if (subpath === 'setup') {
      serveSetupPage(res);
      return;
    }
    const read = await readJson(req);
    if (!read.ok) {
      fail(read.problem, undefined, read.close);
      return;
    }
    const body = read.body;
    // Every endpoint below reads or writes the store: with a backend down, fail closed at once.
    if (service.storeDown() !== undefined) return fail(storeUnavailable().problem);

    if (factorPath !== null) {
      const id = factorPath[1]!;
      if (!FACTOR_ID.test(id)) {
        fail(problem('not_found', 'no factor with this id'));
        return;
      }
      if (view.method === 'PATCH') {
        const unknown = body === undefined ? problem('invalid_request', 'a JSON body {label} is required') : onlyFields(body, ['label']);
        if (unknown !== undefined) return fail(unknown);
        const renamed = await service.renameFactor(caller, id, body!.label as string);
        return renamed.ok ? sendEmpty(res, 204) : fail(renamed.problem);
      }
      const removed = await service.removeFactor(caller, id);
      if (removed.ok) sendEmpty(res, 204);
      else fail(removed.problem);
      return;
    }
    if (subpath.startsWith('webauthn/')) return await handleWebAuthnEndpoint(service, caller, subpath, body, res, fail);

    if (Object.hasOwn(OTP_ROUTES, subpath)) return await handleOtpEndpoint(service, caller, subpath, body, res, fail);

    switch (subpath) {
      case 'totp/enroll': {
        const request = factorRequestFrom(body);
        if (isProblem(request)) return fail(request);
        const result = await service.enroll(caller, request);
        if (!result.ok) return fail(result.problem);
        const e = result.enrollment;
        return sendJson(res, 201, {
          factor_id: e.factorId,
          type: e.type,
          secret: e.secretBase32,
          otpauth_uri: e.otpauthUri,
          qr_svg: e.qr.svg,
          qr_png: e.qr.pngDataUrl,
          manual_key: e.manualKey,
          pending_until: e.pendingUntil,
        });
      }
      case 'totp/confirm': {
        if (body === undefined) return fail(problem('invalid_request', 'a JSON body {factor_id, code} is required'));
        const unknown = onlyFields(body, ['factor_id', 'code']);
        if (unknown !== undefined) return fail(unknown);
        const factorId = stringField(body, 'factor_id');
        if (isProblem(factorId)) return fail(factorId);
        const code = stringField(body, 'code');
        if (isProblem(code)) return fail(code);
        const result = await service.confirm(caller, factorId, code);
        if (!result.ok) return fail(result.problem);
        return sendJson(res, 200, { factor_id: result.factorId, status: 'active', ...(result.recoveryCodes !== undefined ? { recovery_codes: result.recoveryCodes } : {}) });
      }
      case 'hotp/resync': {
        if (body === undefined) return fail(problem('invalid_request', 'a JSON body {factor_id, code1, code2} is required'));
        const unknown = onlyFields(body, ['factor_id', 'code1', 'code2']);
        if (unknown !== undefined) return fail(unknown);
        const fields = ['factor_id', 'code1', 'code2'].map((k) => stringField(body, k));
        const bad = fields.find(isProblem);
        if (bad !== undefined) return fail(bad);
        const [factorId, code1, code2] = fields as string[];
        const result = await service.resyncHotp(caller, factorId!, code1!, code2!);
        if (!result.ok) return fail(result.problem);
        return sendJson(res, 200, { factor_id: result.factorId, status: 'resynchronised' });
      }
      case 'verify': {
        const result = await service.verify(caller);
        if (!result.ok) return fail(result.problem);
        return sendJson(res, 200, { session_token: result.session.token, expires_at: result.session.expiresAt, ...recoveryJson(result.session) });
      }
      case 'session/revoke': {
        const result = await service.revokeSession(caller);
        if (!result.ok) return fail(result.problem);
        return sendEmpty(res, 204);
      }
      case 'session/revoke-all': {
        const result = await service.revokeAllSessions(caller);
        if (!result.ok) return fail(result.problem);
        return sendJson(res, 200, { revoked: result.revoked });
      }
      case 'session/refresh': {
        const result = await service.refreshSession(caller);
        if (!result.ok) return fail(result.problem);
        return sendJson(res, 200, { session_token: result.session.token, expires_at: result.session.expiresAt });
      }
      case 'factors': {
        const [listed, contacts] = await Promise.all([service.listFactors(ctx.principal.subject, ctx.now, ctx.policy), service.listContacts(ctx.principal.subject, ctx.now)]);
        return sendJson(res, 200, {
          factors: [...listed.factors.map(factorJson), ...contacts.map(contactJson)],
          recovery_codes_remaining: listed.recoveryCodesRemaining,
          ...(listed.recoveryCodesHint !== undefined ? { recovery_codes_hint: listed.recoveryCodesHint } : {}),
        });
      }
      case 'recovery-codes': {
        const result = await service.regenerateRecoveryCodes(caller);
        if (!result.ok) return fail(result.problem);
        return sendJson(res, 200, { recovery_codes: result.recoveryCodes });
      }
      default:
        return fail(problem('not_found', 'no such gateway endpoint'));
    }
  } catch (error) {
    if (isStoreUnavailable(error)) {
      service.logger.warn({ event: 'store_unavailable', request_id: requestId, error: error instanceof Error ? error.message : 'unknown' }, 'gateway endpoint refused: store unavailable');
      return fail(storeUnavailable().problem);
    }
    // Store or keyring trouble: the detail goes to the log, never into the answer.
    service.logger.error({ event: 'mfa_endpoint_error', request_id: requestId, endpoint: factorPath !== null ? 'factors/{id}' : subpath, error: error instanceof Error ? error.message : 'unknown' }, 'gateway endpoint failed');
    fail(problem('internal_error', 'the request could not be completed'));
  }
}
