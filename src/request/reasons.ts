import { problem, type Problem } from '../errors/problems.js';

/**
 * Why a request was refused before routing. A closed set: it is the `reason` label of
 * `mfa_gateway_rejected_requests_total`, so it must stay bounded.
 */
export type RejectReason =
  // request line
  | 'unsupported_http_version'
  | 'invalid_method'
  | 'method_override'
  | 'authority_form'
  | 'asterisk_form'
  | 'absolute_form_invalid'
  | 'absolute_form_host_mismatch'
  | 'authority_without_path'
  | 'invalid_target'
  // path and query
  | 'fragment'
  | 'dot_segment'
  | 'encoded_slash'
  | 'encoded_backslash'
  | 'backslash'
  | 'empty_segment'
  | 'path_parameter'
  | 'nul'
  | 'invalid_character'
  | 'encoded_control_character'
  | 'invalid_percent_encoding'
  | 'invalid_utf8'
  | 'double_encoding'
  | 'lookalike_character'
  // Host
  | 'duplicate_host'
  | 'invalid_host'
  // credentials
  | 'duplicate_authorization'
  | 'duplicate_mfa_token'
  | 'duplicate_session_token'
  | 'empty_authorization'
  | 'empty_session_token'
  | 'credential_header_spelling'
  | 'invalid_credential_character'
  | 'authorization_too_large'
  | 'mfa_token_too_large'
  | 'session_token_too_large'
  // message framing
  | 'transfer_encoding_not_chunked'
  | 'multiple_transfer_encoding'
  | 'transfer_encoding_http10'
  | 'transfer_encoding_with_content_length'
  | 'duplicate_content_length'
  | 'invalid_content_length'
  // trusted proxy headers and the peer
  | 'invalid_forwarded_for'
  | 'invalid_forwarded_proto'
  | 'invalid_forwarded_host'
  | 'unknown_peer';

/** Stable texts: they name the rule that was broken and never echo the bytes that broke it. */
const DETAILS: Readonly<Record<RejectReason, string>> = {
  unsupported_http_version: 'only HTTP/1.0 and HTTP/1.1 are accepted',
  invalid_method: 'the request method is not a valid token',
  method_override: 'method override headers (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override) are not accepted',
  authority_form: 'CONNECT (authority-form targets) is not accepted',
  asterisk_form: 'the asterisk-form target "*" is not accepted',
  absolute_form_invalid: 'an absolute-form target must be http or https with a valid host and no user information',
  absolute_form_host_mismatch: 'the absolute-form target names a different host than the Host header',
  authority_without_path: 'the absolute-form target must have a "/" right after its authority',
  invalid_target: 'the request target must start with "/"',
  fragment: 'the request target must not contain "#"',
  dot_segment: 'the path contains a "." or ".." segment (in some encoding)',
  encoded_slash: 'the path contains an encoded slash (%2F)',
  encoded_backslash: 'the path contains an encoded backslash (%5C)',
  backslash: 'the path contains a backslash',
  empty_segment: 'the path contains an empty segment ("//")',
  path_parameter: 'the path contains a ";" path parameter (raw or %3B)',
  nul: 'the request target contains a NUL byte (raw or %00)',
  invalid_character: 'the request target contains a space, a control character or a byte outside printable ASCII',
  encoded_control_character: 'the path contains a percent-encoded control character',
  invalid_percent_encoding: 'the path contains a "%" not followed by two hexadecimal digits',
  invalid_utf8: 'the decoded path is not valid UTF-8 (overlong or invalid sequence)',
  double_encoding: 'the path contains a double-encoded ".", "/" or "\\" (%252E, %252F, %255C)',
  lookalike_character: 'the path contains a character that normalises (NFKC) to ".", "/" or "\\"',
  duplicate_host: 'the request carries more than one Host header',
  invalid_host: 'the Host header is not a valid host[:port]',
  duplicate_authorization: 'the request carries more than one Authorization header',
  duplicate_mfa_token: 'the request carries more than one X-MFA-Token header',
  duplicate_session_token: 'the request carries more than one X-Session-Token header',
  empty_authorization: 'the Authorization header is empty',
  empty_session_token: 'the X-Session-Token header is empty',
  credential_header_spelling: 'credential headers must be spelled X-MFA-Token and X-Session-Token (with hyphens)',
  invalid_credential_character: 'a credential header contains a byte outside printable ASCII',
  authorization_too_large: 'the Authorization header is too large',
  mfa_token_too_large: 'the X-MFA-Token header is too large',
  session_token_too_large: 'the X-Session-Token header is too large',
  transfer_encoding_not_chunked: 'Transfer-Encoding must be exactly "chunked"',
  multiple_transfer_encoding: 'the request carries more than one Transfer-Encoding header',
  transfer_encoding_http10: 'Transfer-Encoding is not accepted on HTTP/1.0',
  transfer_encoding_with_content_length: 'the request carries both Transfer-Encoding and Content-Length',
  duplicate_content_length: 'the request carries more than one Content-Length header',
  invalid_content_length: 'Content-Length must be a decimal number',
  invalid_forwarded_for: 'X-Forwarded-For from the trusted proxy is not a list of IP addresses',
  invalid_forwarded_proto: 'X-Forwarded-Proto from the trusted proxy must be a single http or https',
  invalid_forwarded_host: 'X-Forwarded-Host from the trusted proxy must be a single valid host[:port]',
  unknown_peer: 'the client address is unknown',
};

const TOO_LARGE: ReadonlySet<RejectReason> = new Set<RejectReason>(['authorization_too_large', 'mfa_token_too_large', 'session_token_too_large']);

/** Every reason, in declaration order (for pre-registering metric labels and for docs). */
export const REJECT_REASONS: readonly RejectReason[] = Object.freeze(Object.keys(DETAILS) as RejectReason[]);

export interface Rejection {
  readonly ok: false;
  readonly problem: Problem;
  readonly reason: RejectReason;
}

/**
 * One frozen result per reason, built once: a refusal allocates nothing per request. Oversized
 * credentials are 431 `header_too_large`; everything else is 400 `invalid_request`.
 */
export const REJECTIONS: Readonly<Record<RejectReason, Rejection>> = Object.freeze(
  Object.fromEntries(
    REJECT_REASONS.map((reason) => [
      reason,
      Object.freeze({ ok: false, reason, problem: Object.freeze(problem(TOO_LARGE.has(reason) ? 'header_too_large' : 'invalid_request', DETAILS[reason])) }),
    ]),
  ) as Record<RejectReason, Rejection>,
);
