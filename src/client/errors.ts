/**
 * What the client throws. One base class; each subclass adds only what its callers read. Messages
 * never carry a bearer token, a code or a session token: only statuses, problem codes and the
 * gateway's `detail`, which the gateway's own contract keeps free of secrets.
 *
 * `Symbol.for` brand, as the gateway's errors do: `MfaClientError.is(x)` works across two copies of
 * the package (an app's and a plugin's), where `instanceof` would not.
 */

const BRAND = Symbol.for('mfa-gateway.client.error');

/** Stable codes of failures the client itself detects (problem answers carry the server's code instead). */
export type MfaClientErrorCode =
  | 'ERR_MFA_CLIENT_OPTION'
  | 'ERR_MFA_CLIENT_REQUEST'
  | 'ERR_MFA_CLIENT_CREDENTIAL'
  | 'ERR_MFA_CLIENT_NETWORK'
  | 'ERR_MFA_CLIENT_BODY_NOT_REPLAYABLE'
  | 'ERR_MFA_CLIENT_PROTOCOL';

export class MfaClientError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }

  /** True for any error this client threw, from any copy of the package. */
  static is(value: unknown): value is MfaClientError {
    return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[BRAND] === true;
  }
}
// On the prototype, so it stays out of JSON and inspect output.
Object.defineProperty(MfaClientError.prototype, BRAND, { value: true });

/** A bad option given to `createMfaClient`, thrown at creation; `option` names it. */
export class MfaOptionError extends MfaClientError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('ERR_MFA_CLIENT_OPTION', `${option}: ${message}`);
    this.option = option;
  }
}

/**
 * The problem codes the gateway answers with (docs/errors.md), plus any string: a backend behind
 * the gateway may answer problem+json with codes of its own.
 */
export type ProblemCode =
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'mfa_required'
  | 'mfa_invalid'
  | 'step_up_required'
  | 'mfa_locked'
  | 'rate_limited'
  | 'mfa_not_enrolled'
  | 'mfa_method_not_accepted'
  | 'factor_expired'
  | 'session_invalid'
  | 'forbidden'
  | 'route_not_found'
  | 'header_too_large'
  | 'method_not_allowed'
  | 'not_found'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'delivery_failed'
  | 'overloaded'
  | 'store_unavailable'
  | 'internal_error'
  | (string & {});

/** An `application/problem+json` answer (RFC 9457) the client did not resolve itself. */
export class MfaProblemError extends MfaClientError {
  declare readonly code: ProblemCode;
  readonly status: number;
  readonly detail: string;
  readonly title: string | undefined;
  readonly type: string | undefined;
  readonly hint: string | undefined;
  /** The gateway's `request_id`, to quote to an operator. */
  readonly requestId: string | undefined;
  /** Seconds, from `Retry-After` (429 / 503), when the answer had one the client did not wait out. */
  readonly retryAfterSeconds: number | undefined;

  constructor(fields: {
    status: number;
    code: ProblemCode;
    detail: string;
    title?: string | undefined;
    type?: string | undefined;
    hint?: string | undefined;
    requestId?: string | undefined;
    retryAfterSeconds?: number | undefined;
  }) {
    super(fields.code, `${fields.status} ${fields.code}: ${fields.detail}`);
    this.status = fields.status;
    this.detail = fields.detail;
    this.title = fields.title;
    this.type = fields.type;
    this.hint = fields.hint;
    this.requestId = fields.requestId;
    this.retryAfterSeconds = fields.retryAfterSeconds;
  }
}

/**
 * The request needed a second try (a code, a retry) but its body was a stream larger than the
 * client buffers, so it cannot be sent again. `cause` is what the first try got. Open a session
 * first (`client.verify()`), or pass the body as a string, bytes or a Blob.
 */
export class MfaBodyNotReplayableError extends MfaClientError {
  constructor(cause: unknown) {
    super('ERR_MFA_CLIENT_BODY_NOT_REPLAYABLE', 'the request body is a stream that was already sent and cannot be sent again; open a session first (verify()) or pass a replayable body', { cause });
  }
}
