import { createHmac, sign as nodeSign, KeyObject, constants } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { exportJWK, generateKeyPair, type CryptoKey, type JWK } from 'jose';
import type { Counter } from 'prom-client';
import type { JwtConfig } from '../../src/config/types.js';
import { createLogger, type Logger } from '../../src/log/logger.js';

export const ISSUER = 'https://idp.test.example/';
export const AUDIENCE = 'orders-api';
export const T0 = Date.UTC(2026, 10, 1, 12, 0, 0);
export const T0_SECONDS = T0 / 1000;

export interface FakeClock {
  (): number;
  advance(ms: number): void;
}

export function fakeClock(start = T0): FakeClock {
  let now = start;
  const clock = (() => now) as FakeClock;
  clock.advance = (ms) => {
    now += ms;
  };
  return clock;
}

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

export const b64url = (value: unknown): string =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

const HASH: Record<string, string> = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

/** Signs exactly the header and payload given, with node:crypto, so tests can forge anything. */
export function signRaw(header: Record<string, unknown>, payload: Record<string, unknown> | string, key: KeyObject | Uint8Array | string): string {
  const input = `${b64url(header)}.${b64url(payload)}`;
  const alg = String(header.alg);
  let signature: Buffer;
  if (alg.startsWith('HS')) {
    signature = createHmac(HASH[alg.slice(2)]!, key as Uint8Array | string).update(input).digest();
  } else if (alg.startsWith('RS')) {
    signature = nodeSign(HASH[alg.slice(2)]!, Buffer.from(input), key as KeyObject);
  } else if (alg.startsWith('PS')) {
    signature = nodeSign(HASH[alg.slice(2)]!, Buffer.from(input), { key: key as KeyObject, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 });
  } else if (alg.startsWith('ES')) {
    signature = nodeSign(HASH[alg.slice(2)]!, Buffer.from(input), { key: key as KeyObject, dsaEncoding: 'ieee-p1363' });
  } else if (alg === 'EdDSA') {
    signature = nodeSign(null, Buffer.from(input), key as KeyObject);
  } else {
    signature = Buffer.alloc(0);
  }
  return `${input}.${signature.toString('base64url')}`;
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
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export async function counterValue(counter: Counter<string>, labels: Record<string, string>): Promise<number> {
  const { values } = await counter.get();
  const found = values.find((value) => Object.entries(labels).every(([name, label]) => value.labels[name] === label));
  return found?.value ?? 0;
}

/** A pino logger writing into an array, to assert what logs contain (and never contain). */
export function memoryLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(chunk.toString('utf8'));
      done();
    },
  });
  return { logger: createLogger({ level: 'debug', destination }), lines };
}
