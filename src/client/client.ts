import { prepareBody } from './body.js';
import { parseBearerChallenge, type BearerChallenge } from './challenge.js';
import { MfaBodyNotReplayableError, MfaClientError, MfaOptionError, MfaProblemError, type ProblemCode } from './errors.js';
import { isSendable, sessionFrom, sessionFromHeaders, type MfaSession } from './session.js';
import { backoffDelay, retryAfterMs, SOURCE_BACKOFF, type Backoff } from './timing.js';

/**
 * A `fetch` that speaks the gateway's MFA contract for its caller: the bearer on every request, a
 * code from `getCode()` when the gateway challenges, the MFA session kept, refreshed and dropped as
 * the gateway says, `Retry-After` honoured, idempotent requests retried on the source document's
 * schedule. Only `fetch`, `Headers`, `AbortSignal` and timers: it runs in Node 20+ and in browsers.
 *
 * One request, in order:
 *   1. refresh the session if it expires within `refreshBeforeMs` (one refresh shared by all requests);
 *   2. send with `Authorization`, and either the pending code or the live session (never both);
 *   3. keep a session the answer carries;
 *   4. 401 `insufficient_user_authentication` → drop the session if the gateway says it is no good,
 *      ask `getCode()` (at most `codeAttempts` times), go to 2;
 *   5. 429 / 502 / 503 / 504 or no answer → wait (`Retry-After`, else backoff) and go to 2, when the
 *      request may be sent again (below) and `retries` are left;
 *   6. anything else: a problem+json answer of 400 or more is thrown as MfaProblemError, any other
 *      answer is returned as is.
 *
 * What may be sent again: a request the gateway refused before forwarding (the challenge, 429, and
 * its own 503 `overloaded` / `store_unavailable`), and an idempotent request (GET, HEAD, OPTIONS,
 * PUT, DELETE) after anything. A POST or PATCH that may have reached the backend is never repeated.
 * A code is sent once: used, refused or lost in transit, sending it again could only be a replay.
 */

export interface CodeChallenge extends BearerChallenge {
  /** Why a code is asked for: mfa_required, step_up_required, session_invalid, mfa_invalid (the last code was refused), … */
  readonly reason: ProblemCode;
  readonly detail: string | undefined;
  readonly hint: string | undefined;
  readonly requestId: string | undefined;
  /** 1 for the first code asked for this request. */
  readonly attempt: number;
  readonly method: string;
  /** Origin and path of the request (no query: it may hold secrets of the caller's). */
  readonly url: string;
}

export interface MfaClientOptions {
  /** The gateway; relative request URLs resolve against it, and credentials go to its origin only. */
  readonly baseUrl: string | URL;
  /** The bearer access token (without `Bearer `), asked for on every attempt so a refreshed token is used. */
  readonly getBearer: () => string | Promise<string>;
  /** A second-factor code for the challenge (TOTP, HOTP or recovery code). */
  readonly getCode: (challenge: CodeChallenge) => string | Promise<string>;
  readonly fetch?: (input: string, init: RequestInit) => Promise<Response>;
  /** Waits `ms` (default: setTimeout), rejecting if `signal` aborts. Tests inject one that records. */
  readonly sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** A number in [0, 1) for the jitter (default Math.random). */
  readonly random?: () => number;
  /** Epoch ms (default Date.now), for session expiry and HTTP-date `Retry-After`. */
  readonly now?: () => number;
  /** Retries after 429/502/503/504 or no answer (default 3, the source document's). */
  readonly retries?: number;
  /** Default 1 s, ×2, ±500 ms. */
  readonly backoff?: Partial<Backoff>;
  /** The longest `Retry-After` waited out (default 60 s); a longer one is returned or thrown at once. */
  readonly maxWaitMs?: number;
  /** How many codes one request may ask `getCode()` for (default 1, at most 5: the lockout counts every refused code). */
  readonly codeAttempts?: number;
  /** Refresh the session this long before it expires (default 5 min). */
  readonly refreshBeforeMs?: number;
  /** Per attempt, until the answer's headers arrive (default 10 s, the source document's; 0: none). */
  readonly timeoutMs?: number;
  /** A stream body up to this size is buffered so it can be sent again (default 1 MiB). */
  readonly maxReplayBytes?: number;
  /** The gateway's reserved prefix, from the origin's root (default `/.mfa/`). */
  readonly reservedPrefix?: string;
  /** A session kept from an earlier run. */
  readonly session?: MfaSession;
  /** Told of every new session and of its end (undefined), e.g. to keep it across runs. */
  readonly onSession?: (session: MfaSession | undefined) => void;
}

export interface MfaFetch {
  (input: string | URL, init?: RequestInit): Promise<Response>;
  /** Opens a session now (`POST /.mfa/verify` with a code): before sending a stream body, for example. */
  verify(signal?: AbortSignal): Promise<MfaSession>;
  /** Refreshes the session now; undefined when there was none or the gateway ended it. */
  refresh(): Promise<MfaSession | undefined>;
  /** Ends the session at the gateway and here; true when the gateway confirmed it. */
  endSession(): Promise<boolean>;
  /** The session in use, if a live one is kept. */
  session(): MfaSession | undefined;
}

const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE']);
/** The gateway's own 503s: it answered instead of forwarding, so any method may be sent again. */
const NOT_FORWARDED_503: ReadonlySet<string> = new Set(['overloaded', 'store_unavailable']);
/** Headers the client owns; a caller setting them would fight it. */
const OWNED_HEADERS = ['authorization', 'x-mfa-token', 'x-session-token'] as const;
/** After a refresh that got no usable answer, the next try waits this long (the session is still live). */
const REFRESH_PAUSE_MS = 30_000;
const MAX_BEARER_LENGTH = 16_384;
const MAX_CODE_LENGTH = 128;

function integerOption(name: string, value: number | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < min || value > max) throw new MfaOptionError(name, `must be an integer from ${min} to ${max}`);
  return value;
}

function functionOption<T>(name: string, value: T | undefined, required: boolean): T | undefined {
  if (value === undefined && !required) return undefined;
  if (typeof value !== 'function') throw new MfaOptionError(name, 'must be a function');
  return value;
}

function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface ProblemBody {
  readonly code: ProblemCode | undefined;
  readonly detail: string | undefined;
  readonly title: string | undefined;
  readonly type: string | undefined;
  readonly hint: string | undefined;
  readonly requestId: string | undefined;
}

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

function isProblemJson(response: Response): boolean {
  return /^application\/problem\+json\s*(;|$)/i.test(response.headers.get('content-type') ?? '');
}

/** Reads a problem+json body; fields of the wrong type are left out rather than trusted. */
async function readProblem(response: Response): Promise<ProblemBody> {
  let body: Record<string, unknown> = {};
  try {
    const parsed: unknown = JSON.parse(await response.text());
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) body = parsed as Record<string, unknown>;
  } catch {
    // An unreadable body still has its status; the error below says what is known.
  }
  return { code: text(body.code), detail: text(body.detail), title: text(body.title), type: text(body.type), hint: text(body.hint), requestId: text(body.request_id) };
}

function problemError(status: number, body: ProblemBody, retryAfterSeconds?: number): MfaProblemError {
  return new MfaProblemError({
    status,
    code: body.code ?? `http_${status}`,
    detail: body.detail ?? 'the answer carried no readable problem details',
    title: body.title,
    type: body.type,
    hint: body.hint,
    requestId: body.requestId,
    retryAfterSeconds,
  });
}

/** Drains an answer the client will not hand over, so its connection can be reused. */
async function discard(response: Response): Promise<void> {
  try {
    await response.body?.cancel();
  } catch {
    // Already closed: nothing to free.
  }
}

export function createMfaClient(options: MfaClientOptions): MfaFetch {
  if (typeof options !== 'object' || options === null) throw new MfaOptionError('options', 'must be an object');
  let base: URL;
  try {
    base = new URL(options.baseUrl);
  } catch {
    throw new MfaOptionError('baseUrl', 'must be an absolute URL');
  }
  if (base.protocol !== 'https:' && base.protocol !== 'http:') throw new MfaOptionError('baseUrl', 'must be an http: or https: URL');
  if (base.username !== '' || base.password !== '') throw new MfaOptionError('baseUrl', 'must not carry credentials');
  const getBearer = functionOption('getBearer', options.getBearer, true)!;
  const getCode = functionOption('getCode', options.getCode, true)!;
  const fetchImpl = functionOption('fetch', options.fetch, false) ?? ((input: string, init: RequestInit) => globalThis.fetch(input, init));
  const sleep = functionOption('sleep', options.sleep, false) ?? defaultSleep;
  const random = functionOption('random', options.random, false) ?? Math.random;
  const now = functionOption('now', options.now, false) ?? Date.now;
  const onSession = functionOption('onSession', options.onSession, false);
  const retries = integerOption('retries', options.retries, 3, 0, 10);
  const maxWaitMs = integerOption('maxWaitMs', options.maxWaitMs, 60_000, 0, 3_600_000);
  const codeAttempts = integerOption('codeAttempts', options.codeAttempts, 1, 1, 5);
  const refreshBeforeMs = integerOption('refreshBeforeMs', options.refreshBeforeMs, 300_000, 0, 86_400_000);
  const timeoutMs = integerOption('timeoutMs', options.timeoutMs, 10_000, 0, 300_000);
  const maxReplayBytes = integerOption('maxReplayBytes', options.maxReplayBytes, 1_048_576, 0, 67_108_864);
  const backoff: Backoff = {
    initialMs: integerOption('backoff.initialMs', options.backoff?.initialMs, SOURCE_BACKOFF.initialMs, 1, 600_000),
    multiplier: options.backoff?.multiplier ?? SOURCE_BACKOFF.multiplier,
    jitterMs: integerOption('backoff.jitterMs', options.backoff?.jitterMs, SOURCE_BACKOFF.jitterMs, 0, 600_000),
  };
  if (typeof backoff.multiplier !== 'number' || !(backoff.multiplier >= 1 && backoff.multiplier <= 10)) throw new MfaOptionError('backoff.multiplier', 'must be a number from 1 to 10');
  const prefix = options.reservedPrefix ?? '/.mfa/';
  if (typeof prefix !== 'string' || !/^\/(?:[A-Za-z0-9._~-]+\/)+$/.test(prefix)) throw new MfaOptionError('reservedPrefix', 'must be a path such as /.mfa/');
  let session: MfaSession | undefined;
  if (options.session !== undefined) {
    session = sessionFrom(options.session?.token, options.session?.expiresAt);
    if (session === undefined) throw new MfaOptionError('session', 'must be {token, expiresAt} as the client reported it');
  }

  // Shared by every request of this client.
  let refreshing: Promise<MfaSession | undefined> | undefined;
  let refreshPausedUntil = 0;
  /**
   * The gateway never stretches a session past its second factor's time + TTL: a refresh then only
   * rotates the token. Once one came back no later, this expiry is final; asking again would only churn tokens.
   */
  let finalExpiry: number | undefined;
  /** Settles when the request now asking for a code has its answer: others wait for its session instead of asking too. */
  let codeRound: Promise<void> | undefined;

  function setSession(next: MfaSession | undefined): void {
    if (next?.token === session?.token && next?.expiresAt === session?.expiresAt) return;
    session = next;
    onSession?.(next);
  }

  /** Forgets `which` unless a newer session has replaced it meanwhile. */
  function forget(which: MfaSession): void {
    if (session?.token === which.token) setSession(undefined);
  }

  function liveSession(): MfaSession | undefined {
    if (session !== undefined && now() >= session.expiresAt * 1000) setSession(undefined);
    return session;
  }

  async function bearer(): Promise<string> {
    const value = await getBearer();
    // Never echo the value: it is a credential even when malformed.
    if (!isSendable(value, MAX_BEARER_LENGTH)) throw new MfaClientError('ERR_MFA_CLIENT_CREDENTIAL', 'getBearer() must return the bare access token (visible ASCII, no spaces, no "Bearer " prefix)');
    return value;
  }

  function reserved(name: string): string {
    return new URL(prefix + name, base.origin).href;
  }

  /** One HTTP exchange; the timeout covers the wait for the answer's headers, not the caller's reading of its body. */
  async function exchange(url: string, init: RequestInit, signal: AbortSignal | undefined): Promise<Response> {
    if (timeoutMs === 0) return fetchImpl(url, { ...init, ...(signal !== undefined ? { signal } : {}) });
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new DOMException('the gateway did not answer in time', 'TimeoutError')), timeoutMs);
    try {
      return await fetchImpl(url, { ...init, signal: signal === undefined ? timeout.signal : AbortSignal.any([signal, timeout.signal]) });
    } finally {
      clearTimeout(timer);
    }
  }

  async function refreshNow(): Promise<MfaSession | undefined> {
    const current = liveSession();
    if (current === undefined) return undefined;
    try {
      const response = await exchange(reserved('session/refresh'), { method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${await bearer()}`, 'x-session-token': current.token } }, undefined);
      if (response.status === 200) {
        const body = (await response.json()) as Record<string, unknown>;
        const next = sessionFrom(body.session_token, body.expires_at);
        if (next !== undefined) {
          if (next.expiresAt <= current.expiresAt) finalExpiry = next.expiresAt;
          if (session?.token === current.token) setSession(next);
          return next;
        }
      } else {
        await discard(response);
        // The gateway no longer knows it (revoked, expired, another subject): it is of no further use.
        if (response.status === 401) {
          forget(current);
          return undefined;
        }
      }
    } catch (error) {
      if (MfaClientError.is(error)) throw error;
      // No answer: the session is still live; the request goes on with it.
    }
    refreshPausedUntil = now() + REFRESH_PAUSE_MS;
    return session;
  }

  function refresh(): Promise<MfaSession | undefined> {
    refreshing ??= refreshNow().finally(() => (refreshing = undefined));
    return refreshing;
  }

  async function refreshIfDue(): Promise<void> {
    const current = liveSession();
    if (current === undefined || now() < refreshPausedUntil || current.expiresAt === finalExpiry) return;
    if (now() >= current.expiresAt * 1000 - refreshBeforeMs) await refresh();
  }

  async function send(input: string | URL, init: RequestInit = {}): Promise<Response> {
    let url: URL;
    try {
      url = new URL(input, base);
    } catch {
      throw new MfaClientError('ERR_MFA_CLIENT_REQUEST', 'the request URL does not resolve against baseUrl');
    }
    // Credentials go to the gateway only; a redirect would carry X-MFA-Token / X-Session-Token on to wherever it points.
    if (url.origin !== base.origin) throw new MfaClientError('ERR_MFA_CLIENT_REQUEST', `the request URL must be on ${base.origin}: the client sends credentials there only`);
    if (init.redirect === 'follow') throw new MfaClientError('ERR_MFA_CLIENT_REQUEST', 'redirect: "follow" would send the MFA headers on to the redirect target; redirects are returned to the caller');
    const callerHeaders = new Headers(init.headers);
    for (const name of OWNED_HEADERS) {
      if (callerHeaders.has(name)) throw new MfaClientError('ERR_MFA_CLIENT_REQUEST', `init.headers must not set ${name}: the client sets it`);
    }
    const method = (init.method ?? 'GET').toUpperCase();
    const idempotent = IDEMPOTENT.has(method);
    const signal = init.signal ?? undefined;
    const prepared = await prepareBody(init.body, maxReplayBytes);
    const where = `${url.origin}${url.pathname}`;
    const callerAborted = () => signal?.aborted === true;

    let code: string | undefined;
    let prompts = 0;
    let retried = 0;
    let waitedForOthers = 0;
    let endRound: (() => void) | undefined;

    /** How long to wait before the next attempt, or undefined: the budget is spent or the wait is longer than allowed. */
    function nextWait(retryAfter: number | undefined): number | undefined {
      const wait = retryAfter ?? backoffDelay(retried + 1, random(), backoff);
      return retried >= retries || wait > maxWaitMs ? undefined : wait;
    }
    async function pause(wait: number): Promise<void> {
      retried++;
      await sleep(wait, signal);
    }

    try {
      for (;;) {
        await refreshIfDue();
        const headers = new Headers(callerHeaders);
        headers.set('authorization', `Bearer ${await bearer()}`);
        const sentCode = code;
        code = undefined;
        const sentSession = sentCode === undefined ? liveSession() : undefined;
        if (sentCode !== undefined) headers.set('x-mfa-token', sentCode);
        else if (sentSession !== undefined) headers.set('x-session-token', sentSession.token);

        let response: Response;
        try {
          response = await exchange(url.href, { ...init, method, headers, body: prepared.body ?? null, redirect: 'manual', ...(prepared.replayable ? {} : { duplex: 'half' }) }, signal);
        } catch (error) {
          endRound?.();
          endRound = undefined;
          if (callerAborted()) throw signal!.reason;
          // It may have reached the backend: only an idempotent request with a body to send again is retried.
          const wait = idempotent && prepared.replayable ? nextWait(undefined) : undefined;
          if (wait !== undefined) {
            await pause(wait);
            continue;
          }
          throw new MfaClientError('ERR_MFA_CLIENT_NETWORK', `${method} ${where}: no answer from the gateway`, { cause: error });
        }
        const minted = sessionFromHeaders(response.headers);
        if (minted !== undefined) setSession(minted);
        // The answer to a code has come: whoever waited for it may now try the session it opened.
        endRound?.();
        endRound = undefined;

        const status = response.status;
        const problem = isProblemJson(response) && status >= 400 ? await readProblem(response) : undefined;
        const challenge = status === 401 ? parseBearerChallenge(response.headers.get('www-authenticate')) : undefined;

        if (challenge?.error === 'insufficient_user_authentication') {
          if (problem === undefined) await discard(response);
          const reason: ProblemCode = problem?.code ?? 'mfa_required';
          // A session the gateway no longer takes (ended, or older than the route's TTL) is dropped; one only
          // too old for a step-up route, or of another method, still serves other routes and is kept.
          if (sentSession !== undefined && (reason === 'session_invalid' || reason === 'mfa_required')) forget(sentSession);
          const refused = problemError(status, problem ?? { code: reason, detail: challenge.errorDescription, title: undefined, type: undefined, hint: undefined, requestId: undefined });
          if (!prepared.replayable) throw new MfaBodyNotReplayableError(refused);
          // Another request of this client is getting a code: its session may do for this one too.
          if (sentCode === undefined && codeRound !== undefined && waitedForOthers < codeAttempts) {
            waitedForOthers++;
            await codeRound;
            continue;
          }
          if (prompts >= codeAttempts) throw refused;
          prompts++;
          let settle!: () => void;
          const round = new Promise<void>((resolve) => (settle = resolve));
          codeRound = round;
          endRound = () => {
            settle();
            if (codeRound === round) codeRound = undefined;
          };
          const given = await getCode({
            ...challenge,
            reason,
            detail: problem?.detail ?? challenge.errorDescription,
            hint: problem?.hint,
            requestId: problem?.requestId,
            attempt: prompts,
            method,
            url: where,
          });
          if (!isSendable(given, MAX_CODE_LENGTH)) throw new MfaClientError('ERR_MFA_CLIENT_CREDENTIAL', 'getCode() must return the code as a non-empty string of visible ASCII characters');
          code = given;
          continue;
        }

        if (status === 429 || status === 502 || status === 503 || status === 504) {
          const retryAfter = retryAfterMs(response.headers.get('retry-after'), now());
          // 429: not acted on (RFC 6585); the gateway's own 503s were not forwarded; else only idempotent methods.
          const resendable = status === 429 || idempotent || (status === 503 && problem?.code !== undefined && NOT_FORWARDED_503.has(problem.code));
          const wait = resendable && prepared.replayable ? nextWait(retryAfter) : undefined;
          if (wait !== undefined) {
            if (problem === undefined) await discard(response);
            await pause(wait);
            continue;
          }
          if (problem !== undefined) throw problemError(status, problem, retryAfter === undefined ? undefined : Math.ceil(retryAfter / 1000));
          return response;
        }

        if (problem !== undefined) throw problemError(status, problem);
        return response;
      }
    } finally {
      // Thrown while asking for a code or before its answer: nobody waits on this round any more.
      endRound?.();
    }
  }

  async function verify(signal?: AbortSignal): Promise<MfaSession> {
    const response = await send(reserved('verify'), { method: 'POST', ...(signal !== undefined ? { signal } : {}) });
    const body = (await response.json()) as Record<string, unknown>;
    const opened = sessionFrom(body.session_token, body.expires_at);
    if (response.status !== 200 || opened === undefined) throw new MfaClientError('ERR_MFA_CLIENT_PROTOCOL', `verify answered ${response.status} without a session`);
    setSession(opened);
    return opened;
  }

  async function endSession(): Promise<boolean> {
    const current = liveSession();
    if (current === undefined) return false;
    // Forgotten here first: whatever the gateway answers, this client stops sending it.
    forget(current);
    try {
      const response = await exchange(reserved('session/revoke'), { method: 'POST', redirect: 'manual', headers: { authorization: `Bearer ${await bearer()}`, 'x-session-token': current.token } }, undefined);
      await discard(response);
      return response.status === 204;
    } catch (error) {
      if (MfaClientError.is(error)) throw error;
      return false;
    }
  }

  return Object.assign(send, { verify, refresh, endSession, session: liveSession });
}
