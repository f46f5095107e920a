import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportSPKI, generateKeyPair, type CryptoKey } from 'jose';
import { Pool } from 'undici';
import { generateKeyLine } from '../../src/crypto/keyfile.js';
import { BenchError } from './proc.js';
import { base32Decode, stepOf, totpAt } from './totp.js';

/**
 * Everything the gateway rows need: a policy file with one route per scenario, signing keys for
 * RS256 and ES256 bearer tokens (public halves in `public_keys:`), the secret-encryption key file,
 * and users enrolled with TOTP through the gateway's own endpoints.
 */

export const ISSUER = 'https://issuer.bench.invalid/';
export const AUDIENCE = 'bench-api';
export const SCOPE = 'bench:read';
export const MFA_PREFIX = '/.mfa/';
export const TOTP_PERIOD_SECONDS = 30;

export const PATHS = {
  public: '/public/item',
  bearer: '/bearer/item',
  mfa: '/mfa/item',
  authRequest: `${MFA_PREFIX}authz/auth-request`,
} as const;

export interface Signers {
  readonly rs256: CryptoKey;
  readonly es256: CryptoKey;
}

export interface GatewayWorkspace {
  readonly configPath: string;
  readonly signers: Signers;
}

export interface PolicyOptions {
  readonly dir: string;
  readonly upstreamUrl: string;
  readonly listenPort: number;
  readonly adminPort: number;
  /** Requests allowed to wait for an upstream connection (the 1,000-connection RSS row queues ~900). */
  readonly maxQueued: number;
  /** Validated-token cache entries (default 10,000); the fresh-code row keeps every user's token warm. */
  readonly tokenCacheEntries: number;
}

export async function createGatewayWorkspace(options: PolicyOptions): Promise<GatewayWorkspace> {
  const rs = await generateKeyPair('RS256', { extractable: true });
  const es = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(join(options.dir, 'rs256.pem'), await exportSPKI(rs.publicKey));
  writeFileSync(join(options.dir, 'es256.pem'), await exportSPKI(es.publicKey));
  const keyFile = join(options.dir, 'secret-keys');
  writeFileSync(keyFile, `${generateKeyLine('bench1', Date.now(), true)}\n`, { mode: 0o600 });

  // Defaults everywhere a user would keep them (pool 100, keep-alive 60 s, retries, session 12 h,
  // TOTP SHA1/6/30 s/±1); only the listeners, the files, the queue bound and the token cache size
  // are the benchmark's.
  const policy = `# Written by bench/run.ts for one benchmark run.
listen: { host: 127.0.0.1, port: ${options.listenPort} }
admin: { host: 127.0.0.1, port: ${options.adminPort} }
auth:
  jwt:
    issuer: ${ISSUER}
    audience: ${AUDIENCE}
    algorithms: [RS256, ES256]
    public_keys: [rs256.pem, es256.pem]
    cache: { max_entries: ${options.tokenCacheEntries} }
mfa:
  issuer: mfa-gateway bench
  totp: { period: ${TOTP_PERIOD_SECONDS} }
store: { kind: sqlite, path: ${join(options.dir, 'mfa.db')} }
keys: { file: ${keyFile} }
upstreams:
  app:
    url: ${options.upstreamUrl}
limits: { max_queued: ${options.maxQueued} }
routes:
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: bearer, match: { path_prefix: /bearer/ }, upstream: app, policy: bearer, scopes: [${SCOPE}] }
  - { name: mfa, match: { path_prefix: /mfa/ }, upstream: app, policy: mfa, scopes: [${SCOPE}] }
default: deny
`;
  const configPath = join(options.dir, 'gateway.yaml');
  writeFileSync(configPath, policy);
  return { configPath, signers: { rs256: rs.privateKey, es256: es.privateKey } };
}

export function signToken(signers: Signers, alg: 'RS256' | 'ES256', subject: string, ttlSeconds = 4 * 3600): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ scope: SCOPE })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSeconds)
    .setJti(randomUUID())
    .sign(alg === 'RS256' ? signers.rs256 : signers.es256);
}

// ---------------------------------------------------------------------------------------------
// Enrolment and codes

export interface EnrolledUser {
  readonly subject: string;
  /** `Bearer <ES256 JWT>`. */
  readonly authorization: string;
  readonly factorId: string;
  readonly secret: Buffer;
  /** The latest TOTP step this user has presented; the gateway refuses it (and older) again. */
  lastStep: number;
}

interface JsonReply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Record<string, unknown>;
}

export interface GatewayClient {
  call(method: 'GET' | 'POST', path: string, headers: Record<string, string>, body?: unknown): Promise<JsonReply>;
  close(): Promise<void>;
}

export function gatewayClient(port: number, connections = 16): GatewayClient {
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections });
  return {
    async call(method, path, headers, body) {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const reply = await pool.request({
        method,
        path,
        headers: payload === undefined ? headers : { ...headers, 'content-type': 'application/json' },
        ...(payload !== undefined ? { body: payload } : {}),
      });
      const text = await reply.body.text();
      let parsed: Record<string, unknown> = {};
      try {
        parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
      } catch {
        parsed = { text };
      }
      return { status: reply.statusCode, headers: reply.headers, body: parsed };
    },
    close: () => pool.close(),
  };
}

function expectStatus(what: string, reply: JsonReply, status: number): void {
  if (reply.status !== status) {
    const code = typeof reply.body.code === 'string' ? ` ${reply.body.code}` : '';
    const detail = typeof reply.body.detail === 'string' ? ` (${reply.body.detail})` : '';
    throw new BenchError(`${what}: expected ${status}, got ${reply.status}${code}${detail}`);
  }
}

/** The next code this user may present now: the current step if unused, else the next one. */
export function nextCode(user: EnrolledUser, nowMs: number): { code: string; step: number } | undefined {
  const now = stepOf(nowMs, TOTP_PERIOD_SECONDS);
  for (const step of [now, now + 1]) {
    if (step > user.lastStep) return { code: totpAt(user.secret, step), step };
  }
  return undefined;
}

/** Enrols and confirms one TOTP factor for `subject` through POST /.mfa/totp/enroll and /confirm. */
export async function enrolUser(client: GatewayClient, signers: Signers, subject: string): Promise<EnrolledUser> {
  const authorization = `Bearer ${await signToken(signers, 'ES256', subject)}`;
  const enrolled = await client.call('POST', `${MFA_PREFIX}totp/enroll`, { authorization }, {});
  expectStatus(`enrol ${subject}`, enrolled, 201);
  const factorId = enrolled.body.factor_id;
  const secretText = enrolled.body.secret;
  if (typeof factorId !== 'string' || typeof secretText !== 'string') throw new BenchError(`enrol ${subject}: the answer has no factor_id/secret`);
  const user: EnrolledUser = { subject, authorization, factorId, secret: base32Decode(secretText), lastStep: -1 };
  const next = nextCode(user, Date.now())!;
  const confirmed = await client.call('POST', `${MFA_PREFIX}totp/confirm`, { authorization }, { factor_id: factorId, code: next.code });
  expectStatus(`confirm ${subject}`, confirmed, 200);
  user.lastStep = next.step;
  return user;
}

/** Enrols `count` users with `concurrency` requests in flight; reports progress every few seconds. */
export async function enrolMany(client: GatewayClient, signers: Signers, prefix: string, count: number, concurrency: number, progress: (done: number) => void): Promise<EnrolledUser[]> {
  const users: EnrolledUser[] = new Array<EnrolledUser>(count);
  let next = 0;
  let done = 0;
  let lastReport = Date.now();
  async function worker(): Promise<void> {
    while (next < count) {
      const index = next++;
      users[index] = await enrolUser(client, signers, `${prefix}${index}`);
      done++;
      if (Date.now() - lastReport > 5000) {
        lastReport = Date.now();
        progress(done);
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return users;
}

/** POST /.mfa/verify with a fresh code: the MFA session the session rows present. */
export async function openSession(client: GatewayClient, user: EnrolledUser): Promise<string> {
  let next = nextCode(user, Date.now());
  if (next === undefined) {
    // Both usable steps are spent: wait for the next step to begin.
    const periodMs = TOTP_PERIOD_SECONDS * 1000;
    await new Promise((resolve) => setTimeout(resolve, periodMs - (Date.now() % periodMs) + 50));
    next = nextCode(user, Date.now())!;
  }
  const reply = await client.call('POST', `${MFA_PREFIX}verify`, { authorization: user.authorization, 'x-mfa-token': next.code });
  expectStatus(`verify ${user.subject}`, reply, 200);
  user.lastStep = next.step;
  const token = reply.body.session_token;
  if (typeof token !== 'string') throw new BenchError(`verify ${user.subject}: the answer has no session_token`);
  return token;
}

/**
 * One use each of (user, step) for a run starting now: every user's current step first, then
 * every user's next step, so each user's steps are presented in increasing order (a gateway that
 * keeps only the last used step accepts them as well as one that keeps each step). A run that
 * starts in step s ends before s+2 (runs are far shorter than a period), so all stay in the ±1 window.
 */
export interface CodePlan {
  readonly users: readonly EnrolledUser[];
  /** Index into `users` and the code, in the order wrk sends them. */
  readonly order: ReadonlyArray<{ readonly user: number; readonly code: string; readonly step: number }>;
}

export function planCodes(users: readonly EnrolledUser[], nowMs: number): CodePlan {
  const now = stepOf(nowMs, TOTP_PERIOD_SECONDS);
  const order: Array<{ user: number; code: string; step: number }> = [];
  for (const step of [now, now + 1]) {
    users.forEach((user, index) => {
      if (step > user.lastStep) order.push({ user: index, code: totpAt(user.secret, step), step });
    });
  }
  return { users, order };
}

/** Marks the first `sent` codes of a plan used (wrk's Lua reports how many it handed out). */
export function markUsed(plan: CodePlan, sent: number): void {
  for (let i = 0; i < Math.min(sent, plan.order.length); i++) {
    const item = plan.order[i]!;
    const user = plan.users[item.user]!;
    if (item.step > user.lastStep) user.lastStep = item.step;
  }
}
