import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { BenchError } from './proc.js';

/**
 * The client side of TOTP (RFC 6238), written here rather than imported from src/ so the benchmark
 * does not grade the gateway with its own code; checked once against oathtool when it is installed.
 */

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Decode(text: string): Buffer {
  const clean = text.replace(/[\s=-]/g, '').toUpperCase();
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of clean) {
    const index = BASE32.indexOf(ch);
    if (index === -1) throw new BenchError('enrolment answered a secret that is not base32');
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

export type OtpHash = 'sha1' | 'sha256' | 'sha512';

export function totpAt(secret: Buffer, step: number, digits = 6, hash: OtpHash = 'sha1'): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac(hash, secret).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(binary).padStart(digits, '0');
}

export function stepOf(nowMs: number, periodSeconds: number): number {
  return Math.floor(nowMs / 1000 / periodSeconds);
}

/** Cross-checks this generator against oathtool on one secret; returns false when oathtool is absent. */
export function crossCheckWithOathtool(secretBase32: string, periodSeconds: number, nowMs: number): boolean {
  const seconds = Math.floor(nowMs / 1000);
  const result = spawnSync('oathtool', ['--totp', '-b', `--time-step-size=${periodSeconds}s`, `--now=@${seconds}`, secretBase32], { encoding: 'utf8' });
  if (result.error !== undefined || result.status !== 0) return false;
  const theirs = result.stdout.trim();
  const ours = totpAt(base32Decode(secretBase32), stepOf(seconds * 1000, periodSeconds));
  if (theirs !== ours) throw new BenchError(`the benchmark's TOTP generator disagrees with oathtool (${ours} vs ${theirs})`);
  return true;
}
