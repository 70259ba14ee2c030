/**
 * The settings document: one shape at three layers (system defaults, organization,
 * workspace overrides). Layers are partial documents; writes are partial documents
 * where `null` removes a key.
 * @module
 */
import { z } from 'zod';
import type { SettingsLayer } from '../../db/schema/settings-layer';
import { responseText } from '../../lib/api-schemas';
import { checkedRecord, MAX_INT, safeString } from '../../lib/input';

export type { ConfigValue, SettingsLayer } from '../../db/schema/settings-layer';

const KEY_PATTERN = /^[a-z][a-z0-9_.-]{0,63}$/;
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** Whether `key` may name a flag, an integration or a config key. */
export const isSettingsKey = (key: string) => KEY_PATTERN.test(key) && !FORBIDDEN_KEYS.has(key);
const settingsKey = z
  .string()
  .regex(KEY_PATTERN, 'keys must match ^[a-z][a-z0-9_.-]{0,63}$')
  .refine((k) => !FORBIDDEN_KEYS.has(k), 'this key is reserved')
  .meta({ maxLength: 64, not: { enum: [...FORBIDDEN_KEYS] } });
/** A key of a resolved document, as stored (documentation only: answers are not re-checked). */
const storedKey = () => z.string().meta({ maxLength: 64, pattern: KEY_PATTERN.source });

/** Counts per map, and the serialized size of one stored layer (so one request cannot store a megabyte of settings). */
export const LIMITS = { features: 100, integrations: 50, config: 50, layerBytes: 64 * 1024 } as const;

const ROLE_VALUES = ['admin', 'member', 'viewer'] as const;
export const PERMISSION_KEYS = ['default_role', 'allow_guests', 'allow_member_invites', 'visibility'] as const;
const VISIBILITY_VALUES = ['private', 'organization'] as const;

const configValue = z.union([
  safeString(500),
  z
    .number()
    .finite()
    .min(-MAX_INT - 1)
    .max(MAX_INT),
  z.boolean(),
]);

const maxKeys = (max: number) => (value: Record<string, unknown>) => Object.keys(value).length <= max;

/** Builds the write (nullable) or stored (non-null) variant of the document schema. */
function documentSchema<N extends boolean>(nullable: N) {
  const leaf = <T extends z.ZodType>(schema: T) => (nullable ? schema.nullable() : schema).optional();
  const map = <T extends z.ZodType>(value: T, max: number, what: string) =>
    checkedRecord(
      z
        .record(settingsKey, nullable ? value.nullable() : value)
        .refine(maxKeys(max), `at most ${max} ${what}`)
        .meta({ maxProperties: max }),
    );
  const integration = z.strictObject({
    enabled: leaf(z.boolean()),
    config: leaf(map(configValue, LIMITS.config, 'config keys')),
  });
  return z.strictObject({
    permissions: leaf(
      z.strictObject({
        default_role: leaf(z.enum(ROLE_VALUES)),
        allow_guests: leaf(z.boolean()),
        allow_member_invites: leaf(z.boolean()),
        visibility: leaf(z.enum(VISIBILITY_VALUES)),
      }),
    ),
    features: leaf(map(z.boolean(), LIMITS.features, 'feature flags')),
    integrations: leaf(map(integration, LIMITS.integrations, 'integrations')),
  });
}

/** A partial settings document as written by a client: `null` at any key removes it from the layer. */
export const settingsPatchSchema = documentSchema(true).meta({ id: 'SettingsPatch' });
/** A stored layer (organization settings or workspace overrides): partial, never null. */
// documentSchema's shared builder types every leaf as nullable-or-not; its non-null variant is the stored layer.
export const settingsLayerSchema = documentSchema(false).meta({ id: 'SettingsLayer' }) as unknown as z.ZodType<SettingsLayer>;

export type SettingsPatch = z.infer<typeof settingsPatchSchema>;

export const effectiveSettingsSchema = z
  .strictObject({
    permissions: z.strictObject({
      default_role: z.enum(ROLE_VALUES),
      allow_guests: z.boolean(),
      allow_member_invites: z.boolean(),
      visibility: z.enum(VISIBILITY_VALUES),
    }),
    features: z.record(storedKey(), z.boolean()),
    integrations: z.record(
      storedKey(),
      z.strictObject({
        enabled: z.boolean(),
        config: z.record(storedKey(), z.union([responseText(500), z.number(), z.boolean()])),
      }),
    ),
  })
  .meta({ id: 'EffectiveSettings' });
export type EffectiveSettings = z.infer<typeof effectiveSettingsSchema>;

const source = z.enum(['default', 'organization', 'workspace']);
export type SettingsSource = z.infer<typeof source>;
export const settingsSourcesSchema = z
  .strictObject({
    permissions: z.strictObject({
      default_role: source,
      allow_guests: source,
      allow_member_invites: source,
      visibility: source,
    }),
    features: z.record(storedKey(), source),
    integrations: z.record(storedKey(), z.strictObject({ enabled: source, config: z.record(storedKey(), source) })),
  })
  .meta({ id: 'SettingsSources' });
export type SettingsSources = z.infer<typeof settingsSourcesSchema>;

/**
 * Whether an integration's change holds a `null` anywhere (a removal). Such a change never
 * declares the integration by itself: the merge (resolve.ts) and the lock check (locks.ts)
 * both read `{"jira": {}}` as a declaration and `{"jira": {"enabled": null}}` as none.
 */
export const removesAnything = (change: { enabled?: boolean | null; config?: Readonly<Record<string, unknown>> | null }) =>
  change.enabled === null || change.config === null || Object.values(change.config ?? {}).some((value) => value === null);

export const SYSTEM_DEFAULTS: EffectiveSettings = Object.freeze({
  permissions: Object.freeze({
    default_role: 'member',
    allow_guests: false,
    allow_member_invites: true,
    visibility: 'organization',
  }),
  features: Object.freeze({}),
  integrations: Object.freeze({}),
});
