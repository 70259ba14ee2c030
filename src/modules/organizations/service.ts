import { and, asc, count, eq, inArray, sql } from 'drizzle-orm';
import type { DbOrTx, Tx } from '../../db/client';
import { isUniqueViolation } from '../../db/errors';
import { memberships, organizations, users, type Role } from '../../db/schema';
import { AppError, notFound } from '../../lib/errors';
import type { CursorCodec } from '../../lib/cursor';
import { paginate, timestampParam, type PageRequest } from '../../lib/pagination';
import { inSlugFamily, insertWithSlug, joinedSlugs, slugFamilyStem, slugify, slugSet } from '../../lib/slug';
import { applySettingsPatch, resolveEffectiveSettings } from '../settings/resolve';
import { normalizeLocks } from '../settings/locks';
import { changesBetween, memberEvent, organizationEvent, recordEvents, type Author } from '../audit/events';
import { insertDefaultWorkspace } from '../workspaces/default-workspace';
import { rederiveAccess } from '../workspaces/access';
import type { Workspace } from '../workspaces/schemas';
import { requireRole } from './access';
import type {
  NewOrganization,
  Organization,
  OrganizationChanges,
  OrganizationPage,
  OrganizationSettings,
  OrganizationSettingsChanges,
  OrganizationWithRole,
} from './schemas';

type OrganizationRow = typeof organizations.$inferSelect;

export const toOrganization = (row: OrganizationRow): Organization => ({
  id: row.id,
  name: row.name,
  slug: row.slug,
  created_at: row.createdAt.toISOString(),
  updated_at: row.updatedAt.toISOString(),
});

const slugTaken = (slug: string) => new AppError('CONFLICT', `The organization slug "${slug}" is taken`);

/**
 * Inserts an organization with the given slug, or one derived from the name (a numeric
 * suffix when taken): organization slugs are unique across the service.
 */
function insertOrganization(tx: Tx, name: string, slug: string | undefined, createdBy: string): Promise<OrganizationRow> {
  return insertWithSlug({
    slug,
    base: slugify(name, 'organization'),
    what: 'organization',
    slugTaken,
    insert: async (candidate) =>
      (
        await tx
          .insert(organizations)
          .values({ name, slug: candidate, createdBy })
          .onConflictDoNothing({ target: organizations.slug })
          .returning()
      )[0],
    takenSlugs: async (base) => {
      const [row] = await tx
        .select({ slugs: joinedSlugs(organizations.slug) })
        .from(organizations)
        .where(inSlugFamily(organizations.slug, slugFamilyStem(base)));
      return slugSet(row?.slugs);
    },
  });
}

/**
 * Creates an organization owned by `owner`, with its default workspace, inside the caller's
 * transaction (signup, external first sight and POST /organizations share it), with the
 * events of all three.
 */
export async function createOrganizationWithDefault(
  tx: Tx,
  owner: Author,
  input: NewOrganization,
): Promise<{ organization: OrganizationWithRole; workspace: Workspace }> {
  const row = await insertOrganization(tx, input.name, input.slug, owner.id);
  await tx.insert(memberships).values({ organizationId: row.id, userId: owner.id, role: 'owner' });
  const { workspace, event } = await insertDefaultWorkspace(tx, row.id);
  await recordEvents(tx, owner, [
    organizationEvent('organization.created', row.id, changesBetween(null, { name: row.name, slug: row.slug })),
    memberEvent('member.added', row.id, owner.id, changesBetween(null, { email: owner.email, role: 'owner' })),
    event,
  ]);
  return { organization: { ...toOrganization(row), role: 'owner' }, workspace };
}

/**
 * `POST /organizations`: a new organization of the caller's, refused (409 QUOTA_EXCEEDED)
 * when they have created MAX_ORGANIZATIONS_PER_USER already (`quota`, 0 for no limit). Counted
 * under the caller's row lock, so one user's racing creates count one after the other.
 * Signup and an identity provider's first sight create an account's first organization, which
 * always fits, and count towards the limit.
 */
export async function createOrganization(
  tx: Tx,
  owner: Author,
  input: NewOrganization,
  quota: number,
): Promise<{ organization: OrganizationWithRole; workspace: Workspace }> {
  if (quota > 0) {
    await tx.select({ id: users.id }).from(users).where(eq(users.id, owner.id)).for('no key update');
    const [row] = await tx.select({ created: count() }).from(organizations).where(eq(organizations.createdBy, owner.id));
    if ((row?.created ?? 0) >= quota) {
      throw new AppError(
        'QUOTA_EXCEEDED',
        `You have created ${quota} organizations, the limit (MAX_ORGANIZATIONS_PER_USER); delete one you created first`,
      );
    }
  }
  return createOrganizationWithDefault(tx, owner, input);
}

export async function listOrganizations(db: DbOrTx, cursors: CursorCodec, userId: string, request: PageRequest): Promise<OrganizationPage> {
  const { rows, next_cursor } = await paginate(
    cursors,
    { list: 'organizations', userId },
    request,
    {
      sortKey: organizations.createdAt,
      id: organizations.id,
      keyParam: timestampParam,
      position: (r: { organization: OrganizationRow; role: Role }) => [r.organization.createdAt.toISOString(), r.organization.id],
    },
    (after, take) =>
      db
        .select({ organization: organizations, role: memberships.role })
        .from(memberships)
        .innerJoin(organizations, eq(organizations.id, memberships.organizationId))
        .where(and(eq(memberships.userId, userId), after))
        .orderBy(asc(organizations.createdAt), asc(organizations.id))
        .limit(take),
  );
  return { items: rows.map((r) => ({ ...toOrganization(r.organization), role: r.role })), next_cursor };
}

async function findOrganization(db: DbOrTx, organizationId: string): Promise<OrganizationRow> {
  const [row] = await db.select().from(organizations).where(eq(organizations.id, organizationId));
  if (!row) throw notFound('Organization');
  return row;
}

export async function getOrganization(db: DbOrTx, userId: string, organizationId: string): Promise<OrganizationWithRole> {
  const role = await requireRole(db, userId, organizationId, 'member');
  return { ...toOrganization(await findOrganization(db, organizationId)), role };
}

export async function updateOrganization(
  tx: Tx,
  author: Author,
  organizationId: string,
  input: OrganizationChanges,
): Promise<OrganizationWithRole> {
  const role: Role = await requireRole(tx, author.id, organizationId, 'admin');
  const current = await findOrganization(tx, organizationId);
  const changes: Partial<OrganizationRow> = {};
  if (input.name !== undefined && input.name !== current.name) changes.name = input.name;
  if (input.slug !== undefined && input.slug !== current.slug) changes.slug = input.slug;
  if (Object.keys(changes).length === 0) return { ...toOrganization(current), role };
  try {
    const [row] = await tx
      .update(organizations)
      .set({ ...changes, updatedAt: sql`now()` })
      .where(eq(organizations.id, organizationId))
      .returning();
    await recordEvents(tx, author, [
      organizationEvent(
        'organization.updated',
        organizationId,
        changesBetween({ name: current.name, slug: current.slug }, { name: row!.name, slug: row!.slug }),
      ),
    ]);
    return { ...toOrganization(row!), role };
  } catch (error) {
    if (isUniqueViolation(error)) throw slugTaken(input.slug!);
    throw error;
  }
}

/**
 * Deletes the organization with its workspaces, memberships and audit events: its trail goes
 * with it, so the deletion itself is recorded in the log (organizations/router.ts), not as an
 * event (README, Audit events). Answers what was deleted.
 */
export async function deleteOrganization(tx: Tx, userId: string, organizationId: string): Promise<Organization> {
  await requireRole(tx, userId, organizationId, 'owner');
  const [deleted] = await tx.delete(organizations).where(eq(organizations.id, organizationId)).returning();
  if (!deleted) throw notFound('Organization');
  return toOrganization(deleted);
}

function toSettings(row: OrganizationRow): OrganizationSettings {
  return {
    organization_id: row.id,
    settings: row.settings,
    effective: resolveEffectiveSettings(row.settings).effective,
    locks: row.settingsLocks,
  };
}

export async function getOrganizationSettings(db: DbOrTx, userId: string, organizationId: string): Promise<OrganizationSettings> {
  await requireRole(db, userId, organizationId, 'member');
  return toSettings(await findOrganization(db, organizationId));
}

/**
 * Merges a settings write and replaces the locks (when given) under the organization's update
 * lock, which every workspace settings write and create waits for (they take a share lock),
 * so no workspace write slips under a new lock.
 */
export async function updateOrganizationSettings(
  tx: Tx,
  author: Author,
  organizationId: string,
  { locks, ...patch }: OrganizationSettingsChanges,
): Promise<OrganizationSettings> {
  await requireRole(tx, author.id, organizationId, 'admin');
  const [current] = await tx.select().from(organizations).where(eq(organizations.id, organizationId)).for('update');
  if (!current) throw notFound('Organization');
  const before = { settings: current.settings, locks: current.settingsLocks };
  const after = {
    settings: applySettingsPatch(current.settings, patch),
    locks: locks === undefined ? current.settingsLocks : normalizeLocks(locks),
  };
  const changes = changesBetween(before, after);
  if (Object.keys(changes).length === 0) return toSettings(current);
  const [row] = await tx
    .update(organizations)
    .set({ settings: after.settings, settingsLocks: after.locks, updatedAt: sql`now()` })
    .where(eq(organizations.id, organizationId))
    .returning();
  // Visibility and default role decide who sees each workspace: their resolved values move now.
  await rederiveAccess(tx, organizationId, before, after);
  await recordEvents(tx, author, [organizationEvent('organization.settings_updated', organizationId, changes)]);
  return toSettings(row!);
}

/**
 * Serializes the membership changes of one organization. Every change that could remove an
 * owner takes this lock first, before reading any role, so it sees the outcome of the one
 * before it: two owners demoting each other cannot both pass (the second is no longer an
 * owner), and two last owners cannot both leave.
 */
export async function lockOrganization(tx: Tx, organizationId: string): Promise<void> {
  await tx.select({ id: organizations.id }).from(organizations).where(eq(organizations.id, organizationId)).for('update');
}

/**
 * Row locks on several organizations, taken in id order, so two transactions that lock
 * overlapping sets (an account deletion, a clone across organizations) cannot deadlock.
 */
export async function lockOrganizations(tx: Tx, organizationIds: string[], strength: 'update' | 'key share'): Promise<void> {
  if (organizationIds.length === 0) return;
  await tx
    .select({ id: organizations.id })
    .from(organizations)
    .where(inArray(organizations.id, organizationIds))
    .orderBy(organizations.id)
    .for(strength);
}
