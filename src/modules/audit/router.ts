import { authedProcedure, router } from '../../trpc/init';
import { rest } from '../../trpc/meta';
import * as s from './schemas';
import * as service from './service';

const tag = 'audit' as const;
const FILTERS =
  "Newest first (`created_at`, then `id`), keyset-paginated: pass `next_cursor` back as `cursor` with the same filters (another query's cursor is 400). Filters: `action`, `actor_id`, `target_id`, `since` (inclusive), `until` (exclusive).";

export const auditRouter = router({
  listOrganizationEvents: authedProcedure
    .meta(
      rest('GET', '/organizations/{org_id}/events', 'listOrganizationEvents', {
        tag,
        summary: "The organization's audit events: who changed what, and when (admin)",
        description: `Every change in the organization, including those of workspaces deleted since. ${FILTERS}`,
        errors: [403, 404],
      }),
    )
    .input(s.listOrganizationEventsInput)
    .output(s.auditEventPage)
    .query(({ ctx, input: { org_id, ...filters } }) =>
      service.listOrganizationEvents(ctx.db, ctx.deps.cursors, ctx.actor.id, org_id, filters),
    ),

  listWorkspaceEvents: authedProcedure
    .meta(
      rest('GET', '/workspaces/{workspace_id}/events', 'listWorkspaceEvents', {
        tag,
        summary: "A workspace's audit events (anyone with access to it)",
        description: `The changes of this workspace (its creation, updates, settings, archive and restore, its members). Once it is deleted this is 404; its events stay in the organization's list. ${FILTERS}`,
        errors: [404],
      }),
    )
    .input(s.listWorkspaceEventsInput)
    .output(s.auditEventPage)
    .query(({ ctx, input: { workspace_id, ...filters } }) =>
      service.listWorkspaceEvents(ctx.db, ctx.deps.cursors, ctx.actor.id, workspace_id, filters),
    ),
});
