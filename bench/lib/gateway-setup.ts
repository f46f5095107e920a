import { createHmac, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SignJWT, exportSPKI, generateKeyPair, type CryptoKey } from 'jose';
import { Pool } from 'undici';
import { loadPolicyFile } from '../../src/config/load.js';
import { generateKeyLine } from '../../src/crypto/keyfile.js';
import { loadKeyring } from '../../src/crypto/keyring.js';
import { buildFactor, issueRecoveryCodes } from '../../src/mfa/enrollment.js';
import { openStore } from '../../src/store/open.js';
import { BenchError } from './proc.js';

/**
 * Everything the gateway rows need: a policy file with one route per scenario, signing keys for
 * RS256 and ES256 bearer tokens (public halves in `public_keys:`), the secret-encryption key file,
 * users with TOTP factors, and the codes they present.
 *
 * This is the only file of bench/ that imports the gateway's own modules (src/): when they move,
 * re-point the imports here. bench/servers/gateway.ts and bench/canonical-micro.ts reach src/
 * through the exports below.
 */
export { canonicalizeRequest, type RequestSource } from '../../src/request/canonical.js';
export { createTrustList, type TrustList } from '../../src/request/trust.js';

/** startGateway() loaded on demand, so the harness itself does not load the whole gateway. */
export async function startGatewayModule(configPath: string): Promise<{ port: number; stop(): Promise<void> }> {
  const { startGateway } = await import('../../src/server/gateway.js');
  const gateway = await startGateway({ configPath, watch: false });
  return { port: gateway.address.port, stop: () => gateway.stop() };
}

const ISSUER = 'https://issuer.bench.invalid/';
const AUDIENCE = 'bench-api';
const SCOPE = 'bench:read';
const MFA = '/.mfa/';
export const TOTP_PERIOD_SECONDS = 30;
export const PATHS = { public: '/public/item', bearer: '/bearer/item', mfa: '/mfa/item', authRequest: `${MFA}authz/auth-request` } as const;

// The client side of TOTP (RFC 6238), written here rather than imported from src/ so the benchmark
// does not grade the gateway with its own code.

function base32Decode(text: string): Buffer {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of text.replace(/[\s=-]/g, '').toUpperCase()) {
    const index = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'.indexOf(ch);
    if (index === -1) throw new BenchError('the gateway answered a TOTP secret that is not base32');
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function totpAt(secret: Buffer, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', secret).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  return String((mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

export const stepOf = (nowMs: number): number => Math.floor(nowMs / 1000 / TOTP_PERIOD_SECONDS);

export interface Workspace {
  readonly configPath: string;
  readonly adminPort: number;
  /** Private halves of the bearer-token signing keys. */
  readonly keys: Readonly<Record<'RS256' | 'ES256', CryptoKey>>;
}

export async function createWorkspace(
  dir: string,
  upstreamUrl: string,
  ports: { listen: number; admin: number },
  limits: { maxQueued: number; tokenCacheEntries: number },
  /** The policy's `store:` line; default SQLite in `dir`. */
  storeYaml = `store: { kind: sqlite, path: ${join(dir, 'mfa.db')} }`,
): Promise<Workspace> {
  const rs = await generateKeyPair('RS256', { extractable: true });
  const es = await generateKeyPair('ES256', { extractable: true });
  writeFileSync(join(dir, 'rs256.pem'), await exportSPKI(rs.publicKey));
  writeFileSync(join(dir, 'es256.pem'), await exportSPKI(es.publicKey));
  const keyFile = join(dir, 'secret-keys');
  writeFileSync(keyFile, `${generateKeyLine('bench1', Date.now(), true)}\n`, { mode: 0o600 });
  // Defaults everywhere a user would keep them (pool 100, keep-alive 60 s, retries, session 12 h,
  // TOTP SHA1/6/30 s/±1); only the listeners, the files, the queue bound (the 1,000-connection RSS
  // row queues ~900 requests for 100 upstream connections) and the token cache size (the fresh-code
  // row keeps every user's token warm) are the benchmark's.
  const policy = `# Written by bench/run.ts for one benchmark run.
listen: { host: 127.0.0.1, port: ${ports.listen} }
admin: { host: 127.0.0.1, port: ${ports.admin} }
auth:
  jwt: { issuer: ${ISSUER}, audience: ${AUDIENCE}, algorithms: [RS256, ES256], public_keys: [rs256.pem, es256.pem], cache: { max_entries: ${limits.tokenCacheEntries} } }
mfa: { issuer: mfa-gateway bench, totp: { period: ${TOTP_PERIOD_SECONDS} } }
${storeYaml}
keys: { file: ${keyFile} }
upstreams: { app: { url: ${upstreamUrl} } }
limits: { max_queued: ${limits.maxQueued} }
routes:
  - { name: public, match: { path_prefix: /public/ }, upstream: app, policy: public }
  - { name: bearer, match: { path_prefix: /bearer/ }, upstream: app, policy: bearer, scopes: [${SCOPE}] }
  - { name: mfa, match: { path_prefix: /mfa/ }, upstream: app, policy: mfa, scopes: [${SCOPE}] }
default: deny
`;
  const configPath = join(dir, 'gateway.yaml');
  writeFileSync(configPath, policy);
  return { configPath, adminPort: ports.admin, keys: { RS256: rs.privateKey, ES256: es.privateKey } };
}

export async function bearer(workspace: Workspace, alg: 'RS256' | 'ES256', subject: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ scope: SCOPE }).setProtectedHeader({ alg, typ: 'JWT' }).setIssuer(ISSUER).setAudience(AUDIENCE).setSubject(subject);
  return `Bearer ${await jwt.setIssuedAt(now).setExpirationTime(now + 4 * 3600).setJti(randomUUID()).sign(workspace.keys[alg])}`;
}

export interface User {
  readonly subject: string;
  /** `Bearer <ES256 JWT>`. */
  readonly authorization: string;
  readonly secret: Buffer;
  /** The latest TOTP step this user has presented; the gateway refuses it (and older) again. */
  lastStep: number;
}

/** Runs `task(0 … count-1)` with at most `concurrency` in flight. */
export async function inParallel(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
}

async function post(pool: Pool, path: string, headers: Record<string, string>, body?: unknown): Promise<Record<string, unknown>> {
  const json = body === undefined ? {} : { headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify(body) };
  const reply = await pool.request({ method: 'POST', path, headers, ...json });
  const text = await reply.body.text();
  const parsed = (text.startsWith('{') ? JSON.parse(text) : {}) as Record<string, unknown>;
  const expected = path.endsWith('/enroll') ? 201 : 200;
  if (reply.statusCode !== expected) throw new BenchError(`POST ${path}: expected ${expected}, got ${reply.statusCode} ${text.slice(0, 300)}`);
  return parsed;
}

/** The next code this user may present now: the current step if unused, else the next one. */
export function nextCode(user: User, nowMs: number): { code: string; step: number } | undefined {
  const now = stepOf(nowMs);
  const step = [now, now + 1].find((s) => s > user.lastStep);
  return step === undefined ? undefined : { code: totpAt(user.secret, step), step };
}

/** Enrols and confirms one TOTP factor for `subject` through POST /.mfa/totp/enroll and /confirm. */
export async function enrolUser(pool: Pool, workspace: Workspace, subject: string): Promise<User> {
  const authorization = await bearer(workspace, 'ES256', subject);
  const enrolled = await post(pool, `${MFA}totp/enroll`, { authorization }, {});
  if (typeof enrolled.factor_id !== 'string' || typeof enrolled.secret !== 'string') throw new BenchError(`enrol ${subject}: the answer has no factor_id/secret`);
  const user: User = { subject, authorization, secret: base32Decode(enrolled.secret), lastStep: -1 };
  const next = nextCode(user, Date.now())!;
  await post(pool, `${MFA}totp/confirm`, { authorization }, { factor_id: enrolled.factor_id, code: next.code });
  user.lastStep = next.step;
  return user;
}

/** POST /.mfa/verify with a fresh code: the MFA session the session rows present. */
export async function openSession(pool: Pool, user: User): Promise<string> {
  let next = nextCode(user, Date.now());
  if (next === undefined) {
    // Both usable steps are spent: wait for the next step to begin.
    const periodMs = TOTP_PERIOD_SECONDS * 1000;
    await new Promise((resolve) => setTimeout(resolve, periodMs - (Date.now() % periodMs) + 50));
    next = nextCode(user, Date.now())!;
  }
  const reply = await post(pool, `${MFA}verify`, { authorization: user.authorization, 'x-mfa-token': next.code });
  user.lastStep = next.step;
  if (typeof reply.session_token !== 'string') throw new BenchError(`verify ${user.subject}: the answer has no session_token`);
  return reply.session_token;
}

/**
 * Bulk enrolment before the gateway starts, the way an operator provisions users with
 * `mfa-gateway factors enroll`: the gateway's own factor builder (secret sealed to the row with
 * the policy's key file) and store, an active TOTP factor and recovery codes per user. The HTTP
 * enrolment path renders a 300×300 QR PNG and SVG per user, which makes tens of thousands of
 * enrolments take minutes; the fresh-code row needs that many users (see bench/README.md).
 */
export async function provisionUsers(workspace: Workspace, prefix: string, count: number): Promise<User[]> {
  const policy = loadPolicyFile(workspace.configPath);
  const keyring = loadKeyring({ ...policy.keys });
  const store = await openStore(policy.store, Date.now);
  const users: User[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const subject = `${prefix}${i}`;
      const built = buildFactor({ subject, request: { type: 'totp' }, policy, keyring, now: Date.now(), active: true });
      await store.durable.createFactor(built.record);
      await issueRecoveryCodes(store.durable, keyring, subject, policy.mfa.recoveryCodes.count, Date.now());
      users.push({ subject, authorization: await bearer(workspace, 'ES256', subject), secret: base32Decode(built.secretBase32), lastStep: -1 });
    }
  } finally {
    await store.close();
  }
  return users;
}

export interface PlannedCode {
  readonly step: number;
  /** Index into the users. */
  readonly user: number;
  readonly code: string;
}

/**
 * One use each of (user, step) for the steps first…last, step by step: every user's code for a
 * step before any user's code for the next, skipping steps a user has already spent, so each user's
 * steps arrive in increasing order (a gateway that keeps only the last used step accepts them as
 * well as one that keeps each step). The fresh-code row plans [now, now + 1]: a run that starts in
 * step s ends before s + 2 (runs are far shorter than a period), so all stay in the ±1 window.
 */
export function planCodes(users: readonly User[], first: number, last: number): PlannedCode[] {
  const plan: PlannedCode[] = [];
  for (let step = first; step <= last; step++) {
    users.forEach((user, index) => {
      if (step > user.lastStep) plan.push({ step, user: index, code: totpAt(user.secret, step) });
    });
  }
  return plan;
}

/** Marks the first `sent` codes of a plan used (wrk's Lua reports how many it handed out). */
export function markUsed(users: readonly User[], plan: readonly PlannedCode[], sent: number): void {
  for (const item of plan.slice(0, sent)) {
    const user = users[item.user]!;
    if (item.step > user.lastStep) user.lastStep = item.step;
  }
}
