import { randomUUID } from 'node:crypto';
import { fillTemplate } from '../config/oob.js';
import { DeliveryError } from '../delivery/index.js';
import { problem } from '../errors/problems.js';
import type { ContactChannel, ContactPurpose, ContactRecord } from '../store/types.js';
import {
  auditContext,
  countVerification,
  failedAttempt,
  firstFactorConfirmed,
  freshIfEnrolled,
  isEnrolled,
  lockRefusal,
  notEnrolled,
  refuse,
  seconds,
  sessionTtlMs,
  type Caller,
  type MfaDeps,
  type Outcome,
  type Refusal,
} from './attempts.js';
import type { AuditContext } from './audit.js';
import { LABEL } from './enrollment.js';
import { generateSentCode, sentCodeHash } from './oob/codes.js';
import { maskDestination, parseDestination } from './oob/destination.js';
import { allowed } from './oob/usable.js';
import type { SecondFactorService } from './second-factor.js';

/**
 * E-mail addresses and phone numbers that receive codes: as a second factor of their own, or as a
 * backup contact to recover with. Enrolment is proven by a code sent to the destination (pending →
 * active, as a TOTP factor is by its first code). A code is sent only after the send quotas (per
 * user and per destination, in the shared store) allow it, and kept (hashed) only once the SMTP
 * server or SMS provider has taken it: a failed send changes nothing but the quota, the metric and
 * the audit log. The code itself is then checked where every code is (verify.ts).
 */

export interface ContactRequest {
  readonly channel: ContactChannel;
  /** An e-mail address or an E.164 number, as the user typed it. */
  readonly destination: string;
  readonly purpose: ContactPurpose;
  readonly label?: string | undefined;
}

/** What a contact looks like to its owner: the destination masked, nothing sealed. */
export interface ContactSummary {
  readonly id: string;
  readonly type: ContactChannel;
  readonly purpose: ContactPurpose;
  readonly status: 'pending' | 'active';
  readonly label: string;
  readonly destination: string;
  /** Unix seconds. */
  readonly createdAt: number;
  readonly confirmedAt?: number;
  readonly pendingUntil?: number;
}

export interface SentCode {
  readonly factorId: string;
  readonly channel: ContactChannel;
  /** Masked. */
  readonly destination: string;
  /** Unix seconds: when the code stops working. */
  readonly expiresAt: number;
}

export interface ContactService {
  enrollContact(caller: Caller, request: ContactRequest): Promise<Outcome<{ contact: ContactSummary; sent: SentCode }>>;
  confirmContact(caller: Caller, contactId: string, code: string): Promise<Outcome<{ factorId: string; recoveryCodes?: string[] }>>;
  sendCode(caller: Caller, channel: ContactChannel, contactId: string): Promise<Outcome<{ sent: SentCode }>>;
  listContacts(subject: string, now: number): Promise<ContactSummary[]>;
}

export const MAX_CONTACTS = 5;
export const MAX_PENDING_CONTACTS = 3;
const CHANNEL_NAME: Readonly<Record<ContactChannel, string>> = { email: 'e-mail', sms: 'SMS' };
const DESTINATION_NAME: Readonly<Record<ContactChannel, string>> = { email: 'e-mail address', sms: 'phone number' };

/** Why the policy does not let `channel` be used for `purpose` now. */
function notAllowed(channel: ContactChannel, purpose: ContactPurpose): Refusal {
  return refuse(
    purpose === 'backup'
      ? problem('forbidden', `backup contacts by ${CHANNEL_NAME[channel]} are not enabled on this gateway`)
      : problem('forbidden', `${CHANNEL_NAME[channel]} codes are not enabled as a second factor on this gateway`),
  );
}

export function createContactService(deps: MfaDeps, secondFactor: Pick<SecondFactorService, 'requireFresh'>): ContactService {
  const { durable, ttl, keyring, audit, metrics, logger } = deps;

  /** The plain destination, or undefined when its seal cannot be opened (tampering, a lost key: fail closed). */
  function openDestination(contact: ContactRecord, ctx: AuditContext): string | undefined {
    try {
      const bytes = keyring.open(contact.destination, { subject: contact.subject, factorId: contact.id });
      const text = bytes.toString('utf8');
      bytes.fill(0);
      return text;
    } catch {
      logger.error({ event: 'contact_unreadable', factor_id: contact.id, subject: contact.subject, kid: contact.destination.kid }, 'a contact destination cannot be decrypted; it is refused');
      audit.record(ctx, { event: 'factor_unreadable', factorId: contact.id });
      return undefined;
    }
  }

  function summary(contact: ContactRecord, destination: string | undefined): ContactSummary {
    return {
      id: contact.id,
      type: contact.channel,
      purpose: contact.purpose,
      status: contact.status,
      label: contact.label,
      destination: destination === undefined ? '(unreadable)' : maskDestination(contact.channel, destination),
      createdAt: seconds(contact.createdAt),
      ...(contact.confirmedAt !== undefined ? { confirmedAt: seconds(contact.confirmedAt) } : {}),
      ...(contact.pendingUntil !== undefined ? { pendingUntil: seconds(contact.pendingUntil) } : {}),
    };
  }

  /** One send quota; the refusal when it is used up. */
  async function quota(caller: Caller, contactId: string, limit: 'user' | 'destination', key: string): Promise<Refusal | undefined> {
    const { perUser, perDestination } = caller.policy.mfa.codes.sendLimits;
    const rule = limit === 'user' ? perUser : perDestination;
    const take = await ttl.takeToken(key, caller.now, { limit: rule.sends, windowMs: rule.perMs });
    if (take.taken) return undefined;
    const retryAfter = Math.max(1, Math.ceil((take.resetAt - caller.now) / 1000));
    metrics?.throttled.inc({ limit: `code_send_${limit}` });
    audit.record(auditContext(caller), { event: 'code_send_limited', factorId: contactId, limit, retryAfterSeconds: retryAfter });
    const whom = limit === 'user' ? 'for this user' : 'to this destination';
    return refuse(problem('rate_limited', `too many codes were sent ${whom}; try again later`, { retryAfter }));
  }

  /**
   * Sends a fresh code to `destination` for `contact` and resolves to the hash to keep; nothing is
   * kept here. Refused when a quota is used up, or the transport did not take the message.
   */
  async function deliver(caller: Caller, contact: Pick<ContactRecord, 'id' | 'channel'>, destination: string): Promise<Outcome<{ sent: SentCode; hash: string }>> {
    const { policy, now } = caller;
    const ctx = auditContext(caller);
    const { channel } = contact;
    // The per-destination key is a keyed hash: no address or number is ever written into the store.
    const limited =
      (await quota(caller, contact.id, 'user', `code-send:user:${ctx.subject}`)) ??
      (await quota(caller, contact.id, 'destination', `code-send:to:${keyring.hmac('code-destination', `${channel}:${destination}`)}`));
    if (limited !== undefined) return limited;
    const sender = deps.delivery.sender(channel, policy.mfa);
    if (sender === undefined) return notAllowed(channel, 'factor');
    const masked = maskDestination(channel, destination);
    const code = generateSentCode();
    const { codes, issuer, email } = policy.mfa;
    const values = { code, issuer, minutes: String(Math.round(codes.ttlMs / 60_000)) };
    try {
      await sender.send({ to: destination, subject: fillTemplate(email.subject, { issuer }), text: fillTemplate(codes.message, values) });
    } catch (error) {
      if (!DeliveryError.is(error)) throw error;
      metrics?.mfaCodeDeliveries.inc({ channel, result: 'failed' });
      audit.record(ctx, { event: 'code_send_failed', factorId: contact.id, channel, destination: masked, reason: error.message });
      return refuse(problem('delivery_failed', `the code could not be sent by ${CHANNEL_NAME[channel]}; nothing was changed, try again later`));
    }
    metrics?.mfaCodeDeliveries.inc({ channel, result: 'sent' });
    audit.record(ctx, { event: 'code_sent', factorId: contact.id, channel, destination: masked });
    return { ok: true, sent: { factorId: contact.id, channel, destination: masked, expiresAt: seconds(now + codes.ttlMs) }, hash: sentCodeHash(keyring, ctx.subject, contact.id, code) };
  }

  /** Refuses what this request may not do with `channel` for `purpose`: the policy, then enrolment for a backup. */
  async function permitted(caller: Caller, channel: ContactChannel, purpose: ContactPurpose): Promise<Refusal | undefined> {
    if (!allowed(caller.policy.mfa, channel, purpose)) return notAllowed(channel, purpose);
    // A backup stands in for a factor: without one there is nothing to recover.
    if (purpose === 'backup' && !(await isEnrolled(deps, caller.principal.subject, caller.now, caller.policy))) return notEnrolled(caller.policy);
    return undefined;
  }

  /**
   * The caller's own live contact `contactId` that `wanted` accepts, once neither the user nor the
   * address is locked; else the refusal (one answer for absent, another user's and unwanted).
   */
  async function ownContact(caller: Caller, contactId: string, wanted: (contact: ContactRecord) => boolean, missing: string): Promise<ContactRecord | Refusal> {
    const locked = await lockRefusal(deps, auditContext(caller), caller.now, caller.policy);
    if (locked !== undefined) return locked;
    const contact = await durable.getContact(contactId, caller.now);
    if (contact === undefined || contact.subject !== caller.principal.subject || !wanted(contact)) return refuse(problem('not_found', missing));
    return contact;
  }

  return {
    async enrollContact(caller, request) {
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      const { channel, purpose } = request;
      const denied = (await permitted(caller, channel, purpose)) ?? (await lockRefusal(deps, ctx, now, policy)) ?? (await freshIfEnrolled(deps, secondFactor, caller));
      if (denied !== undefined) return denied;
      const parsed = parseDestination(channel, request.destination);
      if (!parsed.ok) return refuse(problem('invalid_request', `"destination" ${parsed.reason}`));
      if (request.label !== undefined && !LABEL.test(request.label)) return refuse(problem('invalid_request', '"label" must be 1-64 printable characters'));
      const existing = await durable.listContacts(ctx.subject, now);
      if (existing.length >= MAX_CONTACTS) return refuse(problem('invalid_request', `a user may have at most ${MAX_CONTACTS} e-mail and SMS contacts; remove one first`));
      if (existing.filter((c) => c.status === 'pending').length >= MAX_PENDING_CONTACTS) {
        return refuse(problem('invalid_request', 'too many pending contacts; confirm one or wait for it to expire'));
      }
      if (existing.some((c) => c.channel === channel && openDestination(c, ctx) === parsed.value)) {
        return refuse(problem('invalid_request', `this ${DESTINATION_NAME[channel]} is already one of your contacts`));
      }

      const id = randomUUID();
      const delivered = await deliver(caller, { id, channel }, parsed.value);
      if (!delivered.ok) return delivered;
      const record: ContactRecord = {
        id,
        subject: ctx.subject,
        channel,
        purpose,
        status: 'pending',
        label: request.label ?? (purpose === 'backup' ? `Backup ${CHANNEL_NAME[channel]}` : channel === 'sms' ? 'SMS' : 'E-mail'),
        destination: keyring.seal(Buffer.from(parsed.value, 'utf8'), { subject: ctx.subject, factorId: id }),
        createdAt: now,
        pendingUntil: now + policy.mfa.enrollment.pendingTtlMs,
      };
      await durable.createContact(record);
      await ttl.putSentCode(ctx.subject, id, delivered.hash, now, policy.mfa.codes.ttlMs);
      audit.record(ctx, { event: 'enrolled', factorId: id, type: channel, purpose });
      return { ok: true, contact: summary(record, parsed.value), sent: delivered.sent };
    },

    async confirmContact(caller, contactId, code) {
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      const contact = await ownContact(caller, contactId, (c) => c.status === 'pending', 'no pending contact with this id (it may have expired; enroll again)');
      if ('problem' in contact) return contact;
      const denied = (await permitted(caller, contact.channel, contact.purpose)) ?? (await freshIfEnrolled(deps, secondFactor, caller));
      if (denied !== undefined) return denied;
      // The code is used up like any other, and a wrong one counts toward the same lockout.
      const result = await deps.verifier.attempt({ subject: ctx.subject, code, factors: [], contacts: [contact], allowRecovery: false, now, policy });
      if (!result.ok) return failedAttempt(deps, caller, result, sessionTtlMs(policy), contact.channel);
      const hadFactor = await isEnrolled(deps, ctx.subject, now, policy);
      if (!(await durable.activateContact(contact.id, ctx.subject, now))) {
        return refuse(problem('not_found', 'no pending contact with this id (it may have expired; enroll again)'));
      }
      await ttl.clearLock(ctx.subject);
      countVerification(deps, contact.channel, 'success');
      audit.record(ctx, { event: 'confirmed', factorId: contact.id, type: contact.channel, purpose: contact.purpose });
      if (contact.purpose === 'backup' || hadFactor) return { ok: true, factorId: contact.id };
      return { ok: true, factorId: contact.id, recoveryCodes: await firstFactorConfirmed(deps, ctx, contact.id, policy, now) };
    },

    async sendCode(caller, channel, contactId) {
      const { policy, now } = caller;
      const ctx = auditContext(caller);
      const contact = await ownContact(caller, contactId, (c) => c.channel === channel, `no ${CHANNEL_NAME[channel]} contact with this id`);
      if ('problem' in contact) return contact;
      const denied = await permitted(caller, channel, contact.purpose);
      if (denied !== undefined) return denied;
      const destination = openDestination(contact, ctx);
      if (destination === undefined) return refuse(problem('internal_error', 'the request could not be completed'));
      const delivered = await deliver(caller, contact, destination);
      if (!delivered.ok) return delivered;
      await ttl.putSentCode(ctx.subject, contact.id, delivered.hash, now, policy.mfa.codes.ttlMs);
      return { ok: true, sent: delivered.sent };
    },

    async listContacts(subject, now) {
      const ctx = { subject };
      return (await durable.listContacts(subject, now)).map((c) => summary(c, openDestination(c, ctx)));
    },
  };
}
