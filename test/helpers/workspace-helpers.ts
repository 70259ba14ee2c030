import { expect } from 'vitest';
import type { Workspace } from '../../src/modules/workspaces/schemas';
import { signupMany, type SignedUp, type TestApp } from './app';
import { addMembers, createOrganization } from './org-helpers';
import { isoSql } from './sql';

/** Small, generic steps and assertions for suites that touch workspaces (REST, tRPC and the database). */

/** A workspace as the API returns it: the service's own output type, so the two cannot drift apart. */
export type WorkspaceBody = Workspace;

/** A workspace row as stored: the API's fields (timestamps rendered the API's way) plus the settings overrides. */
export type WorkspaceRow = WorkspaceBody & { settings: Record<string, unknown> };

let nameCounter = 0;
/** A workspace name no other call in this file uses (its derived slug is unique too). */
export const uniqueWorkspaceName = (prefix = 'Workspace') => `${prefix} ${Date.now().toString(36)} ${++nameCounter}`;

/**
 * POST /api/v1/workspaces as `token` in `organizationId`; `body` overrides the fields (a unique
 * name by default). Fails the test unless 201; returns the workspace.
 */
export async function createWorkspace(
  app: TestApp,
  token: string,
  organizationId: string,
  body: Record<string, unknown> = {},
): Promise<WorkspaceBody> {
  const res = await app.request('POST', '/api/v1/workspaces', {
    token,
    body: { organization_id: organizationId, name: uniqueWorkspaceName(), ...body },
  });
  expect(res.status, res.text).toBe(201);
  return res.body as WorkspaceBody;
}

/** POST /api/v1/organizations as `token`; fails the test unless 201; returns the organization's id. */
export async function createOrganizationFor(app: TestApp, token: string, name = `Org ${Date.now().toString(36)} ${++nameCounter}`) {
  return (await createOrganization(app, token, { name })).id;
}

export interface Team {
  /** The owner's organization (from its signup), where admin and member were added. */
  organizationId: string;
  /** That organization's default workspace. */
  defaultWorkspaceId: string;
  owner: SignedUp;
  admin: SignedUp;
  member: SignedUp;
  /** A non-member of the team's organization, with an organization of its own (`outsider.organization.id`). */
  outsider: SignedUp;
}

/**
 * Signs up an owner, an admin, a member and an outsider (four slow signups: call once per
 * file), and adds the admin and the member to the owner's organization.
 */
export async function teamOf(app: TestApp): Promise<Team> {
  const [owner, admin, member, outsider] = await signupMany(app, ['Owner', 'Admin', 'Member', 'Outsider']);
  await addMembers(app, owner, owner.organization.id, [
    [admin, 'admin'],
    [member, 'member'],
  ]);
  return { organizationId: owner.organization.id, defaultWorkspaceId: owner.workspace.id, owner, admin, member, outsider };
}

/** The workspace's row as stored, or null when there is none. */
export async function workspaceRow(app: TestApp, id: string): Promise<WorkspaceRow | null> {
  const [row] = await app.query<WorkspaceRow>(
    `select id, organization_id, name, slug, description, metadata, settings, is_default, cloned_from_id,
            case when archived_at is null then null else ${isoSql('archived_at')} end as archived_at, version,
            ${isoSql('created_at')} as created_at, ${isoSql('updated_at')} as updated_at
       from workspaces where id = $1`,
    [id],
  );
  return row ?? null;
}

/** How many workspaces exist (in one organization, or in all). */
export async function workspaceCount(app: TestApp, organizationId?: string): Promise<number> {
  const [row] = organizationId
    ? await app.query<{ n: number }>('select count(*)::int as n from workspaces where organization_id = $1', [organizationId])
    : await app.query<{ n: number }>('select count(*)::int as n from workspaces');
  return row!.n;
}

/** The ids of the organization's default workspaces (the contract wants exactly one). */
export async function defaultWorkspaceIds(app: TestApp, organizationId: string): Promise<string[]> {
  const rows = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and is_default', [organizationId]);
  return rows.map((r) => r.id);
}

/** The body without the stored settings: what the API returns for the row. */
export const asBody = ({ settings: _settings, ...body }: WorkspaceRow): WorkspaceBody => body;
