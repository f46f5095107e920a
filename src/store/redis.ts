import { hash as digest } from 'node:crypto';
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { HostPort, RedisConfig, StoreTlsConfig } from '../config/types.js';
import { StoreError } from './errors.js';
import { createListeners, decodeInvalidation, encodeInvalidation, warnListenerError } from './invalidation.js';
import { SCRIPTS, type ScriptName } from './redis-scripts.js';
import { checkCeremony, checkChallengeValue, checkCount, checkDriftSeconds, checkDuration, checkHashes, checkKey, checkLockoutRule, checkRule, checkSession, checkStep, checkTime, checkWindow } from './checks.js';
import type { InvalidationBus, SentCodeUse, TtlStore } from './types.js';

/**
 * The short-lived state on Redis, for many replicas: every verb is one Lua script (redis-scripts.ts)
 * over keys of one hash slot, so it is atomic on a single server, behind Sentinel and in a Cluster.
 *
 * Whose clock. Two clocks meet here and each has one job:
 *  - the caller's `now` (the request's pinned reading) judges every absolute instant: a lock's end,
 *    a window's reset, a session's expiry, a block's end. Each value keeps its own end (`exp`, in
 *    the caller's clock), so the answers equal SQLite's for the same `now`, whatever time Redis has;
 *  - Redis's clock only decides how long a key is kept: PEXPIRE with a duration the caller handed
 *    in (keepMs, windowMs, expiresAt − now…), never PEXPIREAT with the caller's instant, so a replica
 *    whose clock is off cannot make keys vanish early or linger for years.
 *
 * Keys: `<keyPrefix>{<tag>}:<kind>`, where the tag is the base64url SHA-256 of the subject (sessions,
 * lock ladder, drift) or of the key itself (used OTP steps by factor id, failure and rate-limit keys).
 * A hash cannot hold `{` or `}`, so no subject can break hash-tagging, and no subject (often an email
 * address) is written into a key name. One more key, `<keyPrefix>{locks}:active`, is the cross-subject
 * ZSET the active-locks gauge counts. docs/store-redis.md has the whole layout.
 *
 * Connection: fail fast. With no offline queue a command sent while disconnected is refused at once
 * (the gateway answers 503 instead of queueing requests behind an outage); reconnects go on forever
 * with capped, jittered backoff; every connection-level failure becomes ERR_STORE_UNAVAILABLE with a
 * message that never holds the URL or its password; `state()` tells /readyz before any timeout does.
 */

export type RedisHealth = 'ready' | 'connecting' | 'down';

export interface RedisTtlStoreOptions {
  /**
   * Connection-level failures as they happen (already sanitised), e.g. for a log line. Default:
   * ignored, since `state()` carries the signal; either way an 'error' event never crashes the process.
   */
  readonly onError?: ((error: StoreError) => void) | undefined;
  /** Where an exception thrown by an invalidation or state listener goes (default: a process warning). */
  readonly onListenerError?: ((error: unknown) => void) | undefined;
  /** Reconnect backoff: the first delay's ceiling and the cap (default 100 ms and 2 s). */
  readonly reconnect?: { readonly initialMs: number; readonly maxMs: number } | undefined;
  /** The jitter source, in [0, 1) (default Math.random). */
  readonly random?: (() => number) | undefined;
}

export interface RedisTtlStore {
  readonly ttl: TtlStore;
  /** Cross-replica invalidation on the channel `<keyPrefix>invalidate`, over its own connection. */
  readonly bus: InvalidationBus;
  /**
   * 'ready' while the command connection answers; 'connecting' until it has answered once (Redis
   * unreachable or misconfigured since the start: reconnects go on); 'down' from a lost connection
   * or a command timeout until it answers again (by itself: reconnects and, after a timeout, a PING
   * probe). Only 'ready' is ready. Pub/sub is best effort and does not count.
   */
  state(): RedisHealth;
  /** Called on every change of `state()`; returns an unsubscribe function. */
  onStateChange(listener: (state: RedisHealth) => void): () => void;
  /** Closes both connections; every later call rejects with ERR_STORE_CLOSED. */
  close(): Promise<void>;
}

/** The ioredis surface both `Redis` and `Cluster` offer and that this file uses. */
interface Connection {
  readonly status: string;
  connect(): Promise<void>;
  defineCommand(name: string, definition: { lua: string; numberOfKeys?: number }): void;
  ping(): Promise<string>;
  publish(channel: string, message: string): Promise<number>;
  subscribe(...channels: string[]): Promise<unknown>;
  quit(): Promise<string>;
  disconnect(reconnect?: boolean): void;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
}

type ScriptCall = (...args: string[]) => Promise<unknown>;

/** useSentCode's reply, 0 1 2, as the verb's outcome. */
const SENT_CODE_USES: readonly SentCodeUse[] = ['none', 'wrong', 'used'];

const invalid = (message: string) => new StoreError('ERR_STORE_INVALID_OPTION', message);

/**
 * Milliseconds before reconnect attempt `attempt` (1, 2, …): the ceiling doubles from `initialMs` up
 * to `maxMs`, and the delay is drawn in [ceiling / 2, ceiling) ("equal jitter") so that replicas cut
 * off together do not come back in step, yet none retries in a tight loop.
 */
export function reconnectDelay(attempt: number, random: () => number, initialMs = 100, maxMs = 2_000): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30));
  return Math.max(1, Math.floor(ceiling / 2 + (random() * ceiling) / 2));
}

/** The hash-tag of a subject or key: base64url, so never `{` or `}`; one slot per subject. */
export function redisTag(value: string): string {
  return digest('sha256', value, 'base64url');
}

interface UrlParts {
  readonly host?: string;
  readonly port?: number;
  readonly username?: string;
  readonly password?: string;
  readonly db?: number;
  readonly tls: boolean;
}

/** The URL taken apart; messages name the option, never the value (it holds the password). */
function parseUrl(url: string | undefined): UrlParts {
  if (url === undefined) return { tls: false };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid('url is not a valid URL');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') throw invalid('url must start with redis:// or rediss://');
  const path = parsed.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,5}$/.test(path)) throw invalid('url path must be a database number');
  return {
    ...(parsed.hostname !== '' ? { host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') } : {}),
    ...(parsed.port !== '' ? { port: Number(parsed.port) } : {}),
    ...(parsed.username !== '' ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password !== '' ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(path !== '' ? { db: Number(path) } : {}),
    tls: parsed.protocol === 'rediss:',
  };
}

function tlsOptions(tls: StoreTlsConfig | undefined, implied: boolean): RedisOptions['tls'] {
  if (tls === undefined) return implied ? {} : undefined;
  return {
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: tls.key } : {}),
    ...(tls.serverName !== undefined ? { servername: tls.serverName } : {}),
    rejectUnauthorized: tls.verify,
  };
}

function checkConfig(config: RedisConfig): void {
  if (typeof config !== 'object' || config === null) throw invalid('redis config must be an object');
  // A brace in the prefix would become every key's hash tag: all keys in one slot, or broken tags.
  if (typeof config.keyPrefix !== 'string' || /[{}]/.test(config.keyPrefix)) throw invalid('keyPrefix must be a string without { or }');
  checkDuration(config.connectTimeoutMs, 'connectTimeoutMs');
  checkDuration(config.commandTimeoutMs, 'commandTimeoutMs');
  if (config.url !== undefined && typeof config.url !== 'string') throw invalid('url must be a string');
  const topology = config.topology;
  if (topology?.mode === 'single') {
    if (config.url === undefined) throw invalid('url is required for a single Redis server');
  } else if (topology?.mode === 'sentinel' || topology?.mode === 'cluster') {
    if (!Array.isArray(topology.nodes) || topology.nodes.length === 0) throw invalid(`topology.nodes must list at least one ${topology.mode} node`);
    topology.nodes.forEach((node: HostPort, i) => {
      if (typeof node?.host !== 'string' || node.host === '' || !Number.isInteger(node.port) || node.port < 1 || node.port > 65_535) throw invalid(`topology.nodes[${i}] must be { host, port }`);
    });
    if (topology.mode === 'sentinel' && (typeof topology.master !== 'string' || topology.master === '')) throw invalid('topology.master must name the Sentinel master');
  } else {
    throw invalid('topology.mode must be single, sentinel or cluster');
  }
}

/** Reply errors that say "not now" rather than "wrong": the server is loading, a replica, down… */
const TRANSIENT_REPLY = /^(LOADING|READONLY|CLUSTERDOWN|MASTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|MISCONF|OOM|NOAUTH|WRONGPASS)\b/;
const NOT_CONNECTED = [
  "Stream isn't writeable",
  'Connection is closed',
  "Cluster isn't ready",
  'None of startup nodes is available',
  'Failed to refresh slots cache',
  'Too many Cluster redirections',
  'All sentinels are unreachable',
];

/** The sanitised reason a call failed for want of Redis, or undefined when it failed otherwise. */
function unavailableReason(error: unknown, commandTimeoutMs: number): string | undefined {
  if (!(error instanceof Error)) return undefined;
  const { message, name } = error;
  const code = (error as { code?: unknown }).code;
  if (message === 'Command timed out') return `Redis did not answer within ${commandTimeoutMs} ms`;
  if (name === 'MaxRetriesPerRequestError') return 'the connection to Redis was lost before it answered';
  if (name === 'ClusterAllFailedError' || NOT_CONNECTED.some((start) => message.startsWith(start))) return 'Redis is not connected (reconnecting in the background)';
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return `Redis is unreachable (${code})`;
  // Node's TLS verification codes (DEPTH_ZERO_SELF_SIGNED_CERT, ERR_TLS_CERT_ALTNAME_INVALID, …).
  if (typeof code === 'string' && /CERT|^ERR_TLS_|^ERR_SSL_/.test(code)) return `the TLS handshake with Redis failed (${code})`;
  const reply = TRANSIENT_REPLY.exec(message);
  if (reply !== null) return reply[1] === 'NOAUTH' || reply[1] === 'WRONGPASS' ? `Redis refused the credentials (${reply[1]})` : `Redis cannot answer now (${reply[1]})`;
  return undefined;
}

export async function openRedisTtlStore(config: RedisConfig, options: RedisTtlStoreOptions = {}): Promise<RedisTtlStore> {
  checkConfig(config);
  for (const name of ['onError', 'onListenerError', 'random'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') throw invalid(`${name} must be a function`);
  }
  const url = parseUrl(config.url);
  const random = options.random ?? Math.random;
  const backoff = options.reconnect ?? { initialMs: 100, maxMs: 2_000 };
  checkDuration(backoff.initialMs, 'reconnect.initialMs');
  checkDuration(backoff.maxMs, 'reconnect.maxMs');
  const onListenerError = options.onListenerError ?? warnListenerError;
  const { keyPrefix: prefix, commandTimeoutMs, topology } = config;

  const retryStrategy = (attempt: number) => reconnectDelay(attempt, random, backoff.initialMs, backoff.maxMs);
  const tls = tlsOptions(config.tls, url.tls);
  const common: RedisOptions = {
    lazyConnect: true,
    connectTimeout: config.connectTimeoutMs,
    commandTimeout: commandTimeoutMs,
    // A Lua verb whose reply was lost may have run: never resend it (a failure counted twice), and
    // fail what was in flight as soon as the connection drops rather than on reconnect.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // The bus subscribes on every 'ready' itself, so it knows when it is subscribed again.
    autoResubscribe: false,
    ...(url.username !== undefined ? { username: url.username } : {}),
    ...(url.password !== undefined ? { password: url.password } : {}),
    ...(tls !== undefined ? { tls } : {}),
  };

  function makeConnection(): Connection {
    if (topology.mode === 'cluster') {
      const clusterOptions: ClusterOptions = {
        lazyConnect: true,
        enableOfflineQueue: false,
        clusterRetryStrategy: retryStrategy,
        slotsRefreshTimeout: config.connectTimeoutMs,
        scaleReads: 'master',
        redisOptions: common,
      };
      return new Cluster(topology.nodes.map(({ host, port }) => ({ host, port })), clusterOptions);
    }
    const base: RedisOptions = { ...common, enableOfflineQueue: false, retryStrategy, ...(url.db !== undefined ? { db: url.db } : {}) };
    if (topology.mode === 'sentinel') {
      return new Redis({
        ...base,
        sentinels: topology.nodes.map(({ host, port }) => ({ host, port })),
        name: topology.master,
        sentinelRetryStrategy: retryStrategy,
        ...(tls !== undefined ? { enableTLSForSentinelMode: true, sentinelTLS: tls } : {}),
      });
    }
    return new Redis({ ...base, host: url.host ?? '127.0.0.1', port: url.port ?? 6379 });
  }

  const client = makeConnection();
  const subscriber = makeConnection();
  for (const [name, { keys, lua }] of Object.entries(SCRIPTS)) client.defineCommand(name, { numberOfKeys: keys, lua });

  let closed = false;
  let closing: Promise<void> | undefined;
  const facets = new Set<'ttl' | 'bus'>(['ttl', 'bus']);

  function report(error: unknown): void {
    if (closed || options.onError === undefined) return;
    const reason = typeof error === 'string' ? error : (unavailableReason(error, commandTimeoutMs) ?? 'Redis connection error');
    try {
      options.onError(new StoreError('ERR_STORE_UNAVAILABLE', reason));
    } catch (thrown) {
      onListenerError(thrown);
    }
  }

  // Health: the command connection's events, plus "suspect" after a timeout (a hung server keeps its socket open).
  let health: RedisHealth = 'connecting';
  let everReady = false;
  let suspect = false;
  let probe: NodeJS.Timeout | undefined;
  const stateListeners = new Set<(state: RedisHealth) => void>();
  function setHealth(next: RedisHealth): void {
    if (next === health || closed) return;
    health = next;
    for (const listener of [...stateListeners]) {
      try {
        listener(next);
      } catch (error) {
        onListenerError(error);
      }
    }
  }
  function answered(): void {
    if (!suspect) return;
    suspect = false;
    if (client.status === 'ready') setHealth('ready');
  }
  function timedOut(): void {
    suspect = true;
    setHealth('down');
    if (probe !== undefined) return;
    const every = Math.min(1_000, Math.max(100, commandTimeoutMs));
    const tick = () => {
      probe = undefined;
      if (closed || !suspect) return;
      client.ping().then(answered, () => {
        if (!closed && suspect) probe = setTimeout(tick, every).unref();
      });
    };
    probe = setTimeout(tick, every).unref();
  }
  function becameReady(): void {
    everReady = true;
    suspect = false;
    setHealth('ready');
  }
  client.on('ready', becameReady);
  for (const event of ['close', 'end', 'reconnecting']) {
    client.on(event, () => {
      // A server killed or a link cut may close the socket without any 'error': say so once.
      if (health === 'ready') report('the connection to Redis was lost');
      setHealth(everReady ? 'down' : 'connecting');
    });
  }
  client.on('error', report);
  client.on('node error', report);

  function ensureOpen(facet: 'ttl' | 'bus'): void {
    if (closed || !facets.has(facet)) throw new StoreError('ERR_STORE_CLOSED', facet === 'bus' ? 'the bus is closed' : 'the store is closed');
  }

  function failure(error: unknown): unknown {
    if (closed) return new StoreError('ERR_STORE_CLOSED', 'the store is closed');
    const reason = unavailableReason(error, commandTimeoutMs);
    if (reason === undefined) return error;
    if (error instanceof Error && error.message === 'Command timed out') timedOut();
    return new StoreError('ERR_STORE_UNAVAILABLE', reason);
  }

  async function send<T>(facet: 'ttl' | 'bus', call: () => Promise<T>): Promise<T> {
    ensureOpen(facet);
    try {
      const result = await call();
      answered();
      return result;
    } catch (error) {
      throw failure(error);
    }
  }

  const scripts = client as unknown as Record<ScriptName, ScriptCall>;
  const run = (name: ScriptName, keys: readonly string[], args: readonly (string | number)[]) =>
    send('ttl', () => scripts[name](...keys, ...args.map(String)));

  const key = (tagged: string, kind: string) => `${prefix}{${redisTag(tagged)}}:${kind}`;
  const KEYS = {
    otp: (factorId: string) => key(factorId, 'otp'),
    lock: (subject: string) => key(subject, 'lock'),
    drift: (subject: string) => key(subject, 'drift'),
    fail: (failureKey: string) => key(failureKey, 'fail'),
    rate: (rateKey: string) => key(rateKey, 'rate'),
    sessions: (subject: string) => key(subject, 'sessions'),
    /** A code sent to one of the subject's contacts: in the subject's slot, like its lock. */
    sentCode: (subject: string, contactId: string) => key(subject, `sent-code:${contactId}`),
    challenge: (subject: string, ceremony: string) => key(subject, `challenge:${ceremony}`),
    /** The base a session's key is built on (in TS and in Lua): the subject's tag, then the hash. */
    sessionBase: (subject: string) => key(subject, 'session:'),
    activeLocks: `${prefix}{locks}:active`,
  };

  /** A ceremony's live value: `takeChallenge` deletes it in the same script, `peekChallenge` leaves it. */
  async function challenge(script: 'takeChallenge' | 'peekChallenge', subject: string, ceremony: string, now: number): Promise<string | undefined> {
    ensureOpen('ttl');
    checkKey(subject, 'subject');
    checkCeremony(ceremony);
    checkTime(now);
    const value = (await run(script, [KEYS.challenge(subject, ceremony)], [now])) as string | null;
    return value ?? undefined;
  }

  const ttl: TtlStore = {
    async useOtpStep(factorId, step, now, keepMs) {
      ensureOpen('ttl');
      checkKey(factorId, 'factorId');
      checkTime(now);
      checkDuration(keepMs, 'keepMs');
      if (step !== undefined) checkStep(step);
      return (await run('useOtpStep', [KEYS.otp(factorId)], [step === undefined ? '' : step, now, keepMs])) === 1;
    },
    async forgetOtpSteps(factorId) {
      ensureOpen('ttl');
      checkKey(factorId, 'factorId');
      await run('forget', [KEYS.otp(factorId)], []);
    },
    async lockRemainingMs(subject, now) {
      ensureOpen('ttl');
      checkKey(subject, 'subject');
      checkTime(now);
      return Number(await run('lockRemainingMs', [KEYS.lock(subject)], [now]));
    },
    async recordLockFailure(subject, now, rule) {
      ensureOpen('ttl');
      checkKey(subject, 'subject');
      checkTime(now);
      checkLockoutRule(rule);
      const [lockedNow, retryAfterMs, level, lockedUntil] = (await run('recordLockFailure', [KEYS.lock(subject)], [now, rule.maxFailures, rule.findTimeMs, ...rule.backoffMs])) as number[];
      if (lockedNow === 1) {
        // The gauge, not the decision: the lock stands even if this second command fails.
        await run('noteLock', [KEYS.activeLocks], [lockedUntil!, redisTag(subject), retryAfterMs!]).catch(report);
      }
      return { lockedNow: lockedNow === 1, retryAfterMs: Number(retryAfterMs), level: Number(level) };
    },
    async clearLock(subject) {
      ensureOpen('ttl');
      checkKey(subject, 'subject');
      // Its gauge entry stays: a success comes only after the lock ended, so it no longer counts.
      await run('forget', [KEYS.lock(subject)], []);
    },
    async activeLocks(now) {
      ensureOpen('ttl');
      checkTime(now);
      return Number(await run('activeLocks', [KEYS.activeLocks], [now]));
    },
    async recordFailure(failureKey, now, rule) {
      ensureOpen('ttl');
      checkKey(failureKey);
      checkTime(now);
      checkRule(rule);
      const [failures, blockedNow, blockedUntil] = (await run('recordFailure', [KEYS.fail(failureKey)], [now, rule.maxFailures, rule.findTimeMs, rule.blockMs])) as number[];
      return { failures: Number(failures), blockedNow: blockedNow === 1, blockedUntil: Number(blockedUntil) };
    },
    async blockedUntil(failureKey, now) {
      ensureOpen('ttl');
      checkKey(failureKey);
      checkTime(now);
      return Number(await run('blockedUntil', [KEYS.fail(failureKey)], [now]));
    },
    async readLockAndBlock(subject, blockKey, now) {
      // The two verbs' scripts sent at once: the keys are in different hash slots, so one script cannot read both in a Cluster.
      const [lockMs, blockedUntil] = await Promise.all([ttl.lockRemainingMs(subject, now), blockKey === undefined ? 0 : ttl.blockedUntil(blockKey, now)]);
      return { lockMs, blockedUntil };
    },
    async swapDriftReading(subject, seconds, now, keepMs) {
      ensureOpen('ttl');
      checkKey(subject, 'subject');
      checkTime(now);
      checkDuration(keepMs, 'keepMs');
      checkDriftSeconds(seconds);
      const [kind, previous] = (await run('swapDriftReading', [KEYS.drift(subject)], [seconds === null ? 'null' : seconds, now, keepMs])) as number[];
      return kind === 2 ? Number(previous) : kind === 1 ? null : undefined;
    },
    async issueSession(hash, session, maxPerSubject, now) {
      ensureOpen('ttl');
      checkKey(hash, 'hash');
      checkTime(now);
      checkSession(session, now);
      checkCount(maxPerSubject, 'maxPerSubject');
      const { subject } = session;
      const [issued, ...evicted] = (await run(
        'issueSession',
        [KEYS.sessions(subject), KEYS.sessionBase(subject) + hash],
        [hash, subject, session.method, session.mfaTime, session.issuedAt, session.expiresAt, maxPerSubject, now, KEYS.sessionBase(subject)],
      )) as [number, ...string[]];
      if (issued !== 1) throw new StoreError('ERR_STORE_CONFLICT', 'a session with this hash already exists');
      return evicted;
    },
    async getSession(hash, subject, now) {
      ensureOpen('ttl');
      checkTime(now);
      // No key can be built from anything else, and nothing stored under one could match.
      if (typeof hash !== 'string' || typeof subject !== 'string') return undefined;
      const found = (await run('getSession', [KEYS.sessionBase(subject) + hash], [subject, now])) as [string, string, string, string] | null;
      if (found === null) return undefined;
      const [method, mfaTime, issuedAt, expiresAt] = found;
      return { subject, method, mfaTime: Number(mfaTime), issuedAt: Number(issuedAt), expiresAt: Number(expiresAt) };
    },
    async deleteSession(hash, subject, now) {
      ensureOpen('ttl');
      checkTime(now);
      if (typeof hash !== 'string' || typeof subject !== 'string') return false;
      return (await run('deleteSession', [KEYS.sessionBase(subject) + hash, KEYS.sessions(subject)], [hash, subject, now])) === 1;
    },
    async revokeAllSessions(subject, now) {
      ensureOpen('ttl');
      checkKey(subject, 'subject');
      checkTime(now);
      return (await run('revokeAllSessions', [KEYS.sessions(subject)], [now, KEYS.sessionBase(subject)])) as string[];
    },
    async takeToken(rateKey, now, window) {
      ensureOpen('ttl');
      checkKey(rateKey);
      checkTime(now);
      checkWindow(window);
      const [count, resetAt] = (await run('takeToken', [KEYS.rate(rateKey)], [now, window.windowMs, window.limit])) as number[];
      return { taken: count! <= window.limit, remaining: Math.max(0, window.limit - count!), resetAt: Number(resetAt) };
    },
    async putSentCode(subject, contactId, hash, now, ttlMs) {
      ensureOpen('ttl');
      checkKey(subject, 'subject');
      checkKey(contactId, 'contactId');
      checkKey(hash, 'hash');
      checkTime(now);
      checkDuration(ttlMs, 'ttlMs');
      await run('putSentCode', [KEYS.sentCode(subject, contactId)], [hash, now, ttlMs]);
    },
    async useSentCode(subject, contactId, hashes, now, maxAttempts) {
      ensureOpen('ttl');
      checkKey(subject, 'subject');
      checkKey(contactId, 'contactId');
      checkHashes(hashes);
      checkTime(now);
      checkCount(maxAttempts, 'maxAttempts');
      const outcome = Number(await run('useSentCode', [KEYS.sentCode(subject, contactId)], [now, maxAttempts, ...hashes]));
      return SENT_CODE_USES[outcome]!;
    },
    async putChallenge(subject, ceremony, value, now, keepMs) {
      ensureOpen('ttl');
      checkKey(subject, 'subject');
      checkCeremony(ceremony);
      checkChallengeValue(value);
      checkTime(now);
      checkDuration(keepMs, 'keepMs');
      await run('putChallenge', [KEYS.challenge(subject, ceremony)], [value, now, keepMs]);
    },
    takeChallenge: (subject, ceremony, now) => challenge('takeChallenge', subject, ceremony, now),
    peekChallenge: (subject, ceremony, now) => challenge('peekChallenge', subject, ceremony, now),
    async ping() {
      await send('ttl', () => client.ping());
    },
    async close() {
      facets.delete('ttl');
      if (facets.size === 0) await shutdown();
    },
  };

  // The bus: PUBLISH on the command connection, SUBSCRIBE on a connection of its own (a subscribed
  // connection can run nothing else), subscribed again on every 'ready' after a reconnect.
  const channel = `${prefix}invalidate`;
  const listeners = createListeners(onListenerError);
  subscriber.on('ready', () => {
    subscriber.subscribe(channel).catch((error: unknown) => {
      report(error);
      // Not subscribed on a live connection: drop it, and the next 'ready' tries again.
      if (!closed) subscriber.disconnect(true);
    });
  });
  subscriber.on('message', (from, text) => {
    if (from !== channel || typeof text !== 'string') return;
    // From the network: anything that is not exactly one of our messages is dropped.
    const message = decodeInvalidation(text);
    if (message !== undefined) listeners.deliver(message);
  });
  subscriber.on('error', report);
  subscriber.on('node error', report);

  const bus: InvalidationBus = {
    async publish(message) {
      ensureOpen('bus');
      const text = encodeInvalidation(message);
      await send('bus', () => client.publish(channel, text));
    },
    subscribe(listener) {
      ensureOpen('bus');
      return listeners.add(listener);
    },
    async close() {
      facets.delete('bus');
      listeners.clear();
      if (facets.size === 0) await shutdown();
    },
  };

  function shutdown(): Promise<void> {
    closing ??= (async () => {
      closed = true;
      if (probe !== undefined) clearTimeout(probe);
      stateListeners.clear();
      listeners.clear();
      await Promise.all(
        [client, subscriber].map(async (connection) => {
          try {
            if (connection.status === 'ready') await connection.quit();
          } catch {
            // Gone already, or too slow to say goodbye: disconnect below either way.
          } finally {
            if (connection.status !== 'end') connection.disconnect();
          }
        }),
      );
    })();
    return closing;
  }

  // lazyConnect: connect here so that a healthy start is 'ready' before the first request. A failed
  // attempt does not fail the open: reconnects go on, state() says 'connecting', verbs answer 503 meanwhile.
  const firstAttempt = Math.max(config.connectTimeoutMs, 1) + commandTimeoutMs;
  subscriber.connect().catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.connect().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, firstAttempt);
    }),
  ]);
  clearTimeout(timer);
  // The 'ready' event may still be a tick away (Cluster emits it on nextTick): the status is not.
  if (client.status === 'ready') becameReady();

  return {
    ttl,
    bus,
    state: () => health,
    onStateChange(listener) {
      if (typeof listener !== 'function') throw invalid('listener must be a function');
      const entry = (state: RedisHealth) => listener(state);
      stateListeners.add(entry);
      return () => void stateListeners.delete(entry);
    },
    close: shutdown,
  };
}
