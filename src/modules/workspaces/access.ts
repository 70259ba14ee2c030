/**
 * Who may do what to a workspace: decided here, and nowhere else.
 *
 * - **One role expression** (`workspaceRole`, SQL): a user's effective role in a workspace,
 *   the highest of what their organization role gives (owner/admin → admin), an explicit
 *   membership (a guest's, outside the organization, only while the workspace allows guests),
 *   and — for a member of the organization in a workspace visible to it — the workspace's
 *   default role. Every read, list page, settings read, events list, replay and
 *   clone or template source selects it in its own query; a list's filter is that same
 *   expression (`IS NOT NULL`), so a list never shows what a read would refuse.
 * - **One ability table** (`ABILITIES`): what each operation needs, as data. Services ask
 *   `authorize(access, ability)`; the permission tests are generated from the table.
 * - **The derived columns** the expression reads: a workspace's resolved `visibility`,
 *   `default_role` and `allow_guests` (`effective_visibility`, `effective_default_role`,
 *   `effective_allow_guests`), written by every write
 *   that can move them, in its own transaction (`effectiveAccess`, `rederiveAccess`).
 *
 * README, Workspace access and Invitations and guests, states the rules.
 * @module
 */
import { and, eq, ne, sql, type SQL } from 'drizzle-orm';
import type { Tx } from '../../db/client';
import { memberships, users, workspaceMembers, workspaces, type Role, type WorkspaceRole } from '../../db/schema';
import type { DefaultRole, SettingsLayer, Visibility } from '../../db/schema/settings-layer';
import { AppError } from '../../lib/errors';
import { SYSTEM_DEFAULTS } from '../settings/document';
import { hasRole } from '../organizations/access';

/** Why a role holds: the source that gives the highest role (the first of these, on a tie). */
export const ACCESS_SOURCES = ['organization_role', 'workspace_member', 'organization_visibility'] as const;
export type AccessSource = (typeof ACCESS_SOURCES)[number];

/** A user's access to one workspace, as the role expression found it. */
export interface Access {
  /** Their effective role, or null: no access (the workspace does not exist for them). */
  role: WorkspaceRole | null;
  source: AccessSource | null;
  /** Their role in the workspace's organization, or null when they are not in it. */
  organizationRole: Role | null;
  /** Their explicit membership's role, or null (for a guest it counts only while the workspace allows guests). */
  membershipRole: WorkspaceRole | null;
}

/** A guest: explicitly in the workspace without being in its organization. */
export const isGuest = (access: Pick<Access, 'organizationRole' | 'membershipRole'>) =>
  access.organizationRole === null && access.membershipRole !== null;

const RANK: Record<WorkspaceRole, number> = { viewer: 1, member: 2, admin: 3 };
export const hasWorkspaceRole = (role: WorkspaceRole, minimum: WorkspaceRole) => RANK[role] >= RANK[minimum];

// The role expression, over `workspaces` joined to the user's `memberships` row in its
// organization and their `workspace_members` row (see accessJoins): each source as a rank.
const rank = (role: SQL | typeof workspaceMembers.role | typeof workspaces.effectiveDefaultRole) =>
  sql`case ${role} when 'admin' then 3 when 'member' then 2 when 'viewer' then 1 end`;
const byOrganizationRole = sql`case when ${memberships.role} in ('owner', 'admin') then 3 end`;
// An explicit membership counts for a member of the organization, and for a guest (outside it)
// only while the workspace's resolved allow_guests is true.
const byMembership = sql`case when ${memberships.role} is not null or ${workspaces.effectiveAllowGuests} then ${rank(workspaceMembers.role)} end`;
const byVisibility = sql`case when ${memberships.role} is not null and ${workspaces.effectiveVisibility} = 'organization' then ${rank(workspaces.effectiveDefaultRole)} end`;
const best = sql`greatest(${byOrganizationRole}, ${byMembership}, ${byVisibility})`;

/** The effective role: null when no source gives one (`greatest` ignores nulls). */
export const workspaceRole = sql<WorkspaceRole | null>`(case ${best} when 3 then 'admin' when 2 then 'member' when 1 then 'viewer' end)`;
const accessSource = sql<AccessSource | null>`(case ${best} when ${byOrganizationRole} then 'organization_role' when ${byMembership} then 'workspace_member' when ${byVisibility} then 'organization_visibility' end)`;

/**
 * What a decision needs of a user's access (not `source`, which only the access answer shows),
 * as columns a query selects with accessJoins: the hot reads select just this, so their
 * prepared statement stays short to parse where statements are not prepared
 * (DATABASE_PREPARE=false).
 */
export const decisionFields = { role: workspaceRole, organizationRole: memberships.role };
export type Decision = Pick<Access, 'role' | 'organizationRole'>;
/** The columns a query selects for the whole `Access`. */
export const accessFields = { ...decisionFields, source: accessSource, membershipRole: workspaceMembers.role };

/** A list's filter and a read's test: the same expression. */
export const hasAccess = sql`${workspaceRole} is not null`;

/**
 * The two left joins the role expression reads, for the user `userId` (a value, a column or a
 * placeholder): their membership of the workspace's organization, and of the workspace.
 */
export const accessJoins = (userId: typeof users.id | string) => ({
  organizationMembership: and(eq(memberships.organizationId, workspaces.organizationId), eq(memberships.userId, userId)),
  workspaceMembership: and(eq(workspaceMembers.workspaceId, workspaces.id), eq(workspaceMembers.userId, userId)),
});

type Requirement = { workspaceRole: WorkspaceRole } | { organizationAdmin: true };

/**
 * What each operation on an existing workspace needs (README, Workspace access). Creating and
 * provisioning are the organization's (requireRole), not a workspace's.
 */
export const ABILITIES = {
  /** get, settings get, events, members list, your own access; the source of a clone or a template */
  read: { workspaceRole: 'viewer' },
  /** update (name, slug, description, metadata), settings put, archive, restore */
  edit: { workspaceRole: 'admin' },
  /** add members, change their roles, remove others; another user's access */
  manageMembers: { workspaceRole: 'admin' },
  /** remove your own explicit membership */
  leave: { workspaceRole: 'viewer' },
  /** delete, move `is_default` */
  administer: { organizationAdmin: true },
} as const satisfies Record<string, Requirement>;
export type Ability = keyof typeof ABILITIES;

export const workspaceNotFound = () => new AppError('NOT_FOUND', 'Workspace not found');

/**
 * Whether `access` allows `ability`: 404 without access (its existence is not revealed), 403
 * for a caller who can see the workspace but lacks the role.
 */
export function authorize<T extends Decision>(access: T | undefined, ability: Ability): asserts access is T & { role: WorkspaceRole } {
  if (!access?.role) throw workspaceNotFound();
  const need: Requirement = ABILITIES[ability];
  if ('organizationAdmin' in need) {
    if (!access.organizationRole || !hasRole(access.organizationRole, 'admin')) {
      throw new AppError('FORBIDDEN', "This needs the admin role in the workspace's organization");
    }
  } else if (!hasWorkspaceRole(access.role, need.workspaceRole)) {
    throw new AppError('FORBIDDEN', `This needs the ${need.workspaceRole} role in the workspace (you are ${access.role})`);
  }
}

// ---- The derived columns ----

/** The permissions a workspace row carries resolved (effective_visibility, effective_default_role, effective_allow_guests). */
const DERIVED_KEYS = ['visibility', 'default_role', 'allow_guests'] as const;
type DerivedKey = (typeof DERIVED_KEYS)[number];
type Permissions = typeof SYSTEM_DEFAULTS.permissions;

/** The organization's side of one permission: whether it locks it, and the value it passes down. */
interface PermissionRule<T> {
  locked: boolean;
  inherited: T;
}

/** What an organization decides of `key` for its workspaces: a lock of the key or of all of permissions keeps its value. */
function permissionRule<K extends DerivedKey>(organization: OrganizationLayer, key: K): PermissionRule<Permissions[K]> {
  return {
    locked: organization.locks.includes('permissions') || organization.locks.includes(`permissions.${key}`),
    inherited: (organization.settings.permissions?.[key] ?? SYSTEM_DEFAULTS.permissions[key]) as Permissions[K],
  };
}

type OrganizationLayer = { settings: SettingsLayer; locks: readonly string[] };
export interface EffectiveAccess {
  effectiveVisibility: Visibility;
  effectiveDefaultRole: DefaultRole;
  effectiveAllowGuests: boolean;
}

/** The derived columns of a workspace about to be written with `overrides`, in an organization with these settings and locks. */
export function effectiveAccess(organization: OrganizationLayer, overrides: SettingsLayer): EffectiveAccess {
  const resolve = <K extends DerivedKey>(key: K): Permissions[K] => {
    const rule = permissionRule(organization, key);
    return rule.locked ? rule.inherited : ((overrides.permissions?.[key] as Permissions[K] | undefined) ?? rule.inherited);
  };
  return {
    effectiveVisibility: resolve('visibility'),
    effectiveDefaultRole: resolve('default_role'),
    effectiveAllowGuests: resolve('allow_guests'),
  };
}

/** effectiveAccess as SQL over a stored overrides column, for rows already written. */
export function effectiveAccessSql(organization: OrganizationLayer, overrides: SQL | typeof workspaces.settings) {
  const resolve = (key: DerivedKey) => {
    const rule = permissionRule(organization, key);
    const value = rule.locked
      ? sql`${String(rule.inherited)}::text`
      : sql`coalesce(${overrides} #>> ${`{permissions,${key}}`}, ${String(rule.inherited)}::text)`;
    return key === 'allow_guests' ? sql<boolean>`(${value})::boolean` : sql<string>`${value}`;
  };
  return {
    effectiveVisibility: resolve('visibility') as SQL<Visibility>,
    effectiveDefaultRole: resolve('default_role') as SQL<DefaultRole>,
    effectiveAllowGuests: resolve('allow_guests') as SQL<boolean>,
  };
}

const sameRule = <T>(a: PermissionRule<T>, b: PermissionRule<T>) => a.locked === b.locked && a.inherited === b.inherited;

/**
 * Rewrites the derived columns of the organization's workspaces after its settings or locks
 * changed from `before` to `after` (call under the organization's update lock, in that
 * write's transaction). Nothing to do unless what it passes down for a derived permission
 * moved; then only the rows whose resolved values moved are written.
 */
export async function rederiveAccess(tx: Tx, organizationId: string, before: OrganizationLayer, after: OrganizationLayer): Promise<void> {
  const moved = DERIVED_KEYS.some((key) => !sameRule(permissionRule(before, key), permissionRule(after, key)));
  if (!moved) return;
  const next = effectiveAccessSql(after, workspaces.settings);
  await tx
    .update(workspaces)
    .set({
      effectiveVisibility: next.effectiveVisibility,
      effectiveDefaultRole: next.effectiveDefaultRole,
      effectiveAllowGuests: next.effectiveAllowGuests,
    })
    .where(
      and(
        eq(workspaces.organizationId, organizationId),
        sql`(${workspaces.effectiveVisibility}, ${workspaces.effectiveDefaultRole}, ${workspaces.effectiveAllowGuests}) is distinct from (${next.effectiveVisibility}, ${next.effectiveDefaultRole}, ${next.effectiveAllowGuests})`,
      ),
    );
}

/** A plain member's candidates in a list: the workspaces visible to the organization, and those they were given. */
export const visibleToOrganization = eq(workspaces.effectiveVisibility, 'organization');
export const privateWorkspace = ne(workspaces.effectiveVisibility, 'organization');
