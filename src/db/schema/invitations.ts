import { check, index, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { primaryId } from './columns';
import { organizations } from './organizations';
import { users } from './users';
import { workspaces } from './workspaces';

/** What an invitation is stored as; `expired` is also computed from `expires_at` when read (modules/invitations). */
export const INVITATION_STATUSES = ['pending', 'accepted', 'declined', 'revoked', 'expired'] as const;
export type InvitationStatus = (typeof INVITATION_STATUSES)[number];
export const INVITATION_KINDS = ['member', 'guest'] as const;
export type InvitationKind = (typeof INVITATION_KINDS)[number];

const at = (name: string) => timestamp(name, { precision: 3, withTimezone: true, mode: 'date' });

/**
 * Invitations to an organization (`workspace_id` null) or to one of its workspaces. The token
 * is never stored: only its SHA-256 (`token_hash`). Times come from the service's clock
 * (deps.now), which decides expiry, so they are written explicitly rather than by default.
 * They go with their organization and workspace (cascade).
 */
export const invitations = pgTable(
  'invitations',
  {
    id: primaryId(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    workspaceId: uuid('workspace_id').references(() => workspaces.id, { onDelete: 'cascade' }),
    /** As given (trimmed); compared lower-cased, as logins compare. */
    email: text('email').notNull(),
    /** An organization role for an organization invitation, a workspace role for a workspace's. */
    role: text('role').notNull(),
    kind: text('kind').$type<InvitationKind>().notNull(),
    status: text('status').$type<InvitationStatus>().notNull().default('pending'),
    tokenHash: text('token_hash').notNull(),
    invitedBy: uuid('invited_by').references(() => users.id, { onDelete: 'set null' }),
    expiresAt: at('expires_at').notNull(),
    createdAt: at('created_at').notNull(),
    updatedAt: at('updated_at').notNull(),
    acceptedAt: at('accepted_at'),
    acceptedUserId: uuid('accepted_user_id').references(() => users.id, { onDelete: 'set null' }),
  },
  (t) => [
    uniqueIndex('invitations_token_hash_key').on(t.tokenHash),
    // One pending invitation per target and email (an expired one is marked so before another is made).
    uniqueIndex('invitations_one_pending_key')
      .on(t.organizationId, sql`coalesce(${t.workspaceId}, '00000000-0000-0000-0000-000000000000'::uuid)`, sql`lower(${t.email})`)
      .where(sql`${t.status} = 'pending'`),
    // The lists, newest first, and the pending count per organization.
    index('invitations_org_created_idx').on(t.organizationId, t.createdAt, t.id),
    index('invitations_workspace_created_idx')
      .on(t.workspaceId, t.createdAt, t.id)
      .where(sql`${t.workspaceId} is not null`),
    index('invitations_org_pending_idx')
      .on(t.organizationId, t.expiresAt)
      .where(sql`${t.status} = 'pending'`),
    // Revoking what someone removed from an organization created.
    index('invitations_inviter_idx')
      .on(t.invitedBy, t.organizationId)
      .where(sql`${t.status} = 'pending'`),
    check('invitations_status_check', sql`${t.status} in ('pending', 'accepted', 'declined', 'revoked', 'expired')`),
    check('invitations_kind_check', sql`${t.kind} in ('member', 'guest')`),
    check(
      'invitations_role_check',
      sql`(${t.workspaceId} is null and ${t.role} in ('owner', 'admin', 'member')) or (${t.workspaceId} is not null and ${t.role} in ('admin', 'member', 'viewer'))`,
    ),
  ],
);
