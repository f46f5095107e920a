import type { IncomingMessage, ServerResponse } from 'node:http';
import { admit, Pass } from '../../admission/admit.js';
import { buildUpstreamHeaders, clientAnswerHeaders } from '../../contract/headers.js';
import { createGatewayCore, type GatewayCore } from '../../core/gateway-core.js';
import type { Identity } from '../../decision/types.js';
import { OptionError } from '../../errors/gateway-error.js';
import { problem } from '../../errors/problems.js';
import { sendProblem } from '../../http/respond.js';
import type { Logger } from '../../log/logger.js';
import { hasBody } from '../../request/body.js';
import type { RequestSource } from '../../request/canonical.js';
import { normalizeTarget } from '../../request/target.js';
import type { RequestView } from '../../request/view.js';
import type { Clock } from '../../time/clock.js';
import { serveReserved } from '../reserved.js';
import { earlyAuthRequestHeaders } from '../forward-auth/door.js';

/** What the guard tells the application about an allowed caller (also as `x-auth-*` request headers). */
export interface GuardIdentity extends Identity {
  readonly requestId: string;
  /** Name of the policy route that allowed the request. */
  readonly route: string;
}

declare module 'http' {
  interface IncomingMessage {
    /** Set by the MFA guard on requests it allowed with a verified identity (not on public routes). */
    mfaIdentity?: GuardIdentity;
  }
}

export interface MfaGuardOptions {
  /** Path of the policy file (the same file the gateway reads). */
  readonly config: string;
  readonly logger?: Logger;
  readonly clock?: Clock;
  /** Re-read the policy file when it changes (default true). */
  readonly watch?: boolean;
}

export type NextFunction = (error?: unknown) => void;

/** The slices of Fastify's request and reply the hook needs (Fastify itself is not a dependency). */
export interface FastifyLikeRequest {
  readonly raw: IncomingMessage;
}
export interface FastifyLikeReply {
  readonly raw: ServerResponse;
  hijack(): unknown;
}

export interface MfaGuard {
  /** node:http wrapper, Express middleware, or middie (`fastify.use(guard)`). */
  (req: IncomingMessage, res: ServerResponse, next: NextFunction): void;
  /** Fastify: `fastify.addHook('onRequest', guard.fastifyHook)`. */
  readonly fastifyHook: (request: FastifyLikeRequest, reply: FastifyLikeReply, done: (error?: Error) => void) => void;
  /** The shared core (metrics registry, MFA service), for applications that expose them. */
  readonly core: GatewayCore;
  /** Waits for requests in flight (up to the policy's drain timeout), then closes stores, pools and watcher. */
  close(): Promise<void>;
}

export type GuardOptionErrorCode = 'ERR_GUARD_INVALID_OPTION';

/** Thrown by `createMfaGuard` for a bad option; `option` names it. */
export class GuardOptionError extends OptionError<GuardOptionErrorCode> {
  static override readonly codes = ['ERR_GUARD_INVALID_OPTION'] as const;

  constructor(option: string, message: string) {
    super(option, message, `createMfaGuard: option "${option}" ${message}`);
  }
}

function validate(options: MfaGuardOptions): void {
  if (typeof options !== 'object' || options === null) throw new GuardOptionError('options', 'must be an object');
  if (typeof options.config !== 'string' || options.config.trim() === '') throw new GuardOptionError('config', 'must be the path of a policy file');
  if (options.logger !== undefined && (typeof options.logger !== 'object' || options.logger === null || typeof options.logger.info !== 'function')) {
    throw new GuardOptionError('logger', 'must be a pino logger');
  }
  if (options.clock !== undefined && typeof options.clock !== 'function') throw new GuardOptionError('clock', 'must be a function returning milliseconds');
  if (options.watch !== undefined && typeof options.watch !== 'boolean') throw new GuardOptionError('watch', 'must be a boolean');
}

/**
 * Replaces the request's headers, in both views Node keeps of them (`rawHeaders` feeds frameworks
 * that read it), with what the header contract says the application may see.
 */
function replaceHeaders(req: IncomingMessage, flat: readonly string[]): void {
  const headers: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const value = flat[i + 1]!;
    const seen = headers[name];
    headers[name] = seen === undefined ? value : `${seen}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  req.rawHeaders.length = 0;
  req.rawHeaders.push(...flat);
  req.headers = headers;
}

/**
 * Front door 3: the decision engine as a Node middleware. Async so that a bad policy file, a missing
 * key or an unreachable store fails at startup, never on the first request.
 */
export async function createMfaGuard(options: MfaGuardOptions): Promise<MfaGuard> {
  validate(options);
  const core = await createGatewayCore({
    configPath: options.config,
    ...(options.logger !== undefined ? { logger: options.logger } : {}),
    ...(options.clock !== undefined ? { clock: options.clock } : {}),
    ...(options.watch !== undefined ? { watch: options.watch } : {}),
  });
  const { logger } = core;
  let closing: Promise<void> | undefined;

  /** `takeOver` runs before the guard answers itself (Fastify must be told to stand aside). */
  async function handle(req: IncomingMessage, res: ServerResponse, next: NextFunction, takeOver: () => void): Promise<void> {
    if (closing !== undefined) {
      takeOver();
      sendProblem(res, problem('overloaded', 'the MFA guard is shutting down', { retryAfter: 1 }), undefined, { connection: 'close' });
      return;
    }
    const pass = new Pass(core);
    pass.settleWhenClosed(res);
    const withBody = hasBody(req);
    const source = originalRequest(req);
    const admitted = admit(core, pass, source, { door: 'middleware' });
    const admission = admitted instanceof Promise ? await admitted : admitted;
    if (admission.kind === 'refused') {
      takeOver();
      sendProblem(res, admission.problem, admission.requestId, earlyAuthRequestHeaders(source, pass, admission.problem), admission.ambiguous || withBody);
      return;
    }
    const { view, decision } = admission;
    if (decision.endpoint !== undefined) {
      takeOver();
      await serveReserved(core, pass, req, res, view, { ...decision, endpoint: decision.endpoint });
      return;
    }

    // The application is the backend: it sees exactly what the reverse proxy would forward (the
    // same header contract), nothing a client could forge.
    replaceHeaders(
      req,
      buildUpstreamHeaders(req.rawHeaders, {
        view,
        identity: decision.identity,
        forwardAuthorization: decision.route.forwardAuthorization,
        upstreamHost: undefined,
        untrustedPeerHeaders: pass.runtime.policy.untrustedPeerHeaders,
      }),
    );
    presentAsJudged(req, view);
    // The application's own copy: the identity's scope list is shared by every request of those scopes.
    req.mfaIdentity = decision.identity === undefined ? undefined : { ...decision.identity, scopes: [...decision.identity.scopes], requestId: view.requestId, route: decision.route.name };
    res.setHeader('x-request-id', view.requestId);
    // Returned to the client only; the application never sees a session token.
    const answer = clientAnswerHeaders(decision);
    if (answer !== undefined) for (const [name, value] of Object.entries(answer)) res.setHeader(name, value);
    next();
  }

  function run(req: IncomingMessage, res: ServerResponse, next: NextFunction, takeOver: () => void): void {
    handle(req, res, next, takeOver).catch((error: unknown) => {
      logger.error({ event: 'internal_error', error: error instanceof Error ? error.message : String(error), door: 'guard' }, 'guard failed');
      // Fail closed: an error never lets the request through to the application.
      if (res.headersSent) {
        res.destroy();
        return;
      }
      takeOver();
      sendProblem(res, problem('internal_error', 'the gateway could not handle this request'));
    });
  }

  const close = (): Promise<void> =>
    (closing ??= (async () => {
      await core.whenIdle(core.current().policy.limits.drainTimeoutMs);
      await core.close();
    })());

  function fastifyHook(request: FastifyLikeRequest, reply: FastifyLikeReply, done: (error?: Error) => void): void {
    let hijacked = false;
    // Fastify must be told before anything is written to the raw response, or it answers too.
    run(request.raw, reply.raw, () => done(), () => {
      if (!hijacked) reply.hijack();
      hijacked = true;
    });
  }

  const guard: MfaGuard = Object.assign((req: IncomingMessage, res: ServerResponse, next: NextFunction): void => run(req, res, next, () => {}), {
    fastifyHook,
    core,
    close,
  });
  return guard;
}

/**
 * Express rewrites `req.url` under a mount path; the policy is about the URL the client sent
 * (`originalUrl`), so that is what gets canonicalised.
 */
function originalRequest(req: IncomingMessage): RequestSource {
  const originalUrl = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
  if (typeof originalUrl !== 'string' || originalUrl === req.url) return req;
  return { method: req.method, url: originalUrl, httpVersion: req.httpVersion, rawHeaders: req.rawHeaders, socket: req.socket };
}

/**
 * The application routes on the target the guard decided on: the normalised one (`%61` → `a`), so
 * a rule on `/admin` cannot be missed by the guard and then hit by the application's router.
 */
function presentAsJudged(req: IncomingMessage, view: RequestView): void {
  const judged = view.path + view.search;
  const mounted = req as IncomingMessage & { originalUrl?: unknown };
  if (typeof mounted.originalUrl === 'string' && mounted.originalUrl !== req.url) {
    // Express cut the mount path off req.url at a segment boundary; normalising is per escape, so
    // the rest normalises to the rest of the judged target.
    mounted.originalUrl = judged;
    req.url = normalizeTarget(req.url ?? '/');
    return;
  }
  req.url = judged;
  if (typeof mounted.originalUrl === 'string') mounted.originalUrl = judged;
}
