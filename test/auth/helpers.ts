import { KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { JwtConfig } from '../../src/config/types.js';
import { closeServer } from '../support/http.js';
import { signRaw } from '../support/tokens.js';

/** An identity provider for the verifier tests: its keys, its claims, its JWKS endpoint. Fake clocks start at T0. */

export const ISSUER = 'https://idp.test.example/';
export const AUDIENCE = 'orders-api';
export const T0 = Date.UTC(2026, 10, 1, 12, 0, 0);
export const T0_SECONDS = T0 / 1000;

export function baseConfig(overrides: Partial<JwtConfig> = {}): JwtConfig {
  return {
    issuer: ISSUER,
    audience: [AUDIENCE],
    algorithms: ['RS256', 'ES256'],
    clockToleranceMs: 30_000,
    jwks: { cooldownMs: 30_000, timeoutMs: 1_000, cacheMaxAgeMs: 600_000 },
    cache: { maxEntries: 100, maxTtlMs: 300_000 },
    maxTokenBytes: 4096,
    scopeClaim: 'scope',
    rolesClaim: 'roles',
    acceptIdpMfa: false,
    ...overrides,
  };
}

export interface SigningKey {
  readonly alg: string;
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  readonly publicJwk: JWK;
}

export async function signingKey(alg: 'RS256' | 'ES256' | 'ES384' | 'EdDSA', kid: string): Promise<SigningKey> {
  const pair = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(pair.publicKey)), kid, alg, use: 'sig' };
  return {
    alg,
    kid,
    privateKey: KeyObject.from(pair.privateKey as CryptoKey),
    publicKey: KeyObject.from(pair.publicKey as CryptoKey),
    publicJwk,
  };
}

/** Standard valid claims at the fake clock's start. */
export function claims(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { iss: ISSUER, aud: AUDIENCE, sub: 'alice', iat: T0_SECONDS, exp: T0_SECONDS + 600, scope: 'orders:read profile', ...overrides };
}

export function withoutClaim(name: string): Record<string, unknown> {
  const all = claims();
  delete all[name];
  return all;
}

export function tokenFor(key: SigningKey, payload: Record<string, unknown> = claims(), header: Record<string, unknown> = {}): string {
  return signRaw({ alg: key.alg, typ: 'JWT', kid: key.kid, ...header }, payload, key.privateKey);
}

type Mode = 'ok' | 'error' | 'hang' | 'garbage';

export interface JwksServer {
  readonly url: string;
  /** Requests received so far. */
  requests(): number;
  setKeys(keys: readonly JWK[]): void;
  setMode(mode: Mode): void;
  /** Stops listening and drops every connection: later fetches are refused. */
  close(): Promise<void>;
}

/** A real JWKS endpoint on 127.0.0.1, counting the requests it gets. */
export async function startJwksServer(keys: readonly JWK[]): Promise<JwksServer> {
  let current = [...keys];
  let mode: Mode = 'ok';
  let count = 0;
  let closed = false;
  const hanging = new Set<ServerResponse>();
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    count++;
    req.resume();
    switch (mode) {
      case 'ok':
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: current }));
        return;
      case 'error':
        res.writeHead(500, { 'content-type': 'text/plain' }).end('BODY-MUST-NOT-BE-LOGGED');
        return;
      case 'garbage':
        res.writeHead(200, { 'content-type': 'application/json' }).end('<html>BODY-MUST-NOT-BE-LOGGED</html>');
        return;
      case 'hang':
        hanging.add(res);
        return;
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    requests: () => count,
    setKeys: (next) => {
      current = [...next];
    },
    setMode: (next) => {
      mode = next;
    },
    close: async () => {
      if (closed) return;
      closed = true;
      for (const res of hanging) res.destroy();
      await closeServer(server);
    },
  };
}
