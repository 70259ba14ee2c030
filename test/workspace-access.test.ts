import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Role, WorkspaceRole } from '../src/db/schema';
import type { DefaultRole, SettingsLayer, Visibility } from '../src/db/schema/settings-layer';
import { ABILITIES, effectiveAccess, type Ability, type AccessSource } from '../src/modules/workspaces/access';
import { resolveEffectiveSettings } from '../src/modules/settings/resolve';
import { nameKey } from '../src/modules/workspaces/rows';
import { signupMany, startTestApp, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';
import { expectApiError, expectTrpcError, expectTrpcFailure, trpcFailure } from './helpers/errors';
import { createTeam, walkPages } from './helpers/org-helpers';
import { createWorkspace, defaultWorkspaceIds, uniqueWorkspaceName, workspaceRow, type WorkspaceBody } from './helpers/workspace-helpers';
import { ISO_MS_PATTERN } from './helpers/values';

/**
 * Workspace access (README, Workspace access): the permission matrix generated from the
 * ability table (`ABILITIES`) and checked against the README's table, on both faces; private
 * workspaces in every list and page; the derived columns `effective_visibility` /
 * `effective_default_role` after every write that moves them; and the JS derivation against
 * the SQL one over every combination of the layers and locks that decide them.
 */

let app: TestApp;
/** The accounts, by what they are in the matrix's organization. */
let orgOwner: SignedUp;
let orgAdmin: SignedUp;
let wsAdmin: SignedUp;
let wsMember: SignedUp;
let wsViewer: SignedUp;
let plainMember: SignedUp;
let outsider: SignedUp;
/** A plain member of the matrix's organization, explicit viewer of its workspaces: whom members are managed on. */
let subject: SignedUp;
/** A plain member of the matrix's organization in no workspace: whom `members add` adds. */
let newcomer: SignedUp;
/** A plain member of the visibility suite's organization only. */
let reader: SignedUp;

/** The matrix's organization: owned by orgOwner (not its signup organization), everyone but the outsider a member. */
let matrixOrg: string;

beforeAll(async () => {
  app = await startTestApp();
  // Two at a time: each signup hashes a password (scrypt), and ten at once on a busy 2-core
  // machine pushed the embedded database past its 2 s deadline (503).
  [orgOwner, orgAdmin] = await signupMany(app, ['OrgOwner', 'OrgAdmin']);
  [wsAdmin, wsMember] = await signupMany(app, ['WsAdmin', 'WsMember']);
  [wsViewer, plainMember] = await signupMany(app, ['WsViewer', 'Plain']);
  [outsider, subject] = await signupMany(app, ['Outsider', 'Subject']);
  [newcomer, reader] = await signupMany(app, ['Newcomer', 'Reader']);
  matrixOrg = await createTeam(app, orgOwner, [
    [orgAdmin, 'admin'],
    [wsAdmin, 'member'],
    [wsMember, 'member'],
    [wsViewer, 'member'],
    [plainMember, 'member'],
    [subject, 'member'],
    [newcomer, 'member'],
  ]);
});
afterAll(async () => {
  await app?.close();
});

const wsPath = (id: string) => `/api/v1/workspaces/${id}`;
const trpc = (account: SignedUp) => app.trpc(account.token);
const PRIVATE = { permissions: { visibility: 'private' } } as const;

/** Adds `account` to the workspace with `role` over REST, as `by`; fails the test unless 201. */
async function addToWorkspace(by: SignedUp, workspaceId: string, account: SignedUp, role: WorkspaceRole) {
  const res = await app.request('POST', `${wsPath(workspaceId)}/members`, { token: by.token, body: { user_id: account.user.id, role } });
  expect(res.status, res.text).toBe(201);
  return res.body;
}

/** PUT /organizations/{id}/settings as its owner; fails the test unless 200. */
async function putOrganizationSettings(organizationId: string, body: unknown) {
  const res = await app.request('PUT', `/api/v1/organizations/${organizationId}/settings`, { token: orgOwner.token, body });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

/** PUT /workspaces/{id}/settings as orgOwner; fails the test unless 200. */
async function putWorkspaceSettings(workspaceId: string, body: unknown) {
  const res = await app.request('PUT', `${wsPath(workspaceId)}/settings`, { token: orgOwner.token, body });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

// ---------------------------------------------------------------------------------------------
// 1. The permission matrix
// ---------------------------------------------------------------------------------------------

type Column = 'org owner/admin' | 'ws admin' | 'ws member' | 'ws viewer' | 'no access';

interface CallerKind {
  /** The README table's column. */
  column: Column;
  account: () => SignedUp;
  organizationRole: Role | null;
  /** Its explicit membership of the matrix's workspaces (all private). */
  explicit: WorkspaceRole | null;
  /** The effective role and its source there, by the README's rules. */
  role: WorkspaceRole | null;
  source: AccessSource | null;
}

const CALLERS = {
  'org owner': {
    column: 'org owner/admin',
    account: () => orgOwner,
    organizationRole: 'owner',
    explicit: null,
    role: 'admin',
    source: 'organization_role',
  },
  'org admin': {
    column: 'org owner/admin',
    account: () => orgAdmin,
    organizationRole: 'admin',
    explicit: null,
    role: 'admin',
    source: 'organization_role',
  },
  'ws admin': {
    column: 'ws admin',
    account: () => wsAdmin,
    organizationRole: 'member',
    explicit: 'admin',
    role: 'admin',
    source: 'workspace_member',
  },
  'ws member': {
    column: 'ws member',
    account: () => wsMember,
    organizationRole: 'member',
    explicit: 'member',
    role: 'member',
    source: 'workspace_member',
  },
  'ws viewer': {
    column: 'ws viewer',
    account: () => wsViewer,
    organizationRole: 'member',
    explicit: 'viewer',
    role: 'viewer',
    source: 'workspace_member',
  },
  'org member without access': {
    column: 'no access',
    account: () => plainMember,
    organizationRole: 'member',
    explicit: null,
    role: null,
    source: null,
  },
  outsider: { column: 'no access', account: () => outsider, organizationRole: null, explicit: null, role: null, source: null },
} as const satisfies Record<string, CallerKind>;
type CallerName = keyof typeof CALLERS;
const CALLER_NAMES = Object.keys(CALLERS) as CallerName[];

const RANK: Record<WorkspaceRole, number> = { viewer: 1, member: 2, admin: 3 };
type Requirement = { workspaceRole: WorkspaceRole } | { organizationAdmin: true };
type Outcome = 'ok' | 403 | 404;

/** What `ABILITIES` says of `ability` for `caller`: 404 without access, 403 below the requirement. */
function outcomeOf(ability: Ability, caller: CallerKind): Outcome {
  if (!caller.role) return 404;
  const need: Requirement = ABILITIES[ability];
  if ('organizationAdmin' in need) return caller.organizationRole === 'owner' || caller.organizationRole === 'admin' ? 'ok' : 403;
  return RANK[caller.role] >= RANK[need.workspaceRole] ? 'ok' : 403;
}

interface Cell {
  /** The workspace called on: a fresh private one for writes, the shared one for reads. */
  ws: WorkspaceBody;
  caller: CallerKind;
  account: SignedUp;
  /** Unique per cell and face: names what the cell creates. */
  tag: string;
  face: Face;
  /** REST only: the answer's headers. */
  headers?: Headers;
}
type Face = 'REST' | 'tRPC';

interface Operation {
  ability: Ability;
  /** A write on the workspace: each cell (and face) gets a fresh workspace of its own. */
  fresh?: true;
  /** Lists: a caller without access finds it absent (200, no item) rather than 404, unless the list itself is 404 to it. */
  noAccess?: (caller: CallerKind) => 'absent' | 404;
  /** The message of a 404 (the workspace's, unless the list's organization is what is hidden). */
  notFound?: string;
  /** REST status of a success. */
  status: 200 | 201 | 204;
  rest(cell: Cell): Promise<ApiResponse>;
  trpc(cell: Cell): Promise<unknown>;
  /** Asserts a success's answer (REST body or tRPC result) and the database after it. */
  allowed(answer: any, cell: Cell): Promise<void> | void;
}

/** The matrix's shared workspace for reads (private, with explicit members). */
let readWs: WorkspaceBody;
const READ_SETTINGS = { permissions: { visibility: 'private' }, features: { matrix: true } };

const renames = new Map<string, string>();
/** A slug per tag, unique in the organization. */
const slugFor = (tag: string) => {
  if (!renames.has(tag)) renames.set(tag, `renamed-${Date.now().toString(36)}-${renames.size + 1}`);
  return renames.get(tag)!;
};

const memberRow = async (workspaceId: string, userId: string) =>
  (
    await app.query<{ role: WorkspaceRole }>('select role from workspace_members where workspace_id = $1 and user_id = $2', [
      workspaceId,
      userId,
    ])
  )[0] ?? null;

const derivedColumns = async (workspaceId: string) =>
  (
    await app.query<{ visibility: Visibility; default_role: DefaultRole }>(
      'select effective_visibility as visibility, effective_default_role as default_role from workspaces where id = $1',
      [workspaceId],
    )
  )[0];

const OPERATIONS: Record<string, Operation> = {
  get: {
    ability: 'read',
    status: 200,
    rest: ({ ws, account }) => app.request('GET', wsPath(ws.id), { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.get.query({ workspace_id: ws.id }),
    allowed: (answer, { ws, headers }) => {
      expect(answer).toEqual(ws);
      if (headers) expect(headers.get('etag')).toBe(`"${ws.version}"`);
    },
  },
  'settings get': {
    ability: 'read',
    status: 200,
    rest: ({ ws, account }) => app.request('GET', `${wsPath(ws.id)}/settings`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.getSettings.query({ workspace_id: ws.id }),
    allowed: (answer, { ws }) => {
      expect(answer).toMatchObject({ workspace_id: ws.id, version: ws.version, overrides: READ_SETTINGS, locked: [], shadowed: [] });
      expect(answer.effective.permissions).toEqual({
        default_role: 'member',
        allow_guests: false,
        allow_member_invites: true,
        visibility: 'private',
      });
    },
  },
  'list (every organization)': {
    ability: 'read',
    noAccess: () => 'absent',
    status: 200,
    rest: ({ ws, account }) =>
      app.request('GET', `/api/v1/workspaces?q=${encodeURIComponent(ws.name)}&limit=100`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.list.query({ q: ws.name, limit: 100 }),
    allowed: (answer, { ws }) => expect(answer).toEqual({ items: [ws], next_cursor: null }),
  },
  'list (its organization)': {
    ability: 'read',
    // The outsider is not in the organization: the list itself is 404 to it.
    noAccess: (caller) => (caller.organizationRole ? 'absent' : 404),
    notFound: 'Organization not found',
    status: 200,
    rest: ({ ws, account }) =>
      app.request('GET', `/api/v1/organizations/${matrixOrg}/workspaces?q=${encodeURIComponent(ws.name)}&limit=100`, {
        token: account.token,
      }),
    trpc: ({ ws, account }) => trpc(account).workspaces.listInOrganization.query({ org_id: matrixOrg, q: ws.name, limit: 100 }),
    allowed: (answer, { ws }) => expect(answer).toEqual({ items: [ws], next_cursor: null }),
  },
  'workspace events': {
    ability: 'read',
    status: 200,
    rest: ({ ws, account }) => app.request('GET', `${wsPath(ws.id)}/events?limit=100`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).audit.listWorkspaceEvents.query({ workspace_id: ws.id, limit: 100 }),
    allowed: async (answer, { ws }) => {
      const items = answer.items as Array<{ workspace_id: string; action: string; target_id: string }>;
      for (const event of items) expect(event.workspace_id).toBe(ws.id);
      expect(items.map((e) => e.action)).toEqual(expect.arrayContaining(['workspace.created', 'workspace.member_added']));
      const [stored] = await app.query<{ n: number }>('select count(*)::int as n from audit_events where workspace_id = $1', [ws.id]);
      expect(items).toHaveLength(stored!.n);
    },
  },
  'members list': {
    ability: 'read',
    status: 200,
    rest: ({ ws, account }) => app.request('GET', `${wsPath(ws.id)}/members`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.members.list.query({ workspace_id: ws.id }),
    allowed: async (answer, { ws }) => {
      const stored = await app.query<{ user_id: string; role: string }>(
        'select user_id, role from workspace_members where workspace_id = $1 order by created_at, user_id',
        [ws.id],
      );
      expect(stored).toHaveLength(4);
      expect(answer.next_cursor).toBeNull();
      expect(answer.items.map(({ user_id, role }: { user_id: string; role: string }) => ({ user_id, role }))).toEqual(stored);
      expect(answer.items).toContainEqual({
        user_id: subject.user.id,
        email: subject.user.email,
        name: subject.user.name,
        role: 'viewer',
        guest: false,
        created_at: expect.stringMatching(ISO_MS_PATTERN),
      });
    },
  },
  'member get': {
    ability: 'read',
    status: 200,
    rest: ({ ws, account }) => app.request('GET', `${wsPath(ws.id)}/members/${subject.user.id}`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.members.get.query({ workspace_id: ws.id, user_id: subject.user.id }),
    allowed: (answer) =>
      expect(answer).toEqual({
        user_id: subject.user.id,
        email: subject.user.email,
        name: subject.user.name,
        role: 'viewer',
        guest: false,
        created_at: expect.stringMatching(ISO_MS_PATTERN),
      }),
  },
  'own access': {
    ability: 'read',
    status: 200,
    rest: ({ ws, account }) => app.request('GET', `${wsPath(ws.id)}/access`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.access.query({ workspace_id: ws.id }),
    allowed: (answer, { ws, account, caller }) =>
      expect(answer).toEqual({ workspace_id: ws.id, user_id: account.user.id, role: caller.role, source: caller.source, guest: false }),
  },
  "another user's access": {
    ability: 'manageMembers',
    status: 200,
    rest: ({ ws, account }) => app.request('GET', `${wsPath(ws.id)}/access?user_id=${subject.user.id}`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.access.query({ workspace_id: ws.id, user_id: subject.user.id }),
    allowed: async (answer, { ws, account, face }) => {
      expect(answer).toEqual({ workspace_id: ws.id, user_id: subject.user.id, role: 'viewer', source: 'workspace_member', guest: false });
      // Anyone in the organization is answered, with access or without (null); someone outside it is 404.
      const path = (user: SignedUp) => `${wsPath(ws.id)}/access?user_id=${user.user.id}`;
      const ask = (user: SignedUp) => trpc(account).workspaces.access.query({ workspace_id: ws.id, user_id: user.user.id });
      const noAccess = { workspace_id: ws.id, user_id: plainMember.user.id, role: null, source: null, guest: false };
      const owner = { workspace_id: ws.id, user_id: orgOwner.user.id, role: 'admin', source: 'organization_role', guest: false };
      const notMember = `User ${outsider.user.id} is not a member of this workspace's organization`;
      if (face === 'REST') {
        expect((await app.request('GET', path(plainMember), { token: account.token })).body).toEqual(noAccess);
        expect((await app.request('GET', path(orgOwner), { token: account.token })).body).toEqual(owner);
        const res = await app.request('GET', path(outsider), { token: account.token });
        expectApiError(res, 404, 'NOT_FOUND');
        expect(res.body.message).toBe(notMember);
      } else {
        expect(await ask(plainMember)).toEqual(noAccess);
        expect(await ask(orgOwner)).toEqual(owner);
        expect((await expectTrpcFailure(ask(outsider), 404, 'NOT_FOUND')).message).toBe(notMember);
      }
    },
  },
  update: {
    ability: 'edit',
    fresh: true,
    status: 200,
    rest: ({ ws, account, tag }) =>
      app.request('PUT', wsPath(ws.id), {
        token: account.token,
        body: { name: `Renamed ${tag}`, slug: slugFor(tag), description: 'changed', metadata: { changed: 'yes' } },
      }),
    trpc: ({ ws, account, tag }) =>
      trpc(account).workspaces.update.mutate({
        workspace_id: ws.id,
        name: `Renamed ${tag}`,
        slug: slugFor(tag),
        description: 'changed',
        metadata: { changed: 'yes' },
      }),
    allowed: async (answer, { ws, tag }) => {
      const expected = {
        id: ws.id,
        name: `Renamed ${tag}`,
        slug: slugFor(tag),
        description: 'changed',
        metadata: { cell: 'yes', changed: 'yes' },
        version: 2,
      };
      expect(answer).toMatchObject(expected);
      expect(await workspaceRow(app, ws.id)).toMatchObject(expected);
    },
  },
  'settings put': {
    ability: 'edit',
    fresh: true,
    status: 200,
    rest: ({ ws, account }) =>
      app.request('PUT', `${wsPath(ws.id)}/settings`, { token: account.token, body: { features: { edited: true } } }),
    trpc: ({ ws, account }) => trpc(account).workspaces.updateSettings.mutate({ workspace_id: ws.id, features: { edited: true } }),
    allowed: async (answer, { ws }) => {
      const overrides = { ...PRIVATE, features: { edited: true } };
      expect(answer).toMatchObject({ workspace_id: ws.id, version: 2, overrides });
      expect(await workspaceRow(app, ws.id)).toMatchObject({ version: 2, settings: overrides });
      expect(await derivedColumns(ws.id)).toEqual({ visibility: 'private', default_role: 'member' });
    },
  },
  archive: {
    ability: 'edit',
    fresh: true,
    status: 200,
    rest: ({ ws, account }) => app.request('POST', `${wsPath(ws.id)}/archive`, { token: account.token, body: {} }),
    trpc: ({ ws, account }) => trpc(account).workspaces.archive.mutate({ workspace_id: ws.id }),
    allowed: async (answer, { ws }) => {
      expect(answer).toMatchObject({ id: ws.id, version: 2, archived_at: expect.stringMatching(ISO_MS_PATTERN) });
      expect(await workspaceRow(app, ws.id)).toMatchObject({ version: 2, archived_at: answer.archived_at });
    },
  },
  restore: {
    ability: 'edit',
    fresh: true,
    status: 200,
    rest: ({ ws, account }) => app.request('POST', `${wsPath(ws.id)}/restore`, { token: account.token, body: {} }),
    trpc: ({ ws, account }) => trpc(account).workspaces.restore.mutate({ workspace_id: ws.id }),
    allowed: async (answer, { ws }) => {
      expect(answer).toMatchObject({ id: ws.id, version: 3, archived_at: null });
      expect(await workspaceRow(app, ws.id)).toMatchObject({ version: 3, archived_at: null });
    },
  },
  'members add': {
    ability: 'manageMembers',
    fresh: true,
    status: 201,
    rest: ({ ws, account }) =>
      app.request('POST', `${wsPath(ws.id)}/members`, { token: account.token, body: { user_id: newcomer.user.id, role: 'member' } }),
    trpc: ({ ws, account }) =>
      trpc(account).workspaces.members.add.mutate({ workspace_id: ws.id, user_id: newcomer.user.id, role: 'member' }),
    allowed: async (answer, { ws, headers }) => {
      expect(answer).toEqual({
        user_id: newcomer.user.id,
        email: newcomer.user.email,
        name: newcomer.user.name,
        role: 'member',
        guest: false,
        created_at: expect.stringMatching(ISO_MS_PATTERN),
      });
      if (headers) expect(headers.get('location')).toBe(`${wsPath(ws.id)}/members/${newcomer.user.id}`);
      expect(await memberRow(ws.id, newcomer.user.id)).toEqual({ role: 'member' });
    },
  },
  'members change role': {
    ability: 'manageMembers',
    fresh: true,
    status: 200,
    rest: ({ ws, account }) =>
      app.request('PUT', `${wsPath(ws.id)}/members/${subject.user.id}`, { token: account.token, body: { role: 'member' } }),
    trpc: ({ ws, account }) =>
      trpc(account).workspaces.members.update.mutate({ workspace_id: ws.id, user_id: subject.user.id, role: 'member' }),
    allowed: async (answer, { ws }) => {
      expect(answer).toMatchObject({ user_id: subject.user.id, role: 'member' });
      expect(await memberRow(ws.id, subject.user.id)).toEqual({ role: 'member' });
    },
  },
  'members remove another': {
    ability: 'manageMembers',
    fresh: true,
    status: 204,
    rest: ({ ws, account }) => app.request('DELETE', `${wsPath(ws.id)}/members/${subject.user.id}`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.members.remove.mutate({ workspace_id: ws.id, user_id: subject.user.id }),
    allowed: async (answer, { ws }) => {
      expect(answer ?? undefined).toBeUndefined();
      expect(await memberRow(ws.id, subject.user.id)).toBeNull();
      expect(await memberRow(ws.id, wsViewer.user.id)).toEqual({ role: 'viewer' });
    },
  },
  leave: {
    ability: 'leave',
    fresh: true,
    status: 204,
    rest: ({ ws, account }) => app.request('DELETE', `${wsPath(ws.id)}/members/${account.user.id}`, { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.members.remove.mutate({ workspace_id: ws.id, user_id: account.user.id }),
    allowed: async (answer, { ws, account, caller }) => {
      expect(answer ?? undefined).toBeUndefined();
      expect(await memberRow(ws.id, account.user.id)).toBeNull();
      expect(await memberRow(ws.id, subject.user.id)).toEqual({ role: 'viewer' });
      // The next request: the organization's owners and admins keep the private workspace, the others lose it.
      const after = await app.request('GET', wsPath(ws.id), { token: account.token });
      if (caller.source === 'organization_role') expect(after.status, after.text).toBe(200);
      else expectApiError(after, 404, 'NOT_FOUND');
    },
  },
  delete: {
    ability: 'administer',
    fresh: true,
    status: 204,
    rest: ({ ws, account }) => app.request('DELETE', wsPath(ws.id), { token: account.token }),
    trpc: ({ ws, account }) => trpc(account).workspaces.delete.mutate({ workspace_id: ws.id }),
    allowed: async (answer, { ws }) => {
      expect(answer ?? undefined).toBeUndefined();
      expect(await workspaceRow(app, ws.id)).toBeNull();
      expect(await app.query('select user_id from workspace_members where workspace_id = $1', [ws.id])).toEqual([]);
    },
  },
  'move is_default': {
    ability: 'administer',
    fresh: true,
    status: 200,
    rest: ({ ws, account }) => app.request('PUT', wsPath(ws.id), { token: account.token, body: { is_default: true } }),
    trpc: ({ ws, account }) => trpc(account).workspaces.update.mutate({ workspace_id: ws.id, is_default: true }),
    allowed: async (answer, { ws }) => {
      expect(answer).toMatchObject({ id: ws.id, is_default: true, version: 2 });
      expect(await defaultWorkspaceIds(app, matrixOrg)).toEqual([ws.id]);
    },
  },
  'clone from it': {
    ability: 'read',
    status: 201,
    rest: ({ ws, account, tag }) =>
      app.request('POST', `${wsPath(ws.id)}/clone`, {
        token: account.token,
        body: { name: tag, organization_id: account.organization.id },
      }),
    trpc: ({ ws, account, tag }) =>
      trpc(account).workspaces.clone.mutate({ workspace_id: ws.id, name: tag, organization_id: account.organization.id }),
    allowed: async (answer, { ws, account, tag, headers }) => {
      const expected = {
        organization_id: account.organization.id,
        name: tag,
        description: ws.description,
        metadata: ws.metadata,
        cloned_from_id: ws.id,
        is_default: false,
        version: 1,
      };
      expect(answer).toMatchObject(expected);
      if (headers) expect(headers.get('location')).toBe(wsPath(answer.id));
      expect(await workspaceRow(app, answer.id)).toMatchObject({ ...expected, settings: READ_SETTINGS });
      expect(await derivedColumns(answer.id)).toEqual({ visibility: 'private', default_role: 'member' });
    },
  },
  'provisioning template': {
    ability: 'read',
    status: 201,
    rest: ({ ws, account, tag }) =>
      app.request('POST', '/api/v1/workspaces/provision', {
        token: account.token,
        body: { organization_id: account.organization.id, template_workspace_id: ws.id, workspaces: [{ name: tag }] },
      }),
    trpc: ({ ws, account, tag }) =>
      trpc(account).workspaces.provision.mutate({
        organization_id: account.organization.id,
        template_workspace_id: ws.id,
        workspaces: [{ name: tag }],
      }),
    allowed: async (answer, { ws, account, tag }) => {
      const expected = {
        organization_id: account.organization.id,
        name: tag,
        description: ws.description,
        metadata: ws.metadata,
        version: 1,
      };
      expect(answer.failed).toEqual([]);
      expect(answer.created).toHaveLength(1);
      expect(answer.created[0]).toMatchObject(expected);
      expect(await workspaceRow(app, answer.created[0].id)).toMatchObject({ ...expected, settings: READ_SETTINGS });
      expect(await derivedColumns(answer.created[0].id)).toEqual({ visibility: 'private', default_role: 'member' });
    },
  },
};
const OPERATION_NAMES = Object.keys(OPERATIONS);
const FACES: Face[] = ['REST', 'tRPC'];

/** A cell's expected outcome: the ability table's, or a list's "absent". */
function expectationOf(op: Operation, caller: CallerKind): Outcome | 'absent' {
  const outcome = outcomeOf(op.ability, caller);
  return outcome === 404 && op.noAccess ? op.noAccess(caller) : outcome;
}

/** What a denied call must leave as it was: every workspace and workspace membership, and the audit trail. */
async function snapshot() {
  return {
    workspaces: await app.query('select * from workspaces order by id'),
    members: await app.query('select * from workspace_members order by workspace_id, user_id'),
    events: await app.query('select count(*)::int as n from audit_events'),
  };
}

/** The fresh workspaces of the write cells, by `operation|caller|face`. */
const fresh = new Map<string, WorkspaceBody>();
const freshKey = (operation: string, caller: CallerName, face: Face) => `${operation}|${caller}|${face}`;

async function runCell(operation: string, callerName: CallerName, face: Face): Promise<void> {
  const op = OPERATIONS[operation]!;
  const caller = CALLERS[callerName];
  const account = caller.account();
  const ws = op.fresh ? fresh.get(freshKey(operation, callerName, face))! : readWs;
  const cell: Cell = { ws, caller, account, face, tag: `Cell ${operation} ${callerName} ${face} ${Date.now().toString(36)}` };
  const expected = expectationOf(op, caller);
  const before = expected === 'ok' ? undefined : await snapshot();

  if (face === 'REST') {
    const res = await op.rest(cell);
    if (expected === 'ok') {
      expect(res.status, res.text).toBe(op.status);
      await op.allowed(res.body, { ...cell, headers: res.headers });
    } else if (expected === 'absent') {
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({ items: [], next_cursor: null });
    } else {
      expectApiError(res, expected, expected === 403 ? 'FORBIDDEN' : 'NOT_FOUND');
      if (expected === 404) expect(res.body.message).toBe(op.notFound ?? 'Workspace not found');
      else expect(res.body.message).toMatch(/^This needs the /);
    }
  } else if (expected === 'ok') {
    await op.allowed(await op.trpc(cell), cell);
  } else if (expected === 'absent') {
    expect(await op.trpc(cell)).toEqual({ items: [], next_cursor: null });
  } else {
    const error = await trpcFailure(op.trpc(cell));
    expectTrpcError(error, expected, expected === 403 ? 'FORBIDDEN' : 'NOT_FOUND');
    if (expected === 404) expect(error.message).toBe(op.notFound ?? 'Workspace not found');
    else expect(error.message).toMatch(/^This needs the /);
  }
  if (before) expect(await snapshot()).toEqual(before);
}

const COLUMNS: Column[] = ['org owner/admin', 'ws admin', 'ws member', 'ws viewer', 'no access'];
/** The README table's rows, by the ability each states (the last: the source of a clone or a template, which needs `read`). */
const README_ROWS: Record<string, Ability | 'source'> = {
  'get, settings get, appear in lists, workspace events, members list, access (own)': 'read',
  'update (name, slug, description, metadata), settings put, archive, restore': 'edit',
  'members: add, change role, remove others; access of another user': 'manageMembers',
  'leave (remove your own explicit membership)': 'leave',
  'delete, move `is_default`': 'administer',
  'clone from it, use it as a provisioning template': 'source',
};

/** The README's "What each role may do" table: its rows as [operation, ...cells]. */
function readmeTable(): string[][] {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  const header = `| operation | ${COLUMNS.join(' | ')} |`;
  const start = readme.indexOf(header);
  expect(start, 'the README has the table').toBeGreaterThan(-1);
  const rows: string[][] = [];
  for (const line of readme.slice(start).split('\n').slice(2)) {
    if (!line.startsWith('|')) break;
    rows.push(
      line
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    );
  }
  return rows;
}

const readmeCell = (text: string): Outcome => {
  if (text === '✔') return 'ok';
  if (text === '403') return 403;
  if (text === '404' || text === '404 / absent') return 404;
  throw new Error(`unexpected README cell ${JSON.stringify(text)}`);
};

describe('the permission matrix', () => {
  beforeAll(async () => {
    // The shared workspace of the reads: private, its explicit members added over the API.
    const created = await createWorkspace(app, orgOwner.token, matrixOrg, {
      name: uniqueWorkspaceName('Matrix Source'),
      description: 'matrix source',
      metadata: { purpose: 'matrix' },
      settings: READ_SETTINGS,
    });
    for (const name of CALLER_NAMES) {
      const explicit = CALLERS[name].explicit;
      if (explicit) await addToWorkspace(orgOwner, created.id, CALLERS[name].account(), explicit);
    }
    await addToWorkspace(orgOwner, created.id, subject, 'viewer');
    const res = await app.request('GET', wsPath(created.id), { token: orgOwner.token });
    readWs = res.body;

    // The write cells' workspaces: private, provisioned in one call, their explicit members in one statement.
    const keys = OPERATION_NAMES.filter((o) => OPERATIONS[o]!.fresh).flatMap((o) =>
      CALLER_NAMES.flatMap((c) => FACES.map((f) => freshKey(o, c, f))),
    );
    const stamp = Date.now().toString(36);
    const provisioned = await app.request('POST', '/api/v1/workspaces/provision', {
      token: orgOwner.token,
      body: {
        organization_id: matrixOrg,
        workspaces: keys.map((_, i) => ({ name: `Fresh ${stamp} ${i}`, metadata: { cell: 'yes' }, settings: PRIVATE })),
      },
    });
    expect(provisioned.status, provisioned.text).toBe(201);
    keys.forEach((key, i) => fresh.set(key, provisioned.body.created[i]));
    const rows = keys.flatMap((key) => {
      const workspace_id = fresh.get(key)!.id;
      const explicit = CALLER_NAMES.flatMap((c) =>
        CALLERS[c].explicit ? [{ workspace_id, user_id: CALLERS[c].account().user.id, role: CALLERS[c].explicit }] : [],
      );
      // To leave, the organization's owner and admin need an explicit membership too.
      const leavers = key.startsWith('leave|')
        ? [orgOwner, orgAdmin].map((a) => ({ workspace_id, user_id: a.user.id, role: 'viewer' }))
        : [];
      return [...explicit, ...leavers, { workspace_id, user_id: subject.user.id, role: 'viewer' }];
    });
    await app.query(
      `insert into workspace_members (workspace_id, user_id, role)
         select workspace_id, user_id, role from jsonb_to_recordset($1::jsonb) as r(workspace_id uuid, user_id uuid, role text)`,
      [JSON.stringify(rows)],
    );
    // Restore's cells start from an archived workspace (archived over the API: version 2).
    for (const c of CALLER_NAMES) {
      for (const f of FACES) {
        const res = await app.request('POST', `${wsPath(fresh.get(freshKey('restore', c, f))!.id)}/archive`, {
          token: orgOwner.token,
          body: {},
        });
        expect(res.status, res.text).toBe(200);
      }
    }
  });

  it('is the README table: the ability table gives each column its cell', () => {
    const rows = readmeTable();
    expect(rows.map(([operation]) => operation)).toEqual(Object.keys(README_ROWS));
    const abilities = Object.values(README_ROWS).filter((a): a is Ability => a !== 'source');
    expect([...abilities].sort()).toEqual(Object.keys(ABILITIES).sort());
    for (const [operation, ...cells] of rows) {
      const ability = README_ROWS[operation!]!;
      if (ability === 'source') {
        expect(cells).toEqual(['read access to it, and admin of the target organization', '', '', '', '404']);
        continue;
      }
      for (const [i, column] of COLUMNS.entries()) {
        for (const name of CALLER_NAMES.filter((n) => CALLERS[n].column === column)) {
          expect(outcomeOf(ability, CALLERS[name]), `${operation} for ${name}`).toBe(readmeCell(cells[i]!));
        }
      }
    }
  });

  it('has an operation for every ability, and every caller of every column', () => {
    expect(new Set(OPERATION_NAMES.map((o) => OPERATIONS[o]!.ability))).toEqual(new Set(Object.keys(ABILITIES)));
    expect(new Set(CALLER_NAMES.map((c) => CALLERS[c].column))).toEqual(new Set(COLUMNS));
    // Each kind of answer occurs: a matrix of only successes (or only refusals) would prove little.
    const outcomes = OPERATION_NAMES.flatMap((o) => CALLER_NAMES.map((c) => expectationOf(OPERATIONS[o]!, CALLERS[c])));
    expect(new Set(outcomes)).toEqual(new Set(['ok', 403, 404, 'absent']));
  });

  const cells = OPERATION_NAMES.flatMap((operation) =>
    CALLER_NAMES.map((caller) => ({ operation, caller, expected: expectationOf(OPERATIONS[operation]!, CALLERS[caller]) })),
  );
  it.each(cells)('$operation by $caller → $expected (REST and tRPC)', async ({ operation, caller }) => {
    for (const face of FACES) await runCell(operation, caller, face);
  });
});

describe('a user id spelled in upper case', () => {
  // A UUID is one id however its hex digits are cased (the database compares them as UUIDs, and
  // `GET /workspaces/{ID}` finds the workspace): leaving, and asking for your own access, depend
  // on who the id names, not on how it is spelled; answers name ids the service's way (lower case).
  let ws: WorkspaceBody;
  const upper = (id: string) => id.toUpperCase();
  beforeAll(async () => {
    ws = await createWorkspace(app, orgOwner.token, matrixOrg, { settings: PRIVATE });
    await addToWorkspace(orgOwner, ws.id, wsViewer, 'viewer');
    await addToWorkspace(orgOwner, ws.id, wsMember, 'member');
  });

  it('is your own access, in the answer as in the decision (both faces)', async () => {
    const own = { workspace_id: ws.id, user_id: wsViewer.user.id, role: 'viewer', source: 'workspace_member', guest: false };
    const res = await app.request('GET', `${wsPath(upper(ws.id))}/access?user_id=${upper(wsViewer.user.id)}`, { token: wsViewer.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual(own);
    expect(await trpc(wsViewer).workspaces.access.query({ workspace_id: upper(ws.id), user_id: upper(wsViewer.user.id) })).toEqual(own);
    const theirs = await app.request('GET', `${wsPath(ws.id)}/access?user_id=${upper(wsViewer.user.id)}`, { token: orgOwner.token });
    expect(theirs.body).toEqual(own);
  });

  it('lets a member leave (REST, then tRPC)', async () => {
    const res = await app.request('DELETE', `${wsPath(ws.id)}/members/${upper(wsViewer.user.id)}`, { token: wsViewer.token });
    expect(res.status, res.text).toBe(204);
    expect(await memberRow(ws.id, wsViewer.user.id)).toBeNull();
    await trpc(wsMember).workspaces.members.remove.mutate({ workspace_id: ws.id, user_id: upper(wsMember.user.id) });
    expect(await memberRow(ws.id, wsMember.user.id)).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Visibility: a private workspace in every read, list and page
// ---------------------------------------------------------------------------------------------

describe('a private workspace, for a plain member of its organization', () => {
  let visOrg: string;
  /** Every workspace the reader could meet in a list: whether it must stay out of it, and the access the reader has. */
  const known: Array<{
    ws: WorkspaceBody;
    hidden: boolean;
    archived: boolean;
    access: { role: WorkspaceRole; source: AccessSource } | null;
  }> = [];
  const hiddenOnes = () => known.filter((k) => k.hidden).map((k) => k.ws);
  const byName = (name: string) => known.find((k) => k.ws.name === name)!.ws;

  beforeAll(async () => {
    visOrg = await createTeam(app, orgOwner, [[reader, 'member']]);
    const add = async (name: string, { secret = false, given = undefined as WorkspaceRole | undefined, archived = false } = {}) => {
      let ws = await createWorkspace(app, orgOwner.token, visOrg, { name, ...(secret ? { settings: PRIVATE } : {}) });
      if (given) await addToWorkspace(orgOwner, ws.id, reader, given);
      if (archived) {
        const res = await app.request('POST', `${wsPath(ws.id)}/archive`, { token: orgOwner.token, body: {} });
        expect(res.status, res.text).toBe(200);
        ws = res.body;
      }
      // The highest role, and on a tie the explicit membership before the visibility (README).
      const access = given
        ? secret || RANK[given] >= RANK.member
          ? { role: given, source: 'workspace_member' as const }
          : { role: 'member' as const, source: 'organization_visibility' as const }
        : secret
          ? null
          : { role: 'member' as const, source: 'organization_visibility' as const };
      known.push({ ws, hidden: access === null, archived, access });
    };
    await add('Zeta Open');
    await add('Alpha Open');
    await add('Zeta Hidden', { secret: true });
    await add('Beta Hidden', { secret: true });
    await add('Zeta Given', { secret: true, given: 'viewer' });
    await add('alpha given', { secret: true, given: 'admin' });
    // Visible and given: one row in every list (the member's list is a union of two scans), whichever source names it.
    await add('Open Given Member', { given: 'member' });
    await add('Open Given Viewer', { given: 'viewer' });
    await add('Zeta Archived Open', { archived: true });
    await add('Zeta Archived Hidden', { secret: true, archived: true });
    await add('Zeta Archived Given', { secret: true, given: 'viewer', archived: true });
    const [defaultId] = await defaultWorkspaceIds(app, visOrg);
    const defaultWs = (await app.request('GET', wsPath(defaultId!), { token: orgOwner.token })).body;
    known.push({ ws: defaultWs, hidden: false, archived: false, access: { role: 'member', source: 'organization_visibility' } });
  });

  const READS = [
    ['get', (id: string) => wsPath(id)],
    ['settings', (id: string) => `${wsPath(id)}/settings`],
    ['events', (id: string) => `${wsPath(id)}/events`],
    ['members', (id: string) => `${wsPath(id)}/members`],
    ['a member', (id: string) => `${wsPath(id)}/members/${orgOwner.user.id}`],
    ['access', (id: string) => `${wsPath(id)}/access`],
  ] as const;
  const trpcReads = (account: SignedUp, id: string) => {
    const t = trpc(account);
    return [
      t.workspaces.get.query({ workspace_id: id }),
      t.workspaces.getSettings.query({ workspace_id: id }),
      t.audit.listWorkspaceEvents.query({ workspace_id: id }),
      t.workspaces.members.list.query({ workspace_id: id }),
      t.workspaces.members.get.query({ workspace_id: id, user_id: orgOwner.user.id }),
      t.workspaces.access.query({ workspace_id: id }),
    ];
  };

  it('is 404 on get, settings, events, members and access, on both faces (archived or not)', async () => {
    expect(hiddenOnes()).toHaveLength(3);
    for (const ws of hiddenOnes()) {
      for (const [what, path] of READS) {
        const res = await app.request('GET', path(ws.id), { token: reader.token });
        expectApiError(res, 404, 'NOT_FOUND');
        expect(res.body.message, `${what} of ${ws.name}`).toBe('Workspace not found');
        // The organization's owner reads every one of them: they exist.
        const owner = await app.request('GET', path(ws.id), { token: orgOwner.token });
        expect(owner.status, `${what} of ${ws.name} by the owner: ${owner.text}`).toBe(what === 'a member' ? 404 : 200);
      }
      for (const call of trpcReads(reader, ws.id)) {
        const error = await expectTrpcFailure(call, 404, 'NOT_FOUND');
        expect(error.message).toBe('Workspace not found');
      }
    }
  });

  it('is readable when visible to the organization or given to the member, on both faces', async () => {
    for (const k of known.filter((w) => !w.hidden)) {
      for (const [what, path] of READS.filter(([w]) => w !== 'a member')) {
        const res = await app.request('GET', path(k.ws.id), { token: reader.token });
        expect(res.status, `${what} of ${k.ws.name}: ${res.text}`).toBe(200);
      }
      expect(await trpc(reader).workspaces.get.query({ workspace_id: k.ws.id })).toEqual(k.ws);
      expect(await trpc(reader).workspaces.access.query({ workspace_id: k.ws.id }), k.ws.name).toEqual({
        workspace_id: k.ws.id,
        user_id: reader.user.id,
        ...k.access,
        guest: false,
      });
    }
  });

  type Sort = 'created_at' | 'name';
  type Order = 'asc' | 'desc';
  const byteCompare = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
  const idCompare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  /** The ids in the list's order (sort key, then id; desc the exact reverse). */
  function ordered(rows: WorkspaceBody[], sort: Sort, order: Order): string[] {
    const sorted = [...rows].sort((a, b) => {
      const key = sort === 'name' ? byteCompare(nameKey(a.name), nameKey(b.name)) : Date.parse(a.created_at) - Date.parse(b.created_at);
      return key !== 0 ? key : idCompare(a.id, b.id);
    });
    return (order === 'desc' ? sorted.reverse() : sorted).map((w) => w.id);
  }

  /** Every page of `path` with limit=1, as `account`: the ids in the order met. */
  async function walk(account: SignedUp, path: string): Promise<string[]> {
    const pages = await walkPages<WorkspaceBody>((cursor) =>
      app.request('GET', cursor ? `${path}&cursor=${encodeURIComponent(cursor)}` : path, { token: account.token }),
    );
    for (const page of pages) expect(page.items.length).toBeLessThanOrEqual(1);
    return pages.flatMap((page) => page.items.map((w) => w.id));
  }

  const ENDPOINTS = {
    'GET /workspaces': () => '/api/v1/workspaces?limit=1',
    'GET /workspaces?organization_id': () => `/api/v1/workspaces?organization_id=${visOrg}&limit=1`,
    'GET /organizations/{org_id}/workspaces': () => `/api/v1/organizations/${visOrg}/workspaces?limit=1`,
  };
  const LISTS = Object.keys(ENDPOINTS).flatMap((endpoint) =>
    (['false', 'true', 'all'] as const).flatMap((archived) => [undefined, 'zeta'].map((q) => ({ endpoint, archived, q }))),
  );

  it.each(LISTS)('$endpoint, archived=$archived, q=$q: absent from every page of every order', async ({ endpoint, archived, q }) => {
    const inOrganization = endpoint !== 'GET /workspaces';
    // Without organization_id the reader's own organization is listed too (its default workspace).
    const own = inOrganization
      ? []
      : [(await app.request('GET', wsPath(reader.workspace.id), { token: reader.token })).body as WorkspaceBody];
    const candidates = [
      ...known.filter((k) => !k.hidden).map((k) => ({ ws: k.ws, archived: k.archived })),
      ...own.map((ws) => ({ ws, archived: false })),
    ];
    const expected = candidates
      .filter((k) => archived === 'all' || (archived === 'true') === k.archived)
      .filter((k) => !q || nameKey(k.ws.name).includes(q) || k.ws.slug.includes(q))
      .map((k) => k.ws);
    expect(expected.length).toBeGreaterThan(0);
    const hidden = hiddenOnes().map((w) => w.id);
    const base = `${ENDPOINTS[endpoint as keyof typeof ENDPOINTS]()}&archived=${archived}${q ? `&q=${q}` : ''}`;
    for (const sort of ['created_at', 'name'] as const) {
      for (const order of ['asc', 'desc'] as const) {
        const ids = await walk(reader, `${base}&sort=${sort}&order=${order}`);
        for (const id of hidden) expect(ids).not.toContain(id);
        expect(ids, `${sort} ${order}`).toEqual(ordered(expected, sort, order));
      }
    }
  });

  it("lists the hidden ones to the organization's owner (the filter is what keeps them out)", async () => {
    const ids = await walk(orgOwner, `/api/v1/organizations/${visOrg}/workspaces?limit=1&archived=all&sort=name`);
    expect(ids).toEqual(
      ordered(
        known.map((k) => k.ws),
        'name',
        'asc',
      ),
    );
    expect(ids).toEqual(expect.arrayContaining(hiddenOnes().map((w) => w.id)));
  });

  it('keeps them out of the tRPC lists too', async () => {
    const visible = known.filter((k) => !k.hidden).map((k) => k.ws.id);
    const page = await trpc(reader).workspaces.listInOrganization.query({ org_id: visOrg, archived: 'all', limit: 100 });
    expect(page.items.map((w) => w.id).sort()).toEqual([...visible].sort());
    const filtered = await trpc(reader).workspaces.list.query({ organization_id: visOrg, archived: 'all', limit: 100 });
    expect(filtered.items.map((w) => w.id).sort()).toEqual([...visible].sort());
    const all = await trpc(reader).workspaces.list.query({ archived: 'all', q: 'hidden', limit: 100 });
    expect(all.items).toEqual([]);
  });

  it('follows a membership given and taken away at the next request', async () => {
    const ws = byName('Beta Hidden');
    await addToWorkspace(orgOwner, ws.id, reader, 'member');
    expect((await app.request('GET', wsPath(ws.id), { token: reader.token })).status).toBe(200);
    const listed = await app.request('GET', `/api/v1/organizations/${visOrg}/workspaces?q=beta`, { token: reader.token });
    expect(listed.body.items.map((w: WorkspaceBody) => w.id)).toEqual([ws.id]);
    expect((await app.request('DELETE', `${wsPath(ws.id)}/members/${reader.user.id}`, { token: reader.token })).status).toBe(204);
    expectApiError(await app.request('GET', wsPath(ws.id), { token: reader.token }), 404, 'NOT_FOUND');
    const after = await app.request('GET', `/api/v1/organizations/${visOrg}/workspaces?q=beta`, { token: reader.token });
    expect(after.body).toEqual({ items: [], next_cursor: null });
  });
});

// ---------------------------------------------------------------------------------------------
// 3. The derived columns move with every change that moves them
// ---------------------------------------------------------------------------------------------

interface Derived {
  visibility: Visibility;
  default_role: DefaultRole;
}
const d = (visibility: Visibility, default_role: DefaultRole): Derived => ({ visibility, default_role });

/**
 * The stored `effective_visibility` / `effective_default_role` are `expected`, and equal what
 * `GET …/settings` reports; a plain member without an explicit membership (`plain`, unless
 * null) is answered by them at this very request: `organization_visibility` with the default
 * role, or 404 when private.
 */
async function expectDerived(
  workspaceId: string,
  expected: Derived,
  plain: SignedUp | null = plainMember,
  owner: SignedUp = orgOwner,
): Promise<void> {
  expect(await derivedColumns(workspaceId), 'stored').toEqual(expected);
  const settings = await app.request('GET', `${wsPath(workspaceId)}/settings`, { token: owner.token });
  expect(settings.status, settings.text).toBe(200);
  const { visibility, default_role } = settings.body.effective.permissions;
  expect({ visibility, default_role }, 'GET …/settings').toEqual(expected);
  if (!plain) return;
  const access = await app.request('GET', `${wsPath(workspaceId)}/access`, { token: plain.token });
  if (expected.visibility === 'organization') {
    expect(access.body).toEqual({
      workspace_id: workspaceId,
      user_id: plain.user.id,
      role: expected.default_role,
      source: 'organization_visibility',
      guest: false,
    });
  } else {
    expectApiError(access, 404, 'NOT_FOUND');
  }
}

/** A plain member's update of the workspace: its status (200 with the role to write, 403 below it, 404 without access). */
async function plainUpdate(workspaceId: string, account: SignedUp = plainMember): Promise<number> {
  const res = await app.request('PUT', wsPath(workspaceId), {
    token: account.token,
    body: { description: `by ${account.user.name} ${Date.now()}` },
  });
  if (res.status !== 200) expectApiError(res, res.status, res.status === 403 ? 'FORBIDDEN' : 'NOT_FOUND');
  return res.status;
}

/** A fresh organization of orgOwner's with the plain member (and whoever else) in it; its default workspace. */
async function derivationTeam(others: Array<[SignedUp, 'admin' | 'member']> = []) {
  const organizationId = await createTeam(app, orgOwner, [[plainMember, 'member'], ...others]);
  const [defaultId] = await defaultWorkspaceIds(app, organizationId);
  return { organizationId, defaultId: defaultId! };
}

const organizationList = async (account: SignedUp, organizationId: string) => {
  const res = await app.request('GET', `/api/v1/organizations/${organizationId}/workspaces?limit=100`, { token: account.token });
  expect(res.status, res.text).toBe(200);
  return (res.body.items as WorkspaceBody[]).map((w) => w.id).sort();
};

describe('the derived access columns', () => {
  it('move with the workspace settings (set and null), and decide who writes', async () => {
    const { organizationId } = await derivationTeam();
    const ws = await createWorkspace(app, orgOwner.token, organizationId);
    await expectDerived(ws.id, d('organization', 'member'));
    expect(await plainUpdate(ws.id)).toBe(403);

    await putWorkspaceSettings(ws.id, { permissions: { visibility: 'private' } });
    await expectDerived(ws.id, d('private', 'member'));
    expect(await plainUpdate(ws.id)).toBe(404);

    await putWorkspaceSettings(ws.id, { permissions: { visibility: null, default_role: 'admin' } });
    await expectDerived(ws.id, d('organization', 'admin'));
    expect(await plainUpdate(ws.id)).toBe(200);

    // default_role viewer: plain members read, and cannot write, on both faces.
    const settings = await trpc(orgOwner).workspaces.updateSettings.mutate({
      workspace_id: ws.id,
      permissions: { default_role: 'viewer' },
    });
    expect(settings.effective.permissions).toMatchObject({ visibility: 'organization', default_role: 'viewer' });
    await expectDerived(ws.id, d('organization', 'viewer'));
    expect(await plainUpdate(ws.id)).toBe(403);
    await expectTrpcFailure(trpc(plainMember).workspaces.update.mutate({ workspace_id: ws.id, name: 'Nope' }), 403, 'FORBIDDEN');
    expect(await trpc(plainMember).workspaces.get.query({ workspace_id: ws.id })).toMatchObject({ id: ws.id });

    await putWorkspaceSettings(ws.id, { permissions: null });
    await expectDerived(ws.id, d('organization', 'member'));

    // A member added without a role gets the workspace's effective default role.
    const viewers = await createWorkspace(app, orgOwner.token, organizationId, { settings: { permissions: { default_role: 'viewer' } } });
    const added = await app.request('POST', `${wsPath(viewers.id)}/members`, {
      token: orgOwner.token,
      body: { user_id: plainMember.user.id },
    });
    expect(added.status, added.text).toBe(201);
    expect(added.body.role).toBe('viewer');
  });

  it("move with the organization's settings, in every workspace that inherits them", async () => {
    const { organizationId, defaultId } = await derivationTeam();
    const inherits = await createWorkspace(app, orgOwner.token, organizationId);
    const visible = await createWorkspace(app, orgOwner.token, organizationId, {
      settings: { permissions: { visibility: 'organization' } },
    });
    const admins = await createWorkspace(app, orgOwner.token, organizationId, { settings: { permissions: { default_role: 'admin' } } });

    await putOrganizationSettings(organizationId, { permissions: { visibility: 'private' } });
    await expectDerived(inherits.id, d('private', 'member'));
    await expectDerived(visible.id, d('organization', 'member'));
    await expectDerived(admins.id, d('private', 'admin'));
    await expectDerived(defaultId, d('private', 'member'));
    expect(await organizationList(plainMember, organizationId)).toEqual([visible.id]);

    await putOrganizationSettings(organizationId, { permissions: { visibility: null, default_role: 'viewer' } });
    await expectDerived(inherits.id, d('organization', 'viewer'));
    await expectDerived(visible.id, d('organization', 'viewer'));
    await expectDerived(admins.id, d('organization', 'admin'));
    await expectDerived(defaultId, d('organization', 'viewer'));
    // default_role viewer at the organization: plain members read and cannot write, but where a workspace says admin.
    expect(await plainUpdate(inherits.id)).toBe(403);
    expect((await app.request('GET', wsPath(inherits.id), { token: plainMember.token })).status).toBe(200);
    expect(await plainUpdate(admins.id)).toBe(200);

    await putOrganizationSettings(organizationId, { permissions: { default_role: 'admin' } });
    await expectDerived(inherits.id, d('organization', 'admin'));
    expect(await plainUpdate(inherits.id)).toBe(200);

    await putOrganizationSettings(organizationId, { permissions: { default_role: null } });
    await expectDerived(inherits.id, d('organization', 'member'));
    await expectDerived(admins.id, d('organization', 'admin'));
    expect(await organizationList(plainMember, organizationId)).toEqual([defaultId, inherits.id, visible.id, admins.id].sort());
  });

  it("move with the organization's locks: private under a lock hides all but explicit memberships, unlocking brings them back", async () => {
    const { organizationId, defaultId } = await derivationTeam();
    const inherits = await createWorkspace(app, orgOwner.token, organizationId);
    const visible = await createWorkspace(app, orgOwner.token, organizationId, {
      settings: { permissions: { visibility: 'organization' } },
    });
    const admins = await createWorkspace(app, orgOwner.token, organizationId, { settings: { permissions: { default_role: 'admin' } } });
    const given = await createWorkspace(app, orgOwner.token, organizationId);
    await addToWorkspace(orgOwner, given.id, plainMember, 'viewer');
    const everyone = [defaultId, inherits.id, visible.id, admins.id, given.id].sort();
    expect(await organizationList(plainMember, organizationId)).toEqual(everyone);

    await putOrganizationSettings(organizationId, { permissions: { visibility: 'private' }, locks: ['permissions.visibility'] });
    await expectDerived(inherits.id, d('private', 'member'));
    await expectDerived(visible.id, d('private', 'member')); // its override is shadowed
    await expectDerived(admins.id, d('private', 'admin'));
    await expectDerived(defaultId, d('private', 'member'));
    await expectDerived(given.id, d('private', 'member'), null);
    expect(await organizationList(plainMember, organizationId)).toEqual([given.id]);
    expect((await app.request('GET', wsPath(given.id), { token: plainMember.token })).status).toBe(200);
    expect(await organizationList(orgOwner, organizationId)).toEqual(everyone);
    // A write to a workspace whose override the lock shadows derives under the lock as well.
    await putWorkspaceSettings(visible.id, { features: { touched: true } });
    await expectDerived(visible.id, d('private', 'member'));

    await putOrganizationSettings(organizationId, {
      permissions: { visibility: 'organization', default_role: 'viewer' },
      locks: ['permissions'],
    });
    await expectDerived(inherits.id, d('organization', 'viewer'));
    await expectDerived(admins.id, d('organization', 'viewer')); // its admin override is shadowed
    expect(await plainUpdate(admins.id)).toBe(403);
    await putWorkspaceSettings(admins.id, { features: { touched: true } });
    await expectDerived(admins.id, d('organization', 'viewer'));
    await putOrganizationSettings(organizationId, { permissions: { visibility: 'private' } });
    await expectDerived(visible.id, d('private', 'viewer'));
    expect(await organizationList(plainMember, organizationId)).toEqual([given.id]);

    // Unlocked: the workspaces' own overrides hold again (the organization still says private).
    await putOrganizationSettings(organizationId, { locks: null });
    await expectDerived(inherits.id, d('private', 'viewer'));
    await expectDerived(visible.id, d('organization', 'viewer'));
    await expectDerived(admins.id, d('private', 'admin'));
    expect(await organizationList(plainMember, organizationId)).toEqual([visible.id, given.id].sort());

    await putOrganizationSettings(organizationId, { permissions: { visibility: null, default_role: null } });
    await expectDerived(inherits.id, d('organization', 'member'));
    await expectDerived(admins.id, d('organization', 'admin'));
    await expectDerived(defaultId, d('organization', 'member'));
    expect(await organizationList(plainMember, organizationId)).toEqual(everyone);
  });

  it("are derived at create, under the organization's values and locks", async () => {
    const { organizationId } = await derivationTeam();
    await putOrganizationSettings(organizationId, { permissions: { default_role: 'viewer' } });
    const secret = await createWorkspace(app, orgOwner.token, organizationId, { settings: PRIVATE });
    await expectDerived(secret.id, d('private', 'viewer'));
    const admins = await createWorkspace(app, orgOwner.token, organizationId, { settings: { permissions: { default_role: 'admin' } } });
    await expectDerived(admins.id, d('organization', 'admin'));
    const plain = await trpc(orgOwner).workspaces.create.mutate({ organization_id: organizationId, name: uniqueWorkspaceName('Create') });
    await expectDerived(plain.id, d('organization', 'viewer'));

    await putOrganizationSettings(organizationId, { permissions: { visibility: 'private' }, locks: ['permissions.visibility'] });
    const locked = await createWorkspace(app, orgOwner.token, organizationId, { settings: { permissions: { default_role: 'member' } } });
    await expectDerived(locked.id, d('private', 'member'));
    const scoped = await app.request('POST', `/api/v1/organizations/${organizationId}/workspaces`, {
      token: orgOwner.token,
      body: { name: uniqueWorkspaceName('Scoped') },
    });
    expect(scoped.status, scoped.text).toBe(201);
    await expectDerived(scoped.body.id, d('private', 'viewer'));
    const before = await snapshot();
    const refused = await app.request('POST', '/api/v1/workspaces', {
      token: orgOwner.token,
      body: { organization_id: organizationId, name: 'Refused', settings: { permissions: { visibility: 'organization' } } },
    });
    expectApiError(refused, 409, 'CONFLICT');
    expect(await snapshot()).toEqual(before);
  });

  it("are derived at clone: the source's overrides under the target organization's rules", async () => {
    const { organizationId: source } = await derivationTeam();
    const { organizationId: target } = await derivationTeam();
    await putOrganizationSettings(target, {
      permissions: { visibility: 'private', default_role: 'viewer' },
      locks: ['permissions.default_role'],
    });
    const visible = await createWorkspace(app, orgOwner.token, source, { settings: { permissions: { visibility: 'organization' } } });
    const admins = await createWorkspace(app, orgOwner.token, source, { settings: { permissions: { default_role: 'admin' } } });
    const bare = await createWorkspace(app, orgOwner.token, source);
    const secret = await createWorkspace(app, orgOwner.token, source, { settings: PRIVATE });
    const clone = async (ws: WorkspaceBody, organizationId?: string) => {
      const res = await app.request('POST', `${wsPath(ws.id)}/clone`, {
        token: orgOwner.token,
        body: { name: uniqueWorkspaceName('Clone'), ...(organizationId ? { organization_id: organizationId } : {}) },
      });
      expect(res.status, res.text).toBe(201);
      return res.body as WorkspaceBody;
    };

    await expectDerived((await clone(visible, target)).id, d('organization', 'viewer'));
    await expectDerived((await clone(bare, target)).id, d('private', 'viewer'));
    const viaTrpc = await trpc(orgOwner).workspaces.clone.mutate({
      workspace_id: secret.id,
      name: uniqueWorkspaceName('Clone'),
      organization_id: target,
    });
    await expectDerived(viaTrpc.id, d('private', 'viewer'));
    await expectDerived((await clone(secret)).id, d('private', 'member'));
    await expectDerived((await clone(admins)).id, d('organization', 'admin'));

    // An override under the target's lock enters no workspace.
    const before = await snapshot();
    const refused = await app.request('POST', `${wsPath(admins.id)}/clone`, {
      token: orgOwner.token,
      body: { name: 'Refused', organization_id: target },
    });
    expectApiError(refused, 409, 'CONFLICT');
    expect(await snapshot()).toEqual(before);
  });

  it("are derived at provision: the template's overrides and the item's, under the organization's rules", async () => {
    const { organizationId } = await derivationTeam();
    await putOrganizationSettings(organizationId, { permissions: { default_role: 'viewer' } });
    const template = await createWorkspace(app, orgOwner.token, organizationId, { settings: PRIVATE });
    const provision = async (body: Record<string, unknown>) => {
      const res = await app.request('POST', '/api/v1/workspaces/provision', {
        token: orgOwner.token,
        body: { organization_id: organizationId, ...body },
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body.failed).toEqual([]);
      return res.body.created as WorkspaceBody[];
    };
    const [fromTemplate, admins, visible] = await provision({
      template_workspace_id: template.id,
      workspaces: [
        { name: uniqueWorkspaceName('Prov') },
        { name: uniqueWorkspaceName('Prov'), settings: { permissions: { default_role: 'admin' } } },
        { name: uniqueWorkspaceName('Prov'), settings: { permissions: { visibility: 'organization' } } },
      ],
    });
    await expectDerived(fromTemplate!.id, d('private', 'viewer'));
    await expectDerived(admins!.id, d('private', 'admin'));
    await expectDerived(visible!.id, d('organization', 'viewer'));

    await putOrganizationSettings(organizationId, { permissions: { visibility: 'private' }, locks: ['permissions.visibility'] });
    // The lock moved what was there…
    await expectDerived(visible!.id, d('private', 'viewer'));
    // …and holds what is provisioned under it.
    const [bare, members] = await provision({
      workspaces: [
        { name: uniqueWorkspaceName('Prov') },
        { name: uniqueWorkspaceName('Prov'), settings: { permissions: { default_role: 'member' } } },
      ],
    });
    await expectDerived(bare!.id, d('private', 'viewer'));
    await expectDerived(members!.id, d('private', 'member'));
    const [viaTrpc] = (
      await trpc(orgOwner).workspaces.provision.mutate({
        organization_id: organizationId,
        workspaces: [{ name: uniqueWorkspaceName('Prov') }],
      })
    ).created;
    await expectDerived(viaTrpc!.id, d('private', 'viewer'));

    // The template's private override is under the lock: the whole call is refused.
    const before = await snapshot();
    const refused = await app.request('POST', '/api/v1/workspaces/provision', {
      token: orgOwner.token,
      body: { organization_id: organizationId, template_workspace_id: template.id, workspaces: [{ name: 'Refused' }] },
    });
    expectApiError(refused, 409, 'CONFLICT');
    expect(await snapshot()).toEqual(before);
  });

  it("hold for the default workspace, which follows its settings while the organization's owners and admins keep it", async () => {
    // A signup's organization and default workspace (read by its owner).
    await expectDerived(plainMember.workspace.id, d('organization', 'member'), null, plainMember);
    const { organizationId, defaultId } = await derivationTeam([[orgAdmin, 'admin']]);
    await expectDerived(defaultId, d('organization', 'member'));

    await putOrganizationSettings(organizationId, { permissions: { visibility: 'private' } });
    await expectDerived(defaultId, d('private', 'member'));
    for (const account of [orgOwner, orgAdmin]) {
      const res = await app.request('GET', `${wsPath(defaultId)}/access`, { token: account.token });
      expect(res.body).toMatchObject({ role: 'admin', source: 'organization_role' });
    }
    expect(await organizationList(plainMember, organizationId)).toEqual([]);
    expect(await organizationList(orgAdmin, organizationId)).toEqual([defaultId]);

    await putWorkspaceSettings(defaultId, { permissions: { visibility: 'organization' } });
    await expectDerived(defaultId, d('organization', 'member'));
    expect(await organizationList(plainMember, organizationId)).toEqual([defaultId]);
  });
});

// ---------------------------------------------------------------------------------------------
// 4. The JS derivation and the SQL one agree, over every combination
// ---------------------------------------------------------------------------------------------

describe('effectiveAccess (JS), the stored columns (SQL) and resolveEffectiveSettings agree (visibility, default_role, allow_guests)', () => {
  const VISIBILITIES = [undefined, 'private', 'organization'] as const;
  const ROLES = [undefined, 'viewer', 'admin'] as const;
  /** A workspace may also say `member` (the system default) against an organization's other value. */
  const OVERRIDE_ROLES = [...ROLES, 'member'] as const;
  const GUESTS = [undefined, true, false] as const;
  const LOCKS = [[], ['permissions'], ['permissions.visibility'], ['permissions.default_role'], ['permissions.allow_guests']];
  const layer = (visibility?: Visibility, default_role?: DefaultRole, allow_guests?: boolean): SettingsLayer =>
    visibility || default_role || allow_guests !== undefined
      ? {
          permissions: {
            ...(visibility ? { visibility } : {}),
            ...(default_role ? { default_role } : {}),
            ...(allow_guests !== undefined ? { allow_guests } : {}),
          },
        }
      : {};
  const OVERRIDES = VISIBILITIES.flatMap((v) => OVERRIDE_ROLES.flatMap((r) => GUESTS.map((g) => layer(v, r, g))));
  /** Whether a workspace may hold `overrides` under `locks` (a value under a lock is refused). */
  const allowedUnder = (locks: string[], overrides: SettingsLayer) =>
    !locks.some((lock) =>
      lock === 'permissions'
        ? overrides.permissions !== undefined
        : overrides.permissions?.[lock.split('.')[1] as 'visibility'] !== undefined,
    );

  it('for every organization value, workspace override and lock, across every change between them', async () => {
    const organizationId = await createTeam(app, orgOwner);
    const others = () =>
      app.query(
        'select id, effective_visibility, effective_default_role, effective_allow_guests, version from workspaces where organization_id <> $1 order by id',
        [organizationId],
      );
    const elsewhere = await others();
    const provision = async (items: SettingsLayer[]) => {
      if (items.length === 0) return;
      const res = await app.request('POST', '/api/v1/workspaces/provision', {
        token: orgOwner.token,
        body: { organization_id: organizationId, workspaces: items.map((settings) => ({ name: uniqueWorkspaceName('Prop'), settings })) },
      });
      expect(res.status, res.text).toBe(201);
    };
    // Every override, written while nothing is locked: these rows move with each change below.
    await provision(OVERRIDES);
    const probe = await createWorkspace(app, orgOwner.token, organizationId, { name: uniqueWorkspaceName('Probe') });
    // The migrations' backfills: visibility and default role (0005), allow_guests (0006).
    const backfillUpdates = ['0005_workspace-access', '0006_invitations'].map((migration) => {
      const backfill = readFileSync(new URL(`../drizzle/${migration}.sql`, import.meta.url), 'utf8');
      const update = backfill.slice(backfill.indexOf('UPDATE "workspaces"')).trim().replace(/;$/, '');
      expect(update).toMatch(/^UPDATE "workspaces" AS w SET[\s\S]*WHERE o\."id" = w\."organization_id"$/);
      return update;
    });

    const states = LOCKS.flatMap((locks) => VISIBILITIES.flatMap((visibility) => ROLES.map((role) => ({ locks, visibility, role }))));
    let step = 0;
    for (const { locks, visibility, role } of states) {
      step++;
      // allow_guests takes each of its values in turn, so every change between them happens too.
      const guests = GUESTS[step % GUESTS.length];
      const label = `organization ${JSON.stringify({ visibility, role, guests, locks })}`;
      await putOrganizationSettings(organizationId, {
        permissions: { visibility: visibility ?? null, default_role: role ?? null, allow_guests: guests ?? null },
        locks,
      });
      const rules = { settings: layer(visibility, role, guests), locks };
      const [stored] = await app.query<{ settings: SettingsLayer; settings_locks: string[] }>(
        'select settings, settings_locks from organizations where id = $1',
        [organizationId],
      );
      expect({ settings: stored!.settings, locks: stored!.settings_locks }, label).toEqual(rules);

      // New rows under these rules: through provisioning's SQL (each override allowed), and a create's JS (one of them).
      const allowed = OVERRIDES.filter((o) => allowedUnder(locks, o));
      await provision(allowed);
      await createWorkspace(app, orgOwner.token, organizationId, {
        name: uniqueWorkspaceName('Prop'),
        settings: allowed[step % allowed.length],
      });
      // And a settings write (JS): the probe takes another override the locks allow (null, which they allow, for the rest).
      const next = allowed[(step * 5) % allowed.length]!.permissions;
      const touched = await app.request('PUT', `${wsPath(probe.id)}/settings`, {
        token: orgOwner.token,
        body: {
          permissions: {
            visibility: next?.visibility ?? null,
            default_role: next?.default_role ?? null,
            allow_guests: next?.allow_guests ?? null,
          },
        },
      });
      expect(touched.status, touched.text).toBe(200);

      const rows = await app.query<{
        id: string;
        settings: SettingsLayer;
        effective_visibility: Visibility;
        effective_default_role: DefaultRole;
        effective_allow_guests: boolean;
      }>(
        'select id, settings, effective_visibility, effective_default_role, effective_allow_guests from workspaces where organization_id = $1 order by id',
        [organizationId],
      );
      const resolved = rows.map((row) => {
        const {
          visibility: v,
          default_role: r,
          allow_guests: g,
        } = resolveEffectiveSettings(rules.settings, row.settings, locks).effective.permissions;
        return { id: row.id, effectiveVisibility: v, effectiveDefaultRole: r, effectiveAllowGuests: g };
      });
      expect(
        rows.map((row) => ({
          id: row.id,
          effectiveVisibility: row.effective_visibility,
          effectiveDefaultRole: row.effective_default_role,
          effectiveAllowGuests: row.effective_allow_guests,
        })),
        `stored, ${label}`,
      ).toEqual(resolved);
      expect(
        rows.map((row) => ({ id: row.id, ...effectiveAccess(rules, row.settings) })),
        `effectiveAccess, ${label}`,
      ).toEqual(resolved);
      // The migrations' backfills derive the same values (they rewrite none of them).
      for (const update of backfillUpdates) await app.query(`${update} AND w."organization_id" = $1`, [organizationId]);
      expect(
        await app.query(
          'select id, effective_visibility, effective_default_role, effective_allow_guests from workspaces where organization_id = $1 order by id',
          [organizationId],
        ),
        `backfill, ${label}`,
      ).toEqual(rows.map(({ settings: _settings, ...derived }) => derived));
    }
    // No other organization's rows moved.
    expect(await others()).toEqual(elsewhere);
  });
});
