import type { Awaitable } from '../async/awaitable.js';
import { sha256Hex } from '../crypto/digest.js';
import { jwtVerify, type CryptoKey, type JWTPayload, type JWTVerifyOptions, type LocalJWKSet } from 'jose';
import { ExpiringCache } from '../time/ttl-cache.js';
import type { JwtAlgorithm, JwtConfig } from '../config/types.js';
import { problem, type Problem } from '../errors/problems.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { systemClock, type Clock } from '../time/clock.js';
import { principalFromClaims } from './claims.js';
import { AuthConfigError, TOKEN_DETAIL } from './errors.js';
import { bearerPart, decodeJsonSegment, parseAuthorization, SCHEME_LENGTH } from './header.js';
import { createJwksCache, type JwksCache } from './jwks.js';
import { ASYMMETRIC_ALGORITHMS, HMAC_ALGORITHMS, loadHmacSecret, loadStaticKeys, type StaticKey } from './keys.js';
import type { Principal } from './principal.js';

export type VerifyResult = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly problem: Problem };

export interface JwtVerifier {
  /**
   * Never throws and never answers 500: every fault is a 401 `invalid_token` (or 431) problem.
   * A token in the validated-token cache is answered at once, without a promise.
   */
  verify(authorizationHeader: string): Awaitable<VerifyResult>;
  /** Resolves when no JWKS fetch is in flight (tests; shutdown). */
  idle(): Promise<void>;
  /** Aborts a JWKS fetch in flight and drops the token cache. */
  close(): Promise<void>;
}

export interface JwtVerifierOptions {
  readonly config: JwtConfig;
  readonly metrics?: Metrics;
  readonly logger?: Logger;
  readonly clock?: Clock;
  readonly fetch?: typeof fetch;
}

type KeySource =
  | { readonly kind: 'hmac'; readonly secret: Uint8Array }
  | { readonly kind: 'static'; readonly keys: readonly StaticKey[] }
  | { readonly kind: 'jwks'; readonly jwks: JwksCache };

interface CacheEntry {
  readonly principal: Principal;
  /** Epoch ms from our clock: min(exp, cached-at + maxTtl). lru-cache's own clock is not trusted for this. */
  readonly validUntilMs: number;
}

/**
 * Internal reasons, for logs only; the client sees one of TOKEN_DETAIL. Not a GatewayError: it never
 * leaves `verify()`, which turns it into a Problem.
 */
class Refusal extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

const KNOWN_ALGORITHMS: ReadonlySet<string> = new Set([...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS]);

function nonEmptyString(value: unknown, option: string): string {
  if (typeof value !== 'string' || value === '') throw new AuthConfigError(option, 'must be a non-empty string');
  return value;
}

function nonNegative(value: unknown, option: string, integer = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || (integer && !Number.isInteger(value))) {
    throw new AuthConfigError(option, integer ? 'must be a non-negative integer' : 'must be a non-negative number');
  }
  return value;
}

function checkAlgorithms(config: JwtConfig, hmac: boolean): ReadonlySet<JwtAlgorithm> {
  const list: readonly unknown[] = Array.isArray(config.algorithms) ? config.algorithms : [];
  if (list.length === 0) throw new AuthConfigError('auth.jwt.algorithms', 'at least one algorithm is required');
  for (const alg of list) {
    if (typeof alg !== 'string' || !KNOWN_ALGORITHMS.has(alg)) {
      throw new AuthConfigError('auth.jwt.algorithms', `${String(alg)} is not an accepted algorithm`);
    }
    // An HMAC algorithm next to public keys is the door to alg confusion: the key source decides the family.
    if (hmac !== HMAC_ALGORITHMS.has(alg as JwtAlgorithm)) {
      throw new AuthConfigError(
        'auth.jwt.algorithms',
        hmac ? `${alg} needs jwks_uri or static keys, but hmac_secret is the key source` : `${alg} needs hmac_secret, but public keys are the key source`,
      );
    }
  }
  return new Set(list as JwtAlgorithm[]);
}


function classify(error: unknown): { detail: string; reason: string } {
  if (error instanceof Refusal) return { detail: TOKEN_DETAIL.format, reason: error.reason };
  const code = typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined;
  if (code === 'ERR_JWT_EXPIRED') return { detail: TOKEN_DETAIL.expired, reason: 'expired' };
  if (code === 'ERR_JWT_CLAIM_VALIDATION_FAILED') {
    const { claim, reason } = error as { claim?: unknown; reason?: unknown };
    if (claim === 'nbf') return { detail: TOKEN_DETAIL.notYetValid, reason: 'nbf' };
    if ((claim === 'iss' || claim === 'aud') && reason === 'check_failed') return { detail: TOKEN_DETAIL.issuerAudience, reason: `${claim}_mismatch` };
    return { detail: TOKEN_DETAIL.claims, reason: `claim_${String(claim)}_${String(reason)}` };
  }
  return { detail: TOKEN_DETAIL.format, reason: typeof code === 'string' ? code : 'unexpected' };
}

const isSignatureFailure = (error: unknown): boolean =>
  typeof error === 'object' && error !== null && (error as { code?: unknown }).code === 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED';

const errorCode = (error: unknown): unknown => (typeof error === 'object' && error !== null ? (error as { code?: unknown }).code : undefined);

/**
 * Bearer JWT verification at the edge. The key source fixes the algorithm family at creation
 * (HMAC secret → HS*, public keys → RS/PS/ES/EdDSA), the header's own `alg` must be on the
 * allow-list, and keys are chosen by our configuration only: `jwk`, `jku`, `x5u` and `x5c`
 * headers are never read, `crit` is refused. Validated tokens are cached by SHA-256 of the token.
 */
export function createJwtVerifier(options: JwtVerifierOptions): JwtVerifier {
  const { config, metrics, logger } = options;
  if (typeof config !== 'object' || config === null) throw new AuthConfigError('config', 'a JwtConfig is required');
  const clock = options.clock ?? systemClock;
  if (typeof clock !== 'function') throw new AuthConfigError('clock', 'must be a function returning epoch milliseconds');

  const issuer = nonEmptyString(config.issuer, 'auth.jwt.issuer');
  if (!Array.isArray(config.audience) || config.audience.length === 0) {
    throw new AuthConfigError('auth.jwt.audience', 'at least one audience is required');
  }
  const audience = config.audience.map((aud, i) => nonEmptyString(aud, `auth.jwt.audience[${i}]`));
  const toleranceMs = nonNegative(config.clockToleranceMs, 'auth.jwt.clockToleranceMs');
  const maxTokenBytes = nonNegative(config.maxTokenBytes, 'auth.jwt.maxTokenBytes', true);
  if (maxTokenBytes === 0) throw new AuthConfigError('auth.jwt.maxTokenBytes', 'must be positive');
  const scopeClaim = nonEmptyString(config.scopeClaim, 'auth.jwt.scopeClaim');
  const rolesClaim = nonEmptyString(config.rolesClaim, 'auth.jwt.rolesClaim');
  const maxEntries = nonNegative(config.cache?.maxEntries, 'auth.jwt.cache.maxEntries', true);
  const maxTtlMs = nonNegative(config.cache?.maxTtlMs, 'auth.jwt.cache.maxTtlMs');

  const sources = [config.jwksUri, config.staticKeys, config.hmacSecret].filter((source) => source !== undefined);
  if (sources.length !== 1) {
    throw new AuthConfigError('auth.jwt', 'exactly one key source is required: jwksUri, staticKeys or hmacSecret');
  }
  const allowed = checkAlgorithms(config, config.hmacSecret !== undefined);

  let source: KeySource;
  if (config.hmacSecret !== undefined) {
    source = { kind: 'hmac', secret: loadHmacSecret(config.hmacSecret) };
  } else if (config.staticKeys !== undefined) {
    if (!Array.isArray(config.staticKeys)) throw new AuthConfigError('auth.jwt.staticKeys', 'must be a list of PEM or JWK strings');
    const keys = loadStaticKeys(config.staticKeys, allowed, {
      onSkipped: (index, reason) => logger?.warn({ event: 'jwt_static_key_skipped', key_index: index, reason }, 'a static JWT key is not used'),
      onImportError: (index, alg) => logger?.error({ event: 'jwt_static_key_import_failed', key_index: index, alg }, 'a static JWT key could not be imported'),
    });
    source = { kind: 'static', keys };
  } else {
    if (config.jwks === undefined) throw new AuthConfigError('auth.jwt.jwks', 'fetch settings are required with jwksUri');
    const jwks = createJwksCache({
      uri: nonEmptyString(config.jwksUri, 'auth.jwt.jwksUri'),
      timeoutMs: config.jwks.timeoutMs,
      cooldownMs: config.jwks.cooldownMs,
      cacheMaxAgeMs: config.jwks.cacheMaxAgeMs,
      clock,
      fetch: options.fetch ?? globalThis.fetch,
      ...(metrics !== undefined ? { metrics } : {}),
      ...(logger !== undefined ? { logger } : {}),
    });
    source = { kind: 'jwks', jwks };
  }

  const cache = maxEntries > 0 && maxTtlMs > 0 ? new ExpiringCache<string, CacheEntry>(maxEntries) : undefined;
  const cacheHits = metrics?.tokenCache.cell('hit', { result: 'hit' });
  const cacheMisses = metrics?.tokenCache.cell('miss', { result: 'miss' });
  if (source.kind === 'jwks') {
    metrics?.jwksFetches.inc({ result: 'success' }, 0);
    metrics?.jwksFetches.inc({ result: 'failure' }, 0);
  }
  let closed = false;

  async function verifyWithSet(token: string, set: LocalJWKSet, verifyOptions: JWTVerifyOptions): Promise<JWTPayload> {
    try {
      return (await jwtVerify(token, set, verifyOptions)).payload;
    } catch (error) {
      if (errorCode(error) !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw error;
      // No kid and several keys of the right type: jose hands us each candidate to try.
      let last: unknown = error;
      for await (const key of error as AsyncIterable<CryptoKey>) {
        try {
          return (await jwtVerify(token, key, verifyOptions)).payload;
        } catch (attempt) {
          if (!isSignatureFailure(attempt)) throw attempt;
          last = attempt;
        }
      }
      throw last;
    }
  }

  async function verifySignedPayload(token: string, alg: JwtAlgorithm, kid: string | undefined, verifyOptions: JWTVerifyOptions): Promise<JWTPayload> {
    switch (source.kind) {
      case 'hmac':
        return (await jwtVerify(token, source.secret, verifyOptions)).payload;
      case 'static': {
        // Keys whose kid equals the header's first, then keys without a kid; never a key of another type.
        const candidates = source.keys
          .filter((key) => key.byAlgorithm.has(alg) && (kid === undefined || key.kid === undefined || key.kid === kid))
          .sort((a, b) => Number(b.kid !== undefined) - Number(a.kid !== undefined));
        let last: unknown;
        for (const candidate of candidates) {
          const key = await candidate.byAlgorithm.get(alg);
          if (key === undefined) continue;
          try {
            return (await jwtVerify(token, key, verifyOptions)).payload;
          } catch (error) {
            if (!isSignatureFailure(error)) throw error;
            last = error;
          }
        }
        // Built only here: an Error's stack trace is not free, and the good path never needs one.
        throw last ?? new Refusal('no_matching_static_key');
      }
      case 'jwks': {
        const set = await source.jwks.current();
        if (set === undefined) throw new Refusal('jwks_unavailable');
        try {
          return await verifyWithSet(token, set, verifyOptions);
        } catch (error) {
          if (errorCode(error) !== 'ERR_JWKS_NO_MATCHING_KEY') throw error;
          // Unknown kid: maybe the issuer rotated. One refetch per cooldown, then fail closed.
          const fresh = await source.jwks.refetchForUnknownKid(set);
          if (fresh === undefined) throw new Refusal('unknown_kid');
          return await verifyWithSet(token, fresh, verifyOptions);
        }
      }
    }
  }

  async function verifyFresh(token: string, tokenHash: string, now: number): Promise<VerifyResult> {
    const header = decodeJsonSegment(token.slice(0, token.indexOf('.')));
    if (header === undefined) throw new Refusal('header_not_json_object');
    const alg = header.alg;
    if (typeof alg !== 'string' || !allowed.has(alg as JwtAlgorithm)) throw new Refusal('alg_not_allowed');
    if (Object.hasOwn(header, 'crit')) throw new Refusal('crit_header');
    const kid = header.kid;
    if (kid !== undefined && typeof kid !== 'string') throw new Refusal('kid_not_string');

    const payload = await verifySignedPayload(token, alg as JwtAlgorithm, kid, {
      algorithms: [alg],
      issuer,
      audience,
      clockTolerance: toleranceMs / 1000,
      currentDate: new Date(now),
      requiredClaims: ['exp', 'sub', 'iss', 'aud'],
    });
    const claims = principalFromClaims(payload, { scopeClaim, rolesClaim, tokenHash, nowMs: now, clockToleranceMs: toleranceMs });
    if (!claims.ok) {
      logger?.debug({ event: 'jwt_rejected', reason: 'claims', token_hash: tokenHash }, 'bearer token refused');
      return { ok: false, problem: problem('invalid_token', claims.detail) };
    }
    return claims;
  }

  /** A token the cache could not answer for: parsed, its signature and claims checked, cached when valid. */
  async function verifyUncached(authorizationHeader: string, knownHash: string | undefined, now: number): Promise<VerifyResult> {
    const parsed = parseAuthorization(authorizationHeader, maxTokenBytes);
    if (!parsed.ok) return parsed;
    const { token } = parsed;
    const tokenHash = knownHash ?? sha256Hex(token);
    cacheMisses?.inc();

    let result: VerifyResult;
    try {
      result = await verifyFresh(token, tokenHash, now);
    } catch (error) {
      const { detail, reason } = classify(error);
      if (reason === 'unexpected') {
        // Not a token fault we know: still a 401, but worth an operator's look. Name only, no message.
        logger?.warn({ event: 'jwt_verify_error', error: error instanceof Error ? error.name : typeof error, token_hash: tokenHash }, 'unexpected error verifying a bearer token');
      } else {
        logger?.debug({ event: 'jwt_rejected', reason, token_hash: tokenHash }, 'bearer token refused');
      }
      return { ok: false, problem: problem('invalid_token', detail) };
    }
    // Failures are not cached: they cost no network (JWKS fetches are paced), negative entries
    // would let junk tokens evict good ones, and an unknown kid may become valid after a rotation.
    if (result.ok && cache !== undefined) {
      const validUntilMs = Math.min(result.principal.expiresAt * 1000, now + maxTtlMs);
      if (validUntilMs > now) cache.set(tokenHash, { principal: result.principal, validUntilMs }, { ttl: validUntilMs - now });
    }
    return result;
  }

  return {
    verify(authorizationHeader) {
      if (typeof authorizationHeader !== 'string') return { ok: false, problem: problem('invalid_token', TOKEN_DETAIL.header) };
      // A retired verifier fails closed rather than trusting keys it no longer refreshes.
      if (closed) return { ok: false, problem: problem('invalid_token', TOKEN_DETAIL.format) };
      const now = clock();
      // Cache first: a cached token is the very string that passed every syntax check when it was
      // verified, so a hit needs no parsing (the scheme's case aside, RFC 6750 ignores it). Anything
      // else (another scheme, extra spaces, a changed byte) misses and takes the full path.
      const candidate = cache !== undefined && authorizationHeader.length <= maxTokenBytes + SCHEME_LENGTH ? bearerPart(authorizationHeader) : undefined;
      const tokenHash = candidate === undefined ? undefined : sha256Hex(candidate);
      const entry = tokenHash === undefined ? undefined : cache?.get(tokenHash);
      if (entry !== undefined && tokenHash !== undefined) {
        if (now < entry.validUntilMs) {
          cacheHits?.inc();
          return { ok: true, principal: entry.principal };
        }
        // Past exp (or maxTtl) by our clock: verify afresh, which applies the clock tolerance.
        cache?.delete(tokenHash);
      }
      return verifyUncached(authorizationHeader, tokenHash, now);
    },
    async idle() {
      if (source.kind === 'jwks') await source.jwks.idle();
    },
    async close() {
      closed = true;
      cache?.clear();
      if (source.kind === 'jwks') await source.jwks.close();
    },
  };
}
