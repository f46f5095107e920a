import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import type { Clock } from './clock.js';

/**
 * One SNTP exchange (RFC 4330): how far `clock` is from an NTP server's. A 48-byte client request
 * carries our transmit time T1; the server answers with it as the originate time, and its receive
 * (T2) and transmit (T3) times; T4 is ours on arrival. Timestamps are 64-bit fixed point (seconds
 * since 1900 and a 32-bit fraction), and only their differences are used, taken modulo 2^64 as
 * signed numbers: that is RFC 4330's rule for the 2036 era rollover, and it stays exact.
 */

export interface SntpServer {
  readonly host: string;
  readonly port: number;
}

export interface SntpReading {
  /** Seconds to add to `clock` to get the server's time: ((T2 − T1) + (T3 − T4)) / 2. */
  readonly offsetSeconds: number;
  /** The round trip less the server's own time: (T4 − T1) − (T3 − T2). */
  readonly delaySeconds: number;
  readonly stratum: number;
}

/** `host:port`, an IPv6 address in brackets: for logs and messages. */
export function serverName(server: SntpServer): string {
  return `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`;
}

/** Seconds from 1900 (the NTP era) to 1970. */
const UNIX_EPOCH_NTP_SECONDS = 2_208_988_800n;
const PACKET_BYTES = 48;
/** Leap indicator 0, version 4, mode 3 (client). */
const CLIENT_REQUEST = (0 << 6) | (4 << 3) | 3;
const MODE_SERVER = 4;
const FRACTION = 2 ** 32;

/** Unix ms → NTP timestamp (mod 2^64, so a time past 2036 wraps into era 1 as the wire format does). */
export function toNtpTimestamp(ms: number): bigint {
  return BigInt.asUintN(64, ((BigInt(Math.round(ms)) + UNIX_EPOCH_NTP_SECONDS * 1000n) << 32n) / 1000n);
}

/** a − b in seconds, both NTP timestamps (any era, within 68 years of each other). */
function between(a: bigint, b: bigint): number {
  return Number(BigInt.asIntN(64, a - b)) / FRACTION;
}

/**
 * The reading from a server's reply, an error message for a reply that refuses to tell the time,
 * or undefined for a datagram that is not the answer to this request (another one, or forged
 * without our T1): that one is ignored and the answer still awaited.
 */
function readReply(reply: Buffer, t1: bigint, t4: bigint): SntpReading | string | undefined {
  if (reply.length < PACKET_BYTES) return undefined;
  const version = (reply[0]! >> 3) & 7;
  if ((reply[0]! & 7) !== MODE_SERVER || version < 3 || version > 4 || reply.readBigUInt64BE(24) !== t1) return undefined;
  const stratum = reply[1]!;
  // RFC 4330 §8: stratum 0 is a kiss-o'-death, its code in the reference identifier (e.g. RATE).
  if (stratum === 0) return `kiss-o'-death ${JSON.stringify(reply.toString('latin1', 12, 16).replace(/[^\x20-\x7e]/g, '?'))}`;
  if (reply[0]! >> 6 === 3 || stratum > 15) return 'the server is not synchronised itself';
  const t2 = reply.readBigUInt64BE(32);
  const t3 = reply.readBigUInt64BE(40);
  if (t3 === 0n) return 'the answer has no transmit time';
  return { offsetSeconds: (between(t2, t1) + between(t3, t4)) / 2, delaySeconds: between(t4, t1) - between(t3, t2), stratum };
}

/**
 * Asks `server` once. Rejects with an Error saying why: no answer within `timeoutMs`, a refusal,
 * a DNS or socket error. Neither the socket nor the timer keeps the process alive.
 */
export async function querySntp(server: SntpServer, options: { readonly timeoutMs: number; readonly clock: Clock }): Promise<SntpReading> {
  const { clock, timeoutMs } = options;
  const { address, family } = await lookup(server.host);
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  socket.unref();
  try {
    return await new Promise<SntpReading>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      timer.unref();
      const fail = (error: Error): void => {
        clearTimeout(timer);
        reject(error);
      };
      const request = Buffer.alloc(PACKET_BYTES);
      request[0] = CLIENT_REQUEST;
      let t1 = 0n;
      socket.on('error', fail);
      // Connected: the kernel drops datagrams from anyone but the server, and reports ICMP refusals.
      socket.on('message', (reply: Buffer) => {
        const read = readReply(reply, t1, toNtpTimestamp(clock()));
        if (read === undefined) return;
        if (typeof read === 'string') return fail(new Error(read));
        clearTimeout(timer);
        resolve(read);
      });
      socket.connect(server.port, address, () => {
        t1 = toNtpTimestamp(clock());
        request.writeBigUInt64BE(t1, 40);
        socket.send(request, (error) => {
          if (error) fail(error);
        });
      });
    });
  } finally {
    socket.close();
  }
}
