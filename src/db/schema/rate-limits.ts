import { integer, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Rate-limit counters shared by every process on the database (RATE_LIMIT_STORE=postgres),
 * in the shape rate-limiter-flexible's drizzle store reads and upserts atomically.
 */
export const rateLimits = pgTable('rate_limits', {
  key: text('key').primaryKey(),
  points: integer('points').notNull(),
  expire: timestamp('expire', { precision: 3, withTimezone: true, mode: 'date' }),
});
