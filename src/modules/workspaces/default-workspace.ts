import type { Tx } from '../../db/client';
import { workspaces } from '../../db/schema';
import { nameKey, toWorkspaceDto, type WorkspaceDto } from './dto';

/** The workspace every organization is created with: name `Default`, slug `default`. */
export async function insertDefaultWorkspace(tx: Tx, organizationId: string): Promise<WorkspaceDto> {
  const [row] = await tx
    .insert(workspaces)
    .values({ organizationId, name: 'Default', nameKey: nameKey('Default'), slug: 'default', isDefault: true })
    .returning();
  return toWorkspaceDto(row!);
}
