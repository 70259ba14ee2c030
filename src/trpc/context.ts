import type { IncomingHttpHeaders } from 'node:http';
import type { Db } from '../db/client';
import type { Caller } from '../auth/caller';
import type { AppDeps } from '../deps';
import type { RateLimitState } from '../lib/rate-limits';
import type { Author, RequestIds } from '../auth/author';

export type Face = 'rest' | 'trpc';

/** The authenticated caller, as procedures see it: what the auth middleware's `resolveActor` found. */
export type Actor = Awaited<ReturnType<AppDeps['resolveActor']>>;

/** Per-request data shared by both faces. */
export interface Context {
  deps: AppDeps;
  /** The database, for reads; writes go through `inTransaction` (trpc/transaction.ts). */
  db: Db;
  face: Face;
  /** The service's own id of this request (audit events, log lines, `X-Service-Request-Id`). */
  requestId: string;
  /** The caller's `X-Request-Id`, when it sent a usable one. */
  clientRequestId: string | undefined;
  /** The client's address (Express's `req.ip`, which honours TRUST_PROXY). */
  clientIp: string | undefined;
  authorization: string | undefined;
  idempotencyKey: string | undefined;
  /** The raw `If-Match` header (REST); tRPC callers pass `expected_version` instead. */
  ifMatch: string | undefined;
  /** Sets a response header. REST sends them; over tRPC, whose calls may share one response, they are dropped. */
  setHeader(name: string, value: string): void;
  /** The last rate limit this request counted against, sent as RateLimit-* headers by either face. */
  rateLimit?: RateLimitState;
}

/** The context once the auth middleware has established the caller. */
export type AuthedContext = Context & { actor: Actor };

/** This request's ids: the service's own, and the caller's. */
export const requestIdsOf = (ctx: Context): RequestIds => ({ requestId: ctx.requestId, clientRequestId: ctx.clientRequestId });

/** Who makes a change, for its audit events: the caller and this request's ids. */
export const authorOf = (ctx: AuthedContext): Author => ({ id: ctx.actor.id, email: ctx.actor.email, ...requestIdsOf(ctx) });

/** The context of a read that confirms the caller in its own query (authedReadProcedure). */
export type CallerContext = Context & { caller: Caller };

export interface ContextOptions {
  deps: AppDeps;
  face: Face;
  requestId: string;
  clientRequestId?: string;
  clientIp: string | undefined;
  headers: IncomingHttpHeaders;
  setHeader: Context['setHeader'];
}

const single = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

export function createContext({ deps, face, requestId, clientRequestId, clientIp, headers, setHeader }: ContextOptions): Context {
  return {
    deps,
    db: deps.database.db,
    face,
    requestId,
    clientRequestId,
    clientIp,
    authorization: single(headers.authorization),
    idempotencyKey: single(headers['idempotency-key']),
    ifMatch: single(headers['if-match']),
    setHeader,
  };
}

/** The RateLimit-* headers of a request's last counted limit (IETF draft names, as rate-limit libraries send them). */
export function rateLimitHeaders(ctx: Pick<Context, 'rateLimit'> | undefined): Record<string, string> {
  const state = ctx?.rateLimit;
  if (!state) return {};
  return {
    'RateLimit-Limit': String(state.limit),
    'RateLimit-Remaining': String(state.remaining),
    'RateLimit-Reset': String(state.resetSeconds),
  };
}
