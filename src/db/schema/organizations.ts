import { index, integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { createdAt, primaryId, updatedAt } from './columns';
import type { SettingsLayer } from './settings-layer';
import { users } from './users';

export const organizations = pgTable(
  'organizations',
  {
    id: primaryId(),
    name: text('name').notNull(),
    /** In the "C" collation (drizzle/0002_slugs-in-c-order.sql; drizzle cannot declare it): see lib/slug.ts inSlugFamily. */
    slug: text('slug').notNull().unique('organizations_slug_key'),
    /** The organization's settings layer: a partial settings document. */
    settings: jsonb('settings').$type<SettingsLayer>().notNull().default({}),
    /** Paths of the settings document every workspace takes from the organization (modules/settings/locks.ts). */
    settingsLocks: jsonb('settings_locks').$type<string[]>().notNull().default([]),
    /**
     * Who created it (signup, `POST /organizations`, an identity provider's first sight), for
     * `MAX_ORGANIZATIONS_PER_USER`; null once that account is deleted.
     */
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    /**
     * The daily invitation budget (INVITATIONS_PER_DAY): when the current 24-hour window opened
     * and how many invitations were created or resent in it (modules/invitations/limits.ts).
     */
    invitationWindowStartedAt: timestamp('invitation_window_started_at', { precision: 3, withTimezone: true, mode: 'date' }),
    invitationsInWindow: integer('invitations_in_window').notNull().default(0),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [index('organizations_created_by_idx').on(t.createdBy)],
);
