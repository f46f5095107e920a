import type { GatewayPolicy } from '../config/types.js';
import { createSetupStore, INVITE_TTL_MS } from '../setup/store.js';
import { openStore } from '../store/open.js';
import { systemClock } from '../time/clock.js';
import { UsageError } from './options.js';

/**
 * `factors invite --user SUB`: a single-use link to the setup page, valid 10 minutes, for someone
 * who cannot sign in there with the identity provider (or when sign-in is off, as in the demo).
 * The token travels in the URL's fragment: browsers never send a fragment to a server, so it
 * stays out of access logs and proxies, and the page's script trades it once for a setup session.
 * The store keeps only the token's hash.
 */
export async function runInviteCommand(policy: GatewayPolicy, subject: string | undefined, print: (text: string) => void): Promise<number> {
  if (subject === undefined || subject === '') throw new UsageError('factors invite needs --user SUBJECT');
  const origin = policy.setup.publicOrigin ?? defaultOrigin(policy);
  const store = await openStore(policy.store, systemClock);
  try {
    const now = systemClock();
    const token = await createSetupStore(store.ttl).createInvite(subject, now);
    print(`${origin}${policy.mfa.pathPrefix}setup#invite=${token}`);
    print(`(for ${subject}; works once, until ${new Date(now + INVITE_TTL_MS).toISOString()})`);
    return 0;
  } finally {
    await store.close();
  }
}

/** Without setup.public_url: this machine's listener, as the demo is reached. */
function defaultOrigin(policy: GatewayPolicy): string {
  const scheme = policy.listen.tls !== undefined ? 'https' : 'http';
  const port = policy.listen.port;
  const standard = (scheme === 'http' && port === 80) || (scheme === 'https' && port === 443);
  return `${scheme}://localhost${standard ? '' : `:${port}`}`;
}
