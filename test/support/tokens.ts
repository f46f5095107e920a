import { createHmac, sign as nodeSign, constants, type KeyObject } from 'node:crypto';
import { issueDevToken } from '../../src/auth/dev-token.js';

/** The HS256 issuer every test policy trusts (see `policyHead` in fixture.ts and `makePolicy` in test/mfa). */
export const TEST_HMAC_SECRET = 'test-only-hmac-secret-of-at-least-32-characters';
export const TEST_ISSUER = 'http://localhost/test-issuer';
export const TEST_AUDIENCE = 'test-api';

export interface TokenOptions {
  readonly scopes?: string[];
  readonly roles?: string[];
  /** Default 600. */
  readonly ttlSeconds?: number;
  readonly amr?: string[];
  readonly authTime?: number;
  /** Issue time in epoch ms; pass a fake clock's `clock()` when the gateway runs on that clock. */
  readonly now?: number;
}

/** A bearer token from the test issuer, as a client of a gateway on a test policy sends it. */
export function token(subject: string, options: TokenOptions = {}): Promise<string> {
  return issueDevToken({
    secret: TEST_HMAC_SECRET,
    issuer: TEST_ISSUER,
    audience: TEST_AUDIENCE,
    subject,
    scopes: options.scopes ?? [],
    roles: options.roles ?? [],
    ttlSeconds: options.ttlSeconds ?? 600,
    ...(options.amr !== undefined ? { amr: options.amr } : {}),
    ...(options.authTime !== undefined ? { authTime: options.authTime } : {}),
    ...(options.now !== undefined ? { now: options.now } : {}),
  });
}

export const b64url = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

const HASH: Record<string, string> = { 256: 'sha256', 384: 'sha384', 512: 'sha512' };

/**
 * Signs exactly the header and payload given, with node:crypto (not the code under test), so a test
 * can forge anything: any `alg`, any claims, the wrong key for the algorithm. An unknown `alg` gets
 * an empty signature.
 */
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
