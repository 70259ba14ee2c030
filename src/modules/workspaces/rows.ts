import type { workspaces } from '../../db/schema';
import { changesBetween, type Changes } from '../audit/events';
import type { Workspace } from './schemas';

export type WorkspaceRow = typeof workspaces.$inferSelect;

/** A stored workspace as the API returns it. */
export function toWorkspace(row: WorkspaceRow): Workspace {
  return {
    id: row.id,
    organization_id: row.organizationId,
    name: row.name,
    slug: row.slug,
    description: row.description,
    metadata: row.metadata,
    is_default: row.isDefault,
    cloned_from_id: row.clonedFromId,
    archived_at: row.archivedAt ? row.archivedAt.toISOString() : null,
    version: row.version,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

/** The sort key for `sort=name`: computed in JS so both engines compare the same bytes. */
export const nameKey = (name: string) => name.normalize('NFC').toLowerCase();

const unlessEmpty = <T extends object>(value: T) => (Object.keys(value).length > 0 ? value : undefined);

/** What the audit trail compares of a workspace: a stored row, or the values about to be inserted. */
type AuditedFields = Pick<WorkspaceRow, 'name'> &
  Partial<Pick<WorkspaceRow, 'slug' | 'description' | 'metadata' | 'isDefault' | 'settings'>>;

/** A workspace's state as its audit events compare it (README, Audit events); empty maps are "not set". */
export const auditedState = (row: AuditedFields) => ({
  name: row.name,
  slug: row.slug,
  description: row.description,
  metadata: unlessEmpty(row.metadata ?? {}),
  is_default: row.isDefault,
  settings: unlessEmpty(row.settings ?? {}),
});

/** The changes of a workspace's creation event: every field it is created with. */
export const creationChanges = (row: AuditedFields): Changes => changesBetween(null, auditedState(row));
