import { createHash } from 'node:crypto';
import { and, eq, lt, sql } from 'drizzle-orm';
import type { DatabaseHandle, Tx } from '../db/client';
import { isLockTimeout } from '../db/errors';
import { idempotencyKeys } from '../db/schema';
import { canonicalJson } from './canonical-json';
import { AppError } from './errors';

/** What a create produces: the body, where the new resource lives, and whose it is. */
export interface CreatedResource<T> {
  body: T;
  location?: string;
  /** The organization the caller must still belong to for a replay. */
  organizationId: string;
}

export interface IdempotentRequest<T> {
  database: DatabaseHandle;
  userId: string;
  operation: string;
  key: string | undefined;
  input: unknown;
  /** The change itself, inside the transaction that also stores the key. */
  work: (tx: Tx) => Promise<CreatedResource<T>>;
  /** Throws (404) when the caller may no longer see what a stored outcome created. */
  recheckAccess: (stored: CreatedResource<T>) => Promise<unknown>;
}

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
/** How long a duplicate waits for the first attempt before giving up with 409. */
const WAIT_FOR_FIRST_ATTEMPT = '2s';

/**
 * Runs a create at most once per (caller, operation, key). The key row is inserted first,
 * in the same transaction as the change: a concurrent duplicate blocks on its unique index
 * until the first attempt commits (then replays) or rolls back (then runs afresh). Only
 * successes are stored, since a failure rolls the key back with everything else.
 */
export async function runIdempotent<T>(request: IdempotentRequest<T>): Promise<CreatedResource<T> & { replayed: boolean }> {
  const { database, userId, operation, key, work } = request;
  if (key === undefined) {
    return { ...(await database.db.transaction(work)), replayed: false };
  }
  if (!KEY_PATTERN.test(key)) {
    throw new AppError('BAD_REQUEST', 'Idempotency-Key must be 1-255 visible ASCII characters');
  }
  const fingerprint = createHash('sha256').update(operation).update('\n').update(canonicalJson(request.input)).digest('hex');
  const keyMatch = and(eq(idempotencyKeys.userId, userId), eq(idempotencyKeys.operation, operation), eq(idempotencyKeys.key, key));

  let outcome: { stored: typeof idempotencyKeys.$inferSelect } | { created: CreatedResource<T> };
  try {
    outcome = await database.db.transaction(async (tx) => {
      // Keys are kept 24 hours; an older one is forgotten before this use.
      await tx.delete(idempotencyKeys).where(and(eq(idempotencyKeys.userId, userId), lt(idempotencyKeys.createdAt, sql`now() - interval '24 hours'`)));
      if (database.engine === 'postgres') await tx.execute(sql.raw(`set local lock_timeout = '${WAIT_FOR_FIRST_ATTEMPT}'`));
      const [claimed] = await tx
        .insert(idempotencyKeys)
        .values({ userId, operation, key, fingerprint })
        .onConflictDoNothing()
        .returning({ key: idempotencyKeys.key });
      if (!claimed) {
        const [stored] = await tx.select().from(idempotencyKeys).where(keyMatch);
        return { stored: stored! };
      }
      if (database.engine === 'postgres') await tx.execute(sql`set local lock_timeout to default`);
      const created = await work(tx);
      await tx
        .update(idempotencyKeys)
        .set({ statusCode: 201, body: created.body as object, location: created.location ?? null, resourceOrganizationId: created.organizationId })
        .where(keyMatch);
      return { created };
    });
  } catch (error) {
    if (isLockTimeout(error)) {
      throw new AppError('CONFLICT', 'A request with this Idempotency-Key is still in progress; retry shortly', { retryAfter: 1 });
    }
    throw error;
  }

  if ('created' in outcome) return { ...outcome.created, replayed: false };
  const { stored } = outcome;
  if (stored.fingerprint !== fingerprint) {
    throw new AppError('UNPROCESSABLE_CONTENT', 'This Idempotency-Key was used with a different request');
  }
  if (stored.statusCode === null || !stored.resourceOrganizationId) {
    throw new AppError('CONFLICT', 'A request with this Idempotency-Key is still in progress; retry shortly', { retryAfter: 1 });
  }
  const replay: CreatedResource<T> = {
    body: stored.body as T,
    location: stored.location ?? undefined,
    organizationId: stored.resourceOrganizationId,
  };
  await request.recheckAccess(replay);
  return { ...replay, replayed: true };
}
