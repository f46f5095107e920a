import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { problem } from '../errors/problems.js';
import type { Metrics } from '../metrics/metrics.js';
import { sendJson, sendProblem } from '../http/respond.js';
import type { ReloadResult } from '../core/gateway-core.js';
import { parseAuditQuery, type EventsAdmin } from '../events/admin.js';

/**
 * What the admin listener answers from. One gateway process fills it from its own core
 * (server/gateway.ts); the primary of `serve --workers N` fills it by asking every worker
 * (src/cluster/primary.ts), so both answer the same endpoints the same way.
 */
export interface AdminDeps {
  /** The text exposition for `/metrics`, with the gauges read on scrape brought up to date. */
  readonly scrape: () => Promise<{ readonly contentType: string; readonly body: string }>;
  /** The running policy's route table (`/admin/routes`). */
  readonly routeTable: () => string;
  readonly poolStats: () => unknown;
  /** Resolves to a reason when not ready, undefined when ready; rejects when a store is down. */
  readonly ready: () => Promise<string | undefined>;
  readonly reload: () => ReloadResult | Promise<ReloadResult>;
  /** Ends every MFA session of a subject (the operator's "log this user out everywhere"). */
  readonly revokeSessions: (subject: string) => Promise<number>;
  readonly adminToken?: string | undefined;
  /** The audit trail and the outbox (GET /admin/audit, POST /admin/audit/purge, GET /admin/outbox). */
  readonly events?: EventsAdmin | undefined;
}

/** `scrape` for one process: refresh the gauges read on scrape (a failure leaves them as they were), then expose. */
export function scrapeRegistry(metrics: Metrics, refreshGauges: () => Promise<void>): AdminDeps['scrape'] {
  return async () => {
    await refreshGauges().catch(() => undefined);
    return { contentType: metrics.registry.contentType, body: await metrics.registry.metrics() };
  };
}

/** 127.0.0.0/8, ::1 and their IPv4-mapped form: the addresses only this host reaches. */
export function isLoopbackAddress(host: string): boolean {
  const bare = host.replace(/^\[|\]$/g, '').toLowerCase();
  return bare === 'localhost' || bare === '::1' || /^(::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(bare);
}

/**
 * Binding the admin listener beyond loopback (for a Prometheus in a sibling container) is the
 * operator's explicit `admin.host`; it is said at every start, with what it opens. The admin API
 * itself keeps needing the admin token whatever the address.
 */
export function adminExposureWarning(host: string): string | undefined {
  if (isLoopbackAddress(host)) return undefined;
  return `the admin listener is bound to ${host}, beyond loopback: /metrics, /healthz and /readyz answer anyone who reaches it (the admin API still needs the admin token); firewall it to the scraper`;
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest();
}

/**
 * The admin listener: metrics and probes are open (bind it to loopback); the admin API needs the
 * admin token, compared in constant time over digests so the length leaks nothing either.
 */
export function createAdminHandler(deps: AdminDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const expected = deps.adminToken === undefined ? undefined : digest(`Bearer ${deps.adminToken}`);

  function authorized(req: IncomingMessage): boolean {
    const given = req.headers.authorization;
    return expected !== undefined && given !== undefined && timingSafeEqual(digest(given), expected);
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [path, query] = (req.url ?? '/').split('?') as [string, string | undefined];
    const method = req.method ?? 'GET';
    if (path === '/metrics' && method === 'GET') {
      const { contentType, body } = await deps.scrape();
      res.writeHead(200, { 'content-type': contentType });
      res.end(body);
      return;
    }
    if (path === '/healthz' && method === 'GET') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (path === '/readyz' && method === 'GET') {
      let reason: string | undefined;
      try {
        reason = await deps.ready();
      } catch {
        reason = 'store unavailable';
      }
      sendJson(res, reason === undefined ? 200 : 503, reason === undefined ? { status: 'ready' } : { status: 'not_ready', reason });
      return;
    }
    if (path.startsWith('/admin/')) {
      if (!authorized(req)) {
        sendProblem(res, problem('forbidden', expected === undefined ? 'the admin API is disabled: set an admin token' : 'admin token required'));
        return;
      }
      if (path === '/admin/routes' && method === 'GET') {
        const text = deps.routeTable();
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(text);
        return;
      }
      if (path === '/admin/reload' && method === 'POST') {
        const result = await deps.reload();
        sendJson(res, result.ok ? 200 : 422, result.ok ? { status: 'reloaded' } : { status: 'refused', error: result.error });
        return;
      }
      if (path === '/admin/sessions/revoke' && method === 'POST') {
        const subject = new URLSearchParams(query ?? '').get('subject');
        if (subject === null || subject === '') {
          sendProblem(res, problem('invalid_request', 'name the subject: POST /admin/sessions/revoke?subject=SUB'));
          return;
        }
        sendJson(res, 200, { subject, revoked: await deps.revokeSessions(subject) });
        return;
      }
      if (path.startsWith('/admin/audit') || path === '/admin/outbox') {
        if (deps.events === undefined) {
          sendProblem(res, problem('not_found', 'the audit API is served by each gateway process, not by the --workers primary'));
          return;
        }
        const params = new URLSearchParams(query ?? '');
        if (path === '/admin/audit' && method === 'GET') {
          const parsed = parseAuditQuery(params);
          if (typeof parsed === 'string') sendProblem(res, problem('invalid_request', parsed));
          else sendJson(res, 200, await deps.events.audit(parsed));
          return;
        }
        if (path === '/admin/audit/purge' && method === 'POST') {
          sendJson(res, 200, await deps.events.purge());
          return;
        }
        if (path === '/admin/outbox' && method === 'GET') {
          const state = params.get('state') ?? 'dead';
          if (state !== 'pending' && state !== 'delivered' && state !== 'dead') sendProblem(res, problem('invalid_request', 'state must be pending, delivered or dead'));
          else sendJson(res, 200, await deps.events.outbox(state));
          return;
        }
      }
      if (path === '/admin/pools' && method === 'GET') {
        sendJson(res, 200, await deps.poolStats());
        return;
      }
    }
    sendProblem(res, problem('not_found', 'no such admin endpoint'));
  }

  return (req, res) => {
    handle(req, res).catch(() => sendProblem(res, problem('internal_error', 'admin request failed')));
  };
}
