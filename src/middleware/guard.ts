import type { IncomingMessage, ServerResponse } from 'node:http';
import { identityHeaders, isIdentityHeaderName } from '../authz/identity.js';
import type { Identity } from '../decision/types.js';
import { problem } from '../errors/problems.js';
import type { Logger } from '../log/logger.js';
import type { RequestSource } from '../request/canonical.js';
import { createGatewayCore, type GatewayCore } from '../server/core.js';
import { sendProblem } from '../server/respond.js';
import { admitRequest } from '../server/admit.js';
import type { Clock } from '../time/clock.js';

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

export type GuardOptionErrorCode = 'invalid_option';

/** Thrown by `createMfaGuard` for a bad option; `option` names it. */
export class GuardOptionError extends Error {
  readonly code: GuardOptionErrorCode = 'invalid_option';
  readonly option: string;
  constructor(option: string, message: string) {
    super(`createMfaGuard: option "${option}" ${message}`);
    this.name = 'GuardOptionError';
    this.option = option;
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

/** Client headers the application must never see: the two credentials, URL overrides, the request id (the guard sets its own). */
const STRIPPED: ReadonlySet<string> = new Set(['x-mfa-token', 'x-session-token', 'x-original-url', 'x-rewrite-url', 'x-request-id']);

/** …plus identity headers in any spelling: the application believes only the ones the guard sets. */
function isStripped(lowerName: string): boolean {
  return STRIPPED.has(lowerName) || isIdentityHeaderName(lowerName);
}

/** Removes headers from both views Node keeps of them (`rawHeaders` feeds frameworks that read it). */
function removeHeaders(req: IncomingMessage, drop: (lowerName: string) => boolean): void {
  const raw = req.rawHeaders;
  let kept = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (drop(raw[i]!.toLowerCase())) continue;
    raw[kept] = raw[i]!;
    raw[kept + 1] = raw[i + 1]!;
    kept += 2;
  }
  raw.length = kept;
  for (const name of Object.keys(req.headers)) if (drop(name)) delete req.headers[name];
}

function setHeaders(req: IncomingMessage, headers: Record<string, string>): void {
  for (const [name, value] of Object.entries(headers)) {
    req.headers[name] = value;
    req.rawHeaders.push(name, value);
  }
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
    const admitted = await admitRequest(core, req, res, { door: 'guard', source: originalRequest(req), beforeAnswer: takeOver });
    if (admitted === undefined) return;
    const { view, decision } = admitted;

    // The application is the backend: it sees what the reverse proxy would forward, nothing a client could forge.
    const forwardAuthorization = decision.route.forwardAuthorization;
    removeHeaders(req, (name) => isStripped(name) || (!forwardAuthorization && name === 'authorization'));
    setHeaders(req, identityHeaders(decision.identity, view.requestId));
    req.mfaIdentity = decision.identity === undefined ? undefined : { ...decision.identity, requestId: view.requestId, route: decision.route.name };
    res.setHeader('x-request-id', view.requestId);
    if (decision.session !== undefined) {
      // Returned to the client only; the application never sees a session token.
      res.setHeader('x-session-token', decision.session.token);
      res.setHeader('x-session-expires', String(decision.session.expiresAt));
    }
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
