import type { ServerResponse } from 'node:http';
import { problem, type Problem } from '../../errors/problems.js';
import { sendJson } from '../../http/respond.js';
import type { CredentialSummary } from '../../mfa/listing.js';
import type { Caller, MfaService } from '../../mfa/service.js';
import { isProblem, onlyFields, type Json } from './body.js';

/**
 * `POST <prefix>webauthn/register/options|verify` and `POST <prefix>webauthn/authenticate/options|verify`:
 * JSON in and out around the WebAuthn service. The options answers are the library's
 * PublicKeyCredential*OptionsJSON as they are (what `startRegistration` / `startAuthentication`
 * take as `optionsJSON`); the verify calls take `{ response }`, the JSON those functions return.
 * A good assertion answers like `POST verify`: `{ session_token, expires_at }`.
 */

export const WEBAUTHN_ROUTES: Readonly<Record<string, string>> = {
  'webauthn/register/options': 'POST',
  'webauthn/register/verify': 'POST',
  'webauthn/authenticate/options': 'POST',
  'webauthn/authenticate/verify': 'POST',
};

/** A credential in `GET factors`: no credential id, no public key, only what its owner needs to tell them apart. */
export function webAuthnFactorJson(c: CredentialSummary, lifetime: Json): Json {
  return {
    id: c.id,
    type: c.type,
    status: c.status,
    label: c.label,
    kind: c.kind,
    synced: c.synced,
    transports: [...c.transports],
    created_at: c.createdAt,
    ...(c.lastUsedAt !== undefined ? { last_used_at: c.lastUsedAt } : {}),
    ...lifetime,
  };
}

/** The body of an options call: none, or an empty object. */
function noFields(body: Json | undefined): Problem | undefined {
  return body === undefined ? undefined : onlyFields(body, []);
}

/** `{ response }` (and for registration an optional `label`); the response is checked by the service. */
export function verifyBody(body: Json | undefined, fields: readonly string[]): { response: unknown; label?: unknown } | Problem {
  if (body === undefined) return problem('invalid_request', `a JSON body {${fields.join(', ')}} is required`);
  const unknown = onlyFields(body, fields);
  if (unknown !== undefined) return unknown;
  if (body.response === undefined) return problem('invalid_request', '"response" is required');
  if (body.label !== undefined && typeof body.label !== 'string') return problem('invalid_request', '"label" must be a string');
  return { response: body.response, ...(body.label !== undefined ? { label: body.label } : {}) };
}

export async function handleWebAuthnEndpoint(
  service: MfaService,
  caller: Caller,
  subpath: string,
  body: Json | undefined,
  res: ServerResponse,
  fail: (p: Problem) => void,
): Promise<void> {
  switch (subpath) {
    case 'webauthn/register/options':
    case 'webauthn/authenticate/options': {
      const bad = noFields(body);
      if (bad !== undefined) return fail(bad);
      const result = subpath === 'webauthn/register/options' ? await service.registrationOptions(caller) : await service.authenticationOptions(caller);
      return result.ok ? sendJson(res, 200, result.options as unknown as Json) : fail(result.problem);
    }
    case 'webauthn/register/verify': {
      const read = verifyBody(body, ['response', 'label']);
      if (isProblem(read)) return fail(read);
      const result = await service.verifyRegistration(caller, read.response, { label: read.label as string | undefined });
      if (!result.ok) return fail(result.problem);
      const r = result.registered;
      return sendJson(res, 201, {
        factor_id: r.factorId,
        type: 'webauthn',
        kind: r.kind,
        label: r.label,
        status: 'active',
        expires_at: r.expiresAt,
        ...(r.recoveryCodes !== undefined ? { recovery_codes: r.recoveryCodes } : {}),
      });
    }
    case 'webauthn/authenticate/verify': {
      const read = verifyBody(body, ['response']);
      if (isProblem(read)) return fail(read);
      const result = await service.verifyAuthentication(caller, read.response);
      return result.ok ? sendJson(res, 200, { session_token: result.session.token, expires_at: result.session.expiresAt }) : fail(result.problem);
    }
    default:
      return fail(problem('not_found', 'no such gateway endpoint'));
  }
}
