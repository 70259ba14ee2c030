import { and, eq } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client';
import { memberships, type Role } from '../../db/schema';
import { AppError, notFound } from '../../lib/errors';

const RANK: Record<Role, number> = { member: 1, admin: 2, owner: 3 };

export const hasRole = (role: Role, minimum: Role) => RANK[role] >= RANK[minimum];

export async function findRole(db: DbOrTx, userId: string, organizationId: string): Promise<Role | undefined> {
  const [row] = await db
    .select({ role: memberships.role })
    .from(memberships)
    .where(and(eq(memberships.organizationId, organizationId), eq(memberships.userId, userId)));
  return row?.role;
}

/**
 * The caller's role in the organization, if it is at least `minimum`. A non-member gets
 * 404 naming `what` (existence is never revealed across tenants); a member without the
 * role gets 403.
 */
export async function requireRole(db: DbOrTx, userId: string, organizationId: string, minimum: Role, what = 'Organization'): Promise<Role> {
  const role = await findRole(db, userId, organizationId);
  if (!role) throw notFound(what);
  if (!hasRole(role, minimum)) {
    throw new AppError('FORBIDDEN', `This needs the ${minimum} role in the organization (you are ${role})`);
  }
  return role;
}
