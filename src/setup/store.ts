import { sha256Hex } from '../crypto/digest.js';
import { randomToken } from '../crypto/random.js';
import type { TtlStore } from '../store/types.js';
import { TOKEN_SHAPE } from './cookies.js';

/**
 * The setup page's short-lived state, on the TTL store's ceremony verbs so that replicas sharing
 * the store share it: single-use invites and OIDC sign-in states are `takeChallenge`d (of N
 * concurrent uses, one wins), a setup session is `peekChallenge`d on each call and taken on sign-out.
 * The store is keyed by the SHA-256 of each token, never the token: a read of the store (or its
 * backup) gives nobody a way in. Every record is keyed under its own namespace and ceremony
 * name, so none can be confused with another or with a WebAuthn ceremony of a subject.
 */

/** How long an invite link works (issue 14: ten minutes). */
export const INVITE_TTL_MS = 10 * 60_000;
/** How long a sign-in may take between leaving for the issuer and coming back. */
export const SIGNIN_TTL_MS = 10 * 60_000;
/** A setup session: long enough to enrol, short enough that a forgotten tab is soon harmless. */
export const SETUP_SESSION_TTL_MS = 15 * 60_000;

const INVITE = 'setup-invite';
const SIGNIN = 'setup-signin';
const SESSION = 'setup-session';

/** What a setup session may act for: one subject, and how it signed in (for the audit log). */
export interface SetupSession {
  readonly subject: string;
  readonly via: 'oidc' | 'invite';
  /** Unix ms. */
  readonly expiresAt: number;
}

/** What the callback needs to finish a sign-in that this browser started. */
export interface SigninState {
  readonly codeVerifier: string;
  readonly nonce: string;
  /** SHA-256 (hex) of the login cookie the starting browser was given. */
  readonly bindingHash: string;
}

export interface SetupStore {
  /** A new invite for `subject`: the token (shown once, in the link) — only its hash is kept. */
  createInvite(subject: string, now: number): Promise<string>;
  /** The invite's subject, once: a second use, an expired or an unknown token give undefined. */
  redeemInvite(token: string, now: number): Promise<string | undefined>;
  putSignin(state: string, record: SigninState, now: number): Promise<void>;
  /** The sign-in started with `state`, once (a replayed callback finds nothing). */
  takeSignin(state: string, now: number): Promise<SigninState | undefined>;
  /** A new setup session: the cookie's token, and the session. */
  openSession(subject: string, via: SetupSession['via'], now: number): Promise<{ token: string; session: SetupSession }>;
  readSession(token: string, now: number): Promise<SetupSession | undefined>;
  /** Sign-out: true when a live session ended. */
  endSession(token: string, now: number): Promise<boolean>;
}

export function newToken(): string {
  return randomToken(32);
}

function parse(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export function createSetupStore(ttl: Pick<TtlStore, 'putChallenge' | 'takeChallenge' | 'peekChallenge'>): SetupStore {
  // A token that is not one of ours never costs a store round trip.
  const keyOf = (kind: string, token: string): string | undefined => (TOKEN_SHAPE.test(token) ? `${kind}:${sha256Hex(token)}` : undefined);

  function sessionOf(record: Record<string, unknown> | undefined, now: number): SetupSession | undefined {
    if (record === undefined || typeof record.sub !== 'string' || record.sub === '' || typeof record.exp !== 'number' || record.exp <= now) return undefined;
    const via = record.via === 'oidc' || record.via === 'invite' ? record.via : undefined;
    return via === undefined ? undefined : { subject: record.sub, via, expiresAt: record.exp };
  }

  return {
    async createInvite(subject, now) {
      const token = newToken();
      await ttl.putChallenge(keyOf(INVITE, token)!, INVITE, JSON.stringify({ sub: subject }), now, INVITE_TTL_MS);
      return token;
    },
    async redeemInvite(token, now) {
      const key = keyOf(INVITE, token);
      if (key === undefined) return undefined;
      const record = parse(await ttl.takeChallenge(key, INVITE, now));
      return typeof record?.sub === 'string' && record.sub !== '' ? record.sub : undefined;
    },
    async putSignin(state, record, now) {
      await ttl.putChallenge(keyOf(SIGNIN, state)!, SIGNIN, JSON.stringify({ v: record.codeVerifier, n: record.nonce, b: record.bindingHash }), now, SIGNIN_TTL_MS);
    },
    async takeSignin(state, now) {
      const key = keyOf(SIGNIN, state);
      if (key === undefined) return undefined;
      const record = parse(await ttl.takeChallenge(key, SIGNIN, now));
      if (record === undefined || typeof record.v !== 'string' || typeof record.n !== 'string' || typeof record.b !== 'string') return undefined;
      return { codeVerifier: record.v, nonce: record.n, bindingHash: record.b };
    },
    async openSession(subject, via, now) {
      const token = newToken();
      const session: SetupSession = { subject, via, expiresAt: now + SETUP_SESSION_TTL_MS };
      await ttl.putChallenge(keyOf(SESSION, token)!, SESSION, JSON.stringify({ sub: subject, via, exp: session.expiresAt }), now, SETUP_SESSION_TTL_MS);
      return { token, session };
    },
    async readSession(token, now) {
      const key = keyOf(SESSION, token);
      return key === undefined ? undefined : sessionOf(parse(await ttl.peekChallenge(key, SESSION, now)), now);
    },
    async endSession(token, now) {
      const key = keyOf(SESSION, token);
      return key === undefined ? false : sessionOf(parse(await ttl.takeChallenge(key, SESSION, now)), now) !== undefined;
    },
  };
}
