/**
 * The files named by `auth.jwt.public_keys`: JWT verification keys as a PEM public key (SPKI), a
 * JWK, or a JWK Set. Not the secret-encryption key lines of `keys:` (see crypto/keyformat.ts): a
 * different format for a different job. The loader only splits and sanity-checks here; which
 * algorithms a key can verify is decided when the verifier imports it (auth/keys.ts).
 */
import { createPublicKey, type JsonWebKey } from 'node:crypto';

const PEM_PUBLIC_KEY = /-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g;

/**
 * One file's keys as strings for the verifier (each PEM block, or each JWK as JSON), or the reason
 * the file is refused, worded to follow `key file "<name>"`. Never echoes the file's content.
 */
export function parseJwtPublicKeyFile(text: string): string[] | string {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      return 'is not valid JSON';
    }
    const record = parsed as { keys?: unknown };
    const jwks: unknown[] = Array.isArray(record.keys) ? record.keys : [parsed];
    const out: string[] = [];
    for (const jwk of jwks) {
      if (typeof jwk !== 'object' || jwk === null) return 'holds something that is not a JWK';
      const fields = jwk as Record<string, unknown>;
      if ('d' in fields || fields.kty === 'oct') return 'holds a private or symmetric key; give the public key only';
      try {
        createPublicKey({ key: fields as JsonWebKey, format: 'jwk' });
      } catch {
        return 'holds a JWK that is not a usable public key';
      }
      out.push(JSON.stringify(fields));
    }
    return out.length > 0 ? out : 'holds an empty key set';
  }
  if (/PRIVATE KEY-----/.test(trimmed)) return 'holds a private key; give the public key only';
  const blocks = trimmed.match(PEM_PUBLIC_KEY) ?? [];
  if (blocks.length === 0) return 'is neither a PEM public key (-----BEGIN PUBLIC KEY-----) nor a JWK';
  for (const block of blocks) {
    try {
      createPublicKey(block);
    } catch {
      return 'holds a PEM block that is not a usable public key';
    }
  }
  return blocks;
}
