/**
 * The policy file after validation: every default applied, durations in milliseconds, regexes
 * compiled, frozen. Code past the loader only ever sees this shape, and every value in it is
 * within the loader's bounds (the JSON Schema's for numbers and strings, bounds.ts for durations):
 * code that receives a GatewayPolicy, or a part of one, relies on them and does not check again.
 */
import type { Route } from '../routes/types.js';
import type { TlsCredentials, TlsMinVersion } from '../tls/credentials.js';
import type { HstsSettings } from '../tls/hsts.js';

// Route types live with route compilation and matching; re-exported because the policy holds the
// routes and most code reads the policy's types from here.
export type { PolicyName, Route, RouteMatch, RouteRateLimit } from '../routes/types.js';

export type JwtAlgorithm = 'RS256' | 'RS384' | 'RS512' | 'PS256' | 'PS384' | 'PS512' | 'ES256' | 'ES384' | 'ES512' | 'EdDSA' | 'HS256' | 'HS384' | 'HS512';
export type OtpAlgorithm = 'SHA1' | 'SHA256' | 'SHA512';

export interface ListenConfig {
  readonly host: string;
  readonly port: number;
}

/** `listen.tls`: the public listener speaks HTTPS. */
export interface TlsConfig {
  /** Absolute paths (relative ones in the file are resolved against the policy file's directory). */
  readonly certFile: string;
  readonly keyFile: string;
  readonly minVersion: TlsMinVersion;
  /** Sent on every HTTP response of the TLS listener; absent: no Strict-Transport-Security header. */
  readonly hsts?: HstsSettings;
  /** The pair as read and checked when this policy was loaded; a reload reads the files again. */
  readonly credentials: TlsCredentials;
}

export interface PublicListenConfig extends ListenConfig {
  readonly tls?: TlsConfig;
}

export interface AdminConfig extends ListenConfig {
  /** Bearer token for the admin API; metrics/healthz/readyz need none. */
  readonly token?: string;
}

export interface JwtConfig {
  readonly issuer: string;
  readonly audience: readonly string[];
  readonly algorithms: readonly JwtAlgorithm[];
  readonly clockToleranceMs: number;
  /** One of these three key sources is set. */
  readonly jwksUri?: string;
  /** PEM (SPKI) or JWK JSON strings, loaded from `keys:`. */
  readonly staticKeys?: readonly string[];
  /** HS256 secret for the demo issuer only. */
  readonly hmacSecret?: string;
  readonly jwks: {
    readonly cooldownMs: number;
    readonly timeoutMs: number;
    readonly cacheMaxAgeMs: number;
  };
  /** Validated-token cache. */
  readonly cache: { readonly maxEntries: number; readonly maxTtlMs: number };
  readonly maxTokenBytes: number;
  readonly scopeClaim: string;
  readonly rolesClaim: string;
  readonly acceptIdpMfa: boolean;
}

export interface TotpConfig {
  readonly algorithm: OtpAlgorithm;
  readonly digits: 6 | 8;
  readonly periodSeconds: number;
  readonly window: number;
  /** How long a TOTP factor satisfies routes after it was confirmed; undefined: for ever. */
  readonly maxAgeMs?: number;
}

export type UserVerification = 'required' | 'preferred' | 'discouraged';

/** `mfa.webauthn`: security keys and passkeys. Absent from the policy: WebAuthn is off. */
export interface WebAuthnConfig {
  /** The relying party id credentials are scoped to: a domain every origin is, or is under. */
  readonly rpId: string;
  /** Shown by the browser and the authenticator. */
  readonly rpName: string;
  /** Exact origins (scheme://host[:port]) a ceremony may come from. */
  readonly origins: readonly string[];
  /** Asked for in the options and required at verification alike when `required`. */
  readonly userVerification: UserVerification;
  /** How long a ceremony's challenge lives (and the browser's timeout). */
  readonly timeoutMs: number;
  /** How long a credential satisfies routes after it was registered, by kind. */
  readonly maxAgeMs: { readonly securityKey: number; readonly platform: number };
}

export interface MfaConfig {
  readonly issuer: string;
  readonly totp: TotpConfig;
  readonly hotp: { readonly lookAhead: number; readonly maxAgeMs?: number };
  readonly webauthn?: WebAuthnConfig;
  /** `maxPerSubject`: live sessions one subject may hold; issuing one more evicts the oldest. */
  readonly session: { readonly ttlMs: number; readonly maxPerSubject: number };
  readonly lockout: { readonly maxFailures: number; readonly findTimeMs: number; readonly backoffMs: readonly number[] };
  /**
   * Failed codes counted per client address across all users: `maxFailures` within `findTimeMs`
   * block the address's code attempts for `blockMs`, so one address cannot try a few codes on
   * each of many users, each under that user's own lockout.
   */
  readonly ipThrottle: { readonly enabled: boolean; readonly maxFailures: number; readonly findTimeMs: number; readonly blockMs: number };
  readonly recoveryCodes: { readonly count: number };
  readonly enrollment: { readonly pendingTtlMs: number };
  /** Where the gateway's own endpoints live on the public listener; never forwarded. */
  readonly pathPrefix: string;
  /** Codes sent by e-mail or SMS (compiled in config/oob.ts). */
  readonly codes: CodesConfig;
  readonly email: EmailConfig;
  readonly sms: SmsConfig;
  readonly backupContact: { readonly enabled: boolean };
}

/** A send quota: at most `sends` per window of `perMs`. */
export interface SendLimit {
  readonly sends: number;
  readonly perMs: number;
}

export interface CodesConfig {
  readonly ttlMs: number;
  /** Wrong attempts a sent code survives. */
  readonly maxAttempts: number;
  /** The message template: {code}, {issuer}, {minutes}. */
  readonly message: string;
  readonly sendLimits: { readonly perUser: SendLimit; readonly perDestination: SendLimit };
}

export interface SmtpConfig {
  readonly host: string;
  readonly port: number;
  /** starttls: required; tls: implicit TLS; none: plain text (loopback hosts only). */
  readonly security: 'starttls' | 'tls' | 'none';
  readonly username?: string;
  /** From password_env: never logged, never in an error. */
  readonly password?: string;
  readonly timeoutMs: number;
}

export interface EmailConfig {
  /** E-mail codes as a second factor (off by default: NIST SP 800-63B). */
  readonly factor: boolean;
  readonly from?: string;
  readonly subject: string;
  /** Absent: no e-mail is sent at all. */
  readonly smtp?: SmtpConfig;
}

export type SmsProviderConfig =
  | {
      readonly kind: 'http';
      readonly url: string;
      readonly authHeader: string;
      /** From auth_env: never logged, never in an error. */
      readonly authValue?: string;
      readonly contentType: 'application/json' | 'application/x-www-form-urlencoded';
      /** Template: {to} and {message}. */
      readonly body: string;
      readonly timeoutMs: number;
    }
  | {
      readonly kind: 'twilio';
      readonly apiUrl: string;
      readonly accountSid: string;
      /** From auth_token_env: never logged, never in an error. */
      readonly authToken: string;
      readonly from?: string;
      readonly messagingServiceSid?: string;
      readonly timeoutMs: number;
    };

export interface SmsConfig {
  /** SMS codes as a second factor, once a provider is set. */
  readonly factor: boolean;
  /** Absent: no SMS is sent at all. */
  readonly provider?: SmsProviderConfig;
}

/** TLS to a store server; PEM contents were read and checked when the policy was loaded. */
export interface StoreTlsConfig {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly serverName?: string;
  readonly verify: boolean;
}

export interface PostgresConfig {
  /** Holds credentials: never logged, never in an error. */
  readonly url: string;
  readonly poolMax: number;
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly statementTimeoutMs: number;
  readonly tls?: StoreTlsConfig;
}

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type RedisTopology =
  | { readonly mode: 'single' }
  | { readonly mode: 'sentinel'; readonly master: string; readonly nodes: readonly HostPort[] }
  | { readonly mode: 'cluster'; readonly nodes: readonly HostPort[] };

export interface RedisConfig {
  /** Holds credentials: never logged, never in an error. With sentinel or cluster: credentials and db only. */
  readonly url?: string;
  readonly topology: RedisTopology;
  readonly keyPrefix: string;
  readonly connectTimeoutMs: number;
  readonly commandTimeoutMs: number;
  readonly tls?: StoreTlsConfig;
}

export type StoreConfig =
  | { readonly kind: 'sqlite'; readonly path: string }
  | { readonly kind: 'shared'; readonly migrate: 'on_start' | 'manual'; readonly postgres: PostgresConfig; readonly redis: RedisConfig };

export interface KeysConfig {
  /** A key file (`<kid> <base64 32 bytes> <YYYY-MM-DD> [primary]` per line, see docs/keys.md) and/or an environment variable holding the same lines. */
  readonly file?: string;
  readonly env?: string;
  readonly rotationMs: number;
}

export interface RetryConfig {
  readonly max: number;
  readonly initialMs: number;
  readonly multiplier: number;
  readonly jitterMs: number;
}

export interface UpstreamConfig {
  readonly name: string;
  /** Origin only (scheme://host:port), plus an optional base path without a trailing slash. */
  readonly url: URL;
  readonly pool: { readonly connections: number; readonly keepAliveMs: number; readonly keepAliveMaxMs: number };
  readonly timeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly retries: RetryConfig;
}

/** `events:` (issue 13): the audit trail, risk signals and rules, alerts by webhook and e-mail. */
export interface EventsConfig {
  readonly audit: { readonly enabled: boolean; readonly retentionMs: number; readonly flushIntervalMs: number };
  readonly signals: {
    /** Lower-case; believed only from trusted_proxies. */
    readonly countryHeader?: string;
    /** Absolute path of a MaxMind-format database. */
    readonly geoipDatabase?: string;
    /** Lower-case. */
    readonly deviceHeader: string;
  };
  readonly rules: {
    readonly countryChange: boolean;
    readonly newDevice: boolean;
    readonly recoveryCodeUsed: boolean;
    readonly lockout: boolean;
    readonly twoCountries: { readonly enabled: boolean; readonly windowMs: number };
    readonly ipFailures: { readonly enabled: boolean; readonly users: number; readonly windowMs: number };
    readonly backupSwitching: { readonly enabled: boolean; readonly switches: number; readonly windowMs: number };
  };
  readonly notify: { readonly adminEmail?: string };
  readonly delivery: { readonly timeoutMs: number; readonly retryWindowMs: number; readonly pollIntervalMs: number };
  /** `secret` from secret_env: never logged, never in an error, never in a payload. */
  readonly webhooks: readonly { readonly name: string; readonly url: string; readonly secret: string; readonly events?: readonly string[] }[];
}

/** `setup.oidc`: the setup page's sign-in client at the auth.jwt issuer. */
export interface SetupOidcConfig {
  readonly clientId: string;
  /** From client_secret_env; undefined: a public client (PKCE only). Never logged. */
  readonly clientSecret?: string;
  readonly scopes: readonly string[];
  /** RFC 8707 resource indicator for the access token. */
  readonly resource?: string;
}

/** `setup:` — how people reach the setup page without handling a token (docs/setup-page.md). */
export interface SetupConfig {
  /** scheme://host[:port] browsers use; invite links and the redirect URI are built on it. */
  readonly publicOrigin?: string;
  /** Absent: no sign-in, invite links only. */
  readonly oidc?: SetupOidcConfig;
}

export interface GatewayPolicy {
  readonly source: string;
  readonly listen: PublicListenConfig;
  readonly admin: AdminConfig;
  /** CIDRs whose X-Forwarded-* / Forwarded headers are believed on the proxy path. Empty by default. */
  readonly trustedProxies: readonly string[];
  /** Lower-case, `_`/`.` written as `-`: removed from requests whose peer is not in `trustedProxies`. */
  readonly untrustedPeerHeaders: ReadonlySet<string>;
  readonly auth: { readonly jwt: JwtConfig };
  readonly mfa: MfaConfig;
  readonly events: EventsConfig;
  readonly store: StoreConfig;
  readonly keys: KeysConfig;
  readonly upstreams: ReadonlyMap<string, UpstreamConfig>;
  readonly routes: readonly Route[];
  readonly default: 'deny';
  readonly limits: {
    readonly maxHeaderBytes: number;
    /** Requests waiting for an upstream connection past this are answered 503 at once. */
    readonly maxQueued: number;
    readonly drainTimeoutMs: number;
    /** Total connections across every upstream pool. */
    readonly maxUpstreamConnections: number;
  };
  /** Forward-auth endpoints read X-Original-* / X-Forwarded-* only from these peers. */
  readonly authz: { readonly trustedProxies: readonly string[] };
  readonly setup: SetupConfig;
  /** The NTP server this host's clock is checked against; undefined: not checked. */
  readonly clock?: ClockConfig;
}

export interface ClockConfig {
  /** Host name or IP address (IPv6 without brackets). */
  readonly server: { readonly host: string; readonly port: number };
  readonly intervalMs: number;
  readonly timeoutMs: number;
}
