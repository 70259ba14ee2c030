import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy that sits between a client (the app's database pool) and a server (PostgreSQL,
 * PgBouncer …) and breaks the path on command: reset every connection, turn into a black hole
 * (a dead network path: nothing answers, nothing closes), or slow every chunk down. Tests use it
 * to see how the app behaves when the network fails, which a healthy loopback never shows.
 */

export interface FaultProxyOptions {
  /** Where connections are forwarded to, e.g. '127.0.0.1'. */
  targetHost: string;
  targetPort: number;
}

export interface FaultProxy {
  /** Always '127.0.0.1': the proxy never listens beyond loopback. */
  readonly host: string;
  /** The random port the proxy listens on: point the client at `host:port`. */
  readonly port: number;
  /**
   * Kills every open connection at once (a TCP reset on both the client's and the upstream
   * side), like a restarted middlebox. New connections are accepted and forwarded as before.
   */
  resetAll(): void;
  /**
   * Becomes a black hole: open connections stay open but nothing is forwarded either way, and new
   * connections are accepted but never forwarded, so clients wait as on a dead network path
   * (no reset, no close, only their own timeouts end the wait).
   */
  goSilent(): void;
  /**
   * Ends the silence: new connections are forwarded again. The connections held during the
   * silence are destroyed, since whatever was dropped left their protocol state broken.
   */
  resume(): void;
  /** Delays every chunk forwarded from now on, in both directions, by `ms` (0 for none); order is kept. */
  setLatency(ms: number): void;
  /** How many client connections are open now, forwarded or held. */
  connections(): number;
  /** Stops listening, destroys every connection and clears every timer; safe to call twice. */
  close(): Promise<void>;
}

/**
 * One direction of a connection: chunks from `source` written to `dest`, each after the latency
 * that held when it arrived, never before an earlier one (one timer at most, for the head).
 */
class Lane {
  private readonly queue: Array<{ chunk: Buffer; due: number }> = [];
  private timer: NodeJS.Timeout | undefined;
  private lastDue = 0;
  /** Set once `source` has ended: `dest` is ended after the queue drains. */
  private ending = false;
  /** Set by clear(): a silenced or closing lane forwards nothing ever again. */
  private stopped = false;

  constructor(
    private readonly source: Socket,
    private readonly dest: Socket,
    private readonly latency: () => number,
  ) {}

  push(chunk: Buffer): void {
    if (this.stopped) return;
    const ms = this.latency();
    if (ms <= 0 && this.queue.length === 0) {
      this.write(chunk);
      return;
    }
    this.lastDue = Math.max(Date.now() + ms, this.lastDue);
    this.queue.push({ chunk, due: this.lastDue });
    this.schedule();
  }

  /** `source` sent FIN: pass it on once every queued chunk is written. */
  end(): void {
    if (this.stopped) return;
    this.ending = true;
    this.flush();
  }

  /** Drops every queued chunk and the timer, and stops the lane for good (silence, reset, close). */
  clear(): void {
    this.stopped = true;
    this.queue.length = 0;
    this.ending = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(): void {
    const head = this.queue[0];
    if (this.timer || !head) return;
    this.timer = setTimeout(
      () => {
        this.timer = undefined;
        this.flush();
      },
      Math.max(0, head.due - Date.now()),
    );
  }

  private flush(): void {
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0]!.due <= now) this.write(this.queue.shift()!.chunk);
    if (this.queue.length > 0) this.schedule();
    else if (this.ending && !this.dest.destroyed) this.dest.end();
  }

  private write(chunk: Buffer): void {
    if (this.dest.destroyed) return;
    // Backpressure: a slow reader pauses the writer instead of growing memory without bound.
    if (!this.dest.write(chunk)) {
      this.source.pause();
      this.dest.once('drain', () => {
        if (!this.stopped && !this.source.destroyed) this.source.resume();
      });
    }
  }
}

interface Connection {
  client: Socket;
  upstream?: Socket;
  lanes: Lane[];
  /** Taken in (or caught) by a silence: forwards nothing, and is destroyed on resume. */
  held: boolean;
}

/** Resets a connected TCP socket (the peer sees ECONNRESET), or just destroys one still connecting. */
function kill(socket: Socket | undefined): void {
  if (!socket || socket.destroyed) return;
  if (socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}

/**
 * Starts a fault proxy on 127.0.0.1 at a random port, forwarding to `targetHost:targetPort`.
 * Every socket has an 'error' listener (a reset or refused upstream only closes its pair), and
 * `close()` leaves no timer or socket behind.
 */
export async function startFaultProxy({ targetHost, targetPort }: FaultProxyOptions): Promise<FaultProxy> {
  const open = new Set<Connection>();
  let silent = false;
  let latencyMs = 0;
  let closed = false;
  const latency = () => latencyMs;

  function drop(conn: Connection): void {
    for (const lane of conn.lanes) lane.clear();
    kill(conn.client);
    kill(conn.upstream);
    open.delete(conn);
  }

  function hold(conn: Connection): void {
    conn.held = true;
    for (const lane of conn.lanes) lane.clear();
    conn.client.pause();
    conn.upstream?.pause();
  }

  function forward(conn: Connection): void {
    const { client } = conn;
    const upstream = connect({ host: targetHost, port: targetPort, allowHalfOpen: true });
    conn.upstream = upstream;
    upstream.on('error', () => {}); // refused or reset: 'close' follows and takes the client along
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    const toUpstream = new Lane(client, upstream, latency);
    const toClient = new Lane(upstream, client, latency);
    conn.lanes = [toUpstream, toClient];

    const wire = (source: Socket, lane: Lane, other: Socket) => {
      source.on('data', (chunk: Buffer) => {
        if (!conn.held) lane.push(chunk);
      });
      source.on('end', () => {
        if (!conn.held) lane.end();
      });
      // One side gone for good (error, reset, full close): the other follows, unless a silence
      // holds the pair, when nothing may cross, not even a close.
      source.on('close', () => {
        if (conn.held) return;
        for (const l of conn.lanes) if (l !== lane) l.clear();
        kill(other);
        if (client.destroyed && upstream.destroyed) open.delete(conn);
      });
    };
    wire(client, toUpstream, upstream);
    wire(upstream, toClient, client);
    client.resume();
  }

  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (client) => {
    const conn: Connection = { client, lanes: [], held: false };
    client.on('error', () => {});
    if (closed) {
      client.destroy();
      return;
    }
    open.add(conn);
    client.on('close', () => {
      if (!conn.upstream || conn.upstream.destroyed) open.delete(conn);
    });
    if (silent)
      conn.held = true; // accepted, paused (pauseOnConnect), never forwarded
    else forward(conn);
  });
  server.on('error', () => {});

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the fault proxy has no TCP address');

  return {
    host: '127.0.0.1',
    port: address.port,
    resetAll() {
      for (const conn of [...open]) drop(conn);
    },
    goSilent() {
      silent = true;
      for (const conn of open) hold(conn);
    },
    resume() {
      silent = false;
      for (const conn of [...open]) if (conn.held) drop(conn);
    },
    setLatency(ms: number) {
      if (!Number.isFinite(ms) || ms < 0) throw new Error(`latency must be a non-negative number of ms, got ${ms}`);
      latencyMs = ms;
    },
    connections() {
      let count = 0;
      for (const conn of open) if (!conn.client.destroyed) count++;
      return count;
    },
    async close() {
      if (closed) return;
      closed = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const conn of [...open]) drop(conn);
      await stopped;
    },
  };
}
