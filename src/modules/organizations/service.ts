import { and, asc, count, eq, like, sql } from 'drizzle-orm';
import type { Db, DbOrTx, Tx } from '../../db/client';
import { isUniqueViolation } from '../../db/errors';
import { keysetAfter, timestampParam } from '../../db/keyset';
import { memberships, organizations, users, type Role } from '../../db/schema';
import { AppError, notFound } from '../../lib/errors';
import { takePage, type CursorCodec } from '../../lib/cursor';
import { DERIVED_SLUG_ATTEMPTS, firstFreeSlug, slugFamilyPattern, slugify } from '../../lib/slug';
import { canonicalJson } from '../../lib/canonical-json';
import { applySettingsPatch, resolveEffectiveSettings } from '../settings/resolve';
import type { EffectiveSettings, SettingsLayer, SettingsPatch } from '../settings/document';
import { insertDefaultWorkspace } from '../workspaces/default-workspace';
import type { WorkspaceDto } from '../workspaces/dto';
import { hasRole, requireRole } from './access';

type OrganizationRow = typeof organizations.$inferSelect;

export interface OrganizationDto {
  id: string;
  name: string;
  slug: string;
  created_at: string;
  updated_at: string;
}

export interface MemberDto {
  user_id: string;
  email: string;
  name: string;
  role: Role;
  created_at: string;
}

export interface OrganizationSettingsDto {
  organization_id: string;
  settings: SettingsLayer;
  effective: EffectiveSettings;
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export const toOrganizationDto = (row: OrganizationRow): OrganizationDto => ({
  id: row.id,
  name: row.name,
  slug: row.slug,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

const slugTaken = (slug: string) => new AppError('CONFLICT', `The organization slug "${slug}" is taken`);

/**
 * Inserts an organization with the given slug, or one derived from the name (a numeric
 * suffix when taken). Conflicts are detected with ON CONFLICT DO NOTHING, so a race with
 * another insert retries with the next free slug instead of aborting the transaction.
 */
async function insertOrganization(tx: Tx, name: string, slug: string | undefined): Promise<OrganizationRow> {
  const insert = (candidate: string) =>
    tx.insert(organizations).values({ name, slug: candidate }).onConflictDoNothing({ target: organizations.slug }).returning();
  if (slug) {
    const [row] = await insert(slug);
    if (!row) throw slugTaken(slug);
    return row;
  }
  const base = slugify(name, 'organization');
  for (let attempt = 0; attempt < DERIVED_SLUG_ATTEMPTS; attempt++) {
    const existing = await tx
      .select({ slug: organizations.slug })
      .from(organizations)
      .where(like(organizations.slug, slugFamilyPattern(base)));
    const [row] = await insert(firstFreeSlug(base, new Set(existing.map((r) => r.slug))));
    if (row) return row;
  }
  throw new AppError('CONFLICT', 'Could not derive a free organization slug; pass one explicitly');
}

/**
 * Creates an organization owned by `ownerId`, with its default workspace, inside the
 * caller's transaction (signup, external first sight and POST /organizations share it).
 */
export async function createOrganizationWithDefault(
  tx: Tx,
  ownerId: string,
  input: { name: string; slug?: string | undefined },
): Promise<{ organization: OrganizationDto; workspace: WorkspaceDto }> {
  const row = await insertOrganization(tx, input.name, input.slug);
  await tx.insert(memberships).values({ organizationId: row.id, userId: ownerId, role: 'owner' });
  const workspace = await insertDefaultWorkspace(tx, row.id);
  return { organization: toOrganizationDto(row), workspace };
}

export async function listOrganizations(
  db: Db,
  cursors: CursorCodec,
  userId: string,
  input: { limit: number; cursor?: string | undefined },
): Promise<Page<OrganizationDto & { role: Role }>> {
  const filters = { list: 'organizations', userId };
  const after = input.cursor ? cursors.decode(input.cursor, filters) : undefined;
  const position = after
    ? keysetAfter(organizations.createdAt, organizations.id, { key: timestampParam(after[0]!), id: String(after[1]) })
    : undefined;
  const rows = await db
    .select({ organization: organizations, role: memberships.role })
    .from(memberships)
    .innerJoin(organizations, eq(organizations.id, memberships.organizationId))
    .where(and(eq(memberships.userId, userId), position))
    .orderBy(asc(organizations.createdAt), asc(organizations.id))
    .limit(input.limit + 1);
  const { page, hasMore } = takePage(rows, input.limit);
  const last = page.at(-1);
  return {
    items: page.map((r) => ({ ...toOrganizationDto(r.organization), role: r.role })),
    next_cursor: hasMore && last ? cursors.encode([last.organization.createdAt.toISOString(), last.organization.id], filters) : null,
  };
}

async function findOrganization(db: DbOrTx, organizationId: string): Promise<OrganizationRow> {
  const [row] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
  if (!row) throw notFound('Organization');
  return row;
}

export async function getOrganization(db: Db, userId: string, organizationId: string): Promise<OrganizationDto & { role: Role }> {
  const role = await requireRole(db, userId, organizationId, 'member');
  return { ...toOrganizationDto(await findOrganization(db, organizationId)), role };
}

export async function updateOrganization(
  db: Db,
  userId: string,
  organizationId: string,
  input: { name?: string | undefined; slug?: string | undefined },
): Promise<OrganizationDto & { role: Role }> {
  return db.transaction(async (tx) => {
    const role = await requireRole(tx, userId, organizationId, 'admin');
    const current = await findOrganization(tx, organizationId);
    const changes: Partial<OrganizationRow> = {};
    if (input.name !== undefined && input.name !== current.name) changes.name = input.name;
    if (input.slug !== undefined && input.slug !== current.slug) changes.slug = input.slug;
    if (Object.keys(changes).length === 0) return { ...toOrganizationDto(current), role };
    try {
      const [row] = await tx
        .update(organizations)
        .set({ ...changes, updatedAt: sql`now()` })
        .where(eq(organizations.id, organizationId))
        .returning();
      return { ...toOrganizationDto(row!), role };
    } catch (error) {
      if (isUniqueViolation(error)) throw slugTaken(input.slug!);
      throw error;
    }
  });
}

export async function deleteOrganization(db: Db, userId: string, organizationId: string): Promise<void> {
  await db.transaction(async (tx) => {
    await requireRole(tx, userId, organizationId, 'owner');
    await tx.delete(organizations).where(eq(organizations.id, organizationId));
  });
}

function toSettingsDto(row: OrganizationRow): OrganizationSettingsDto {
  return {
    organization_id: row.id,
    settings: row.settings,
    effective: resolveEffectiveSettings(row.settings).effective,
  };
}

export async function getOrganizationSettings(db: Db, userId: string, organizationId: string): Promise<OrganizationSettingsDto> {
  await requireRole(db, userId, organizationId, 'member');
  return toSettingsDto(await findOrganization(db, organizationId));
}

export async function updateOrganizationSettings(
  db: Db,
  userId: string,
  organizationId: string,
  patch: SettingsPatch,
): Promise<OrganizationSettingsDto> {
  return db.transaction(async (tx) => {
    await requireRole(tx, userId, organizationId, 'admin');
    const [current] = await tx.select().from(organizations).where(eq(organizations.id, organizationId)).for('update');
    if (!current) throw notFound('Organization');
    const next = applySettingsPatch(current.settings, patch);
    if (canonicalJson(next) === canonicalJson(current.settings)) return toSettingsDto(current);
    const [row] = await tx
      .update(organizations)
      .set({ settings: next, updatedAt: sql`now()` })
      .where(eq(organizations.id, organizationId))
      .returning();
    return toSettingsDto(row!);
  });
}

// ---- members ----

const memberColumns = {
  user_id: memberships.userId,
  email: users.email,
  name: users.name,
  role: memberships.role,
  createdAt: memberships.createdAt,
};

type MemberRow = { user_id: string; email: string; name: string; role: Role; createdAt: Date };
const toMemberDto = ({ createdAt, ...rest }: MemberRow): MemberDto => ({ ...rest, created_at: createdAt.toISOString() });

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
  db: Db,
  cursors: CursorCodec,
  actorId: string,
  organizationId: string,
  input: { limit: number; cursor?: string | undefined },
): Promise<Page<MemberDto>> {
  await requireRole(db, actorId, organizationId, 'member');
  const filters = { list: 'members', organizationId };
  const after = input.cursor ? cursors.decode(input.cursor, filters) : undefined;
  const position = after
    ? keysetAfter(memberships.createdAt, memberships.userId, { key: timestampParam(after[0]!), id: String(after[1]) })
    : undefined;
  const rows = await db
    .select(memberColumns)
    .from(memberships)
    .innerJoin(users, eq(users.id, memberships.userId))
    .where(and(eq(memberships.organizationId, organizationId), position))
    .orderBy(asc(memberships.createdAt), asc(memberships.userId))
    .limit(input.limit + 1);
  const { page, hasMore } = takePage(rows, input.limit);
  const last = page.at(-1);
  return {
    items: page.map(toMemberDto),
    next_cursor: hasMore && last ? cursors.encode([last.createdAt.toISOString(), last.user_id], filters) : null,
  };
}

export async function getMember(db: Db, actorId: string, organizationId: string, userId: string): Promise<MemberDto> {
  await requireRole(db, actorId, organizationId, 'member');
  return toMemberDto(await findMember(db, organizationId, userId));
}

const ownerOnly = (what: string) => new AppError('FORBIDDEN', `Only an owner can ${what}`);

export async function addMember(
  db: Db,
  actorId: string,
  organizationId: string,
  input: { email: string; role: Role },
): Promise<MemberDto> {
  return db.transaction(async (tx) => {
    const actorRole = await requireRole(tx, actorId, organizationId, 'admin');
    if (input.role === 'owner' && actorRole !== 'owner') throw ownerOnly('add an owner');
    const [user] = await tx.select({ id: users.id }).from(users).where(eq(sql`lower(${users.email})`, input.email.toLowerCase()));
    if (!user) throw new AppError('NOT_FOUND', 'No account has this email; the person must sign up first');
    const [inserted] = await tx
      .insert(memberships)
      .values({ organizationId, userId: user.id, role: input.role })
      .onConflictDoNothing()
      .returning();
    if (!inserted) throw new AppError('CONFLICT', 'This user is already a member of the organization');
    return toMemberDto(await findMember(tx, organizationId, user.id));
  });
}

/**
 * Serializes the membership changes of one organization. Every change that could remove an
 * owner takes this lock first, before reading any role, so it sees the outcome of the one
 * before it: two owners demoting each other cannot both pass (the second is no longer an
 * owner), and two last owners cannot both leave.
 */
async function lockOrganization(tx: Tx, organizationId: string): Promise<void> {
  await tx.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, organizationId)).for('update');
}

/** Whether an owner other than `leavingUserId` remains (call under `lockOrganization`). */
async function otherOwnersRemain(tx: Tx, organizationId: string, leavingUserId: string): Promise<boolean> {
  const [row] = await tx
    .select({ owners: count() })
    .from(memberships)
    .where(and(eq(memberships.organizationId, organizationId), eq(memberships.role, 'owner'), sql`${memberships.userId} <> ${leavingUserId}`));
  return (row?.owners ?? 0) > 0;
}

const lastOwner = (what: string) =>
  new AppError('CONFLICT', `${what}: an organization must keep at least one owner (make another member owner first)`);

export async function updateMemberRole(
  db: Db,
  actorId: string,
  organizationId: string,
  userId: string,
  role: Role,
): Promise<MemberDto> {
  return db.transaction(async (tx) => {
    await lockOrganization(tx, organizationId);
    const actorRole = await requireRole(tx, actorId, organizationId, 'admin');
    const member = await findMember(tx, organizationId, userId);
    if (member.role === role) return toMemberDto(member);
    if ((role === 'owner' || member.role === 'owner') && actorRole !== 'owner') throw ownerOnly('grant or remove the owner role');
    if (member.role === 'owner' && !(await otherOwnersRemain(tx, organizationId, userId))) throw lastOwner('Cannot demote the last owner');
    await tx
      .update(memberships)
      .set({ role })
      .where(and(eq(memberships.organizationId, organizationId), eq(memberships.userId, userId)));
    return toMemberDto({ ...member, role });
  });
}

export async function removeMember(db: Db, actorId: string, organizationId: string, userId: string): Promise<void> {
  await db.transaction(async (tx) => {
    await lockOrganization(tx, organizationId);
    const leaving = actorId === userId;
    const actorRole = await requireRole(tx, actorId, organizationId, leaving ? 'member' : 'admin');
    const member = await findMember(tx, organizationId, userId);
    if (member.role === 'owner' && !leaving && !hasRole(actorRole, 'owner')) throw ownerOnly('remove an owner');
    if (member.role === 'owner' && !(await otherOwnersRemain(tx, organizationId, userId))) throw lastOwner('Cannot remove the last owner');
    await tx.delete(memberships).where(and(eq(memberships.organizationId, organizationId), eq(memberships.userId, userId)));
  });
}
