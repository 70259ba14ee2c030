import { count, eq } from 'drizzle-orm';
import type { Tx } from '../../db/client';
import { organizations, workspaces } from '../../db/schema';
import { AppError } from '../../lib/errors';

/** MAX_WORKSPACES_PER_ORGANIZATION: how many workspaces one organization may hold, archived ones included; 0 for no limit. */
export type WorkspaceQuota = number;

export const quotaMessage = (quota: WorkspaceQuota) =>
  `The organization holds its limit of ${quota} workspaces (MAX_WORKSPACES_PER_ORGANIZATION; archived ones count): delete some first`;

/**
 * How many more workspaces the organization may hold (Infinity without a quota). Counted
 * under the organization's row lock (`for no key update`, held until the transaction ends),
 * which every workspace create takes before it inserts (a provision after planning its batch,
 * so the lock is held for its insert only): two creates in one organization count one after
 * the other, so racing requests cannot overshoot together. The lock does not wait for
 * workspace writes, which share the row (key share), only for other creates and for changes
 * of the organization itself.
 */
export async function workspaceRoom(tx: Tx, organizationId: string, quota: WorkspaceQuota): Promise<number> {
  if (quota === 0) return Infinity;
  await tx.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, organizationId)).for('no key update');
  const [row] = await tx.select({ held: count() }).from(workspaces).where(eq(workspaces.organizationId, organizationId));
  return Math.max(0, quota - (row?.held ?? 0));
}

/** 409 QUOTA_EXCEEDED, before anything is written, when the organization has no room for one more workspace. */
export async function assertWorkspaceRoom(tx: Tx, organizationId: string, quota: WorkspaceQuota): Promise<void> {
  if ((await workspaceRoom(tx, organizationId, quota)) < 1) throw new AppError('QUOTA_EXCEEDED', quotaMessage(quota));
}
