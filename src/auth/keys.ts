import { createPublicKey, type KeyObject as NodeKeyObject } from 'node:crypto';
import { importJWK, type CryptoKey, type JWK } from 'jose';
import type { JwtAlgorithm } from '../config/types.js';
import { AuthConfigError } from './errors.js';

export const HMAC_ALGORITHMS: ReadonlySet<JwtAlgorithm> = new Set(['HS256', 'HS384', 'HS512']);
export const ASYMMETRIC_ALGORITHMS: ReadonlySet<JwtAlgorithm> = new Set([
  'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA',
]);

/** The shortest HMAC secret accepted: RFC 7518 §3.2 wants at least the hash size (256 bits for HS256). */
export const MIN_HMAC_SECRET_BYTES = 32;
const MIN_RSA_BITS = 2048;

const CURVE_ALGORITHM: Readonly<Record<string, JwtAlgorithm>> = {
  prime256v1: 'ES256',
  secp384r1: 'ES384',
  secp521r1: 'ES512',
};

/** A configured public key, imported once per allowed algorithm it can verify. */
export interface StaticKey {
  readonly kid?: string;
  /** Rejections are already handled: a key that failed to import resolves to undefined. */
  readonly byAlgorithm: ReadonlyMap<JwtAlgorithm, Promise<CryptoKey | undefined>>;
}

/** Which JWS algorithms a public key can verify, from its type (never from a token header). */
function algorithmsForKey(key: NodeKeyObject, option: string): JwtAlgorithm[] {
  switch (key.asymmetricKeyType) {
    case 'rsa': {
      const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
      if (bits < MIN_RSA_BITS) throw new AuthConfigError(option, `RSA keys must have at least ${MIN_RSA_BITS} bits`);
      return ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
    }
    case 'ec': {
      const alg = CURVE_ALGORITHM[key.asymmetricKeyDetails?.namedCurve ?? ''];
      if (alg === undefined) throw new AuthConfigError(option, 'EC keys must use P-256, P-384 or P-521');
      return [alg];
    }
    case 'ed25519':
      return ['EdDSA'];
    default:
      throw new AuthConfigError(option, `unsupported key type ${String(key.asymmetricKeyType)}`);
  }
}

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k', 'priv'];

function parseJwkText(text: string, option: string): { jwk: Record<string, unknown>; key: NodeKeyObject } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new AuthConfigError(option, 'not valid JSON (expected a public JWK)');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AuthConfigError(option, 'expected a public JWK object');
  const jwk = value as Record<string, unknown>;
  if (jwk.kty === 'oct') throw new AuthConfigError(option, 'symmetric keys are not accepted here (use hmac_secret for the demo issuer)');
  // A private key in the policy file is a leak waiting to happen; refuse it rather than derive the public half.
  if (PRIVATE_JWK_MEMBERS.some((member) => member in jwk)) throw new AuthConfigError(option, 'contains private key material; give the public key only');
  if (jwk.kid !== undefined && (typeof jwk.kid !== 'string' || jwk.kid === '')) throw new AuthConfigError(option, 'JWK "kid" must be a non-empty string');
  if (jwk.alg !== undefined && typeof jwk.alg !== 'string') throw new AuthConfigError(option, 'JWK "alg" must be a string');
  try {
    return { jwk, key: createPublicKey({ key: jwk as import('node:crypto').JsonWebKey, format: 'jwk' }) };
  } catch {
    throw new AuthConfigError(option, 'not a valid public JWK');
  }
}

function parsePem(text: string, option: string): NodeKeyObject {
  // SPKI only: a private key or certificate here would be accepted by createPublicKey, but is not what we document.
  if (!/^-----BEGIN PUBLIC KEY-----\r?\n[\s\S]+\r?\n-----END PUBLIC KEY-----$/.test(text)) {
    throw new AuthConfigError(option, 'expected a PEM "PUBLIC KEY" (SPKI) block or a public JWK');
  }
  try {
    return createPublicKey({ key: text, format: 'pem' });
  } catch {
    throw new AuthConfigError(option, 'not a valid PEM public key');
  }
}

export interface StaticKeyEvents {
  /** A well-formed key that cannot verify any allowed algorithm (an encryption key, another type). */
  onSkipped(index: number, reason: string): void;
  onImportError(index: number, alg: JwtAlgorithm): void;
}

/**
 * Parses and checks every static key at creation (synchronously, so a bad key fails the factory),
 * then starts one import per allowed algorithm the key's type fits. A malformed, private, symmetric
 * or weak key throws; a sound key that fits no allowed algorithm is skipped (key files copied from
 * an IdP's JWKS often hold encryption keys too), but at least one key must remain.
 */
export function loadStaticKeys(texts: readonly string[], allowed: ReadonlySet<JwtAlgorithm>, events: StaticKeyEvents): StaticKey[] {
  if (texts.length === 0) throw new AuthConfigError('auth.jwt.staticKeys', 'at least one key is required');
  const loaded: StaticKey[] = [];
  texts.forEach((raw, index) => {
    const option = `auth.jwt.staticKeys[${index}]`;
    if (typeof raw !== 'string') throw new AuthConfigError(option, 'expected a PEM or JWK string');
    const text = raw.trim();
    let key: NodeKeyObject;
    let kid: string | undefined;
    let pinnedAlg: string | undefined;
    let use: unknown;
    if (text.startsWith('{')) {
      const parsed = parseJwkText(text, option);
      key = parsed.key;
      kid = parsed.jwk.kid as string | undefined;
      pinnedAlg = parsed.jwk.alg as string | undefined;
      use = parsed.jwk.use;
    } else {
      key = parsePem(text, option);
    }
    const types = algorithmsForKey(key, option);
    if (use !== undefined && use !== 'sig') {
      events.onSkipped(index, 'not a signature key (use is not "sig")');
      return;
    }
    const fits = types.filter((alg) => allowed.has(alg) && (pinnedAlg === undefined || pinnedAlg === alg));
    if (fits.length === 0) {
      events.onSkipped(index, 'fits none of auth.jwt.algorithms');
      return;
    }
    const publicJwk = key.export({ format: 'jwk' }) as JWK;
    const byAlgorithm = new Map<JwtAlgorithm, Promise<CryptoKey | undefined>>();
    for (const alg of fits) {
      byAlgorithm.set(
        alg,
        importJWK(publicJwk, alg).then(
          (imported) => (imported instanceof Uint8Array ? undefined : imported),
          () => {
            events.onImportError(index, alg);
            return undefined;
          },
        ),
      );
    }
    loaded.push(kid === undefined ? { byAlgorithm } : { kid, byAlgorithm });
  });
  if (loaded.length === 0) {
    throw new AuthConfigError('auth.jwt.staticKeys', `no key can verify any of auth.jwt.algorithms (${[...allowed].join(', ')})`);
  }
  return loaded;
}

/** The demo issuer's HMAC secret as key bytes, checked for length. */
export function loadHmacSecret(secret: unknown): Uint8Array {
  if (typeof secret !== 'string') throw new AuthConfigError('auth.jwt.hmacSecret', 'must be a string');
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < MIN_HMAC_SECRET_BYTES) {
    throw new AuthConfigError('auth.jwt.hmacSecret', `must be at least ${MIN_HMAC_SECRET_BYTES} bytes`);
  }
  return bytes;
}
