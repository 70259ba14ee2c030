import { and, asc, desc, eq, inArray, like, or, sql, type SQL } from 'drizzle-orm';
import type { Db, DbOrTx, Tx } from '../../db/client';
import { isUniqueViolation } from '../../db/errors';
import { keysetAfter, timestampParam } from '../../db/keyset';
import { memberships, organizations, workspaces, type Role } from '../../db/schema';
import { AppError } from '../../lib/errors';
import { takePage, type CursorCodec } from '../../lib/cursor';
import { checkVersion, type VersionCondition } from '../../lib/etag';
import { canonicalJson } from '../../lib/canonical-json';
import { DERIVED_SLUG_ATTEMPTS, firstFreeSlug, slugFamilyPattern, slugify } from '../../lib/slug';
import { applySettingsPatch, resolveEffectiveSettings } from '../settings/resolve';
import type { EffectiveSettings, SettingsLayer, SettingsPatch, SettingsSources } from '../settings/document';
import { hasRole, requireRole } from '../organizations/access';
import type { Page } from '../organizations/service';
import { nameKey, toWorkspaceDto, type WorkspaceDto } from './dto';
import { METADATA_MAX_KEYS, type ListWorkspacesInput } from './schemas';

export type WorkspaceRow = typeof workspaces.$inferSelect;

export interface NewWorkspace {
  name: string;
  slug?: string | undefined;
  description?: string | null | undefined;
  metadata?: Record<string, string> | undefined;
  settings?: SettingsPatch | undefined;
}

export interface WorkspaceSettingsDto {
  workspace_id: string;
  version: number;
  effective: EffectiveSettings;
  overrides: SettingsLayer;
  sources: SettingsSources;
}

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

/** Slugs in the organization that a derived slug from any of `bases` could collide with. */
export async function takenSlugs(tx: DbOrTx, organizationId: string, bases: string[], explicit: string[] = []): Promise<Set<string>> {
  if (bases.length === 0 && explicit.length === 0) return new Set();
  const patterns = [...new Set(bases)].map((base) => like(workspaces.slug, slugFamilyPattern(base)));
  const exact = explicit.length > 0 ? [inArray(workspaces.slug, explicit)] : [];
  const rows = await tx
    .select({ slug: workspaces.slug })
    .from(workspaces)
    .where(and(eq(workspaces.organizationId, organizationId), or(...patterns, ...exact)));
  return new Set(rows.map((r) => r.slug));
}

/**
 * Inserts one workspace with the given slug, or one derived from its name (a numeric suffix
 * when taken). ON CONFLICT DO NOTHING detects a slug taken meanwhile without aborting the
 * transaction, so a derived slug simply moves on to the next candidate.
 */
async function insertWorkspace(tx: Tx, values: Omit<typeof workspaces.$inferInsert, 'slug' | 'nameKey'>, slug: string | undefined) {
  const insert = (candidate: string) =>
    tx
      .insert(workspaces)
      .values({ ...values, slug: candidate, nameKey: nameKey(values.name) })
      .onConflictDoNothing({ target: [workspaces.organizationId, workspaces.slug] })
      .returning();
  if (slug) {
    const [row] = await insert(slug);
    if (!row) throw slugTaken(slug);
    return row;
  }
  const base = slugify(values.name, 'workspace');
  for (let attempt = 0; attempt < DERIVED_SLUG_ATTEMPTS; attempt++) {
    const [row] = await insert(firstFreeSlug(base, await takenSlugs(tx, values.organizationId, [base])));
    if (row) return row;
  }
  throw new AppError('CONFLICT', 'Could not derive a free slug; pass one explicitly');
}

export async function createWorkspace(
  tx: Tx,
  actorId: string,
  organizationId: string,
  input: NewWorkspace,
): Promise<WorkspaceDto> {
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
  return toWorkspaceDto(row);
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Keyset pagination over the caller's organizations' workspaces, sorted by created_at or by
 * name (case-insensitively, in the "C" collation so both engines agree), with `id` as the
 * tie-break. `desc` is the exact reverse of `asc`. The cursor is signed and bound to the
 * filters, so it cannot be replayed against another query.
 */
export async function listWorkspaces(
  db: Db,
  cursors: CursorCodec,
  actorId: string,
  input: ListWorkspacesInput,
): Promise<Page<WorkspaceDto>> {
  const { organization_id, q, sort, order, limit } = input;
  if (organization_id) await requireRole(db, actorId, organization_id, 'member');
  const filters = { list: 'workspaces', actorId, organization_id: organization_id ?? null, q: q || null, sort, order };

  const sortColumn = sort === 'name' ? sql`${workspaces.nameKey} collate "C"` : sql`${workspaces.createdAt}`;
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
  if (input.cursor) {
    const [key, id] = cursors.decode(input.cursor, filters);
    const keyValue = sort === 'name' ? sql`${String(key)} collate "C"` : timestampParam(key!);
    conditions.push(keysetAfter(sortColumn, workspaces.id, { key: keyValue, id: String(id) }, order));
  }

  const rows = await db
    .select()
    .from(workspaces)
    .where(and(...conditions))
    .orderBy(direction(sortColumn), direction(workspaces.id))
    .limit(limit + 1);
  const { page, hasMore } = takePage(rows, limit);
  const last = page.at(-1);
  const position = (row: WorkspaceRow) => [sort === 'name' ? row.nameKey : row.createdAt.toISOString(), row.id];
  return {
    items: page.map(toWorkspaceDto),
    next_cursor: hasMore && last ? cursors.encode(position(last), filters) : null,
  };
}

export async function getWorkspace(db: Db, actorId: string, workspaceId: string): Promise<WorkspaceDto> {
  return toWorkspaceDto((await loadWorkspace(db, actorId, workspaceId, 'member')).workspace);
}

export interface WorkspaceChanges {
  name?: string | undefined;
  slug?: string | undefined;
  description?: string | null | undefined;
  metadata?: Record<string, string | null> | undefined;
  is_default?: true | undefined;
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
  db: Db,
  actorId: string,
  workspaceId: string,
  changes: WorkspaceChanges,
  condition: VersionCondition,
): Promise<WorkspaceDto> {
  return db.transaction(async (tx) => {
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
    if (Object.keys(set).length === 0) return toWorkspaceDto(workspace);
    try {
      const [row] = await tx
        .update(workspaces)
        .set({ ...set, version: sql`${workspaces.version} + 1`, updatedAt: sql`now()` })
        .where(eq(workspaces.id, workspaceId))
        .returning();
      return toWorkspaceDto(row!);
    } catch (error) {
      if (isUniqueViolation(error, 'workspaces_org_slug_key')) throw slugTaken(changes.slug!);
      throw error;
    }
  });
}

export async function deleteWorkspace(db: Db, actorId: string, workspaceId: string, condition: VersionCondition): Promise<void> {
  await db.transaction(async (tx) => {
    const workspace = await loadForWrite(tx, actorId, workspaceId, condition);
    if (workspace.isDefault) {
      throw new AppError('CONFLICT', 'The default workspace cannot be deleted; make another workspace the default first');
    }
    await tx.delete(workspaces).where(eq(workspaces.id, workspaceId));
  });
}

/**
 * A deep copy of the source's description, metadata and settings overrides into a new
 * workspace (of the source's organization, or another where the caller is admin). Reading
 * the source needs membership in its organization. The copy shares nothing with the source.
 */
export async function cloneWorkspace(
  tx: Tx,
  actorId: string,
  sourceId: string,
  input: { name: string; slug?: string | undefined; description?: string | null | undefined; organization_id?: string | undefined },
): Promise<WorkspaceDto> {
  const { workspace: source } = await loadWorkspace(tx, actorId, sourceId, 'member');
  const organizationId = input.organization_id ?? source.organizationId;
  await requireRole(tx, actorId, organizationId, 'admin');
  const copy = <T>(value: T): T => structuredClone(value);
  const row = await insertWorkspace(
    tx,
    {
      organizationId,
      name: input.name,
      description: input.description !== undefined ? input.description : source.description,
      metadata: copy(source.metadata),
      settings: copy(source.settings),
      clonedFromId: source.id,
    },
    input.slug,
  );
  return toWorkspaceDto(row);
}

function toSettingsDto(workspace: WorkspaceRow, organizationSettings: SettingsLayer): WorkspaceSettingsDto {
  const { effective, sources } = resolveEffectiveSettings(organizationSettings, workspace.settings);
  return { workspace_id: workspace.id, version: workspace.version, effective, overrides: workspace.settings, sources };
}

async function organizationSettings(db: DbOrTx, organizationId: string): Promise<SettingsLayer> {
  const [row] = await db.select({ settings: organizations.settings }).from(organizations).where(eq(organizations.id, organizationId));
  return row?.settings ?? {};
}

/** Effective settings are resolved at read time, so an organization change shows at once. */
export async function getWorkspaceSettings(db: Db, actorId: string, workspaceId: string): Promise<WorkspaceSettingsDto> {
  const { workspace } = await loadWorkspace(db, actorId, workspaceId, 'member');
  return toSettingsDto(workspace, await organizationSettings(db, workspace.organizationId));
}

export async function updateWorkspaceSettings(
  db: Db,
  actorId: string,
  workspaceId: string,
  patch: SettingsPatch,
  condition: VersionCondition,
): Promise<WorkspaceSettingsDto> {
  return db.transaction(async (tx) => {
    const workspace = await loadForWrite(tx, actorId, workspaceId, condition);
    const orgSettings = await organizationSettings(tx, workspace.organizationId);
    const overrides = applySettingsPatch(workspace.settings, patch);
    if (canonicalJson(overrides) === canonicalJson(workspace.settings)) return toSettingsDto(workspace, orgSettings);
    const [row] = await tx
      .update(workspaces)
      .set({ settings: overrides, version: sql`${workspaces.version} + 1`, updatedAt: sql`now()` })
      .where(eq(workspaces.id, workspaceId))
      .returning();
    return toSettingsDto(row!, orgSettings);
  });
}

/** Loads a workspace the caller may read (for provisioning templates). */
export async function readableWorkspace(db: DbOrTx, actorId: string, workspaceId: string): Promise<WorkspaceRow> {
  return (await loadWorkspace(db, actorId, workspaceId, 'member')).workspace;
}
