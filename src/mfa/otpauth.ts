import type { OtpAlgorithm } from '../config/types.js';

/**
 * `otpauth://` URIs per Google Authenticator's Key-URI format. Issuer and account are
 * percent-encoded everywhere they appear, so a `:`, `&`, `#`, `?`, `/` or newline in a name stays
 * part of that name and can never start a parameter or split the label.
 */

export type OtpauthInput =
  | { readonly type: 'totp'; readonly issuer: string; readonly account: string; readonly secretBase32: string; readonly algorithm: OtpAlgorithm; readonly digits: number; readonly periodSeconds: number }
  | { readonly type: 'hotp'; readonly issuer: string; readonly account: string; readonly secretBase32: string; readonly algorithm: OtpAlgorithm; readonly digits: number; readonly counter: number };

/** encodeURIComponent leaves !'()* alone; encode them too so the label has one spelling. */
function encode(text: string): string {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

export function buildOtpauthUri(input: OtpauthInput): string {
  const label = input.issuer === '' ? encode(input.account) : `${encode(input.issuer)}:${encode(input.account)}`;
  const params = [`secret=${input.secretBase32}`];
  if (input.issuer !== '') params.push(`issuer=${encode(input.issuer)}`);
  params.push(`algorithm=${input.algorithm}`, `digits=${input.digits}`);
  params.push(input.type === 'totp' ? `period=${input.periodSeconds}` : `counter=${input.counter}`);
  return `otpauth://${input.type}/${label}?${params.join('&')}`;
}

/** The secret as people type it from a screen: groups of four, space separated. */
export function formatManualKey(secretBase32: string): string {
  return (secretBase32.match(/.{1,4}/g) ?? []).join(' ');
}
