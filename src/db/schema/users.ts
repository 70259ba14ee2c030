import { sql } from 'drizzle-orm';
import { integer, pgTable, text, timestamp, uniqueIndex } from 'drizzle-orm/pg-core';
import { createdAt, primaryId } from './columns';

export const users = pgTable(
  'users',
  {
    id: primaryId(),
    email: text('email').notNull(),
    name: text('name').notNull(),
    /** scrypt hash; null for users who come from an external identity provider. */
    passwordHash: text('password_hash'),
    externalIssuer: text('external_issuer'),
    externalSubject: text('external_subject'),
    /** Bumped on logout; tokens carry the version they were issued under. */
    tokenVersion: integer('token_version').notNull().default(0),
    /**
     * Last logout (or, for an identity whose earlier account was deleted, that deletion), for
     * external-provider tokens, which carry no token version: `iat`s up to it plus the clock
     * skew are refused (modules/auth/service.ts `revokedBy`).
     */
    loggedOutAt: timestamp('logged_out_at', { precision: 3, withTimezone: true, mode: 'date' }),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('users_email_lower_key').on(sql`lower(${t.email})`),
    uniqueIndex('users_external_identity_key').on(t.externalIssuer, t.externalSubject),
  ],
);
