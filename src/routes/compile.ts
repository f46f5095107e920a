/**
 * `routes:` of the policy file → Route objects: names, match rules (hosts normalised like requests,
 * methods upper-cased, regexes compiled to the linear-time matcher), policies and their upstreams.
 * Runs on data the schema accepted, with defaults filled in; every problem is reported with its key
 * path, and compilation goes on so one run shows them all. The loader (config/compile.ts) turns the
 * paths into `file:line: path: message` and freezes the result.
 */
import { normalizeHost } from '../request/host.js';
import { normalizePath } from '../request/target.js';
import { FACTOR_METHODS, isFactorMethod, type FactorMethod } from './factor-methods.js';
import { compilePathRegex, type PathRegex } from './path-regex.js';
import type { PolicyName, Route, RouteMatch, RouteRateLimit } from './types.js';

/** One entry of `routes:` as the schema describes it. */
export interface RawRoute {
  readonly name?: string;
  readonly match: {
    readonly host?: string;
    readonly path?: string;
    readonly path_prefix?: string;
    readonly path_regex?: string;
    readonly methods?: readonly string[];
    readonly case_insensitive?: boolean;
  };
  readonly upstream?: string;
  readonly policy: PolicyName;
  readonly max_age?: string;
  readonly scopes: readonly string[];
  readonly roles: readonly string[];
  readonly forward_authorization: boolean;
  readonly websocket: boolean;
  readonly rate_limit?: { readonly requests: number; readonly per: string; readonly key: 'ip' | 'subject' };
  /** Second-factor methods (not HTTP methods: those are `match.methods`). */
  readonly methods?: readonly string[];
}

/** Where a value sits in the policy file, in YAML keys: `['routes', 2, 'match', 'path']`. */
export type KeyPath = readonly (string | number)[];

export interface RouteCompileContext {
  /** The upstreams the file defines, in file order (named in "unknown upstream" messages). */
  readonly upstreams: readonly string[];
  /** mfa.path_prefix: the gateway answers everything under it, so no rule there can match. */
  readonly mfaPathPrefix: string;
  /** The policy's `case_insensitive`: the default of every rule's `match.case_insensitive`. */
  readonly caseInsensitive: boolean;
  /** Records a problem at `path`. */
  readonly report: (path: KeyPath, message: string) => void;
  /** 1-based line of the value at `path` in the policy file. */
  readonly lineOf: (path: KeyPath) => number;
  /** Milliseconds of the duration at `path`; reports it when unreadable or outside the bounds. */
  readonly duration: (path: KeyPath, text: string, bounds: { readonly min: number; readonly max: number }) => number;
}

/** step_up's `max_age`: at least a second, at most a day. */
export const STEP_UP_MAX_AGE_BOUNDS = { min: 1000, max: 24 * 3_600_000 } as const;

/** `rate_limit.per`: from a second (RateLimit-Policy's `w` counts whole seconds) to a day. */
export const RATE_LIMIT_PER_BOUNDS = { min: 1000, max: 24 * 3_600_000 } as const;

/** What request canonicalisation refuses with 400: a rule that needs it could never match. */
const UNREACHABLE_PATH = /\/\/|\/\.\.?(\/|$)|[;\\]|%2e|%2f|%5c|%00/i;

/**
 * The routes in file order. Method sets are plain Sets here: the caller freezes the policy as a
 * whole. Without issues reported, every route is usable as is.
 */
export function compileRoutes(rawRoutes: readonly RawRoute[], ctx: RouteCompileContext): Route[] {
  const { report } = ctx;
  const names = new Map<string, number>();
  const known = new Set(ctx.upstreams);
  return rawRoutes.map((raw, index): Route => {
    const base: KeyPath = ['routes', index];
    // Numbered from 1, as check, explain and the loader's errors number routes.
    const name = raw.name ?? `route_${index + 1}`;
    const previous = names.get(name);
    if (previous !== undefined) {
      report(raw.name !== undefined ? [...base, 'name'] : base, `duplicate route name "${name}" (route ${previous + 1} at line ${ctx.lineOf(['routes', previous])} has it)`);
    } else {
      names.set(name, index);
    }

    const match = compileMatch(raw.match, [...base, 'match'], ctx);

    let maxAgeMs: number | undefined;
    if (raw.max_age !== undefined) {
      if (raw.policy === 'step_up') maxAgeMs = ctx.duration([...base, 'max_age'], raw.max_age, STEP_UP_MAX_AGE_BOUNDS);
      else report([...base, 'max_age'], `applies to step_up only, not to ${raw.policy}`);
    } else if (raw.policy === 'step_up') {
      report([...base, 'policy'], 'step_up needs max_age: how old the last second factor may be, e.g. 5m');
    }

    if (raw.upstream === undefined) {
      if (raw.policy !== 'deny') report([...base, 'upstream'], `required for policy ${raw.policy} (only deny routes forward nowhere)`);
    } else if (!known.has(raw.upstream)) {
      report([...base, 'upstream'], `unknown upstream "${raw.upstream}"${known.size > 0 ? ` (defined: ${ctx.upstreams.join(', ')})` : ' (no upstreams are defined)'}`);
    }

    // A scope on a route that checks no token would read as protection it does not give.
    if ((raw.policy === 'public' || raw.policy === 'deny') && (raw.scopes.length > 0 || raw.roles.length > 0)) {
      report([...base, raw.scopes.length > 0 ? 'scopes' : 'roles'], `a ${raw.policy} route checks no token, so scopes and roles would never be enforced`);
    }

    const rateLimit = raw.rate_limit === undefined ? undefined : compileRateLimit(raw.rate_limit, raw.policy, [...base, 'rate_limit'], ctx);
    const mfaMethods = raw.methods === undefined ? undefined : compileFactorMethods(raw.methods, raw.policy, [...base, 'methods'], ctx);

    return {
      index,
      name,
      line: ctx.lineOf(base),
      match,
      policy: raw.policy,
      ...(raw.upstream !== undefined ? { upstream: raw.upstream } : {}),
      ...(maxAgeMs !== undefined ? { maxAgeMs } : {}),
      scopes: [...new Set(raw.scopes)],
      roles: [...new Set(raw.roles)],
      forwardAuthorization: raw.forward_authorization,
      websocket: raw.websocket,
      ...(rateLimit !== undefined ? { rateLimit } : {}),
      ...(mfaMethods !== undefined ? { mfaMethods } : {}),
    };
  });
}

const KNOWN_FACTOR_METHODS = FACTOR_METHODS.join(', ');

/**
 * A route's own `methods:`. Two levels use the word: `match.methods` picks requests by HTTP method,
 * this one says which second factors satisfy the route, so every message names its level.
 */
function compileFactorMethods(raw: readonly string[], policy: PolicyName, base: KeyPath, ctx: RouteCompileContext): FactorMethod[] | undefined {
  if (policy !== 'mfa' && policy !== 'step_up') {
    ctx.report(base, `second-factor methods apply to mfa and step_up routes only, not to ${policy}; to match HTTP methods use match.methods`);
    return undefined;
  }
  const methods: FactorMethod[] = [];
  raw.forEach((name, i) => {
    if (isFactorMethod(name)) methods.push(name);
    else ctx.report([...base, i], `${JSON.stringify(name)} is not a second-factor method (known: ${KNOWN_FACTOR_METHODS}); to match HTTP methods use match.methods`);
  });
  return methods.length === raw.length ? methods : undefined;
}

function compileRateLimit(raw: NonNullable<RawRoute['rate_limit']>, policy: PolicyName, base: KeyPath, ctx: RouteCompileContext): RouteRateLimit | undefined {
  if (policy === 'deny') {
    ctx.report(base, 'a deny route refuses every request already; a rate limit would never count');
    return undefined;
  }
  if (raw.key === 'subject' && policy === 'public') {
    ctx.report([...base, 'key'], 'a public route checks no token, so there is no subject to count: use key: ip');
    return undefined;
  }
  const perMs = ctx.duration([...base, 'per'], raw.per, RATE_LIMIT_PER_BOUNDS);
  if (perMs % 1000 !== 0) ctx.report([...base, 'per'], 'must be whole seconds (RateLimit-Policy counts its window in seconds)');
  return { requests: raw.requests, perMs, key: raw.key };
}

function compileMatch(raw: RawRoute['match'], base: KeyPath, ctx: RouteCompileContext): RouteMatch {
  const { report, mfaPathPrefix } = ctx;
  const pathKeys = (['path', 'path_prefix', 'path_regex'] as const).filter((key) => raw[key] !== undefined);
  if (pathKeys.length > 1) report(base, `at most one of path, path_prefix, path_regex (found ${pathKeys.join(', ')})`);

  let host: string | undefined;
  if (raw.host !== undefined) {
    // The very function requests go through, so a rule's host and a request's host compare alike.
    host = normalizeHost(raw.host);
    if (raw.host.includes('*')) report([...base, 'host'], 'wildcards are not supported: list each host in its own route');
    else if (host === undefined) report([...base, 'host'], 'not a host name, IP literal or host:port');
  }

  const caseInsensitive = raw.case_insensitive ?? ctx.caseInsensitive;
  // Written as requests are matched: unreserved escapes decoded (`%61` → `a`), other escapes
  // upper-case, then lower-cased for a case-insensitive rule.
  const paths: { path?: string; path_prefix?: string } = {};
  for (const key of ['path', 'path_prefix'] as const) {
    const value = raw[key];
    if (value === undefined) continue;
    if (/[?#]/.test(value)) report([...base, key], "matches the path only: a '?' or '#' here could never match");
    else if (/[\s\x00-\x1f\x7f]/.test(value)) report([...base, key], 'must not contain spaces or control characters');
    else if (UNREACHABLE_PATH.test(value)) {
      report([...base, key], "holds '//', a dot segment, ';', '\\' or an encoded '.', '/', '\\' or NUL: requests carrying those are refused with 400, so this could never match");
    } else if (value.startsWith(mfaPathPrefix)) {
      report([...base, key], `lies under mfa.path_prefix (${mfaPathPrefix}), which the gateway answers itself, so this could never match`);
    }
    const normal = value.startsWith('/') ? normalizePath(value) : value;
    const form = normal.startsWith('/') ? normal : value;
    paths[key] = caseInsensitive ? form.toLowerCase() : form;
  }

  let pathRegex: PathRegex | undefined;
  if (raw.path_regex !== undefined) {
    const source = raw.path_regex;
    let syntaxError: string | undefined;
    try {
      // RegExp reads it first, so a syntax error is reported in V8's words; it never matches requests.
      new RegExp(source);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      syntaxError = message.slice(message.lastIndexOf(': ') + 2);
    }
    if (syntaxError !== undefined) {
      report([...base, 'path_regex'], `invalid regular expression: ${syntaxError}`);
    } else {
      const compiled = compilePathRegex(source);
      if (compiled.ok) pathRegex = compiled.regex;
      else report([...base, 'path_regex'], compiled.reason);
    }
  }

  raw.methods?.forEach((method, i) => {
    if (isFactorMethod(method.toLowerCase())) {
      report([...base, 'methods', i], `${JSON.stringify(method)} is a second-factor method, not an HTTP method: list it in the route's own methods (${formatRoutePath(base)}.methods)`);
    }
  });
  const methods = raw.methods === undefined ? undefined : new Set(raw.methods.map((method) => method.toUpperCase()));
  return {
    ...(host !== undefined ? { host } : {}),
    ...(paths.path !== undefined ? { path: paths.path } : {}),
    ...(paths.path_prefix !== undefined ? { pathPrefix: paths.path_prefix } : {}),
    ...(pathRegex !== undefined ? { pathRegex } : {}),
    ...(methods !== undefined ? { methods } : {}),
    ...(caseInsensitive ? { caseInsensitive: true as const } : {}),
  };
}

/** `routes[2]` from the key path of something in route 2. */
function formatRoutePath(path: KeyPath): string {
  return `routes[${String(path[1])}]`;
}
