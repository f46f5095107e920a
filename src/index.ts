/**
 * Public API of the `mfa-gateway` package (`exports["."]`). The CLI is the `mfa-gateway` bin;
 * everything else under dist/src is internal and may change without notice.
 */

// Front door 3: the Node middleware (node:http, Express, Fastify).
export {
  createMfaGuard,
  GuardOptionError,
  type FastifyLikeReply,
  type FastifyLikeRequest,
  type GuardIdentity,
  type GuardOptionErrorCode,
  type MfaGuard,
  type MfaGuardOptions,
  type NextFunction,
} from './doors/middleware/guard.js';

// Front door 1 (and 2, its forward-auth endpoints): the gateway as a library.
export { startGateway, type Gateway, type GatewayOptions } from './server/gateway.js';
export type { GatewayCore, ReloadResult } from './core/gateway-core.js';

// Shared contracts.
export type { Decision, Identity, IssuedSession, MfaMethod } from './decision/types.js';
export { GatewayError } from './errors/gateway-error.js';
export { PROBLEMS, renderProblem, type Problem, type ProblemCode, type RenderedProblem } from './errors/problems.js';
export type { GatewayPolicy, PolicyName, Route } from './config/types.js';
export type { RequestView } from './request/view.js';
export { createLogger, type Logger } from './log/logger.js';
export type { Clock } from './time/clock.js';
