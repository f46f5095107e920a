import type { MfaConfig } from '../../config/types.js';
import type { ContactChannel, ContactPurpose, ContactRecord } from '../../store/types.js';

/**
 * What the policy lets a contact do: an e-mail or SMS factor only while its channel is a factor
 * (`mfa.email.factor`, off by default, and `mfa.sms.factor`) and has a transport; a backup contact
 * only while `mfa.backup_contact` is on and its channel has a transport. A contact the policy does
 * not allow is kept (the policy may change back) but neither receives codes nor satisfies a route.
 */

export function canSend(mfa: MfaConfig, channel: ContactChannel): boolean {
  return channel === 'email' ? mfa.email.smtp !== undefined && mfa.email.from !== undefined : mfa.sms.provider !== undefined;
}

export function allowed(mfa: MfaConfig, channel: ContactChannel, purpose: ContactPurpose): boolean {
  if (!canSend(mfa, channel)) return false;
  return purpose === 'backup' ? mfa.backupContact.enabled : channel === 'email' ? mfa.email.factor : mfa.sms.factor;
}

/** Whether any contact could be usable under `mfa`: when none could, no store call is made for them. */
export function contactsInUse(mfa: MfaConfig): boolean {
  return allowed(mfa, 'email', 'factor') || allowed(mfa, 'sms', 'factor') || allowed(mfa, 'email', 'backup') || allowed(mfa, 'sms', 'backup');
}

/** The active contacts that may satisfy a second factor now. */
export function usableContacts(mfa: MfaConfig, contacts: readonly ContactRecord[]): ContactRecord[] {
  return contacts.filter((c) => c.status === 'active' && allowed(mfa, c.channel, c.purpose));
}
