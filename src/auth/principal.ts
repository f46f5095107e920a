/** Who a valid bearer token says the caller is; produced by the JWT verifier, read by decide(). */
export interface Principal {
  readonly subject: string;
  readonly scopes: ReadonlySet<string>;
  readonly roles: ReadonlySet<string>;
  /** Seconds since epoch. */
  readonly expiresAt: number;
  /** `amr` and `auth_time` as the IdP asserted them (used when accept_idp_mfa is on). */
  readonly amr: readonly string[];
  readonly authTime?: number;
  /** SHA-256 of the token (hex), for logs and cache keys — never the token itself. */
  readonly tokenHash: string;
}
