import { and, count, eq, inArray, sql } from 'drizzle-orm';
import type { DbOrTx, Transact, Tx } from '../../db/client';
import { memberships, organizations, revokedExternalIdentities, users, workspaceMembers, workspaces } from '../../db/schema';
import { AppError, unauthorized } from '../../lib/errors';
import { hashForUnknownUsers, verifyPassword } from '../../auth/passwords';
import { confirmCaller } from '../../auth/caller';
import { CLOCK_SKEW_SECONDS, type TokenClaims, type TokenService } from '../../auth/tokens';
import { createOrganizationWithDefault, lockOrganizations } from '../organizations/service';
import { memberRemoved } from '../organizations/members';
import { endWorkspaceMemberships } from '../workspaces/members';
import { revokeInvitationsBy } from '../invitations/service';
import { recordEvents, type Author, type RequestIds } from '../audit/events';
import type { OrganizationWithRole } from '../organizations/schemas';
import type { Workspace } from '../workspaces/schemas';
import type { LoginInput, LoginOutput, MeOutput, SignupInput, SignupOutput, User } from './schemas';

type UserRow = typeof users.$inferSelect;

export const toUser = (row: UserRow): User => ({
  id: row.id,
  email: row.email,
  name: row.name,
  created_at: row.createdAt.toISOString(),
});

const emailTaken = () => new AppError('CONFLICT', 'An account with this email already exists');

/** The user, the organization it owns and that organization's default workspace, in the caller's transaction. */
async function createAccount(
  tx: Tx,
  values: typeof users.$inferInsert,
  request: RequestIds,
): Promise<{ user: UserRow; organization: OrganizationWithRole; workspace: Workspace }> {
  const [user] = await tx.insert(users).values(values).onConflictDoNothing().returning();
  if (!user) throw emailTaken();
  const { organization, workspace } = await createOrganizationWithDefault(
    tx,
    { id: user.id, email: user.email, ...request },
    {
      name: truncate(`${values.name}'s organization`, 100),
    },
  );
  return { user, organization, workspace };
}

/** A new account (its password hashed beforehand, outside the transaction: scrypt is slow), with a token. */
export async function signup(
  tx: Tx,
  tokens: TokenService,
  input: Omit<SignupInput, 'password'> & { passwordHash: string },
  request: RequestIds,
): Promise<SignupOutput> {
  const { user, organization, workspace } = await createAccount(
    tx,
    { email: input.email, name: input.name, passwordHash: input.passwordHash },
    request,
  );
  return { ...tokens.issue(user.id, user.tokenVersion), user: toUser(user), organization, workspace };
}

export async function login(db: DbOrTx, tokens: TokenService, input: LoginInput): Promise<LoginOutput> {
  const [user] = await db
    .select()
    .from(users)
    .where(eq(sql`lower(${users.email})`, input.email.toLowerCase()));
  // The same scrypt work whether or not the email is known, so timing tells nothing.
  const matches = await verifyPassword(input.password, user?.passwordHash ?? (await hashForUnknownUsers()));
  if (!user || !user.passwordHash || !matches) throw unauthorized('Invalid email or password');
  return { ...tokens.issue(user.id, user.tokenVersion), user: toUser(user) };
}

/** Every token issued to the user before now stops working (an identity provider's: see `revokedBy`). */
export async function logout(tx: Tx, userId: string): Promise<void> {
  await tx
    .update(users)
    .set({ tokenVersion: sql`${users.tokenVersion} + 1`, loggedOutAt: sql`now()` })
    .where(eq(users.id, userId));
}

export async function me(db: DbOrTx, userId: string): Promise<MeOutput> {
  const [user] = await db.select().from(users).where(eq(users.id, userId));
  if (!user) throw unauthorized('The account no longer exists');
  const rows = await db
    .select({ organization_id: memberships.organizationId, role: memberships.role })
    .from(memberships)
    .where(eq(memberships.userId, userId))
    .orderBy(memberships.createdAt, memberships.organizationId);
  const workspaceRows = await db
    .select({ workspace_id: workspaceMembers.workspaceId, organization_id: workspaces.organizationId, role: workspaceMembers.role })
    .from(workspaceMembers)
    .innerJoin(workspaces, eq(workspaces.id, workspaceMembers.workspaceId))
    .where(eq(workspaceMembers.userId, userId))
    .orderBy(workspaceMembers.createdAt, workspaceMembers.workspaceId);
  return { user: toUser(user), memberships: rows, workspace_memberships: workspaceRows };
}

/**
 * Deletes the account. Organizations where the caller is the only member go with it; being
 * the last owner of an organization that has other members is a 409.
 */
export async function deleteAccount(tx: Tx, author: Author): Promise<void> {
  const userId = author.id;
  const mine = await tx
    .select({ organizationId: memberships.organizationId, role: memberships.role })
    .from(memberships)
    .where(eq(memberships.userId, userId));
  // The organizations where they are a guest only (explicitly in some of their workspaces).
  const guestOf = (
    await tx
      .selectDistinct({ organizationId: workspaces.organizationId })
      .from(workspaceMembers)
      .innerJoin(workspaces, eq(workspaces.id, workspaceMembers.workspaceId))
      .where(eq(workspaceMembers.userId, userId))
  )
    .map((w) => w.organizationId)
    .filter((id) => !mine.some((m) => m.organizationId === id));
  // Lock the organizations so no member or owner change races the checks below.
  await lockOrganizations(tx, [...mine.map((m) => m.organizationId), ...guestOf], 'update');
  const soleMemberOf: string[] = [];
  for (const { organizationId, role } of mine) {
    const others = await tx
      .select({ role: memberships.role, n: count() })
      .from(memberships)
      .where(and(eq(memberships.organizationId, organizationId), sql`${memberships.userId} <> ${userId}`))
      .groupBy(memberships.role);
    if (others.length === 0) soleMemberOf.push(organizationId);
    else if (role === 'owner' && !others.some((o) => o.role === 'owner')) {
      throw new AppError('CONFLICT', 'You are the last owner of an organization that has other members; make another member owner first');
    }
  }
  if (soleMemberOf.length > 0) await tx.delete(organizations).where(inArray(organizations.id, soleMemberOf));
  // The organizations that stay record the member leaving, and each of their workspaces it was a member of.
  const staying = mine.filter((m) => !soleMemberOf.includes(m.organizationId));
  const remaining = [...staying.map((m) => m.organizationId), ...guestOf];
  const endedInWorkspaces = await endWorkspaceMemberships(tx, { id: userId, email: author.email }, remaining);
  const revokedInvitations = await revokeInvitationsBy(tx, userId, remaining);
  await recordEvents(tx, author, [
    ...staying.map((m) => memberRemoved(m.organizationId, { user_id: userId, email: author.email, role: m.role })),
    ...endedInWorkspaces,
    ...revokedInvitations,
  ]);
  const [deleted] = await tx.delete(users).where(eq(users.id, userId)).returning();
  if (deleted?.externalIssuer && deleted.externalSubject) {
    // The provider's tokens issued so far must not bring the account back.
    await tx
      .insert(revokedExternalIdentities)
      .values({ issuer: deleted.externalIssuer, subject: deleted.externalSubject })
      .onConflictDoUpdate({
        target: [revokedExternalIdentities.issuer, revokedExternalIdentities.subject],
        set: { revokedAt: sql`now()` },
      });
  }
}

/**
 * The user a verified token speaks for. Local tokens must carry the user's current token
 * version; external tokens find the user by (issuer, subject) and create it on first
 * sight, never linking to an existing account by email.
 */
export async function resolveActor(
  db: DbOrTx,
  claims: TokenClaims,
  transact: Transact,
  request: RequestIds,
): Promise<Pick<User, 'id' | 'email' | 'name'>> {
  if (claims.kind === 'local') {
    const [user] = await db.select().from(users).where(eq(users.id, claims.userId));
    confirmCaller({ id: claims.userId, tokenVersion: claims.tokenVersion }, user);
    return { id: user.id, email: user.email, name: user.name };
  }
  const [existing] = await db
    .select()
    .from(users)
    .where(and(eq(users.externalIssuer, claims.issuer), eq(users.externalSubject, claims.subject)));
  let user = existing;
  if (!user) {
    const deletedAt = await deletionOf(db, claims);
    if (deletedAt && revokedBy(claims, deletedAt)) throw unauthorized('The access token has been revoked');
    user = await createExternalUser(db, transact, claims, request, deletedAt);
  }
  if (user.loggedOutAt && revokedBy(claims, user.loggedOutAt)) throw unauthorized('The access token has been revoked');
  return { id: user.id, email: user.email, name: user.name };
}

/**
 * Whether a revocation at `cutoff` (a logout, an account deletion) covers an identity
 * provider's token. Such tokens carry no token version, only `iat`, and an `iat` may be up to
 * CLOCK_SKEW_SECONDS ahead of this clock: a token issued just before the cutoff by a provider
 * whose clock runs ahead carries an `iat` up to that much after it. So the cutoff covers the
 * skew, and the provider's tokens issued within it after a logout are refused too (README,
 * Auth: sign in again after it).
 */
const revokedBy = (claims: Extract<TokenClaims, { kind: 'external' }>, cutoff: Date) =>
  claims.issuedAt * 1000 <= cutoff.getTime() + CLOCK_SKEW_SECONDS * 1000;

/** A claim as a trimmed string, or '' when it is not one we can store (not a string, NUL, lone surrogate). */
function claimString(value: unknown): string {
  if (typeof value !== 'string' || value.includes('\u0000') || !value.isWellFormed()) return '';
  return value.trim();
}

/** At most `max` UTF-16 units, never ending in half of a surrogate pair. */
const truncate = (text: string, max: number) => text.slice(0, max).replace(/[\ud800-\udbff]$/, '');

/** When this identity's last account was deleted, if it ever was. */
async function deletionOf(db: DbOrTx, claims: Extract<TokenClaims, { kind: 'external' }>): Promise<Date | undefined> {
  const [row] = await db
    .select({ revokedAt: revokedExternalIdentities.revokedAt })
    .from(revokedExternalIdentities)
    .where(and(eq(revokedExternalIdentities.issuer, claims.issuer), eq(revokedExternalIdentities.subject, claims.subject)));
  return row?.revokedAt;
}

/**
 * The account of an identity seen for the first time, or again after its account was deleted
 * (`deletedAt`): the new account starts as logged out then, so the tokens the deletion revoked
 * cannot reach it either.
 */
async function createExternalUser(
  db: DbOrTx,
  transact: Transact,
  claims: Extract<TokenClaims, { kind: 'external' }>,
  request: RequestIds,
  deletedAt: Date | undefined,
): Promise<UserRow> {
  const email = claimString(claims.email);
  const name = truncate(claimString(claims.name), 100).trim() || email;
  if (!/^[^\s@]+@[^\s@]+$/.test(email) || email.length > 254) {
    throw unauthorized('The identity provider token has no valid email claim');
  }
  try {
    const { user } = await transact((tx) =>
      createAccount(
        tx,
        { email, name, externalIssuer: claims.issuer, externalSubject: claims.subject, loggedOutAt: deletedAt ?? null },
        request,
      ),
    );
    return user;
  } catch (error) {
    if (!(error instanceof AppError && error.code === 'CONFLICT')) throw error;
    // Either a concurrent first request for this identity created it (use that one), or the
    // email belongs to another account.
    const [existing] = await db
      .select()
      .from(users)
      .where(and(eq(users.externalIssuer, claims.issuer), eq(users.externalSubject, claims.subject)));
    if (existing) return existing;
    throw unauthorized('The email of this identity belongs to another account; external identities are never linked by email');
  }
}
