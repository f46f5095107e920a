import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type KoaContextWithOIDC } from 'oidc-provider';

/**
 * A real OpenID provider (oidc-provider) on loopback, standing in for the gateway's issuer: the
 * authorization code flow with PKCE required, and RS256 JWT access tokens (`at+jwt`) for one
 * resource indicator whose audience is the gateway's. Its login "interaction" is a plain form
 * (user name only, no password: the provider is a test double of an IdP's login, not what is
 * tested); consent is granted at once. `login()` walks the flow over HTTP without a browser.
 */

export interface OidcProviderRig {
  /** `http://127.0.0.1:<port>` — the issuer and the base of every endpoint. */
  readonly issuer: string;
  readonly jwksUri: string;
  /** The RFC 8707 resource whose access tokens carry `audience`. */
  readonly resource: string;
  readonly audience: string;
  /**
   * Follows an authorization URL through the provider as `user` would in a browser (login form,
   * then consent) and returns the URL the provider sends the browser back to (the callback).
   */
  login(authorizationUrl: string, user: string): Promise<URL>;
  close(): Promise<void>;
}

export interface OidcProviderOptions {
  readonly clientId: string;
  readonly redirectUri: string;
  readonly audience: string;
  /** Scopes of the resource server, besides the OIDC ones. */
  readonly apiScopes?: readonly string[];
}

const RESOURCE = 'https://api.example.test/';

export async function startOidcProvider(options: OidcProviderOptions): Promise<OidcProviderRig> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: 'test-rs256', alg: 'RS256', use: 'sig' };
  const apiScope = (options.apiScopes ?? ['api:read']).join(' ');

  const provider = new Provider(issuer, {
    clients: [{ client_id: options.clientId, token_endpoint_auth_method: 'none', redirect_uris: [options.redirectUri], grant_types: ['authorization_code'], response_types: ['code'] }],
    jwks: { keys: [jwk] },
    cookies: { keys: ['oidc-test-cookie-key-0123456789'] },
    pkce: { required: () => true },
    ttl: { Interaction: 600, Session: 3600, Grant: 3600, AccessToken: 600, IdToken: 600, AuthorizationCode: 60 },
    findAccount: (_ctx: KoaContextWithOIDC, id: string) => ({ accountId: id, claims: () => ({ sub: id }) }),
    interactions: { url: (_ctx: KoaContextWithOIDC, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => RESOURCE,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ audience: options.audience, scope: apiScope, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } }),
      },
    },
  });
  provider.on('server_error', () => undefined);
  const callback = provider.callback();

  async function interaction(req: IncomingMessage, res: ServerResponse, uid: string, action: string | undefined): Promise<void> {
    const details = await provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new Error('interaction mismatch');
    if (action === 'login' && req.method === 'POST') {
      const body = new URLSearchParams(await readBody(req));
      const user = body.get('login') ?? '';
      if (user === '') throw new Error('no user name');
      await provider.interactionFinished(req, res, { login: { accountId: user } }, { mergeWithLastSubmission: false });
      return;
    }
    if (details.prompt.name === 'login') {
      const html = `<!doctype html><html lang="en"><head><title>Test IdP sign-in</title></head><body><h1>Test IdP</h1><form method="post" action="/interaction/${uid}/login"><label for="login">User name</label><input id="login" name="login" autocomplete="username"><button type="submit">Sign in</button></form></body></html>`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(html);
      return;
    }
    // Consent: granted at once, for exactly what is missing.
    const { prompt, params, session } = details;
    const grant = new provider.Grant({ accountId: session!.accountId, clientId: params.client_id as string });
    const missing = prompt.details as { missingOIDCScope?: string[]; missingOIDCClaims?: string[]; missingResourceScopes?: Record<string, string[]> };
    if (missing.missingOIDCScope !== undefined) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims !== undefined) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) grant.addResourceScope(indicator, scopes.join(' '));
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  server.on('request', (req, res) => {
    const match = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login))?$/.exec((req.url ?? '').split('?')[0]!);
    if (match === null) {
      callback(req, res);
      return;
    }
    interaction(req, res, match[1]!, match[2]).catch(() => {
      if (!res.headersSent) res.writeHead(400, { 'content-type': 'text/plain' });
      res.end('interaction failed');
    });
  });

  return {
    issuer,
    jwksUri: `${issuer}/jwks`,
    resource: RESOURCE,
    audience: options.audience,
    async login(authorizationUrl, user) {
      const jar = new Map<string, string>();
      const send = async (url: string, init: RequestInit = {}): Promise<Response> => {
        const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
        const res = await fetch(url, { ...init, redirect: 'manual', headers: { ...(init.headers as Record<string, string> | undefined), ...(cookie ? { cookie } : {}) } });
        for (const line of res.headers.getSetCookie()) {
          const [pair] = line.split(';');
          const eq = pair!.indexOf('=');
          jar.set(pair!.slice(0, eq), pair!.slice(eq + 1));
        }
        await res.arrayBuffer();
        return res;
      };
      let url = authorizationUrl;
      for (let hop = 0; hop < 12; hop++) {
        if (url.startsWith(options.redirectUri)) return new URL(url);
        const loginForm = /\/interaction\/([A-Za-z0-9_-]+)$/.exec(new URL(url).pathname);
        let res = await send(url);
        if (loginForm !== null && res.status === 200) {
          res = await send(`${issuer}/interaction/${loginForm[1]}/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ login: user }).toString() });
        }
        const location = res.headers.get('location');
        if (location === null) throw new Error(`the provider stopped at ${url} with ${res.status}`);
        url = new URL(location, url).href;
      }
      throw new Error('too many redirects at the provider');
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (text += chunk));
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}
