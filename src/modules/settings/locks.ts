/**
 * Locked settings: paths of the settings document that an organization decides for every
 * one of its workspaces. A lock is stored as its path (`integrations.slack.config`) and
 * applied at read time by `resolveEffectiveSettings`; writes that would set a value under a
 * lock are refused by `assertNotLocked`. README, Locked settings, states the rules.
 * @module
 */
import { z } from 'zod';
import { AppError } from '../../lib/errors';
import { isSettingsKey, PERMISSION_KEYS, removesAnything, type SettingsLayer, type SettingsPatch } from './document';

/** A path as its segments, keys whole (`['integrations', 'a.b', 'config', 'c']`). */
export type SettingsPath = readonly string[];

export const MAX_LOCKS = 100;
const MAX_LOCK_PATH_LENGTH = 200;
const PERMISSIONS = new Set<string>(PERMISSION_KEYS);

/**
 * The segments of a lock path, or undefined when it names nothing in the document. After
 * `features.` the rest is the flag (flags may hold dots: nothing follows a flag). An
 * integration's name is one segment, so a mistyped part (`integrations.slack.enable`) is
 * refused rather than read as a lock on an integration named `slack.enable`; one whose name
 * holds a dot is locked with all of `integrations`.
 */
export function parseSettingsPath(path: string): SettingsPath | undefined {
  const [section, ...rest] = path.split('.');
  if (rest.length === 0) return section === 'permissions' || section === 'features' || section === 'integrations' ? [section] : undefined;
  if (section === 'permissions') return rest.length === 1 && PERMISSIONS.has(rest[0]!) ? [section, rest[0]!] : undefined;
  if (section === 'features') return isSettingsKey(rest.join('.')) ? [section, rest.join('.')] : undefined;
  if (section !== 'integrations') return undefined;
  const [name, part, ...key] = rest as [string, string?, ...string[]];
  if (!isSettingsKey(name)) return undefined;
  if (part === undefined) return [section, name];
  if ((part === 'enabled' || part === 'config') && key.length === 0) return [section, name, part];
  if (part === 'config' && isSettingsKey(key.join('.'))) return [section, name, part, key.join('.')];
  return undefined;
}

export const joinPath = (path: SettingsPath) => path.join('.');

const lockPath = z
  .string()
  .max(MAX_LOCK_PATH_LENGTH)
  .refine((path) => parseSettingsPath(path) !== undefined, {
    message:
      'not a path of the settings document (permissions[.<key>], features[.<flag>], integrations[.<name>[.enabled|.config[.<key>]]])',
  })
  .meta({ maxLength: MAX_LOCK_PATH_LENGTH, description: 'a path of the settings document, e.g. permissions.allow_guests' });

/** `locks` of an organization settings write: replaces the list; `null` (or `[]`) removes every lock. */
export const locksInput = z
  .array(lockPath)
  .max(MAX_LOCKS)
  .nullable()
  .optional()
  .meta({ description: `Paths every workspace takes from the organization (at most ${MAX_LOCKS}); replaces the list, null removes all` });

/** The stored form of a lock list: without repeats, sorted. */
export const normalizeLocks = (paths: readonly string[] | null): string[] => [...new Set(paths ?? [])].sort();

type Leaf = { path: SettingsPath; value: unknown };

/**
 * The values a layer or a write sets, leaf by leaf (`null`s, which remove, are left out). An
 * integration declared without any value (`{"jira": {}}`) is a leaf at its own path.
 */
export function settingsLeaves(layer: SettingsLayer | SettingsPatch): Leaf[] {
  const leaves: Leaf[] = [];
  for (const [key, value] of Object.entries(layer.permissions ?? {})) {
    if (value !== null && value !== undefined) leaves.push({ path: ['permissions', key], value });
  }
  for (const [flag, value] of Object.entries(layer.features ?? {})) {
    if (value !== null && value !== undefined) leaves.push({ path: ['features', flag], value });
  }
  for (const [name, integration] of Object.entries(layer.integrations ?? {})) {
    if (integration === null || integration === undefined) continue;
    const before = leaves.length;
    if (integration.enabled !== null && integration.enabled !== undefined) {
      leaves.push({ path: ['integrations', name, 'enabled'], value: integration.enabled });
    }
    for (const [key, value] of Object.entries(integration.config ?? {})) {
      if (value !== null && value !== undefined) leaves.push({ path: ['integrations', name, 'config', key], value });
    }
    if (leaves.length === before && !removesAnything(integration)) leaves.push({ path: ['integrations', name], value: undefined });
  }
  return leaves;
}

/** The parsed form of stored lock paths (they were validated on the way in). */
/**
 * An organization's locks, indexed by path: the lock over a path is found in as many lookups
 * as the path has segments (four at most), whatever the number of locks, so checking every
 * leaf of a large layer against 100 locks costs the leaves, not their product.
 */
export class LockIndex {
  private readonly byPath = new Map<string, SettingsPath>();

  constructor(locks: readonly string[]) {
    for (const lock of locks) {
      const path = parseSettingsPath(lock) ?? [lock];
      this.byPath.set(pathKey(path), path);
    }
  }

  get size(): number {
    return this.byPath.size;
  }

  /** The lock `path` falls under, if any: the widest, when several hold it. */
  over(path: SettingsPath): SettingsPath | undefined {
    for (let length = 1; length <= path.length; length++) {
      const lock = this.byPath.get(pathKey(path.slice(0, length)));
      if (lock) return lock;
    }
    return undefined;
  }
}

/** Segments may hold dots (a flag `beta.editor`), never NUL: NUL joins them unambiguously. */
const pathKey = (path: SettingsPath) => path.join('\0');

/** A path a write would set, and the lock it falls under. */
export interface LockViolation {
  path: string;
  lock: string;
}

/**
 * 409 when `settings` (a write, or the overrides a new workspace would start with) sets a value
 * at or under one of the organization's locks (a bare integration declaration counts as a value
 * at its own path): the whole write is refused, naming each refused path (under `issuePrefix`
 * in `issues`, e.g. `workspaces.3.settings`).
 */
export function assertNotLocked(settings: SettingsLayer | SettingsPatch, locks: readonly string[], issuePrefix = ''): void {
  const violations = lockViolations(settings, locks, issuePrefix);
  if (violations.length > 0) throw lockedError(violations);
}

/** The paths of `settings` that fall under `locks`. */
export function lockViolations(
  settings: SettingsLayer | SettingsPatch,
  locks: readonly string[] | LockIndex,
  issuePrefix = '',
): LockViolation[] {
  const index = locks instanceof LockIndex ? locks : new LockIndex(locks);
  if (index.size === 0) return [];
  const violations: LockViolation[] = [];
  for (const { path } of settingsLeaves(settings)) {
    const lock = index.over(path);
    if (lock) violations.push({ path: issuePrefix ? `${issuePrefix}.${joinPath(path)}` : joinPath(path), lock: joinPath(lock) });
  }
  return violations;
}

export function lockedError(violations: LockViolation[]): AppError {
  const locks = [...new Set(violations.map((v) => v.lock))];
  return new AppError('CONFLICT', `Locked by the organization: ${locks.join(', ')}`, {
    issues: violations.map((v) => ({ path: v.path, message: `locked by the organization (lock "${v.lock}")` })),
  });
}
