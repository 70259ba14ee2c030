import { z } from 'zod';
import { nameString, slugString } from '../../lib/input';
import {
  organizationIdParam,
  pageOf,
  pageQuery,
  responseEmail,
  responseSlug,
  responseText,
  responseUserName,
  roleSchema,
  timestamp,
  userIdParam,
} from '../../lib/api-schemas';
import { effectiveSettingsSchema, settingsLayerSchema, settingsPatchSchema } from '../settings/document';
import { locksInput, MAX_LOCKS } from '../settings/locks';

export const orgIdParam = { org_id: organizationIdParam };

export const organizationSchema = z
  .object({ id: z.uuid(), name: responseText(100), slug: responseSlug(), created_at: timestamp, updated_at: timestamp })
  .meta({ id: 'Organization' });
export type Organization = z.output<typeof organizationSchema>;

export const organizationWithRoleSchema = organizationSchema.extend({ role: roleSchema }).meta({ id: 'OrganizationWithRole' });
export type OrganizationWithRole = z.output<typeof organizationWithRoleSchema>;

export const listOrganizationsInput = z.strictObject({ ...pageQuery });
export const organizationPage = pageOf(organizationWithRoleSchema, 'OrganizationPage');
export type OrganizationPage = z.output<typeof organizationPage>;

export const createOrganizationInput = z
  .strictObject({ name: nameString(100), slug: slugString.optional() })
  .meta({ id: 'CreateOrganizationRequest' });
export type NewOrganization = z.output<typeof createOrganizationInput>;

export const organizationIdInput = z.strictObject(orgIdParam);

export const updateOrganizationInput = z
  .strictObject({ ...orgIdParam, name: nameString(100).optional(), slug: slugString.optional() })
  .refine((v) => v.name !== undefined || v.slug !== undefined, 'Give at least one of name, slug');
export type OrganizationChanges = Omit<z.output<typeof updateOrganizationInput>, 'org_id'>;

export const organizationSettingsOutput = z
  .object({
    organization_id: z.uuid(),
    settings: settingsLayerSchema,
    effective: effectiveSettingsSchema,
    locks: z
      .array(z.string().meta({ maxLength: 200 }))
      .meta({ maxItems: MAX_LOCKS, description: 'paths every workspace takes from the organization, sorted' }),
  })
  .meta({ id: 'OrganizationSettings' });
export type OrganizationSettings = z.output<typeof organizationSettingsOutput>;

export const updateOrganizationSettingsInput = settingsPatchSchema.extend({ ...orgIdParam, locks: locksInput });
export type OrganizationSettingsChanges = Omit<z.output<typeof updateOrganizationSettingsInput>, 'org_id'>;

export const memberSchema = z
  .object({ user_id: z.uuid(), email: responseEmail(), name: responseUserName(), role: roleSchema, created_at: timestamp })
  .meta({ id: 'Member' });
export type Member = z.output<typeof memberSchema>;

export const listMembersInput = z.strictObject({ ...orgIdParam, ...pageQuery });
export const memberPage = pageOf(memberSchema, 'MemberPage');
export type MemberPage = z.output<typeof memberPage>;

export const memberIdInput = z.strictObject({ ...orgIdParam, user_id: userIdParam });
export const updateMemberInput = z.strictObject({ ...orgIdParam, user_id: userIdParam, role: roleSchema });
