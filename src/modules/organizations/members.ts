/**
 * An organization's members: who belongs with which role, and the rules that keep at least
 * one owner (changes that could remove one are serialized by the organization's lock).
 * @module
 */
import { and, asc, count, eq, sql } from 'drizzle-orm';
import type { DbOrTx, Tx } from '../../db/client';
import { memberships, users, type Role } from '../../db/schema';
import { AppError, notFound } from '../../lib/errors';
import type { CursorCodec } from '../../lib/cursor';
import { paginate, timestampParam, type PageRequest } from '../../lib/pagination';
import { hasRole, requireRole } from './access';
import type { Member, MemberPage } from './schemas';
import { lockOrganization } from './service';
import { changesBetween, memberEvent, recordEvents, type Author, type NewEvent } from '../audit/events';
import { endWorkspaceMemberships } from '../workspaces/members';
import { revokeInvitationsBy } from '../invitations/service';

const memberColumns = {
  user_id: memberships.userId,
  email: users.email,
  name: users.name,
  role: memberships.role,
  createdAt: memberships.createdAt,
};

type MemberRow = { user_id: string; email: string; name: string; role: Role; createdAt: Date };
const toMember = ({ createdAt, ...rest }: MemberRow): Member => ({ ...rest, created_at: createdAt.toISOString() });

async function findMember(db: DbOrTx, organizationId: string, userId: string): Promise<MemberRow> {
  const [row] = await db
    .select(memberColumns)
    .from(memberships)
    .innerJoin(users, eq(users.id, memberships.userId))
    .where(and(eq(memberships.organizationId, organizationId), eq(memberships.userId, userId)));
  if (!row) throw notFound('Member');
  return row;
}

export async function listMembers(
  db: DbOrTx,
  cursors: CursorCodec,
  actorId: string,
  organizationId: string,
  request: PageRequest,
): Promise<MemberPage> {
  await requireRole(db, actorId, organizationId, 'member');
  const { rows, next_cursor } = await paginate(
    cursors,
    { list: 'members', organizationId },
    request,
    {
      sortKey: memberships.createdAt,
      id: memberships.userId,
      keyParam: timestampParam,
      position: (row: MemberRow) => [row.createdAt.toISOString(), row.user_id],
    },
    (after, take) =>
      db
        .select(memberColumns)
        .from(memberships)
        .innerJoin(users, eq(users.id, memberships.userId))
        .where(and(eq(memberships.organizationId, organizationId), after))
        .orderBy(asc(memberships.createdAt), asc(memberships.userId))
        .limit(take),
  );
  return { items: rows.map(toMember), next_cursor };
}

export async function getMember(db: DbOrTx, actorId: string, organizationId: string, userId: string): Promise<Member> {
  await requireRole(db, actorId, organizationId, 'member');
  return toMember(await findMember(db, organizationId, userId));
}

const ownerOnly = (what: string) => new AppError('FORBIDDEN', `Only an owner can ${what}`);

/** Whether an owner other than `leavingUserId` remains (call under `lockOrganization`). */
async function otherOwnersRemain(tx: Tx, organizationId: string, leavingUserId: string): Promise<boolean> {
  const [row] = await tx
    .select({ owners: count() })
    .from(memberships)
    .where(
      and(eq(memberships.organizationId, organizationId), eq(memberships.role, 'owner'), sql`${memberships.userId} <> ${leavingUserId}`),
    );
  return (row?.owners ?? 0) > 0;
}

const lastOwner = (what: string) =>
  new AppError('CONFLICT', `${what}: an organization must keep at least one owner (make another member owner first)`);

export async function updateMemberRole(tx: Tx, author: Author, organizationId: string, userId: string, role: Role): Promise<Member> {
  await lockOrganization(tx, organizationId);
  const actorRole = await requireRole(tx, author.id, organizationId, 'admin');
  const member = await findMember(tx, organizationId, userId);
  if (member.role === role) return toMember(member);
  if ((role === 'owner' || member.role === 'owner') && actorRole !== 'owner') throw ownerOnly('grant or remove the owner role');
  if (member.role === 'owner' && !(await otherOwnersRemain(tx, organizationId, userId))) throw lastOwner('Cannot demote the last owner');
  await tx
    .update(memberships)
    .set({ role })
    .where(and(eq(memberships.organizationId, organizationId), eq(memberships.userId, userId)));
  await recordEvents(tx, author, [memberEvent('member.role_changed', organizationId, userId, { role: { from: member.role, to: role } })]);
  return toMember({ ...member, role });
}

export async function removeMember(tx: Tx, author: Author, organizationId: string, userId: string): Promise<void> {
  await lockOrganization(tx, organizationId);
  const leaving = author.id === userId;
  const actorRole = await requireRole(tx, author.id, organizationId, leaving ? 'member' : 'admin');
  const member = await findMember(tx, organizationId, userId);
  if (member.role === 'owner' && !leaving && !hasRole(actorRole, 'owner')) throw ownerOnly('remove an owner');
  if (member.role === 'owner' && !(await otherOwnersRemain(tx, organizationId, userId))) throw lastOwner('Cannot remove the last owner');
  await tx.delete(memberships).where(and(eq(memberships.organizationId, organizationId), eq(memberships.userId, userId)));
  // Their access to its workspaces ends with it: no explicit membership outlives the organization's.
  const ended = await endWorkspaceMemberships(tx, { id: userId, email: member.email }, [organizationId]);
  // …and the invitations they made there: they can no longer make any.
  const revoked = await revokeInvitationsBy(tx, userId, [organizationId]);
  await recordEvents(tx, author, [memberRemoved(organizationId, member), ...ended, ...revoked]);
}

/** The event of a membership that ends (removal, leaving, account deletion). */
export const memberRemoved = (organizationId: string, member: { user_id: string; email: string; role: Role }): NewEvent =>
  memberEvent('member.removed', organizationId, member.user_id, changesBetween({ email: member.email, role: member.role }, null));
