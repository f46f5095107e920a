import { createSocket, type RemoteInfo } from 'node:dgram';

/**
 * A loopback NTP server for the clock tests (node:dgram), written from RFC 4330 apart from the
 * gateway's client: it answers every request with its own time, `clock()` moved by
 * `offsetSeconds`, so a gateway on the same fake clock must read exactly that offset. `mode` can
 * make it stay silent, send a kiss-o'-death, or answer with another request's originate time.
 */

export type ResponderMode = 'answer' | 'silent' | { readonly kiss: string } | 'forged';

export interface SntpResponder {
  readonly port: number;
  /** `127.0.0.1:port`, as the policy's `clock.ntp_server`. */
  readonly address: string;
  /** Requests received so far. */
  readonly requests: RemoteInfo[];
  offsetSeconds: number;
  mode: ResponderMode;
  close(): Promise<void>;
}

const NTP_EPOCH_OFFSET_SECONDS = 2_208_988_800;

/** Unix ms → the 8 bytes of an NTP timestamp: seconds since 1900 (mod 2^32), then the 32-bit fraction. */
function writeTimestamp(buffer: Buffer, at: number, ms: number): void {
  const seconds = Math.floor(ms / 1000);
  buffer.writeUInt32BE((seconds + NTP_EPOCH_OFFSET_SECONDS) % 2 ** 32, at);
  buffer.writeUInt32BE(Math.floor(((ms - seconds * 1000) * 2 ** 32) / 1000), at + 4);
}

export function startSntpResponder(options: { readonly clock: () => number; readonly offsetSeconds?: number; readonly mode?: ResponderMode }): Promise<SntpResponder> {
  const socket = createSocket('udp4');
  const requests: RemoteInfo[] = [];
  const responder = {
    port: 0,
    address: '',
    requests,
    offsetSeconds: options.offsetSeconds ?? 0,
    mode: options.mode ?? ('answer' as ResponderMode),
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (request: Buffer, peer: RemoteInfo) => {
    requests.push(peer);
    const mode = responder.mode;
    if (mode === 'silent' || request.length < 48 || (request[0]! & 7) !== 3) return;
    const reply = Buffer.alloc(48);
    const now = options.clock() + responder.offsetSeconds * 1000;
    reply[0] = (0 << 6) | (4 << 3) | 4; // no leap warning, version 4, server
    reply[1] = typeof mode === 'object' ? 0 : 2; // stratum: 0 is a kiss-o'-death
    reply[2] = request[2]!; // poll, echoed
    reply.writeInt8(-20, 3); // precision ~1 µs
    reply.write(typeof mode === 'object' ? mode.kiss : 'TEST', 12, 4, 'latin1'); // reference id
    writeTimestamp(reply, 16, now); // reference time
    if (mode === 'forged') writeTimestamp(reply, 24, options.clock() - 1000);
    else request.copy(reply, 24, 40, 48); // originate = the client's transmit time
    writeTimestamp(reply, 32, now); // receive
    writeTimestamp(reply, 40, now); // transmit
    socket.send(reply, peer.port, peer.address);
  });
  return new Promise((resolve) => {
    socket.bind(0, '127.0.0.1', () => {
      responder.port = socket.address().port;
      responder.address = `127.0.0.1:${responder.port}`;
      resolve(responder);
    });
  });
}
