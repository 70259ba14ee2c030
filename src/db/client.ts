import { PGlite } from '@electric-sql/pglite';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import * as schema from './schema';

export type Schema = typeof schema;
/** The one database type services see, whichever engine is behind it. */
export type Db = PgDatabase<PgQueryResultHKT, Schema>;
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0];
/** A service that only reads takes either: the whole database, or the transaction it runs inside. */
export type DbOrTx = Db | Tx;
/** Runs `work` in one transaction: the request's own (see `trpc/transaction.ts`). */
export type Transact = <T>(work: (tx: Tx) => Promise<T>) => Promise<T>;

export type Engine = 'postgres' | 'pglite';

export interface DatabaseHandle {
  db: Db;
  engine: Engine;
  /** Rows of a raw query, the same shape on both engines. */
  rows<T = Record<string, unknown>>(query: ReturnType<typeof sql>): Promise<T[]>;
  /** Calls `listener` with the SQL of every query the app sends through drizzle; returns the unsubscribe function. */
  onQuery(listener: (query: string) => void): () => void;
  /** Resolves true when the database answers within `timeoutMs`. */
  ping(timeoutMs: number): Promise<boolean>;
  close(): Promise<void>;
  /** postgres.js client (PostgreSQL only): for reserved connections such as the migration lock. */
  postgresClient?: postgres.Sql;
  /** PGlite instance (embedded only): for snapshots in tests. */
  pglite?: PGlite;
}

/** The server-side bound on one statement of a request. */
export const STATEMENT_TIMEOUT_MS = 10_000;

export interface PostgresOptions {
  url: string;
  prepare: boolean;
  max?: number;
  statementTimeoutMs?: number;
}

/** A drizzle logger that fans queries out to listeners (tests count round trips with it). */
function queryListeners() {
  const listeners = new Set<(query: string) => void>();
  return {
    logger: { logQuery: (query: string) => listeners.forEach((listener) => listener(query)) },
    onQuery: (listener: (query: string) => void) => {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
  };
}

export function openPostgres({ url, prepare, max = 10, statementTimeoutMs = STATEMENT_TIMEOUT_MS }: PostgresOptions): DatabaseHandle {
  const client = postgres(url, {
    max,
    prepare,
    connect_timeout: 5,
    idle_timeout: 60,
    onnotice: () => {},
    // A statement that runs (or waits for a lock) longer than this is cancelled by the server,
    // and the request answers 503 instead of hanging.
    connection: { application_name: 'workspaces-api', statement_timeout: statementTimeoutMs },
  });
  const { logger, onQuery } = queryListeners();
  const db = drizzlePostgres(client, { schema, logger }) as unknown as Db;
  return {
    db,
    onQuery,
    engine: 'postgres',
    postgresClient: client,
    // postgres.js answers a raw query with the rows themselves.
    rows: async <T>(query: ReturnType<typeof sql>) => {
      const rows: unknown = await db.execute(query);
      return rows as T[];
    },
    ping: (timeoutMs) =>
      withTimeout(
        client`select 1`.then(() => true),
        timeoutMs,
      ),
    close: () => client.end({ timeout: 5 }),
  };
}

/** Wraps an open PGlite instance (in a directory, in memory, or restored from a snapshot). */
export function wrapPglite(pglite: PGlite): DatabaseHandle {
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
    ping: (timeoutMs) =>
      withTimeout(
        pglite.query('select 1').then(() => true),
        timeoutMs,
      ),
    close: () => pglite.close(),
  };
}

async function withTimeout(check: Promise<boolean>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([check.catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
