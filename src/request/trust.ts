import { BlockList, isIP, isIPv4 } from 'node:net';
import { RequestConfigError } from './errors.js';

/** The peers whose X-Forwarded-* headers are believed. Empty by default: nobody is trusted. */
export interface TrustList {
  /** True for an address inside one of the ranges; false for anything else, garbage included. */
  has(ip: string): boolean;
  /** Number of ranges; 0 means every check is false without looking. */
  readonly size: number;
}

const MAPPED_PREFIX = '::ffff:';
const MAX_REMEMBERED = 4096;

/** `::ffff:10.0.0.1` → `10.0.0.1`; any other address unchanged. Dual-stack sockets report IPv4 peers this way. */
export function unmapIPv4(ip: string): string {
  if (ip.length > MAPPED_PREFIX.length && ip.charCodeAt(0) === 58 /* : */ && ip.slice(0, MAPPED_PREFIX.length).toLowerCase() === MAPPED_PREFIX) {
    const rest = ip.slice(MAPPED_PREFIX.length);
    if (isIPv4(rest)) return rest;
  }
  return ip;
}

function parsePrefix(option: string, text: string, max: number): number {
  // Digits only and no leading zero: `/08` or `/+8` are typos, not prefixes.
  if (!/^(0|[1-9][0-9]{0,2})$/.test(text)) throw new RequestConfigError(option, 'prefix length must be a decimal number');
  const bits = Number(text);
  if (bits > max) throw new RequestConfigError(option, `prefix length must be at most ${max}`);
  return bits;
}

/**
 * Compiles CIDRs (`10.0.0.0/8`, `fd00::/8`) and single addresses (`127.0.0.1`, `::1`) into a
 * lookup. IPv4 ranges also match IPv4-mapped IPv6 peers (`::ffff:10.1.2.3`), and a mapped entry
 * is stored as the IPv4 range it names. Throws RequestConfigError naming the first bad entry.
 */
export function createTrustList(cidrs: readonly string[]): TrustList {
  if (!Array.isArray(cidrs)) throw new RequestConfigError('trusted_proxies', 'must be a list of CIDRs');
  const list = new BlockList();
  cidrs.forEach((entry, index) => {
    const option = `trusted_proxies[${index}]`;
    if (typeof entry !== 'string' || entry.length === 0) throw new RequestConfigError(option, 'must be a non-empty CIDR string');
    const slash = entry.indexOf('/');
    if (slash !== entry.lastIndexOf('/')) throw new RequestConfigError(option, 'is not a CIDR (more than one "/")');
    let address = slash === -1 ? entry : entry.slice(0, slash);
    // Zone ids (`fe80::1%eth0`) would be silently dropped by BlockList; refuse rather than guess.
    if (address.includes('%')) throw new RequestConfigError(option, 'must not carry an IPv6 zone id');
    let family = isIP(address);
    if (family === 0) throw new RequestConfigError(option, 'is not an IPv4 or IPv6 address or CIDR');
    let bits = slash === -1 ? (family === 4 ? 32 : 128) : parsePrefix(option, entry.slice(slash + 1), family === 4 ? 32 : 128);
    const unmapped = family === 6 ? unmapIPv4(address) : address;
    if (unmapped !== address) {
      if (bits < 96) throw new RequestConfigError(option, 'an IPv4-mapped range needs a prefix of at least 96');
      address = unmapped;
      family = 4;
      bits -= 96;
    }
    list.addSubnet(address, bits, family === 4 ? 'ipv4' : 'ipv6');
  });
  const size = cidrs.length;
  // BlockList.check builds a SocketAddress per call (microseconds); the same few proxy and client
  // addresses come back on every request, so answers are remembered, within a bound.
  const answers = new Map<string, boolean>();
  return Object.freeze({
    size,
    has(ip: string): boolean {
      if (size === 0) return false;
      const known = answers.get(ip);
      if (known !== undefined) return known;
      const family = isIP(ip);
      const answer = family !== 0 && list.check(ip, family === 4 ? 'ipv4' : 'ipv6');
      if (answers.size >= MAX_REMEMBERED) answers.clear();
      answers.set(ip, answer);
      return answer;
    },
  });
}
