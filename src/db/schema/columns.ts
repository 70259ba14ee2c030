import { timestamp, uuid } from 'drizzle-orm/pg-core';

/** Millisecond precision, so values round-trip through JS `Date` unchanged (keyset cursors rely on it). */
export const createdAt = () => timestamp('created_at', { precision: 3, withTimezone: true, mode: 'date' }).notNull().defaultNow();
export const updatedAt = () => timestamp('updated_at', { precision: 3, withTimezone: true, mode: 'date' }).notNull().defaultNow();
export const primaryId = () => uuid('id').primaryKey().defaultRandom();
