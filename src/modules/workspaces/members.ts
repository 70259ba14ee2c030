/**
 * A workspace's explicit members and the access answer. Who may call what is decided by the
 * ability table (workspaces/access.ts) through loadWorkspace; membership changes of one
 * workspace run one after another under its row lock, taken after its organization's.
 * @module
 */
import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import type { DbOrTx, Tx } from '../../db/client';
import { memberships, users, workspaceMembers, workspaces, type WorkspaceRole } from '../../db/schema';
import { AppError, notFound } from '../../lib/errors';
import type { CursorCodec } from '../../lib/cursor';
import { paginate, timestampParam, type PageRequest } from '../../lib/pagination';
import { changesBetween, recordEvents, workspaceMemberEvent, type Author, type NewEvent } from '../audit/events';
import { authorize, isGuest } from './access';
import { findWithAccess, loadWorkspace, lockOrganizationOf } from './service';
import type { NewWorkspaceMember, WorkspaceAccess, WorkspaceMember, WorkspaceMemberPage } from './schemas';

const memberColumns = {
  user_id: workspaceMembers.userId,
  email: users.email,
  name: users.name,
  role: workspaceMembers.role,
  guest: sql<boolean>`${memberships.userId} is null`,
  createdAt: workspaceMembers.createdAt,
};
type MemberRow = { user_id: string; email: string; name: string; role: WorkspaceRole; guest: boolean; createdAt: Date };
const toMember = ({ createdAt, ...rest }: MemberRow): WorkspaceMember => ({ ...rest, created_at: createdAt.toISOString() });

/** The explicit members with their accounts, and whether each is a member of the organization (not a guest). */
const membersOf = (db: DbOrTx, workspace: { id: string; organizationId: string }) =>
  db
    .select(memberColumns)
    .from(workspaceMembers)
    .innerJoin(users, eq(users.id, workspaceMembers.userId))
    .leftJoin(memberships, and(eq(memberships.organizationId, workspace.organizationId), eq(memberships.userId, workspaceMembers.userId)))
    .$dynamic();

const memberNotFound = () => notFound('Workspace member');
const notInOrganization = (userId: string) => new AppError('NOT_FOUND', `User ${userId} is not a member of this workspace's organization`);

async function findMember(db: DbOrTx, workspace: { id: string; organizationId: string }, userId: string): Promise<MemberRow | undefined> {
  const [row] = await membersOf(db, workspace).where(
    and(eq(workspaceMembers.workspaceId, workspace.id), eq(workspaceMembers.userId, userId)),
  );
  return row;
}

/** The explicit members, oldest first (anyone who can see the workspace). */
export async function listWorkspaceMembers(
  db: DbOrTx,
  cursors: CursorCodec,
  actorId: string,
  workspaceId: string,
  request: PageRequest,
): Promise<WorkspaceMemberPage> {
  const { workspace } = await loadWorkspace(db, actorId, workspaceId, 'read');
  const { rows, next_cursor } = await paginate(
    cursors,
    { list: 'workspace_members', workspaceId },
    request,
    {
      sortKey: workspaceMembers.createdAt,
      id: workspaceMembers.userId,
      keyParam: timestampParam,
      position: (row: MemberRow) => [row.createdAt.toISOString(), row.user_id],
    },
    (after, take) =>
      membersOf(db, workspace)
        .where(and(eq(workspaceMembers.workspaceId, workspaceId), after))
        .orderBy(asc(workspaceMembers.createdAt), asc(workspaceMembers.userId))
        .limit(take),
  );
  return { items: rows.map(toMember), next_cursor };
}

/** One explicit member (anyone who can see the workspace); 404 when the user is not one. */
export async function getWorkspaceMember(db: DbOrTx, actorId: string, workspaceId: string, userId: string): Promise<WorkspaceMember> {
  const { workspace } = await loadWorkspace(db, actorId, workspaceId, 'read');
  const member = await findMember(db, workspace, userId);
  if (!member) throw memberNotFound();
  return toMember(member);
}

/**
 * The workspace locked for a membership change by someone allowed `ability`: its organization's
 * row first (which a removal from the organization holds for update, so neither misses the
 * other), then its own.
 */
async function lockForMembership(tx: Tx, actorId: string, workspaceId: string, ability: 'manageMembers' | 'leave') {
  await lockOrganizationOf(tx, workspaceId, 'key share');
  return (await loadWorkspace(tx, actorId, workspaceId, ability, true)).workspace;
}

/** Adds a member of the organization; the role defaults to the workspace's effective default role. */
export async function addWorkspaceMember(tx: Tx, author: Author, workspaceId: string, input: NewWorkspaceMember): Promise<WorkspaceMember> {
  const workspace = await lockForMembership(tx, author.id, workspaceId, 'manageMembers');
  const [inOrganization] = await tx
    .select({ userId: memberships.userId })
    .from(memberships)
    .where(and(eq(memberships.organizationId, workspace.organizationId), eq(memberships.userId, input.user_id)));
  if (!inOrganization) throw notInOrganization(input.user_id);
  const role = input.role ?? workspace.effectiveDefaultRole;
  const [inserted] = await tx
    .insert(workspaceMembers)
    .values({ workspaceId, userId: input.user_id, role })
    .onConflictDoNothing()
    .returning();
  if (!inserted) throw new AppError('CONFLICT', 'This user is already a member of the workspace');
  const member = (await findMember(tx, workspace, input.user_id))!;
  await recordEvents(tx, author, [
    workspaceMemberEvent('workspace.member_added', workspace, member.user_id, changesBetween(null, { email: member.email, role })),
  ]);
  return toMember(member);
}

/** Changes a member's role; the same role again changes nothing and records nothing. */
export async function updateWorkspaceMemberRole(
  tx: Tx,
  author: Author,
  workspaceId: string,
  userId: string,
  role: WorkspaceRole,
): Promise<WorkspaceMember> {
  const workspace = await lockForMembership(tx, author.id, workspaceId, 'manageMembers');
  const member = await findMember(tx, workspace, userId);
  if (!member) throw memberNotFound();
  if (member.role === role) return toMember(member);
  if (member.guest && role === 'admin')
    throw new AppError('FORBIDDEN', 'A guest (not a member of the organization) can be given at most the member role');
  await tx
    .update(workspaceMembers)
    .set({ role })
    .where(and(eq(workspaceMembers.workspaceId, workspaceId), eq(workspaceMembers.userId, userId)));
  await recordEvents(tx, author, [
    workspaceMemberEvent('workspace.member_role_changed', workspace, userId, { role: { from: member.role, to: role } }),
  ]);
  return toMember({ ...member, role });
}

/** Removes a member (a workspace admin), or the caller's own membership (leaving). */
export async function removeWorkspaceMember(tx: Tx, author: Author, workspaceId: string, userId: string): Promise<void> {
  const workspace = await lockForMembership(tx, author.id, workspaceId, author.id === userId ? 'leave' : 'manageMembers');
  const member = await findMember(tx, workspace, userId);
  if (!member) throw memberNotFound();
  await tx.delete(workspaceMembers).where(and(eq(workspaceMembers.workspaceId, workspaceId), eq(workspaceMembers.userId, userId)));
  await recordEvents(tx, author, [memberRemoved(workspace, member)]);
}

const memberRemoved = (
  workspace: { id: string; organizationId: string },
  member: { user_id: string; email: string; role: WorkspaceRole },
) =>
  workspaceMemberEvent(
    'workspace.member_removed',
    workspace,
    member.user_id,
    changesBetween({ email: member.email, role: member.role }, null),
  );

/**
 * Ends a user's memberships of the workspaces of the given organizations (they leave them, are
 * removed, or delete their account), answering the events to record. Call under those
 * organizations' update locks, which every membership change waits for.
 */
export async function endWorkspaceMemberships(tx: Tx, user: { id: string; email: string }, organizationIds: string[]): Promise<NewEvent[]> {
  if (organizationIds.length === 0) return [];
  const ending = await tx
    .select({ id: workspaces.id, organizationId: workspaces.organizationId, role: workspaceMembers.role })
    .from(workspaceMembers)
    .innerJoin(workspaces, eq(workspaces.id, workspaceMembers.workspaceId))
    .where(and(eq(workspaceMembers.userId, user.id), inArray(workspaces.organizationId, organizationIds)));
  if (ending.length === 0) return [];
  await tx.delete(workspaceMembers).where(
    and(
      eq(workspaceMembers.userId, user.id),
      inArray(
        workspaceMembers.workspaceId,
        ending.map((m) => m.id),
      ),
    ),
  );
  return ending.map((m) => memberRemoved(m, { user_id: user.id, email: user.email, role: m.role }));
}

/**
 * Why a user can see the workspace: the caller's own access, or (for a workspace admin) that
 * of anyone in the organization or among its explicit members.
 */
export async function getWorkspaceAccess(db: DbOrTx, actorId: string, workspaceId: string, userId = actorId): Promise<WorkspaceAccess> {
  const { access: own } = await loadWorkspace(db, actorId, workspaceId, 'read');
  let access = own;
  if (userId !== actorId) {
    authorize(own, 'manageMembers');
    const theirs = (await findWithAccess(db, userId, workspaceId))?.access;
    if (!theirs?.organizationRole && !theirs?.membershipRole) throw notInOrganization(userId);
    access = theirs;
  }
  return { workspace_id: workspaceId, user_id: userId, role: access.role, source: access.source, guest: isGuest(access) };
}
