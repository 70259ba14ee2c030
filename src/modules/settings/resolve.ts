import { AppError } from '../../lib/errors';
import {
  LIMITS,
  SYSTEM_DEFAULTS,
  type EffectiveSettings,
  type ConfigValue,
  type SettingsLayer,
  type SettingsPatch,
  type SettingsSources,
  removesAnything,
} from './document';
import { joinPath, LockIndex, settingsLeaves, type SettingsPath } from './locks';

type Patch<T> = { readonly [key: string]: T | null | undefined } | null | undefined;
type IntegrationLayer = NonNullable<SettingsLayer['integrations']>[string];
type IntegrationPatch = { enabled?: boolean | null; config?: Patch<ConfigValue> };

/**
 * Deep-merges a partial write into a stored layer: objects merge key by key, scalars
 * replace, `null` removes the key (so the value is inherited again). Removing what is not
 * there changes nothing, and an object emptied by removals disappears. An integration named
 * with no removal stays even when empty (`{"jira": {}}`), since it declares the integration.
 * Returns a new layer; the inputs are not modified. Throws 400 when the result would
 * exceed the document's limits.
 */
export function applySettingsPatch(layer: SettingsLayer, patch: SettingsPatch): SettingsLayer {
  const next: SettingsLayer = {};
  const permissions = mergeMap<unknown>(layer.permissions, patch.permissions);
  if (permissions) next.permissions = permissions;
  const features = mergeMap(layer.features, patch.features);
  if (features) next.features = features;
  const integrations = mergeIntegrations(layer.integrations, patch.integrations);
  if (integrations) next.integrations = integrations;
  assertWithinLimits(next);
  return next;
}

function mergeMap<T>(base: Readonly<Record<string, T>> | undefined, patch: Patch<T>): Record<string, T> | undefined {
  if (patch === null) return undefined;
  const out: Record<string, T> = { ...base };
  for (const [key, value] of Object.entries(patch ?? {})) {
    if (value === null) delete out[key];
    else if (value !== undefined) out[key] = value;
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function mergeIntegrations(
  base: Record<string, IntegrationLayer> | undefined,
  patch: Patch<IntegrationPatch>,
): Record<string, IntegrationLayer> | undefined {
  if (patch === null) return undefined;
  const out: Record<string, IntegrationLayer> = { ...base };
  for (const [name, change] of Object.entries(patch ?? {})) {
    if (change === null) {
      delete out[name];
      continue;
    }
    if (change === undefined) continue;
    const current = out[name];
    const entry: IntegrationLayer = {};
    const enabled = change.enabled === undefined ? current?.enabled : change.enabled;
    if (enabled !== null && enabled !== undefined) entry.enabled = enabled;
    const config = mergeMap(current?.config, change.config);
    if (config) entry.config = config;
    if (Object.keys(entry).length > 0 || !removesAnything(change)) out[name] = entry;
    // Emptied by removals (or only removing what was never there): nothing to declare.
    else delete out[name];
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function assertWithinLimits(layer: SettingsLayer): void {
  const tooMany = (what: string, count: number, max: number) => {
    if (count > max) throw new AppError('BAD_REQUEST', `Settings may hold at most ${max} ${what}`);
  };
  tooMany('feature flags', Object.keys(layer.features ?? {}).length, LIMITS.features);
  tooMany('integrations', Object.keys(layer.integrations ?? {}).length, LIMITS.integrations);
  for (const integration of Object.values(layer.integrations ?? {})) {
    tooMany('config keys per integration', Object.keys(integration.config ?? {}).length, LIMITS.config);
  }
  const bytes = Buffer.byteLength(JSON.stringify(layer));
  if (bytes > LIMITS.layerBytes) {
    throw new AppError('BAD_REQUEST', `Settings may be at most ${LIMITS.layerBytes} bytes as JSON (64 KiB); these would be ${bytes}`);
  }
}

export interface ResolvedSettings {
  effective: EffectiveSettings;
  sources: SettingsSources;
  /** The organization's lock paths. */
  locked: string[];
  /** The paths of the workspace's overrides that a lock hides (they apply again once it goes). */
  shadowed: string[];
}

type LayerName = 'organization' | 'workspace';

/**
 * Effective settings = system defaults, overlaid by the organization's layer, overlaid by
 * the workspace's overrides, except where the organization locks a path: there the
 * organization's value (or the default) holds, and the workspace's overrides under it are
 * reported as `shadowed`. `sources` names, leaf by leaf, the layer each value came from
 * (`organization` for every leaf under a lock). Resolved at read time, so an organization
 * change shows in every workspace at once.
 */
export function resolveEffectiveSettings(
  organization: SettingsLayer,
  workspace: SettingsLayer = {},
  locks: readonly string[] = [],
): ResolvedSettings {
  const effective: EffectiveSettings = {
    permissions: { ...SYSTEM_DEFAULTS.permissions },
    features: {},
    integrations: {},
  };
  const sources: SettingsSources = {
    permissions: { default_role: 'default', allow_guests: 'default', allow_member_invites: 'default', visibility: 'default' },
    features: {},
    integrations: {},
  };
  const lockIndex = new LockIndex(locks);
  const shadowed: string[] = [];
  const apply = (layer: SettingsLayer, layerName: LayerName) => {
    for (const { path, value } of settingsLeaves(layer)) {
      if (layerName === 'workspace' && lockIndex.over(path)) shadowed.push(joinPath(path));
      else setLeaf(effective, sources, path, value, layerName);
    }
  };
  apply(organization, 'organization');
  apply(workspace, 'workspace');
  if (lockIndex.size > 0) markLocked(sources, lockIndex);
  return { effective, sources, locked: [...locks], shadowed };
}

function setLeaf(effective: EffectiveSettings, sources: SettingsSources, path: SettingsPath, value: unknown, layerName: LayerName): void {
  const [section, key, part, configKey] = path as [string, string, string?, string?];
  if (section === 'permissions') {
    const k = key as keyof EffectiveSettings['permissions'];
    (effective.permissions as Record<string, unknown>)[k] = value;
    sources.permissions[k] = layerName;
  } else if (section === 'features') {
    effective.features[key] = value as boolean;
    sources.features[key] = layerName;
  } else {
    const target = (effective.integrations[key] ??= { enabled: false, config: {} });
    const origin = (sources.integrations[key] ??= { enabled: 'default', config: {} });
    if (part === 'enabled') {
      target.enabled = value as boolean;
      origin.enabled = layerName;
    } else if (part === 'config') {
      target.config[configKey!] = value as ConfigValue;
      origin.config[configKey!] = layerName;
    }
  }
}

/** Every leaf under a lock is the organization's to decide, even where its value is the default. */
function markLocked(sources: SettingsSources, locks: LockIndex): void {
  const locked = (...path: string[]) => locks.over(path) !== undefined;
  for (const key of Object.keys(sources.permissions) as Array<keyof SettingsSources['permissions']>) {
    if (locked('permissions', key)) sources.permissions[key] = 'organization';
  }
  for (const flag of Object.keys(sources.features)) if (locked('features', flag)) sources.features[flag] = 'organization';
  for (const [name, origin] of Object.entries(sources.integrations)) {
    if (locked('integrations', name, 'enabled')) origin.enabled = 'organization';
    for (const key of Object.keys(origin.config)) if (locked('integrations', name, 'config', key)) origin.config[key] = 'organization';
  }
}
