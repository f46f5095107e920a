import type { ServerResponse } from 'node:http';
import { problem, type Problem } from '../../errors/problems.js';
import { sendJson } from '../../http/respond.js';
import type { Caller, ContactSummary, MfaService, SentCode } from '../../mfa/service.js';
import type { ContactChannel, ContactPurpose } from '../../store/types.js';
import { isProblem, onlyFields, stringField, type Json } from './body.js';

/**
 * The e-mail and SMS endpoints under the reserved prefix, after endpoints.ts has checked the
 * method, read the body and seen the store answer:
 *   POST otp/enroll  {channel, destination, label?, purpose?}  → 201, a code sent to the destination
 *   POST otp/confirm {factor_id, code}                          → 200, the contact active
 *   POST otp/send    {channel, factor_id}                       → 200, a fresh code sent
 * Destinations are answered masked, never as given.
 */

export const OTP_ROUTES: Readonly<Record<string, string>> = {
  'otp/enroll': 'POST',
  'otp/confirm': 'POST',
  'otp/send': 'POST',
};

const CHANNELS: readonly string[] = ['email', 'sms'];
const PURPOSES: readonly string[] = ['factor', 'backup'];

/** The fields of `body`, each a non-empty string (`optional` ones may be absent), or the first problem. */
function strings(body: Json | undefined, required: readonly string[], optional: readonly string[] = []): Record<string, string> | Problem {
  if (body === undefined) return problem('invalid_request', `a JSON body {${[...required, ...optional.map((key) => `${key}?`)].join(', ')}} is required`);
  const unknown = onlyFields(body, [...required, ...optional]);
  if (unknown !== undefined) return unknown;
  const out: Record<string, string> = {};
  for (const key of [...required, ...optional]) {
    if (!required.includes(key) && body[key] === undefined) continue;
    const value = stringField(body, key);
    if (isProblem(value)) return value;
    out[key] = value;
  }
  if (out.channel !== undefined && !CHANNELS.includes(out.channel)) return problem('invalid_request', '"channel" must be "email" or "sms"');
  if (out.purpose !== undefined && !PURPOSES.includes(out.purpose)) return problem('invalid_request', '"purpose" must be "factor" or "backup"');
  return out;
}

export function contactJson(c: ContactSummary): Json {
  return {
    id: c.id,
    type: c.type,
    purpose: c.purpose,
    status: c.status,
    label: c.label,
    destination: c.destination,
    created_at: c.createdAt,
    ...(c.confirmedAt !== undefined ? { confirmed_at: c.confirmedAt } : {}),
    ...(c.pendingUntil !== undefined ? { pending_until: c.pendingUntil } : {}),
  };
}

function sentJson(sent: SentCode): Json {
  return { factor_id: sent.factorId, channel: sent.channel, destination: sent.destination, expires_at: sent.expiresAt };
}

export async function handleOtpEndpoint(service: MfaService, caller: Caller, subpath: string, body: Json | undefined, res: ServerResponse, fail: (p: Problem) => void): Promise<void> {
  switch (subpath) {
    case 'otp/enroll': {
      const fields = strings(body, ['channel', 'destination'], ['label', 'purpose']);
      if (isProblem(fields)) return fail(fields);
      const request = { channel: fields.channel as ContactChannel, destination: fields.destination!, purpose: (fields.purpose ?? 'factor') as ContactPurpose, label: fields.label };
      const result = await service.enrollContact(caller, request);
      if (!result.ok) return fail(result.problem);
      const { contact, sent } = result;
      return sendJson(res, 201, {
        factor_id: contact.id,
        type: contact.type,
        purpose: contact.purpose,
        status: contact.status,
        label: contact.label,
        destination: contact.destination,
        pending_until: contact.pendingUntil,
        code_expires_at: sent.expiresAt,
      });
    }
    case 'otp/confirm': {
      const fields = strings(body, ['factor_id', 'code']);
      if (isProblem(fields)) return fail(fields);
      const result = await service.confirmContact(caller, fields.factor_id!, fields.code!);
      if (!result.ok) return fail(result.problem);
      return sendJson(res, 200, { factor_id: result.factorId, status: 'active', ...(result.recoveryCodes !== undefined ? { recovery_codes: result.recoveryCodes } : {}) });
    }
    case 'otp/send': {
      const fields = strings(body, ['channel', 'factor_id']);
      if (isProblem(fields)) return fail(fields);
      const result = await service.sendCode(caller, fields.channel as ContactChannel, fields.factor_id!);
      if (!result.ok) return fail(result.problem);
      return sendJson(res, 200, sentJson(result.sent));
    }
    default:
      return fail(problem('not_found', 'no such gateway endpoint'));
  }
}
