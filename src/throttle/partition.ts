import { isIPv4, isIPv6 } from 'node:net';

/**
 * Which bucket a client address counts in. An IPv4 address is its own bucket. An IPv6 address
 * counts as its /64: one subscriber, host or VM usually holds a whole /64 (RFC 6177), and counting
 * single addresses would let it take 2^64 fresh quotas. The address is already resolved through
 * `trusted_proxies` (RequestView.clientIp) and IPv4-mapped IPv6 is already unmapped.
 */
export function addressPartition(ip: string): string {
  if (isIPv4(ip)) return ip;
  const zoneless = ip.split('%', 1)[0]!;
  if (!isIPv6(zoneless)) return ip;
  return `${ipv6Groups(zoneless).slice(0, 4).join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address, in lower-case hex without leading zeros. */
function ipv6Groups(ip: string): string[] {
  const [head, tail] = ip.includes('::') ? ip.split('::', 2) as [string, string] : [ip, undefined];
  const parse = (part: string): string[] => {
    if (part === '') return [];
    const groups: string[] = [];
    for (const piece of part.split(':')) {
      if (piece.includes('.')) {
        // An embedded IPv4 tail (`64:ff9b::192.0.2.1`) is the last two groups.
        const [a, b, c, d] = piece.split('.').map(Number) as [number, number, number, number];
        groups.push(((a << 8) | b).toString(16), ((c << 8) | d).toString(16));
      } else {
        groups.push(parseInt(piece, 16).toString(16));
      }
    }
    return groups;
  };
  const first = parse(head);
  if (tail === undefined) return first;
  const last = parse(tail);
  return [...first, ...Array<string>(8 - first.length - last.length).fill('0'), ...last];
}
