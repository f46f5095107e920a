/**
 * The one canonical view of a request. The path here is matched AND forwarded byte for byte;
 * nothing downstream re-parses the raw target.
 */
/** The key of a view's raw headers (see RequestView). */
export const RAW_HEADERS: unique symbol = Symbol('mfa-gateway.rawHeaders');

export interface RequestView {
  readonly method: string;
  /** Percent-encoded path exactly as received (already checked to be unambiguous), e.g. `/orders/a%20b`. */
  readonly path: string;
  /** Raw query string including the leading `?`, or '' when absent. */
  readonly search: string;
  /** Lower-cased, trailing dot and default port dropped; '' when the request carried none (HTTP/1.0). */
  readonly host: string;
  /** 'http' | 'https' as seen by the client (from a trusted proxy's X-Forwarded-Proto, else the socket). */
  readonly proto: 'http' | 'https';
  /** The client address (from a trusted proxy chain, else the socket peer). */
  readonly clientIp: string;
  /** X-Forwarded-For to send upstream: the trusted chain received plus the socket peer, or only the peer. */
  readonly forwardedFor: string;
  /** X-Forwarded-Host to send upstream: the Host as received (or a trusted proxy's X-Forwarded-Host). */
  readonly forwardedHost: string;
  /** The whole Authorization header value (`Bearer …`), undefined when none was sent. */
  readonly authorization?: string;
  readonly mfaToken?: string;
  readonly sessionToken?: string;
  /** The gateway's id for this request: a trusted proxy's X-Request-Id when well-formed, else a new UUID. */
  readonly requestId: string;
  /** A well-formed X-Request-Id sent by an untrusted peer: logged beside ours, never used as ours. */
  readonly clientRequestId?: string;
  /** The socket peer is in the trust list the request was read with (its forwarding headers were believed). */
  readonly peerTrusted: boolean;
  /**
   * The request's raw header list (Node's rawHeaders), for risk signals read only on MFA routes.
   * Under a symbol: it holds the credentials, and JSON or a logger serialising a view skips symbols.
   */
  readonly [RAW_HEADERS]?: readonly string[];
}
