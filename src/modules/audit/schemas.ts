import { z } from 'zod';
import { uuidString } from '../../lib/input';
import { organizationIdParam, pageOf, pageQuery, responseEmail, responseText, timestamp, workspaceIdParam } from '../../lib/api-schemas';
import { AUDIT_ACTIONS, TARGET_TYPES } from './events';

/** A value of a changed path: any JSON value (documentation only: answers are not re-checked). */
const jsonValue = z.union([
  responseText(64 * 1024),
  z.number(),
  z.boolean(),
  z.null(),
  z.array(z.unknown()).meta({ maxItems: 100 }),
  z.record(z.string().meta({ maxLength: 64 }), z.unknown()).meta({ maxProperties: 100 }),
]);

export const auditEventSchema = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    workspace_id: z.uuid().nullable(),
    actor: z.object({ id: z.uuid(), email: responseEmail() }),
    action: z.enum(AUDIT_ACTIONS),
    target_type: z.enum(TARGET_TYPES),
    target_id: z.uuid(),
    changes: z
      .record(
        z.string().meta({ maxLength: 300 }),
        z.object({
          from: jsonValue.meta({ description: 'the value before (null: not set)' }),
          to: jsonValue.meta({ description: 'the value after (null: not set)' }),
        }),
      )
      .meta({ description: 'dotted path → {from, to}' }),
    request_id: responseText(128).meta({
      description: "the service's own id of the request that made the change (its X-Service-Request-Id)",
    }),
    client_request_id: responseText(128)
      .nullable()
      .meta({ description: 'the X-Request-Id the caller sent with that request (1–128 visible ASCII), or null when it sent none' }),
    created_at: timestamp,
  })
  .meta({ id: 'AuditEvent' });
export type AuditEvent = z.output<typeof auditEventSchema>;

/** An ISO 8601 date-time with an offset (`Z` or `+02:00`), as `since` and `until` take it. */
const instant = z.iso.datetime({ offset: true }).meta({ maxLength: 35 });

const eventFilters = {
  // Query parameters: the meta before .optional(), where the generator reads it.
  action: z.enum(AUDIT_ACTIONS).optional(),
  actor_id: uuidString.meta({ description: 'events by this user' }).optional(),
  target_id: uuidString.meta({ description: 'events about this workspace, member or organization' }).optional(),
  since: instant.meta({ description: 'at or after this instant (ISO 8601)' }).optional(),
  until: instant.meta({ description: 'before this instant (ISO 8601)' }).optional(),
  ...pageQuery,
};

export const listOrganizationEventsInput = z.strictObject({ org_id: organizationIdParam, ...eventFilters });
export const listWorkspaceEventsInput = z.strictObject({ workspace_id: workspaceIdParam, ...eventFilters });
export type EventFilters = Omit<z.output<typeof listWorkspaceEventsInput>, 'workspace_id'>;

export const auditEventPage = pageOf(auditEventSchema, 'AuditEventPage');
export type AuditEventPage = z.output<typeof auditEventPage>;
