import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup, signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { createTeam, tamperCursor } from './helpers/org-helpers';
import { createWorkspace, uniqueWorkspaceName, workspaceCount } from './helpers/workspace-helpers';
import { expectApiError } from './helpers/errors';
import { expectFailure, expectOk, restRequest, trpcOutcome, withQuery, type FaceOutcome } from './helpers/faces';
import { storedEvents, type ApiEvent, type Change } from './helpers/audit-helpers';
import { isoSql, withRawTransaction } from './helpers/sql';
import { UNKNOWN_UUID } from './helpers/values';

/**
 * A workspace's explicit members and the access answer (README, Workspace access): the members
 * API (list, get, add, change role, remove, leave), `…/access` and its sources, the
 * `workspace.member_*` audit events, memberships ending with the organization's (removal,
 * leaving, account deletion) or the workspace, `auth/me`'s `workspace_memberships`, bad
 * input, idempotent replays and clone / template sources that re-check access, and, on
 * PostgreSQL, concurrent changes of one member.
 *
 * Every operation runs on both faces (REST and the real tRPC client) through `FACES`, and every
 * test reads the database afterwards: the `workspace_members` rows and the `audit_events` rows.
 */

const onPostgres = Boolean(process.env.DATABASE_URL);

let app: TestApp;
let owner: SignedUp;
let admin: SignedUp;
let member: SignedUp;
let viewer: SignedUp;
let outsider: SignedUp;

beforeAll(async () => {
  // The access rules are under test here, not the request deadline (test/database-deadline.test.ts
  // has it): on a busy 2-core machine five concurrent signups on the one PGlite connection passed
  // the 2 s default and answered 503.
  app = await startTestApp({ DATABASE_DEADLINE_MS: '10000' });
  [owner, admin, member, viewer, outsider] = await signupMany(app, ['Owner', 'Admin', 'Member', 'Viewer', 'Outsider']);
});
afterAll(async () => {
  await app?.close();
});

/**
 * A fresh organization of the owner's: admin (admin), member and viewer (plain members; each
 * test gives them their workspace roles). The outsider stays out.
 */
const team = () =>
  createTeam(app, owner, [
    [admin, 'admin'],
    [member, 'member'],
    [viewer, 'member'],
  ]);

const PRIVATE = { settings: { permissions: { visibility: 'private' } } };
const privateWorkspace = async (org: string, body: Record<string, unknown> = {}) =>
  (await createWorkspace(app, owner.token, org, { ...PRIVATE, ...body })).id;
const visibleWorkspace = async (org: string, body: Record<string, unknown> = {}) => (await createWorkspace(app, owner.token, org, body)).id;

/** Setup, not under test: adds `user` to the workspace as `by` (the owner by default) over REST. */
async function grant(ws: string, user: SignedUp, role: 'admin' | 'member' | 'viewer', by: SignedUp = owner) {
  const res = await app.request('POST', `/api/v1/workspaces/${ws}/members`, { token: by.token, body: { user_id: user.user.id, role } });
  expect(res.status, res.text).toBe(201);
}

async function setOrganizationRole(org: string, user: SignedUp, role: 'owner' | 'admin' | 'member') {
  const res = await app.request('PUT', `/api/v1/organizations/${org}/members/${user.user.id}`, { token: owner.token, body: { role } });
  expect(res.status, res.text).toBe(200);
}

// ---------------------------------------------------------------------------------------------
// The two faces
// ---------------------------------------------------------------------------------------------

/** One answer, whatever the face (see FaceOutcome), with the REST answer's Location header (null on tRPC). */
interface Outcome extends FaceOutcome {
  location: string | null;
}
type Body = Record<string, unknown>;

interface Face {
  name: 'REST' | 'tRPC';
  list(token: string, ws: string, page?: { limit?: number; cursor?: string }): Promise<Outcome>;
  get(token: string, ws: string, userId: string): Promise<Outcome>;
  add(token: string, ws: string, body: Body): Promise<Outcome>;
  update(token: string, ws: string, userId: string, body: Body): Promise<Outcome>;
  remove(token: string, ws: string, userId: string): Promise<Outcome>;
  access(token: string, ws: string, userId?: string): Promise<Outcome>;
  me(token: string): Promise<Outcome>;
  workspaceEvents(token: string, ws: string): Promise<Outcome>;
  organizationEvents(token: string, org: string): Promise<Outcome>;
  getWorkspace(token: string, ws: string): Promise<Outcome>;
  /** The caller's workspaces (every organization's) whose name or slug holds `q`. */
  findWorkspaces(token: string, q: string): Promise<Outcome>;
  deleteWorkspace(token: string, ws: string): Promise<Outcome>;
  removeFromOrganization(token: string, org: string, userId: string): Promise<Outcome>;
  deleteAccount(token: string): Promise<Outcome>;
  createWorkspace(token: string, body: Body, idempotencyKey: string): Promise<Outcome>;
  clone(token: string, ws: string, body: Body): Promise<Outcome>;
  provision(token: string, body: Body): Promise<Outcome>;
}

/** A REST call; an error answer is checked against the contract's shape. */
async function restCall(method: string, path: string, token: string, body?: unknown, headers?: Record<string, string>): Promise<Outcome> {
  const res = await restRequest(app, method, path, { token, body, headers });
  return { status: res.status, body: res.body, location: res.headers.get('location') };
}

/** A tRPC call; a failure is checked (data.code, data.httpStatus, no stack) and answered in the REST error shape. */
async function trpcCall(successStatus: number, call: () => Promise<unknown>): Promise<Outcome> {
  return { ...(await trpcOutcome(successStatus, call)), location: null };
}

const REST: Face = {
  name: 'REST',
  list: (token, ws, page = {}) => restCall('GET', withQuery(`/workspaces/${ws}/members`, page), token),
  get: (token, ws, userId) => restCall('GET', `/workspaces/${ws}/members/${userId}`, token),
  add: (token, ws, body) => restCall('POST', `/workspaces/${ws}/members`, token, body),
  update: (token, ws, userId, body) => restCall('PUT', `/workspaces/${ws}/members/${userId}`, token, body),
  remove: (token, ws, userId) => restCall('DELETE', `/workspaces/${ws}/members/${userId}`, token),
  access: (token, ws, userId) => restCall('GET', withQuery(`/workspaces/${ws}/access`, { user_id: userId }), token),
  me: (token) => restCall('GET', '/auth/me', token),
  workspaceEvents: (token, ws) => restCall('GET', `/workspaces/${ws}/events?limit=100`, token),
  organizationEvents: (token, org) => restCall('GET', `/organizations/${org}/events?limit=100`, token),
  getWorkspace: (token, ws) => restCall('GET', `/workspaces/${ws}`, token),
  findWorkspaces: (token, q) => restCall('GET', withQuery('/workspaces', { q, limit: 100 }), token),
  deleteWorkspace: (token, ws) => restCall('DELETE', `/workspaces/${ws}`, token),
  removeFromOrganization: (token, org, userId) => restCall('DELETE', `/organizations/${org}/members/${userId}`, token),
  deleteAccount: (token) => restCall('DELETE', '/auth/me', token),
  createWorkspace: (token, body, key) => restCall('POST', '/workspaces', token, body, { 'Idempotency-Key': key }),
  clone: (token, ws, body) => restCall('POST', `/workspaces/${ws}/clone`, token, body),
  provision: (token, body) => restCall('POST', '/workspaces/provision', token, body),
};

const TRPC: Face = {
  name: 'tRPC',
  list: (token, ws, page = {}) => trpcCall(200, () => app.trpc(token).workspaces.members.list.query({ workspace_id: ws, ...page })),
  get: (token, ws, userId) => trpcCall(200, () => app.trpc(token).workspaces.members.get.query({ workspace_id: ws, user_id: userId })),
  add: (token, ws, body) => trpcCall(201, () => app.trpc(token).workspaces.members.add.mutate({ workspace_id: ws, ...body } as never)),
  update: (token, ws, userId, body) =>
    trpcCall(200, () => app.trpc(token).workspaces.members.update.mutate({ workspace_id: ws, user_id: userId, ...body } as never)),
  remove: (token, ws, userId) =>
    trpcCall(204, () => app.trpc(token).workspaces.members.remove.mutate({ workspace_id: ws, user_id: userId })),
  access: (token, ws, userId) =>
    trpcCall(200, () =>
      app.trpc(token).workspaces.access.query({ workspace_id: ws, ...(userId === undefined ? {} : { user_id: userId }) }),
    ),
  me: (token) => trpcCall(200, () => app.trpc(token).auth.me.query()),
  workspaceEvents: (token, ws) => trpcCall(200, () => app.trpc(token).audit.listWorkspaceEvents.query({ workspace_id: ws, limit: 100 })),
  organizationEvents: (token, org) => trpcCall(200, () => app.trpc(token).audit.listOrganizationEvents.query({ org_id: org, limit: 100 })),
  getWorkspace: (token, ws) => trpcCall(200, () => app.trpc(token).workspaces.get.query({ workspace_id: ws })),
  findWorkspaces: (token, q) => trpcCall(200, () => app.trpc(token).workspaces.list.query({ q, limit: 100 })),
  deleteWorkspace: (token, ws) => trpcCall(204, () => app.trpc(token).workspaces.delete.mutate({ workspace_id: ws })),
  removeFromOrganization: (token, org, userId) =>
    trpcCall(204, () => app.trpc(token).organizations.removeMember.mutate({ org_id: org, user_id: userId })),
  deleteAccount: (token) => trpcCall(204, () => app.trpc(token).auth.deleteMe.mutate()),
  createWorkspace: (token, body, key) =>
    trpcCall(201, () => app.trpc(token).workspaces.create.mutate(body as never, { context: { headers: { 'Idempotency-Key': key } } })),
  clone: (token, ws, body) => trpcCall(201, () => app.trpc(token).workspaces.clone.mutate({ workspace_id: ws, ...body } as never)),
  provision: (token, body) => trpcCall(201, () => app.trpc(token).workspaces.provision.mutate(body as never)),
};

const FACES = [REST, TRPC];

/** A 400 whose issues name `path` (on both faces the issues are `{path: 'a.b', message}`). */
function expectIssue(outcome: Outcome, path: string) {
  expectFailure(outcome, 400, 'BAD_REQUEST');
  expect(
    (outcome.body.issues as Array<{ path: string }> | undefined)?.map((i) => i.path),
    JSON.stringify(outcome.body),
  ).toContain(path);
}

const notInOrganization = (userId: string) => `User ${userId} is not a member of this workspace's organization`;

// ---------------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------------

interface MemberRow {
  user_id: string;
  role: string;
  created_at: string;
}

/** The workspace's explicit members as stored, oldest first (the list's order). */
const memberRows = (ws: string) =>
  app.query<MemberRow>(
    `select user_id, role, ${isoSql('created_at')} as created_at from workspace_members where workspace_id = $1 order by created_at, user_id`,
    [ws],
  );

/** `{ user_id: role }` of the workspace's explicit members. */
const rolesIn = async (ws: string) => Object.fromEntries((await memberRows(ws)).map((r) => [r.user_id, r.role]));

/** A user's explicit memberships as stored, oldest first (auth/me's order). */
const membershipsOf = (userId: string) =>
  app.query<{ workspace_id: string; organization_id: string; role: string }>(
    `select wm.workspace_id, w.organization_id, wm.role from workspace_members wm join workspaces w on w.id = wm.workspace_id
      where wm.user_id = $1 order by wm.created_at, wm.workspace_id`,
    [userId],
  );

/** What a refused request must leave as it was: the organization's explicit memberships and its event count. */
async function organizationState(org: string) {
  const members = await app.query(
    `select wm.workspace_id, wm.user_id, wm.role, ${isoSql('wm.created_at')} as created_at
       from workspace_members wm join workspaces w on w.id = wm.workspace_id where w.organization_id = $1
      order by wm.workspace_id, wm.user_id`,
    [org],
  );
  const [events] = await app.query<{ n: number }>('select count(*)::int as n from audit_events where organization_id = $1', [org]);
  return { members, events: events!.n };
}

/** The membership events of one workspace, as stored, newest first (the lists' order). */
const memberEventsOf = (ws: string) => storedEvents(app, `workspace_id = $1 and target_type = 'member'`, [ws]);

const added = (email: string, role: string) => ({ email: { from: null, to: email }, role: { from: null, to: role } });
const removed = (email: string, role: string) => ({ email: { from: email, to: null }, role: { from: role, to: null } });
const roleChanged = (from: string, to: string) => ({ role: { from, to } });

interface ExpectedEvent {
  action: 'workspace.member_added' | 'workspace.member_role_changed' | 'workspace.member_removed';
  ws: string;
  target: SignedUp;
  actor: { id: string; email: string };
  changes: Record<string, Change>;
}
const actorOf = (account: SignedUp) => ({ id: account.user.id, email: account.user.email });

/** JSON with sorted keys (jsonb answers its keys in an order of its own). */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_key, inner: unknown) =>
    inner && typeof inner === 'object' && !Array.isArray(inner)
      ? Object.fromEntries(Object.entries(inner).sort(([a], [b]) => a.localeCompare(b)))
      : inner,
  );
const eventKey = (e: { action: string; workspace_id: string | null; target_id: string; actor: unknown; changes: unknown }) =>
  canonical([e.action, e.workspace_id, e.target_id, e.actor, e.changes]);

/**
 * The membership events stored for the workspaces of `expected` are exactly those (order free:
 * their `changes` say which came first), each with target_type member, the user as target,
 * the workspace set, the actor; and both lists answer them as stored — the workspace's (as
 * `listAs`, through `face`) and the organization's (as the owner).
 */
async function expectMemberEvents(face: Face, org: string, expected: ExpectedEvent[], listAs: SignedUp = owner): Promise<ApiEvent[]> {
  const workspaceIds = [...new Set(expected.map((e) => e.ws))];
  const stored = (await Promise.all(workspaceIds.map(memberEventsOf))).flat();
  const want = expected.map((e) => ({
    organization_id: org,
    workspace_id: e.ws,
    actor: e.actor,
    action: e.action,
    target_type: 'member',
    target_id: e.target.user.id,
    changes: e.changes,
  }));
  const comparable = stored.map(({ id: _id, request_id: _rid, client_request_id: _crid, created_at: _at, ...rest }) => rest);
  expect([...comparable].sort((a, b) => eventKey(a).localeCompare(eventKey(b)))).toEqual(
    [...want].sort((a, b) => eventKey(a).localeCompare(eventKey(b))),
  );
  for (const ws of workspaceIds) {
    const ofWorkspace = stored.filter((e) => e.workspace_id === ws);
    const listed = await face.workspaceEvents(listAs.token, ws);
    expectOk(listed, 200);
    expect((listed.body.items as ApiEvent[]).filter((e) => e.target_type === 'member').map(pickEvent)).toEqual(ofWorkspace.map(pickEvent));
  }
  const orgListed = await face.organizationEvents(owner.token, org);
  expectOk(orgListed, 200);
  const inOrgList = (orgListed.body.items as ApiEvent[]).filter(
    (e) => workspaceIds.includes(e.workspace_id!) && e.target_type === 'member',
  );
  expect(inOrgList.map(pickEvent).sort(byId)).toEqual(stored.map(pickEvent).sort(byId));
  return stored;
}
const pickEvent = (e: ApiEvent) => ({
  id: e.id,
  organization_id: e.organization_id,
  workspace_id: e.workspace_id,
  actor: e.actor,
  action: e.action,
  target_type: e.target_type,
  target_id: e.target_id,
  changes: e.changes,
  request_id: e.request_id,
  created_at: e.created_at,
});
const byId = (a: { id: string }, b: { id: string }) => a.id.localeCompare(b.id);

// ---------------------------------------------------------------------------------------------
// Members API
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('members API over $name', (face) => {
  it('lists the explicit members oldest first, keyset-paginated; a cursor of another workspace (or tampered) is 400', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    const other = await privateWorkspace(org);
    for (const [user, role] of [
      [viewer, 'viewer'],
      [member, 'member'],
      [admin, 'admin'],
      [owner, 'admin'],
    ] as const)
      await grant(ws, user, role);
    await grant(other, member, 'viewer');
    await grant(other, viewer, 'viewer');
    const stored = await memberRows(ws);
    expect(stored).toHaveLength(4);
    const names = new Map([owner, admin, member, viewer].map((a) => [a.user.id, a]));
    const expected = stored.map((r) => ({
      user_id: r.user_id,
      email: names.get(r.user_id)!.user.email,
      name: names.get(r.user_id)!.user.name,
      role: r.role,
      guest: false,
      created_at: r.created_at,
    }));
    // Added one after another: oldest first is the order they were added in.
    expect(expected.map((m) => m.user_id)).toEqual([viewer, member, admin, owner].map((a) => a.user.id));

    // An explicit viewer of the private workspace walks it, two by two.
    const first = await face.list(viewer.token, ws, { limit: 2 });
    expectOk(first, 200);
    expect(first.body.items).toEqual(expected.slice(0, 2));
    expect(typeof first.body.next_cursor).toBe('string');
    const second = await face.list(viewer.token, ws, { limit: 2, cursor: first.body.next_cursor });
    expectOk(second, 200);
    expect(second.body).toEqual({ items: expected.slice(2), next_cursor: null });
    const whole = await face.list(viewer.token, ws);
    expect(whole.body).toEqual({ items: expected, next_cursor: null });

    // The cursor is bound to its workspace, and signed.
    expectFailure(await face.list(viewer.token, other, { limit: 2, cursor: first.body.next_cursor }), 400, 'BAD_REQUEST');
    expectFailure(await face.list(viewer.token, ws, { limit: 2, cursor: tamperCursor(first.body.next_cursor) }), 400, 'BAD_REQUEST');
    for (const limit of [0, 101]) expectIssue(await face.list(viewer.token, ws, { limit }), 'limit');
    // The other workspace's own walk still works, and answers only its members.
    const otherPage = await face.list(viewer.token, other, { limit: 1 });
    expect(otherPage.body.items).toHaveLength(1);
    const otherRest = await face.list(viewer.token, other, { limit: 1, cursor: otherPage.body.next_cursor });
    expect([...otherPage.body.items, ...otherRest.body.items].map((m: { user_id: string }) => m.user_id)).toEqual(
      (await memberRows(other)).map((r) => r.user_id),
    );
  });

  it('lists for anyone who can see the workspace (its visibility included), and is 404 without access', async () => {
    const org = await team();
    const visible = await visibleWorkspace(org);
    const hidden = await privateWorkspace(org);
    await grant(visible, admin, 'viewer');
    await grant(hidden, admin, 'viewer');
    // member: no explicit membership; the visible workspace's default role (member) lets it read.
    const seen = await face.list(member.token, visible);
    expectOk(seen, 200);
    expect(seen.body.items.map((m: { user_id: string }) => m.user_id)).toEqual([admin.user.id]);
    // The private one does not exist for it, nor for the outsider: 404 like a workspace that does not exist.
    for (const token of [member.token, outsider.token]) {
      const refused = await face.list(token, hidden);
      expectFailure(refused, 404, 'NOT_FOUND', 'Workspace not found');
      expect(refused.body.message).toBe((await face.list(token, UNKNOWN_UUID)).body.message);
    }
    expectFailure(await face.list(outsider.token, visible), 404, 'NOT_FOUND', 'Workspace not found');
  });

  it('gets one explicit member (anyone who can see the workspace); 404 for a user who is not one, 400 for a non-UUID', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    await grant(ws, viewer, 'viewer');
    await grant(ws, member, 'member');
    const [stored] = (await memberRows(ws)).filter((r) => r.user_id === member.user.id);
    const got = await face.get(viewer.token, ws, member.user.id);
    expectOk(got, 200);
    expect(got.body).toEqual({
      user_id: member.user.id,
      email: member.user.email,
      name: 'Member',
      role: 'member',
      guest: false,
      created_at: stored!.created_at,
    });
    // The owner sees every workspace, but is no explicit member of this one; nor is the admin.
    expectFailure(await face.get(viewer.token, ws, owner.user.id), 404, 'NOT_FOUND', 'Workspace member not found');
    expectFailure(await face.get(owner.token, ws, admin.user.id), 404, 'NOT_FOUND', 'Workspace member not found');
    expectFailure(await face.get(viewer.token, ws, UNKNOWN_UUID), 404, 'NOT_FOUND', 'Workspace member not found');
    expectIssue(await face.get(viewer.token, ws, 'nobody'), 'user_id');
    // Without access: the workspace's 404, not the member's.
    expectFailure(await face.get(outsider.token, ws, member.user.id), 404, 'NOT_FOUND', 'Workspace not found');
  });

  it('adds a member: 201, the member (Location GETs the same body), the row, and one workspace.member_added', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    await grant(ws, admin, 'admin');
    const before = await organizationState(org);
    const res = await face.add(owner.token, ws, { user_id: member.user.id, role: 'viewer' });
    expectOk(res, 201);
    const [row] = await memberRows(ws).then((rows) => rows.filter((r) => r.user_id === member.user.id));
    expect(row).toEqual({ user_id: member.user.id, role: 'viewer', created_at: expect.any(String) });
    expect(res.body).toEqual({
      user_id: member.user.id,
      email: member.user.email,
      name: 'Member',
      role: 'viewer',
      guest: false,
      created_at: row!.created_at,
    });
    if (face.name === 'REST') {
      expect(res.location).toBe(`/api/v1/workspaces/${ws}/members/${member.user.id}`);
      const fetched = await app.request('GET', res.location!, { token: member.token });
      expect(fetched.status, fetched.text).toBe(200);
      expect(fetched.body).toEqual(res.body);
    } else {
      expect(await face.get(member.token, ws, member.user.id)).toEqual({ status: 200, body: res.body, location: null });
    }
    // The new member now sees the private workspace.
    expectOk(await face.getWorkspace(member.token, ws), 200);
    const events = await expectMemberEvents(face, org, [
      { action: 'workspace.member_added', ws, target: admin, actor: actorOf(owner), changes: added(admin.user.email, 'admin') },
      { action: 'workspace.member_added', ws, target: member, actor: actorOf(owner), changes: added(member.user.email, 'viewer') },
    ]);
    // Same transaction as the row: the events of one transaction share its now().
    expect(events.find((e) => e.target_id === member.user.id)!.created_at).toBe(row!.created_at);
    expect((await organizationState(org)).events).toBe(before.events + 1);

    // A workspace admin (a plain member of the organization) adds too.
    const byWsAdmin = await face.add(admin.token, ws, { user_id: viewer.user.id, role: 'member' });
    expectOk(byWsAdmin, 201);
    expect(await rolesIn(ws)).toEqual({ [admin.user.id]: 'admin', [member.user.id]: 'viewer', [viewer.user.id]: 'member' });
    await expectMemberEvents(face, org, [
      { action: 'workspace.member_added', ws, target: admin, actor: actorOf(owner), changes: added(admin.user.email, 'admin') },
      { action: 'workspace.member_added', ws, target: member, actor: actorOf(owner), changes: added(member.user.email, 'viewer') },
      { action: 'workspace.member_added', ws, target: viewer, actor: actorOf(admin), changes: added(viewer.user.email, 'member') },
    ]);
  });

  it("defaults the role to the workspace's effective default_role: the system's, the organization's, the workspace's, the organization's lock", async () => {
    const org = await team();
    const plain = await visibleWorkspace(org);
    const addDefault = async (ws: string, user: SignedUp) => {
      const res = await face.add(owner.token, ws, { user_id: user.user.id });
      expectOk(res, 201);
      return res.body.role as string;
    };
    // The system default.
    expect(await addDefault(plain, member)).toBe('member');
    // The organization's default_role.
    const orgSettings = await app.request('PUT', `/api/v1/organizations/${org}/settings`, {
      token: owner.token,
      body: { permissions: { default_role: 'viewer' } },
    });
    expect(orgSettings.status, orgSettings.text).toBe(200);
    expect(await addDefault(plain, viewer)).toBe('viewer');
    // A workspace's own default_role beats the organization's.
    const own = await visibleWorkspace(org, { settings: { permissions: { default_role: 'admin' } } });
    expect(await addDefault(own, member)).toBe('admin');
    // …until the organization locks it: its value holds in every workspace.
    const locked = await app.request('PUT', `/api/v1/organizations/${org}/settings`, {
      token: owner.token,
      body: { locks: ['permissions.default_role'] },
    });
    expect(locked.status, locked.text).toBe(200);
    expect(await addDefault(own, viewer)).toBe('viewer');
    // A role given explicitly wins over the default.
    expectOk(await face.add(owner.token, plain, { user_id: admin.user.id, role: 'admin' }), 201);

    expect(await rolesIn(plain)).toEqual({ [member.user.id]: 'member', [viewer.user.id]: 'viewer', [admin.user.id]: 'admin' });
    expect(await rolesIn(own)).toEqual({ [member.user.id]: 'admin', [viewer.user.id]: 'viewer' });
    await expectMemberEvents(face, org, [
      { action: 'workspace.member_added', ws: plain, target: member, actor: actorOf(owner), changes: added(member.user.email, 'member') },
      { action: 'workspace.member_added', ws: plain, target: viewer, actor: actorOf(owner), changes: added(viewer.user.email, 'viewer') },
      { action: 'workspace.member_added', ws: plain, target: admin, actor: actorOf(owner), changes: added(admin.user.email, 'admin') },
      { action: 'workspace.member_added', ws: own, target: member, actor: actorOf(owner), changes: added(member.user.email, 'admin') },
      { action: 'workspace.member_added', ws: own, target: viewer, actor: actorOf(owner), changes: added(viewer.user.email, 'viewer') },
    ]);
  });

  it('answers 409 to adding someone already a member: the role stays, no event', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    await grant(ws, member, 'viewer');
    const before = await organizationState(org);
    expectFailure(await face.add(owner.token, ws, { user_id: member.user.id, role: 'admin' }), 409, 'CONFLICT');
    expectFailure(await face.add(owner.token, ws, { user_id: member.user.id }), 409, 'CONFLICT');
    expect(await organizationState(org)).toEqual(before);
    expect(await rolesIn(ws)).toEqual({ [member.user.id]: 'viewer' });
  });

  it('changes a role: 200 the member, the row, one workspace.member_role_changed; the same role again changes nothing', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    await grant(ws, member, 'viewer');
    const [before] = await memberRows(ws);
    const res = await face.update(owner.token, ws, member.user.id, { role: 'admin' });
    expectOk(res, 200);
    // created_at is the membership's, not the change's.
    expect(res.body).toEqual({
      user_id: member.user.id,
      email: member.user.email,
      name: 'Member',
      role: 'admin',
      guest: false,
      created_at: before!.created_at,
    });
    expect(await memberRows(ws)).toEqual([{ ...before!, role: 'admin' }]);
    expect(await face.get(member.token, ws, member.user.id)).toMatchObject({ status: 200, body: res.body });
    // The new admin manages members now.
    expectOk(await face.add(member.token, ws, { user_id: viewer.user.id, role: 'viewer' }), 201);
    const events = [
      { action: 'workspace.member_added', ws, target: member, actor: actorOf(owner), changes: added(member.user.email, 'viewer') },
      { action: 'workspace.member_role_changed', ws, target: member, actor: actorOf(owner), changes: roleChanged('viewer', 'admin') },
      { action: 'workspace.member_added', ws, target: viewer, actor: actorOf(member), changes: added(viewer.user.email, 'viewer') },
    ] as const satisfies ExpectedEvent[];
    await expectMemberEvents(face, org, [...events]);

    const state = await organizationState(org);
    const same = await face.update(owner.token, ws, member.user.id, { role: 'admin' });
    expectOk(same, 200);
    expect(same.body).toEqual(res.body);
    expect(await organizationState(org)).toEqual(state);

    // A workspace admin demotes another member (and may demote itself).
    const demoted = await face.update(member.token, ws, viewer.user.id, { role: 'member' });
    expectOk(demoted, 200);
    expect(demoted.body.role).toBe('member');
    const self = await face.update(member.token, ws, member.user.id, { role: 'member' });
    expectOk(self, 200);
    expect(await rolesIn(ws)).toEqual({ [member.user.id]: 'member', [viewer.user.id]: 'member' });
    await expectMemberEvents(face, org, [
      ...events,
      { action: 'workspace.member_role_changed', ws, target: viewer, actor: actorOf(member), changes: roleChanged('viewer', 'member') },
      { action: 'workspace.member_role_changed', ws, target: member, actor: actorOf(member), changes: roleChanged('admin', 'member') },
    ]);
  });

  it('removes a member: 204, the row gone, one workspace.member_removed with the email and role', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    await grant(ws, member, 'member');
    await grant(ws, viewer, 'viewer');
    await grant(ws, admin, 'admin');
    const res = await face.remove(owner.token, ws, member.user.id);
    expectOk(res, 204);
    expect(res.body).toBeUndefined();
    expect(await rolesIn(ws)).toEqual({ [viewer.user.id]: 'viewer', [admin.user.id]: 'admin' });
    expectFailure(await face.get(owner.token, ws, member.user.id), 404, 'NOT_FOUND', 'Workspace member not found');
    // The private workspace is gone for the removed member.
    expectFailure(await face.getWorkspace(member.token, ws), 404, 'NOT_FOUND');
    // A workspace admin removes too.
    expectOk(await face.remove(admin.token, ws, viewer.user.id), 204);
    expect(await rolesIn(ws)).toEqual({ [admin.user.id]: 'admin' });
    await expectMemberEvents(face, org, [
      { action: 'workspace.member_added', ws, target: member, actor: actorOf(owner), changes: added(member.user.email, 'member') },
      { action: 'workspace.member_added', ws, target: viewer, actor: actorOf(owner), changes: added(viewer.user.email, 'viewer') },
      { action: 'workspace.member_added', ws, target: admin, actor: actorOf(owner), changes: added(admin.user.email, 'admin') },
      { action: 'workspace.member_removed', ws, target: member, actor: actorOf(owner), changes: removed(member.user.email, 'member') },
      { action: 'workspace.member_removed', ws, target: viewer, actor: actorOf(admin), changes: removed(viewer.user.email, 'viewer') },
    ]);
  });

  it('lets a viewer leave: 204; the private workspace is then 404 and out of its lists, a visible one stays by visibility', async () => {
    const org = await team();
    const name = uniqueWorkspaceName('Leaving');
    const ws = await privateWorkspace(org, { name });
    const open = await visibleWorkspace(org);
    await grant(ws, viewer, 'viewer');
    await grant(open, viewer, 'viewer');
    // Seen before leaving: found in its list, readable.
    expect((await face.findWorkspaces(viewer.token, name)).body.items.map((w: { id: string }) => w.id)).toEqual([ws]);
    expectOk(await face.getWorkspace(viewer.token, ws), 200);

    const left = await face.remove(viewer.token, ws, viewer.user.id);
    expectOk(left, 204);
    expect(await rolesIn(ws)).toEqual({});
    expectFailure(await face.getWorkspace(viewer.token, ws), 404, 'NOT_FOUND', 'Workspace not found');
    expectFailure(await face.list(viewer.token, ws), 404, 'NOT_FOUND');
    expectFailure(await face.access(viewer.token, ws), 404, 'NOT_FOUND');
    expect((await face.findWorkspaces(viewer.token, name)).body.items).toEqual([]);
    // Leaving again: the workspace no longer exists for it.
    expectFailure(await face.remove(viewer.token, ws, viewer.user.id), 404, 'NOT_FOUND', 'Workspace not found');

    // Leaving a workspace visible to the organization ends the explicit role only.
    expectOk(await face.remove(viewer.token, open, viewer.user.id), 204);
    expect(await rolesIn(open)).toEqual({});
    expect((await face.access(viewer.token, open)).body).toEqual({
      workspace_id: open,
      user_id: viewer.user.id,
      role: 'member',
      source: 'organization_visibility',
      guest: false,
    });
    await expectMemberEvents(
      face,
      org,
      [
        { action: 'workspace.member_added', ws: open, target: viewer, actor: actorOf(owner), changes: added(viewer.user.email, 'viewer') },
        {
          action: 'workspace.member_removed',
          ws: open,
          target: viewer,
          actor: actorOf(viewer),
          changes: removed(viewer.user.email, 'viewer'),
        },
      ],
      viewer,
    );
    await expectMemberEvents(face, org, [
      { action: 'workspace.member_added', ws, target: viewer, actor: actorOf(owner), changes: added(viewer.user.email, 'viewer') },
      { action: 'workspace.member_removed', ws, target: viewer, actor: actorOf(viewer), changes: removed(viewer.user.email, 'viewer') },
    ]);
  });

  it('answers 404 to changing or removing a user who is not an explicit member, and changes nothing', async () => {
    const org = await team();
    const ws = await visibleWorkspace(org);
    await grant(ws, viewer, 'viewer');
    const before = await organizationState(org);
    // In the organization (with access by visibility, or by role), not explicit members; outside it; nobody.
    for (const userId of [member.user.id, admin.user.id, outsider.user.id, UNKNOWN_UUID]) {
      expectFailure(await face.update(owner.token, ws, userId, { role: 'viewer' }), 404, 'NOT_FOUND', 'Workspace member not found');
      expectFailure(await face.remove(owner.token, ws, userId), 404, 'NOT_FOUND', 'Workspace member not found');
    }
    // Leaving a workspace one sees only by visibility: nothing to leave.
    expectFailure(await face.remove(member.token, ws, member.user.id), 404, 'NOT_FOUND', 'Workspace member not found');
    expect(await organizationState(org)).toEqual(before);
  });

  it('lets an archived workspace’s membership change', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    const archived = await app.request('POST', `/api/v1/workspaces/${ws}/archive`, { token: owner.token });
    expect(archived.status, archived.text).toBe(200);
    expectOk(await face.add(owner.token, ws, { user_id: member.user.id, role: 'viewer' }), 201);
    expectOk(await face.update(owner.token, ws, member.user.id, { role: 'member' }), 200);
    expect(await rolesIn(ws)).toEqual({ [member.user.id]: 'member' });
    expectOk(await face.remove(member.token, ws, member.user.id), 204);
    expect(await rolesIn(ws)).toEqual({});
  });
});

// ---------------------------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('access over $name', (face) => {
  const answer = (ws: string, user: SignedUp | string, role: string | null, source: string | null) => ({
    workspace_id: ws,
    user_id: typeof user === 'string' ? user : user.user.id,
    role,
    source,
    guest: false,
  });

  it('answers the caller’s own role and its source: organization_role, workspace_member, organization_visibility; none is 404', async () => {
    const org = await team();
    const open = await visibleWorkspace(org);
    const hidden = await privateWorkspace(org);
    await grant(hidden, viewer, 'viewer');
    await grant(open, viewer, 'admin');
    const own = async (user: SignedUp, ws: string) => {
      const res = await face.access(user.token, ws);
      expectOk(res, 200);
      return res.body;
    };
    expect(await own(owner, hidden)).toEqual(answer(hidden, owner, 'admin', 'organization_role'));
    expect(await own(admin, hidden)).toEqual(answer(hidden, admin, 'admin', 'organization_role'));
    expect(await own(viewer, hidden)).toEqual(answer(hidden, viewer, 'viewer', 'workspace_member'));
    expect(await own(member, open)).toEqual(answer(open, member, 'member', 'organization_visibility'));
    expect(await own(viewer, open)).toEqual(answer(open, viewer, 'admin', 'workspace_member'));
    // Asking about oneself by id is the same answer.
    expect((await face.access(viewer.token, hidden, viewer.user.id)).body).toEqual(answer(hidden, viewer, 'viewer', 'workspace_member'));
    // No access: 404, as for a workspace that does not exist.
    expectFailure(await face.access(member.token, hidden), 404, 'NOT_FOUND', 'Workspace not found');
    expectFailure(await face.access(outsider.token, open), 404, 'NOT_FOUND', 'Workspace not found');
    expectFailure(await face.access(member.token, UNKNOWN_UUID), 404, 'NOT_FOUND', 'Workspace not found');

    // The answer follows the settings at the moment of the request: the workspace goes private.
    const put = await app.request('PUT', `/api/v1/workspaces/${open}/settings`, { token: owner.token, body: PRIVATE.settings });
    expect(put.status, put.text).toBe(200);
    expectFailure(await face.access(member.token, open), 404, 'NOT_FOUND');
    expect(await own(viewer, open)).toEqual(answer(open, viewer, 'admin', 'workspace_member'));
  });

  it('names the first source on a tie, and the higher source when an explicit role is lower', async () => {
    const org = await team();
    const open = await visibleWorkspace(org);
    // An organization admin made an explicit admin: organization_role holds (first on the tie).
    await grant(open, admin, 'admin');
    // An explicit viewer where visibility gives member: visibility holds, with member.
    await grant(open, viewer, 'viewer');
    // An explicit member where visibility gives member: workspace_member comes first.
    await grant(open, member, 'member');
    expect((await face.access(admin.token, open)).body).toEqual(answer(open, admin, 'admin', 'organization_role'));
    expect((await face.access(viewer.token, open)).body).toEqual(answer(open, viewer, 'member', 'organization_visibility'));
    expect((await face.access(member.token, open)).body).toEqual(answer(open, member, 'member', 'workspace_member'));
    // The lower explicit role changes nothing: the viewer may read what a member may, not edit.
    expectOk(await face.list(viewer.token, open), 200);
    expectFailure(await face.add(viewer.token, open, { user_id: owner.user.id }), 403, 'FORBIDDEN');
    // Visibility giving admin: a tie of workspace_member and organization_visibility names workspace_member.
    const generous = await visibleWorkspace(org, { settings: { permissions: { default_role: 'admin' } } });
    await grant(generous, viewer, 'admin');
    expect((await face.access(viewer.token, generous)).body).toEqual(answer(generous, viewer, 'admin', 'workspace_member'));
    expect((await face.access(member.token, generous)).body).toEqual(answer(generous, member, 'admin', 'organization_visibility'));
  });

  it('answers a workspace admin about anyone in the organization (none: role null); others 404; below admin 403', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    await grant(ws, member, 'admin');
    await grant(ws, viewer, 'member');
    const about = (token: string, userId: string) => face.access(token, ws, userId);
    // member: an explicit workspace admin, a plain member of the organization.
    expect((await about(member.token, admin.user.id)).body).toEqual(answer(ws, admin, 'admin', 'organization_role'));
    expect((await about(member.token, viewer.user.id)).body).toEqual(answer(ws, viewer, 'member', 'workspace_member'));
    expect((await about(owner.token, member.user.id)).body).toEqual(answer(ws, member, 'admin', 'workspace_member'));
    // A caller below workspace admin (viewer: an explicit member) asking about someone else: 403, whoever it asks about.
    for (const userId of [member.user.id, owner.user.id, outsider.user.id, UNKNOWN_UUID]) {
      expectFailure(await about(viewer.token, userId), 403, 'FORBIDDEN');
    }
    // …and a plain member of the organization seeing a workspace by its visibility.
    const open = await visibleWorkspace(org);
    for (const userId of [member.user.id, outsider.user.id]) expectFailure(await face.access(viewer.token, open, userId), 403, 'FORBIDDEN');
    // In the organization with no access to the private workspace.
    expectOk(await face.remove(owner.token, ws, viewer.user.id), 204);
    expect((await about(member.token, viewer.user.id)).body).toEqual(answer(ws, viewer, null, null));
    // Neither in the organization nor an explicit member: 404 naming the user.
    expectFailure(await about(member.token, outsider.user.id), 404, 'NOT_FOUND', notInOrganization(outsider.user.id));
    expectFailure(await about(member.token, UNKNOWN_UUID), 404, 'NOT_FOUND', notInOrganization(UNKNOWN_UUID));
    // No access at all: 404 before anything else.
    expectFailure(await about(viewer.token, member.user.id), 404, 'NOT_FOUND', 'Workspace not found');
    expectFailure(await about(outsider.token, member.user.id), 404, 'NOT_FOUND', 'Workspace not found');
    expectIssue(await about(member.token, 'nobody'), 'user_id');
  });
});

// ---------------------------------------------------------------------------------------------
// Memberships ending with the organization's, or with the workspace
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('memberships that end with the organization’s over $name', (face) => {
  /**
   * `user` in a fresh team, explicit member of a private and a visible workspace of it, and of
   * a workspace of another organization (which must outlive the removal).
   */
  async function memberships(user: SignedUp) {
    const org = await createTeam(app, owner, [
      [admin, 'admin'],
      [user, 'member'],
    ]);
    const name = uniqueWorkspaceName('Ending');
    const hidden = await privateWorkspace(org, { name });
    const open = await visibleWorkspace(org);
    await grant(hidden, user, 'viewer');
    await grant(open, user, 'admin');
    const elsewhere = await createTeam(app, owner, [[user, 'member']]);
    const kept = await privateWorkspace(elsewhere);
    await grant(kept, user, 'member');
    // Seen before: in its list, readable, in auth/me.
    expect((await face.findWorkspaces(user.token, name)).body.items.map((w: { id: string }) => w.id)).toEqual([hidden]);
    const me = await face.me(user.token);
    expect(me.body.workspace_memberships).toEqual(
      expect.arrayContaining([
        { workspace_id: hidden, organization_id: org, role: 'viewer' },
        { workspace_id: open, organization_id: org, role: 'admin' },
      ]),
    );
    return { org, name, hidden, open, elsewhere, kept };
  }

  /** After the removal: no row of `user` in the organization's workspaces, the other one kept, 404s, lists and auth/me without them. */
  async function expectEnded(user: SignedUp, s: Awaited<ReturnType<typeof memberships>>) {
    expect(await rolesIn(s.hidden)).toEqual({});
    expect(await rolesIn(s.open)).toEqual({});
    expect(await rolesIn(s.kept)).toEqual({ [user.user.id]: 'member' });
    for (const ws of [s.hidden, s.open]) {
      expectFailure(await face.getWorkspace(user.token, ws), 404, 'NOT_FOUND', 'Workspace not found');
      expectFailure(await face.list(user.token, ws), 404, 'NOT_FOUND', 'Workspace not found');
    }
    expect((await face.findWorkspaces(user.token, s.name)).body.items).toEqual([]);
    const me = await face.me(user.token);
    expectOk(me, 200);
    expect(me.body.workspace_memberships).toEqual(await membershipsOf(user.user.id));
    expect(me.body.workspace_memberships).toContainEqual({ workspace_id: s.kept, organization_id: s.elsewhere, role: 'member' });
    expect((me.body.workspace_memberships as Array<{ organization_id: string }>).filter((m) => m.organization_id === s.org)).toEqual([]);
  }

  /**
   * The removal's events: member.removed and one workspace.member_removed per membership, by
   * `actor`, in one transaction (one created_at, one request id).
   */
  async function expectRemovalEvents(user: SignedUp, s: Awaited<ReturnType<typeof memberships>>, actor: { id: string; email: string }) {
    const stored = await storedEvents(
      app,
      `organization_id = $1 and target_id = $2 and action in ('member.removed', 'workspace.member_removed')`,
      [s.org, user.user.id],
    );
    expect(
      stored
        .map((e) => ({ action: e.action, workspace_id: e.workspace_id, actor: e.actor, target_type: e.target_type, changes: e.changes }))
        .sort((a, b) => canonical(a).localeCompare(canonical(b))),
    ).toEqual(
      [
        { action: 'member.removed', workspace_id: null, actor, target_type: 'member', changes: removed(user.user.email, 'member') },
        {
          action: 'workspace.member_removed',
          workspace_id: s.hidden,
          actor,
          target_type: 'member',
          changes: removed(user.user.email, 'viewer'),
        },
        {
          action: 'workspace.member_removed',
          workspace_id: s.open,
          actor,
          target_type: 'member',
          changes: removed(user.user.email, 'admin'),
        },
      ].sort((a, b) => canonical(a).localeCompare(canonical(b))),
    );
    expect(new Set(stored.map((e) => e.created_at)).size).toBe(1);
    expect(new Set(stored.map((e) => e.request_id)).size).toBe(1);
    // The workspace's list shows its event to those who still see it.
    const listed = await face.workspaceEvents(owner.token, s.hidden);
    expect((listed.body.items as ApiEvent[]).filter((e) => e.action === 'workspace.member_removed').map(pickEvent)).toEqual(
      stored.filter((e) => e.workspace_id === s.hidden).map(pickEvent),
    );
  }

  it('an admin removing a member from the organization ends its memberships of the organization’s workspaces, an event each', async () => {
    const s = await memberships(member);
    expectOk(await face.removeFromOrganization(admin.token, s.org, member.user.id), 204);
    await expectEnded(member, s);
    await expectRemovalEvents(member, s, actorOf(admin));
    // The other organization's membership and its workspace's are untouched, and recorded nothing.
    expect(await storedEvents(app, `organization_id = $1 and action like '%removed'`, [s.elsewhere])).toEqual([]);
  });

  it('a member leaving the organization does the same', async () => {
    const s = await memberships(viewer);
    expectOk(await face.removeFromOrganization(viewer.token, s.org, viewer.user.id), 204);
    await expectEnded(viewer, s);
    await expectRemovalEvents(viewer, s, actorOf(viewer));
    // The other organization's membership and its workspace's are untouched, and recorded nothing.
    expect(await storedEvents(app, `organization_id = $1 and action like '%removed'`, [s.elsewhere])).toEqual([]);
  });

  it('a refused removal from the organization (the last owner) ends nothing', async () => {
    const org = await createTeam(app, owner, [[member, 'member']]);
    const ws = await privateWorkspace(org);
    await grant(ws, owner, 'viewer');
    await grant(ws, member, 'viewer');
    const before = await organizationState(org);
    expectFailure(await face.removeFromOrganization(owner.token, org, owner.user.id), 409, 'CONFLICT');
    expect(await organizationState(org)).toEqual(before);
  });

  it('deleting the account does the same, with the account’s own email as the actor', async () => {
    const leaver = await signup(app, 'Leaver');
    const s = await memberships(leaver);
    const actor = actorOf(leaver);
    expectOk(await face.deleteAccount(leaver.token), 204);
    expect(await rolesIn(s.hidden)).toEqual({});
    expect(await rolesIn(s.open)).toEqual({});
    expect(await membershipsOf(leaver.user.id)).toEqual([]);
    // Its own organization (it was the only member) went with it.
    expect(await app.query('select id from organizations where id = $1', [leaver.organization.id])).toEqual([]);
    await expectRemovalEvents(leaver, s, actor);
    // In the other organization too: its membership and its workspace's; all five in the deletion's one transaction.
    const elsewhere = await storedEvents(app, `organization_id = $1 and target_id = $2`, [s.elsewhere, leaver.user.id]);
    expect(elsewhere.filter((e) => e.action.endsWith('removed')).map((e) => [e.action, e.workspace_id, e.actor, e.changes])).toEqual(
      expect.arrayContaining([
        ['member.removed', null, actor, removed(leaver.user.email, 'member')],
        ['workspace.member_removed', s.kept, actor, removed(leaver.user.email, 'member')],
      ]),
    );
    const removals = await storedEvents(app, `target_id = $1 and action like '%removed'`, [leaver.user.id]);
    expect(removals).toHaveLength(5);
    expect(new Set(removals.map((e) => e.request_id)).size).toBe(1);
    expect(new Set(removals.map((e) => e.created_at)).size).toBe(1);
  });

  it('deleting a workspace removes its membership rows', async () => {
    const org = await team();
    const ws = await privateWorkspace(org);
    const stays = await privateWorkspace(org);
    await grant(ws, member, 'viewer');
    await grant(ws, viewer, 'admin');
    await grant(stays, member, 'member');
    expectOk(await face.deleteWorkspace(owner.token, ws), 204);
    expect(await memberRows(ws)).toEqual([]);
    expect(await rolesIn(stays)).toEqual({ [member.user.id]: 'member' });
    const me = await face.me(member.token);
    expect((me.body.workspace_memberships as Array<{ workspace_id: string }>).map((m) => m.workspace_id)).not.toContain(ws);
    expect(me.body.workspace_memberships).toContainEqual({ workspace_id: stays, organization_id: org, role: 'member' });
    expectFailure(await face.list(member.token, ws), 404, 'NOT_FOUND');
  });
});

// ---------------------------------------------------------------------------------------------
// auth/me
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('auth/me workspace_memberships over $name', (face) => {
  it('lists the explicit memberships, oldest first: {workspace_id, organization_id, role}', async () => {
    const account = await signup(app, 'Fresh');
    let me = await face.me(account.token);
    expectOk(me, 200);
    expect(me.body.workspace_memberships).toEqual([]);
    const org = await createTeam(app, owner, [[account, 'member']]);
    const other = await createTeam(app, owner, [[account, 'admin']]);
    const a = await privateWorkspace(org);
    const b = await visibleWorkspace(other);
    const c = await visibleWorkspace(org);
    await grant(c, account, 'admin');
    await grant(a, account, 'viewer');
    await grant(b, account, 'member');
    me = await face.me(account.token);
    expectOk(me, 200);
    // Implied access (the admin role in `other`, visibility of its workspaces) is not listed: explicit ones only.
    expect(me.body.workspace_memberships).toEqual([
      { workspace_id: c, organization_id: org, role: 'admin' },
      { workspace_id: a, organization_id: org, role: 'viewer' },
      { workspace_id: b, organization_id: other, role: 'member' },
    ]);
    expect(me.body.workspace_memberships).toEqual(await membershipsOf(account.user.id));
    // A role change shows; a removal leaves the others in their order.
    await app.request('PUT', `/api/v1/workspaces/${a}/members/${account.user.id}`, { token: owner.token, body: { role: 'member' } });
    await app.request('DELETE', `/api/v1/workspaces/${c}/members/${account.user.id}`, { token: owner.token });
    expect((await face.me(account.token)).body.workspace_memberships).toEqual([
      { workspace_id: a, organization_id: org, role: 'member' },
      { workspace_id: b, organization_id: other, role: 'member' },
    ]);
  });
});

// ---------------------------------------------------------------------------------------------
// Bad input and refused changes
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('bad input and refused changes over $name: a clear 4xx, nothing changed', (face) => {
  let org: string;
  let ws: string;
  let open: string;
  beforeAll(async () => {
    org = await team();
    ws = await privateWorkspace(org);
    open = await visibleWorkspace(org);
    await grant(ws, member, 'member');
    await grant(ws, viewer, 'viewer');
  });

  /** Runs `call`, checks its answer with `check`, and that no membership or event of the organization changed. */
  async function unchanged(call: () => Promise<Outcome>, check: (outcome: Outcome) => void) {
    const before = await organizationState(org);
    check(await call());
    expect(await organizationState(org)).toEqual(before);
  }

  /** A body with an own key the JSON parser makes (`__proto__`), as a client would send it. */
  const parsed = (json: string) => JSON.parse(json) as Body;

  it('adding someone not in the organization: 404 naming the user (no account, another organization’s member)', async () => {
    for (const userId of [UNKNOWN_UUID, outsider.user.id]) {
      await unchanged(
        () => face.add(owner.token, ws, { user_id: userId, role: 'viewer' }),
        (o) => expectFailure(o, 404, 'NOT_FOUND', notInOrganization(userId)),
      );
    }
  });

  it.each([
    ['an unknown role', { role: 'owner' }, 'role'],
    ['another unknown role', { role: 'boss' }, 'role'],
    ['a role that is not a string', { role: 1 }, 'role'],
    ['a role that is null', { role: null }, 'role'],
    ['a role in an array', { role: ['admin'] }, 'role'],
    ['an unknown field', { created_at: '2020-01-01T00:00:00.000Z' }, 'created_at'],
    ['a constructor key', { constructor: 'admin' }, 'constructor'],
  ])('adding with %s: 400', async (_name, extra, path) => {
    await unchanged(
      () => face.add(owner.token, ws, { user_id: admin.user.id, ...extra }),
      (o) => expectIssue(o, path),
    );
  });

  it('adding with a __proto__ key: 400 (the key is refused, not read as the prototype)', async () => {
    for (const json of [
      `{"user_id":"${admin.user.id}","__proto__":{"role":"admin"}}`,
      `{"user_id":"${admin.user.id}","role":"viewer","__proto__":null}`,
    ]) {
      await unchanged(
        () => face.add(owner.token, ws, parsed(json)),
        (o) => expectIssue(o, '__proto__'),
      );
    }
  });

  it('adding a user_id that is not a UUID, or none: 400', async () => {
    for (const body of [{ user_id: 'nobody' }, { user_id: 42 }, {}, { user_id: `${admin.user.id} ` }]) {
      await unchanged(
        () => face.add(owner.token, ws, body),
        (o) => expectIssue(o, 'user_id'),
      );
    }
  });

  it.each([
    ['an unknown role', { role: 'owner' }, 'role'],
    ['a role that is not a string', { role: 3 }, 'role'],
    ['no role', {}, 'role'],
    ['an unknown field', { role: 'admin', email: 'x@example.com' }, 'email'],
    ['a constructor key', { role: 'admin', constructor: {} }, 'constructor'],
  ])('changing a role with %s: 400', async (_name, body, path) => {
    await unchanged(
      () => face.update(owner.token, ws, member.user.id, body),
      (o) => expectIssue(o, path),
    );
  });

  it('changing a role with a __proto__ key: 400', async () => {
    await unchanged(
      () => face.update(owner.token, ws, member.user.id, parsed('{"__proto__":{"role":"admin"}}')),
      (o) => expectIssue(o, '__proto__'),
    );
    await unchanged(
      () => face.update(owner.token, ws, member.user.id, parsed('{"role":"viewer","__proto__":{}}')),
      (o) => expectIssue(o, '__proto__'),
    );
  });

  it('a user_id in the path that is not a UUID: 400 on get, change and remove', async () => {
    for (const userId of ['nobody', '1', `${member.user.id}x`]) {
      await unchanged(
        () => face.get(owner.token, ws, userId),
        (o) => expectIssue(o, 'user_id'),
      );
      await unchanged(
        () => face.update(owner.token, ws, userId, { role: 'viewer' }),
        (o) => expectIssue(o, 'user_id'),
      );
      await unchanged(
        () => face.remove(owner.token, ws, userId),
        (o) => expectIssue(o, 'user_id'),
      );
    }
  });

  it('a workspace member adding itself (or anyone) as admin: 403, authorization before the conflict', async () => {
    await unchanged(
      () => face.add(member.token, ws, { user_id: member.user.id, role: 'admin' }),
      (o) => expectFailure(o, 403, 'FORBIDDEN'),
    );
    await unchanged(
      () => face.add(member.token, ws, { user_id: admin.user.id, role: 'viewer' }),
      (o) => expectFailure(o, 403, 'FORBIDDEN'),
    );
  });

  it('an organization member with access by visibility adding itself as admin: 403', async () => {
    await unchanged(
      () => face.add(member.token, open, { user_id: member.user.id, role: 'admin' }),
      (o) => expectFailure(o, 403, 'FORBIDDEN'),
    );
    expect(await rolesIn(open)).toEqual({});
  });

  it('a viewer changing its own role, or another’s, or removing another: 403', async () => {
    await unchanged(
      () => face.update(viewer.token, ws, viewer.user.id, { role: 'admin' }),
      (o) => expectFailure(o, 403, 'FORBIDDEN'),
    );
    await unchanged(
      () => face.update(viewer.token, ws, viewer.user.id, { role: 'viewer' }),
      (o) => expectFailure(o, 403, 'FORBIDDEN'),
    );
    await unchanged(
      () => face.update(member.token, ws, viewer.user.id, { role: 'member' }),
      (o) => expectFailure(o, 403, 'FORBIDDEN'),
    );
    await unchanged(
      () => face.remove(member.token, ws, viewer.user.id),
      (o) => expectFailure(o, 403, 'FORBIDDEN'),
    );
    expect(await rolesIn(ws)).toEqual({ [member.user.id]: 'member', [viewer.user.id]: 'viewer' });
  });

  it('someone without access: 404 for every operation, as for a workspace that does not exist', async () => {
    for (const [token, target] of [
      [outsider.token, ws],
      [admin.token, UNKNOWN_UUID],
    ] as const) {
      await unchanged(
        () => face.add(token, target, { user_id: outsider.user.id, role: 'admin' }),
        (o) => expectFailure(o, 404, 'NOT_FOUND', 'Workspace not found'),
      );
      await unchanged(
        () => face.update(token, target, member.user.id, { role: 'admin' }),
        (o) => expectFailure(o, 404, 'NOT_FOUND', 'Workspace not found'),
      );
      await unchanged(
        () => face.remove(token, target, member.user.id),
        (o) => expectFailure(o, 404, 'NOT_FOUND', 'Workspace not found'),
      );
    }
  });

  it('the access query with a user_id that is not a UUID: 400', async () => {
    expectIssue(await face.access(owner.token, ws, 'nobody'), 'user_id');
  });
});

// ---------------------------------------------------------------------------------------------
// Replays and sources re-check access
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('replays and sources re-check access over $name', (face) => {
  let keyCounter = 0;
  const newKey = () => `ws-members-${face.name}-${++keyCounter}-${Date.now().toString(36)}`;

  it('a create replayed to its creator, demoted since to a plain member, is 404 while the workspace is private', async () => {
    const org = await team();
    const privateKey = newKey();
    const visibleKey = newKey();
    const privateBody = { organization_id: org, name: uniqueWorkspaceName('Replayed'), ...PRIVATE };
    const visibleBody = { organization_id: org, name: uniqueWorkspaceName('Replayed') };
    const created = await face.createWorkspace(admin.token, privateBody, privateKey);
    expectOk(created, 201);
    const createdVisible = await face.createWorkspace(admin.token, visibleBody, visibleKey);
    expectOk(createdVisible, 201);
    // While an admin: the replay answers the first answer and creates nothing.
    const count = await workspaceCount(app, org);
    const replay = await face.createWorkspace(admin.token, privateBody, privateKey);
    expectOk(replay, 201);
    expect(replay.body).toEqual(created.body);

    await setOrganizationRole(org, admin, 'member');
    const events = await organizationState(org);
    expectFailure(await face.createWorkspace(admin.token, privateBody, privateKey), 404, 'NOT_FOUND', 'Workspace not found');
    // The one visible to the organization is still the plain member's to see: its replay answers.
    const visibleReplay = await face.createWorkspace(admin.token, visibleBody, visibleKey);
    expectOk(visibleReplay, 201);
    expect(visibleReplay.body).toEqual(createdVisible.body);
    // Given the workspace explicitly, the replay answers again.
    await grant(created.body.id, admin, 'viewer');
    const granted = await face.createWorkspace(admin.token, privateBody, privateKey);
    expectOk(granted, 201);
    expect(granted.body).toEqual(created.body);
    expect(await workspaceCount(app, org)).toBe(count);
    expect((await organizationState(org)).events).toBe(events.events + 1); // the grant's member_added, nothing else
  });

  it('a clone of a private workspace: 404 without access; with viewer access and admin of the target, 201', async () => {
    const org = await team();
    const source = await privateWorkspace(org, { description: 'the source', metadata: { origin: 'private' } });
    // member: a plain member of `org`, owner of its own organization (its signup's).
    const target = member.organization.id;
    const before = await workspaceCount(app, target);
    const targetEvents = (await organizationState(target)).events;
    const sourceState = await organizationState(org);
    const sourceCount = await workspaceCount(app, org);
    for (const organizationId of [target, org, undefined]) {
      expectFailure(
        await face.clone(member.token, source, {
          name: uniqueWorkspaceName('Copy'),
          ...(organizationId ? { organization_id: organizationId } : {}),
        }),
        404,
        'NOT_FOUND',
        'Workspace not found',
      );
    }
    expect(await workspaceCount(app, target)).toBe(before);
    expect((await organizationState(target)).events).toBe(targetEvents);
    expect(await organizationState(org)).toEqual(sourceState);

    await grant(source, member, 'viewer');
    const copy = await face.clone(member.token, source, { name: uniqueWorkspaceName('Copy'), organization_id: target });
    expectOk(copy, 201);
    expect(copy.body).toMatchObject({
      organization_id: target,
      cloned_from_id: source,
      description: 'the source',
      metadata: { origin: 'private' },
    });
    expect(await workspaceCount(app, target)).toBe(before + 1);
    // Into the source's organization it needs that organization's admin role: 403 (it can see the source).
    const within = await face.clone(member.token, source, { name: uniqueWorkspaceName('Copy') });
    expectFailure(within, 403, 'FORBIDDEN');
    expect(await workspaceCount(app, org)).toBe(sourceCount);
  });

  it('provisioning with a private template the caller cannot see: 404, nothing created; with access, 201', async () => {
    const org = await team();
    const template = await privateWorkspace(org, { description: 'from the template' });
    const target = member.organization.id;
    const before = await workspaceCount(app, target);
    const state = await organizationState(target);
    const body = () => ({
      organization_id: target,
      template_workspace_id: template,
      workspaces: [{ name: uniqueWorkspaceName('Provisioned') }, { name: uniqueWorkspaceName('Provisioned') }],
    });
    expectFailure(await face.provision(member.token, body()), 404, 'NOT_FOUND', 'Workspace not found');
    expectFailure(await face.provision(member.token, { ...body(), mode: 'partial' }), 404, 'NOT_FOUND', 'Workspace not found');
    expect(await workspaceCount(app, target)).toBe(before);
    expect(await organizationState(target)).toEqual(state);

    await grant(template, member, 'viewer');
    const res = await face.provision(member.token, body());
    expectOk(res, 201);
    expect(res.body.created.map((w: { description: string }) => w.description)).toEqual(['from the template', 'from the template']);
    expect(await workspaceCount(app, target)).toBe(before + 2);
  });
});

// ---------------------------------------------------------------------------------------------
// Concurrency (PostgreSQL: PGlite is one connection, its locks never make anyone wait)
// ---------------------------------------------------------------------------------------------

describe.runIf(onPostgres)('concurrent changes of one member (PostgreSQL)', () => {
  const ROUNDS = 4;
  type Answer = { status: number; text: string; body: any };
  const send = async (method: string, path: string, token: string, body?: unknown): Promise<Answer> => {
    const res = await restRequest(app, method, path, { token, body });
    return { status: res.status, text: res.text, body: res.body };
  };
  const setRole = (ws: string, by: SignedUp, role: string) =>
    send('PUT', `/workspaces/${ws}/members/${viewer.user.id}`, by.token, { role });
  const removeFromWorkspace = (ws: string, by: SignedUp) => send('DELETE', `/workspaces/${ws}/members/${viewer.user.id}`, by.token);
  const removeFromOrganization = (org: string, by: SignedUp) => send('DELETE', `/organizations/${org}/members/${viewer.user.id}`, by.token);

  /**
   * The role changes' events in the one order they can have happened in: a chain from `initial`
   * (each `from` the previous `to`); fails when there is none.
   */
  function chainOf(events: ApiEvent[], initial: string): string[] {
    const changes = events.filter((e) => e.action === 'workspace.member_role_changed').map((e) => e.changes.role!);
    const orders = (left: Change[], from: string): string[][] =>
      left.length === 0
        ? [[]]
        : left.flatMap((c, i) =>
            c.from === from
              ? orders([...left.slice(0, i), ...left.slice(i + 1)], c.to as string).map((rest) => [c.to as string, ...rest])
              : [],
          );
    const found = orders(changes, initial);
    expect(found.length, `the role changes ${JSON.stringify(changes)} chain from ${initial}`).toBeGreaterThan(0);
    return [initial, ...found[0]!];
  }

  it('two role changes at once: both 200, the final row is the later one, two events chained from the first role', async () => {
    expect(app.engine).toBe('postgres');
    for (let round = 0; round < ROUNDS; round++) {
      const org = await team();
      const ws = await privateWorkspace(org);
      await grant(ws, viewer, 'viewer');
      const [toMember, toAdmin] = await Promise.all([setRole(ws, owner, 'member'), setRole(ws, admin, 'admin')]);
      expect([toMember.status, toAdmin.status], `${toMember.text} ${toAdmin.text}`).toEqual([200, 200]);
      expect([toMember.body.role, toAdmin.body.role]).toEqual(['member', 'admin']);
      const events = await memberEventsOf(ws);
      const chain = chainOf(events, 'viewer');
      expect(chain).toHaveLength(3);
      // The last successful answer is the row.
      expect(await rolesIn(ws)).toEqual({ [viewer.user.id]: chain[2] });
      // Each event's actor is the one whose change it is.
      for (const e of events.filter((x) => x.action === 'workspace.member_role_changed')) {
        expect(e.actor.id).toBe(e.changes.role!.to === 'admin' ? admin.user.id : owner.user.id);
      }
    }
  });

  it('two role changes and a removal at once: the removal 204, each change 200 before it or 404 after; no row; events match', async () => {
    expect(app.engine).toBe('postgres');
    for (let round = 0; round < ROUNDS; round++) {
      const org = await team();
      const ws = await privateWorkspace(org);
      await grant(ws, viewer, 'viewer');
      const [toMember, toAdmin, removal] = await Promise.all([
        setRole(ws, owner, 'member'),
        setRole(ws, admin, 'admin'),
        removeFromWorkspace(ws, owner),
      ]);
      const texts = `${toMember.text} ${toAdmin.text} ${removal.text}`;
      expect(removal.status, texts).toBe(204);
      for (const change of [toMember, toAdmin]) {
        expect([200, 404], texts).toContain(change.status);
        if (change.status === 404) expect(change.body.message).toBe('Workspace member not found');
      }
      expect(await memberRows(ws)).toEqual([]);
      const events = await memberEventsOf(ws);
      const succeeded = [toMember, toAdmin].filter((c) => c.status === 200).length;
      expect(events.filter((e) => e.action === 'workspace.member_role_changed')).toHaveLength(succeeded);
      const chain = chainOf(events, 'viewer');
      const removals = events.filter((e) => e.action === 'workspace.member_removed');
      expect(removals).toHaveLength(1);
      // The removal came last of the successes: it took the role the last change left.
      expect(removals[0]!.changes).toEqual(removed(viewer.user.email, chain.at(-1)!));
    }
  });

  it('a role change, a removal from the workspace and a removal from the organization at once: one consistent end', async () => {
    expect(app.engine).toBe('postgres');
    for (let round = 0; round < ROUNDS; round++) {
      const org = await team();
      const ws = await privateWorkspace(org);
      await grant(ws, viewer, 'viewer');
      const [change, fromWorkspace, fromOrganization] = await Promise.all([
        setRole(ws, admin, 'admin'),
        removeFromWorkspace(ws, owner),
        removeFromOrganization(org, owner),
      ]);
      const texts = `${change.text} ${fromWorkspace.text} ${fromOrganization.text}`;
      expect(fromOrganization.status, texts).toBe(204);
      expect([200, 404], texts).toContain(change.status);
      expect([204, 404], texts).toContain(fromWorkspace.status);
      expect(await memberRows(ws)).toEqual([]);
      expect(await app.query('select 1 from memberships where organization_id = $1 and user_id = $2', [org, viewer.user.id])).toEqual([]);
      const events = await memberEventsOf(ws);
      expect(events.filter((e) => e.action === 'workspace.member_role_changed')).toHaveLength(change.status === 200 ? 1 : 0);
      const chain = chainOf(events, 'viewer');
      // Exactly one removal ended the membership: the workspace's own (204) or the organization's (then the other is 404).
      const removals = events.filter((e) => e.action === 'workspace.member_removed');
      expect(removals, texts).toHaveLength(1);
      expect(removals[0]!.changes).toEqual(removed(viewer.user.email, chain.at(-1)!));
      const [orgRemoval] = await storedEvents(app, `organization_id = $1 and action = 'member.removed' and target_id = $2`, [
        org,
        viewer.user.id,
      ]);
      expect(orgRemoval).toBeDefined();
      expect(removals[0]!.request_id === orgRemoval!.request_id).toBe(fromWorkspace.status === 404);
      expectFailure(await REST.getWorkspace(viewer.token, ws), 404, 'NOT_FOUND');
    }
  });

  /** Waits until a statement of this file's database waits for a lock (the request reached the held row). */
  async function untilWaitingForLock() {
    for (let i = 0; i < 200; i++) {
      const [row] = await app.query<{ n: number }>(
        `select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`,
      );
      if (row!.n > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    throw new Error('no statement waited for the held lock');
  }

  it.each([
    [
      'change a role',
      (ws: string) =>
        app.request('PUT', `/api/v1/workspaces/${ws}/members/${viewer.user.id}`, { token: member.token, body: { role: 'admin' } }),
    ],
    [
      'remove a member',
      (ws: string) => app.request('DELETE', `/api/v1/workspaces/${ws}/members/${viewer.user.id}`, { token: member.token }),
    ],
    [
      'add a member',
      (ws: string) => app.request('POST', `/api/v1/workspaces/${ws}/members`, { token: member.token, body: { user_id: admin.user.id } }),
    ],
  ])(
    'a workspace admin demoted while its request to %s waits for the workspace: the change runs after the demotion, 403',
    async (_name, request) => {
      expect(app.engine).toBe('postgres');
      const org = await team();
      const ws = await privateWorkspace(org);
      await grant(ws, member, 'admin');
      await grant(ws, viewer, 'viewer');
      let answer: Awaited<ReturnType<typeof request>> | undefined;
      await withRawTransaction(app, async (tx) => {
        // What a concurrent demotion of `member` holds until it commits: the organization's row
        // (key share), then the workspace's (update), as every membership change takes them.
        await tx`select id from organizations where id = ${org} for key share`;
        await tx`select id from workspaces where id = ${ws} for update`;
        await tx`update workspace_members set role = 'viewer' where workspace_id = ${ws} and user_id = ${member.user.id}`;
        const pending = request(ws);
        await untilWaitingForLock();
        await tx`commit`;
        answer = await pending;
      });
      expectApiError(answer!, 403, 'FORBIDDEN');
      expect(await rolesIn(ws)).toEqual({ [member.user.id]: 'viewer', [viewer.user.id]: 'viewer' });
      expect((await memberEventsOf(ws)).map((e) => e.action)).toEqual(['workspace.member_added', 'workspace.member_added']);
    },
  );
});
