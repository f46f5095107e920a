import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { admit, Pass, type Admission } from '../../admission/admit.js';
import { clientAnswerHeaders } from '../../contract/headers.js';
import type { GatewayCore } from '../../core/gateway-core.js';
import type { Allow } from '../../decision/types.js';
import type { ForwardTarget } from '../../forward/forwarder.js';
import type { RequestView } from '../../request/view.js';
import { problem, PROBLEMS } from '../../errors/problems.js';
import { sendProblem, writeProblemToSocket } from '../../http/respond.js';
import { hasBody } from '../../request/body.js';
import { serveReserved } from '../reserved.js';
import { earlyAuthRequestHeaders } from '../forward-auth/door.js';

/**
 * Front door 1: the reverse proxy, for ordinary requests and WebSocket upgrades. Both walk the
 * admission path; an allowed request is forwarded (or tunnelled) with the header contract, and a
 * session minted on the way goes back to the client on the response, the 101 included.
 */
export interface ProxyDoor {
  /**
   * `expectsContinue`: the client sent `Expect: 100-continue` and waits (Node's `checkContinue`).
   * It is told to send its body only once the request is allowed; a refused request gets its
   * final status at once and its body is never read.
   *
   * A promise only when the answer waits on I/O (a store read, a reserved endpoint); decided from
   * memory, the request is forwarded before this returns, with no promise at all. A throw or a
   * rejection is a bug, for the caller to answer as one.
   */
  handleRequest(req: IncomingMessage, res: ServerResponse, expectsContinue?: boolean): Promise<void> | undefined;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
}

export function createProxyDoor(core: GatewayCore, options: { readonly draining: () => boolean }): ProxyDoor {
  function handleRequest(req: IncomingMessage, res: ServerResponse, expectsContinue = false): Promise<void> | undefined {
    const pass = new Pass(core);
    pass.settleWhenClosed(res);
    if (options.draining()) res.setHeader('connection', 'close');
    // Decided from memory, the request reaches the upstream pool in the turn that read it (src/async/awaitable.ts).
    const admitted = admit(core, pass, req, { door: 'proxy' });
    if (admitted instanceof Promise) return admitted.then((admission) => answer(req, res, expectsContinue, pass, admission));
    return answer(req, res, expectsContinue, pass, admitted);
  }

  function answer(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean, pass: Pass, admission: Admission): Promise<void> | undefined {
    if (admission.kind === 'refused') {
      // A refused request's body is never wanted; closing is cheaper and safer than draining it.
      // An ambiguous request may hide a second one in its body: never read on from this socket.
      sendProblem(res, admission.problem, admission.requestId, earlyAuthRequestHeaders(req, pass, admission.problem), admission.ambiguous || hasBody(req));
      return;
    }
    const { view, decision } = admission;
    if (decision.endpoint !== undefined) {
      if (expectsContinue) res.writeContinue();
      return serveReserved(core, pass, req, res, view, { ...decision, endpoint: decision.endpoint });
    }
    const route = decision.route;
    const responseHeaders = clientAnswerHeaders(decision);
    if (route.upstream === undefined) {
      sendProblem(res, problem('forbidden', 'this route has no upstream'), view.requestId, responseHeaders, hasBody(req));
      return;
    }
    if (expectsContinue) res.writeContinue();
    pass.runtime.forwarder.forward(req, res, forwardTarget(pass, view, decision, route.upstream, responseHeaders));
  }

  async function handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    const pass = new Pass(core);
    let status = 101;
    socket.once('close', () => pass.settle(status));
    socket.on('error', () => socket.destroy());
    const admitted = admit(core, pass, req, { door: 'websocket' });
    const admission = admitted instanceof Promise ? await admitted : admitted;
    if (admission.kind === 'refused') {
      status = PROBLEMS[admission.problem.code].status;
      writeProblemToSocket(socket, admission.problem, admission.requestId);
      return;
    }
    const { view, decision } = admission;
    const route = decision.route;
    const responseHeaders = clientAnswerHeaders(decision);
    // The reserved prefix never upgrades, and only routes that say so tunnel WebSockets.
    if (decision.endpoint !== undefined || !route.websocket || route.upstream === undefined || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      const refusal = problem('invalid_request', 'protocol upgrade is not allowed on this route');
      status = PROBLEMS[refusal.code].status;
      writeProblemToSocket(socket, refusal, view.requestId, responseHeaders);
      return;
    }
    pass.runtime.forwarder.upgrade(req, socket, head, forwardTarget(pass, view, decision, route.upstream, responseHeaders));
  }

  return { handleRequest, handleUpgrade };
}

/** What the forwarder needs of an allowed request: where to, and the header contract's inputs. */
function forwardTarget(pass: Pass, view: RequestView, decision: Allow, upstream: string, responseHeaders: Readonly<Record<string, string>> | undefined): ForwardTarget {
  return {
    upstream,
    view,
    identity: decision.identity,
    forwardAuthorization: decision.route.forwardAuthorization,
    routeName: decision.route.name,
    untrustedPeerHeaders: pass.runtime.policy.untrustedPeerHeaders,
    responseHeaders,
  };
}
