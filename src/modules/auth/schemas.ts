import { z } from 'zod';
import { emailString, nameString, safeString } from '../../lib/input';
import { organizationWithRoleSchema, roleSchema, userSchema, workspaceSchema } from '../../lib/api-schemas';

export const signupInput = z
  .strictObject({
    email: emailString,
    password: safeString(200, 8),
    name: nameString(100),
  })
  .meta({ id: 'SignupRequest' });

export const loginInput = z
  .strictObject({
    email: emailString,
    password: safeString(200),
  })
  .meta({ id: 'LoginRequest' });

const tokenFields = {
  access_token: z.string(),
  token_type: z.literal('Bearer'),
  expires_in: z.number().int().meta({ description: 'seconds' }),
};

export const loginOutput = z.object({ ...tokenFields, user: userSchema }).meta({ id: 'LoginResponse' });

export const signupOutput = z
  .object({ ...tokenFields, user: userSchema, organization: organizationWithRoleSchema, workspace: workspaceSchema })
  .meta({ id: 'SignupResponse' });

export const meOutput = z
  .object({
    user: userSchema,
    memberships: z.array(z.object({ organization_id: z.uuid(), role: roleSchema })),
  })
  .meta({ id: 'Me' });
