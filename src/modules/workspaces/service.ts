import { and, asc, desc, eq, getTableColumns, inArray, isNotNull, isNull, like, or, sql, type SQL } from 'drizzle-orm';
import { unionAll } from 'drizzle-orm/pg-core';
import type { DbOrTx, Tx } from '../../db/client';
import { isUniqueViolation } from '../../db/errors';
import { preparedPerDatabase } from '../../db/prepared';
import { memberships, organizations, users, workspaceMembers, workspaces } from '../../db/schema';
import { confirmCaller, type Caller } from '../../auth/caller';
import { AppError, notFound } from '../../lib/errors';
import type { CursorCodec } from '../../lib/cursor';
import { checkVersion, type VersionCondition } from '../../lib/etag';
import { canonicalJson } from '../../lib/canonical-json';
import { literalLimit, paginate, timestampParam } from '../../lib/pagination';
import { inSlugFamily, insertWithSlug, joinedSlugs, slugFamilyStem, slugify, slugSet } from '../../lib/slug';
import { applySettingsPatch, resolveEffectiveSettings } from '../settings/resolve';
import type { SettingsLayer, SettingsPatch } from '../settings/document';
import { assertNotLocked } from '../settings/locks';
import { confirmAccount, findCallerRole, hasRole, requireRole } from '../organizations/access';
import {
  accessFields,
  accessJoins,
  decisionFields,
  authorize,
  effectiveAccess,
  hasAccess,
  privateWorkspace,
  visibleToOrganization,
  type Access,
  type Ability,
  type Decision,
  type EffectiveAccess,
} from './access';
import { lockOrganizations } from '../organizations/service';
import { changesBetween, recordEvents, workspaceEvent, type Author } from '../audit/events';
import { auditedState, creationChanges, nameKey, toWorkspace, type WorkspaceRow } from './rows';
import { assertWorkspaceRoom, type WorkspaceQuota } from './quota';
import { WriteBudget } from './write-budget';
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

export const slugTaken = (slug: string) => new AppError('CONFLICT', `The slug "${slug}" is taken in this organization`);

/**
 * The workspace and a user's access to it (workspaces/access.ts), read by one query; undefined
 * when there is no such workspace. With `forUpdate`, a statement before that query locks the
 * workspace row until the transaction ends, so conditional writes see the version they check
 * and membership changes of one workspace run one after another. The lock is its own
 * statement because a statement that waits for a row lock answers its joins from the snapshot
 * it started with: locking in the query itself, a workspace admin demoted by the membership
 * change it waited for still passed as admin (test/workspace-members.test.ts).
 */
export async function findWithAccess(
  db: DbOrTx,
  userId: string,
  workspaceId: string,
  forUpdate = false,
): Promise<{ workspace: WorkspaceRow; access: Access } | undefined> {
  if (forUpdate) await db.select({ id: workspaces.id }).from(workspaces).where(eq(workspaces.id, workspaceId)).for('update');
  const joins = accessJoins(userId);
  const [row] = await db
    .select({ workspace: workspaces, ...accessFields })
    .from(workspaces)
    .leftJoin(memberships, joins.organizationMembership)
    .leftJoin(workspaceMembers, joins.workspaceMembership)
    .where(eq(workspaces.id, workspaceId));
  return row && { workspace: row.workspace, access: row };
}

/** findWithAccess for a caller who must be allowed `ability`: 404 without access, 403 without the role. */
export async function loadWorkspace(
  db: DbOrTx,
  actorId: string,
  workspaceId: string,
  ability: Ability,
  forUpdate = false,
): Promise<{ workspace: WorkspaceRow; access: Access }> {
  const found = await findWithAccess(db, actorId, workspaceId, forUpdate);
  authorize(found?.access, ability);
  return found;
}

/**
 * Locks the workspace's organization row, which every write to a workspace (and to its
 * members) takes before the workspace's own row: organization, then workspace, everywhere (writing an audit event takes
 * a key-share lock on the organization too, through its foreign key, so a write that locked
 * the workspace first could deadlock with one holding the organization). `update` serializes
 * default moves; `key share` only waits for an organization change that excludes it (a
 * settings or locks write, a deletion). Taken before authorization: it holds nothing a caller
 * could learn from, for the length of one request.
 */
export async function lockOrganizationOf(tx: Tx, workspaceId: string, strength: 'update' | 'no key update' | 'key share'): Promise<void> {
  await tx
    .select({ id: organizations.id })
    .from(organizations)
    .where(eq(organizations.id, organizationIdOf(workspaceId)))
    .for(strength);
}

const organizationIdOf = (workspaceId: string) =>
  sql`(select ${workspaces.organizationId} from ${workspaces} where ${workspaces.id} = ${workspaceId})`;

/** What a workspace write must obey in its organization: the settings it inherits and the locks. */
export interface OrganizationRules {
  settings: SettingsLayer;
  locks: string[];
}

/**
 * The organization's settings and locks, read under a key-share lock that a change of them
 * (its update lock) waits for and that waits for it: a workspace write checks the locks that
 * hold when it commits. Taken before any workspace row (see lockOrganizationOf). `of` is the
 * organization's id, or a workspace's.
 */
export async function organizationRules(tx: Tx, of: { organizationId: string } | { workspaceId: string }): Promise<OrganizationRules> {
  const id = 'organizationId' in of ? sql`${of.organizationId}::uuid` : organizationIdOf(of.workspaceId);
  const [row] = await tx
    .select({ settings: organizations.settings, locks: organizations.settingsLocks })
    .from(organizations)
    .where(eq(organizations.id, id))
    .for('key share');
  return row ?? { settings: {}, locks: [] };
}

/** 409 for a write to an archived workspace (or an invitation to it): it is read-only until restored. */
export function assertActive(workspace: WorkspaceRow): void {
  if (workspace.archivedAt) throw new AppError('CONFLICT', 'Workspace is archived; restore it first');
}

/**
 * The workspace, locked, for a conditional write: authorization first (404/403), then the
 * version condition (400/412), so a caller who may not see it learns nothing.
 */
async function loadForWrite(
  tx: Tx,
  actorId: string,
  workspaceId: string,
  condition: VersionCondition,
  ability: Ability = 'edit',
): Promise<WorkspaceRow> {
  const { workspace } = await loadWorkspace(tx, actorId, workspaceId, ability, true);
  checkVersion(workspace.version, condition);
  return workspace;
}

/**
 * Slugs in the organization that a derived slug from any of `bases` could collide with, and
 * those of `explicit` that are taken: one query of an index range scan per distinct base
 * (see inSlugFamily). A family can hold the whole organization (50,000 slugs), so they come
 * back as one value (joinedSlugs): 50,000 rows to map held the event loop for tens of
 * milliseconds.
 */
export async function takenSlugs(tx: DbOrTx, organizationId: string, bases: string[], explicit: string[] = []): Promise<Set<string>> {
  if (bases.length === 0 && explicit.length === 0) return new Set();
  const stems = JSON.stringify([...new Set(bases.map(slugFamilyStem))]);
  const families = tx
    .select({ slug: workspaces.slug })
    .from(sql`jsonb_array_elements_text(${stems}::jsonb) as family(stem)`)
    .innerJoin(workspaces, and(eq(workspaces.organizationId, organizationId), inSlugFamily(workspaces.slug, sql`family.stem`)));
  const taken =
    explicit.length > 0
      ? unionAll(
          families,
          tx
            .select({ slug: workspaces.slug })
            .from(workspaces)
            .where(and(eq(workspaces.organizationId, organizationId), inArray(workspaces.slug, explicit))),
        )
      : families;
  const [row] = await tx.select({ slugs: joinedSlugs(sql`taken.slug`) }).from(taken.as('taken'));
  return slugSet(row?.slugs);
}

type NewWorkspaceValues = Omit<typeof workspaces.$inferInsert, 'slug' | 'nameKey' | keyof EffectiveAccess>;

/**
 * Inserts one workspace with the given slug, or one derived from its name (a numeric
 * suffix when taken): slugs are unique within the organization. Its resolved access settings
 * are derived from its overrides under the organization's `rules`.
 */
function insertWorkspace(tx: Tx, fields: NewWorkspaceValues, slug: string | undefined, rules: OrganizationRules) {
  const values = { ...fields, ...effectiveAccess(rules, fields.settings ?? {}) };
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

export async function createWorkspace(
  tx: Tx,
  author: Author,
  organizationId: string,
  input: NewWorkspace,
  quota: WorkspaceQuota,
): Promise<Workspace> {
  await requireRole(tx, author.id, organizationId, 'admin');
  await assertWorkspaceRoom(tx, organizationId, quota);
  const rules = await organizationRules(tx, { organizationId });
  assertNotLocked(input.settings ?? {}, rules.locks, 'settings');
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
    rules,
  );
  await recordEvents(tx, author, [workspaceEvent('workspace.created', row, creationChanges(row))]);
  return toWorkspace(row);
}

/**
 * Whether a user outside the organization is a guest with access in it: explicitly in one of
 * its workspaces that allows guests now (one shut out everywhere has nothing there: 404).
 */
async function isGuestIn(db: DbOrTx, userId: string, organizationId: string): Promise<boolean> {
  const [row] = await db
    .select({ id: workspaceMembers.workspaceId })
    .from(workspaceMembers)
    .innerJoin(workspaces, eq(workspaces.id, workspaceMembers.workspaceId))
    .where(
      and(eq(workspaceMembers.userId, userId), eq(workspaces.organizationId, organizationId), eq(workspaces.effectiveAllowGuests, true)),
    )
    .limit(1);
  return row !== undefined;
}

const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Keyset pagination over the workspaces the caller has access to (one organization's, or
 * every organization's), sorted by created_at or by name (case-insensitively, in the "C"
 * collation so both engines agree), with `id` as the tie-break. `desc` is the exact reverse of
 * `asc`. The cursor is signed and bound to the caller and the filters, so it cannot be
 * replayed against another query.
 *
 * Every row passes the role expression (`hasAccess`), the same one a read applies. Within one
 * organization a plain member's page is the union of two index scans, each in keyset order
 * and stopped at the page's size: the workspaces visible to the organization, and the
 * private ones they were given (read from their memberships). So a member of 20 among 10,000
 * private workspaces reads about 20 rows, not 10,000. The page's size is written into the
 * statement (literalLimit), so that the prepared statement's generic plan still knows it.
 */
export async function listWorkspaces(db: DbOrTx, cursors: CursorCodec, caller: Caller, input: ListWorkspacesInput): Promise<WorkspacePage> {
  const { organization_id, q, sort, order, archived } = input;
  const organizationRole = organization_id ? await findCallerRole(db, caller, organization_id) : undefined;
  if (!organization_id) await confirmAccount(db, caller);
  // A guest lists their workspaces of the organization; anyone else outside it gets 404.
  else if (!organizationRole && !(await isGuestIn(db, caller.id, organization_id))) throw notFound('Organization');
  const actorId = caller.id;
  const filters = { list: 'workspaces', actorId, organization_id: organization_id ?? null, q: q || null, sort, order, archived };

  const byName = sort === 'name';
  const sortKey = byName ? sql`${workspaces.nameKey} collate "C"` : sql`${workspaces.createdAt}`;
  const direction = order === 'asc' ? asc : desc;
  const conditions: Array<SQL | undefined> = [hasAccess];
  if (archived !== 'all') conditions.push(archived === 'true' ? isNotNull(workspaces.archivedAt) : isNull(workspaces.archivedAt));
  if (q) {
    const pattern = `%${escapeLike(nameKey(q))}%`;
    conditions.push(or(like(workspaces.nameKey, pattern), like(workspaces.slug, pattern)));
  }
  const inOrganization = organization_id ? eq(workspaces.organizationId, organization_id) : undefined;
  // The candidates, each an index scan in keyset order (the page is their union). Across
  // organizations: the workspaces of the organizations the caller is a member of (the access
  // join's membership row exists), read by index from the caller's memberships, and those of
  // other organizations they are a guest in, read from their explicit memberships. (One scan of
  // `in (their organizations) or an explicit membership` read every workspace, or joined each
  // to all the caller's memberships: 0.26× the baseline for the first page in the benchmark.)
  const explicitMember = isNotNull(workspaceMembers.userId);
  const candidates: Array<SQL | undefined> = !organization_id
    ? [isNotNull(memberships.userId), and(isNull(memberships.userId), explicitMember)]
    : !organizationRole
      ? [and(inOrganization, explicitMember)]
      : hasRole(organizationRole, 'admin')
        ? [inOrganization]
        : [and(inOrganization, visibleToOrganization), and(inOrganization, privateWorkspace, explicitMember)];
  const joins = accessJoins(actorId);

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
    (after, take) => {
      const scan = (candidate: SQL | undefined) =>
        db
          .select(getTableColumns(workspaces))
          .from(workspaces)
          .leftJoin(memberships, joins.organizationMembership)
          .leftJoin(workspaceMembers, joins.workspaceMembership)
          .where(and(candidate, ...conditions, after))
          .orderBy(direction(sortKey), direction(workspaces.id))
          .limit(literalLimit(take));
      if (candidates.length === 1) return scan(candidates[0]);
      const [first, second] = candidates.map(scan) as [ReturnType<typeof scan>, ReturnType<typeof scan>];
      const visible = unionAll(first, second).as('visible');
      return db
        .select()
        .from(visible)
        .orderBy(direction(byName ? sql`${visible.nameKey} collate "C"` : visible.createdAt), direction(visible.id))
        .limit(literalLimit(take));
    },
  );
  return { items: rows.map(toWorkspace), next_cursor };
}

/**
 * A workspace the caller may read, found by the one query that also confirms the caller and
 * decides access (the read's only round trip): 401 when the account is gone or the token
 * revoked, then 404 when the workspace does not exist or the caller has no access to it —
 * the order and messages of authedProcedure followed by loadWorkspace.
 */
async function readWorkspace(db: DbOrTx, caller: Caller, workspaceId: string): Promise<WorkspaceRow> {
  const [row] = await readWorkspaceQuery(db).execute({ userId: caller.id, workspaceId });
  return readableRow(caller, row);
}

/** readWorkspace, with the organization's settings layer and locks read by the same query. */
async function readWorkspaceWithOrganization(
  db: DbOrTx,
  caller: Caller,
  workspaceId: string,
): Promise<{ workspace: WorkspaceRow; organization: OrganizationRules }> {
  const [row] = await readWorkspaceWithOrganizationQuery(db).execute({ userId: caller.id, workspaceId });
  const workspace = readableRow(caller, row);
  return { workspace, organization: { settings: row!.organizationSettings ?? {}, locks: row!.organizationLocks ?? [] } };
}

/** The answers of a read's row: 401 for the caller, then 404 for the workspace. */
function readableRow(caller: Caller, row: ({ tokenVersion: number; workspace: WorkspaceRow | null } & Decision) | undefined): WorkspaceRow {
  confirmCaller(caller, row);
  authorize(row, 'read');
  return row.workspace!;
}

/** readWorkspace's query: the caller's account, left-joined to the workspace and the caller's access to it. */
const readFields = { tokenVersion: users.tokenVersion, workspace: workspaces, ...decisionFields };
const callerJoins = accessJoins(users.id);

const readWorkspaceQuery = preparedPerDatabase((db) =>
  db
    .select(readFields)
    .from(users)
    .leftJoin(workspaces, eq(workspaces.id, sql.placeholder('workspaceId')))
    .leftJoin(memberships, callerJoins.organizationMembership)
    .leftJoin(workspaceMembers, callerJoins.workspaceMembership)
    .where(eq(users.id, sql.placeholder('userId')))
    .prepare('read_workspace'),
);

const readWorkspaceWithOrganizationQuery = preparedPerDatabase((db) =>
  db
    .select({ ...readFields, organizationSettings: organizations.settings, organizationLocks: organizations.settingsLocks })
    .from(users)
    .leftJoin(workspaces, eq(workspaces.id, sql.placeholder('workspaceId')))
    .leftJoin(memberships, callerJoins.organizationMembership)
    .leftJoin(workspaceMembers, callerJoins.workspaceMembership)
    .leftJoin(organizations, eq(organizations.id, workspaces.organizationId))
    .where(eq(users.id, sql.placeholder('userId')))
    .prepare('read_workspace_with_organization'),
);

export async function getWorkspace(db: DbOrTx, caller: Caller, workspaceId: string): Promise<Workspace> {
  return toWorkspace(await readWorkspace(db, caller, workspaceId));
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
  author: Author,
  workspaceId: string,
  changes: WorkspaceChanges,
  condition: VersionCondition,
): Promise<Workspace> {
  // Moving the default flag touches two rows: such moves are serialized per organization.
  await lockOrganizationOf(tx, workspaceId, changes.is_default ? 'update' : 'key share');
  const workspace = await loadForWrite(tx, author.id, workspaceId, condition, changes.is_default ? 'administer' : 'edit');
  assertActive(workspace);
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
  const events = [];
  if (changes.is_default && !workspace.isDefault) {
    // Clear the old default first: the partial unique index allows one per organization.
    const cleared = await tx
      .update(workspaces)
      .set({ isDefault: false, version: sql`${workspaces.version} + 1`, updatedAt: sql`now()` })
      .where(and(eq(workspaces.organizationId, workspace.organizationId), eq(workspaces.isDefault, true)))
      .returning({ id: workspaces.id, organizationId: workspaces.organizationId });
    for (const old of cleared) events.push(workspaceEvent('workspace.updated', old, { is_default: { from: true, to: false } }));
    set.isDefault = true;
  }
  if (Object.keys(set).length === 0) return toWorkspace(workspace);
  try {
    const [row] = await tx
      .update(workspaces)
      .set({ ...set, version: sql`${workspaces.version} + 1`, updatedAt: sql`now()` })
      .where(eq(workspaces.id, workspaceId))
      .returning();
    events.unshift(workspaceEvent('workspace.updated', row!, changesBetween(auditedState(workspace), auditedState(row!))));
    await recordEvents(tx, author, events);
    return toWorkspace(row!);
  } catch (error) {
    if (isUniqueViolation(error, 'workspaces_org_slug_key')) throw slugTaken(changes.slug!);
    throw error;
  }
}

/** A hard delete, archived or not; its events stay in the organization's list. */
export async function deleteWorkspace(tx: Tx, author: Author, workspaceId: string, condition: VersionCondition): Promise<void> {
  await lockOrganizationOf(tx, workspaceId, 'key share');
  const workspace = await loadForWrite(tx, author.id, workspaceId, condition, 'administer');
  if (workspace.isDefault) {
    throw new AppError('CONFLICT', 'The default workspace cannot be deleted; make another workspace the default first');
  }
  await tx.delete(workspaces).where(eq(workspaces.id, workspaceId));
  await recordEvents(tx, author, [workspaceEvent('workspace.deleted', workspace, changesBetween(auditedState(workspace), null))]);
}

/**
 * Archives (read-only, out of the lists, slug kept) or restores a workspace: version + 1 and
 * an event; a workspace already in that state is answered as it is. The default workspace
 * cannot be archived.
 */
export async function setArchived(
  tx: Tx,
  author: Author,
  workspaceId: string,
  archive: boolean,
  condition: VersionCondition,
): Promise<Workspace> {
  await lockOrganizationOf(tx, workspaceId, 'key share');
  const workspace = await loadForWrite(tx, author.id, workspaceId, condition);
  if ((workspace.archivedAt !== null) === archive) return toWorkspace(workspace);
  if (archive && workspace.isDefault) {
    throw new AppError('CONFLICT', 'The default workspace cannot be archived; make another workspace the default first');
  }
  const [row] = await tx
    .update(workspaces)
    .set({ archivedAt: archive ? sql`now()` : null, version: sql`${workspaces.version} + 1`, updatedAt: sql`now()` })
    .where(eq(workspaces.id, workspaceId))
    .returning();
  const answer = toWorkspace(row!);
  await recordEvents(tx, author, [
    workspaceEvent(archive ? 'workspace.archived' : 'workspace.restored', row!, {
      archived_at: { from: workspace.archivedAt?.toISOString() ?? null, to: answer.archived_at },
    }),
  ]);
  return answer;
}

/**
 * A deep copy of the source's description, metadata and settings overrides into a new
 * workspace (of the source's organization, or another where the caller is admin). Reading
 * the source needs read access to it. The copy shares nothing with the source.
 * A copy into another organization leaves a trace in the source's too (`workspace.cloned_out`).
 */
export async function cloneWorkspace(
  tx: Tx,
  author: Author,
  sourceId: string,
  input: CloneFields,
  quota: WorkspaceQuota,
): Promise<Workspace> {
  const { workspace: source } = await loadWorkspace(tx, author.id, sourceId, 'read');
  const organizationId = input.organization_id ?? source.organizationId;
  await requireRole(tx, author.id, organizationId, 'admin');
  const out = organizationId !== source.organizationId;
  // The events reach both organizations (their foreign keys take key-share locks): both rows
  // first, in id order, as an account deletion locks several, so neither can deadlock the other.
  if (out) await lockOrganizations(tx, [source.organizationId, organizationId], 'key share');
  await assertWorkspaceRoom(tx, organizationId, quota);
  // The source's overrides become the copy's: they obey the target organization's locks.
  const rules = await organizationRules(tx, { organizationId });
  assertNotLocked(source.settings, rules.locks, 'settings');
  const copy = <T>(value: T): T => structuredClone(value);
  const values = {
    organizationId,
    name: input.name,
    description: input.description !== undefined ? input.description : source.description,
    metadata: copy(source.metadata),
    settings: copy(source.settings),
    clonedFromId: source.id,
  };
  new WriteBudget().add({ values, changes: creationChanges(values) });
  const row = await insertWorkspace(tx, values, input.slug, rules);
  await recordEvents(tx, author, [
    workspaceEvent('workspace.cloned', row, changesBetween(null, { ...auditedState(row), cloned_from_id: source.id })),
    // Within one organization its trail already holds the copy (workspace.cloned, cloned_from_id).
    ...(out
      ? [
          workspaceEvent(
            'workspace.cloned_out',
            source,
            changesBetween(null, { cloned_to_id: row.id, cloned_to_organization_id: row.organizationId }),
          ),
        ]
      : []),
  ]);
  return toWorkspace(row);
}

function toSettings(workspace: WorkspaceRow, organization: OrganizationRules): WorkspaceSettings {
  const { effective, sources, locked, shadowed } = resolveEffectiveSettings(organization.settings, workspace.settings, organization.locks);
  return { workspace_id: workspace.id, version: workspace.version, effective, overrides: workspace.settings, sources, locked, shadowed };
}

/** Effective settings are resolved at read time, so an organization change (or lock) shows at once. */
export async function getWorkspaceSettings(db: DbOrTx, caller: Caller, workspaceId: string): Promise<WorkspaceSettings> {
  const { workspace, organization } = await readWorkspaceWithOrganization(db, caller, workspaceId);
  return toSettings(workspace, organization);
}

/**
 * Deep-merges a write into the overrides. Refused whole (409) when the workspace is archived
 * or the write sets a value under one of the organization's locks, which are read under the
 * organization's share lock (see organizationRules).
 */
export async function updateWorkspaceSettings(
  tx: Tx,
  author: Author,
  workspaceId: string,
  patch: SettingsPatch,
  condition: VersionCondition,
): Promise<WorkspaceSettings> {
  const organization = await organizationRules(tx, { workspaceId });
  const workspace = await loadForWrite(tx, author.id, workspaceId, condition);
  assertActive(workspace);
  assertNotLocked(patch, organization.locks);
  const overrides = applySettingsPatch(workspace.settings, patch);
  if (canonicalJson(overrides) === canonicalJson(workspace.settings)) return toSettings(workspace, organization);
  const [row] = await tx
    .update(workspaces)
    .set({
      settings: overrides,
      ...effectiveAccess(organization, overrides),
      version: sql`${workspaces.version} + 1`,
      updatedAt: sql`now()`,
    })
    .where(eq(workspaces.id, workspaceId))
    .returning();
  await recordEvents(tx, author, [
    workspaceEvent('workspace.settings_updated', row!, changesBetween(workspace.settings, overrides, 'settings')),
  ]);
  return toSettings(row!, organization);
}

/** Loads a workspace the caller may read (provisioning templates, event lists). */
export async function readableWorkspace(db: DbOrTx, actorId: string, workspaceId: string): Promise<WorkspaceRow> {
  return (await loadWorkspace(db, actorId, workspaceId, 'read')).workspace;
}
