import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * A TCP relay between a client under test and a real server, that a test can cut or stop: the
 * network (or the server) going away, as the client sees it, without touching the server.
 */
export interface TcpProxy {
  readonly port: number;
  /** Local ports of the relay's connections to the server (the server sees these as client_port). */
  upstreamPorts(): number[];
  /** Resets every relayed connection at once, as a crashed server or a dropped network would. */
  cut(): void;
  /** Cuts, and stops accepting: connecting is refused until `start`. */
  stop(): Promise<void>;
  /** Accepts again, on the same port. */
  start(): Promise<void>;
  close(): Promise<void>;
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  const relay = (client: Socket): void => {
    const upstream = connect(target.port, target.host);
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.pipe(upstream);
    upstream.pipe(client);
  };
  let server = createServer(relay);
  const port = await listen(server, 0);
  const cut = (): void => {
    for (const { client, upstream } of pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    pairs.clear();
  };
  const stop = (): Promise<void> =>
    new Promise((resolve) => {
      cut();
      if (!server.listening) return resolve();
      server.close(() => resolve());
    });
  return {
    port,
    upstreamPorts: () => [...pairs].map(({ upstream }) => upstream.localPort).filter((p): p is number => p !== undefined),
    cut,
    stop,
    async start() {
      server = createServer(relay);
      await listen(server, port);
    },
    close: stop,
  };
}

/** A loopback listener a test stands up in a server's place. */
export interface StandInServer {
  readonly port: number;
  close(): Promise<void>;
}

/** A listener that accepts connections and never answers: a server hung mid-handshake. */
export async function startSilentServer(): Promise<StandInServer> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined).on('close', () => sockets.delete(socket));
  });
  const port = await listen(server, 0);
  return {
    port,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A listener that resets every connection as it arrives: a server that is down, on a port no one else can take. */
export async function startResettingServer(): Promise<StandInServer> {
  const server = createServer((socket) => socket.resetAndDestroy());
  const port = await listen(server, 0);
  return { port, close: () => new Promise((resolve) => server.close(() => resolve())) };
}
