/**
 * The audit trail's reading side: an organization's events (admins) and a workspace's
 * (members), newest first, keyset-paginated over the indexes that serve each list.
 * @module
 */
import { and, desc, eq, gte, lt } from 'drizzle-orm';
import type { DbOrTx } from '../../db/client';
import { auditEvents } from '../../db/schema';
import { invalidInput } from '../../lib/errors';
import type { CursorCodec } from '../../lib/cursor';
import { paginate, timestampParam } from '../../lib/pagination';
import { requireRole } from '../organizations/access';
import { readableWorkspace } from '../workspaces/service';
import type { AuditEventPage, EventFilters } from './schemas';

type EventRow = typeof auditEvents.$inferSelect;

const toEvent = (row: EventRow) => ({
  id: row.id,
  organization_id: row.organizationId,
  workspace_id: row.workspaceId,
  actor: { id: row.actorId, email: row.actorEmail },
  action: row.action as AuditEventPage['items'][number]['action'],
  target_type: row.targetType as AuditEventPage['items'][number]['target_type'],
  target_id: row.targetId,
  changes: row.changes,
  request_id: row.requestId,
  client_request_id: row.clientRequestId,
  created_at: row.createdAt.toISOString(),
});

/** Every event of the organization, including those of workspaces deleted since (admin). */
export async function listOrganizationEvents(
  db: DbOrTx,
  cursors: CursorCodec,
  actorId: string,
  organizationId: string,
  filters: EventFilters,
): Promise<AuditEventPage> {
  await requireRole(db, actorId, organizationId, 'admin');
  return listEvents(db, cursors, { organizationId }, filters);
}

/** The events of one workspace (any member of its organization; 404 once it is deleted). */
export async function listWorkspaceEvents(
  db: DbOrTx,
  cursors: CursorCodec,
  actorId: string,
  workspaceId: string,
  filters: EventFilters,
): Promise<AuditEventPage> {
  await readableWorkspace(db, actorId, workspaceId);
  return listEvents(db, cursors, { workspaceId }, filters);
}

/** `since` / `until` as a Date: an instant in the years 1 to 9999 (UTC), which both engines store. */
function instant(path: string, value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  const year = date.getUTCFullYear();
  if (!(year >= 1 && year <= 9999)) throw invalidInput(path, 'must be an instant between the years 1 and 9999 (UTC)');
  return date;
}

async function listEvents(
  db: DbOrTx,
  cursors: CursorCodec,
  scope: { organizationId: string } | { workspaceId: string },
  { action, actor_id, target_id, since, until, ...page }: EventFilters,
): Promise<AuditEventPage> {
  const sinceDate = instant('since', since);
  const untilDate = instant('until', until);
  if (sinceDate && untilDate && sinceDate > untilDate) throw invalidInput('since', 'must not be after until');
  const conditions = [
    'organizationId' in scope ? eq(auditEvents.organizationId, scope.organizationId) : eq(auditEvents.workspaceId, scope.workspaceId),
    action === undefined ? undefined : eq(auditEvents.action, action),
    actor_id === undefined ? undefined : eq(auditEvents.actorId, actor_id),
    target_id === undefined ? undefined : eq(auditEvents.targetId, target_id),
    sinceDate === undefined ? undefined : gte(auditEvents.createdAt, sinceDate),
    untilDate === undefined ? undefined : lt(auditEvents.createdAt, untilDate),
  ];
  const filters = {
    list: 'events',
    ...scope,
    action: action ?? null,
    actor_id: actor_id ?? null,
    target_id: target_id ?? null,
    since: sinceDate?.toISOString() ?? null,
    until: untilDate?.toISOString() ?? null,
  };
  const { rows, next_cursor } = await paginate(
    cursors,
    filters,
    page,
    {
      sortKey: auditEvents.createdAt,
      id: auditEvents.id,
      order: 'desc',
      keyParam: timestampParam,
      position: (row: EventRow) => [row.createdAt.toISOString(), row.id],
    },
    (after, take) =>
      db
        .select()
        .from(auditEvents)
        .where(and(...conditions, after))
        .orderBy(desc(auditEvents.createdAt), desc(auditEvents.id))
        .limit(take),
  );
  return { items: rows.map(toEvent), next_cursor };
}
