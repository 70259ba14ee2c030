import { z } from 'zod';
import { emailString, nameString, slugString, uuidString } from '../../lib/input';
import { organizationSchema, organizationWithRoleSchema, pageOf, pageQuery, roleSchema, timestamp } from '../../lib/api-schemas';
import { effectiveSettingsSchema, settingsLayerSchema, settingsPatchSchema } from '../settings/document';

export const orgIdParam = { org_id: uuidString };

export const listOrganizationsInput = z.strictObject({ ...pageQuery });
export const organizationPage = pageOf(organizationWithRoleSchema, 'OrganizationPage');

export const createOrganizationInput = z
  .strictObject({ name: nameString(100), slug: slugString.optional() })
  .meta({ id: 'CreateOrganizationRequest' });

export const organizationIdInput = z.strictObject(orgIdParam);

export const updateOrganizationInput = z
  .strictObject({ ...orgIdParam, name: nameString(100).optional(), slug: slugString.optional() })
  .refine((v) => v.name !== undefined || v.slug !== undefined, 'Give at least one of name, slug');

export { organizationSchema, organizationWithRoleSchema };

export const organizationSettingsOutput = z
  .object({ organization_id: z.uuid(), settings: settingsLayerSchema, effective: effectiveSettingsSchema })
  .meta({ id: 'OrganizationSettings' });

export const updateOrganizationSettingsInput = settingsPatchSchema.extend(orgIdParam);

export const memberSchema = z
  .object({ user_id: z.uuid(), email: z.string(), name: z.string(), role: roleSchema, created_at: timestamp })
  .meta({ id: 'Member' });

export const listMembersInput = z.strictObject({ ...orgIdParam, ...pageQuery });
export const memberPage = pageOf(memberSchema, 'MemberPage');

export const addMemberInput = z.strictObject({ ...orgIdParam, email: emailString, role: roleSchema });
export const memberIdInput = z.strictObject({ ...orgIdParam, user_id: uuidString });
export const updateMemberInput = z.strictObject({ ...orgIdParam, user_id: uuidString, role: roleSchema });
