/**
 * Invitations: membership by consent (README, Invitations and guests). Who may invite whom is
 * decided by one function (`refusal`), asked when an invitation is created (a refusal is 403)
 * and again in the accepting transaction (409), so an invitation never outlives the rights
 * that made it. Tokens are never stored: only their SHA-256.
 *
 * Locks, in the order every path takes them: the organization's row (`no key update` to create
 * or resend, which counts the daily budget on it; `key share` to accept, decline or revoke;
 * `update` for a removal from the organization), then the workspace's row (accept, for update,
 * as every membership change), then the invitation's row (for update).
 * @module
 */
import { createHash, randomBytes } from 'node:crypto';
import { and, count, desc, eq, gt, inArray, isNull, lte, ne, or, sql, type SQL } from 'drizzle-orm';
import type { DbOrTx, Tx } from '../../db/client';
import { isUniqueViolation } from '../../db/errors';
import {
  invitations,
  memberships,
  organizations,
  users,
  workspaceMembers,
  workspaces,
  type InvitationStatus,
  type Role,
  type WorkspaceRole,
} from '../../db/schema';
import type { Config } from '../../config';
import { AppError } from '../../lib/errors';
import type { CursorCodec } from '../../lib/cursor';
import { paginate, timestampParam, type PageRequest } from '../../lib/pagination';
import { changesBetween, recordEvents, memberEvent, workspaceMemberEvent, type Author, type NewEvent } from '../audit/events';
import { resolveEffectiveSettings } from '../settings/resolve';
import { findRole, hasRole } from '../organizations/access';
import { hasWorkspaceRole } from '../workspaces/access';
import { assertActive, findWithAccess, loadWorkspace, lockOrganizationOf, organizationRules } from '../workspaces/service';
import type { WorkspaceRow } from '../workspaces/rows';
import type { AcceptedInvitation, Invitation, InvitationPage, InvitationPreview, InvitationWithToken } from './schemas';

/** What invitations need of the app beyond the database: the clock and the limits. */
export interface InvitationDeps {
  now: () => Date;
  config: Pick<Config, 'INVITATION_TTL_HOURS' | 'INVITATIONS_PENDING_MAX' | 'INVITATIONS_PER_DAY'>;
}

type InvitationRow = typeof invitations.$inferSelect;
type AnyRole = Role | WorkspaceRole;

const DAY_MS = 24 * 60 * 60 * 1000;

/** 256 random bits, base64url (43 characters). */
const newToken = () => randomBytes(32).toString('base64url');
/** What the table keeps of a token. */
export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

const expiryFrom = (now: Date, deps: InvitationDeps) => new Date(now.getTime() + deps.config.INVITATION_TTL_HOURS * 60 * 60 * 1000);

/** `expired` once `expires_at` has passed, whatever the row still says. */
const statusAt = (row: InvitationRow, now: Date): InvitationStatus =>
  row.status === 'pending' && row.expiresAt.getTime() <= now.getTime() ? 'expired' : row.status;

function toInvitation(row: InvitationRow, now: Date): Invitation {
  return {
    id: row.id,
    organization_id: row.organizationId,
    workspace_id: row.workspaceId,
    email: row.email,
    role: row.role as Invitation['role'],
    kind: row.kind,
    status: statusAt(row, now),
    invited_by: row.invitedBy,
    expires_at: row.expiresAt.toISOString(),
    created_at: row.createdAt.toISOString(),
    accepted_at: row.acceptedAt?.toISOString() ?? null,
    accepted_user_id: row.acceptedUserId,
  };
}

const invitationNotFound = () => new AppError('NOT_FOUND', 'Invitation not found');
const sameEmail = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
const emailIs = (column: typeof users.email | typeof invitations.email, email: string) => eq(sql`lower(${column})`, email.toLowerCase());

// ---- Who may invite whom ----

/** The permissions that decide who may invite, as resolved for the target. */
interface InvitePermissions {
  allow_guests: boolean;
  allow_member_invites: boolean;
}

/** An invitation's target: the organization, or one of its workspaces. */
type Target = { organizationId: string; workspace: WorkspaceRow | null };

/**
 * Why `inviterRole` (their organization role for an organization invitation, their effective
 * workspace role for a workspace's) may not give `role` to the target, or undefined when they
 * may. `guest`: the invitee is outside the organization. One rule for create (403) and accept (409).
 */
function refusal(target: Target, inviterRole: AnyRole, role: AnyRole, guest: boolean, permissions: InvitePermissions): string | undefined {
  if (!target.workspace) {
    const organizationRole = inviterRole as Role;
    if (hasRole(organizationRole, 'admin'))
      return role === 'owner' && organizationRole !== 'owner' ? 'only an owner can invite an owner' : undefined;
    if (!permissions.allow_member_invites)
      return 'the organization does not let its members invite (permissions.allow_member_invites is false)';
    return role === 'member' ? undefined : 'a member who is not an admin may invite with the member role only';
  }
  const workspaceRole = inviterRole as WorkspaceRole;
  if (workspaceRole === 'viewer') return 'a viewer of the workspace cannot invite';
  if (workspaceRole === 'member') {
    if (!permissions.allow_member_invites)
      return 'the workspace does not let its members invite (permissions.allow_member_invites is false)';
    if (role === 'admin') return 'a member of the workspace may invite with the member or viewer role only';
  }
  if (guest && !permissions.allow_guests) return 'the workspace does not allow guests (permissions.allow_guests is false)';
  if (guest && role === 'admin') return 'a guest can be given at most the member role';
  return undefined;
}

const capitalized = (text: string) => text.charAt(0).toUpperCase() + text.slice(1);

/** The target's permissions as resolved now (read under the organization's lock, which a settings write waits for). */
async function invitePermissions(tx: Tx, target: Target): Promise<InvitePermissions> {
  const rules = await organizationRules(tx, { organizationId: target.organizationId });
  return resolveEffectiveSettings(rules.settings, target.workspace?.settings ?? {}, rules.locks).effective.permissions;
}

/** Whether an account with `email` is a member of the organization (its user id when it is). */
async function memberByEmail(tx: DbOrTx, organizationId: string, email: string): Promise<string | undefined> {
  const [row] = await tx
    .select({ id: users.id })
    .from(memberships)
    .innerJoin(users, eq(users.id, memberships.userId))
    .where(and(eq(memberships.organizationId, organizationId), emailIs(users.email, email)));
  return row?.id;
}

// ---- Create ----

/** Locks the organization for an invitation's create (locks nothing when there is none: the authorization after it answers 404). */
async function lockForInviting(tx: Tx, of: { organizationId: string } | { workspaceId: string }): Promise<void> {
  if ('workspaceId' in of) await lockOrganizationOf(tx, of.workspaceId, 'no key update');
  else await tx.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, of.organizationId)).for('no key update');
}

/**
 * Counts one invitation against the organization's daily budget (INVITATIONS_PER_DAY): a
 * window of 24 hours opens with the first invitation after the last one closed. Past the
 * budget, 429 with the seconds until the window closes (the transaction rolls back, so the
 * refused one is not counted). Call under lockForInviting.
 */
async function spendInvitationBudget(tx: Tx, organizationId: string, now: Date, deps: InvitationDeps): Promise<void> {
  const limit = deps.config.INVITATIONS_PER_DAY;
  if (limit === 0) return;
  const windowOver = sql`(${organizations.invitationWindowStartedAt} is null or ${organizations.invitationWindowStartedAt} <= ${new Date(now.getTime() - DAY_MS).toISOString()}::timestamptz)`;
  const [row] = await tx
    .update(organizations)
    .set({
      invitationWindowStartedAt: sql`case when ${windowOver} then ${now.toISOString()}::timestamptz else ${organizations.invitationWindowStartedAt} end`,
      invitationsInWindow: sql`case when ${windowOver} then 1 else ${organizations.invitationsInWindow} + 1 end`,
    })
    .where(eq(organizations.id, organizationId))
    .returning({ startedAt: organizations.invitationWindowStartedAt, used: organizations.invitationsInWindow });
  if (row && row.used > limit) {
    const retryAfter = Math.max(1, Math.ceil((row.startedAt!.getTime() + DAY_MS - now.getTime()) / 1000));
    throw new AppError(
      'TOO_MANY_REQUESTS',
      `This organization has created or resent ${limit} invitations in its current 24-hour window (INVITATIONS_PER_DAY); retry in ${retryAfter} s`,
      { retryAfter },
    );
  }
}

/** 409 QUOTA_EXCEEDED at INVITATIONS_PENDING_MAX pending, unexpired invitations in the organization. */
async function assertPendingRoom(tx: Tx, organizationId: string, now: Date, deps: InvitationDeps): Promise<void> {
  const max = deps.config.INVITATIONS_PENDING_MAX;
  if (max === 0) return;
  const [row] = await tx
    .select({ pending: count() })
    .from(invitations)
    .where(and(eq(invitations.organizationId, organizationId), eq(invitations.status, 'pending'), gt(invitations.expiresAt, now)));
  if ((row?.pending ?? 0) >= max) {
    throw new AppError('QUOTA_EXCEEDED', `This organization has ${max} pending invitations (INVITATIONS_PENDING_MAX); revoke some first`);
  }
}

const sameTarget = (organizationId: string, workspaceId: string | null, email: string): SQL =>
  and(
    eq(invitations.organizationId, organizationId),
    workspaceId ? eq(invitations.workspaceId, workspaceId) : isNull(invitations.workspaceId),
    emailIs(invitations.email, email),
  )!;

const alreadyPending = (id: string) => new AppError('CONFLICT', `An invitation to this email is already pending (${id})`);

/**
 * Writes a new pending invitation after the checks every create shares: the pending quota,
 * the daily budget, one pending invitation per target and email (an expired one is marked
 * expired first, so it no longer blocks). Answers it with its token.
 */
async function insertInvitation(
  tx: Tx,
  author: Author,
  deps: InvitationDeps,
  values: { organizationId: string; workspaceId: string | null; email: string; role: AnyRole; kind: 'member' | 'guest' },
): Promise<InvitationWithToken> {
  const now = deps.now();
  const target = sameTarget(values.organizationId, values.workspaceId, values.email);
  await tx
    .update(invitations)
    .set({ status: 'expired', updatedAt: now })
    .where(and(target, eq(invitations.status, 'pending'), lte(invitations.expiresAt, now)));
  const [pending] = await tx
    .select({ id: invitations.id })
    .from(invitations)
    .where(and(target, eq(invitations.status, 'pending')));
  if (pending) throw alreadyPending(pending.id);
  await assertPendingRoom(tx, values.organizationId, now, deps);
  await spendInvitationBudget(tx, values.organizationId, now, deps);
  const token = newToken();
  const [row] = await tx
    .insert(invitations)
    .values({
      ...values,
      tokenHash: hashToken(token),
      invitedBy: author.id,
      expiresAt: expiryFrom(now, deps),
      createdAt: now,
      updatedAt: now,
    })
    .onConflictDoNothing()
    .returning();
  if (!row) {
    // A create of the same target and email committed meanwhile (the unique index saw it).
    const [other] = await tx
      .select({ id: invitations.id })
      .from(invitations)
      .where(and(target, eq(invitations.status, 'pending')));
    throw alreadyPending(other?.id ?? 'another request');
  }
  await recordEvents(tx, author, [
    invitationEvent(
      'invitation.created',
      row,
      changesBetween(null, { email: row.email, role: row.role, kind: row.kind, expires_at: row.expiresAt.toISOString() }),
    ),
  ]);
  return { invitation: toInvitation(row, now), token };
}

/** An organization invitation (README: an admin; an owner for an owner; a member where allow_member_invites holds). */
export async function inviteToOrganization(
  tx: Tx,
  author: Author,
  deps: InvitationDeps,
  organizationId: string,
  input: { email: string; role: Role },
): Promise<InvitationWithToken> {
  await lockForInviting(tx, { organizationId });
  const inviterRole = await findRole(tx, author.id, organizationId);
  if (!inviterRole) throw new AppError('NOT_FOUND', 'Organization not found');
  const target: Target = { organizationId, workspace: null };
  const refused = refusal(target, inviterRole, input.role, false, await invitePermissions(tx, target));
  if (refused) throw new AppError('FORBIDDEN', capitalized(refused));
  if (await memberByEmail(tx, organizationId, input.email))
    throw new AppError('CONFLICT', 'This email is already a member of the organization');
  return insertInvitation(tx, author, deps, { organizationId, workspaceId: null, email: input.email, role: input.role, kind: 'member' });
}

/** A workspace invitation: a guest one when the email is not an organization member's (README). */
export async function inviteToWorkspace(
  tx: Tx,
  author: Author,
  deps: InvitationDeps,
  workspaceId: string,
  input: { email: string; role: WorkspaceRole },
): Promise<InvitationWithToken> {
  await lockForInviting(tx, { workspaceId });
  const { workspace, access } = await loadWorkspace(tx, author.id, workspaceId, 'read');
  assertActive(workspace);
  const target: Target = { organizationId: workspace.organizationId, workspace };
  const memberId = await memberByEmail(tx, workspace.organizationId, input.email);
  const refused = refusal(target, access.role!, input.role, !memberId, await invitePermissions(tx, target));
  if (refused) throw new AppError('FORBIDDEN', capitalized(refused));
  const [explicit] = await tx
    .select({ userId: workspaceMembers.userId })
    .from(workspaceMembers)
    .innerJoin(users, eq(users.id, workspaceMembers.userId))
    .where(and(eq(workspaceMembers.workspaceId, workspaceId), emailIs(users.email, input.email)));
  if (explicit) throw new AppError('CONFLICT', 'This email is already a member of the workspace');
  return insertInvitation(tx, author, deps, {
    organizationId: workspace.organizationId,
    workspaceId,
    email: input.email,
    role: input.role,
    kind: memberId ? 'member' : 'guest',
  });
}

// ---- Read, resend, revoke (by id) ----

/**
 * The invitation `id`, for a caller who may manage it: its inviter or an admin of its target
 * (the organization's for an organization invitation, the workspace's for a workspace's).
 * Someone else who can see the target gets 403; anyone else 404.
 */
async function loadManaged(db: DbOrTx, actorId: string, id: string, forUpdate = false): Promise<InvitationRow> {
  const query = db.select().from(invitations).where(eq(invitations.id, id));
  const [row] = forUpdate ? await query.for('update') : await query;
  if (!row) throw invitationNotFound();
  const canSee = row.workspaceId
    ? (await findWithAccess(db, actorId, row.workspaceId))?.access.role
    : await findRole(db, actorId, row.organizationId);
  if (!canSee) throw invitationNotFound();
  const isAdmin = row.workspaceId ? hasWorkspaceRole(canSee as WorkspaceRole, 'admin') : hasRole(canSee as Role, 'admin');
  if (!isAdmin && row.invitedBy !== actorId) {
    throw new AppError('FORBIDDEN', 'Only the inviter or an admin of its organization or workspace can see or change this invitation');
  }
  return row;
}

/** Its organization, locked as `strength`: found first without a lock, then locked, then read again under it. */
async function lockInvitationOrganization(tx: Tx, id: string, strength: 'no key update' | 'key share'): Promise<void> {
  await tx
    .select({ id: organizations.id })
    .from(organizations)
    .where(eq(organizations.id, sql`(select ${invitations.organizationId} from ${invitations} where ${invitations.id} = ${id})`))
    .for(strength);
}

export async function getInvitation(db: DbOrTx, actorId: string, deps: InvitationDeps, id: string): Promise<Invitation> {
  return toInvitation(await loadManaged(db, actorId, id), deps.now());
}

const notPending = (status: InvitationStatus) =>
  new AppError('CONFLICT', `The invitation is ${status}; only a pending or expired one can be changed`);
const changeable = (status: InvitationStatus) => status === 'pending' || status === 'expired';

/** A new token and expiry for a pending or expired invitation; the old token stops working. */
export async function resendInvitation(tx: Tx, author: Author, deps: InvitationDeps, id: string): Promise<InvitationWithToken> {
  await lockInvitationOrganization(tx, id, 'no key update');
  const row = await loadManaged(tx, author.id, id, true);
  const now = deps.now();
  if (!changeable(statusAt(row, now))) throw notPending(statusAt(row, now));
  // An expired one may have been followed by another invitation to that email: that one stands.
  const [other] = await tx
    .select({ id: invitations.id })
    .from(invitations)
    .where(and(sameTarget(row.organizationId, row.workspaceId, row.email), eq(invitations.status, 'pending'), ne(invitations.id, id)));
  if (other) throw alreadyPending(other.id);
  await spendInvitationBudget(tx, row.organizationId, now, deps);
  const token = newToken();
  let updated: InvitationRow;
  try {
    [updated] = (await tx
      .update(invitations)
      .set({ tokenHash: hashToken(token), status: 'pending', expiresAt: expiryFrom(now, deps), updatedAt: now })
      .where(eq(invitations.id, id))
      .returning()) as [InvitationRow];
  } catch (error) {
    // Marked expired, and another invitation to that email is pending now.
    if (isUniqueViolation(error, 'invitations_one_pending_key'))
      throw new AppError('CONFLICT', 'Another invitation to this email is pending');
    throw error;
  }
  await recordEvents(tx, author, [
    invitationEvent('invitation.resent', updated, {
      expires_at: { from: row.expiresAt.toISOString(), to: updated.expiresAt.toISOString() },
    }),
  ]);
  return { invitation: toInvitation(updated, now), token };
}

export async function revokeInvitation(tx: Tx, author: Author, deps: InvitationDeps, id: string): Promise<void> {
  await lockInvitationOrganization(tx, id, 'key share');
  const row = await loadManaged(tx, author.id, id, true);
  const now = deps.now();
  if (!changeable(statusAt(row, now))) throw notPending(statusAt(row, now));
  await setStatus(tx, author, row, 'revoked', now);
}

/** Revokes or declines, recording the status it had (`expired` included) and the new one. */
async function setStatus(tx: Tx, author: Author, row: InvitationRow, status: 'revoked' | 'declined', now: Date): Promise<InvitationRow> {
  const [updated] = await tx.update(invitations).set({ status, updatedAt: now }).where(eq(invitations.id, row.id)).returning();
  await recordEvents(tx, author, [invitationEvent(`invitation.${status}`, updated!, { status: { from: statusAt(row, now), to: status } })]);
  return updated!;
}

/**
 * Revokes the pending invitations `userId` created in the organizations (they were removed,
 * left, or deleted their account: they can no longer invite there), answering the events.
 * Call under those organizations' update locks.
 */
export async function revokeInvitationsBy(tx: Tx, userId: string, organizationIds: string[]): Promise<NewEvent[]> {
  if (organizationIds.length === 0) return [];
  const revoked = await tx
    .update(invitations)
    .set({ status: 'revoked', updatedAt: sql`now()` })
    .where(and(eq(invitations.invitedBy, userId), inArray(invitations.organizationId, organizationIds), eq(invitations.status, 'pending')))
    .returning();
  return revoked.map((row) => invitationEvent('invitation.revoked', row, { status: { from: 'pending', to: 'revoked' } }));
}

// ---- Lists ----

function statusCondition(status: InvitationStatus | undefined, now: Date): SQL | undefined {
  if (!status) return undefined;
  if (status === 'pending') return and(eq(invitations.status, 'pending'), gt(invitations.expiresAt, now));
  if (status === 'expired')
    return or(eq(invitations.status, 'expired'), and(eq(invitations.status, 'pending'), lte(invitations.expiresAt, now)));
  return eq(invitations.status, status);
}

async function listInvitations(
  db: DbOrTx,
  cursors: CursorCodec,
  deps: InvitationDeps,
  scope: { organizationId: string } | { workspaceId: string },
  request: PageRequest & { status?: InvitationStatus | undefined },
): Promise<InvitationPage> {
  const now = deps.now();
  const inScope =
    'workspaceId' in scope ? eq(invitations.workspaceId, scope.workspaceId) : eq(invitations.organizationId, scope.organizationId);
  const { rows, next_cursor } = await paginate(
    cursors,
    { list: 'invitations', ...scope, status: request.status ?? null },
    request,
    {
      sortKey: invitations.createdAt,
      id: invitations.id,
      order: 'desc',
      keyParam: timestampParam,
      position: (row: InvitationRow) => [row.createdAt.toISOString(), row.id],
    },
    (after, take) =>
      db
        .select()
        .from(invitations)
        .where(and(inScope, statusCondition(request.status, now), after))
        .orderBy(desc(invitations.createdAt), desc(invitations.id))
        .limit(take),
  );
  return { items: rows.map((row) => toInvitation(row, now)), next_cursor };
}

/** The organization's invitations and its workspaces', newest first (organization admins). */
export async function listOrganizationInvitations(
  db: DbOrTx,
  cursors: CursorCodec,
  actorId: string,
  deps: InvitationDeps,
  organizationId: string,
  request: PageRequest & { status?: InvitationStatus | undefined },
): Promise<InvitationPage> {
  const role = await findRole(db, actorId, organizationId);
  if (!role) throw new AppError('NOT_FOUND', 'Organization not found');
  if (!hasRole(role, 'admin')) throw new AppError('FORBIDDEN', `This needs the admin role in the organization (you are ${role})`);
  return listInvitations(db, cursors, deps, { organizationId }, request);
}

/** The workspace's invitations, newest first (workspace admins). */
export async function listWorkspaceInvitations(
  db: DbOrTx,
  cursors: CursorCodec,
  actorId: string,
  deps: InvitationDeps,
  workspaceId: string,
  request: PageRequest & { status?: InvitationStatus | undefined },
): Promise<InvitationPage> {
  await loadWorkspace(db, actorId, workspaceId, 'manageMembers');
  return listInvitations(db, cursors, deps, { workspaceId }, request);
}

// ---- By token: preview, accept, decline ----

/** What an invitee sees before deciding (no authentication): nothing about the inviter or the other members. */
export async function previewInvitation(db: DbOrTx, deps: InvitationDeps, token: string): Promise<InvitationPreview> {
  const [row] = await db
    .select({ invitation: invitations, organizationName: organizations.name, workspaceName: workspaces.name })
    .from(invitations)
    .innerJoin(organizations, eq(organizations.id, invitations.organizationId))
    .leftJoin(workspaces, eq(workspaces.id, invitations.workspaceId))
    .where(eq(invitations.tokenHash, hashToken(token)));
  if (!row) throw invitationNotFound();
  return {
    organization_name: row.organizationName,
    workspace_name: row.workspaceName,
    role: row.invitation.role as InvitationPreview['role'],
    expires_at: row.invitation.expiresAt.toISOString(),
    status: statusAt(row.invitation, deps.now()),
  };
}

/**
 * The invitation a token names, locked for its answer, for the caller it was sent to: 404
 * when unknown or spent (accepted, declined, revoked), 410 when expired, 403 for another
 * email. Its organization is locked first (key share: a removal, a settings write or a
 * deletion waits for the answer, and the answer for them), then its workspace, then itself.
 */
async function loadForAnswer(tx: Tx, caller: Author, token: string, now: Date): Promise<InvitationRow> {
  const tokenHash = hashToken(token);
  const [found] = await tx
    .select({ id: invitations.id, workspaceId: invitations.workspaceId })
    .from(invitations)
    .where(eq(invitations.tokenHash, tokenHash));
  if (!found) throw invitationNotFound();
  await lockInvitationOrganization(tx, found.id, 'key share');
  if (found.workspaceId) await tx.select({ id: workspaces.id }).from(workspaces).where(eq(workspaces.id, found.workspaceId)).for('update');
  const [row] = await tx
    .select()
    .from(invitations)
    .where(and(eq(invitations.id, found.id), eq(invitations.tokenHash, tokenHash)))
    .for('update');
  const status = row && statusAt(row, now);
  if (!row || (status !== 'pending' && status !== 'expired')) throw invitationNotFound();
  if (status === 'expired') throw new AppError('GONE', 'This invitation has expired; ask for a new one');
  if (!sameEmail(row.email, caller.email)) throw new AppError('FORBIDDEN', 'This invitation is for another email address');
  return row;
}

const cannotAccept = (why: string) => new AppError('CONFLICT', `This invitation cannot be accepted now: ${why}`);

/**
 * Accepts: the membership the invitation names, made in this transaction after its rules are
 * checked again (README: the inviter's right, allow_guests / allow_member_invites, the target
 * still active). A refusal leaves the invitation pending.
 */
export async function acceptInvitation(tx: Tx, author: Author, deps: InvitationDeps, token: string): Promise<AcceptedInvitation> {
  const now = deps.now();
  const row = await loadForAnswer(tx, author, token, now);
  const accepterRole = await findRole(tx, author.id, row.organizationId);
  const events: NewEvent[] = [];
  let membership: AcceptedInvitation['membership'];
  if (!row.workspaceId) {
    if (accepterRole) throw new AppError('CONFLICT', 'You are already a member of this organization');
    await recheck(tx, row, { organizationId: row.organizationId, workspace: null }, false);
    await tx.insert(memberships).values({ organizationId: row.organizationId, userId: author.id, role: row.role as Role });
    events.push(memberEvent('member.added', row.organizationId, author.id, changesBetween(null, { email: author.email, role: row.role })));
    membership = { organization_id: row.organizationId, workspace_id: null, user_id: author.id, role: row.role as Role, guest: false };
  } else {
    const [workspace] = await tx.select().from(workspaces).where(eq(workspaces.id, row.workspaceId));
    if (!workspace) throw invitationNotFound();
    if (workspace.archivedAt) throw cannotAccept('the workspace is archived');
    const guest = !accepterRole;
    await recheck(tx, row, { organizationId: row.organizationId, workspace }, guest);
    const [inserted] = await tx
      .insert(workspaceMembers)
      .values({ workspaceId: workspace.id, userId: author.id, role: row.role as WorkspaceRole })
      .onConflictDoNothing()
      .returning();
    if (!inserted) throw new AppError('CONFLICT', 'You are already a member of this workspace');
    events.push(
      workspaceMemberEvent('workspace.member_added', workspace, author.id, changesBetween(null, { email: author.email, role: row.role })),
    );
    membership = {
      organization_id: row.organizationId,
      workspace_id: workspace.id,
      user_id: author.id,
      role: row.role as WorkspaceRole,
      guest,
    };
  }
  const [updated] = await tx
    .update(invitations)
    .set({ status: 'accepted', acceptedAt: now, acceptedUserId: author.id, updatedAt: now })
    .where(eq(invitations.id, row.id))
    .returning();
  await recordEvents(tx, author, [
    invitationEvent('invitation.accepted', updated!, { status: { from: 'pending', to: 'accepted' } }),
    ...events,
  ]);
  return { invitation: toInvitation(updated!, now), membership };
}

/** The creation rules again, for the inviter as they are now: 409 naming the one that no longer holds. */
async function recheck(tx: Tx, row: InvitationRow, target: Target, guest: boolean): Promise<void> {
  if (!row.invitedBy) throw cannotAccept("the inviter's account no longer exists");
  const inviterRole = target.workspace
    ? (await findWithAccess(tx, row.invitedBy, target.workspace.id))?.access.role
    : await findRole(tx, row.invitedBy, target.organizationId);
  if (!inviterRole) {
    throw cannotAccept(
      target.workspace ? 'the inviter no longer has access to the workspace' : 'the inviter is no longer a member of the organization',
    );
  }
  const refused = refusal(target, inviterRole, row.role as AnyRole, guest, await invitePermissions(tx, target));
  if (refused) throw cannotAccept(refused);
}

export async function declineInvitation(tx: Tx, author: Author, deps: InvitationDeps, token: string): Promise<{ invitation: Invitation }> {
  const now = deps.now();
  const row = await loadForAnswer(tx, author, token, now);
  return { invitation: toInvitation(await setStatus(tx, author, row, 'declined', now), now) };
}

/** An invitation's own event: in its organization's trail, and its workspace's when it has one. */
function invitationEvent(action: NewEvent['action'], row: InvitationRow, changes: NewEvent['changes']): NewEvent {
  return {
    organizationId: row.organizationId,
    workspaceId: row.workspaceId,
    action,
    targetType: 'invitation',
    targetId: row.id,
    changes,
  };
}
