import type { Tx } from '../../db/client';
import { workspaces } from '../../db/schema';
import { workspaceEvent, type NewEvent } from '../audit/events';
import { creationChanges, nameKey, toWorkspace } from './rows';
import { effectiveAccess } from './access';
import type { Workspace } from './schemas';

/**
 * The workspace every organization is created with (name `Default`, slug `default`), and its
 * creation event. A new organization sets and locks nothing yet.
 */
export async function insertDefaultWorkspace(tx: Tx, organizationId: string): Promise<{ workspace: Workspace; event: NewEvent }> {
  const [row] = await tx
    .insert(workspaces)
    .values({
      organizationId,
      name: 'Default',
      nameKey: nameKey('Default'),
      slug: 'default',
      isDefault: true,
      ...effectiveAccess({ settings: {}, locks: [] }, {}),
    })
    .returning();
  return { workspace: toWorkspace(row!), event: workspaceEvent('workspace.created', row!, creationChanges(row!)) };
}
