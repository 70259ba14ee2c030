import { z } from 'zod';
import { authedProcedure, previewLimitedProcedure, router } from '../../trpc/init';
import { rest } from '../../trpc/meta';
import { authorOf, type AuthedContext } from '../../trpc/context';
import { inTransaction } from '../../trpc/transaction';
import type { InvitationWithToken } from './schemas';
import * as s from './schemas';
import * as service from './service';

const tag = 'invitations' as const;
const TOKEN_NOTE =
  'The token is in this answer only (the service keeps its SHA-256): deliver it to the invitee, who accepts it logged in with the invited email. It expires after INVITATION_TTL_HOURS.';
const LIMITS_NOTE =
  'One pending invitation per target and email (409 naming it); an email already a member is 409; at most INVITATIONS_PENDING_MAX pending per organization (409 `QUOTA_EXCEEDED`); creates and resends count against INVITATIONS_PER_DAY per organization (429 with Retry-After). The answer is the same whether or not an account has the email. No Idempotency-Key: a retried create is 409 naming the pending invitation; resend it for a new token.';
const BY_TOKEN_ERRORS =
  "An unknown, malformed, used, revoked or declined token is 404 (one message); an expired one 410 `GONE` (over tRPC: `data.code` GONE, `data.httpStatus` 410); a caller whose account email is not the invitation's 403.";
const MANAGERS =
  "The inviter or an admin of the target (the organization for an organization invitation, the workspace for a workspace's); someone else who can see the target gets 403, anyone else 404.";
const TOKEN_EXAMPLE = { token: 'q3Jt9wWm0b8L1cXv5rZ2yA4nK7sD6fH0gE1uP9oI3kM' };

const created = (ctx: AuthedContext, answer: InvitationWithToken) => {
  ctx.setHeader('Location', `/api/v1/invitations/${answer.invitation.id}`);
  return answer;
};

/** `organizations.invitations.*`: an organization's invitations. */
export const organizationInvitationsRouter = router({
  create: authedProcedure
    .meta(
      rest('POST', '/organizations/{org_id}/invitations', 'createOrganizationInvitation', {
        tag,
        summary:
          'Invite an email to the organization (admin; an owner for an owner; a member with role member where allow_member_invites holds)',
        description: `On accept, the invitee becomes a member with \`role\`. ${TOKEN_NOTE} ${LIMITS_NOTE}`,
        requestExample: { email: 'grace@example.com', role: 'member' },
        successStatus: 201,
        errors: [403, 404, 409],
      }),
    )
    .input(s.createOrganizationInvitationInput)
    .output(s.invitationWithTokenSchema)
    .mutation(async ({ ctx, input: { org_id, ...invitation } }) =>
      created(ctx, await inTransaction(ctx, (tx) => service.inviteToOrganization(tx, authorOf(ctx), ctx.deps, org_id, invitation))),
    ),

  list: authedProcedure
    .meta(
      rest('GET', '/organizations/{org_id}/invitations', 'listOrganizationInvitations', {
        tag,
        summary: "The organization's invitations and its workspaces' (admin), newest first",
        description: 'Keyset-paginated like the other lists; `status` filters (`expired`: past `expires_at`). Tokens are never shown.',
        errors: [403, 404],
      }),
    )
    .input(s.listOrganizationInvitationsInput)
    .output(s.invitationPage)
    .query(({ ctx, input: { org_id, ...page } }) =>
      service.listOrganizationInvitations(ctx.db, ctx.deps.cursors, ctx.actor.id, ctx.deps, org_id, page),
    ),
});

/** `workspaces.invitations.*`: a workspace's invitations. */
export const workspaceInvitationsRouter = router({
  create: authedProcedure
    .meta(
      rest('POST', '/workspaces/{workspace_id}/invitations', 'createWorkspaceInvitation', {
        tag,
        summary: 'Invite an email to the workspace (workspace admin; a workspace member where allow_member_invites holds)',
        description: `On accept, the invitee becomes an explicit member with \`role\` — a guest when not a member of the organization (the workspace's effective \`allow_guests\` must be true, role at most \`member\`). A workspace member invites with \`member\` or \`viewer\`; a viewer gets 403; an archived workspace 409. ${TOKEN_NOTE} ${LIMITS_NOTE}`,
        requestExample: { email: 'grace@example.com', role: 'viewer' },
        successStatus: 201,
        errors: [403, 404, 409],
      }),
    )
    .input(s.createWorkspaceInvitationInput)
    .output(s.invitationWithTokenSchema)
    .mutation(async ({ ctx, input: { workspace_id, ...invitation } }) =>
      created(ctx, await inTransaction(ctx, (tx) => service.inviteToWorkspace(tx, authorOf(ctx), ctx.deps, workspace_id, invitation))),
    ),

  list: authedProcedure
    .meta(
      rest('GET', '/workspaces/{workspace_id}/invitations', 'listWorkspaceInvitations', {
        tag,
        summary: "The workspace's invitations (workspace admin), newest first",
        description: 'Keyset-paginated like the other lists; `status` filters (`expired`: past `expires_at`). Tokens are never shown.',
        errors: [403, 404],
      }),
    )
    .input(s.listWorkspaceInvitationsInput)
    .output(s.invitationPage)
    .query(({ ctx, input: { workspace_id, ...page } }) =>
      service.listWorkspaceInvitations(ctx.db, ctx.deps.cursors, ctx.actor.id, ctx.deps, workspace_id, page),
    ),
});

/** `invitations.*`: one invitation by id, and the invitee's side by token. */
export const invitationsRouter = router({
  get: authedProcedure
    .meta(
      rest('GET', '/invitations/{invitation_id}', 'getInvitation', {
        tag,
        summary: 'One invitation (its inviter, or an admin of its target)',
        description: `${MANAGERS} The token is never shown.`,
        errors: [403, 404],
      }),
    )
    .input(s.invitationIdInput)
    .output(s.invitationSchema)
    .query(({ ctx, input }) => service.getInvitation(ctx.db, ctx.actor.id, ctx.deps, input.invitation_id)),

  resend: authedProcedure
    .meta(
      rest('POST', '/invitations/{invitation_id}/resend', 'resendInvitation', {
        tag,
        summary: 'A new token and expiry for a pending or expired invitation; the old token stops working',
        description: `${MANAGERS} An accepted, declined or revoked invitation is 409. Counts against INVITATIONS_PER_DAY (429). ${TOKEN_NOTE}`,
        errors: [403, 404, 409],
      }),
    )
    .input(s.invitationIdInput)
    .output(s.invitationWithTokenSchema)
    .mutation(({ ctx, input }) => inTransaction(ctx, (tx) => service.resendInvitation(tx, authorOf(ctx), ctx.deps, input.invitation_id))),

  revoke: authedProcedure
    .meta(
      rest('DELETE', '/invitations/{invitation_id}', 'revokeInvitation', {
        tag,
        summary: 'Revoke a pending or expired invitation: its token stops working',
        description: `${MANAGERS} An accepted, declined or revoked invitation is 409.`,
        successStatus: 204,
        errors: [403, 404, 409],
      }),
    )
    .input(s.invitationIdInput)
    .output(z.void())
    .mutation(({ ctx, input }) => inTransaction(ctx, (tx) => service.revokeInvitation(tx, authorOf(ctx), ctx.deps, input.invitation_id))),

  preview: previewLimitedProcedure
    .meta(
      rest('POST', '/invitations/preview', 'previewInvitation', {
        tag,
        summary: 'What an invitation token invites to, before signing up or logging in (no authentication)',
        description:
          'The organization, the workspace (null for an organization invitation), the role, the expiry and the status — nothing about the inviter or the other members. The token travels in the body, not the query string, so it stays out of access logs. An unknown or malformed token is 404. Limited per client address like login (AUTH_RATE_LIMIT_PER_MINUTE, a budget of its own): 429 past it.',
        requestExample: TOKEN_EXAMPLE,
        protect: false,
        errors: [404],
      }),
    )
    .input(s.tokenInput)
    .output(s.invitationPreviewSchema)
    .mutation(({ ctx, input }) => service.previewInvitation(ctx.db, ctx.deps, input.token)),

  accept: authedProcedure
    .meta(
      rest('POST', '/invitations/accept', 'acceptInvitation', {
        tag,
        summary: 'Accept an invitation: the membership it names is made (the invitee, logged in with its email)',
        description: `${BY_TOKEN_ERRORS} The rules are checked again: the inviter may still invite that role to that target, \`allow_guests\` / \`allow_member_invites\` still allow it, the workspace is not archived — otherwise 409 naming the rule, and the invitation stays pending. An accepter already a member is 409.`,
        requestExample: TOKEN_EXAMPLE,
        errors: [403, 404, 409, 410],
      }),
    )
    .input(s.tokenInput)
    .output(s.acceptedInvitationSchema)
    .mutation(({ ctx, input }) => inTransaction(ctx, (tx) => service.acceptInvitation(tx, authorOf(ctx), ctx.deps, input.token))),

  decline: authedProcedure
    .meta(
      rest('POST', '/invitations/decline', 'declineInvitation', {
        tag,
        summary: 'Decline an invitation (the invitee, logged in with its email): its token stops working',
        description: BY_TOKEN_ERRORS,
        requestExample: TOKEN_EXAMPLE,
        errors: [403, 404, 410],
      }),
    )
    .input(s.tokenInput)
    .output(s.declinedInvitationSchema)
    .mutation(({ ctx, input }) => inTransaction(ctx, (tx) => service.declineInvitation(tx, authorOf(ctx), ctx.deps, input.token))),
});
