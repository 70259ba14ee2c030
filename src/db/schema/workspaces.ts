import { sql } from 'drizzle-orm';
import { boolean, check, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
import { createdAt, primaryId, updatedAt } from './columns';
import { organizations } from './organizations';
import type { DefaultRole, SettingsLayer, Visibility } from './settings-layer';

export const workspaces = pgTable(
  'workspaces',
  {
    id: primaryId(),
    organizationId: uuid('organization_id')
      .notNull()
      .references(() => organizations.id, { onDelete: 'cascade' }),
    name: text('name').notNull(),
    /**
     * Lower-cased name, computed in JS so both engines sort it the same way under the
     * "C" collation whatever the server's locale.
     */
    nameKey: text('name_key').notNull(),
    /** In the "C" collation (drizzle/0002_slugs-in-c-order.sql; drizzle cannot declare it): see lib/slug.ts inSlugFamily. */
    slug: text('slug').notNull(),
    description: text('description'),
    metadata: jsonb('metadata').$type<Record<string, string>>().notNull().default({}),
    /** The workspace's settings overrides: a partial settings document. */
    settings: jsonb('settings').$type<SettingsLayer>().notNull().default({}),
    /**
     * `permissions.visibility` and `permissions.default_role` as resolved (defaults ←
     * organization ← these overrides, the organization's locks winning), kept for the access
     * decision and its list indexes. Derived, never written by hand: every write that can move
     * them rewrites them in its own transaction (modules/workspaces/access.ts).
     */
    effectiveVisibility: text('effective_visibility').$type<Visibility>().notNull().default('organization'),
    effectiveDefaultRole: text('effective_default_role').$type<DefaultRole>().notNull().default('member'),
    /** `permissions.allow_guests` as resolved, likewise: a guest's access holds only while it is true. */
    effectiveAllowGuests: boolean('effective_allow_guests').notNull().default(false),
    isDefault: boolean('is_default').notNull().default(false),
    /** A plain id, not a foreign key: deleting the source leaves it as it is. */
    clonedFromId: uuid('cloned_from_id'),
    /** Set while the workspace is archived (read-only, left out of lists); null when active. */
    archivedAt: timestamp('archived_at', { precision: 3, withTimezone: true, mode: 'date' }),
    version: integer('version').notNull().default(1),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    uniqueIndex('workspaces_org_slug_key').on(t.organizationId, t.slug),
    uniqueIndex('workspaces_one_default_per_org')
      .on(t.organizationId)
      .where(sql`${t.isDefault}`),
    index('workspaces_org_created_idx').on(t.organizationId, t.createdAt, t.id),
    index('workspaces_org_name_idx').on(t.organizationId, sql`${t.nameKey} collate "C"`, t.id),
    // A plain member's lists: the workspaces visible to the organization, in each sort order.
    index('workspaces_org_visibility_created_idx').on(t.organizationId, t.effectiveVisibility, t.createdAt, t.id),
    index('workspaces_org_visibility_name_idx').on(t.organizationId, t.effectiveVisibility, sql`${t.nameKey} collate "C"`, t.id),
    check('workspaces_effective_visibility_check', sql`${t.effectiveVisibility} in ('private', 'organization')`),
    check('workspaces_effective_default_role_check', sql`${t.effectiveDefaultRole} in ('admin', 'member', 'viewer')`),
  ],
);
