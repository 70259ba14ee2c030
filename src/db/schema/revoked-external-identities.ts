import { pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * External identities whose account was deleted: the provider's tokens for them issued up
 * to `revokedAt` plus the clock skew stop working (a later token is a first sight again, and
 * the new account is revoked up to the same point).
 */
export const revokedExternalIdentities = pgTable(
  'revoked_external_identities',
  {
    issuer: text('issuer').notNull(),
    subject: text('subject').notNull(),
    revokedAt: timestamp('revoked_at', { precision: 3, withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'revoked_external_identities_pkey', columns: [t.issuer, t.subject] })],
);
