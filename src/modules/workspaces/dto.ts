import type { workspaces } from '../../db/schema';

type WorkspaceRow = typeof workspaces.$inferSelect;

export interface WorkspaceDto {
  id: string;
  organization_id: string;
  name: string;
  slug: string;
  description: string | null;
  metadata: Record<string, string>;
  is_default: boolean;
  cloned_from_id: string | null;
  version: number;
  created_at: string;
  updated_at: string;
}

export function toWorkspaceDto(row: WorkspaceRow): WorkspaceDto {
  return {
    id: row.id,
    organization_id: row.organizationId,
    name: row.name,
    slug: row.slug,
    description: row.description,
    metadata: row.metadata,
    is_default: row.isDefault,
    cloned_from_id: row.clonedFromId,
    version: row.version,
    created_at: row.createdAt.toISOString(),
    updated_at: row.updatedAt.toISOString(),
  };
}

/** The sort key for `sort=name`: computed in JS so both engines compare the same bytes. */
export const nameKey = (name: string) => name.normalize('NFC').toLowerCase();
