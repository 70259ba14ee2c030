import { z } from 'zod';
import { authedProcedure, router } from '../../trpc/init';
import { rest } from '../../trpc/meta';
import { idempotentCreate, inTransaction } from '../../trpc/transaction';
import { idempotencyKeyHeader } from '../../lib/api-schemas';
import { authorOf } from '../../trpc/context';
import { requireRole } from './access';
import * as members from './members';
import * as service from './service';
import * as s from './schemas';
import { organizationInvitationsRouter } from '../invitations/router';

const tag = 'organizations' as const;

/** A partial settings document the server accepts (API.md, Settings document). */
const SETTINGS_EXAMPLE = {
  permissions: { default_role: 'member', allow_guests: false },
  features: { dark_mode: true },
  integrations: { slack: { enabled: true, config: { channel: '#general', retention_days: 30 } } },
  locks: ['permissions.default_role', 'integrations.slack'],
};

export const organizationsRouter = router({
  invitations: organizationInvitationsRouter,

  list: authedProcedure
    .meta(
      rest('GET', '/organizations', 'listOrganizations', {
        tag,
        summary: "The caller's organizations, each with the caller's role",
        description: 'Keyset-paginated: pass `next_cursor` as `cursor` for the next page (`null` on the last).',
        errors: [],
      }),
    )
    .input(s.listOrganizationsInput)
    .output(s.organizationPage)
    .query(({ ctx, input }) => service.listOrganizations(ctx.db, ctx.deps.cursors, ctx.actor.id, input)),

  create: authedProcedure
    .meta(
      rest('POST', '/organizations', 'createOrganization', {
        tag,
        summary: 'Create an organization (the caller becomes its owner) with its default workspace',
        description:
          'The slug is unique across the service; when omitted it is derived from the name (with a numeric suffix when taken). With `Idempotency-Key`, a retry replays the first answer. A caller who has created MAX_ORGANIZATIONS_PER_USER organizations (default 100, their first one included) gets 409 `QUOTA_EXCEEDED`.',
        requestExample: { name: 'Acme Research' },
        successStatus: 201,
        errors: [409, 422],
        requestHeaders: idempotencyKeyHeader,
      }),
    )
    .input(s.createOrganizationInput)
    .output(s.organizationWithRoleSchema)
    .mutation(({ ctx, input }) =>
      idempotentCreate(
        ctx,
        {
          operation: 'organizations.create',
          input,
          stillVisible: ({ organizationId }) => requireRole(ctx.db, ctx.actor.id, organizationId, 'member'),
        },
        async (tx) => {
          const { organization } = await service.createOrganization(tx, authorOf(ctx), input, ctx.deps.config.MAX_ORGANIZATIONS_PER_USER);
          return { body: organization, location: `/api/v1/organizations/${organization.id}`, organizationId: organization.id };
        },
      ),
    ),

  get: authedProcedure
    .meta(
      rest('GET', '/organizations/{org_id}', 'getOrganization', {
        tag,
        summary: 'One organization',
        description: "The organization with the caller's role; 404 when it does not exist or the caller is not a member.",
        errors: [404],
      }),
    )
    .input(s.organizationIdInput)
    .output(s.organizationWithRoleSchema)
    .query(({ ctx, input }) => service.getOrganization(ctx.db, ctx.actor.id, input.org_id)),

  update: authedProcedure
    .meta(
      rest('PUT', '/organizations/{org_id}', 'updateOrganization', {
        tag,
        summary: 'Rename an organization or change its slug (admin)',
        description: 'Give at least one of `name`, `slug`; fields left out stay as they are. A slug taken by another organization is 409.',
        requestExample: { name: 'Acme Research Labs' },
        errors: [403, 404, 409],
      }),
    )
    .input(s.updateOrganizationInput)
    .output(s.organizationWithRoleSchema)
    .mutation(({ ctx, input: { org_id, ...changes } }) =>
      inTransaction(ctx, (tx) => service.updateOrganization(tx, authorOf(ctx), org_id, changes)),
    ),

  delete: authedProcedure
    .meta(
      rest('DELETE', '/organizations/{org_id}', 'deleteOrganization', {
        tag,
        summary: 'Delete an organization with its workspaces, settings and memberships (owner)',
        description: 'Only an owner may delete it; its workspaces, settings and memberships go with it.',
        successStatus: 204,
        errors: [403, 404],
      }),
    )
    .input(s.organizationIdInput)
    .output(z.void())
    .mutation(async ({ ctx, input }) => {
      const deleted = await inTransaction(ctx, (tx) => service.deleteOrganization(tx, ctx.actor.id, input.org_id));
      // Its audit events went with it: the deletion is kept in the log instead.
      ctx.deps.logger.info(
        { organization: { id: deleted.id, name: deleted.name, slug: deleted.slug }, actor: authorOf(ctx) },
        'organization deleted with its workspaces, members and audit events',
      );
    }),

  getSettings: authedProcedure
    .meta(
      rest('GET', '/organizations/{org_id}/settings', 'getOrganizationSettings', {
        tag,
        summary: "The organization's settings, and those over the system defaults (what its workspaces inherit)",
        description: '`settings` is what the organization sets; `effective` is that overlaid on the system defaults.',
        errors: [404],
      }),
    )
    .input(s.organizationIdInput)
    .output(s.organizationSettingsOutput)
    .query(({ ctx, input }) => service.getOrganizationSettings(ctx.db, ctx.actor.id, input.org_id)),

  updateSettings: authedProcedure
    .meta(
      rest('PUT', '/organizations/{org_id}/settings', 'updateOrganizationSettings', {
        tag,
        summary: "Deep-merge a partial settings document into the organization's settings (null removes a key; admin)",
        description:
          'Objects merge key by key and scalars replace; `null` at any key removes it, so the value is inherited again. An empty write changes nothing. A stored layer is at most 64 KiB. `locks` (paths such as `permissions.allow_guests` or `integrations.slack`) replaces the list of paths every workspace takes from the organization; `null` or `[]` removes them all, and leaving it out keeps them. A workspace write that sets a value under a lock is 409.',
        requestExample: SETTINGS_EXAMPLE,
        errors: [403, 404],
      }),
    )
    .input(s.updateOrganizationSettingsInput)
    .output(s.organizationSettingsOutput)
    .mutation(({ ctx, input: { org_id, ...changes } }) =>
      inTransaction(ctx, (tx) => service.updateOrganizationSettings(tx, authorOf(ctx), org_id, changes)),
    ),

  listMembers: authedProcedure
    .meta(
      rest('GET', '/organizations/{org_id}/members', 'listMembers', {
        tag,
        summary: "The organization's members",
        description: 'Keyset-paginated like the other lists; any member may read it.',
        errors: [404],
      }),
    )
    .input(s.listMembersInput)
    .output(s.memberPage)
    .query(({ ctx, input: { org_id, ...page } }) => members.listMembers(ctx.db, ctx.deps.cursors, ctx.actor.id, org_id, page)),

  getMember: authedProcedure
    .meta(
      rest('GET', '/organizations/{org_id}/members/{user_id}', 'getMember', {
        tag,
        summary: 'One member',
        description: 'One member of the organization, with its role; 404 when the user is not a member (or the caller is not).',
        errors: [404],
      }),
    )
    .input(s.memberIdInput)
    .output(s.memberSchema)
    .query(({ ctx, input }) => members.getMember(ctx.db, ctx.actor.id, input.org_id, input.user_id)),

  updateMember: authedProcedure
    .meta(
      rest('PUT', '/organizations/{org_id}/members/{user_id}', 'updateMember', {
        tag,
        summary: "Change a member's role (admin; only an owner grants or removes the owner role)",
        description: 'Demoting the last owner is 409: an organization always keeps at least one owner.',
        requestExample: { role: 'admin' },
        errors: [403, 404, 409],
      }),
    )
    .input(s.updateMemberInput)
    .output(s.memberSchema)
    .mutation(({ ctx, input }) =>
      inTransaction(ctx, (tx) => members.updateMemberRole(tx, authorOf(ctx), input.org_id, input.user_id, input.role)),
    ),

  removeMember: authedProcedure
    .meta(
      rest('DELETE', '/organizations/{org_id}/members/{user_id}', 'removeMember', {
        tag,
        summary: 'Remove a member (admin), or leave (the member itself); the last owner cannot go',
        description:
          'An admin removes a member (only an owner removes an owner); any member may remove itself. The last owner cannot go (409).',
        successStatus: 204,
        errors: [403, 404, 409],
      }),
    )
    .input(s.memberIdInput)
    .output(z.void())
    .mutation(({ ctx, input }) => inTransaction(ctx, (tx) => members.removeMember(tx, authorOf(ctx), input.org_id, input.user_id))),
});
