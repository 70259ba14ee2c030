import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addByInvitation, addMember, signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { storedEvents } from './helpers/audit-helpers';
import { expectFailure, expectOk, restRequest, trpcOutcome, withQuery, type FaceOutcome } from './helpers/faces';
import { TOKEN_PATTERN, invitationRow, organizationRoleOf, sha256Hex } from './helpers/invitation-helpers';
import { createTeam } from './helpers/org-helpers';
import { ISO_MS_PATTERN } from './helpers/values';
import { createWorkspace, defaultWorkspaceIds, uniqueWorkspaceName } from './helpers/workspace-helpers';

/**
 * Guests (README, Invitations and guests; Workspace access; Errors): someone outside an
 * organization, invited into one of its workspaces, who accepted. What a guest sees (its
 * workspace, nothing else of the organization: 404 and absent), what its role lets it do
 * (at most `member`), `allow_guests` turned off at each layer (the guest is denied at the next
 * request, its membership stays, turning it on restores it, and pending guest invitations
 * cannot be accepted meanwhile), a guest who later joins the organization, `auth/me`, and a
 * guest's account deletion.
 *
 * The boundaries run on both faces (REST and the real tRPC client); every write is followed by
 * a read of the database (`workspace_members`, `memberships`, `invitations`, `audit_events`).
 */

let app: TestApp;
/** Owner of every organization the tests make (not its signup organization). */
let owner: SignedUp;
/** A plain member of those organizations, explicit admin of W1. */
let wsAdmin: SignedUp;
/** A plain member of those organizations, explicit viewer of W1. */
let insider: SignedUp;
/** The guest: never a member of those organizations unless a test makes it one. */
let guest: SignedUp;
/** A second outsider, for guest invitations left pending. */
let guest2: SignedUp;
/** No relation to any of those organizations. */
let stranger: SignedUp;
/** Guests whose accounts the deletion tests delete (one per face). */
let leavers: SignedUp[];

beforeAll(async () => {
  // Each signup hashes a password (scrypt): two at a time on a busy 2-core machine.
  app = await startTestApp({ DATABASE_DEADLINE_MS: '10000' });
  [owner, wsAdmin] = await signupMany(app, ['Owner', 'WsAdmin']);
  [insider, guest] = await signupMany(app, ['Insider', 'Guest']);
  [guest2, stranger] = await signupMany(app, ['GuestTwo', 'Stranger']);
  leavers = await signupMany(app, ['LeaverRest', 'LeaverTrpc']);
});
afterAll(async () => {
  await app?.close();
});

const GUESTS_ON = { permissions: { allow_guests: true } } as const;
const PRIVATE = { permissions: { visibility: 'private' } } as const;

// ---------------------------------------------------------------------------------------------
// The two faces
// ---------------------------------------------------------------------------------------------

type Client = ReturnType<TestApp['trpc']>;
type FaceName = 'REST' | 'tRPC';
const FACES: FaceName[] = ['REST', 'tRPC'];

/** One operation on both faces: REST (method, path under /api/v1, body) and the tRPC call; `ok` is the success status. */
interface Call {
  rest: [method: string, path: string, body?: unknown];
  trpc: (client: Client) => Promise<unknown>;
  ok: 200 | 201 | 204;
}

/** Sends `call` as `account` over `face`; an error answer is checked against the contract's shape on either face. */
async function send(face: FaceName, account: { token: string }, call: Call): Promise<FaceOutcome> {
  if (face === 'REST') {
    const [method, path, body] = call.rest;
    const res = await restRequest(app, method, path, { token: account.token, body });
    return { status: res.status, body: res.body };
  }
  return trpcOutcome(call.ok, () => call.trpc(app.trpc(account.token)));
}

/** The operations the tests call, each on both faces. */
const C = {
  getWorkspace: (ws: string): Call => ({
    rest: ['GET', `/workspaces/${ws}`],
    trpc: (c) => c.workspaces.get.query({ workspace_id: ws }),
    ok: 200,
  }),
  updateWorkspace: (ws: string, body: { name: string }): Call => ({
    rest: ['PUT', `/workspaces/${ws}`, body],
    trpc: (c) => c.workspaces.update.mutate({ workspace_id: ws, ...body }),
    ok: 200,
  }),
  archive: (ws: string): Call => ({
    rest: ['POST', `/workspaces/${ws}/archive`, {}],
    trpc: (c) => c.workspaces.archive.mutate({ workspace_id: ws }),
    ok: 200,
  }),
  deleteWorkspace: (ws: string): Call => ({
    rest: ['DELETE', `/workspaces/${ws}`],
    trpc: (c) => c.workspaces.delete.mutate({ workspace_id: ws }),
    ok: 204,
  }),
  workspaceSettings: (ws: string): Call => ({
    rest: ['GET', `/workspaces/${ws}/settings`],
    trpc: (c) => c.workspaces.getSettings.query({ workspace_id: ws }),
    ok: 200,
  }),
  putWorkspaceSettings: (ws: string, body: Record<string, unknown>): Call => ({
    rest: ['PUT', `/workspaces/${ws}/settings`, body],
    trpc: (c) => c.workspaces.updateSettings.mutate({ workspace_id: ws, ...body }),
    ok: 200,
  }),
  workspaceEvents: (ws: string): Call => ({
    rest: ['GET', `/workspaces/${ws}/events?limit=100`],
    trpc: (c) => c.audit.listWorkspaceEvents.query({ workspace_id: ws, limit: 100 }),
    ok: 200,
  }),
  members: (ws: string): Call => ({
    rest: ['GET', `/workspaces/${ws}/members?limit=100`],
    trpc: (c) => c.workspaces.members.list.query({ workspace_id: ws, limit: 100 }),
    ok: 200,
  }),
  member: (ws: string, userId: string): Call => ({
    rest: ['GET', `/workspaces/${ws}/members/${userId}`],
    trpc: (c) => c.workspaces.members.get.query({ workspace_id: ws, user_id: userId }),
    ok: 200,
  }),
  addMember: (ws: string, userId: string, role: 'admin' | 'member' | 'viewer'): Call => ({
    rest: ['POST', `/workspaces/${ws}/members`, { user_id: userId, role }],
    trpc: (c) => c.workspaces.members.add.mutate({ workspace_id: ws, user_id: userId, role }),
    ok: 201,
  }),
  setMemberRole: (ws: string, userId: string, role: 'admin' | 'member' | 'viewer'): Call => ({
    rest: ['PUT', `/workspaces/${ws}/members/${userId}`, { role }],
    trpc: (c) => c.workspaces.members.update.mutate({ workspace_id: ws, user_id: userId, role }),
    ok: 200,
  }),
  removeMember: (ws: string, userId: string): Call => ({
    rest: ['DELETE', `/workspaces/${ws}/members/${userId}`],
    trpc: (c) => c.workspaces.members.remove.mutate({ workspace_id: ws, user_id: userId }),
    ok: 204,
  }),
  access: (ws: string, userId?: string): Call => ({
    rest: ['GET', `/workspaces/${ws}/access${userId ? `?user_id=${userId}` : ''}`],
    trpc: (c) => c.workspaces.access.query({ workspace_id: ws, ...(userId ? { user_id: userId } : {}) }),
    ok: 200,
  }),
  listWorkspaces: (filters: { organization_id?: string; q?: string } = {}): Call => ({
    rest: ['GET', withQuery('/workspaces', { ...filters, limit: 100 })],
    trpc: (c) => c.workspaces.list.query({ ...filters, limit: 100 }),
    ok: 200,
  }),
  listOrganizationWorkspaces: (org: string): Call => ({
    rest: ['GET', `/organizations/${org}/workspaces?limit=100`],
    trpc: (c) => c.workspaces.listInOrganization.query({ org_id: org, limit: 100 }),
    ok: 200,
  }),
  createWorkspace: (org: string, name: string): Call => ({
    rest: ['POST', '/workspaces', { organization_id: org, name }],
    trpc: (c) => c.workspaces.create.mutate({ organization_id: org, name }),
    ok: 201,
  }),
  createInOrganization: (org: string, name: string): Call => ({
    rest: ['POST', `/organizations/${org}/workspaces`, { name }],
    trpc: (c) => c.workspaces.createInOrganization.mutate({ org_id: org, name }),
    ok: 201,
  }),
  provision: (org: string, name: string): Call => ({
    rest: ['POST', '/workspaces/provision', { organization_id: org, workspaces: [{ name }] }],
    trpc: (c) => c.workspaces.provision.mutate({ organization_id: org, workspaces: [{ name }] }),
    ok: 201,
  }),
  clone: (ws: string, name: string, org?: string): Call => ({
    rest: ['POST', `/workspaces/${ws}/clone`, { name, ...(org ? { organization_id: org } : {}) }],
    trpc: (c) => c.workspaces.clone.mutate({ workspace_id: ws, name, ...(org ? { organization_id: org } : {}) }),
    ok: 201,
  }),
  organization: (org: string): Call => ({
    rest: ['GET', `/organizations/${org}`],
    trpc: (c) => c.organizations.get.query({ org_id: org }),
    ok: 200,
  }),
  organizations: (): Call => ({
    rest: ['GET', '/organizations?limit=100'],
    trpc: (c) => c.organizations.list.query({ limit: 100 }),
    ok: 200,
  }),
  organizationMembers: (org: string): Call => ({
    rest: ['GET', `/organizations/${org}/members?limit=100`],
    trpc: (c) => c.organizations.listMembers.query({ org_id: org, limit: 100 }),
    ok: 200,
  }),
  organizationMember: (org: string, userId: string): Call => ({
    rest: ['GET', `/organizations/${org}/members/${userId}`],
    trpc: (c) => c.organizations.getMember.query({ org_id: org, user_id: userId }),
    ok: 200,
  }),
  organizationSettings: (org: string): Call => ({
    rest: ['GET', `/organizations/${org}/settings`],
    trpc: (c) => c.organizations.getSettings.query({ org_id: org }),
    ok: 200,
  }),
  putOrganizationSettings: (org: string, body: Record<string, unknown>): Call => ({
    rest: ['PUT', `/organizations/${org}/settings`, body],
    trpc: (c) => c.organizations.updateSettings.mutate({ org_id: org, ...body }),
    ok: 200,
  }),
  organizationEvents: (org: string): Call => ({
    rest: ['GET', `/organizations/${org}/events?limit=100`],
    trpc: (c) => c.audit.listOrganizationEvents.query({ org_id: org, limit: 100 }),
    ok: 200,
  }),
  inviteToOrganization: (org: string, email: string, role: 'owner' | 'admin' | 'member'): Call => ({
    rest: ['POST', `/organizations/${org}/invitations`, { email, role }],
    trpc: (c) => c.organizations.invitations.create.mutate({ org_id: org, email, role }),
    ok: 201,
  }),
  inviteToWorkspace: (ws: string, email: string, role: 'admin' | 'member' | 'viewer'): Call => ({
    rest: ['POST', `/workspaces/${ws}/invitations`, { email, role }],
    trpc: (c) => c.workspaces.invitations.create.mutate({ workspace_id: ws, email, role }),
    ok: 201,
  }),
  accept: (token: string): Call => ({
    rest: ['POST', '/invitations/accept', { token }],
    trpc: (c) => c.invitations.accept.mutate({ token }),
    ok: 200,
  }),
  removeFromOrganization: (org: string, userId: string): Call => ({
    rest: ['DELETE', `/organizations/${org}/members/${userId}`],
    trpc: (c) => c.organizations.removeMember.mutate({ org_id: org, user_id: userId }),
    ok: 204,
  }),
  me: (): Call => ({ rest: ['GET', '/auth/me'], trpc: (c) => c.auth.me.query(), ok: 200 }),
  deleteMe: (): Call => ({ rest: ['DELETE', '/auth/me'], trpc: (c) => c.auth.deleteMe.mutate(), ok: 204 }),
};

/** Setup over REST, not under test: fails unless `status`. */
async function must(account: { token: string }, call: Call, status: number = call.ok): Promise<any> {
  const outcome = await send('REST', account, call);
  expectOk(outcome, status, call.rest.join(' '));
  return outcome.body;
}

// ---------------------------------------------------------------------------------------------
// The database
// ---------------------------------------------------------------------------------------------

/** `{ user_id: role }` of the workspace's explicit members, as stored. */
async function rolesIn(ws: string): Promise<Record<string, string>> {
  const rows = await app.query<{ user_id: string; role: string }>('select user_id, role from workspace_members where workspace_id = $1', [
    ws,
  ]);
  return Object.fromEntries(rows.map((r) => [r.user_id, r.role]));
}

/** The workspace's explicit members as stored, oldest first (the members list's order). */
const memberRows = (ws: string) =>
  app.query<{ user_id: string; role: string }>(
    'select user_id, role from workspace_members where workspace_id = $1 order by created_at, user_id',
    [ws],
  );

const actorOf = (account: SignedUp) => ({ id: account.user.id, email: account.user.email });
const added = (email: string, role: string) => ({ email: { from: null, to: email }, role: { from: null, to: role } });
const removed = (email: string, role: string) => ({ email: { from: email, to: null }, role: { from: role, to: null } });

/** Everything of the organization a refused request must leave as it was. */
async function organizationState(org: string) {
  const [row] = await app.query(
    `select (select count(*)::int from workspaces where organization_id = $1) as workspaces,
            (select count(*)::int from memberships where organization_id = $1) as memberships,
            (select count(*)::int from invitations where organization_id = $1) as invitations,
            (select count(*)::int from audit_events where organization_id = $1) as events,
            (select settings::text from organizations where id = $1) as settings,
            (select coalesce(json_agg(json_build_object('w', w.id, 'v', w.version, 'n', w.name, 's', w.settings) order by w.id)::text, '')
               from workspaces w where w.organization_id = $1) as workspace_rows,
            (select coalesce(json_agg(json_build_object('w', wm.workspace_id, 'u', wm.user_id, 'r', wm.role) order by wm.workspace_id, wm.user_id)::text, '')
               from workspace_members wm join workspaces w on w.id = wm.workspace_id where w.organization_id = $1) as workspace_members`,
    [org],
  );
  return row;
}

// ---------------------------------------------------------------------------------------------
// The organization of a guest
// ---------------------------------------------------------------------------------------------

/**
 * Organization O (owned by `owner`; wsAdmin and insider plain members) with W1 (guests
 * allowed, visible to the organization; wsAdmin its explicit admin, insider its explicit
 * viewer), W2 (visible to the organization), W3 (private) and its default workspace.
 */
interface GuestOrg {
  org: string;
  w1: string;
  w2: string;
  w3: string;
  defaultWs: string;
}

async function guestOrganization(): Promise<GuestOrg> {
  const org = await createTeam(app, owner, [
    [wsAdmin, 'member'],
    [insider, 'member'],
  ]);
  const [defaultWs] = await defaultWorkspaceIds(app, org);
  const w1 = (await createWorkspace(app, owner.token, org, { name: uniqueWorkspaceName('Guest W1'), settings: GUESTS_ON })).id;
  const w2 = (await createWorkspace(app, owner.token, org, { name: uniqueWorkspaceName('Guest W2') })).id;
  const w3 = (await createWorkspace(app, owner.token, org, { name: uniqueWorkspaceName('Guest W3'), settings: PRIVATE })).id;
  await must(owner, C.addMember(w1, wsAdmin.user.id, 'admin'));
  await must(owner, C.addMember(w1, insider.user.id, 'viewer'));
  return { org, w1, w2, w3, defaultWs: defaultWs! };
}

/** O as above, with `who` a guest of W1 in `role` (invited by the owner, accepted over REST). */
async function withGuest(role: 'member' | 'viewer' = 'member', who: SignedUp = guest): Promise<GuestOrg> {
  const s = await guestOrganization();
  const { membership } = await addByInvitation(app, owner.token, s.w1, who, role);
  expect(membership).toEqual({ organization_id: s.org, workspace_id: s.w1, user_id: who.user.id, role, guest: true });
  expect(await rolesIn(s.w1)).toEqual({ [wsAdmin.user.id]: 'admin', [insider.user.id]: 'viewer', [who.user.id]: role });
  expect(await organizationRoleOf(app, s.org, who.user.id)).toBeNull();
  return s;
}

const ids = (page: { items: Array<{ id: string }> }) => page.items.map((w) => w.id);
const sorted = (values: string[]) => [...values].sort();

// ---------------------------------------------------------------------------------------------
// Joining as a guest
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('an outsider joins one workspace as a guest over %s', (face) => {
  it('needs allow_guests and a role of at most member; the invitation is kind guest; accepting makes a workspace membership only', async () => {
    const s = await guestOrganization();
    // allow_guests is false by default: W2 does not take a guest invitation (403 naming the rule), nor W1 for an admin.
    const before = await organizationState(s.org);
    expectFailure(await send(face, owner, C.inviteToWorkspace(s.w2, guest.user.email, 'viewer')), 403, 'FORBIDDEN', /allow_guests/);
    expectFailure(await send(face, owner, C.inviteToWorkspace(s.w1, guest.user.email, 'admin')), 403, 'FORBIDDEN');
    expect(await organizationState(s.org)).toEqual(before);

    const created = await send(face, owner, C.inviteToWorkspace(s.w1, guest.user.email, 'member'));
    expectOk(created, 201);
    const invitation = created.body.invitation;
    expect(created.body.token).toMatch(TOKEN_PATTERN);
    expect(invitation).toEqual({
      id: expect.any(String),
      organization_id: s.org,
      workspace_id: s.w1,
      email: guest.user.email,
      role: 'member',
      kind: 'guest',
      status: 'pending',
      invited_by: owner.user.id,
      expires_at: expect.stringMatching(ISO_MS_PATTERN),
      created_at: expect.stringMatching(ISO_MS_PATTERN),
      accepted_at: null,
      accepted_user_id: null,
    });
    // Stored as answered, with the token's SHA-256 (never the token).
    expect(await invitationRow(app, invitation.id)).toEqual({ ...invitation, token_hash: sha256Hex(created.body.token) });
    // Nothing is given before the guest says yes.
    expectFailure(await send(face, guest, C.getWorkspace(s.w1)), 404, 'NOT_FOUND', 'Workspace not found');

    const accepted = await send(face, guest, C.accept(created.body.token));
    expectOk(accepted, 200);
    expect(accepted.body.membership).toEqual({
      organization_id: s.org,
      workspace_id: s.w1,
      user_id: guest.user.id,
      role: 'member',
      guest: true,
    });
    expect(accepted.body.invitation).toEqual({
      ...invitation,
      status: 'accepted',
      accepted_at: expect.stringMatching(ISO_MS_PATTERN),
      accepted_user_id: guest.user.id,
    });
    expect(await invitationRow(app, invitation.id)).toMatchObject({ status: 'accepted', accepted_user_id: guest.user.id });
    expect(await rolesIn(s.w1)).toEqual({ [wsAdmin.user.id]: 'admin', [insider.user.id]: 'viewer', [guest.user.id]: 'member' });
    expect(await organizationRoleOf(app, s.org, guest.user.id)).toBeNull();
    expect(
      await app.query('select workspace_id from workspace_members where user_id = $1 and workspace_id in ($2, $3, $4, $5)', [
        guest.user.id,
        s.w2,
        s.w3,
        s.defaultWs,
        s.w1,
      ]),
    ).toEqual([{ workspace_id: s.w1 }]);

    // Its events: created by the inviter; accepted, and the membership added, by the guest (one transaction).
    const events = await storedEvents(
      app,
      `organization_id = $1 and (target_id = $2 or target_id = $3)`,
      [s.org, invitation.id, guest.user.id],
      'oldest first',
    );
    // (The accept's two share one created_at: their order in the table is the ids', so compare them by action.)
    const [first, ...acceptance] = events.map((e) => ({
      action: e.action,
      workspace_id: e.workspace_id,
      target_type: e.target_type,
      target_id: e.target_id,
      actor: e.actor,
    }));
    expect([first, ...sortedByAction(acceptance)]).toEqual([
      { action: 'invitation.created', workspace_id: s.w1, target_type: 'invitation', target_id: invitation.id, actor: actorOf(owner) },
      { action: 'invitation.accepted', workspace_id: s.w1, target_type: 'invitation', target_id: invitation.id, actor: actorOf(guest) },
      { action: 'workspace.member_added', workspace_id: s.w1, target_type: 'member', target_id: guest.user.id, actor: actorOf(guest) },
    ]);
    expect(events[0]!.changes).toEqual({
      email: { from: null, to: guest.user.email },
      role: { from: null, to: 'member' },
      kind: { from: null, to: 'guest' },
      expires_at: { from: null, to: invitation.expires_at },
    });
    const accept = events.find((e) => e.action === 'invitation.accepted')!;
    const memberAdded = events.find((e) => e.action === 'workspace.member_added')!;
    expect(accept.changes).toEqual({ status: { from: 'pending', to: 'accepted' } });
    expect(memberAdded.changes).toEqual(added(guest.user.email, 'member'));
    expect(accept.request_id).toBe(memberAdded.request_id);
    expect(accept.created_at).toBe(memberAdded.created_at);
    // The token is in no event.
    expect(JSON.stringify(events)).not.toContain(created.body.token);
  });
});

function sortedByAction<T extends { action: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => a.action.localeCompare(b.action));
}

// ---------------------------------------------------------------------------------------------
// What a guest sees
// ---------------------------------------------------------------------------------------------

describe('what a guest sees', () => {
  let s: GuestOrg;
  beforeAll(async () => {
    s = await withGuest('member');
  });

  it.each(FACES)('its workspace: get, settings, events, members (guest: true), its access, and the lists, only W1 (%s)', async (face) => {
    const got = await send(face, guest, C.getWorkspace(s.w1));
    expectOk(got, 200);
    expect(got.body).toMatchObject({ id: s.w1, organization_id: s.org });

    const settings = await send(face, guest, C.workspaceSettings(s.w1));
    expectOk(settings, 200);
    expect(settings.body).toMatchObject({ workspace_id: s.w1, overrides: GUESTS_ON });
    expect(settings.body.effective.permissions.allow_guests).toBe(true);

    const events = await send(face, guest, C.workspaceEvents(s.w1));
    expectOk(events, 200);
    const items = events.body.items as Array<{ workspace_id: string; action: string; target_id: string }>;
    for (const event of items) expect(event.workspace_id).toBe(s.w1);
    const [stored] = await app.query<{ n: number }>('select count(*)::int as n from audit_events where workspace_id = $1', [s.w1]);
    expect(items).toHaveLength(stored!.n);
    expect(items.filter((e) => e.target_id === guest.user.id).map((e) => e.action)).toEqual(['workspace.member_added']);
    expect(items.map((e) => e.action)).toEqual(expect.arrayContaining(['workspace.created', 'invitation.created', 'invitation.accepted']));

    const members = await send(face, guest, C.members(s.w1));
    expectOk(members, 200);
    expect(members.body.next_cursor).toBeNull();
    const person = (account: SignedUp, role: string, isGuest: boolean) => ({
      user_id: account.user.id,
      email: account.user.email,
      name: account.user.name,
      role,
      created_at: expect.stringMatching(ISO_MS_PATTERN),
      guest: isGuest,
    });
    expect(members.body.items).toEqual([person(wsAdmin, 'admin', false), person(insider, 'viewer', false), person(guest, 'member', true)]);
    expect(members.body.items.map((m: { user_id: string; role: string }) => ({ user_id: m.user_id, role: m.role }))).toEqual(
      await memberRows(s.w1),
    );
    const self = await send(face, guest, C.member(s.w1, guest.user.id));
    expectOk(self, 200);
    expect(self.body).toMatchObject({ user_id: guest.user.id, role: 'member' });

    const access = await send(face, guest, C.access(s.w1));
    expectOk(access, 200);
    expect(access.body).toEqual({ workspace_id: s.w1, user_id: guest.user.id, role: 'member', source: 'workspace_member', guest: true });
    // A workspace admin asking about the guest hears the same; about a member of the organization, guest: false.
    const asked = await send(face, wsAdmin, C.access(s.w1, guest.user.id));
    expectOk(asked, 200);
    expect(asked.body).toEqual({ workspace_id: s.w1, user_id: guest.user.id, role: 'member', source: 'workspace_member', guest: true });
    const insiderAccess = await send(face, owner, C.access(s.w1, insider.user.id));
    expect(insiderAccess.body).toMatchObject({ user_id: insider.user.id, guest: false });

    // Lists: only W1 of O, everywhere.
    const inOrg = await send(face, guest, C.listWorkspaces({ organization_id: s.org }));
    expectOk(inOrg, 200);
    expect(inOrg.body).toMatchObject({ next_cursor: null });
    expect(ids(inOrg.body)).toEqual([s.w1]);
    const scoped = await send(face, guest, C.listOrganizationWorkspaces(s.org));
    expectOk(scoped, 200);
    expect(ids(scoped.body)).toEqual([s.w1]);
    expect(scoped.body.next_cursor).toBeNull();
    const all = await send(face, guest, C.listWorkspaces());
    expectOk(all, 200);
    expect(all.body.next_cursor).toBeNull();
    expect(
      (all.body.items as Array<{ id: string; organization_id: string }>).filter((w) => w.organization_id === s.org).map((w) => w.id),
    ).toEqual([s.w1]);
    const byName = await send(face, guest, C.listWorkspaces({ q: 'Guest W' }));
    expect(ids(byName.body)).not.toEqual(expect.arrayContaining([s.w2]));
    expect(ids(byName.body)).not.toContain(s.w3);
  });

  it.each(FACES)(
    'nothing else of the organization: 404 on it, its members, settings, events, other workspaces and creates; absent from its lists (%s)',
    async (face) => {
      const before = await organizationState(s.org);
      const orgNotFound: Array<[string, Call]> = [
        ['GET organization', C.organization(s.org)],
        ['its members', C.organizationMembers(s.org)],
        ['a member', C.organizationMember(s.org, owner.user.id)],
        ['its own membership', C.organizationMember(s.org, guest.user.id)],
        ['its settings', C.organizationSettings(s.org)],
        ['a settings write', C.putOrganizationSettings(s.org, { features: { guest_was_here: true } })],
        ['its events', C.organizationEvents(s.org)],
        ['POST /workspaces in it', C.createWorkspace(s.org, uniqueWorkspaceName('Guest create'))],
        ['POST /organizations/{id}/workspaces', C.createInOrganization(s.org, uniqueWorkspaceName('Guest create'))],
        ['provisioning in it', C.provision(s.org, uniqueWorkspaceName('Guest provision'))],
        ['cloning W1 into it', C.clone(s.w1, uniqueWorkspaceName('Guest clone'))],
        ['an invitation to it', C.inviteToOrganization(s.org, 'friend-of-guest@example.com', 'member')],
      ];
      for (const [what, call] of orgNotFound) {
        expectFailure(await send(face, guest, call), 404, 'NOT_FOUND', 'Organization not found', what);
      }
      for (const ws of [s.w2, s.w3, s.defaultWs]) {
        const workspaceNotFound: Array<[string, Call]> = [
          ['get', C.getWorkspace(ws)],
          ['settings', C.workspaceSettings(ws)],
          ['settings write', C.putWorkspaceSettings(ws, { features: { guest_was_here: true } })],
          ['events', C.workspaceEvents(ws)],
          ['members', C.members(ws)],
          ['access', C.access(ws)],
          ['clone into its own organization', C.clone(ws, uniqueWorkspaceName('Guest clone'), guest.organization.id)],
          ['invitation', C.inviteToWorkspace(ws, 'friend-of-guest@example.com', 'viewer')],
        ];
        for (const [what, call] of workspaceNotFound) {
          expectFailure(await send(face, guest, call), 404, 'NOT_FOUND', 'Workspace not found', `${what} of ${ws}`);
        }
      }
      expect(await organizationState(s.org)).toEqual(before);

      const organizations = await send(face, guest, C.organizations());
      expectOk(organizations, 200);
      expect(ids(organizations.body)).toContain(guest.organization.id);
      expect(ids(organizations.body)).not.toContain(s.org);

      // Someone with no relation to O: its workspace lists are 404.
      expectFailure(await send(face, stranger, C.listWorkspaces({ organization_id: s.org })), 404, 'NOT_FOUND', 'Organization not found');
      expectFailure(await send(face, stranger, C.listOrganizationWorkspaces(s.org)), 404, 'NOT_FOUND', 'Organization not found');
      expectFailure(await send(face, stranger, C.getWorkspace(s.w1)), 404, 'NOT_FOUND', 'Workspace not found');
    },
  );

  it.each(FACES)('cloning W1 into its own organization: read access to the source and admin of the target is enough (%s)', async (face) => {
    // README, Workspace access: "clone from it: read access to it, and admin of the target organization".
    const name = uniqueWorkspaceName('Guest clone out');
    const cloned = await send(face, guest, C.clone(s.w1, name, guest.organization.id));
    expectOk(cloned, 201);
    expect(cloned.body).toMatchObject({ organization_id: guest.organization.id, name, cloned_from_id: s.w1 });
    // A clone copies settings, never who was given the source.
    expect(await rolesIn(cloned.body.id)).toEqual({});
  });

  it.each(FACES)("auth/me lists W1 among the guest's workspace memberships, and O not among its organizations (%s)", async (face) => {
    const me = await send(face, guest, C.me());
    expectOk(me, 200);
    expect(me.body.workspace_memberships).toContainEqual({ workspace_id: s.w1, organization_id: s.org, role: 'member' });
    expect((me.body.workspace_memberships as Array<{ organization_id: string }>).filter((m) => m.organization_id === s.org)).toHaveLength(
      1,
    );
    expect((me.body.memberships as Array<{ organization_id: string }>).map((m) => m.organization_id)).not.toContain(s.org);
  });
});

// ---------------------------------------------------------------------------------------------
// A guest's role
// ---------------------------------------------------------------------------------------------

describe.each(FACES)("a guest's role over %s", (face) => {
  it('a guest member cannot do what needs a workspace admin (403) and changes nothing', async () => {
    const s = await withGuest('member');
    const before = await organizationState(s.org);
    const forbidden: Array<[string, Call]> = [
      ['update W1', C.updateWorkspace(s.w1, { name: 'Renamed by a guest' })],
      ['settings write', C.putWorkspaceSettings(s.w1, { features: { guest_was_here: true } })],
      ['archive', C.archive(s.w1)],
      ['delete', C.deleteWorkspace(s.w1)],
      ['add a member of the organization', C.addMember(s.w1, owner.user.id, 'viewer')],
      ['change a role', C.setMemberRole(s.w1, insider.user.id, 'member')],
      ['change its own role', C.setMemberRole(s.w1, guest.user.id, 'admin')],
      ['remove another', C.removeMember(s.w1, insider.user.id)],
      ["another's access", C.access(s.w1, insider.user.id)],
    ];
    for (const [what, call] of forbidden) expectFailure(await send(face, guest, call), 403, 'FORBIDDEN', undefined, what);
    expect(await organizationState(s.org)).toEqual(before);
  });

  it('a guest is at most member: making it admin is 403 for the workspace admin and the owner, the row keeps its role', async () => {
    const s = await withGuest('viewer');
    const before = await organizationState(s.org);
    for (const by of [wsAdmin, owner]) {
      expectFailure(await send(face, by, C.setMemberRole(s.w1, guest.user.id, 'admin')), 403, 'FORBIDDEN');
    }
    expect(await organizationState(s.org)).toEqual(before);
    expect(await rolesIn(s.w1)).toMatchObject({ [guest.user.id]: 'viewer' });
    // Up to member is allowed.
    const promoted = await send(face, wsAdmin, C.setMemberRole(s.w1, guest.user.id, 'member'));
    expectOk(promoted, 200);
    expect(promoted.body).toMatchObject({ user_id: guest.user.id, role: 'member' });
    expect(await rolesIn(s.w1)).toMatchObject({ [guest.user.id]: 'member' });
    expectFailure(await send(face, wsAdmin, C.setMemberRole(s.w1, guest.user.id, 'admin')), 403, 'FORBIDDEN');
    expect(await rolesIn(s.w1)).toMatchObject({ [guest.user.id]: 'member' });
    const access = await send(face, guest, C.access(s.w1));
    expect(access.body).toEqual({ workspace_id: s.w1, user_id: guest.user.id, role: 'member', source: 'workspace_member', guest: true });
  });

  it('a guest may leave: 204, the row and its access gone, one workspace.member_removed by the guest', async () => {
    const s = await withGuest('member');
    const left = await send(face, guest, C.removeMember(s.w1, guest.user.id));
    expectOk(left, 204);
    expect(await rolesIn(s.w1)).toEqual({ [wsAdmin.user.id]: 'admin', [insider.user.id]: 'viewer' });
    const removals = await storedEvents(app, `workspace_id = $1 and action = 'workspace.member_removed'`, [s.w1], 'oldest first');
    expect(removals.map((e) => ({ target_id: e.target_id, actor: e.actor, changes: e.changes }))).toEqual([
      { target_id: guest.user.id, actor: actorOf(guest), changes: removed(guest.user.email, 'member') },
    ]);
    expectFailure(await send(face, guest, C.getWorkspace(s.w1)), 404, 'NOT_FOUND', 'Workspace not found');
    expectFailure(await send(face, guest, C.listWorkspaces({ organization_id: s.org })), 404, 'NOT_FOUND');
    const me = await send(face, guest, C.me());
    expect((me.body.workspace_memberships as Array<{ workspace_id: string }>).map((m) => m.workspace_id)).not.toContain(s.w1);
  });
});

// ---------------------------------------------------------------------------------------------
// allow_guests turned off, at each layer
// ---------------------------------------------------------------------------------------------

interface Layer {
  name: string;
  /** After the guest joined: the state this layer starts from (guests still allowed). */
  prepare?(s: GuestOrg): Promise<void>;
  off(s: GuestOrg): Promise<void>;
  on(s: GuestOrg): Promise<void>;
}

const LAYERS: Layer[] = [
  {
    name: "the workspace's override",
    off: async (s) => void (await must(owner, C.putWorkspaceSettings(s.w1, { permissions: { allow_guests: false } }))),
    on: async (s) => void (await must(owner, C.putWorkspaceSettings(s.w1, { permissions: { allow_guests: true } }))),
  },
  {
    name: "the organization's value (W1 inheriting it)",
    prepare: async (s) => {
      await must(owner, C.putOrganizationSettings(s.org, { permissions: { allow_guests: true } }));
      await must(owner, C.putWorkspaceSettings(s.w1, { permissions: { allow_guests: null } }));
    },
    off: async (s) => void (await must(owner, C.putOrganizationSettings(s.org, { permissions: { allow_guests: false } }))),
    on: async (s) => void (await must(owner, C.putOrganizationSettings(s.org, { permissions: { allow_guests: true } }))),
  },
  {
    name: "the organization's lock (over W1's override true)",
    off: async (s) =>
      void (await must(
        owner,
        C.putOrganizationSettings(s.org, { permissions: { allow_guests: false }, locks: ['permissions.allow_guests'] }),
      )),
    on: async (s) => void (await must(owner, C.putOrganizationSettings(s.org, { locks: null }))),
  },
];

describe.each(LAYERS)('allow_guests turned off by $name', (layer) => {
  async function effectiveAllowGuests(ws: string): Promise<boolean> {
    return (await must(owner, C.workspaceSettings(ws))).effective.permissions.allow_guests as boolean;
  }

  /** What the guest has of W1, on both faces: everything, or nothing (404, absent). */
  async function expectGuestAccess(s: GuestOrg, has: boolean) {
    for (const face of FACES) {
      const reads: Array<[string, Call]> = [
        ['get', C.getWorkspace(s.w1)],
        ['settings', C.workspaceSettings(s.w1)],
        ['events', C.workspaceEvents(s.w1)],
        ['members', C.members(s.w1)],
        ['access', C.access(s.w1)],
      ];
      for (const [what, call] of reads) {
        const outcome = await send(face, guest, call);
        if (has) expectOk(outcome, 200, `${face} ${what}`);
        else expectFailure(outcome, 404, 'NOT_FOUND', 'Workspace not found', `${face} ${what}`);
      }
      const all = await send(face, guest, C.listWorkspaces());
      expectOk(all, 200);
      expect(ids(all.body).includes(s.w1), `${face}: W1 in GET /workspaces`).toBe(has);
      // Its only workspace of O: the organization-scoped lists hold it, or not (whether they are then
      // 404 or an empty page is the next describe's question).
      for (const call of [C.listWorkspaces({ organization_id: s.org }), C.listOrganizationWorkspaces(s.org)]) {
        const scoped = await send(face, guest, call);
        if (has) {
          expectOk(scoped, 200);
          expect(ids(scoped.body)).toEqual([s.w1]);
        } else if (scoped.status === 200) expect(ids(scoped.body), `${face} ${call.rest[1]}`).toEqual([]);
        else expectFailure(scoped, 404, 'NOT_FOUND', 'Organization not found', `${face} ${call.rest[1]}`);
      }
      const me = await send(face, guest, C.me());
      expectOk(me, 200);
      if (has) expect(me.body.workspace_memberships).toContainEqual({ workspace_id: s.w1, organization_id: s.org, role: 'member' });
    }
  }

  it('denies the guest at the next request, keeps its membership, refuses pending guest invitations; turning it on restores both', async () => {
    const s = await withGuest('member');
    await layer.prepare?.(s);
    expect(await effectiveAllowGuests(s.w1)).toBe(true);
    await expectGuestAccess(s, true);
    // A second guest's invitation, left pending.
    const pending = await must(owner, C.inviteToWorkspace(s.w1, guest2.user.email, 'viewer'));
    expect(pending.invitation.kind).toBe('guest');

    await layer.off(s);
    expect(await effectiveAllowGuests(s.w1)).toBe(false);
    await expectGuestAccess(s, false);
    // The membership stays, and W1's admins still see it as a guest's.
    expect(await rolesIn(s.w1)).toEqual({ [wsAdmin.user.id]: 'admin', [insider.user.id]: 'viewer', [guest.user.id]: 'member' });
    const members = await must(wsAdmin, C.members(s.w1));
    expect(members.items.find((m: { user_id: string }) => m.user_id === guest.user.id)).toMatchObject({ role: 'member', guest: true });
    // The pending guest invitation cannot be accepted meanwhile (409, on both faces), and stays pending; no new one is created.
    const before = await organizationState(s.org);
    for (const face of FACES) {
      expectFailure(await send(face, guest2, C.accept(pending.token)), 409, 'CONFLICT', undefined, face);
      expectFailure(
        await send(face, owner, C.inviteToWorkspace(s.w1, 'another-guest@example.com', 'viewer')),
        403,
        'FORBIDDEN',
        /allow_guests/,
        face,
      );
    }
    expect(await organizationState(s.org)).toEqual(before);
    expect(await invitationRow(app, pending.invitation.id)).toMatchObject({ status: 'pending', accepted_user_id: null });
    expect(await rolesIn(s.w1)).not.toHaveProperty(guest2.user.id);
    // Members of the organization keep W1 (allow_guests is about guests only).
    expectOk(await send('REST', insider, C.getWorkspace(s.w1)), 200);

    await layer.on(s);
    expect(await effectiveAllowGuests(s.w1)).toBe(true);
    await expectGuestAccess(s, true);
    const access = await must(guest, C.access(s.w1));
    expect(access).toEqual({ workspace_id: s.w1, user_id: guest.user.id, role: 'member', source: 'workspace_member', guest: true });
    // The pending invitation works again.
    const accepted = await send('tRPC', guest2, C.accept(pending.token));
    expectOk(accepted, 200);
    expect(accepted.body.membership).toEqual({
      organization_id: s.org,
      workspace_id: s.w1,
      user_id: guest2.user.id,
      role: 'viewer',
      guest: true,
    });
    expect(await invitationRow(app, pending.invitation.id)).toMatchObject({ status: 'accepted', accepted_user_id: guest2.user.id });
    expect(await rolesIn(s.w1)).toMatchObject({ [guest.user.id]: 'member', [guest2.user.id]: 'viewer' });
  });
});

describe('a guest denied by allow_guests', () => {
  it.each(FACES)(
    'finds its organization-scoped workspace lists 404, as anyone without access to any workspace of the organization does (%s)',
    async (face) => {
      // README: "workspace lists show them only their workspaces (… ?organization_id= or
      // /organizations/{org_id}/workspaces …; 404 when they have none there)", and a guest denied
      // by allow_guests is refused "404, as for anyone without access": it has none there.
      const s = await withGuest('member');
      await must(owner, C.putWorkspaceSettings(s.w1, { permissions: { allow_guests: false } }));
      expectFailure(await send(face, guest, C.getWorkspace(s.w1)), 404, 'NOT_FOUND', 'Workspace not found');
      for (const call of [C.listWorkspaces({ organization_id: s.org }), C.listOrganizationWorkspaces(s.org)]) {
        expectFailure(await send(face, guest, call), 404, 'NOT_FOUND', 'Organization not found', `${face} ${call.rest[1]}`);
      }
    },
  );
});

// ---------------------------------------------------------------------------------------------
// A guest who joins the organization
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('a guest who later accepts an invitation to the organization, over %s', (face) => {
  it('is a member from then on: guest false, the organization and its visible workspaces readable', async () => {
    const s = await withGuest('member');
    const invited = await send(face, owner, C.inviteToOrganization(s.org, guest.user.email, 'member'));
    expectOk(invited, 201);
    expect(invited.body.invitation).toMatchObject({
      organization_id: s.org,
      workspace_id: null,
      role: 'member',
      kind: 'member',
      status: 'pending',
    });
    const accepted = await send(face, guest, C.accept(invited.body.token));
    expectOk(accepted, 200);
    expect(accepted.body.membership).toEqual({
      organization_id: s.org,
      workspace_id: null,
      user_id: guest.user.id,
      role: 'member',
      guest: false,
    });
    expect(await organizationRoleOf(app, s.org, guest.user.id)).toBe('member');
    expect(await rolesIn(s.w1)).toMatchObject({ [guest.user.id]: 'member' });
    const [memberAdded] = await storedEvents(
      app,
      `organization_id = $1 and action = 'member.added' and target_id = $2`,
      [s.org, guest.user.id],
      'oldest first',
    );
    expect(memberAdded).toMatchObject({ workspace_id: null, actor: actorOf(guest), changes: added(guest.user.email, 'member') });

    const access = await send(face, guest, C.access(s.w1));
    expectOk(access, 200);
    expect(access.body).toEqual({ workspace_id: s.w1, user_id: guest.user.id, role: 'member', source: 'workspace_member', guest: false });
    const members = await send(face, wsAdmin, C.members(s.w1));
    expect(members.body.items.find((m: { user_id: string }) => m.user_id === guest.user.id)).toMatchObject({ guest: false });

    const organization = await send(face, guest, C.organization(s.org));
    expectOk(organization, 200);
    expect(organization.body).toMatchObject({ id: s.org, role: 'member' });
    expectOk(await send(face, guest, C.organizationMembers(s.org)), 200);
    expectOk(await send(face, guest, C.organizationSettings(s.org)), 200);
    expect(ids((await send(face, guest, C.organizations())).body)).toContain(s.org);
    // Organization events stay admin-only: 403 to a member now, no longer 404.
    expectFailure(await send(face, guest, C.organizationEvents(s.org)), 403, 'FORBIDDEN');
    expectOk(await send(face, guest, C.getWorkspace(s.w2)), 200);
    expectOk(await send(face, guest, C.getWorkspace(s.defaultWs)), 200);
    expectFailure(await send(face, guest, C.getWorkspace(s.w3)), 404, 'NOT_FOUND', 'Workspace not found');
    const listed = await send(face, guest, C.listWorkspaces({ organization_id: s.org }));
    expectOk(listed, 200);
    expect(sorted(ids(listed.body))).toEqual(sorted([s.defaultWs, s.w1, s.w2]));

    // No longer a guest: allow_guests off leaves its access to W1 as it is.
    await must(owner, C.putWorkspaceSettings(s.w1, { permissions: { allow_guests: false } }));
    expectOk(await send(face, guest, C.getWorkspace(s.w1)), 200);
    expect((await send(face, guest, C.access(s.w1))).body).toMatchObject({ role: 'member', guest: false });
  });
});

// ---------------------------------------------------------------------------------------------
// Guest or member: decided at acceptance
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('guest or member is decided at acceptance, over %s', (face) => {
  it('invited as a member of the organization, accepted after leaving it: a guest, under the guest rules', async () => {
    const s = await guestOrganization();
    await addMember(app, owner.token, s.org, guest2, 'member');
    // Invited while a member: kind member, allowed where guests are not (W2, W3), any workspace role.
    const asAdmin = await must(owner, C.inviteToWorkspace(s.w2, guest2.user.email, 'admin'));
    const asMember = await must(owner, C.inviteToWorkspace(s.w3, guest2.user.email, 'member'));
    expect([asAdmin.invitation.kind, asMember.invitation.kind]).toEqual(['member', 'member']);
    await must(guest2, C.removeFromOrganization(s.org, guest2.user.id));
    expect(await organizationRoleOf(app, s.org, guest2.user.id)).toBeNull();
    // The invitations it received stay pending (only those it created are revoked).
    expect(await invitationRow(app, asAdmin.invitation.id)).toMatchObject({ status: 'pending' });

    // Now an outsider: W3 does not allow guests (409, the invitation stays pending, nothing written).
    const before = await organizationState(s.org);
    expectFailure(await send(face, guest2, C.accept(asMember.token)), 409, 'CONFLICT');
    expect(await organizationState(s.org)).toEqual(before);
    expect(await invitationRow(app, asMember.invitation.id)).toMatchObject({ status: 'pending', accepted_user_id: null });
    expect(await rolesIn(s.w3)).toEqual({});
    // Once W3 allows guests, it joins as a guest.
    await must(owner, C.putWorkspaceSettings(s.w3, GUESTS_ON));
    const accepted = await send(face, guest2, C.accept(asMember.token));
    expectOk(accepted, 200);
    expect(accepted.body.membership).toEqual({
      organization_id: s.org,
      workspace_id: s.w3,
      user_id: guest2.user.id,
      role: 'member',
      guest: true,
    });
    expect(await rolesIn(s.w3)).toEqual({ [guest2.user.id]: 'member' });
    expect((await must(guest2, C.access(s.w3))).guest).toBe(true);

    // As admin of W2 it would be a guest above member: 409 even where guests are allowed.
    await must(owner, C.putWorkspaceSettings(s.w2, GUESTS_ON));
    expectFailure(await send(face, guest2, C.accept(asAdmin.token)), 409, 'CONFLICT');
    expect(await invitationRow(app, asAdmin.invitation.id)).toMatchObject({ status: 'pending', accepted_user_id: null });
    expect(await rolesIn(s.w2)).toEqual({});
  });

  it('invited as a guest, accepted after joining the organization: a member, whatever allow_guests says', async () => {
    const s = await guestOrganization();
    const invitation = await must(owner, C.inviteToWorkspace(s.w1, guest2.user.email, 'viewer'));
    expect(invitation.invitation.kind).toBe('guest');
    await addMember(app, owner.token, s.org, guest2, 'member');
    await must(owner, C.putWorkspaceSettings(s.w1, { permissions: { allow_guests: false } }));
    const accepted = await send(face, guest2, C.accept(invitation.token));
    expectOk(accepted, 200);
    expect(accepted.body.membership).toEqual({
      organization_id: s.org,
      workspace_id: s.w1,
      user_id: guest2.user.id,
      role: 'viewer',
      guest: false,
    });
    expect(await rolesIn(s.w1)).toMatchObject({ [guest2.user.id]: 'viewer' });
    const access = await send(face, guest2, C.access(s.w1));
    expectOk(access, 200);
    expect(access.body).toMatchObject({ workspace_id: s.w1, user_id: guest2.user.id, guest: false });
  });
});

// ---------------------------------------------------------------------------------------------
// A guest's account deletion
// ---------------------------------------------------------------------------------------------

describe.each(FACES)("a guest's account deletion over %s", (face) => {
  it('removes its workspace membership, with a workspace.member_removed event by the guest', async () => {
    const leaver = leavers[FACES.indexOf(face)]!;
    const s = await withGuest('viewer', leaver);
    expectOk(await send(face, leaver, C.deleteMe()), 204);
    expect(await rolesIn(s.w1)).toEqual({ [wsAdmin.user.id]: 'admin', [insider.user.id]: 'viewer' });
    expect(await app.query('select 1 from workspace_members where user_id = $1', [leaver.user.id])).toEqual([]);
    expect(await app.query('select 1 from users where id = $1', [leaver.user.id])).toEqual([]);
    // README (Workspace access; Audit events): each workspace membership an account deletion takes with it writes workspace.member_removed.
    const removals = await storedEvents(
      app,
      `organization_id = $1 and action = 'workspace.member_removed' and target_id = $2`,
      [s.org, leaver.user.id],
      'oldest first',
    );
    expect(removals.map((e) => ({ workspace_id: e.workspace_id, actor: e.actor, target_type: e.target_type, changes: e.changes }))).toEqual(
      [{ workspace_id: s.w1, actor: actorOf(leaver), target_type: 'member', changes: removed(leaver.user.email, 'viewer') }],
    );
    // It was never a member of O: no member.removed there.
    expect(await storedEvents(app, `organization_id = $1 and action = 'member.removed'`, [s.org], 'oldest first')).toEqual([]);
    const members = await must(owner, C.members(s.w1));
    expect(members.items.map((m: { user_id: string }) => m.user_id)).not.toContain(leaver.user.id);
  });
});
