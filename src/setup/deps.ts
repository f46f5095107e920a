import type { GatewayPolicy } from '../config/types.js';
import type { TtlStore } from '../store/types.js';
import type { SetupDeps } from './door.js';
import { createOidcClient, type OidcClient } from './oidc.js';
import { createSetupStore } from './store.js';

/**
 * What the setup endpoints stand on, built once with the gateway core: the store of invites,
 * sign-ins and sessions, and the OIDC client of the running policy — kept across reloads while
 * the issuer and `setup.oidc` stay the same, so discovery is not redone per request.
 */
export function createSetupDeps(ttl: Pick<TtlStore, 'putChallenge' | 'takeChallenge' | 'peekChallenge'>): SetupDeps {
  let cached: { readonly key: string; readonly client: OidcClient } | undefined;
  return {
    store: createSetupStore(ttl),
    oidcClient(policy: GatewayPolicy) {
      const config = policy.setup.oidc;
      if (config === undefined) return undefined;
      const key = JSON.stringify([policy.auth.jwt.issuer, config]);
      if (cached?.key !== key) cached = { key, client: createOidcClient(policy.auth.jwt, config) };
      return cached.client;
    },
  };
}
