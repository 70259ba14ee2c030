import { z } from 'zod';
import { authedProcedure, router } from '../../trpc/init';
import { rest } from '../../trpc/meta';
import { authorOf } from '../../trpc/context';
import { inTransaction } from '../../trpc/transaction';
import { EXAMPLE_IDS } from '../../lib/api-schemas';
import * as s from './schemas';
import * as members from './members';

const tag = 'workspaces' as const;
const ROLES_NOTE =
  "Roles in a workspace: `admin` > `member` > `viewer`; the organization's owners and admins are admins of every workspace (README, Workspace access).";

/** A workspace's explicit members (tRPC: `workspaces.members.*`). */
export const workspaceMembersRouter = router({
  list: authedProcedure
    .meta(
      rest('GET', '/workspaces/{workspace_id}/members', 'listWorkspaceMembers', {
        tag,
        summary: "The workspace's explicit members (anyone who can see it)",
        description: `Oldest first (\`created_at\`, then \`user_id\`), keyset-paginated like the other lists. Members who hold access through their organization role or the workspace's visibility alone are not listed: \`GET /workspaces/{workspace_id}/access?user_id=\` answers for them. 404 for a caller without access. ${ROLES_NOTE}`,
        errors: [404],
      }),
    )
    .input(s.listWorkspaceMembersInput)
    .output(s.workspaceMemberPage)
    .query(({ ctx, input: { workspace_id, ...page } }) =>
      members.listWorkspaceMembers(ctx.db, ctx.deps.cursors, ctx.actor.id, workspace_id, page),
    ),

  add: authedProcedure
    .meta(
      rest('POST', '/workspaces/{workspace_id}/members', 'addWorkspaceMember', {
        tag,
        summary: 'Add a member of the organization to the workspace (workspace admin)',
        description: `\`role\` defaults to the workspace's effective \`permissions.default_role\`. The user must be a member of the workspace's organization (404 naming the user otherwise); an existing member is 409. Answers 201 with Location naming the membership. ${ROLES_NOTE}`,
        requestExample: { user_id: EXAMPLE_IDS.user, role: 'viewer' },
        successStatus: 201,
        errors: [403, 404, 409],
      }),
    )
    .input(s.addWorkspaceMemberInput)
    .output(s.workspaceMemberSchema)
    .mutation(async ({ ctx, input: { workspace_id, ...member } }) => {
      const added = await inTransaction(ctx, (tx) => members.addWorkspaceMember(tx, authorOf(ctx), workspace_id, member));
      ctx.setHeader('Location', `/api/v1/workspaces/${workspace_id}/members/${added.user_id}`);
      return added;
    }),

  get: authedProcedure
    .meta(
      rest('GET', '/workspaces/{workspace_id}/members/{user_id}', 'getWorkspaceMember', {
        tag,
        summary: 'One explicit member of the workspace',
        description: 'Its role and since when; 404 when the user is not an explicit member (or the caller has no access to the workspace).',
        errors: [404],
      }),
    )
    .input(s.workspaceMemberIdInput)
    .output(s.workspaceMemberSchema)
    .query(({ ctx, input }) => members.getWorkspaceMember(ctx.db, ctx.actor.id, input.workspace_id, input.user_id)),

  update: authedProcedure
    .meta(
      rest('PUT', '/workspaces/{workspace_id}/members/{user_id}', 'updateWorkspaceMember', {
        tag,
        summary: "Change a workspace member's role (workspace admin)",
        description: `The same role again changes nothing. A user who is not an explicit member is 404. ${ROLES_NOTE}`,
        requestExample: { role: 'member' },
        errors: [403, 404],
      }),
    )
    .input(s.updateWorkspaceMemberInput)
    .output(s.workspaceMemberSchema)
    .mutation(({ ctx, input }) =>
      inTransaction(ctx, (tx) => members.updateWorkspaceMemberRole(tx, authorOf(ctx), input.workspace_id, input.user_id, input.role)),
    ),

  remove: authedProcedure
    .meta(
      rest('DELETE', '/workspaces/{workspace_id}/members/{user_id}', 'removeWorkspaceMember', {
        tag,
        summary: 'Remove a workspace member (workspace admin), or leave (the member itself)',
        description: `A workspace admin removes anyone's explicit membership; any member may remove its own. Access the user holds otherwise (organization role, the workspace's visibility) stays. A user who is not an explicit member is 404.`,
        successStatus: 204,
        errors: [403, 404],
      }),
    )
    .input(s.workspaceMemberIdInput)
    .output(z.void())
    .mutation(({ ctx, input }) =>
      inTransaction(ctx, (tx) => members.removeWorkspaceMember(tx, authorOf(ctx), input.workspace_id, input.user_id)),
    ),
});

/** `GET /workspaces/{workspace_id}/access` (tRPC: `workspaces.access`). */
export const accessProcedure = authedProcedure
  .meta(
    rest('GET', '/workspaces/{workspace_id}/access', 'getWorkspaceAccess', {
      tag,
      summary: 'Why a user can see the workspace: their effective role and its source',
      description: `For the caller, or with \`user_id\` (workspace admin) for anyone in the organization or among the workspace's explicit members: \`role\` is the effective role (\`null\`: no access) and \`source\` the reason it holds — \`organization_role\` (an owner or admin of the organization), \`workspace_member\` (an explicit membership) or \`organization_visibility\` (a member of the organization, the workspace being visible to it: its \`default_role\`); the first of these when two give the same role. A user who is neither in the organization nor an explicit member is 404. ${ROLES_NOTE}`,
      errors: [403, 404],
    }),
  )
  .input(s.workspaceAccessInput)
  .output(s.workspaceAccessSchema)
  .query(({ ctx, input }) => members.getWorkspaceAccess(ctx.db, ctx.actor.id, input.workspace_id, input.user_id));
