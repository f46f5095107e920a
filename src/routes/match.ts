/**
 * Route selection, run on every request. The loader has already done the work that can be done
 * once (hosts normalised, methods upper-cased into a Set, regexes compiled to a linear-time
 * matcher), so a lookup is a loop of compares with no allocation beyond a host that needs
 * normalising.
 * Hosts on both sides go through the request canonicaliser's normalizeHost, so they cannot disagree.
 */
import type { Route } from './types.js';
import { normalizeHost } from '../request/host.js';

const SLASH = 0x2f;

/**
 * Prefix on segment boundaries: `/orders/` matches `/orders/x`; `/orders` matches `/orders` and
 * `/orders/x` but never `/ordersx`.
 */
export function pathHasPrefix(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || prefix.charCodeAt(prefix.length - 1) === SLASH || path.charCodeAt(prefix.length) === SLASH;
}

/**
 * The first route whose host, methods and path all match, or undefined (default deny). `path` is
 * the request path without the query; `method` is compared as sent (HTTP methods are case-sensitive).
 */
export function matchRoute(routes: readonly Route[], method: string, host: string, path: string): Route | undefined {
  // Normalised on first need; null when the host is not a valid one (then no host rule matches).
  let normalHost: string | null | undefined;
  // Lower-cased on first need, for case-insensitive rules only.
  let lowerPath: string | undefined;
  for (const route of routes) {
    const match = route.match;
    if (match.methods !== undefined && !match.methods.has(method)) continue;
    if (match.host !== undefined) {
      if (normalHost === undefined) normalHost = normalizeHost(host) ?? null;
      if (match.host !== normalHost) continue;
    }
    const seen = match.caseInsensitive === true ? (lowerPath ??= path.toLowerCase()) : path;
    if (match.path !== undefined) {
      if (seen !== match.path) continue;
    } else if (match.pathPrefix !== undefined) {
      if (!pathHasPrefix(match.pathPrefix, seen)) continue;
    } else if (match.pathRegex !== undefined && !match.pathRegex.test(seen)) {
      continue;
    }
    return route;
  }
  return undefined;
}
