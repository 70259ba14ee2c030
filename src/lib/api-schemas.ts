/**
 * Schemas shared by several modules' inputs and outputs: timestamps, roles, pages and the
 * HTTP headers the document names. Each module's own shapes live in its `schemas.ts`.
 * @module
 */
import { z } from 'zod';
import { ROLES } from '../db/schema/memberships';
import { queryInt, safeString } from './input';

export const timestamp = z.iso.datetime({ offset: false }).meta({ description: 'ISO-8601 UTC, millisecond precision' });
export const roleSchema = z.enum(ROLES);

export const pageQuery = {
  limit: queryInt(1, 100).default(20).meta({ description: '1-100, default 20' }),
  cursor: safeString(2048).min(1).optional().meta({ description: 'next_cursor of the previous page (opaque)' }),
};

export const pageOf = <T extends z.ZodType>(item: T, id: string) =>
  z.object({ items: z.array(item), next_cursor: z.string().nullable() }).meta({ id });

/** Request and response headers, for the document (REST reads and sends them; see the contract). */
export const idempotencyKeyHeader = z.object({
  'Idempotency-Key': z.string().optional().meta({ description: '1-255 visible ASCII characters; retries replay the first answer' }),
});
export const ifMatchHeader = z.object({
  'If-Match': z
    .string()
    .optional()
    .meta({ description: '* or entity tags such as "3" (strong comparison); 412 when none is the current version' }),
});
export const etagHeader = z.object({ ETag: z.string().meta({ description: 'the workspace version, quoted' }) });
