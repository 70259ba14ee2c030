import { z } from 'zod';
import { emailString, nameString, safeString } from '../../lib/input';
import { roleSchema, timestamp } from '../../lib/api-schemas';
import { organizationWithRoleSchema } from '../organizations/schemas';
import { workspaceSchema } from '../workspaces/schemas';

export const userSchema = z.object({ id: z.uuid(), email: z.string(), name: z.string(), created_at: timestamp }).meta({ id: 'User' });
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
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int().meta({ description: 'seconds' }),
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
    memberships: z.array(z.object({ organization_id: z.uuid(), role: roleSchema })),
  })
  .meta({ id: 'Me' });
export type MeOutput = z.output<typeof meOutput>;
