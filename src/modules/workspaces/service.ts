import { and, asc, desc, eq, inArray, like, or, sql, type SQL } from 'drizzle-orm';
import { unionAll } from 'drizzle-orm/pg-core';
import type { DbOrTx, Tx } from '../../db/client';
import { isUniqueViolation } from '../../db/errors';
import { preparedPerDatabase } from '../../db/prepared';
import { memberships, organizations, users, workspaces, type Role } from '../../db/schema';
import { confirmCaller, type Caller } from '../../auth/caller';
import { AppError } from '../../lib/errors';
import type { CursorCodec } from '../../lib/cursor';
import { checkVersion, type VersionCondition } from '../../lib/etag';
import { canonicalJson } from '../../lib/canonical-json';
import { paginate, timestampParam } from '../../lib/pagination';
import { inSlugFamily, insertWithSlug, slugFamilyStem, slugify } from '../../lib/slug';
import { applySettingsPatch, resolveEffectiveSettings } from '../settings/resolve';
import type { SettingsLayer, SettingsPatch } from '../settings/document';
import { confirmAccount, hasRole, requireCallerRole, requireRole } from '../organizations/access';
import { nameKey, toWorkspace, type WorkspaceRow } from './rows';
import { assertWriteWithinBudget } from './write-budget';
import {
  METADATA_MAX_KEYS,
  type CloneFields,
  type ListWorkspacesInput,
  type NewWorkspace,
  type Workspace,
  type WorkspaceChanges,
  type WorkspacePage,
  type WorkspaceSettings,
} from './schemas';

const workspaceNotFound = () => new AppError('NOT_FOUND', 'Workspace not found');
export const slugTaken = (slug: string) => new AppError('CONFLICT', `The slug "${slug}" is taken in this organization`);

/**
 * The workspace with the caller's role in its organization, if the caller has at least
 * `minimum`. Non-members get 404 (existence is never revealed across tenants), members
 * without the role 403. With `forUpdate`, the workspace row stays locked until the
 * transaction ends, so conditional writes see the version they check.
 */
async function loadWorkspace(
  db: DbOrTx,
  actorId: string,
  workspaceId: string,
  minimum: Role,
  forUpdate = false,
): Promise<{ workspace: WorkspaceRow; role: Role }> {
  const query = db
    .select({ workspace: workspaces, role: memberships.role })
    .from(workspaces)
    .leftJoin(memberships, and(eq(memberships.organizationId, workspaces.organizationId), eq(memberships.userId, actorId)))
    .where(eq(workspaces.id, workspaceId));
  const [row] = forUpdate ? await query.for('update', { of: workspaces }) : await query;
  if (!row || !row.role) throw workspaceNotFound();
  if (!hasRole(row.role, minimum)) {
    throw new AppError('FORBIDDEN', `This needs the ${minimum} role in the workspace's organization (you are ${row.role})`);
  }
  return { workspace: row.workspace, role: row.role };
}

async function lockOrganizationOf(tx: Tx, workspaceId: string): Promise<void> {
  await tx
    .select({ id: organizations.id })
    .from(organizations)
    .where(eq(organizations.id, sql`(select ${workspaces.organizationId} from ${workspaces} where ${workspaces.id} = ${workspaceId})`))
    .for('update');
}

/**
 * The workspace, locked, for a conditional write by an admin: authorization first (404/403),
 * then the version condition (400/412), so a caller who may not see it learns nothing.
 */
async function loadForWrite(tx: Tx, actorId: string, workspaceId: string, condition: VersionCondition): Promise<WorkspaceRow> {
  const { workspace } = await loadWorkspace(tx, actorId, workspaceId, 'admin', true);
  checkVersion(workspace.version, condition);
  return workspace;
}

/**
 * Slugs in the organization that a derived slug from any of `bases` could collide with, and
 * those of `explicit` that are taken: one query of an index range scan per distinct base
 * (see inSlugFamily), so its cost follows the batch, not the organization's size.
 */
export async function takenSlugs(tx: DbOrTx, organizationId: string, bases: string[], explicit: string[] = []): Promise<Set<string>> {
  if (bases.length === 0 && explicit.length === 0) return new Set();
  const stems = JSON.stringify([...new Set(bases.map(slugFamilyStem))]);
  const families = tx
    .select({ slug: workspaces.slug })
    .from(sql`jsonb_array_elements_text(${stems}::jsonb) as family(stem)`)
    .innerJoin(workspaces, and(eq(workspaces.organizationId, organizationId), inSlugFamily(workspaces.slug, sql`family.stem`)));
  const rows =
    explicit.length > 0
      ? await unionAll(
          families,
          tx
            .select({ slug: workspaces.slug })
            .from(workspaces)
            .where(and(eq(workspaces.organizationId, organizationId), inArray(workspaces.slug, explicit))),
        )
      : await families;
  return new Set(rows.map((r) => r.slug));
}

/**
 * Inserts one workspace with the given slug, or one derived from its name (a numeric
 * suffix when taken): slugs are unique within the organization.
 */
function insertWorkspace(tx: Tx, values: Omit<typeof workspaces.$inferInsert, 'slug' | 'nameKey'>, slug: string | undefined) {
  return insertWithSlug({
    slug,
    base: slugify(values.name, 'workspace'),
    what: 'workspace',
    slugTaken,
    insert: async (candidate) =>
      (
        await tx
          .insert(workspaces)
          .values({ ...values, slug: candidate, nameKey: nameKey(values.name) })
          .onConflictDoNothing({ target: [workspaces.organizationId, workspaces.slug] })
          .returning()
      )[0],
    takenSlugs: (base) => takenSlugs(tx, values.organizationId, [base]),
  });
}

export async function createWorkspace(tx: Tx, actorId: string, organizationId: string, input: NewWorkspace): Promise<Workspace> {
  await requireRole(tx, actorId, organizationId, 'admin');
  const row = await insertWorkspace(
    tx,
    {
      organizationId,
      name: input.name,
      description: input.description ?? null,
      metadata: input.metadata ?? {},
      settings: applySettingsPatch({}, input.settings ?? {}),
    },
    input.slug,
  );
  return toWorkspace(row);
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Keyset pagination over the caller's organizations' workspaces, sorted by created_at or by
 * name (case-insensitively, in the "C" collation so both engines agree), with `id` as the
 * tie-break. `desc` is the exact reverse of `asc`. The cursor is signed and bound to the
 * filters, so it cannot be replayed against another query.
 */
export async function listWorkspaces(db: DbOrTx, cursors: CursorCodec, caller: Caller, input: ListWorkspacesInput): Promise<WorkspacePage> {
  const { organization_id, q, sort, order } = input;
  if (organization_id) await requireCallerRole(db, caller, organization_id, 'member');
  else await confirmAccount(db, caller);
  const actorId = caller.id;
  const filters = { list: 'workspaces', actorId, organization_id: organization_id ?? null, q: q || null, sort, order };

  const byName = sort === 'name';
  const sortKey = byName ? sql`${workspaces.nameKey} collate "C"` : sql`${workspaces.createdAt}`;
  const direction = order === 'asc' ? asc : desc;
  const conditions: Array<SQL | undefined> = [
    organization_id
      ? eq(workspaces.organizationId, organization_id)
      : inArray(
          workspaces.organizationId,
          db.select({ id: memberships.organizationId }).from(memberships).where(eq(memberships.userId, actorId)),
        ),
  ];
  if (q) {
    const pattern = `%${escapeLike(nameKey(q))}%`;
    conditions.push(or(like(workspaces.nameKey, pattern), like(workspaces.slug, pattern)));
  }

  const { rows, next_cursor } = await paginate(
    cursors,
    filters,
    input,
    {
      sortKey,
      id: workspaces.id,
      order,
      keyParam: (key) => (byName ? sql`${String(key)} collate "C"` : timestampParam(key)),
      position: (row: WorkspaceRow) => [byName ? row.nameKey : row.createdAt.toISOString(), row.id],
    },
    (after, take) =>
      db
        .select()
        .from(workspaces)
        .where(and(...conditions, after))
        .orderBy(direction(sortKey), direction(workspaces.id))
        .limit(take),
  );
  return { items: rows.map(toWorkspace), next_cursor };
}

/**
 * A workspace the caller may read, found by the one query that also confirms the caller
 * (the read's only round trip): 401 when the account is gone or the token revoked, then 404
 * when the workspace does not exist or the caller is not a member of its organization — the
 * order and messages of authedProcedure followed by loadWorkspace. With `organizationSettings`,
 * the same query reads the organization's settings layer.
 */
async function readWorkspace(
  db: DbOrTx,
  caller: Caller,
  workspaceId: string,
  { withOrganizationSettings = false } = {},
): Promise<{ workspace: WorkspaceRow; organizationSettings?: SettingsLayer }> {
  const query = withOrganizationSettings ? readWorkspaceWithOrganizationQuery(db) : readWorkspaceQuery(db);
  const [row] = await query.execute({ userId: caller.id, workspaceId });
  confirmCaller(caller, row);
  if (!row.workspace || !row.role) throw workspaceNotFound();
  return {
    workspace: row.workspace,
    organizationSettings: 'organizationSettings' in row ? (row.organizationSettings ?? undefined) : undefined,
  };
}

/** readWorkspace's query: the caller's account, left-joined to the workspace and the caller's membership in its organization. */
const readFields = { tokenVersion: users.tokenVersion, workspace: workspaces, role: memberships.role };
const memberOfWorkspaceOrganization = and(eq(memberships.organizationId, workspaces.organizationId), eq(memberships.userId, users.id));

const readWorkspaceQuery = preparedPerDatabase((db) =>
  db
    .select(readFields)
    .from(users)
    .leftJoin(workspaces, eq(workspaces.id, sql.placeholder('workspaceId')))
    .leftJoin(memberships, memberOfWorkspaceOrganization)
    .where(eq(users.id, sql.placeholder('userId')))
    .prepare('read_workspace'),
);

const readWorkspaceWithOrganizationQuery = preparedPerDatabase((db) =>
  db
    .select({ ...readFields, organizationSettings: organizations.settings })
    .from(users)
    .leftJoin(workspaces, eq(workspaces.id, sql.placeholder('workspaceId')))
    .leftJoin(memberships, memberOfWorkspaceOrganization)
    .leftJoin(organizations, eq(organizations.id, workspaces.organizationId))
    .where(eq(users.id, sql.placeholder('userId')))
    .prepare('read_workspace_with_organization'),
);

export async function getWorkspace(db: DbOrTx, caller: Caller, workspaceId: string): Promise<Workspace> {
  return toWorkspace((await readWorkspace(db, caller, workspaceId)).workspace);
}

/** Merges metadata key by key (`null` removes a key); 400 when the result holds more than 50 keys. */
export function mergeMetadata(current: Record<string, string>, patch: Record<string, string | null>): Record<string, string> {
  const next: Record<string, string> = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete next[key];
    else next[key] = value;
  }
  if (Object.keys(next).length > METADATA_MAX_KEYS) {
    throw new AppError('BAD_REQUEST', `A workspace may hold at most ${METADATA_MAX_KEYS} metadata keys`);
  }
  return next;
}

/**
 * Partial update: fields left out stay; metadata merges key by key (`null` removes);
 * `is_default: true` moves the organization's default flag here in the same transaction.
 * A write that changes nothing does not bump `version`.
 */
export async function updateWorkspace(
  tx: Tx,
  actorId: string,
  workspaceId: string,
  changes: WorkspaceChanges,
  condition: VersionCondition,
): Promise<Workspace> {
  // Moving the default flag touches two rows: serialize such moves per organization, taking
  // the organization's lock before the workspace's (the order deleting an organization uses).
  if (changes.is_default) await lockOrganizationOf(tx, workspaceId);
  const workspace = await loadForWrite(tx, actorId, workspaceId, condition);
  const set: Partial<typeof workspaces.$inferInsert> = {};
  if (changes.name !== undefined && changes.name !== workspace.name) {
    set.name = changes.name;
    set.nameKey = nameKey(changes.name);
  }
  if (changes.slug !== undefined && changes.slug !== workspace.slug) set.slug = changes.slug;
  if (changes.description !== undefined && changes.description !== workspace.description) set.description = changes.description;
  if (changes.metadata !== undefined) {
    const metadata = mergeMetadata(workspace.metadata, changes.metadata);
    if (canonicalJson(metadata) !== canonicalJson(workspace.metadata)) set.metadata = metadata;
  }
  if (changes.is_default && !workspace.isDefault) {
    // Clear the old default first: the partial unique index allows one per organization.
    await tx
      .update(workspaces)
      .set({ isDefault: false, version: sql`${workspaces.version} + 1`, updatedAt: sql`now()` })
      .where(and(eq(workspaces.organizationId, workspace.organizationId), eq(workspaces.isDefault, true)));
    set.isDefault = true;
  }
  if (Object.keys(set).length === 0) return toWorkspace(workspace);
  try {
    const [row] = await tx
      .update(workspaces)
      .set({ ...set, version: sql`${workspaces.version} + 1`, updatedAt: sql`now()` })
      .where(eq(workspaces.id, workspaceId))
      .returning();
    return toWorkspace(row!);
  } catch (error) {
    if (isUniqueViolation(error, 'workspaces_org_slug_key')) throw slugTaken(changes.slug!);
    throw error;
  }
}

export async function deleteWorkspace(tx: Tx, actorId: string, workspaceId: string, condition: VersionCondition): Promise<void> {
  const workspace = await loadForWrite(tx, actorId, workspaceId, condition);
  if (workspace.isDefault) {
    throw new AppError('CONFLICT', 'The default workspace cannot be deleted; make another workspace the default first');
  }
  await tx.delete(workspaces).where(eq(workspaces.id, workspaceId));
}

/**
 * A deep copy of the source's description, metadata and settings overrides into a new
 * workspace (of the source's organization, or another where the caller is admin). Reading
 * the source needs membership in its organization. The copy shares nothing with the source.
 */
export async function cloneWorkspace(tx: Tx, actorId: string, sourceId: string, input: CloneFields): Promise<Workspace> {
  const { workspace: source } = await loadWorkspace(tx, actorId, sourceId, 'member');
  const organizationId = input.organization_id ?? source.organizationId;
  await requireRole(tx, actorId, organizationId, 'admin');
  const copy = <T>(value: T): T => structuredClone(value);
  const values = {
    organizationId,
    name: input.name,
    description: input.description !== undefined ? input.description : source.description,
    metadata: copy(source.metadata),
    settings: copy(source.settings),
    clonedFromId: source.id,
  };
  assertWriteWithinBudget([values]);
  const row = await insertWorkspace(tx, values, input.slug);
  return toWorkspace(row);
}

function toSettings(workspace: WorkspaceRow, organizationSettings: SettingsLayer): WorkspaceSettings {
  const { effective, sources } = resolveEffectiveSettings(organizationSettings, workspace.settings);
  return { workspace_id: workspace.id, version: workspace.version, effective, overrides: workspace.settings, sources };
}

async function organizationSettings(db: DbOrTx, organizationId: string): Promise<SettingsLayer> {
  const [row] = await db.select({ settings: organizations.settings }).from(organizations).where(eq(organizations.id, organizationId));
  return row?.settings ?? {};
}

/** Effective settings are resolved at read time, so an organization change shows at once. */
export async function getWorkspaceSettings(db: DbOrTx, caller: Caller, workspaceId: string): Promise<WorkspaceSettings> {
  const { workspace, organizationSettings } = await readWorkspace(db, caller, workspaceId, { withOrganizationSettings: true });
  return toSettings(workspace, organizationSettings ?? {});
}

export async function updateWorkspaceSettings(
  tx: Tx,
  actorId: string,
  workspaceId: string,
  patch: SettingsPatch,
  condition: VersionCondition,
): Promise<WorkspaceSettings> {
  const workspace = await loadForWrite(tx, actorId, workspaceId, condition);
  const orgSettings = await organizationSettings(tx, workspace.organizationId);
  const overrides = applySettingsPatch(workspace.settings, patch);
  if (canonicalJson(overrides) === canonicalJson(workspace.settings)) return toSettings(workspace, orgSettings);
  const [row] = await tx
    .update(workspaces)
    .set({ settings: overrides, version: sql`${workspaces.version} + 1`, updatedAt: sql`now()` })
    .where(eq(workspaces.id, workspaceId))
    .returning();
  return toSettings(row!, orgSettings);
}

/** Loads a workspace the caller may read (for provisioning templates). */
export async function readableWorkspace(db: DbOrTx, actorId: string, workspaceId: string): Promise<WorkspaceRow> {
  return (await loadWorkspace(db, actorId, workspaceId, 'member')).workspace;
}
