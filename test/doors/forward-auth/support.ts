import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { request, type IncomingHttpHeaders } from 'node:http';
import assert from 'node:assert/strict';
import { token } from '../../support/fixture.js';
import { call, type Reply } from '../../support/http.js';

/** Shared by the forward-auth, nginx and middleware tests (not a test file itself). */

export const OATHTOOL = '/usr/bin/oathtool';

/**
 * Why a test that needs an external binary cannot run, or undefined when it can. In CI a missing
 * binary is a failure, not a skip: the CI image installs both.
 */
export function missingBinary(path: string, name: string): string | undefined {
  if (existsSync(path)) return undefined;
  const reason = `${name} not found at ${path}`;
  if (process.env.CI === 'true') throw new Error(`${reason}, and CI=true: install it (apt-get install ${name})`);
  console.log(`# skipped: ${reason} (install the Debian package "${name}" to run this test)`);
  return reason;
}

/** A settable clock starting 1 s into a TOTP step, so one `advanceStep()` always yields a new code. */
export interface FakeClock {
  readonly now: () => number;
  advance(ms: number): void;
  advanceStep(): void;
}

export function createFakeClock(): FakeClock {
  let current = Math.floor(Date.now() / 30_000) * 30_000 + 1_000;
  return {
    now: () => current,
    advance(ms) {
      current += ms;
    },
    advanceStep() {
      current += 30_000;
    },
  };
}

/** The TOTP code for `secret` at `nowMs`, from oathtool (independent of our otplib code); the secret goes on stdin, not argv. */
export function totpCode(secret: string, nowMs: number): string {
  return execFileSync(OATHTOOL, ['--totp', '--base32', `--now=@${Math.floor(nowMs / 1000)}`, '-'], { input: secret, encoding: 'utf8' }).trim();
}

/** A wrong code that is certainly not the current one. */
export function wrongCode(secret: string, nowMs: number): string {
  const right = totpCode(secret, nowMs);
  return right === '000000' ? '111111' : '000000';
}

export function jwtFor(clock: FakeClock, subject: string, scopes: string[] = []): Promise<string> {
  return token(subject, { scopes, now: clock.now(), ttlSeconds: 3600 });
}

/**
 * Enrols and activates a TOTP factor through the gateway's own endpoints (`port` may be the gateway,
 * nginx in front of it, or an app with the guard). Returns the base32 secret. Leaves the clock one
 * step past the confirm code, which the replay guard has used up.
 */
export async function enrolTotp(port: number, jwt: string, clock: FakeClock, prefix = '/.mfa/'): Promise<string> {
  const enrolled = await call(port, 'POST', `${prefix}totp/enroll`, { authorization: `Bearer ${jwt}` });
  assert.equal(enrolled.status, 201, enrolled.text);
  const { factor_id: factorId, secret } = enrolled.json<{ factor_id: string; secret: string }>();
  assert.match(secret, /^[A-Z2-7]+=*$/);
  const body = JSON.stringify({ factor_id: factorId, code: totpCode(secret, clock.now()) });
  const confirmed = await call(port, 'POST', `${prefix}totp/confirm`, { authorization: `Bearer ${jwt}`, 'content-type': 'application/json' }, body);
  assert.equal(confirmed.status, 200, confirmed.text);
  assert.equal(confirmed.json<{ recovery_codes: string[] }>().recovery_codes.length, 10);
  clock.advanceStep();
  return secret;
}

/** One request from a chosen local address (e.g. 127.0.0.2, to be an untrusted loopback peer). */
export function callFrom(localAddress: string, port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The problem+json body every front door answers with, checked field by field. */
export function assertProblem(reply: Reply, status: number, code: string, detail?: string): void {
  assert.equal(reply.status, status, reply.text);
  assert.equal(reply.headers['content-type'], 'application/problem+json');
  assert.equal(reply.headers['cache-control'], 'no-store');
  const body = reply.json<Record<string, unknown>>();
  assert.equal(body.type, `https://mfa-gateway.dev/problems/${code}`);
  assert.equal(body.status, status);
  assert.equal(body.code, code);
  assert.equal(typeof body.title, 'string');
  if (detail !== undefined) assert.equal(body.detail, detail);
  if (reply.headers['x-request-id'] !== undefined) assert.equal(body.request_id, reply.headers['x-request-id']);
}

/** Names of the identity headers in `headers`, for "none were set" assertions. */
export function identityNames(headers: IncomingHttpHeaders): string[] {
  return Object.keys(headers).filter((name) => /^x[-_.]auth[-_.]/i.test(name));
}

export const MFA_CHALLENGE = 'Bearer error="insufficient_user_authentication", error_description="a second factor is required for this route", max_age=43200';
export const INVALID_CODE_CHALLENGE = 'Bearer error="insufficient_user_authentication", error_description="the second factor was not accepted", max_age=43200';
