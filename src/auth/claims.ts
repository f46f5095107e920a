import { LRUCache } from 'lru-cache';
import { FrozenSet } from '../config/freeze.js';
import type { Principal } from './principal.js';
import { TOKEN_DETAIL } from './errors.js';

export const MAX_SUBJECT_LENGTH = 256;

export interface ClaimOptions {
  readonly scopeClaim: string;
  readonly rolesClaim: string;
  readonly tokenHash: string;
  readonly nowMs: number;
  readonly clockToleranceMs: number;
}

export type ClaimsResult = { readonly ok: true; readonly principal: Principal } | { readonly ok: false; readonly detail: string };

/** C0 and C1 controls, DEL, and unpaired surrogates: nothing a header, a log line or a key should carry. */
const CONTROL_OR_LONE_SURROGATE = /[\u0000-\u001f\u007f-\u009f]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const EDGE_WHITESPACE = /^\s|\s$/;

/**
 * A subject, scope or role the gateway will key state on and send in a header. Surrounding
 * whitespace is refused because HTTP parsers trim it: the backend would see another name than
 * the one lockouts and sessions were keyed on.
 */
function isCleanText(value: string): boolean {
  return !EDGE_WHITESPACE.test(value) && !CONTROL_OR_LONE_SURROGATE.test(value);
}

function own(payload: Readonly<Record<string, unknown>>, name: string): unknown {
  return Object.hasOwn(payload, name) ? payload[name] : undefined;
}

function stringArray(value: unknown): string[] | undefined {
  return Array.isArray(value) && value.every((item) => typeof item === 'string') ? (value as string[]) : undefined;
}

/** RFC 8693 §4.2: a space-separated string; an array of strings is accepted too (`scp` style). */
function readScopes(value: unknown): string[] | undefined {
  if (value === undefined) return [];
  if (typeof value === 'string') return value.split(' ').filter((scope) => scope !== '');
  return stringArray(value)?.filter((scope) => scope !== '');
}

/**
 * An array, or a string naming ONE role. A string is not split on spaces: a role named
 * "Org Admin" must not grant the roles "Org" and "Admin".
 */
function readRoles(value: unknown): string[] | undefined {
  if (value === undefined) return [];
  if (typeof value === 'string') return value === '' ? [] : [value];
  return stringArray(value)?.filter((role) => role !== '');
}

/**
 * The scope, role and amr lists of one deployment's tokens are few: every validated token in the
 * cache shares one frozen copy of each instead of holding two Sets and an array of its own (at
 * 40,000 cached tokens those were 14 MB of a 49 MB heap). Bounded, least recently used first, so
 * tokens carrying ever-new lists cannot grow it.
 */
const INTERNED_LISTS = 1024;
const internedSets = new LRUCache<string, ReadonlySet<string>>({ max: INTERNED_LISTS });
const internedArrays = new LRUCache<string, readonly string[]>({ max: INTERNED_LISTS });

/** The one kept copy of `values` in `cache`, made by `make` the first time. */
function interned<T extends object>(cache: LRUCache<string, T>, values: readonly string[], make: () => T): T {
  const key = JSON.stringify(values);
  let copy = cache.get(key);
  if (copy === undefined) cache.set(key, (copy = make()));
  return copy;
}

// Sealed: a Set shared by many principals must not let a stray cast widen every other caller's scopes.
const sharedSet = (values: readonly string[]): ReadonlySet<string> => interned(internedSets, values, () => new FrozenSet(values));
const sharedArray = (values: readonly string[]): readonly string[] => interned(internedArrays, values, () => Object.freeze([...values]));

/**
 * The checks jose does not make, and the Principal. Runs after the signature, `iss`, `aud`, `exp`
 * and `nbf` were verified. A claim of the wrong type refuses the token (fail closed) rather than
 * being read as absent.
 */
export function principalFromClaims(payload: Readonly<Record<string, unknown>>, options: ClaimOptions): ClaimsResult {
  const refuse = (detail: string): ClaimsResult => ({ ok: false, detail });
  const nowSeconds = Math.floor(options.nowMs / 1000);
  const toleranceSeconds = options.clockToleranceMs / 1000;

  const exp = own(payload, 'exp');
  if (typeof exp !== 'number' || !Number.isFinite(exp)) return refuse(TOKEN_DETAIL.claims);
  const iat = own(payload, 'iat');
  if (iat !== undefined) {
    if (typeof iat !== 'number' || !Number.isFinite(iat)) return refuse(TOKEN_DETAIL.claims);
    if (iat > nowSeconds + toleranceSeconds) return refuse(TOKEN_DETAIL.notYetValid);
  }
  const sub = own(payload, 'sub');
  if (typeof sub !== 'string' || sub.length === 0 || sub.length > MAX_SUBJECT_LENGTH || !isCleanText(sub)) return refuse(TOKEN_DETAIL.claims);

  const scopes = readScopes(own(payload, options.scopeClaim));
  const roles = readRoles(own(payload, options.rolesClaim));
  if (scopes?.every(isCleanText) === false || roles?.every(isCleanText) === false) return refuse(TOKEN_DETAIL.claims);
  const amrValue = own(payload, 'amr');
  const amr = amrValue === undefined ? [] : stringArray(amrValue);
  const authTime = own(payload, 'auth_time');
  if (scopes === undefined || roles === undefined || amr === undefined) return refuse(TOKEN_DETAIL.claims);
  if (authTime !== undefined && (typeof authTime !== 'number' || !Number.isFinite(authTime) || authTime < 0)) return refuse(TOKEN_DETAIL.claims);

  const principal: Principal = Object.freeze({
    subject: sub,
    scopes: sharedSet(scopes),
    roles: sharedSet(roles),
    expiresAt: exp,
    amr: sharedArray(amr),
    ...(authTime !== undefined ? { authTime } : {}),
    tokenHash: options.tokenHash,
  });
  return { ok: true, principal };
}
