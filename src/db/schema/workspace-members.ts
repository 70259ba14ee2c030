import { check, index, pgTable, primaryKey, text, uuid } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { createdAt } from './columns';
import { users } from './users';
import { workspaces } from './workspaces';

/** A role in one workspace, highest first (modules/workspaces/access.ts ranks them). */
export const WORKSPACE_ROLES = ['admin', 'member', 'viewer'] as const;
export type WorkspaceRole = (typeof WORKSPACE_ROLES)[number];

/**
 * Explicit memberships of a workspace. Deleting the workspace or the account removes them;
 * leaving the organization removes them too (modules/organizations/members.ts, same transaction).
 */
export const workspaceMembers = pgTable(
  'workspace_members',
  {
    workspaceId: uuid('workspace_id')
      .notNull()
      .references(() => workspaces.id, { onDelete: 'cascade' }),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    role: text('role').$type<WorkspaceRole>().notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ name: 'workspace_members_pkey', columns: [t.workspaceId, t.userId] }),
    index('workspace_members_user_idx').on(t.userId, t.workspaceId),
    index('workspace_members_workspace_created_idx').on(t.workspaceId, t.createdAt, t.userId),
    check('workspace_members_role_check', sql`${t.role} in ('admin', 'member', 'viewer')`),
  ],
);
