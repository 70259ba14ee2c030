import { connect, type Socket } from 'node:net';
import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import * as schema from './schema';
import { admitQuery, LOCK_WAIT_MS, throwIfDeadlinePassed, type PendingQuery } from './deadline';

export type Schema = typeof schema;
/** The one database type services see, whichever engine is behind it. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
/** A service that only reads takes either: the whole database, or the transaction it runs inside. */
export type DbOrTx = Db | Tx;
/** Runs `work` in one transaction: the request's own (see `trpc/transaction.ts`). */
export type Transact = <T>(work: (tx: Tx) => Promise<T>) => Promise<T>;

export type Engine = 'postgres' | 'pglite';

export type QueryListener = (query: string, params: unknown[]) => void;

export type Readiness = 'ready' | 'read-only' | 'unreachable';

export interface DatabaseHandle {
  db: Db;
  engine: Engine;
  /** Rows of a raw query, the same shape on both engines. */
  rows<T = Record<string, unknown>>(query: ReturnType<typeof sql>): Promise<T[]>;
  /** Calls `listener` with the SQL and parameters of every query the app sends through drizzle; returns the unsubscribe function. */
  onQuery(listener: QueryListener): () => void;
  /**
   * Whether the database can serve writes, as one query within `timeoutMs` finds it: `ready`,
   * `read-only` (a hot standby, or a primary made read-only: writes would fail with 25006), or
   * `unreachable` (no answer in time).
   */
  readiness(timeoutMs: number): Promise<Readiness>;
  /**
   * Closes the connections: statements still running get up to `timeoutMs` (PostgreSQL; 5 s by
   * default) to finish, then every connection is destroyed, whether its server answers or not.
   */
  close(timeoutMs?: number): Promise<void>;
  /** postgres.js client (PostgreSQL only), under the app's queries: for tests and raw queries. */
  postgresClient?: postgres.Sql;
  /** Where migrations open a client of their own (PostgreSQL only): the server itself, never a pooler. */
  migrationUrl?: string;
  /** PGlite instance (embedded only): for snapshots in tests. */
  pglite?: PGlite;
}

/** The default budget of one request's database work (DATABASE_DEADLINE_MS). */
export const DEFAULT_DEADLINE_MS = 2000;

export interface PostgresOptions {
  url: string;
  /** For migrations, when `url` goes through a pooler (default: `url`). */
  migrationUrl?: string;
  prepare: boolean;
  /** Connections the pool may hold open at once (DATABASE_POOL_MAX). */
  max?: number;
  /** Seconds an idle connection stays open; 0 keeps it open (DATABASE_IDLE_TIMEOUT_S). */
  idleTimeoutS?: number;
  /** The request deadline (see db/deadline.ts); connections and stalls are bounded by it. */
  deadlineMs?: number;
  /** The server-side bound on one statement; by default the longest a request may take. */
  statementTimeoutMs?: number;
}

/** A drizzle logger that fans queries out to listeners (tests count round trips with it). */
function queryListeners() {
  const listeners = new Set<QueryListener>();
  return {
    logger: { logQuery: (query: string, params: unknown[]) => listeners.forEach((listener) => listener(query, params)) },
    onQuery: (listener: QueryListener) => {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };
}

export function openPostgres({
  url,
  migrationUrl = url,
  prepare,
  max = 10,
  idleTimeoutS = 60,
  deadlineMs = DEFAULT_DEADLINE_MS,
  statementTimeoutMs,
}: PostgresOptions): DatabaseHandle {
  // Nothing of a request waits longer than its deadline plus one deliberate lock wait.
  const longestRequestMs = deadlineMs + LOCK_WAIT_MS;
  // No single statement of a request waits longer than its deadline, or than a deliberate
  // lock wait (whose lock_timeout fires first): a socket silent past that is stalled.
  const watchdog = stallWatchdog(Math.max(deadlineMs, LOCK_WAIT_MS) + 500);
  const client = postgres(url, {
    max,
    prepare,
    connect_timeout: Math.max(1, Math.ceil(deadlineMs / 1000)),
    // postgres.js closes a connection idle this long (0: never), so a quiet replica gives its
    // connection slots back to the others.
    idle_timeout: idleTimeoutS,
    backoff: reconnectBackoff,
    onnotice: () => {},
    // A statement that runs (or waits for a lock) longer than this is cancelled by the server.
    connection: { application_name: 'workspaces-api', statement_timeout: statementTimeoutMs ?? longestRequestMs },
    socket: watchdog.socket,
  } as postgres.Options<Record<string, postgres.PostgresType>>);
  const { logger, onQuery } = queryListeners();
  const db = drizzlePostgres(deadlineAware(client, prepare) as unknown as postgres.Sql, { schema, logger }) as unknown as Db;
  return {
    db,
    onQuery,
    engine: 'postgres',
    postgresClient: client,
    migrationUrl,
    // postgres.js answers a raw query with the rows themselves.
    rows: async <T>(query: ReturnType<typeof sql>) => {
      const rows: unknown = await db.execute(query);
      return rows as T[];
    },
    readiness: (timeoutMs) =>
      withTimeout(
        client`select pg_is_in_recovery() or current_setting('transaction_read_only') = 'on' as read_only`.then(([row]) =>
          row?.read_only ? 'read-only' : 'ready',
        ),
        timeoutMs,
      ),
    close: async (timeoutMs = 5000) => {
      watchdog.stop();
      // postgres.js waits for running statements and each server's goodbye, then destroys what
      // is left at the timeout (in seconds): a server that is down or silent never says goodbye.
      await client.end({ timeout: timeoutMs / 1000 });
    },
  };
}

/** The part of a postgres.js client (or transaction) that drizzle uses. */
interface DriverClient {
  options: unknown;
  unsafe(query: string, params?: unknown[], options?: unknown): PendingQuery;
  begin(...args: unknown[]): Promise<unknown>;
  savepoint(...args: unknown[]): Promise<unknown>;
}

/** Statements longer than this are never prepared: batch inserts, whose text varies with the batch's size. */
export const PREPARED_STATEMENT_MAX_CHARS = 8192;

/**
 * The client drizzle is given: every query is admitted by the request's deadline (refused
 * once it has passed, withdrawn from the queue when it passes), and a transaction whose
 * request timed out while it waited for a connection does no work.
 *
 * It also decides what is prepared. drizzle asks postgres.js for `prepare: false` on every
 * query it did not `.prepare(name)` itself, which would make DATABASE_PREPARE a no-op: here
 * DATABASE_PREPARE=true prepares every statement of at most PREPARED_STATEMENT_MAX_CHARS (parsed
 * and planned once per connection, so a connection's statements stay few and bounded), and
 * false prepares nothing (for PgBouncer in transaction mode).
 */
function deadlineAware(sql: DriverClient | postgres.Sql | postgres.TransactionSql, prepare: boolean): DriverClient {
  const driver = sql as unknown as DriverClient;
  const inScope =
    (method: 'begin' | 'savepoint') =>
    (...args: unknown[]) => {
      throwIfDeadlinePassed();
      const work = args.pop() as (tx: DriverClient) => unknown;
      return driver[method](...args, (tx: DriverClient) => {
        throwIfDeadlinePassed();
        return work(deadlineAware(tx, prepare));
      });
    };
  return {
    options: driver.options,
    unsafe: (query, params, options) =>
      admitQuery(() =>
        driver.unsafe(query, params, { ...(options as object), prepare: prepare && query.length <= PREPARED_STATEMENT_MAX_CHARS }),
      ),
    begin: inScope('begin'),
    savepoint: inScope('savepoint'),
  };
}

/**
 * Opens the pool's sockets and destroys any whose statements have had no answer for
 * `stalledAfterMs`: past that, every request that could be waiting on it has timed out, and a
 * connection on a silent path must not be handed to the next one. postgres.js then settles
 * the connection's queries with CONNECTION_CLOSED and reconnects. (Bytes are counted on the
 * TCP socket, so this sees plain connections; a TLS connection relies on the request deadline
 * and the server's statement_timeout.)
 */
function stallWatchdog(stalledAfterMs: number) {
  type Seen = { read: number; writtenAtRead: number; waitingSince: number | undefined };
  const sockets = new Map<Socket, Seen>();
  const timer = setInterval(
    () => {
      const now = Date.now();
      for (const [socket, seen] of sockets) {
        if (socket.destroyed) {
          sockets.delete(socket);
        } else if (socket.bytesRead !== seen.read) {
          Object.assign(seen, { read: socket.bytesRead, writtenAtRead: socket.bytesWritten, waitingSince: undefined });
        } else if (socket.bytesWritten > seen.writtenAtRead) {
          seen.waitingSince ??= now;
          if (now - seen.waitingSince >= stalledAfterMs) {
            sockets.delete(socket);
            socket.destroy(Object.assign(new Error('The database did not answer on this connection'), { code: 'CONNECTION_STALLED' }));
          }
        }
      }
    },
    Math.min(250, stalledAfterMs / 4),
  );
  timer.unref();
  return {
    /**
     * postgres.js's `socket` option: it writes the startup message at once, which the socket
     * buffers until connected. `hostIndex` is the host of a multi-host URL this attempt is for
     * (the patched driver passes it and moves on to the next host after a failed attempt).
     */
    socket: (options: { host: string[]; port: number[]; path?: string | false }, hostIndex = 0): Socket => {
      const host = options.host[hostIndex] ?? options.host[0]!;
      const port = options.port[hostIndex] ?? options.port[0]!;
      const socket = options.path ? connect(options.path) : connect(port, host);
      Object.assign(socket, { host, port });
      sockets.set(socket, { read: 0, writtenAtRead: 0, waitingSince: undefined });
      socket.once('close', () => sockets.delete(socket));
      if (!options.path) socket.once('connect', () => refuseSelfConnection(socket));
      return socket;
    },
    stop: () => clearInterval(timer),
  };
}

/**
 * Seconds before the next connection attempt after `attempt` failures in a row: 50 ms, doubling
 * to at most 2 s, with jitter (so replicas do not dial in step). postgres.js's default backs
 * off to 10-20 s, which kept the service down long after its database was back; none at all
 * was a busy loop while no host of a multi-host URL qualified.
 */
export const reconnectBackoff = (attempt: number) => Math.min(0.05 * 2 ** attempt, 2) * (0.75 + Math.random() / 4);

/**
 * A TCP connection to a port nobody listens on, in the ephemeral range of this machine, can
 * be given that same port as its own source: it connects to itself (a "self-connection"),
 * holds the port, and keeps the database from binding it when it starts. Such a socket is
 * destroyed as refused.
 */
function refuseSelfConnection(socket: Socket): void {
  if (socket.localPort === socket.remotePort && socket.localAddress === socket.remoteAddress) {
    socket.destroy(Object.assign(new Error('The connection reached itself, not a database'), { code: 'ECONNREFUSED' }));
  }
}

/** Wraps an open PGlite instance (in a directory, in memory, or restored from a snapshot). */
export function wrapPglite(pglite: PGlite): DatabaseHandle {
  serveEventLoopBetweenMessages(pglite);
  const { logger, onQuery } = queryListeners();
  const db = drizzlePglite(pglite, { schema, logger }) as unknown as Db;
  return {
    db,
    onQuery,
    engine: 'pglite',
    pglite,
    // PGlite answers a raw query with `{ rows }`.
    rows: async <T>(query: ReturnType<typeof sql>) => {
      const result: unknown = await db.execute(query);
      return (result as { rows: T[] }).rows;
    },
    readiness: (timeoutMs) =>
      withTimeout(
        pglite.query('select 1').then(() => 'ready' as const),
        timeoutMs,
      ),
    close: () => pglite.close(),
  };
}

/**
 * PGlite runs every statement on this thread, and one request's statements follow each other
 * in microtasks, so without a turn of the event loop between them a provision's lookup, insert
 * and events (each tens of milliseconds over a large organization) would hold every other
 * request, and the health checks, for their sum. A turn before each protocol message PGlite
 * executes (every query goes through `execProtocolStream`) keeps one stall to one statement.
 */
function serveEventLoopBetweenMessages(pglite: PGlite): void {
  const execute = pglite.execProtocolStream.bind(pglite);
  pglite.execProtocolStream = async (...args: Parameters<PGlite['execProtocolStream']>) => {
    await new Promise<void>((resolve) => setImmediate(resolve));
    return execute(...args);
  };
}

/** The check's answer, or `unreachable` when it fails or takes longer than `timeoutMs`. */
async function withTimeout(check: Promise<Readiness>, timeoutMs: number): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<Readiness>((resolve) => {
    timer = setTimeout(() => resolve('unreachable'), timeoutMs);
  });
  try {
    return await Promise.race([check.catch(() => 'unreachable' as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
