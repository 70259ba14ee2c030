import { index, jsonb, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';
import { createdAt, primaryId } from './columns';
import { organizations } from './organizations';

/** One changed path of an event: its value before and after (`null` for "not set"). */
export type ChangeValue = string | number | boolean | null | unknown[] | Record<string, unknown>;
export type Change = { from: ChangeValue; to: ChangeValue };

/**
 * The audit trail: one row per change, written in the change's transaction. Events go with
 * their organization (cascade) but outlive their workspace and their actor, so `workspace_id`
 * and `actor_id` are plain ids and the actor's email is kept as it was.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: primaryId(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    workspaceId: uuid('workspace_id'),
    actorId: uuid('actor_id').notNull(),
    actorEmail: text('actor_email').notNull(),
    action: text('action').notNull(),
    targetType: text('target_type').notNull(),
    targetId: uuid('target_id').notNull(),
    changes: jsonb('changes').$type<Record<string, Change>>().notNull(),
    /** The service's own id of the request that made the change (never the caller's). */
    requestId: text('request_id').notNull(),
    /** The caller's `X-Request-Id`, when it sent one: theirs to correlate with, not ours to trust. */
    clientRequestId: text('client_request_id'),
    createdAt: createdAt(),
  },
  (t) => [
    // The two lists, newest first: a backward scan of each serves the keyset (created_at, id).
    index('audit_events_org_created_idx').on(t.organizationId, t.createdAt, t.id),
    index('audit_events_workspace_created_idx')
      .on(t.workspaceId, t.createdAt, t.id)
      .where(sql`${t.workspaceId} is not null`),
    // Retention deletes the oldest first.
    index('audit_events_created_idx').on(t.createdAt),
  ],
);
