/**
 * The one place a request opens a database transaction. Services that write take the `tx`
 * this hands them and never open one themselves, so what every write transaction needs
 * lives here: the request's deadline (a transaction whose request has timed out does no work
 * and never commits) and the idempotency key in the same transaction.
 * @module
 */
import type { Tx } from '../db/client';
import { throwIfDeadlinePassed } from '../db/deadline';
import { isLockTimeout } from '../db/errors';
import {
  claimIdempotencyKey,
  idempotencyClaim,
  stillInProgress,
  storedOutcome,
  storeIdempotentOutcome,
  type CreatedResource,
} from '../lib/idempotency';
import type { AuthedContext, Context } from './context';

/**
 * Runs `work` in one transaction of the request's database: committed when it resolves,
 * rolled back when it throws, and rolled back too when the request's deadline passed
 * meanwhile (it has answered 503 by then, so nothing may change after it).
 */
export function inTransaction<T>(ctx: Context, work: (tx: Tx) => Promise<T>): Promise<T> {
  return ctx.db.transaction(async (tx) => {
    throwIfDeadlinePassed();
    const result = await work(tx);
    throwIfDeadlinePassed();
    return result;
  });
}

export interface IdempotentCreate<T> {
  /** Names the operation among the caller's keys (`workspaces.create`). */
  operation: string;
  /** The input the key's fingerprint is taken of. */
  input: unknown;
  /** Throws (404) when the caller may no longer see what a replayed outcome created. */
  stillVisible(created: CreatedResource<T>): Promise<unknown>;
}

/**
 * A create under the request's `Idempotency-Key`, if any: runs `work` once in a transaction
 * that also claims the key and stores the outcome, replays the stored answer to a retry
 * (after `stillVisible`), and sets `Location` either way. A retry while the first attempt
 * runs waits for it (2 s at most), then gets 409 with Retry-After.
 */
export async function idempotentCreate<T>(
  ctx: AuthedContext,
  create: IdempotentCreate<T>,
  work: (tx: Tx) => Promise<CreatedResource<T>>,
): Promise<T> {
  const answer = (created: CreatedResource<T>) => {
    if (created.location) ctx.setHeader('Location', created.location);
    return created.body;
  };
  if (ctx.idempotencyKey === undefined) return answer(await inTransaction(ctx, work));

  const claim = idempotencyClaim(ctx.actor.id, create.operation, ctx.idempotencyKey, create.input);
  let outcome: { created: CreatedResource<T> } | { replay: CreatedResource<T> };
  try {
    outcome = await inTransaction(ctx, async (tx) => {
      const stored = await claimIdempotencyKey(tx, ctx.deps.database.engine, claim);
      if (stored) return { replay: storedOutcome<T>(claim, stored) };
      const created = await work(tx);
      await storeIdempotentOutcome(tx, claim, created);
      return { created };
    });
  } catch (error) {
    if (isLockTimeout(error)) throw stillInProgress();
    throw error;
  }
  if ('created' in outcome) return answer(outcome.created);
  await create.stillVisible(outcome.replay);
  ctx.setHeader('Idempotent-Replayed', 'true');
  return answer(outcome.replay);
}
