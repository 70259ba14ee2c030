import type { Tx } from '../../db/client';
import { workspaces } from '../../db/schema';
import { nameKey, toWorkspace } from './rows';
import type { Workspace } from './schemas';

/** The workspace every organization is created with: name `Default`, slug `default`. */
export async function insertDefaultWorkspace(tx: Tx, organizationId: string): Promise<Workspace> {
  const [row] = await tx
    .insert(workspaces)
    .values({ organizationId, name: 'Default', nameKey: nameKey('Default'), slug: 'default', isDefault: true })
    .returning();
  return toWorkspace(row!);
}
