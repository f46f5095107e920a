import { execFileSync } from 'node:child_process';
import type { OtpAlgorithm } from '../../src/config/types.js';
import { OATHTOOL } from './binaries.js';

/**
 * The authenticator app of every test: `oathtool`, an implementation independent of ours, so no test
 * grades the gateway's OTP code with that same code. Secrets go on stdin (the `-` key), never on argv.
 */

function oathtool(args: readonly string[], secret: string): string {
  return execFileSync(OATHTOOL, [...args, '-'], { input: secret, encoding: 'utf8' }).trim();
}

export interface TotpOptions {
  readonly algorithm?: OtpAlgorithm;
  readonly digits?: number;
  readonly period?: number;
}

function totpArgs(atMs: number, options: TotpOptions): string[] {
  const algorithm = (options.algorithm ?? 'SHA1').toLowerCase();
  return [`--totp=${algorithm}`, '--base32', '-d', String(options.digits ?? 6), '-s', `${options.period ?? 30}s`, `--now=@${Math.floor(atMs / 1000)}`];
}

/** The TOTP code for a base32 secret at `atMs` (epoch ms). */
export function oathTotp(secretBase32: string, atMs: number, options: TotpOptions = {}): string {
  return oathtool(totpArgs(atMs, options), secretBase32);
}

/** The HOTP code for a base32 secret at `counter`. */
export function oathHotp(secretBase32: string, counter: number, digits = 6): string {
  return oathtool(['--base32', '-d', String(digits), '-c', String(counter)], secretBase32);
}

/** The HOTP code for a hex secret at `counter`. */
export function oathHotpHex(hexSecret: string, counter: number, digits = 6): string {
  return oathtool(['-d', String(digits), '-c', String(counter)], hexSecret);
}

/**
 * A 6-digit code that is the code of no step within ±20 of `atMs` (SHA1, 30 s), so a check reads it
 * as wrong, never as a drifting clock by chance.
 */
export function wrongTotp(secretBase32: string, atMs: number): string {
  const near = new Set(oathtool([...totpArgs(atMs - 20 * 30_000, {}), '-w', '40'], secretBase32).split('\n'));
  for (let n = 0; ; n++) {
    const candidate = String(n).padStart(6, '0');
    if (!near.has(candidate)) return candidate;
  }
}
