import { z } from 'zod';
import { authedProcedure, authedReadProcedure, router } from '../../trpc/init';
import { rest } from '../../trpc/meta';
import { authorOf, type AuthedContext, type Context } from '../../trpc/context';
import { idempotentCreate, inTransaction } from '../../trpc/transaction';
import { etagFor, type VersionCondition } from '../../lib/etag';
import { etagHeader, EXAMPLE_IDS, idempotencyKeyHeader, ifMatchHeader } from '../../lib/api-schemas';
import { requireRole } from '../organizations/access';
import * as s from './schemas';
import * as service from './service';
import { provisionWorkspaces } from './provision';
import { accessProcedure, workspaceMembersRouter } from './members-router';
import { workspaceInvitationsRouter } from '../invitations/router';

const tag = 'workspaces' as const;
const location = (workspace: s.Workspace) => `/api/v1/workspaces/${workspace.id}`;

/** A replayed create re-checks the workspace itself: deleted since, or no longer visible, is 404. */
const workspaceStillVisible =
  (ctx: AuthedContext) =>
  ({ body }: { body: s.Workspace }) =>
    service.getWorkspace(ctx.db, { id: ctx.actor.id }, body.id);

const workspaceQuota = (ctx: Context) => ctx.deps.config.MAX_WORKSPACES_PER_ORGANIZATION;

/** The version a write is conditional on: `If-Match` (read on REST only) and/or `expected_version`. */
const conditionFrom = (ctx: Context, expectedVersion: number | undefined): VersionCondition => ({
  ifMatch: ctx.face === 'rest' ? ctx.ifMatch : undefined,
  expectedVersion,
});

const withEtag = <T extends { version: number }>(ctx: Context, value: T): T => {
  ctx.setHeader('ETag', etagFor(value.version));
  return value;
};

const settingsAnswer = <T extends { version: number }>(ctx: Context, value: T): T => {
  ctx.setHeader('Cache-Control', 'no-store');
  return withEtag(ctx, value);
};

/** Archive or restore, as the procedure names: conditional, with the new ETag. */
async function archiveOrRestore(ctx: AuthedContext, input: s.ArchiveOrRestoreInput, archive: boolean) {
  const condition = conditionFrom(ctx, input.expected_version);
  return withEtag(ctx, await inTransaction(ctx, (tx) => service.setArchived(tx, authorOf(ctx), input.workspace_id, archive, condition)));
}

/** Create in an organization, shared by POST /workspaces and POST /organizations/{org_id}/workspaces (one idempotency operation). */
function createIn(ctx: AuthedContext, organizationId: string, fields: s.NewWorkspace) {
  const input = { organization_id: organizationId, ...fields };
  return idempotentCreate(ctx, { operation: 'workspaces.create', input, stillVisible: workspaceStillVisible(ctx) }, async (tx) => {
    const workspace = await service.createWorkspace(tx, authorOf(ctx), organizationId, fields, workspaceQuota(ctx));
    return { body: workspace, location: location(workspace), organizationId };
  });
}

const createMeta = { successStatus: 201 as const, errors: [403, 404, 409, 422], requestHeaders: idempotencyKeyHeader };
const CREATE_DESCRIPTION =
  "Admin of the organization. The slug is unique within the organization; when omitted it is derived from the name (with a numeric suffix when taken). `settings` is a partial settings document stored as the new workspace's overrides. With `Idempotency-Key`, a retry replays the first answer (same status, body and Location); the same key with another body is 422. An organization holding MAX_WORKSPACES_PER_ORGANIZATION workspaces (default 50,000, archived ones included) answers 409 `QUOTA_EXCEEDED`.";

export const workspacesRouter = router({
  create: authedProcedure
    .meta(
      rest('POST', '/workspaces', 'createWorkspace', {
        tag,
        summary: 'Create a workspace (organization admin)',
        description: CREATE_DESCRIPTION,
        requestExample: {
          organization_id: EXAMPLE_IDS.organization,
          name: 'Marketing',
          description: 'Campaigns and launches',
          metadata: { cost_center: 'CC-101' },
          settings: {
            permissions: { visibility: 'private' },
            features: { dark_mode: true },
            integrations: { github: { enabled: true, config: { repository: 'acme/site' } } },
          },
        },
        ...createMeta,
      }),
    )
    .input(s.createWorkspaceInput)
    .output(s.workspaceSchema)
    .mutation(({ ctx, input: { organization_id, ...fields } }) => createIn(ctx, organization_id, fields)),

  list: authedReadProcedure
    .meta(
      rest('GET', '/workspaces', 'listWorkspaces', {
        tag,
        summary: 'List the workspaces the caller has access to (keyset-paginated)',
        description:
          'Lists what the caller can read (README, Workspace access): every workspace of the organizations where it is an owner or admin; elsewhere those visible to the organization and those it is an explicit member of. Filter by `organization_id` (404 when the caller is not a member) and `q` (case-insensitive substring of name or slug; `%` and `_` are literal); sort by `created_at` or `name`, `asc` or `desc`, with the id as tie-break. Cursors are signed and bound to the filters: a tampered cursor, or one used with other filters, is 400.',
        errors: [404],
      }),
    )
    .input(s.listWorkspacesInput)
    .output(s.workspacePage)
    .query(({ ctx, input }) => service.listWorkspaces(ctx.db, ctx.deps.cursors, ctx.caller, input)),

  provision: authedProcedure
    .meta(
      rest('POST', '/workspaces/provision', 'provisionWorkspaces', {
        tag,
        summary: 'Create up to 1000 workspaces in one call (atomic or partial)',
        description:
          "A template's description, metadata and settings overrides are the base of each new workspace, the item's own fields merged on top. `atomic` (default): if any item conflicts (slug taken, or repeated in the batch), nothing is created and the 409 lists every conflicting item in `failed`. `partial`: what can be created is, the rest is reported in `failed`. Items past the organization's workspace quota (MAX_WORKSPACES_PER_ORGANIZATION) fail with code `QUOTA_EXCEEDED`: in `failed` in partial mode; in atomic mode the call is 409 `QUOTA_EXCEEDED` (or `CONFLICT` when slugs conflict too) listing them. Answers 201 without a Location (it makes several).",
        requestExample: {
          organization_id: EXAMPLE_IDS.organization,
          mode: 'partial',
          workspaces: [{ name: 'Sales EMEA' }, { name: 'Sales APAC', metadata: { region: 'apac' } }],
        },
        successStatus: 201,
        withoutLocation: true,
        errors: [403, 404, 409, 422],
        requestHeaders: idempotencyKeyHeader,
      }),
    )
    .input(s.provisionInput)
    .output(s.provisionOutput)
    .mutation(({ ctx, input }) =>
      idempotentCreate(
        ctx,
        {
          operation: 'workspaces.provision',
          input,
          stillVisible: ({ organizationId }) => requireRole(ctx.db, ctx.actor.id, organizationId, 'member', 'Resource'),
        },
        async (tx) => ({
          body: await provisionWorkspaces(tx, authorOf(ctx), input, workspaceQuota(ctx)),
          organizationId: input.organization_id,
        }),
      ),
    ),

  get: authedReadProcedure
    .meta(
      rest('GET', '/workspaces/{workspace_id}', 'getWorkspace', {
        tag,
        summary: 'One workspace',
        description:
          'Anyone with access to it (a viewer or above; README, Workspace access) may read it; 404 otherwise, whether it does not exist or is private to others. `ETag` is its version, for `If-Match`.',
        errors: [404],
        responseHeaders: etagHeader,
      }),
    )
    .input(s.workspaceIdInput)
    .output(s.workspaceSchema)
    .query(async ({ ctx, input }) => withEtag(ctx, await service.getWorkspace(ctx.db, ctx.caller, input.workspace_id))),

  update: authedProcedure
    .meta(
      rest('PUT', '/workspaces/{workspace_id}', 'updateWorkspace', {
        tag,
        summary: "Update a workspace's name, slug, description, metadata (workspace admin), or make it the default (organization admin)",
        description:
          'Give at least one of `name`, `slug`, `description`, `metadata`, `is_default`; fields left out stay as they are. Metadata merges key by key (`null` removes a key); `is_default: true` moves the default flag here. An archived workspace is 409 (restore it first). `If-Match` (or `expected_version`) makes it conditional: 412 when the version moved on.',
        requestExample: {
          name: 'Marketing and Growth',
          description: 'Campaigns, launches and growth experiments',
          metadata: { cost_center: 'CC-102', legacy_code: null },
        },
        errors: [403, 404, 409, 412],
        requestHeaders: ifMatchHeader,
        responseHeaders: etagHeader,
      }),
    )
    .input(s.updateWorkspaceInput)
    .output(s.workspaceSchema)
    .mutation(async ({ ctx, input: { workspace_id, expected_version, ...changes } }) => {
      const condition = conditionFrom(ctx, expected_version);
      return withEtag(ctx, await inTransaction(ctx, (tx) => service.updateWorkspace(tx, authorOf(ctx), workspace_id, changes, condition)));
    }),

  delete: authedProcedure
    .meta(
      rest('DELETE', '/workspaces/{workspace_id}', 'deleteWorkspace', {
        tag,
        summary: 'Delete a workspace and its settings (organization admin); the default workspace cannot be deleted',
        description:
          'A hard delete; its settings go with it. The default workspace is 409. `If-Match` or `expected_version` make it conditional (412).',
        successStatus: 204,
        errors: [403, 404, 409, 412],
        requestHeaders: ifMatchHeader,
      }),
    )
    .input(s.deleteWorkspaceInput)
    .output(z.void())
    .mutation(({ ctx, input }) => {
      const condition = conditionFrom(ctx, input.expected_version);
      return inTransaction(ctx, (tx) => service.deleteWorkspace(tx, authorOf(ctx), input.workspace_id, condition));
    }),

  archive: authedProcedure
    .meta(
      rest('POST', '/workspaces/{workspace_id}/archive', 'archiveWorkspace', {
        tag,
        summary: 'Archive a workspace: read-only, left out of lists, slug kept (workspace admin)',
        description:
          'The workspace keeps its data, settings and slug; writes to it answer 409 until it is restored, while reads, clones from it and provisioning from it as a template still work. Lists leave it out unless `archived=true` or `all`. The default workspace cannot be archived (409). Archiving an archived workspace changes nothing. `If-Match` or `expected_version` make it conditional (412).',
        requestExample: {},
        errors: [403, 404, 409, 412],
        requestHeaders: ifMatchHeader,
        responseHeaders: etagHeader,
      }),
    )
    .input(s.archiveOrRestoreInput)
    .output(s.workspaceSchema)
    .mutation(({ ctx, input }) => archiveOrRestore(ctx, input, true)),

  restore: authedProcedure
    .meta(
      rest('POST', '/workspaces/{workspace_id}/restore', 'restoreWorkspace', {
        tag,
        summary: 'Restore an archived workspace (workspace admin)',
        description:
          'It is active again: writable and listed, with the slug it kept. Restoring an active workspace changes nothing. `If-Match` or `expected_version` make it conditional (412).',
        requestExample: {},
        errors: [403, 404, 412],
        requestHeaders: ifMatchHeader,
        responseHeaders: etagHeader,
      }),
    )
    .input(s.archiveOrRestoreInput)
    .output(s.workspaceSchema)
    .mutation(({ ctx, input }) => archiveOrRestore(ctx, input, false)),

  clone: authedProcedure
    .meta(
      rest('POST', '/workspaces/{workspace_id}/clone', 'cloneWorkspace', {
        tag,
        summary: 'Deep-copy a workspace (description, metadata, settings overrides) into a new one',
        description:
          "Reading the source needs access to it (a viewer or above); creating needs admin in the target organization (`organization_id`, default the source's). The copy is never linked to the source; `cloned_from_id` names it. A target organization at its workspace quota answers 409 `QUOTA_EXCEEDED`.",
        requestExample: { name: 'Marketing (copy)' },
        successStatus: 201,
        errors: [403, 404, 409, 422],
        requestHeaders: idempotencyKeyHeader,
      }),
    )
    .input(s.cloneWorkspaceInput)
    .output(s.workspaceSchema)
    .mutation(({ ctx, input: { workspace_id, ...fields } }) =>
      idempotentCreate(
        ctx,
        { operation: 'workspaces.clone', input: { workspace_id, ...fields }, stillVisible: workspaceStillVisible(ctx) },
        async (tx) => {
          const workspace = await service.cloneWorkspace(tx, authorOf(ctx), workspace_id, fields, workspaceQuota(ctx));
          return { body: workspace, location: location(workspace), organizationId: workspace.organization_id };
        },
      ),
    ),

  getSettings: authedReadProcedure
    .meta(
      rest('GET', '/workspaces/{workspace_id}/settings', 'getWorkspaceSettings', {
        tag,
        summary: 'Effective settings (defaults ← organization ← workspace), the overrides, and where each value comes from',
        description:
          '`sources` mirrors `effective` leaf by leaf with `default`, `organization` or `workspace`. Sent with `ETag` (the workspace version) and `Cache-Control: no-store`.',
        errors: [404],
        responseHeaders: etagHeader,
      }),
    )
    .input(s.workspaceIdInput)
    .output(s.workspaceSettingsOutput)
    .query(async ({ ctx, input }) => settingsAnswer(ctx, await service.getWorkspaceSettings(ctx.db, ctx.caller, input.workspace_id))),

  updateSettings: authedProcedure
    .meta(
      rest('PUT', '/workspaces/{workspace_id}/settings', 'updateWorkspaceSettings', {
        tag,
        summary: "Deep-merge a partial settings document into the workspace's overrides (null removes an override; workspace admin)",
        description:
          'Objects merge key by key and scalars replace; `null` at any key removes the override, so the value is inherited again. A write that changes something bumps the version; an empty one does not. A stored layer is at most 64 KiB. A write that sets a value at, under or above a path the organization locks is 409 naming the paths (the whole write is refused; `null` there is allowed), as is any write to an archived workspace. `If-Match` or `expected_version` make it conditional (412).',
        requestExample: { permissions: { allow_guests: true }, features: { dark_mode: false }, integrations: { github: null } },
        errors: [403, 404, 409, 412],
        requestHeaders: ifMatchHeader,
        responseHeaders: etagHeader,
      }),
    )
    .input(s.updateWorkspaceSettingsInput)
    .output(s.workspaceSettingsOutput)
    .mutation(async ({ ctx, input: { workspace_id, expected_version, ...patch } }) => {
      const condition = conditionFrom(ctx, expected_version);
      const settings = await inTransaction(ctx, (tx) => service.updateWorkspaceSettings(tx, authorOf(ctx), workspace_id, patch, condition));
      return settingsAnswer(ctx, settings);
    }),

  listInOrganization: authedReadProcedure
    .meta(
      rest('GET', '/organizations/{org_id}/workspaces', 'listOrganizationWorkspaces', {
        tag: 'organizations',
        summary: "The organization's workspaces (same as GET /workspaces?organization_id=…)",
        description: 'The same filters, sorting and cursors as GET /workspaces, within this organization.',
        errors: [404],
      }),
    )
    .input(s.listWorkspacesInOrganizationInput)
    .output(s.workspacePage)
    .query(({ ctx, input: { org_id, ...filters } }) =>
      service.listWorkspaces(ctx.db, ctx.deps.cursors, ctx.caller, { organization_id: org_id, ...filters }),
    ),

  createInOrganization: authedProcedure
    .meta(
      rest('POST', '/organizations/{org_id}/workspaces', 'createOrganizationWorkspace', {
        tag: 'organizations',
        summary: 'Create a workspace in the organization (same as POST /workspaces)',
        description: CREATE_DESCRIPTION,
        requestExample: { name: 'Design', description: 'Brand and product design', settings: { features: { beta_editor: true } } },
        ...createMeta,
        requestHeaders: idempotencyKeyHeader,
      }),
    )
    .input(s.createWorkspaceInOrganizationInput)
    .output(s.workspaceSchema)
    .mutation(({ ctx, input: { org_id, ...fields } }) => createIn(ctx, org_id, fields)),

  members: workspaceMembersRouter,
  invitations: workspaceInvitationsRouter,
  access: accessProcedure,
});
