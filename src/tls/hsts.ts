/** HTTP Strict Transport Security (RFC 6797) for the TLS listener's answers. */
export interface HstsSettings {
  readonly maxAgeSeconds: number;
  readonly includeSubdomains: boolean;
  readonly preload: boolean;
}

/** The `Strict-Transport-Security` value (RFC 6797 §6.1). */
export function hstsHeaderValue(hsts: HstsSettings): string {
  return `max-age=${hsts.maxAgeSeconds}${hsts.includeSubdomains ? '; includeSubDomains' : ''}${hsts.preload ? '; preload' : ''}`;
}
