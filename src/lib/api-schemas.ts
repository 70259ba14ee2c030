/**
 * Schemas shared by several modules' inputs and outputs: timestamps, roles, pages, the
 * documented bounds of response strings and integers, and the HTTP headers the document names.
 * Each module's own shapes live in its `schemas.ts`.
 * @module
 */
import { z } from 'zod';
import { ROLES } from '../db/schema/memberships';
import { IF_MATCH_MAX_LENGTH, IF_MATCH_PATTERN } from './etag';
import { MAX_INT, NO_NUL_PATTERN, queryInt, safeString, SLUG_PATTERN, uuidString } from './input';

/** `2024-01-31T12:00:00.000Z`: 24 characters. */
export const timestamp = z.iso.datetime({ offset: false }).meta({ description: 'ISO-8601 UTC, millisecond precision', maxLength: 24 });
export const roleSchema = z.enum(ROLES);

/**
 * Response fields, documented with the bounds their inputs were held to. The bounds are
 * documentation only (`.meta`): an answer is what the service stored, and is not re-checked.
 */
export const responseText = (maxLength: number) => z.string().meta({ maxLength, pattern: NO_NUL_PATTERN });
export const responseSlug = () => z.string().meta({ maxLength: 64, pattern: SLUG_PATTERN.source });
export const responseEmail = () => z.string().meta({ maxLength: 254, format: 'email' });
/** A user's name: 1-100 characters, or the email of an external identity whose token carries no name. */
export const responseUserName = () => responseText(254);
export const responseInt = (minimum: number, maximum: number) => z.number().int().meta({ minimum, maximum, format: 'int32' });
export const responseVersion = () => responseInt(1, MAX_INT);

/** A signed cursor: base64url payload, a dot, base64url signature (lib/cursor.ts). */
const CURSOR_PATTERN = '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$';
const CURSOR_MAX = 2048;
/** The largest page (`limit`'s maximum). */
const PAGE_MAX = 100;

export const pageQuery = {
  limit: queryInt(1, PAGE_MAX).default(20).meta({ description: '1-100, default 20' }),
  // The meta before .optional(): the generator documents a query parameter from its unwrapped schema.
  cursor: safeString(CURSOR_MAX)
    .min(1)
    .meta({ description: 'next_cursor of the previous page (opaque)', pattern: CURSOR_PATTERN })
    .optional(),
};

export const pageOf = <T extends z.ZodType>(item: T, id: string) =>
  z
    .object({
      items: z.array(item).meta({ maxItems: PAGE_MAX }),
      next_cursor: z.string().nullable().meta({ maxLength: CURSOR_MAX, pattern: CURSOR_PATTERN }),
    })
    .meta({ id });

/** Request and response headers, for the document (REST reads and sends them; see the contract). */
export const idempotencyKeyHeader = z.object({
  'Idempotency-Key': z.string().optional().meta({
    description: '1-255 visible ASCII characters; retries replay the first answer',
    minLength: 1,
    maxLength: 255,
    pattern: '^[\\x21-\\x7E]{1,255}$',
  }),
});
export const ifMatchHeader = z.object({
  'If-Match': z.string().optional().meta({
    description:
      '* or entity tags such as "3" (strong comparison), separated by commas with optional spaces or tabs; 412 when none is the current version',
    maxLength: IF_MATCH_MAX_LENGTH,
    // The expression lib/etag.ts judges the header by: what it refuses is 400.
    pattern: IF_MATCH_PATTERN,
  }),
});
export const etagHeader = z.object({
  ETag: z.string().meta({ description: 'the workspace version, quoted', maxLength: 12, pattern: '^"[1-9][0-9]{0,9}"$' }),
});

/**
 * The ids the document's examples use. Each stands for a real resource of the caller's:
 * test/openapi-examples.test.ts replaces them with ids it created before sending an example.
 */
export const EXAMPLE_IDS = {
  organization: '3f0c2a9e-5b1d-4c7e-8a2f-6d9b0e1c4a57',
  workspace: '0b6f2c5e-6c1b-4bf0-9a51-3c8f1f2a9d10',
  user: '7d1e4b2a-9c3f-4e8d-b5a6-1f2e3d4c5b6a',
  invitation: '5c2a8e1f-3b4d-4a6c-9e7f-0a1b2c3d4e5f',
} as const;

/**
 * The ids in paths (`{org_id}`, `{workspace_id}`, `{user_id}`), documented with the example id
 * of what each names: contract tools that build requests from the document need an example for
 * every required parameter. Optional query and header parameters get none on purpose: Swagger
 * UI fills every parameter's example into Try it out and sends it (a made-up cursor is a 400).
 */
export const organizationIdParam = uuidString.meta({ param: { example: EXAMPLE_IDS.organization } });
export const workspaceIdParam = uuidString.meta({ param: { example: EXAMPLE_IDS.workspace } });
export const userIdParam = uuidString.meta({ param: { example: EXAMPLE_IDS.user } });
export const invitationIdParam = uuidString.meta({ param: { example: EXAMPLE_IDS.invitation } });
