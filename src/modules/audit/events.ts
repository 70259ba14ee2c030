/**
 * The audit trail's writing side: every change records its events through `recordEvents`,
 * in the change's own transaction, so a rolled-back change leaves none.
 * @module
 */
import { sql } from 'drizzle-orm';
import type { Tx } from '../../db/client';
import { auditEvents, type Change, type ChangeValue } from '../../db/schema';
import type { Author } from '../../auth/author';
import { canonicalJson } from '../../lib/canonical-json';

export type { Author, RequestIds } from '../../auth/author';
export type { Change } from '../../db/schema';

/** Every action an event may name (README, Audit events). */
export const AUDIT_ACTIONS = [
  'organization.created',
  'organization.updated',
  'organization.settings_updated',
  'member.added',
  'member.role_changed',
  'member.removed',
  'workspace.created',
  'workspace.cloned',
  'workspace.cloned_out',
  'workspace.updated',
  'workspace.settings_updated',
  'workspace.archived',
  'workspace.restored',
  'workspace.deleted',
  'workspace.member_added',
  'workspace.member_role_changed',
  'workspace.member_removed',
  'workspaces.provisioned',
  'invitation.created',
  'invitation.resent',
  'invitation.revoked',
  'invitation.accepted',
  'invitation.declined',
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const TARGET_TYPES = ['organization', 'member', 'workspace', 'invitation'] as const;
export type TargetType = (typeof TARGET_TYPES)[number];

export type Changes = Record<string, Change>;

export interface NewEvent {
  organizationId: string;
  /** Set on a workspace's events, so its own list finds them. */
  workspaceId?: string | null;
  action: AuditAction;
  targetType: TargetType;
  targetId: string;
  changes: Changes;
}

/** A workspace's own event: its id is both the target and the workspace. */
export const workspaceEvent = (action: AuditAction, workspace: { id: string; organizationId: string }, changes: Changes): NewEvent => ({
  organizationId: workspace.organizationId,
  workspaceId: workspace.id,
  action,
  targetType: 'workspace',
  targetId: workspace.id,
  changes,
});

/** An event of the organization itself (its creation, name, settings, a provisioning batch). */
export const organizationEvent = (action: AuditAction, organizationId: string, changes: Changes): NewEvent => ({
  organizationId,
  action,
  targetType: 'organization',
  targetId: organizationId,
  changes,
});

/** An event of a membership: the member's user id is the target. */
export const memberEvent = (action: AuditAction, organizationId: string, userId: string, changes: Changes): NewEvent => ({
  organizationId,
  action,
  targetType: 'member',
  targetId: userId,
  changes,
});

/** An event of a workspace membership: the member's user id is the target, in the workspace's list. */
export const workspaceMemberEvent = (
  action: AuditAction,
  workspace: { id: string; organizationId: string },
  userId: string,
  changes: Changes,
): NewEvent => ({ ...memberEvent(action, workspace.organizationId, userId, changes), workspaceId: workspace.id });

/**
 * Writes the events of one change, by `author`, in the change's transaction: one statement
 * whatever their number (a provisioning batch writes a thousand), the rows travelling as one
 * JSON parameter like the batch's workspaces.
 */
export async function recordEvents(tx: Tx, author: Author, events: NewEvent[]): Promise<void> {
  if (events.length === 0) return;
  const rows = JSON.stringify(
    events.map((e) => ({
      organization_id: e.organizationId,
      workspace_id: e.workspaceId ?? null,
      action: e.action,
      target_type: e.targetType,
      target_id: e.targetId,
      changes: e.changes,
    })),
  );
  await tx.insert(auditEvents).select((qb) =>
    qb
      .select({
        id: sql<string>`gen_random_uuid()`.as('id'),
        organizationId: sql<string>`r.organization_id`.as('organization_id'),
        workspaceId: sql<string | null>`r.workspace_id`.as('workspace_id'),
        actorId: sql<string>`${author.id}::uuid`.as('actor_id'),
        actorEmail: sql<string>`${author.email}::text`.as('actor_email'),
        action: sql<string>`r.action`.as('action'),
        targetType: sql<string>`r.target_type`.as('target_type'),
        targetId: sql<string>`r.target_id`.as('target_id'),
        changes: sql<Changes>`r.changes`.as('changes'),
        requestId: sql<string>`${author.requestId}::text`.as('request_id'),
        clientRequestId: sql<string | null>`${author.clientRequestId ?? null}::text`.as('client_request_id'),
        createdAt: sql<Date>`now()`.as('created_at'),
      })
      .from(
        sql`jsonb_to_recordset(${rows}::jsonb) as r(organization_id uuid, workspace_id uuid, action text, target_type text, target_id uuid, changes jsonb)`,
      ),
  );
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
/** A key's own value: a metadata key may be named `constructor` or `toString`, which `{}` inherits. */
const ownValue = (object: Record<string, unknown>, key: string): unknown => (Object.hasOwn(object, key) ? (object[key] ?? null) : null);

/**
 * What changed between two states, as dotted paths to `{from, to}` (`null` for "not set").
 * Objects are compared leaf by leaf; arrays and scalars as whole values. An empty object that
 * appears or goes (an integration declared as `{}`) is a change of its own path.
 * `changesBetween(null, state)` describes a creation, `changesBetween(state, null)` a deletion.
 */
export function changesBetween(before: unknown, after: unknown, path = ''): Changes {
  const changes: Changes = {};
  walk(before ?? null, after ?? null, path, changes);
  return changes;
}

function walk(before: unknown, after: unknown, path: string, changes: Changes): void {
  if (isObject(before) || isObject(after)) {
    const from = isObject(before) ? before : {};
    const to = isObject(after) ? after : {};
    const keys = new Set([...Object.keys(from), ...Object.keys(to)]);
    if (keys.size === 0) {
      if ((before === null) !== (after === null)) changes[path] = { from: before as ChangeValue, to: after as ChangeValue };
      return;
    }
    for (const key of keys) walk(ownValue(from, key), ownValue(to, key), path ? `${path}.${key}` : key, changes);
    return;
  }
  // Values come from JSON documents and stored rows: they are JSON values.
  if (canonicalJson(before) !== canonicalJson(after)) changes[path] = { from: before as ChangeValue, to: after as ChangeValue };
}
