import { initTRPC, TRPCError } from '@trpc/server';
import type { OpenApiMeta } from 'trpc-to-openapi';
import { withDatabaseDeadline } from '../db/deadline';
import type { Caller } from '../auth/caller';
import type { TokenClaims } from '../auth/tokens';
import { AppError, trpcCodeOf, unauthorized } from '../lib/errors';
import type { LimitedBy } from '../lib/rate-limits';
import { requestIdsOf, type Context } from './context';
import { describeError } from './errors';
import { inTransaction } from './transaction';

/** Our own meta beside `openapi`: the success status REST answers with. */
export interface AppMeta {
  successStatus?: 201 | 204;
  /** A 201 that names no single new resource (signup, provisioning) sends no `Location`. */
  withoutLocation?: boolean;
  /** A request body the server accepts, for the document (Swagger UI pre-fills it; test/openapi-examples.test.ts sends it). */
  requestExample?: Record<string, unknown>;
}

const t = initTRPC
  .context<Context>()
  .meta<OpenApiMeta<AppMeta>>()
  .create({
    errorFormatter({ shape, error }) {
      const { status, body } = describeError(error);
      return {
        code: shape.code,
        message: body.message,
        data: { code: body.code, httpStatus: status, path: shape.data.path, issues: body.issues, failed: body.failed },
      };
    },
  });

export const router = t.router;
export const createCallerFactory = t.createCallerFactory;

/**
 * Services throw AppError; tRPC would call that a 500. Re-throw it as a TRPCError with the
 * same code (keeping it as the cause, so `describeError` sees the details).
 */
const mapAppErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof AppError) {
    const cause = result.error.cause;
    throw new TRPCError({ code: trpcCodeOf(cause.code), message: cause.message, cause });
  }
  return result;
});

/**
 * Every procedure's database work — the caller's lookup, reads and transactions alike — runs
 * under the request deadline (DATABASE_DEADLINE_MS): past it the call answers 503 with
 * Retry-After instead of waiting for a database that is down or silent.
 */
const databaseDeadline = t.middleware(({ ctx, next }) => withDatabaseDeadline(ctx.deps.config.DATABASE_DEADLINE_MS, () => next()));

export const publicProcedure = t.procedure.use(mapAppErrors).use(databaseDeadline);

function bearerToken(authorization: string | undefined): string {
  if (!authorization) throw unauthorized('Missing Authorization header (expected "Bearer <access_token>")');
  const match = /^Bearer +([A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]+\.[A-Za-z0-9\-_]*)$/i.exec(authorization.trim());
  if (!match) throw unauthorized('Malformed Authorization header (expected "Bearer <access_token>")');
  return match[1]!;
}

/** Counts the call against a rate limit (429 over it); the state goes out as RateLimit-* headers. */
async function countCall(ctx: Context, by: LimitedBy, key: string): Promise<void> {
  const { state, refusal } = await ctx.deps.rateLimits.consume(by, key);
  if (state) ctx.rateLimit = state;
  if (refusal) throw refusal;
}

/**
 * Runs the caller's authentication: a 401 it throws counts against the client address's budget
 * (UNAUTHENTICATED_RATE_LIMIT_PER_MINUTE) and, once that is spent, is answered 429 instead, so
 * nobody can try tokens, or hammer an operation without one, at speed. Only failures count: a
 * valid caller behind the same address is never refused for another's bad tokens.
 */
async function authenticating<T>(ctx: Context, authenticate: () => Promise<T>): Promise<T> {
  try {
    return await authenticate();
  } catch (error) {
    if (isUnauthorized(error)) await countFailedAuthentication(ctx);
    throw error;
  }
}

const countFailedAuthentication = (ctx: Context) => countCall(ctx, 'unauthenticated', ctx.clientIp ?? 'unknown');

/** A 401, thrown by us (AppError) or carried by the error tRPC made of it. */
function isUnauthorized(error: unknown): boolean {
  if (error instanceof AppError) return error.code === 'UNAUTHORIZED';
  if (!(error instanceof TRPCError)) return false;
  return error.code === 'UNAUTHORIZED' || (error.cause instanceof AppError && error.cause.code === 'UNAUTHORIZED');
}

/** For signup and login: limited per client address (AUTH_RATE_LIMIT_PER_MINUTE), so passwords cannot be tried at speed. */
export const addressLimitedProcedure = publicProcedure.use(async ({ ctx, next }) => {
  await countCall(ctx, 'address', ctx.clientIp ?? 'unknown');
  return next();
});

/** For the invitation preview, which needs no account: limited per client address like login, on a counter of its own. */
export const previewLimitedProcedure = publicProcedure.use(async ({ ctx, next }) => {
  await countCall(ctx, 'invitationPreview', ctx.clientIp ?? 'unknown');
  return next();
});

/**
 * Establishes the caller from the bearer token and narrows `ctx.actor`; then counts the call
 * against the caller's rate limit (keyed only once the token is verified, so nobody can spend
 * another account's budget). A 401 counts against the address's instead (`authenticating`).
 */
export const authedProcedure = publicProcedure.use(async ({ ctx, next }) => {
  const actor = await authenticating(ctx, () => resolveActor(ctx, ctx.deps.tokens.verify(bearerToken(ctx.authorization))));
  await countCall(ctx, 'caller', actor.id);
  return next({ ctx: { actor } });
});

const resolveActor = (ctx: Context, claims: TokenClaims) =>
  ctx.deps.resolveActor(ctx.db, claims, (work) => inTransaction(ctx, work), requestIdsOf(ctx));

/**
 * For the hot reads, which confirm the caller inside their own query (`confirmCaller`): one
 * round trip instead of two. Narrows `ctx.caller` to what the verified token says (an identity
 * provider's token is resolved here, as it may create the account). The answers are those of
 * authedProcedure, in the same order: a refused input is checked against the account first,
 * so a revoked token is 401 before its input is 400. Its 401s count like authedProcedure's,
 * those the read's own query finds included.
 */
export const authedReadProcedure = publicProcedure.use(async ({ ctx, next }) => {
  const { claims, caller } = await authenticating(ctx, async () => {
    const claims = ctx.deps.tokens.verify(bearerToken(ctx.authorization));
    const caller: Caller =
      claims.kind === 'local' ? { id: claims.userId, tokenVersion: claims.tokenVersion } : { id: (await resolveActor(ctx, claims)).id };
    return { claims, caller };
  });
  await countCall(ctx, 'caller', caller.id);
  const result = await next({ ctx: { caller } });
  if (!result.ok && claims.kind === 'local' && result.error.code === 'BAD_REQUEST' && !(result.error.cause instanceof AppError)) {
    await authenticating(ctx, () => resolveActor(ctx, claims));
  }
  if (!result.ok && isUnauthorized(result.error)) await countFailedAuthentication(ctx);
  return result;
});
