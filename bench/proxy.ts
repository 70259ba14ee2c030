/**
 * A TCP proxy in front of PostgreSQL that counts round trips: on each connection, a round trip
 * begins each time the client sends bytes after the server has sent bytes since the client's
 * previous send. Pipelined messages (Parse/Bind/Execute/Sync written together, or in several
 * chunks before any answer) are one round trip; a driver that waits for an answer before its
 * next statement pays one per statement. That is the latency a request pays to its database,
 * which query counts alone do not show.
 *
 * Only the counting phases go through it: throughput rounds connect to PostgreSQL directly, so
 * the proxy's own latency is never in a req/s figure.
 * @module
 */
import { connect, createServer, type Socket } from 'node:net';

export interface CountingProxy {
  port: number;
  /** Round trips on every connection since the last reset. */
  roundTrips(): number;
  reset(): void;
  close(): Promise<void>;
}

export async function startCountingProxy(target: { host: string; port: number }): Promise<CountingProxy> {
  let roundTrips = 0;
  const sockets = new Set<Socket>();

  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client).add(upstream);
    // True at the start: the client's first bytes (the startup message) begin a round trip.
    let serverSpoke = true;
    client.on('data', (chunk) => {
      if (serverSpoke) {
        roundTrips += 1;
        serverSpoke = false;
      }
      if (!upstream.write(chunk)) client.pause();
    });
    upstream.on('data', (chunk) => {
      serverSpoke = true;
      if (!client.write(chunk)) upstream.pause();
    });
    upstream.on('drain', () => client.resume());
    client.on('drain', () => upstream.resume());
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const socket of [client, upstream]) {
      socket.on('close', closeBoth);
      socket.on('error', closeBoth);
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the counting proxy has no TCP address');

  return {
    port: address.port,
    roundTrips: () => roundTrips,
    reset: () => {
      roundTrips = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
