/**
 * What `check` and the admin API print: the route table, warnings for rules no request can
 * reach, and the default.
 */
import type { Route, RouteMatch, RouteTable } from './types.js';
import { formatDuration } from '../time/duration.js';
import { pathHasPrefix } from './match.js';

export interface ShadowedRoute {
  readonly route: Route;
  readonly shadowedBy: Route;
}

function hasNoPath(match: RouteMatch): boolean {
  return match.path === undefined && match.pathPrefix === undefined && match.pathRegex === undefined;
}

/** A later rule's literal path as an earlier rule compares it (lower-cased for a case-insensitive one). */
function seenBy(earlier: RouteMatch, literal: string): string {
  return earlier.caseInsensitive === true ? literal.toLowerCase() : literal;
}

/**
 * Every path `later` can match is also matched by `earlier`. Sound, not complete: unsure means no.
 * A case-insensitive later rule also matches spellings a case-sensitive earlier one does not.
 */
function pathCovers(earlier: RouteMatch, later: RouteMatch): boolean {
  if (hasNoPath(earlier)) return true;
  if (later.caseInsensitive === true && earlier.caseInsensitive !== true) return false;
  if (later.path !== undefined) {
    const path = seenBy(earlier, later.path);
    if (earlier.path !== undefined) return earlier.path === path;
    if (earlier.pathPrefix !== undefined) return pathHasPrefix(earlier.pathPrefix, path);
    return earlier.pathRegex!.test(path);
  }
  if (later.pathPrefix !== undefined) {
    // Every path under a prefix starts with it, so the prefix itself decides.
    return earlier.pathPrefix !== undefined && pathHasPrefix(earlier.pathPrefix, seenBy(earlier, later.pathPrefix));
  }
  // A later regex, or a later rule with no path at all: only an earlier rule with no path covers it.
  return false;
}

function hostCovers(earlier: RouteMatch, later: RouteMatch): boolean {
  return earlier.host === undefined || earlier.host === later.host;
}

function hostsOverlap(a: RouteMatch, b: RouteMatch): boolean {
  return a.host === undefined || b.host === undefined || a.host === b.host;
}

function methodsOverlap(a: RouteMatch, b: RouteMatch): boolean {
  if (a.methods === undefined || b.methods === undefined) return true;
  for (const method of a.methods) if (b.methods.has(method)) return true;
  return false;
}

/** How much a policy asks of a request: a stricter rule placed after a weaker one may never be reached. */
const STRICTNESS: Readonly<Record<Route['policy'], number>> = { public: 0, bearer: 1, mfa: 2, step_up: 3, deny: 4 };

export interface WeakerRule {
  /** The stricter rule some (or all) of whose requests are decided by `by`. */
  readonly route: Route;
  readonly by: Route;
  /** `by` decides every request `route` names. */
  readonly whole: boolean;
}

/**
 * Stricter rules (deny, step_up, mfa, bearer) placed after a broader weaker rule that takes some
 * or all of their requests first: `/api/` bearer above `/api/admin/` deny lets admin requests in
 * with a bearer token (first match wins). "Broader": the weaker rule's path covers the stricter
 * one's, and is wider still or covers its methods too — so a method carve-out on the same path
 * (`GET /orders/` bearer above `/orders/` mfa) is a design, not a mistake.
 */
export function findWeakerRules(routes: readonly Route[]): WeakerRule[] {
  const found: WeakerRule[] = [];
  for (let j = 1; j < routes.length; j++) {
    const later = routes[j]!;
    for (let i = 0; i < j; i++) {
      const earlier = routes[i]!;
      if (STRICTNESS[earlier.policy] >= STRICTNESS[later.policy]) continue;
      if (!hostsOverlap(earlier.match, later.match) || !methodsOverlap(earlier.match, later.match) || !pathCovers(earlier.match, later.match)) continue;
      const methodsToo = methodsCover(earlier.match, later.match);
      if (!methodsToo && pathCovers(later.match, earlier.match)) continue;
      found.push({ route: later, by: earlier, whole: methodsToo && hostCovers(earlier.match, later.match) });
      break;
    }
  }
  return found;
}

function methodsCover(earlier: RouteMatch, later: RouteMatch): boolean {
  if (earlier.methods === undefined) return true;
  if (later.methods === undefined) return false;
  for (const method of later.methods) if (!earlier.methods.has(method)) return false;
  return true;
}

/** Later rules that an earlier one always wins over (first match wins), each with the first such rule. */
export function findShadowedRoutes(routes: readonly Route[]): ShadowedRoute[] {
  const shadowed: ShadowedRoute[] = [];
  for (let j = 1; j < routes.length; j++) {
    const later = routes[j]!;
    for (let i = 0; i < j; i++) {
      const earlier = routes[i]!;
      if (hostCovers(earlier.match, later.match) && methodsCover(earlier.match, later.match) && pathCovers(earlier.match, later.match)) {
        shadowed.push({ route: later, shadowedBy: earlier });
        break;
      }
    }
  }
  return shadowed;
}

function describePath(match: RouteMatch): string {
  if (match.path !== undefined) return match.path;
  if (match.pathPrefix !== undefined) return match.pathPrefix.endsWith('/') ? `${match.pathPrefix}*` : `${match.pathPrefix}[/*]`;
  if (match.pathRegex !== undefined) return `~${match.pathRegex.source}`;
  return '*';
}

function describeMatchPath(match: RouteMatch): string {
  return match.caseInsensitive === true ? `${describePath(match)} (any case)` : describePath(match);
}

function describePolicy(route: Route): string {
  const aged = route.maxAgeMs === undefined ? route.policy : `${route.policy} max_age=${formatDuration(route.maxAgeMs)}`;
  // "accepts": the route's second-factor methods, kept apart from the HTTP methods column.
  const policy = route.mfaMethods === undefined ? aged : `${aged} accepts=${route.mfaMethods.join(',')}`;
  const limit = route.rateLimit;
  return limit === undefined ? policy : `${policy} rate_limit=${limit.requests}/${formatDuration(limit.perMs)}:${limit.key}`;
}

function describeClaims(route: Route): string {
  const parts: string[] = [];
  if (route.scopes.length > 0) parts.push(`scopes=${route.scopes.join(',')}`);
  if (route.roles.length > 0) parts.push(`roles=${route.roles.join(',')}`);
  return parts.length > 0 ? parts.join(' ') : '-';
}

/**
 * A fixed-width table, one rule a line in match order, then a warning per shadowed rule, then the
 * default. Paths read `/exact`, `/prefix/*` (`/prefix[/*]` for a prefix without a trailing
 * slash: itself and below), `~regex` (anchored on the whole path) or `*` (any).
 */
export function formatRouteTable(table: RouteTable): string {
  const header = ['#', 'name', 'host', 'methods', 'path', 'policy', 'upstream', 'scopes/roles'];
  const rows = table.routes.map((route) => [
    String(route.index + 1),
    route.name,
    route.match.host ?? '*',
    route.match.methods === undefined ? '*' : [...route.match.methods].join(','),
    describeMatchPath(route.match),
    describePolicy(route),
    route.upstream ?? '-',
    describeClaims(route),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  const lines = [line(header), ...rows.map(line)];
  if (rows.length === 0) lines.push('(no routes: every request is refused)');
  const weaker = findWeakerRules(table.routes);
  for (const { route, shadowedBy } of findShadowedRoutes(table.routes)) {
    if (weaker.some((w) => w.route === route && w.by === shadowedBy)) continue;
    lines.push(`warning: route ${route.index + 1} (${route.name}) is shadowed by route ${shadowedBy.index + 1} (${shadowedBy.name})`);
  }
  for (const { route, by, whole } of weaker) {
    const what = whole ? 'every request it names' : 'some requests it names';
    lines.push(
      `warning: route ${route.index + 1} (${route.name}, ${route.policy}) comes after the weaker route ${by.index + 1} (${by.name}, ${by.policy}), which decides ${what} first; move it above`,
    );
  }
  lines.push(`default: ${table.default}`);
  return lines.join('\n');
}
