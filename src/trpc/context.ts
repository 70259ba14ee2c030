import type { IncomingHttpHeaders } from 'node:http';
import type { Db } from '../db/client';
import type { AppDeps } from '../deps';

export type Face = 'rest' | 'trpc';

/** The authenticated caller, as procedures see it: what the auth middleware's `resolveActor` found. */
export type Actor = Awaited<ReturnType<AppDeps['resolveActor']>>;

/** Per-request data shared by both faces. */
export interface Context {
  deps: AppDeps;
  /** The database, for reads; writes go through `inTransaction` (trpc/transaction.ts). */
  db: Db;
  face: Face;
  requestId: string;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  /** The raw `If-Match` header (REST); tRPC callers pass `expected_version` instead. */
  ifMatch: string | undefined;
  /** Sets a response header. REST sends them; over tRPC, whose calls may share one response, they are dropped. */
  setHeader(name: string, value: string): void;
}

/** The context once the auth middleware has established the caller. */
export type AuthedContext = Context & { actor: Actor };

export interface ContextOptions {
  deps: AppDeps;
  face: Face;
  requestId: string;
  headers: IncomingHttpHeaders;
  setHeader: Context['setHeader'];
}

const single = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

export function createContext({ deps, face, requestId, headers, setHeader }: ContextOptions): Context {
  return {
    deps,
    db: deps.database.db,
    face,
    requestId,
    authorization: single(headers.authorization),
    idempotencyKey: single(headers['idempotency-key']),
    ifMatch: single(headers['if-match']),
    setHeader,
  };
}
