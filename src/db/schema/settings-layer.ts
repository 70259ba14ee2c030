/**
 * The stored shape of a settings layer (an organization's settings, a workspace's
 * overrides): a partial settings document, never holding `null`. Validated on the way in
 * by `modules/settings/document.ts`, whose schema is checked against this type.
 * @module
 */

export type ConfigValue = string | number | boolean;
export type DefaultRole = 'admin' | 'member' | 'viewer';
export type Visibility = 'private' | 'organization';

export interface SettingsLayer {
  permissions?: {
    default_role?: DefaultRole;
    allow_guests?: boolean;
    allow_member_invites?: boolean;
    visibility?: Visibility;
  };
  features?: Record<string, boolean>;
  integrations?: Record<string, { enabled?: boolean; config?: Record<string, ConfigValue> }>;
}
