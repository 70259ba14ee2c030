import { z } from 'zod';
import { emailString, safeString } from '../../lib/input';
import {
  invitationIdParam,
  organizationIdParam,
  pageOf,
  pageQuery,
  responseEmail,
  responseText,
  timestamp,
  workspaceIdParam,
} from '../../lib/api-schemas';
import { INVITATION_KINDS, INVITATION_STATUSES, ROLES, WORKSPACE_ROLES } from '../../db/schema';

export const invitationSchema = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    workspace_id: z.uuid().nullable().meta({ description: 'null for an invitation to the organization' }),
    email: responseEmail(),
    role: z.enum([...new Set([...ROLES, ...WORKSPACE_ROLES])] as ['owner', 'admin', 'member', 'viewer']).meta({
      description:
        'an organization role (owner, admin, member) for an organization invitation; a workspace role (admin, member, viewer) for a workspace invitation',
    }),
    kind: z.enum(INVITATION_KINDS).meta({ description: 'guest: a workspace invitation to someone outside the organization' }),
    status: z.enum(INVITATION_STATUSES).meta({ description: '`expired` once `expires_at` has passed' }),
    invited_by: z.uuid().nullable().meta({ description: "the inviter's user id; null once that account is deleted" }),
    expires_at: timestamp,
    created_at: timestamp,
    accepted_at: timestamp.nullable(),
    accepted_user_id: z.uuid().nullable(),
  })
  .meta({ id: 'Invitation' });
export type Invitation = z.output<typeof invitationSchema>;

/** 256 random bits as base64url: 43 characters. */
const TOKEN_LENGTH = 43;
export const invitationToken = z.string().meta({
  description: 'The invitation token: shown once, in this answer; the service keeps only its hash',
  minLength: TOKEN_LENGTH,
  maxLength: TOKEN_LENGTH,
  pattern: '^[A-Za-z0-9_-]{43}$',
});

export const invitationWithTokenSchema = z
  .object({ invitation: invitationSchema, token: invitationToken })
  .meta({ id: 'InvitationWithToken' });
export type InvitationWithToken = z.output<typeof invitationWithTokenSchema>;

/** A token as callers send it: any string up to a bound (a malformed one is as unknown as a wrong one: 404). */
export const tokenInput = z
  .strictObject({ token: safeString(512).meta({ description: 'the token from the invitation (create or resend answer)' }) })
  .meta({ id: 'InvitationTokenRequest' });

export const createOrganizationInvitationInput = z
  .strictObject({ org_id: organizationIdParam, email: emailString, role: z.enum(ROLES) })
  .meta({ id: 'CreateOrganizationInvitationRequest' });
export const createWorkspaceInvitationInput = z
  .strictObject({ workspace_id: workspaceIdParam, email: emailString, role: z.enum(WORKSPACE_ROLES) })
  .meta({ id: 'CreateWorkspaceInvitationRequest' });

const statusFilter = { status: z.enum(INVITATION_STATUSES).optional().meta({ description: 'only the invitations in this status' }) };
export const listOrganizationInvitationsInput = z.strictObject({ org_id: organizationIdParam, ...statusFilter, ...pageQuery });
export const listWorkspaceInvitationsInput = z.strictObject({ workspace_id: workspaceIdParam, ...statusFilter, ...pageQuery });
export const invitationPage = pageOf(invitationSchema, 'InvitationPage');
export type InvitationPage = z.output<typeof invitationPage>;

export const invitationIdInput = z.strictObject({ invitation_id: invitationIdParam });

export const invitationPreviewSchema = z
  .object({
    organization_name: responseText(100),
    workspace_name: responseText(100).nullable(),
    role: invitationSchema.shape.role,
    expires_at: timestamp,
    status: z.enum(INVITATION_STATUSES),
  })
  .meta({ id: 'InvitationPreview' });
export type InvitationPreview = z.output<typeof invitationPreviewSchema>;

export const membershipSchema = z
  .object({
    organization_id: z.uuid(),
    workspace_id: z.uuid().nullable().meta({ description: 'null for a membership of the organization' }),
    user_id: z.uuid(),
    role: invitationSchema.shape.role,
    guest: z.boolean().meta({ description: 'true: a workspace membership of someone outside the organization' }),
  })
  .meta({ id: 'InvitationMembership' });
export type InvitationMembership = z.output<typeof membershipSchema>;

export const acceptedInvitationSchema = z
  .object({ invitation: invitationSchema, membership: membershipSchema })
  .meta({ id: 'AcceptedInvitation' });
export type AcceptedInvitation = z.output<typeof acceptedInvitationSchema>;
export const declinedInvitationSchema = z.object({ invitation: invitationSchema }).meta({ id: 'DeclinedInvitation' });
