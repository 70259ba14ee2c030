import type { Tx } from '../db/client';
import { runIdempotent, type CreatedResource } from '../lib/idempotency';
import { requireRole } from '../modules/organizations/access';
import type { Actor } from '../modules/auth/service';
import type { Context } from './context';

/**
 * A create under the request's Idempotency-Key (if any): runs `work` once, replays the
 * stored answer to a retry, and sets `Location` either way. Before a replay, `stillVisible`
 * re-checks that the caller may still see what was created (404 otherwise); by default,
 * membership in its organization.
 */
export async function idempotentCreate<T>(
  ctx: Context & { actor: Actor },
  operation: string,
  input: unknown,
  work: (tx: Tx) => Promise<CreatedResource<T>>,
  stillVisible: (created: CreatedResource<T>) => Promise<unknown> = ({ organizationId }) =>
    requireRole(ctx.deps.database.db, ctx.actor.id, organizationId, 'member', 'Resource'),
): Promise<T> {
  const result = await runIdempotent({
    database: ctx.deps.database,
    userId: ctx.actor.id,
    operation,
    key: ctx.idempotencyKey,
    input,
    work,
    recheckAccess: stillVisible,
  });
  if (result.location) ctx.setHeader('Location', result.location);
  if (result.replayed) ctx.setHeader('Idempotent-Replayed', 'true');
  return result.body;
}
