import { z } from 'zod';
import { workspaceRoleSchema } from '../workspaces/schemas';
import { emailString, nameString, safeString } from '../../lib/input';
import { responseEmail, responseInt, responseUserName, roleSchema, timestamp } from '../../lib/api-schemas';
import { organizationWithRoleSchema } from '../organizations/schemas';
import { workspaceSchema } from '../workspaces/schemas';

export const userSchema = z
  .object({ id: z.uuid(), email: responseEmail(), name: responseUserName(), created_at: timestamp })
  .meta({ id: 'User' });
export type User = z.output<typeof userSchema>;

export const signupInput = z
  .strictObject({
    email: emailString,
    password: safeString(200, 8),
    name: nameString(100),
  })
  .meta({ id: 'SignupRequest' });
export type SignupInput = z.output<typeof signupInput>;

export const loginInput = z
  .strictObject({
    email: emailString,
    password: safeString(200),
  })
  .meta({ id: 'LoginRequest' });
export type LoginInput = z.output<typeof loginInput>;

const tokenFields = {
  access_token: z
    .string()
    .meta({ maxLength: 4096, pattern: '^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$', description: 'a JWS (JWT)' }),
  token_type: z.literal('Bearer'),
  // ACCESS_TOKEN_TTL's range.
  expires_in: responseInt(60, 60 * 60 * 24 * 30).meta({ description: 'seconds' }),
};

export const loginOutput = z.object({ ...tokenFields, user: userSchema }).meta({ id: 'LoginResponse' });
export type LoginOutput = z.output<typeof loginOutput>;

export const signupOutput = z
  .object({ ...tokenFields, user: userSchema, organization: organizationWithRoleSchema, workspace: workspaceSchema })
  .meta({ id: 'SignupResponse' });
export type SignupOutput = z.output<typeof signupOutput>;

export const meOutput = z
  .object({
    user: userSchema,
    // Documented bound only: nothing yet caps how many organizations an account joins.
    memberships: z.array(z.object({ organization_id: z.uuid(), role: roleSchema })).meta({ maxItems: 1000 }),
    // Explicit memberships only (README, Workspace access); a documented bound like the one above.
    workspace_memberships: z
      .array(z.object({ workspace_id: z.uuid(), organization_id: z.uuid(), role: workspaceRoleSchema }))
      .meta({ maxItems: 1000 }),
  })
  .meta({ id: 'Me' });
export type MeOutput = z.output<typeof meOutput>;
