import type { SetupConfig } from './types.js';
import { parsedUrl, type Add, type Segment } from './locate.js';

/** `setup:` as the schema describes it (defaults filled in by ajv). */
export interface RawSetup {
  readonly public_url?: string;
  readonly oidc?: {
    readonly client_id: string;
    readonly client_secret_env?: string;
    readonly scopes: readonly string[];
    readonly resource?: string;
  };
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * `setup:` — sign-in to the setup page. What the schema cannot say is checked here, naming the
 * line: an origin-only https public URL (cookies and the CSRF check are bound to it), an issuer
 * that can be discovered, openid among the scopes, and a client secret that is really set.
 */
export function compileSetup(raw: RawSetup, issuer: string, env: Readonly<Record<string, string | undefined>>, add: Add): SetupConfig {
  const base: Segment[] = ['setup'];
  let publicOrigin: string | undefined;
  if (raw.public_url !== undefined) {
    const path = [...base, 'public_url'];
    const url = parsedUrl(raw.public_url, path, add);
    if (url !== undefined) {
      if (url.origin !== raw.public_url.replace(/\/$/, '')) add(path, `must be an origin only (scheme://host[:port]), without path, query, user info or upper case: ${url.origin}`);
      else if (url.protocol === 'http:' && !LOOPBACK.has(url.hostname)) add(path, 'must use https (http only for localhost): the sign-in cookie and invite links would travel in clear text');
      else if (url.protocol !== 'http:' && url.protocol !== 'https:') add(path, 'must be an http(s) URL');
      else publicOrigin = url.origin;
    }
  }
  if (raw.oidc === undefined) return publicOrigin !== undefined ? { publicOrigin } : {};

  const oidcBase = [...base, 'oidc'];
  if (raw.public_url === undefined) add(oidcBase, 'needs setup.public_url: the redirect URI the issuer sends the browser back to is built on it');
  const issuerUrl = parsedUrl(issuer, ['auth', 'jwt', 'issuer'], add);
  if (issuerUrl !== undefined && issuerUrl.protocol === 'http:' && !LOOPBACK.has(issuerUrl.hostname)) {
    add(oidcBase, 'needs an https auth.jwt.issuer (http only for localhost): sign-in discovers the issuer and exchanges codes with it');
  }
  if (!raw.oidc.scopes.includes('openid')) add([...oidcBase, 'scopes'], 'must include openid');
  let clientSecret: string | undefined;
  if (raw.oidc.client_secret_env !== undefined) {
    const text = env[raw.oidc.client_secret_env];
    if (text === undefined || text === '') add([...oidcBase, 'client_secret_env'], `$${raw.oidc.client_secret_env} is not set`);
    else clientSecret = text;
  }
  if (raw.oidc.resource !== undefined) parsedUrl(raw.oidc.resource, [...oidcBase, 'resource'], add);
  return {
    ...(publicOrigin !== undefined ? { publicOrigin } : {}),
    oidc: {
      clientId: raw.oidc.client_id,
      ...(clientSecret !== undefined ? { clientSecret } : {}),
      scopes: [...raw.oidc.scopes],
      ...(raw.oidc.resource !== undefined ? { resource: raw.oidc.resource } : {}),
    },
  };
}
