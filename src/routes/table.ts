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

/** Every path `later` can match is also matched by `earlier`. Sound, not complete: unsure means no. */
function pathCovers(earlier: RouteMatch, later: RouteMatch): boolean {
  if (earlier.path === undefined && earlier.pathPrefix === undefined && earlier.pathRegex === undefined) return true;
  if (later.path !== undefined) {
    if (earlier.path !== undefined) return earlier.path === later.path;
    if (earlier.pathPrefix !== undefined) return pathHasPrefix(earlier.pathPrefix, later.path);
    return earlier.pathRegex!.test(later.path);
  }
  if (later.pathPrefix !== undefined) {
    // Every path under a prefix starts with it, so the prefix itself decides.
    return earlier.pathPrefix !== undefined && pathHasPrefix(earlier.pathPrefix, later.pathPrefix);
  }
  // A later regex, or a later rule with no path at all: only an earlier rule with no path covers it.
  return false;
}

function hostCovers(earlier: RouteMatch, later: RouteMatch): boolean {
  return earlier.host === undefined || earlier.host === later.host;
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

function describePolicy(route: Route): string {
  const policy = route.maxAgeMs === undefined ? route.policy : `${route.policy} max_age=${formatDuration(route.maxAgeMs)}`;
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
    describePath(route.match),
    describePolicy(route),
    route.upstream ?? '-',
    describeClaims(route),
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: readonly string[]): string => cells.map((cell, column) => cell.padEnd(widths[column]!)).join('  ').trimEnd();
  const lines = [line(header), ...rows.map(line)];
  if (rows.length === 0) lines.push('(no routes: every request is refused)');
  for (const { route, shadowedBy } of findShadowedRoutes(table.routes)) {
    lines.push(`warning: route ${route.index + 1} (${route.name}) is shadowed by route ${shadowedBy.index + 1} (${shadowedBy.name})`);
  }
  lines.push(`default: ${table.default}`);
  return lines.join('\n');
}
