import { z } from 'zod';
import { checkedRecord, expectedVersion, nameString, queryInt, safeString, slugString, uuidString } from '../../lib/input';
import { ERROR_STATUS } from '../../lib/errors';
import {
  organizationIdParam,
  pageOf,
  pageQuery,
  responseEmail,
  responseInt,
  responseSlug,
  responseText,
  responseUserName,
  responseVersion,
  timestamp,
  userIdParam,
  workspaceIdParam,
} from '../../lib/api-schemas';
import { WORKSPACE_ROLES } from '../../db/schema';
import { ACCESS_SOURCES } from './access';
import { effectiveSettingsSchema, settingsLayerSchema, settingsPatchSchema, settingsSourcesSchema } from '../settings/document';
import { MAX_LOCKS } from '../settings/locks';

const METADATA_KEY = /^[a-zA-Z0-9_.-]{1,40}$/;
export const METADATA_MAX_KEYS = 50;

export const workspaceSchema = z
  .object({
    id: z.uuid(),
    organization_id: z.uuid(),
    name: responseText(100),
    slug: responseSlug(),
    description: responseText(1000).nullable(),
    metadata: z
      .record(z.string().meta({ maxLength: 40, pattern: METADATA_KEY.source }), responseText(500))
      .meta({ maxProperties: METADATA_MAX_KEYS }),
    is_default: z.boolean(),
    cloned_from_id: z.uuid().nullable(),
    archived_at: timestamp.nullable().meta({ description: 'when it was archived (read-only, left out of lists); null while active' }),
    version: responseVersion(),
    created_at: timestamp,
    updated_at: timestamp,
  })
  .meta({ id: 'Workspace' });
/** A workspace as the API returns it. */
export type Workspace = z.output<typeof workspaceSchema>;

// `__proto__` matches the pattern but is refused (checkedRecord): the document says so.
const metadataKey = z
  .string()
  .regex(METADATA_KEY, 'metadata keys must match ^[a-zA-Z0-9_.-]{1,40}$')
  .meta({ maxLength: 40, not: { const: '__proto__' } });
const metadataValue = safeString(500);
const maxKeys = (value: Record<string, unknown>) => Object.keys(value).length <= METADATA_MAX_KEYS;

/** The caller's own string map, as given at creation. */
export const metadataSchema = checkedRecord(
  z
    .record(metadataKey, metadataValue)
    .refine(maxKeys, `at most ${METADATA_MAX_KEYS} metadata keys`)
    .meta({ maxProperties: METADATA_MAX_KEYS }),
);
/** A metadata change: merged key by key, `null` removes a key. */
export const metadataPatchSchema = checkedRecord(
  z
    .record(metadataKey, metadataValue.nullable())
    .refine(maxKeys, `at most ${METADATA_MAX_KEYS} metadata keys`)
    .meta({ maxProperties: METADATA_MAX_KEYS }),
);

const description = safeString(1000).nullable();
const workspaceId = { workspace_id: workspaceIdParam };

/** The fields of a new workspace, shared by create, the organization-scoped create and provisioning items. */
const newWorkspaceFields = {
  name: nameString(100),
  slug: slugString.optional(),
  description: description.optional(),
  metadata: metadataSchema.optional(),
  settings: settingsPatchSchema.optional(),
};

export const provisionItemSchema = z.strictObject(newWorkspaceFields).meta({ id: 'ProvisionItem' });
/** The fields of a new workspace (its organization is given beside them). */
export type NewWorkspace = z.output<typeof provisionItemSchema>;

export const createWorkspaceInput = z
  .strictObject({ organization_id: uuidString, ...newWorkspaceFields })
  .meta({ id: 'CreateWorkspaceRequest' });

export const createWorkspaceInOrganizationInput = z.strictObject({ org_id: organizationIdParam, ...newWorkspaceFields });

const listFilters = {
  // Query parameters: the meta before .optional(), where the generator reads it.
  q: safeString(100).meta({ description: 'case-insensitive substring of name or slug' }).optional(),
  sort: z.enum(['created_at', 'name']).default('created_at'),
  order: z.enum(['asc', 'desc']).default('asc'),
  archived: z
    .enum(['false', 'true', 'all'])
    .default('false')
    .meta({ description: 'false (default): active workspaces only; true: archived only; all: both' }),
  ...pageQuery,
};

export const listWorkspacesInput = z.strictObject({ organization_id: uuidString.optional(), ...listFilters });
export const listWorkspacesInOrganizationInput = z.strictObject({ org_id: organizationIdParam, ...listFilters });
export type ListWorkspacesInput = z.output<typeof listWorkspacesInput>;

export const workspacePage = pageOf(workspaceSchema, 'WorkspacePage');
export type WorkspacePage = z.output<typeof workspacePage>;

export const workspaceIdInput = z.strictObject(workspaceId);

export const updateWorkspaceInput = z
  .strictObject({
    ...workspaceId,
    name: nameString(100).optional(),
    slug: slugString.optional(),
    description: description.optional(),
    metadata: metadataPatchSchema.optional(),
    is_default: z.literal(true).optional().meta({ description: 'true moves the default flag here' }),
    expected_version: expectedVersion,
  })
  .refine(
    (v) => ['name', 'slug', 'description', 'metadata', 'is_default'].some((k) => v[k as keyof typeof v] !== undefined),
    'Give at least one of name, slug, description, metadata, is_default',
  );
/** A partial update: the fields given change, the rest stay. */
export type WorkspaceChanges = Omit<z.output<typeof updateWorkspaceInput>, 'workspace_id' | 'expected_version'>;

export const deleteWorkspaceInput = z.strictObject({
  ...workspaceId,
  expected_version: queryInt(1, 2 ** 31 - 1)
    .meta({ description: 'alternative to If-Match' })
    .optional(),
});

/** Archive or restore, conditional like the other writes. */
export const archiveOrRestoreInput = z.strictObject({ ...workspaceId, expected_version: expectedVersion });
export type ArchiveOrRestoreInput = z.output<typeof archiveOrRestoreInput>;

export const cloneWorkspaceInput = z.strictObject({
  ...workspaceId,
  name: nameString(100),
  slug: slugString.optional(),
  description: description.optional(),
  organization_id: uuidString.optional().meta({ description: "target organization (default: the source's)" }),
});
export type CloneFields = Omit<z.output<typeof cloneWorkspaceInput>, 'workspace_id'>;

export const workspaceSettingsOutput = z
  .object({
    workspace_id: z.uuid(),
    version: responseVersion(),
    effective: effectiveSettingsSchema,
    overrides: settingsLayerSchema,
    sources: settingsSourcesSchema,
    locked: z
      .array(z.string().meta({ maxLength: 200 }))
      .meta({ maxItems: MAX_LOCKS, description: "the organization's lock paths: there its value (or the default) holds" }),
    shadowed: z
      .array(z.string().meta({ maxLength: 200 }))
      .meta({ maxItems: 10000, description: 'paths of these overrides that a lock hides; they apply again once the lock goes' }),
  })
  .meta({ id: 'WorkspaceSettings' });
export type WorkspaceSettings = z.output<typeof workspaceSettingsOutput>;

export const updateWorkspaceSettingsInput = settingsPatchSchema.extend({ ...workspaceId, expected_version: expectedVersion });

export const provisionInput = z
  .strictObject({
    organization_id: uuidString,
    workspaces: z.array(provisionItemSchema).min(1).max(1000),
    template_workspace_id: uuidString.optional(),
    mode: z.enum(['atomic', 'partial']).default('atomic'),
  })
  .meta({ id: 'ProvisionRequest' });
export type ProvisionInput = z.output<typeof provisionInput>;

export const provisionOutput = z
  .object({
    created: z.array(workspaceSchema).meta({ maxItems: 1000 }),
    failed: z
      .array(
        z.object({
          index: responseInt(0, 999),
          code: z.string().meta({ enum: Object.keys(ERROR_STATUS) }),
          message: responseText(1024),
        }),
      )
      .meta({ maxItems: 1000 }),
  })
  .meta({ id: 'ProvisionResult' });
export type ProvisionResult = z.output<typeof provisionOutput>;

// ---- Members and access (README, Workspace access) ----

export const workspaceRoleSchema = z.enum(WORKSPACE_ROLES);

export const workspaceMemberSchema = z
  .object({
    user_id: z.uuid(),
    email: responseEmail(),
    name: responseUserName(),
    role: workspaceRoleSchema,
    guest: z.boolean().meta({ description: 'true: not a member of the organization (README, Invitations and guests)' }),
    created_at: timestamp,
  })
  .meta({ id: 'WorkspaceMember' });
export type WorkspaceMember = z.output<typeof workspaceMemberSchema>;

export const listWorkspaceMembersInput = z.strictObject({ ...workspaceId, ...pageQuery });
export const workspaceMemberPage = pageOf(workspaceMemberSchema, 'WorkspaceMemberPage');
export type WorkspaceMemberPage = z.output<typeof workspaceMemberPage>;

export const addWorkspaceMemberInput = z.strictObject({ ...workspaceId, user_id: uuidString, role: workspaceRoleSchema.optional() });
export type NewWorkspaceMember = Omit<z.output<typeof addWorkspaceMemberInput>, 'workspace_id'>;
export const workspaceMemberIdInput = z.strictObject({ ...workspaceId, user_id: userIdParam });
export const updateWorkspaceMemberInput = z.strictObject({ ...workspaceId, user_id: userIdParam, role: workspaceRoleSchema });

export const workspaceAccessInput = z.strictObject({ ...workspaceId, user_id: uuidString.optional() });
export const workspaceAccessSchema = z
  .object({
    workspace_id: z.uuid(),
    user_id: z.uuid(),
    role: workspaceRoleSchema.nullable(),
    source: z.enum(ACCESS_SOURCES).nullable(),
    guest: z
      .boolean()
      .meta({ description: "true: an explicit member outside the workspace's organization (access holds while allow_guests is true)" }),
  })
  .meta({ id: 'WorkspaceAccess' });
export type WorkspaceAccess = z.output<typeof workspaceAccessSchema>;
