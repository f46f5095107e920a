import type { ContactChannel } from '../../store/types.js';

/**
 * E-mail addresses and phone numbers as the gateway accepts them: one canonical form to seal, to
 * compare and to rate-limit on, and a masked form that is all logs, audit events and answers show.
 */

export type Destination = { readonly ok: true; readonly value: string } | { readonly ok: false; readonly reason: string };

/** E.164: a + and 7 to 15 digits, the first not 0 (country codes never start with 0). */
const E164 = /^\+[1-9][0-9]{6,14}$/;
/** RFC 5322 dot-atom, ASCII only: what every SMTP server takes without quoting. */
const LOCAL_PART = /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$/;
const DOMAIN_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function email(input: string): Destination {
  const at = input.lastIndexOf('@');
  if (input.length > 254 || at < 1) return { ok: false, reason: 'must be an e-mail address, e.g. alice@example.com' };
  const local = input.slice(0, at);
  const domain = input.slice(at + 1).toLowerCase();
  if (local.length > 64 || !LOCAL_PART.test(local)) return { ok: false, reason: 'must be an e-mail address with a plain ASCII local part, e.g. alice@example.com' };
  const labels = domain.split('.');
  if (labels.length < 2 || !labels.every((label) => DOMAIN_LABEL.test(label)) || /^[0-9]+$/.test(labels.at(-1)!)) {
    return { ok: false, reason: 'must be an e-mail address whose domain is a host name (international domains in their xn-- form)' };
  }
  // The local part is kept as given (servers may tell case apart); the domain is lower-cased.
  return { ok: true, value: `${local}@${domain}` };
}

function phone(input: string): Destination {
  return E164.test(input) ? { ok: true, value: input } : { ok: false, reason: 'must be a phone number in E.164 form: + and the country code, no spaces, e.g. +14155550123' };
}

/** The canonical destination, or why `input` is not one; the reason never repeats the input. */
export function parseDestination(channel: ContactChannel, input: string): Destination {
  return channel === 'email' ? email(input) : phone(input);
}

/**
 * `a***@e***.com`, `+44*******89`: enough for its owner to recognise it, not enough to contact anyone.
 * Only ever applied to a canonical destination.
 */
export function maskDestination(channel: ContactChannel, value: string): string {
  if (channel === 'sms') return `${value.slice(0, 3)}${'*'.repeat(Math.max(0, value.length - 5))}${value.slice(-2)}`;
  const at = value.lastIndexOf('@');
  const domain = value.slice(at + 1);
  const dot = domain.lastIndexOf('.');
  return `${value[0]}***@${domain[0]}***${domain.slice(dot)}`;
}
