import { and, eq, sql } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client';
import { preparedPerDatabase } from '../../db/prepared';
import { memberships, users, type Role } from '../../db/schema';
import { confirmCaller, type Caller } from '../../auth/caller';
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
  return checkRole(await findRole(db, userId, organizationId), minimum, what);
}

function checkRole(role: Role | null | undefined, minimum: Role, what: string): Role {
  if (!role) throw notFound(what);
  if (!hasRole(role, minimum)) {
    throw new AppError('FORBIDDEN', `This needs the ${minimum} role in the organization (you are ${role})`);
  }
  return role;
}

/**
 * requireRole for a caller the database has not confirmed yet (authedReadProcedure): the
 * account check and the membership in one query, with the same answers in the same order
 * (401, then 404, then 403).
 */
export async function requireCallerRole(db: DbOrTx, caller: Caller, organizationId: string, minimum: Role): Promise<Role> {
  return checkRole(await findCallerRole(db, caller, organizationId), minimum, 'Organization');
}

/** The caller's role in the organization (null when not a member), confirming the caller (401) in the same query. */
export async function findCallerRole(db: DbOrTx, caller: Caller, organizationId: string): Promise<Role | null> {
  const [row] = await callerRoleQuery(db).execute({ userId: caller.id, organizationId });
  confirmCaller(caller, row);
  return row.role;
}

const callerRoleQuery = preparedPerDatabase((db) =>
  db
    .select({ tokenVersion: users.tokenVersion, role: memberships.role })
    .from(users)
    .leftJoin(memberships, and(eq(memberships.organizationId, sql.placeholder('organizationId')), eq(memberships.userId, users.id)))
    .where(eq(users.id, sql.placeholder('userId')))
    .prepare('caller_role'),
);

/** Confirms a caller that no other query of its request would (401 when the account is gone or the token revoked). */
export async function confirmAccount(db: DbOrTx, caller: Caller): Promise<void> {
  const [row] = await accountQuery(db).execute({ userId: caller.id });
  confirmCaller(caller, row);
}

const accountQuery = preparedPerDatabase((db) =>
  db
    .select({ tokenVersion: users.tokenVersion })
    .from(users)
    .where(eq(users.id, sql.placeholder('userId')))
    .prepare('account_token_version'),
);
