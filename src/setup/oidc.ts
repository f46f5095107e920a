import * as oidc from 'openid-client';
import type { JwtConfig, SetupOidcConfig } from '../config/types.js';

/**
 * The setup page's OIDC client: authorization code flow with PKCE (S256), `state` and `nonce`,
 * built on openid-client (panva's certified relying party over oauth4webapi) rather than by hand on
 * jose: discovery, the authorization response's checks (state, iss per RFC 9207, error
 * responses), the token request and the ID token's validation (signature, iss, aud, exp, nonce) are
 * the parts a hand-written client gets subtly wrong. The access token it returns is NOT trusted
 * from here: the caller verifies it with the gateway's own bearer verifier.
 */

/** Discovery and token calls: an issuer that hangs fails the sign-in, not the gateway. */
const OIDC_TIMEOUT_SECONDS = 10;

export interface SigninStart {
  readonly url: URL;
}

export interface SigninResult {
  readonly accessToken: string;
  /** The ID token's `sub`: must name the same user as the access token. */
  readonly idSubject: string;
}

export interface OidcClient {
  /** The issuer's authorization URL for this sign-in. */
  start(params: { readonly redirectUri: string; readonly state: string; readonly nonce: string; readonly codeVerifier: string }): Promise<SigninStart>;
  /** Exchanges the callback's code; throws on any failed check (state, iss, error response, ID token). */
  finish(callbackUrl: URL, checks: { readonly state: string; readonly nonce: string; readonly codeVerifier: string }): Promise<SigninResult>;
}

function isLoopbackHttp(url: URL): boolean {
  return url.protocol === 'http:' && ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
}

/**
 * One client per (issuer, client settings): discovery runs on first use and again after a failure,
 * never per request once it succeeded. The loader allowed http only for a loopback issuer.
 */
export function createOidcClient(jwt: Pick<JwtConfig, 'issuer'>, config: SetupOidcConfig): OidcClient {
  const issuer = new URL(jwt.issuer);
  let discovered: Promise<oidc.Configuration> | undefined;
  const configuration = (): Promise<oidc.Configuration> => {
    discovered ??= oidc
      .discovery(issuer, config.clientId, undefined, config.clientSecret !== undefined ? oidc.ClientSecretBasic(config.clientSecret) : oidc.None(), {
        timeout: OIDC_TIMEOUT_SECONDS,
        ...(isLoopbackHttp(issuer) ? { execute: [oidc.allowInsecureRequests] } : {}),
      })
      .catch((error: unknown) => {
        discovered = undefined;
        throw error;
      });
    return discovered;
  };
  const resource: Record<string, string> = config.resource !== undefined ? { resource: config.resource } : {};

  return {
    async start({ redirectUri, state, nonce, codeVerifier }) {
      const server = await configuration();
      const url = oidc.buildAuthorizationUrl(server, {
        redirect_uri: redirectUri,
        scope: config.scopes.join(' '),
        response_type: 'code',
        code_challenge: await oidc.calculatePKCECodeChallenge(codeVerifier),
        code_challenge_method: 'S256',
        state,
        nonce,
        ...resource,
      });
      return { url };
    },
    async finish(callbackUrl, checks) {
      const server = await configuration();
      const tokens = await oidc.authorizationCodeGrant(
        server,
        callbackUrl,
        { pkceCodeVerifier: checks.codeVerifier, expectedState: checks.state, expectedNonce: checks.nonce, idTokenExpected: true },
        resource,
      );
      const claims = tokens.claims();
      if (claims === undefined || typeof claims.sub !== 'string') throw new Error('the token response carried no ID token subject');
      return { accessToken: tokens.access_token, idSubject: claims.sub };
    },
  };
}

export { randomPKCECodeVerifier } from 'openid-client';
