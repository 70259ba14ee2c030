/**
 * Idempotency keys: stored in the same transaction as the create they guard, so a crash
 * leaves neither. The transaction itself is opened by `trpc/transaction.ts`; this module
 * holds the key's rules and its row.
 * @module
 */
import { createHash } from 'node:crypto';
import { and, eq, lt, sql } from 'drizzle-orm';
import type { Engine, Tx } from '../db/client';
import { allowLockWait, LOCK_WAIT_MS } from '../db/deadline';
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

/** One use of a key: who, for which operation, and the fingerprint of the input. */
export interface IdempotencyClaim {
  userId: string;
  operation: string;
  key: string;
  fingerprint: string;
}

type StoredKey = typeof idempotencyKeys.$inferSelect;

const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** 409 with Retry-After: the first attempt with this key has not finished. */
export const stillInProgress = () =>
  new AppError('CONFLICT', 'A request with this Idempotency-Key is still in progress; retry shortly', { retryAfter: 1 });

/** The claim of a key (400 when the key is malformed); fingerprint = operation + canonical JSON of the input. */
export function idempotencyClaim(userId: string, operation: string, key: string, input: unknown): IdempotencyClaim {
  if (!KEY_PATTERN.test(key)) {
    throw new AppError('BAD_REQUEST', 'Idempotency-Key must be 1-255 visible ASCII characters');
  }
  const fingerprint = createHash('sha256').update(operation).update('\n').update(canonicalJson(input)).digest('hex');
  return { userId, operation, key, fingerprint };
}

const keyMatch = (claim: IdempotencyClaim) =>
  and(eq(idempotencyKeys.userId, claim.userId), eq(idempotencyKeys.operation, claim.operation), eq(idempotencyKeys.key, claim.key));

/**
 * Inserts the key row first thing in the create's transaction. Returns undefined when this
 * attempt claimed the key, or the stored row of an earlier attempt. A concurrent duplicate
 * blocks on the row's unique index until the first attempt commits (then it reads the
 * stored outcome) or rolls back (then it claims the key itself); on PostgreSQL it waits at
 * most LOCK_WAIT_MS, 2 s (a lock timeout, which the caller turns into 409), a wait the
 * request's database deadline makes room for.
 */
export async function claimIdempotencyKey(tx: Tx, engine: Engine, claim: IdempotencyClaim): Promise<StoredKey | undefined> {
  // Keys are kept 24 hours; an older one is forgotten before this use.
  await tx
    .delete(idempotencyKeys)
    .where(and(eq(idempotencyKeys.userId, claim.userId), lt(idempotencyKeys.createdAt, sql`now() - interval '24 hours'`)));
  if (engine === 'postgres') await tx.execute(sql.raw(`set local lock_timeout = ${LOCK_WAIT_MS}`));
  const waited = allowLockWait(LOCK_WAIT_MS);
  const [claimed] = await tx
    .insert(idempotencyKeys)
    .values(claim)
    .onConflictDoNothing()
    .returning({ key: idempotencyKeys.key })
    .finally(waited);
  if (!claimed) {
    const [stored] = await tx.select().from(idempotencyKeys).where(keyMatch(claim));
    // Gone between the conflict and the read: the first attempt rolled back just now.
    if (!stored) throw stillInProgress();
    return stored;
  }
  if (engine === 'postgres') await tx.execute(sql`set local lock_timeout to default`);
  return undefined;
}

/** Stores the outcome of a create with its key, in the create's own transaction. */
export async function storeIdempotentOutcome(tx: Tx, claim: IdempotencyClaim, created: CreatedResource<unknown>): Promise<void> {
  await tx
    .update(idempotencyKeys)
    .set({ statusCode: 201, body: created.body, location: created.location ?? null, resourceOrganizationId: created.organizationId })
    .where(keyMatch(claim));
}

/**
 * The stored outcome to replay: 422 when the key was used with another input, 409 when the
 * first attempt has not finished. (Only successes are stored: a failure rolls the key back
 * with everything else.)
 */
export function storedOutcome<T>(claim: IdempotencyClaim, stored: StoredKey): CreatedResource<T> {
  if (stored.fingerprint !== claim.fingerprint) {
    throw new AppError('UNPROCESSABLE_CONTENT', 'This Idempotency-Key was used with a different request');
  }
  if (stored.statusCode === null || !stored.resourceOrganizationId) throw stillInProgress();
  return { body: stored.body as T, location: stored.location ?? undefined, organizationId: stored.resourceOrganizationId };
}
