/**
 * The setup page's two cookies, written and read in one place. Neither ever reaches a backend
 * (contract/headers.ts drops them from a forwarded Cookie header; their paths keep browsers from
 * sending them outside the setup page in the first place) and neither is ever logged.
 *
 * - `mfa_setup`: the setup session (an opaque random token; the store keeps its hash). SameSite=Strict,
 *   Path=<prefix>setup, so only the page's own calls carry it.
 * - `mfa_setup_stepup`: see STEP_UP_COOKIE; same attributes as the session cookie.
 * - `mfa_setup_login`: binds an OIDC sign-in to the browser that started it (login CSRF). SameSite=Lax
 *   because the issuer sends the browser back with a cross-site top-level navigation, which Strict
 *   cookies do not ride; Path=<prefix>setup/callback, so it goes nowhere else.
 */

export const SESSION_COOKIE = 'mfa_setup';
export const LOGIN_COOKIE = 'mfa_setup_login';
/**
 * `mfa_setup_stepup`: the MFA session a passkey confirmation opened, held for the page's next calls
 * as X-Session-Token would be — in an HttpOnly cookie, so the page's script never holds it.
 */
export const STEP_UP_COOKIE = 'mfa_setup_stepup';
/** What every cookie of ours starts with: what the forwarder strips. */
export const SETUP_COOKIE_PREFIX = 'mfa_setup';

/** The shape of every token we mint (32 random bytes, base64url): anything else is refused unread. */
export const TOKEN_SHAPE = /^[A-Za-z0-9_-]{43}$/;

export interface CookieOptions {
  readonly path: string;
  readonly sameSite: 'Strict' | 'Lax';
  /** Seconds; 0 deletes the cookie. */
  readonly maxAge: number;
  /** Only over https (a TLS listener, or a trusted proxy that says the client used https). */
  readonly secure: boolean;
}

export function setCookie(name: string, value: string, options: CookieOptions): string {
  return [`${name}=${value}`, `Path=${options.path}`, `Max-Age=${options.maxAge}`, 'HttpOnly', `SameSite=${options.sameSite}`, ...(options.secure ? ['Secure'] : [])].join('; ');
}

/**
 * The value of cookie `name` in the request's Cookie headers, when it is sent exactly once and has
 * the shape of our tokens. Two cookies of the same name (one planted for a wider path by a sibling
 * subdomain, say) are ambiguous: refused, like the gateway refuses duplicate credentials elsewhere.
 */
export function readTokenCookie(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  const found: string[] = [];
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq === -1) continue;
      if (part.slice(0, eq).trim() === name) found.push(part.slice(eq + 1).trim());
    }
  }
  return found.length === 1 && TOKEN_SHAPE.test(found[0]!) ? found[0] : undefined;
}

/**
 * A Cookie header value without the setup page's cookies, for the backend; undefined when nothing
 * is left. The value is returned as it came when it names none of them (the common case, no split).
 */
export function withoutSetupCookies(value: string): string | undefined {
  if (!value.includes(SETUP_COOKIE_PREFIX)) return value;
  const kept = value
    .split(';')
    .filter((part) => {
      const name = part.slice(0, part.indexOf('=') === -1 ? part.length : part.indexOf('=')).trim();
      return name !== '' && !name.startsWith(SETUP_COOKIE_PREFIX);
    })
    .map((part) => part.trim());
  return kept.length === 0 ? undefined : kept.join('; ');
}
