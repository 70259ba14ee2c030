import { z } from 'zod';
import { ROLES } from '../db/schema/memberships';
import { queryInt, safeString } from './input';

/** Schemas shared by several modules' inputs and outputs. */

export const timestamp = z.iso.datetime({ offset: false }).meta({ description: 'ISO-8601 UTC, millisecond precision' });
export const roleSchema = z.enum(ROLES);

export const pageQuery = {
  limit: queryInt(1, 100).default(20).meta({ description: '1-100, default 20' }),
  cursor: safeString(2048).min(1).optional().meta({ description: 'next_cursor of the previous page (opaque)' }),
};

export const pageOf = <T extends z.ZodType>(item: T, id: string) =>
  z.object({ items: z.array(item), next_cursor: z.string().nullable() }).meta({ id });

export const userSchema = z
  .object({ id: z.uuid(), email: z.string(), name: z.string(), created_at: timestamp })
  .meta({ id: 'User' });

export const organizationSchema = z
  .object({ id: z.uuid(), name: z.string(), slug: z.string(), created_at: timestamp, updated_at: timestamp })
  .meta({ id: 'Organization' });

export const organizationWithRoleSchema = organizationSchema.extend({ role: roleSchema }).meta({ id: 'OrganizationWithRole' });

export const workspaceSchema = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    name: z.string(),
    slug: z.string(),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.string()),
    is_default: z.boolean(),
    cloned_from_id: z.uuid().nullable(),
    version: z.number().int(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Workspace' });

/** Request and response headers, for the document (REST reads and sends them; see the contract). */
export const idempotencyKeyHeader = z.object({
  'Idempotency-Key': z.string().optional().meta({ description: '1-255 visible ASCII characters; retries replay the first answer' }),
});
export const ifMatchHeader = z.object({
  'If-Match': z.string().optional().meta({ description: '* or entity tags such as "3" (strong comparison); 412 when none is the current version' }),
});
export const etagHeader = z.object({ ETag: z.string().meta({ description: 'the workspace version, quoted' }) });
