import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config';
import { serveApp, signupMany, startTestApp, uniqueEmail, type SignedUp, type TestApp } from './helpers/app';
import { expectApiError } from './helpers/errors';
import { expectFailure, expectOk, restRequest, trpcOutcome, withQuery, type FaceOutcome, type Query } from './helpers/faces';
import { createTeam } from './helpers/org-helpers';
import { createOrganizationFor, createWorkspace } from './helpers/workspace-helpers';
import { ISO_MS_PATTERN, UNKNOWN_UUID } from './helpers/values';
import {
  MEMBERSHIP_KEYS,
  NOT_FOUND_MESSAGE,
  OTHER_EMAIL_MESSAGE,
  PREVIEW_KEYS,
  TOKEN_PATTERN,
  eventCount,
  eventsOf,
  expectInvitationShape,
  invitationCount,
  invitationRow,
  invitationRows,
  median,
  organizationRoleOf,
  organizationSnapshot,
  pendingMessage,
  sha256Hex,
  wholeDatabaseText,
  workspaceRoleOf,
} from './helpers/invitation-helpers';

/**
 * Invitations and guests (README, Invitations and guests; Workspace access; Errors; Audit
 * events): the lifecycle (create, preview, accept, decline, revoke, resend, expiry by the
 * service's clock, `deps.now`, which this file moves), workspace and organization invitations
 * and who may send them, the rules checked again at acceptance, the email match, the limits
 * (one pending per target and email, existing members, INVITATIONS_PENDING_MAX,
 * INVITATIONS_PER_DAY), no account enumeration through the create (answer and timing), the
 * token kept out of logs, events, lists and the database (only its SHA-256 there), preview's
 * own per-address rate limit, and the lists.
 *
 * Every test asserts the answer and reads the database afterwards (the `invitations`,
 * `memberships`, `workspace_members` and `audit_events` rows). The lifecycle runs on both faces
 * (REST and the real tRPC client); the rest on REST, with tRPC where a fact of that face matters.
 */

const TTL_HOURS = 24;
const HOUR = 3_600_000;
const TTL_MS = TTL_HOURS * HOUR;

/** The clock invitations run by: every create, resend, expiry and daily window reads it. It only moves forward. */
let clock = Date.now();
const now = () => new Date(clock);
/** Moves the service's clock on (by a second by default, so that creates are ordered). */
const tick = (ms = 1000) => {
  clock += ms;
};
const iso = (ms: number) => new Date(ms).toISOString();

let app: TestApp;
let owner: SignedUp;
let admin: SignedUp;
let member: SignedUp;
let viewer: SignedUp;
/** Accounts outside every team until a test invites them. */
let ann: SignedUp;
let bob: SignedUp;
let carol: SignedUp;
let dave: SignedUp;

beforeAll(async () => {
  // The rules are under test here, not the request deadline (test/database-deadline.test.ts has it).
  app = await startTestApp({ DATABASE_DEADLINE_MS: '10000', INVITATION_TTL_HOURS: String(TTL_HOURS) }, { now });
  [owner, admin, member, viewer] = await signupMany(app, ['Owner', 'Admin', 'Member', 'Viewer']);
  [ann, bob, carol, dave] = await signupMany(app, ['Ann', 'Bob', 'Carol', 'Dave']);
});
afterAll(async () => {
  await app?.close();
});

/** A fresh organization of the owner's with `admin` (admin), `member` and `viewer` (plain members), and any `more`. */
const team = (more: Array<[SignedUp, 'owner' | 'admin' | 'member']> = []) =>
  createTeam(app, owner, [[admin, 'admin'], [member, 'member'], [viewer, 'member'], ...more]);

const organizationName = async (org: string) =>
  (await app.query<{ name: string }>('select name from organizations where id = $1', [org]))[0]!.name;

/** A new workspace of `org` (created by its owner) with these settings overrides. */
async function workspaceIn(org: string, settings: Record<string, unknown> = {}) {
  return createWorkspace(app, owner.token, org, { settings });
}
const GUESTS = { permissions: { allow_guests: true } };
const PRIVATE = { permissions: { visibility: 'private' } };

/** Setup steps over REST, each expected to succeed. */
async function expectStatus(method: string, path: string, token: string, status: number, body?: unknown) {
  const res = await app.request(method, `/api/v1${path}`, { token, body });
  expect(res.status, `${method} ${path}: ${res.text}`).toBe(status);
  return res.body;
}
const grant = (ws: string, user: SignedUp, role: 'admin' | 'member' | 'viewer') =>
  expectStatus('POST', `/workspaces/${ws}/members`, owner.token, 201, { user_id: user.user.id, role });
const setWorkspaceRole = (ws: string, user: SignedUp, role: 'admin' | 'member' | 'viewer') =>
  expectStatus('PUT', `/workspaces/${ws}/members/${user.user.id}`, owner.token, 200, { role });
const setOrganizationRole = (org: string, user: SignedUp, role: 'owner' | 'admin' | 'member') =>
  expectStatus('PUT', `/organizations/${org}/members/${user.user.id}`, owner.token, 200, { role });
const putWorkspaceSettings = (ws: string, body: unknown) => expectStatus('PUT', `/workspaces/${ws}/settings`, owner.token, 200, body);
const putOrganizationSettings = (org: string, body: unknown) =>
  expectStatus('PUT', `/organizations/${org}/settings`, owner.token, 200, body);

// ---------------------------------------------------------------------------------------------
// The two faces
// ---------------------------------------------------------------------------------------------

/** One answer, whatever the face (see FaceOutcome), with the REST answer's headers (null on tRPC). */
interface Outcome extends FaceOutcome {
  headers: Headers | null;
}
type Body = Record<string, unknown>;

interface Face {
  name: 'REST' | 'tRPC';
  inviteToOrganization(token: string, org: string, body: Body): Promise<Outcome>;
  inviteToWorkspace(token: string, ws: string, body: Body): Promise<Outcome>;
  listOfOrganization(token: string, org: string, query?: Query): Promise<Outcome>;
  listOfWorkspace(token: string, ws: string, query?: Query): Promise<Outcome>;
  get(token: string, id: string): Promise<Outcome>;
  resend(token: string, id: string): Promise<Outcome>;
  revoke(token: string, id: string): Promise<Outcome>;
  /** No authentication. */
  preview(body: Body): Promise<Outcome>;
  accept(token: string, body: Body): Promise<Outcome>;
  decline(token: string, body: Body): Promise<Outcome>;
}

/** A REST call against `target` (the main app by default); an error answer is checked against the contract's shape. */
async function restCall(method: string, path: string, token: string | undefined, body?: unknown, target: TestApp = app): Promise<Outcome> {
  const res = await restRequest(target, method, path, { token, body });
  return { status: res.status, body: res.body, headers: res.headers };
}

/** A tRPC call; a failure is checked (data.code, data.httpStatus, no stack) and answered in the REST error shape. */
async function trpcCall(successStatus: number, call: () => Promise<unknown>): Promise<Outcome> {
  return { ...(await trpcOutcome(successStatus, call)), headers: null };
}

const restFace = (target: () => TestApp): Face => ({
  name: 'REST',
  inviteToOrganization: (token, org, body) => restCall('POST', `/organizations/${org}/invitations`, token, body, target()),
  inviteToWorkspace: (token, ws, body) => restCall('POST', `/workspaces/${ws}/invitations`, token, body, target()),
  listOfOrganization: (token, org, query) =>
    restCall('GET', withQuery(`/organizations/${org}/invitations`, query), token, undefined, target()),
  listOfWorkspace: (token, ws, query) => restCall('GET', withQuery(`/workspaces/${ws}/invitations`, query), token, undefined, target()),
  get: (token, id) => restCall('GET', `/invitations/${id}`, token, undefined, target()),
  resend: (token, id) => restCall('POST', `/invitations/${id}/resend`, token, undefined, target()),
  revoke: (token, id) => restCall('DELETE', `/invitations/${id}`, token, undefined, target()),
  preview: (body) => restCall('POST', '/invitations/preview', undefined, body, target()),
  accept: (token, body) => restCall('POST', '/invitations/accept', token, body, target()),
  decline: (token, body) => restCall('POST', '/invitations/decline', token, body, target()),
});
const REST = restFace(() => app);

const trpcFace = (target: () => TestApp): Face => ({
  name: 'tRPC',
  inviteToOrganization: (token, org, body) =>
    trpcCall(201, () =>
      target()
        .trpc(token)
        .organizations.invitations.create.mutate({ org_id: org, ...body } as never),
    ),
  inviteToWorkspace: (token, ws, body) =>
    trpcCall(201, () =>
      target()
        .trpc(token)
        .workspaces.invitations.create.mutate({ workspace_id: ws, ...body } as never),
    ),
  listOfOrganization: (token, org, query = {}) =>
    trpcCall(200, () =>
      target()
        .trpc(token)
        .organizations.invitations.list.query({ org_id: org, ...query }),
    ),
  listOfWorkspace: (token, ws, query = {}) =>
    trpcCall(200, () =>
      target()
        .trpc(token)
        .workspaces.invitations.list.query({ workspace_id: ws, ...query }),
    ),
  get: (token, id) => trpcCall(200, () => target().trpc(token).invitations.get.query({ invitation_id: id })),
  resend: (token, id) => trpcCall(200, () => target().trpc(token).invitations.resend.mutate({ invitation_id: id })),
  revoke: (token, id) => trpcCall(204, () => target().trpc(token).invitations.revoke.mutate({ invitation_id: id })),
  preview: (body) =>
    trpcCall(200, () =>
      target()
        .trpc()
        .invitations.preview.mutate(body as never),
    ),
  accept: (token, body) =>
    trpcCall(200, () =>
      target()
        .trpc(token)
        .invitations.accept.mutate(body as never),
    ),
  decline: (token, body) =>
    trpcCall(200, () =>
      target()
        .trpc(token)
        .invitations.decline.mutate(body as never),
    ),
});
const TRPC = trpcFace(() => app);

const FACES = [REST, TRPC];

const expectNotFoundToken = (outcome: Outcome) => expectFailure(outcome, 404, 'NOT_FOUND', NOT_FOUND_MESSAGE);

/** Creates an invitation over REST and expects 201: `{invitation, token}`. */
async function invite(target: { org: string } | { ws: string }, by: SignedUp, email: string, role: string) {
  const res =
    'org' in target
      ? await REST.inviteToOrganization(by.token, target.org, { email, role })
      : await REST.inviteToWorkspace(by.token, target.ws, { email, role });
  expectOk(res, 201);
  return res.body as { invitation: any; token: string };
}

/** What accept answers for `invitee` (as far as the invitation goes): the invitation accepted by them. */
const acceptedAs = (invitation: any, invitee: SignedUp) => ({
  ...invitation,
  status: 'accepted',
  accepted_user_id: invitee.user.id,
  accepted_at: expect.stringMatching(ISO_MS_PATTERN),
});

const created = (email: string, role: string, kind: string, expiresAt: string) => ({
  email: { from: null, to: email },
  role: { from: null, to: role },
  kind: { from: null, to: kind },
  expires_at: { from: null, to: expiresAt },
});
const statusChange = (to: string) => ({ status: { from: 'pending', to } });
const memberAdded = (email: string, role: string) => ({ email: { from: null, to: email }, role: { from: null, to: role } });

// ---------------------------------------------------------------------------------------------
// 1. The lifecycle
// ---------------------------------------------------------------------------------------------

describe.each(FACES)('lifecycle over $name', (face) => {
  it('create → preview → accept: the membership in its role, the invitation accepted, the events (the accepter their actor)', async () => {
    const org = await team();
    tick();
    const made = await face.inviteToOrganization(admin.token, org, { email: ann.user.email, role: 'member' });
    expectOk(made, 201);
    expect(Object.keys(made.body).sort()).toEqual(['invitation', 'token']);
    const { invitation, token } = made.body as { invitation: any; token: string };
    expect(token).toMatch(TOKEN_PATTERN);
    expectInvitationShape(invitation);
    expect(invitation).toEqual({
      id: invitation.id,
      organization_id: org,
      workspace_id: null,
      email: ann.user.email,
      role: 'member',
      kind: 'member',
      status: 'pending',
      invited_by: admin.user.id,
      expires_at: iso(clock + TTL_MS),
      created_at: iso(clock),
      accepted_at: null,
      accepted_user_id: null,
    });
    if (face.name === 'REST') expect(made.headers!.get('location')).toBe(`/api/v1/invitations/${invitation.id}`);
    expect(await invitationRow(app, invitation.id)).toEqual({ ...invitation, token_hash: sha256Hex(token) });
    expect(await eventsOf(app, org, invitation.id)).toEqual([
      {
        action: 'invitation.created',
        actor_id: admin.user.id,
        workspace_id: null,
        target_type: 'invitation',
        target_id: invitation.id,
        changes: created(ann.user.email, 'member', 'member', invitation.expires_at),
      },
    ]);

    // The invitee looks before joining, with no token of theirs.
    const preview = await face.preview({ token });
    expectOk(preview, 200);
    expect(preview.body).toEqual({
      organization_name: await organizationName(org),
      workspace_name: null,
      role: 'member',
      expires_at: invitation.expires_at,
      status: 'pending',
    });
    expect(await organizationRoleOf(app, org, ann.user.id)).toBeNull();

    const accepted = await face.accept(ann.token, { token });
    expectOk(accepted, 200);
    expect(Object.keys(accepted.body).sort()).toEqual(['invitation', 'membership']);
    expect(Object.keys(accepted.body.membership).sort()).toEqual([...MEMBERSHIP_KEYS]);
    expect(accepted.body).toEqual({
      invitation: acceptedAs(invitation, ann),
      membership: { organization_id: org, workspace_id: null, user_id: ann.user.id, role: 'member', guest: false },
    });
    expect(Date.parse(accepted.body.invitation.accepted_at)).toBeGreaterThanOrEqual(Date.parse(invitation.created_at));

    expect(await organizationRoleOf(app, org, ann.user.id)).toBe('member');
    expect(await invitationRow(app, invitation.id)).toEqual({ ...accepted.body.invitation, token_hash: sha256Hex(token) });
    expect(await eventsOf(app, org, invitation.id)).toEqual([
      expect.objectContaining({ action: 'invitation.created' }),
      {
        action: 'invitation.accepted',
        actor_id: ann.user.id,
        workspace_id: null,
        target_type: 'invitation',
        target_id: invitation.id,
        changes: statusChange('accepted'),
      },
    ]);
    expect(await eventsOf(app, org, ann.user.id)).toEqual([
      {
        action: 'member.added',
        actor_id: ann.user.id,
        workspace_id: null,
        target_type: 'member',
        target_id: ann.user.id,
        changes: memberAdded(ann.user.email, 'member'),
      },
    ]);

    // The inviter and the organization's owner read it; it carries no token.
    for (const reader of [admin, owner]) {
      const got = await face.get(reader.token, invitation.id);
      expectOk(got, 200);
      expect(got.body).toEqual(accepted.body.invitation);
    }

    // Spent: a second accept (or a decline) is 404 with the one message, and changes nothing.
    const before = await organizationSnapshot(app, org);
    expectNotFoundToken(await face.accept(ann.token, { token }));
    expectNotFoundToken(await face.decline(ann.token, { token }));
    expect(await organizationSnapshot(app, org)).toEqual(before);
  });

  it('decline: the invitation declined, no membership; the token is spent', async () => {
    const org = await team();
    const { invitation, token } = await invite({ org }, admin, bob.user.email, 'admin');
    const declined = await face.decline(bob.token, { token });
    expectOk(declined, 200);
    expect(Object.keys(declined.body)).toEqual(['invitation']);
    expectInvitationShape(declined.body.invitation);
    expect(declined.body.invitation).toEqual({ ...invitation, status: 'declined' });

    expect(await organizationRoleOf(app, org, bob.user.id)).toBeNull();
    expect(await invitationRow(app, invitation.id)).toEqual({ ...invitation, status: 'declined', token_hash: sha256Hex(token) });
    expect((await eventsOf(app, org, invitation.id)).map((e) => [e.action, e.actor_id, e.changes])).toEqual([
      ['invitation.created', admin.user.id, created(bob.user.email, 'admin', 'member', invitation.expires_at)],
      ['invitation.declined', bob.user.id, statusChange('declined')],
    ]);
    expect(await eventsOf(app, org, bob.user.id)).toEqual([]);

    const before = await organizationSnapshot(app, org);
    expectNotFoundToken(await face.accept(bob.token, { token }));
    expectNotFoundToken(await face.decline(bob.token, { token }));
    const preview = await face.preview({ token });
    expectOk(preview, 200);
    expect(preview.body.status).toBe('declined');
    expect(await organizationSnapshot(app, org)).toEqual(before);
  });

  it('revoke: 204, the invitation revoked; its token then unknown to accept and decline, and preview says revoked', async () => {
    const org = await team();
    const { invitation, token } = await invite({ org }, admin, ann.user.email, 'member');
    const revoked = await face.revoke(admin.token, invitation.id);
    expectOk(revoked, 204);
    if (face.name === 'REST') expect(revoked.body).toBeUndefined();

    expect(await invitationRow(app, invitation.id)).toEqual({ ...invitation, status: 'revoked', token_hash: sha256Hex(token) });
    expect((await eventsOf(app, org, invitation.id)).map((e) => [e.action, e.actor_id, e.workspace_id, e.changes])).toEqual([
      ['invitation.created', admin.user.id, null, created(ann.user.email, 'member', 'member', invitation.expires_at)],
      ['invitation.revoked', admin.user.id, null, statusChange('revoked')],
    ]);

    const before = await organizationSnapshot(app, org);
    expectNotFoundToken(await face.accept(ann.token, { token }));
    expectNotFoundToken(await face.decline(ann.token, { token }));
    const preview = await face.preview({ token });
    expectOk(preview, 200);
    expect(preview.body.status).toBe('revoked');
    const got = await face.get(admin.token, invitation.id);
    expectOk(got, 200);
    expect(got.body).toEqual({ ...invitation, status: 'revoked' });
    // Pending or expired only.
    expectFailure(await face.revoke(admin.token, invitation.id), 409, 'CONFLICT');
    expectFailure(await face.resend(admin.token, invitation.id), 409, 'CONFLICT');
    expect(await organizationSnapshot(app, org)).toEqual(before);
    expect(await organizationRoleOf(app, org, ann.user.id)).toBeNull();
  });

  it('resend: a new token and expiry; the old token stops working at once, the new one accepts', async () => {
    const org = await team();
    const first = await invite({ org }, admin, ann.user.email, 'member');
    tick(2 * HOUR);
    const resent = await face.resend(admin.token, first.invitation.id);
    expectOk(resent, 200);
    expect(Object.keys(resent.body).sort()).toEqual(['invitation', 'token']);
    const { invitation, token } = resent.body as { invitation: any; token: string };
    expect(token).toMatch(TOKEN_PATTERN);
    expect(token).not.toBe(first.token);
    expectInvitationShape(invitation);
    expect(invitation).toEqual({ ...first.invitation, expires_at: iso(clock + TTL_MS) });
    expect(Date.parse(invitation.expires_at)).toBeGreaterThan(Date.parse(first.invitation.expires_at));

    const row = await invitationRow(app, invitation.id);
    expect(row).toEqual({ ...invitation, token_hash: sha256Hex(token) });
    expect(row!.token_hash).not.toBe(sha256Hex(first.token));
    expect((await eventsOf(app, org, invitation.id)).map((e) => [e.action, e.actor_id, e.changes])).toEqual([
      ['invitation.created', admin.user.id, created(ann.user.email, 'member', 'member', first.invitation.expires_at)],
      ['invitation.resent', admin.user.id, { expires_at: { from: first.invitation.expires_at, to: invitation.expires_at } }],
    ]);

    // The old token is unknown everywhere.
    expectFailure(await face.preview({ token: first.token }), 404, 'NOT_FOUND');
    expectNotFoundToken(await face.accept(ann.token, { token: first.token }));
    expectNotFoundToken(await face.decline(ann.token, { token: first.token }));
    expect(await organizationRoleOf(app, org, ann.user.id)).toBeNull();
    expect((await invitationRow(app, invitation.id))!.status).toBe('pending');

    const preview = await face.preview({ token });
    expectOk(preview, 200);
    expect(preview.body).toMatchObject({ status: 'pending', expires_at: invitation.expires_at });
    const accepted = await face.accept(ann.token, { token });
    expectOk(accepted, 200);
    expect(accepted.body.invitation).toEqual(acceptedAs(invitation, ann));
    expect(await organizationRoleOf(app, org, ann.user.id)).toBe('member');
  });

  it("expires by the service's clock: preview says expired, accept and decline 410, GET and the list say expired; resend renews it", async () => {
    const org = await team();
    const { invitation, token } = await invite({ org }, admin, bob.user.email, 'member');
    tick(TTL_MS + 60_000);

    const preview = await face.preview({ token });
    expectOk(preview, 200);
    expect(preview.body).toEqual({
      organization_name: await organizationName(org),
      workspace_name: null,
      role: 'member',
      expires_at: invitation.expires_at,
      status: 'expired',
    });
    const before = await organizationSnapshot(app, org);
    expectFailure(await face.accept(bob.token, { token }), 410, 'GONE');
    expectFailure(await face.decline(bob.token, { token }), 410, 'GONE');
    expect(await organizationSnapshot(app, org)).toEqual(before);
    expect(await organizationRoleOf(app, org, bob.user.id)).toBeNull();

    const got = await face.get(admin.token, invitation.id);
    expectOk(got, 200);
    expect(got.body).toEqual({ ...invitation, status: 'expired' });
    const expired = await face.listOfOrganization(admin.token, org, { status: 'expired' });
    expectOk(expired, 200);
    expect(expired.body.items.map((i: { id: string }) => i.id)).toContain(invitation.id);
    expect(expired.body.items.find((i: { id: string }) => i.id === invitation.id)).toEqual({ ...invitation, status: 'expired' });
    const pending = await face.listOfOrganization(admin.token, org, { status: 'pending' });
    expectOk(pending, 200);
    expect(pending.body.items.map((i: { id: string }) => i.id)).not.toContain(invitation.id);

    // Resend works on an expired invitation: pending again, a new expiry from now.
    const resent = await face.resend(admin.token, invitation.id);
    expectOk(resent, 200);
    expect(resent.body.invitation).toEqual({ ...invitation, status: 'pending', expires_at: iso(clock + TTL_MS) });
    expect((await invitationRow(app, invitation.id))!.token_hash).toBe(sha256Hex(resent.body.token));
    const accepted = await face.accept(bob.token, { token: resent.body.token });
    expectOk(accepted, 200);
    expect(await organizationRoleOf(app, org, bob.user.id)).toBe('member');
  });

  it('a malformed token (short, 500 characters) is 404 with the message of an unknown one', async () => {
    const unknown = randomBytes(32).toString('base64url');
    const tokens = [unknown, 'x', 'a'.repeat(500), `${unknown.slice(0, 42)}!`];
    const before = await app.query('select id, status from invitations order by id');
    for (const token of tokens) {
      expectNotFoundToken(await face.accept(ann.token, { token }));
      expectNotFoundToken(await face.decline(ann.token, { token }));
      expectFailure(await face.preview({ token }), 404, 'NOT_FOUND');
    }
    expect(await app.query('select id, status from invitations order by id')).toEqual(before);
  });

  it('accept and decline need a logged-in caller (401)', async () => {
    const org = await team();
    const { invitation, token } = await invite({ org }, admin, ann.user.email, 'member');
    for (const path of ['/invitations/accept', '/invitations/decline'])
      expectFailure(await restCall('POST', path, undefined, { token }), 401, 'UNAUTHORIZED');
    expectFailure(await trpcCall(200, () => app.trpc().invitations.accept.mutate({ token })), 401, 'UNAUTHORIZED');
    expect((await invitationRow(app, invitation.id))!.status).toBe('pending');
    expect(await organizationRoleOf(app, org, ann.user.id)).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// 2. Workspace invitations
// ---------------------------------------------------------------------------------------------

describe('workspace invitations', () => {
  it('to a member of the organization: kind member; accepting makes an explicit workspace membership', async () => {
    const org = await team();
    const ws = await workspaceIn(org, PRIVATE);
    tick();
    const { invitation, token } = await invite({ ws: ws.id }, admin, member.user.email, 'admin');
    expect(invitation).toEqual({
      id: invitation.id,
      organization_id: org,
      workspace_id: ws.id,
      email: member.user.email,
      role: 'admin',
      kind: 'member',
      status: 'pending',
      invited_by: admin.user.id,
      expires_at: iso(clock + TTL_MS),
      created_at: iso(clock),
      accepted_at: null,
      accepted_user_id: null,
    });
    expect(await invitationRow(app, invitation.id)).toEqual({ ...invitation, token_hash: sha256Hex(token) });

    const preview = await REST.preview({ token });
    expect(preview.body).toEqual({
      organization_name: await organizationName(org),
      workspace_name: ws.name,
      role: 'admin',
      expires_at: invitation.expires_at,
      status: 'pending',
    });

    const accepted = await REST.accept(member.token, { token });
    expectOk(accepted, 200);
    expect(accepted.body).toEqual({
      invitation: acceptedAs(invitation, member),
      membership: { organization_id: org, workspace_id: ws.id, user_id: member.user.id, role: 'admin', guest: false },
    });
    expect(await workspaceRoleOf(app, ws.id, member.user.id)).toBe('admin');
    expect(await organizationRoleOf(app, org, member.user.id)).toBe('member');
    expect((await eventsOf(app, org, invitation.id)).map((e) => [e.action, e.actor_id, e.workspace_id, e.changes])).toEqual([
      ['invitation.created', admin.user.id, ws.id, created(member.user.email, 'admin', 'member', invitation.expires_at)],
      ['invitation.accepted', member.user.id, ws.id, statusChange('accepted')],
    ]);
    const memberEvents = await app.query<{ action: string; actor_id: string; changes: unknown }>(
      `select action, actor_id, changes from audit_events where workspace_id = $1 and target_id = $2`,
      [ws.id, member.user.id],
    );
    expect(memberEvents).toEqual([
      { action: 'workspace.member_added', actor_id: member.user.id, changes: memberAdded(member.user.email, 'admin') },
    ]);
  });

  it('to an outsider where allow_guests is true: kind guest; accepting makes a guest (over tRPC)', async () => {
    const org = await team();
    const ws = await workspaceIn(org, GUESTS);
    const { invitation, token } = await invite({ ws: ws.id }, owner, carol.user.email, 'member');
    expect(invitation).toMatchObject({ workspace_id: ws.id, kind: 'guest', role: 'member', status: 'pending' });

    const preview = await TRPC.preview({ token });
    expectOk(preview, 200);
    expect(preview.body).toMatchObject({ workspace_name: ws.name, role: 'member', status: 'pending' });
    const accepted = await TRPC.accept(carol.token, { token });
    expectOk(accepted, 200);
    expect(accepted.body.membership).toEqual({
      organization_id: org,
      workspace_id: ws.id,
      user_id: carol.user.id,
      role: 'member',
      guest: true,
    });
    expect(accepted.body.invitation).toEqual(acceptedAs(invitation, carol));

    expect(await workspaceRoleOf(app, ws.id, carol.user.id)).toBe('member');
    expect(await organizationRoleOf(app, org, carol.user.id)).toBeNull();
    // A guest: the workspace, with `guest: true`, and nothing else of the organization.
    const access = await restCall('GET', `/workspaces/${ws.id}/access`, carol.token);
    expectOk(access, 200);
    expect(access.body).toMatchObject({
      workspace_id: ws.id,
      user_id: carol.user.id,
      role: 'member',
      source: 'workspace_member',
      guest: true,
    });
    const members = await restCall('GET', `/workspaces/${ws.id}/members`, owner.token);
    expect(members.body.items.find((m: { user_id: string }) => m.user_id === carol.user.id)).toMatchObject({ role: 'member', guest: true });
    expectFailure(await restCall('GET', `/organizations/${org}`, carol.token), 404, 'NOT_FOUND');
  });

  it('to an outsider where allow_guests is false (the default): 403 naming the rule, nothing written; a guest is at most member', async () => {
    const org = await team();
    const closed = await workspaceIn(org);
    const open = await workspaceIn(org, GUESTS);
    const before = await organizationSnapshot(app, org);
    for (const face of FACES) {
      expectFailure(
        await face.inviteToWorkspace(owner.token, closed.id, { email: dave.user.email, role: 'viewer' }),
        403,
        'FORBIDDEN',
        /allow_guests/,
      );
      // An email with no account is not a member of the organization either.
      expectFailure(
        await face.inviteToWorkspace(owner.token, closed.id, { email: uniqueEmail('nobody'), role: 'viewer' }),
        403,
        'FORBIDDEN',
        /allow_guests/,
      );
      // Guests get at most `member`.
      expectFailure(await face.inviteToWorkspace(owner.token, open.id, { email: dave.user.email, role: 'admin' }), 403, 'FORBIDDEN');
    }
    expect(await organizationSnapshot(app, org)).toEqual(before);
    // The same role for a member of the organization is fine.
    const { invitation } = await invite({ ws: open.id }, owner, member.user.email, 'admin');
    expect(invitation).toMatchObject({ kind: 'member', role: 'admin' });
  });

  it('a workspace member invites (member, viewer) while allow_member_invites holds; a viewer 403; no access 404; archived 409', async () => {
    const org = await team([[dave, 'member']]);
    const ws = await workspaceIn(org, PRIVATE);
    await grant(ws.id, member, 'member');
    await grant(ws.id, viewer, 'viewer');

    const byMember = await invite({ ws: ws.id }, member, dave.user.email, 'member');
    expect(byMember.invitation).toMatchObject({ kind: 'member', role: 'member', invited_by: member.user.id });
    const viewerRole = await invite({ ws: ws.id }, member, admin.user.email, 'viewer');
    expect(viewerRole.invitation).toMatchObject({ kind: 'member', role: 'viewer', invited_by: member.user.id });

    let before = await organizationSnapshot(app, org);
    // Not admin, even with allow_member_invites.
    expectFailure(await REST.inviteToWorkspace(member.token, ws.id, { email: owner.user.email, role: 'admin' }), 403, 'FORBIDDEN');
    // A viewer never.
    expectFailure(await REST.inviteToWorkspace(viewer.token, ws.id, { email: owner.user.email, role: 'viewer' }), 403, 'FORBIDDEN');
    // No access to the private workspace (a member of its organization, or an outsider): it does not exist.
    expectFailure(await REST.inviteToWorkspace(dave.token, ws.id, { email: owner.user.email, role: 'viewer' }), 404, 'NOT_FOUND');
    expectFailure(await REST.inviteToWorkspace(carol.token, ws.id, { email: owner.user.email, role: 'viewer' }), 404, 'NOT_FOUND');
    expectFailure(await TRPC.inviteToWorkspace(carol.token, ws.id, { email: owner.user.email, role: 'viewer' }), 404, 'NOT_FOUND');
    expect(await organizationSnapshot(app, org)).toEqual(before);

    // The workspace turns member invites off: its members may no longer invite.
    await putWorkspaceSettings(ws.id, { permissions: { allow_member_invites: false } });
    before = await organizationSnapshot(app, org);
    expectFailure(
      await REST.inviteToWorkspace(member.token, ws.id, { email: owner.user.email, role: 'viewer' }),
      403,
      'FORBIDDEN',
      /allow_member_invites/,
    );
    expect(await organizationSnapshot(app, org)).toEqual(before);
    // Its admins still may.
    await invite({ ws: ws.id }, admin, owner.user.email, 'viewer');

    // An archived workspace takes no invitations (dave, whose invitation is revoked first, could be invited otherwise).
    expectOk(await REST.revoke(member.token, byMember.invitation.id), 204);
    await expectStatus('POST', `/workspaces/${ws.id}/archive`, owner.token, 200);
    before = await organizationSnapshot(app, org);
    for (const face of FACES)
      expectFailure(
        await face.inviteToWorkspace(admin.token, ws.id, { email: dave.user.email, role: 'member' }),
        409,
        'CONFLICT',
        /archived/i,
      );
    expect(await organizationSnapshot(app, org)).toEqual(before);
  });
});

// ---------------------------------------------------------------------------------------------
// 3. Organization invitations: who may send them
// ---------------------------------------------------------------------------------------------

describe('organization invitations', () => {
  it('an admin invites admins and members; an owner is needed to invite an owner', async () => {
    const org = await team();
    const asAdmin = await invite({ org }, admin, ann.user.email, 'admin');
    expect(asAdmin.invitation).toMatchObject({ role: 'admin', kind: 'member', invited_by: admin.user.id });

    const before = await organizationSnapshot(app, org);
    for (const face of FACES)
      expectFailure(await face.inviteToOrganization(admin.token, org, { email: bob.user.email, role: 'owner' }), 403, 'FORBIDDEN');
    expect(await organizationSnapshot(app, org)).toEqual(before);

    const asOwner = await invite({ org }, owner, bob.user.email, 'owner');
    expect(asOwner.invitation).toMatchObject({ role: 'owner', kind: 'member', invited_by: owner.user.id });
    const accepted = await REST.accept(bob.token, { token: asOwner.token });
    expectOk(accepted, 200);
    expect(accepted.body.membership).toEqual({
      organization_id: org,
      workspace_id: null,
      user_id: bob.user.id,
      role: 'owner',
      guest: false,
    });
    expect(await organizationRoleOf(app, org, bob.user.id)).toBe('owner');
  });

  it('a plain member invites members while allow_member_invites is true (the default), never admins; 403 once it is false', async () => {
    const org = await team();
    const byMember = await invite({ org }, member, ann.user.email, 'member');
    expect(byMember.invitation).toMatchObject({ role: 'member', kind: 'member', invited_by: member.user.id });

    let before = await organizationSnapshot(app, org);
    expectFailure(await REST.inviteToOrganization(member.token, org, { email: bob.user.email, role: 'admin' }), 403, 'FORBIDDEN');
    // An outsider cannot see the organization.
    expectFailure(await REST.inviteToOrganization(dave.token, org, { email: bob.user.email, role: 'member' }), 404, 'NOT_FOUND');
    // Roles and emails are validated.
    expectFailure(await REST.inviteToOrganization(admin.token, org, { email: bob.user.email, role: 'viewer' }), 400, 'BAD_REQUEST');
    expectFailure(await REST.inviteToOrganization(admin.token, org, { email: 'not an email', role: 'member' }), 400, 'BAD_REQUEST');
    expectFailure(
      await REST.inviteToOrganization(admin.token, org, { email: bob.user.email, role: 'member', extra: 1 }),
      400,
      'BAD_REQUEST',
    );
    expect(await organizationSnapshot(app, org)).toEqual(before);

    await putOrganizationSettings(org, { permissions: { allow_member_invites: false } });
    before = await organizationSnapshot(app, org);
    for (const face of FACES)
      expectFailure(
        await face.inviteToOrganization(member.token, org, { email: bob.user.email, role: 'member' }),
        403,
        'FORBIDDEN',
        /allow_member_invites/,
      );
    expect(await organizationSnapshot(app, org)).toEqual(before);
    // Admins are not bound by it.
    await invite({ org }, admin, bob.user.email, 'member');
  });

  it('POST /organizations/{org_id}/members is gone: 405', async () => {
    const org = await team();
    const res = await app.request('POST', `/api/v1/organizations/${org}/members`, {
      token: owner.token,
      body: { email: ann.user.email, role: 'member' },
    });
    expectApiError(res, 405, 'METHOD_NOT_SUPPORTED');
    expect(await organizationRoleOf(app, org, ann.user.id)).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// 4. The rules, checked again at acceptance
// ---------------------------------------------------------------------------------------------

describe('checked again at acceptance', () => {
  /** A message about the inviter's right ("invite", "inviter"; "invitation" alone names no rule). */
  const INVITER_RULE = /\binviter?\b/i;

  /** Accept refused with 409 naming the rule: the invitation pending, no membership, no event. */
  async function expectRefused(org: string, invitee: SignedUp, token: string, invitationId: string, rule: RegExp) {
    const before = await organizationSnapshot(app, org);
    expectFailure(await REST.accept(invitee.token, { token }), 409, 'CONFLICT', rule);
    expect(await organizationSnapshot(app, org)).toEqual(before);
    expect((await invitationRow(app, invitationId))!.status).toBe('pending');
  }

  it('a workspace admin inviter demoted to viewer: 409 until they are admin again', async () => {
    const org = await team([[dave, 'member']]);
    const ws = await workspaceIn(org, PRIVATE);
    await grant(ws.id, member, 'admin');
    const { invitation, token } = await invite({ ws: ws.id }, member, dave.user.email, 'admin');
    await setWorkspaceRole(ws.id, member, 'viewer');
    await expectRefused(org, dave, token, invitation.id, INVITER_RULE);
    expect(await workspaceRoleOf(app, ws.id, dave.user.id)).toBeNull();

    await setWorkspaceRole(ws.id, member, 'admin');
    const accepted = await REST.accept(dave.token, { token });
    expectOk(accepted, 200);
    expect(accepted.body.membership).toMatchObject({ workspace_id: ws.id, role: 'admin', guest: false });
    expect(await workspaceRoleOf(app, ws.id, dave.user.id)).toBe('admin');
  });

  it('an organization admin demoted to member: their invitation of an admin is 409 until promoted again', async () => {
    const org = await team();
    const { invitation, token } = await invite({ org }, admin, ann.user.email, 'admin');
    await setOrganizationRole(org, admin, 'member');
    await expectRefused(org, ann, token, invitation.id, INVITER_RULE);
    expect(await organizationRoleOf(app, org, ann.user.id)).toBeNull();

    await setOrganizationRole(org, admin, 'admin');
    const accepted = await TRPC.accept(ann.token, { token });
    expectOk(accepted, 200);
    expect(await organizationRoleOf(app, org, ann.user.id)).toBe('admin');
  });

  it('a member inviter after allow_member_invites turned off: 409 until it is on again', async () => {
    const org = await team();
    const { invitation, token } = await invite({ org }, member, bob.user.email, 'member');
    await putOrganizationSettings(org, { permissions: { allow_member_invites: false } });
    await expectRefused(org, bob, token, invitation.id, /allow_member_invites/);
    await putOrganizationSettings(org, { permissions: { allow_member_invites: null } });
    expectOk(await REST.accept(bob.token, { token }), 200);
    expect(await organizationRoleOf(app, org, bob.user.id)).toBe('member');
  });

  it('allow_guests turned off on the workspace: 409 until it is on again', async () => {
    const org = await team();
    const ws = await workspaceIn(org, GUESTS);
    const { invitation, token } = await invite({ ws: ws.id }, owner, carol.user.email, 'viewer');
    await putWorkspaceSettings(ws.id, { permissions: { allow_guests: false } });
    await expectRefused(org, carol, token, invitation.id, /allow_guests/);
    expect(await workspaceRoleOf(app, ws.id, carol.user.id)).toBeNull();

    await putWorkspaceSettings(ws.id, { permissions: { allow_guests: true } });
    const accepted = await REST.accept(carol.token, { token });
    expectOk(accepted, 200);
    expect(accepted.body.membership).toMatchObject({ role: 'viewer', guest: true });
    expect(await workspaceRoleOf(app, ws.id, carol.user.id)).toBe('viewer');
  });

  it("allow_guests turned off by the organization's lock over the workspace's override: 409 until the lock goes", async () => {
    const org = await team();
    const ws = await workspaceIn(org, GUESTS);
    const { invitation, token } = await invite({ ws: ws.id }, owner, carol.user.email, 'member');
    await putOrganizationSettings(org, { permissions: { allow_guests: false }, locks: ['permissions.allow_guests'] });
    await expectRefused(org, carol, token, invitation.id, /allow_guests/);

    await putOrganizationSettings(org, { locks: null });
    const accepted = await REST.accept(carol.token, { token });
    expectOk(accepted, 200);
    expect(accepted.body.membership).toMatchObject({ workspace_id: ws.id, role: 'member', guest: true });
    expect(await workspaceRoleOf(app, ws.id, carol.user.id)).toBe('member');
  });

  it('the workspace archived: 409 until it is restored', async () => {
    const org = await team([[dave, 'member']]);
    const ws = await workspaceIn(org);
    const { invitation, token } = await invite({ ws: ws.id }, admin, dave.user.email, 'viewer');
    await expectStatus('POST', `/workspaces/${ws.id}/archive`, owner.token, 200);
    await expectRefused(org, dave, token, invitation.id, /archived/i);

    await expectStatus('POST', `/workspaces/${ws.id}/restore`, owner.token, 200);
    expectOk(await REST.accept(dave.token, { token }), 200);
    expect(await workspaceRoleOf(app, ws.id, dave.user.id)).toBe('viewer');
  });

  it('the workspace deleted: its invitations go with it, the token is unknown (404)', async () => {
    const org = await team([[dave, 'member']]);
    const ws = await workspaceIn(org);
    const { invitation, token } = await invite({ ws: ws.id }, admin, dave.user.email, 'member');
    await expectStatus('DELETE', `/workspaces/${ws.id}`, owner.token, 204);
    expect(await invitationRow(app, invitation.id)).toBeNull();
    expectNotFoundToken(await REST.accept(dave.token, { token }));
    expectFailure(await REST.preview({ token }), 404, 'NOT_FOUND');
    expectFailure(await REST.get(admin.token, invitation.id), 404, 'NOT_FOUND');
  });

  it('the inviter removed from the organization: their pending invitations revoked (by the remover), accepting is 404', async () => {
    const org = await team();
    const ws = await workspaceIn(org, GUESTS);
    const kept = await invite({ org }, admin, ann.user.email, 'member');
    expectOk(await REST.accept(ann.token, { token: kept.token }), 200);
    const toOrganization = await invite({ org }, admin, bob.user.email, 'member');
    const toWorkspace = await invite({ ws: ws.id }, admin, carol.user.email, 'viewer');

    await expectStatus('DELETE', `/organizations/${org}/members/${admin.user.id}`, owner.token, 204);

    expect((await invitationRow(app, kept.invitation.id))!.status).toBe('accepted');
    for (const [made, wsId] of [
      [toOrganization, null],
      [toWorkspace, ws.id],
    ] as const) {
      expect(await invitationRow(app, made.invitation.id)).toEqual({
        ...made.invitation,
        status: 'revoked',
        token_hash: sha256Hex(made.token),
      });
      expect((await eventsOf(app, org, made.invitation.id)).map((e) => [e.action, e.actor_id, e.workspace_id, e.changes])).toEqual([
        ['invitation.created', admin.user.id, wsId, expect.anything()],
        ['invitation.revoked', owner.user.id, wsId, statusChange('revoked')],
      ]);
    }
    expect((await eventsOf(app, org, kept.invitation.id)).map((e) => e.action)).toEqual(['invitation.created', 'invitation.accepted']);

    expectNotFoundToken(await REST.accept(bob.token, { token: toOrganization.token }));
    expectNotFoundToken(await REST.accept(carol.token, { token: toWorkspace.token }));
    expect(await organizationRoleOf(app, org, bob.user.id)).toBeNull();
    expect(await workspaceRoleOf(app, ws.id, carol.user.id)).toBeNull();
    // The removed account can no longer invite there.
    expectFailure(await REST.inviteToOrganization(admin.token, org, { email: dave.user.email, role: 'member' }), 404, 'NOT_FOUND');
  });

  it('the organization deleted: its invitations go with it, the token is unknown (404)', async () => {
    const org = await createOrganizationFor(app, owner.token);
    const { invitation, token } = await invite({ org }, owner, ann.user.email, 'member');
    await expectStatus('DELETE', `/organizations/${org}`, owner.token, 204);
    expect(await invitationRow(app, invitation.id)).toBeNull();
    expectNotFoundToken(await REST.accept(ann.token, { token }));
    expectFailure(await REST.preview({ token }), 404, 'NOT_FOUND');
  });

  it("leaving the organization, or deleting one's account, revokes one's pending invitations too; invited_by is null once the account is gone", async () => {
    const [eve] = await signupMany(app, ['Eve']);
    const org = await team([[eve, 'admin']]);
    const kept = await invite({ org }, eve, ann.user.email, 'member');
    expectOk(await REST.accept(ann.token, { token: kept.token }), 200);
    const byEve = await invite({ org }, eve, bob.user.email, 'member');
    const byMember = await invite({ org }, member, carol.user.email, 'member');

    // The member leaves: their invitation is revoked, by them.
    await expectStatus('DELETE', `/organizations/${org}/members/${member.user.id}`, member.token, 204);
    expect(await invitationRow(app, byMember.invitation.id)).toMatchObject({ status: 'revoked', invited_by: member.user.id });
    expect((await eventsOf(app, org, byMember.invitation.id)).at(-1)).toMatchObject({
      action: 'invitation.revoked',
      actor_id: member.user.id,
      changes: statusChange('revoked'),
    });
    expectNotFoundToken(await REST.accept(carol.token, { token: byMember.token }));

    // Eve deletes her account: her pending invitation is revoked (by her), and no invitation names her any more.
    await expectStatus('DELETE', '/auth/me', eve.token, 204);
    expect(await invitationRow(app, byEve.invitation.id)).toMatchObject({ status: 'revoked', invited_by: null });
    expect(await invitationRow(app, kept.invitation.id)).toMatchObject({
      status: 'accepted',
      invited_by: null,
      accepted_user_id: ann.user.id,
    });
    expect((await eventsOf(app, org, byEve.invitation.id)).at(-1)).toMatchObject({
      action: 'invitation.revoked',
      actor_id: eve.user.id,
      changes: statusChange('revoked'),
    });
    expectNotFoundToken(await REST.accept(bob.token, { token: byEve.token }));
    const got = await REST.get(owner.token, kept.invitation.id);
    expectOk(got, 200);
    expect(got.body).toMatchObject({ invited_by: null, status: 'accepted' });
    expect(await organizationRoleOf(app, org, bob.user.id)).toBeNull();
    expect(await organizationRoleOf(app, org, carol.user.id)).toBeNull();
  });

  it('guest or member is decided at acceptance: one who joined the organization since joins as a member, one who left it as a guest', async () => {
    const org = await team([[dave, 'member']]);
    const open = await workspaceIn(org, GUESTS);
    const closed = await workspaceIn(org);

    // Bob is invited to the open workspace as a guest, then joins the organization.
    const asGuest = await invite({ ws: open.id }, owner, bob.user.email, 'member');
    expect(asGuest.invitation.kind).toBe('guest');
    const joined = await invite({ org }, owner, bob.user.email, 'member');
    expectOk(await REST.accept(bob.token, { token: joined.token }), 200);
    const accepted = await REST.accept(bob.token, { token: asGuest.token });
    expectOk(accepted, 200);
    expect(accepted.body.membership).toEqual({
      organization_id: org,
      workspace_id: open.id,
      user_id: bob.user.id,
      role: 'member',
      guest: false,
    });

    // Dave, a member, is invited to a workspace without guests, then leaves the organization: a guest now, refused.
    const asMember = await invite({ ws: closed.id }, owner, dave.user.email, 'viewer');
    expect(asMember.invitation.kind).toBe('member');
    await expectStatus('DELETE', `/organizations/${org}/members/${dave.user.id}`, dave.token, 204);
    await expectRefused(org, dave, asMember.token, asMember.invitation.id, /allow_guests/);
    expect(await workspaceRoleOf(app, closed.id, dave.user.id)).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// 5. The email match
// ---------------------------------------------------------------------------------------------

describe('the email match', () => {
  it("another account's accept or decline is 403 and changes nothing; the invitee can still accept", async () => {
    const org = await team();
    const { invitation, token } = await invite({ org }, admin, ann.user.email, 'member');
    const before = await organizationSnapshot(app, org);
    for (const face of FACES) {
      expectFailure(await face.accept(bob.token, { token }), 403, 'FORBIDDEN', OTHER_EMAIL_MESSAGE);
      expectFailure(await face.decline(bob.token, { token }), 403, 'FORBIDDEN', OTHER_EMAIL_MESSAGE);
    }
    expect(await organizationSnapshot(app, org)).toEqual(before);
    expect(await organizationRoleOf(app, org, bob.user.id)).toBeNull();
    expect((await invitationRow(app, invitation.id))!.status).toBe('pending');
    expectOk(await REST.accept(ann.token, { token }), 200);
    expect(await organizationRoleOf(app, org, ann.user.id)).toBe('member');
    expect(await organizationRoleOf(app, org, bob.user.id)).toBeNull();
  });

  it('matches case-insensitively; the email is stored as given, trimmed', async () => {
    const org = await team();
    const [local, domain] = ann.user.email.split('@') as [string, string];
    const shouted = `${local[0]!.toUpperCase()}${local.slice(1)}@${domain[0]!.toUpperCase()}${domain.slice(1).toUpperCase()}`;
    expect(shouted).not.toBe(ann.user.email);
    const { invitation, token } = await invite({ org }, admin, `  ${shouted} `, 'member');
    expect(invitation.email).toBe(shouted);
    expect((await invitationRow(app, invitation.id))!.email).toBe(shouted);
    const accepted = await REST.accept(ann.token, { token });
    expectOk(accepted, 200);
    expect(accepted.body.membership.user_id).toBe(ann.user.id);
    expect(await organizationRoleOf(app, org, ann.user.id)).toBe('member');
  });
});

// ---------------------------------------------------------------------------------------------
// 6. Limits
// ---------------------------------------------------------------------------------------------

/** The main app's database served with other limits and a clock of its own (the in-memory budgets are its own too). */
async function withLimits(overrides: Partial<Config>, ownClock: () => Date): Promise<TestApp> {
  return serveApp({ ...app.config, ...overrides }, app.database, async () => {}, pino({ level: 'silent' }), ownClock);
}

describe('limits', () => {
  it('one pending invitation per target and email (case-insensitive): 409 naming it; another target, or after a revoke, is fine', async () => {
    const org = await team();
    const ws = await workspaceIn(org, GUESTS);
    const first = await invite({ org }, admin, ann.user.email, 'member');
    const before = await organizationSnapshot(app, org);
    for (const face of FACES)
      expectFailure(
        await face.inviteToOrganization(owner.token, org, { email: ann.user.email.toUpperCase(), role: 'admin' }),
        409,
        'CONFLICT',
        pendingMessage(first.invitation.id),
      );
    expect(await organizationSnapshot(app, org)).toEqual(before);

    // Another target in the same organization is another invitation.
    const toWorkspace = await invite({ ws: ws.id }, admin, ann.user.email, 'viewer');
    expect(toWorkspace.invitation.kind).toBe('guest');
    expectFailure(
      await REST.inviteToWorkspace(owner.token, ws.id, { email: ann.user.email, role: 'member' }),
      409,
      'CONFLICT',
      pendingMessage(toWorkspace.invitation.id),
    );

    expectOk(await REST.revoke(admin.token, first.invitation.id), 204);
    tick();
    const again = await invite({ org }, admin, ann.user.email, 'member');
    expect(again.invitation.id).not.toBe(first.invitation.id);
    expect(
      (await invitationRows(app, org))
        .filter((r) => r.workspace_id === null && r.email.toLowerCase() === ann.user.email)
        .map((r) => [r.id, r.status]),
    ).toEqual([
      [first.invitation.id, 'revoked'],
      [again.invitation.id, 'pending'],
    ]);
  });

  it('an expired invitation blocks no new one; resending it then would make two pending (409); revoking it works', async () => {
    const org = await team();
    const old = await invite({ org }, admin, ann.user.email, 'member');
    tick(TTL_MS + 60_000);
    const fresh = await invite({ org }, admin, ann.user.email, 'admin');
    const before = await organizationSnapshot(app, org);
    expectFailure(await REST.resend(admin.token, old.invitation.id), 409, 'CONFLICT');
    expect(await organizationSnapshot(app, org)).toEqual(before);
    expect((await invitationRow(app, old.invitation.id))!.token_hash).toBe(sha256Hex(old.token));
    expectOk(await REST.revoke(admin.token, old.invitation.id), 204);
    expect((await invitationRow(app, old.invitation.id))!.status).toBe('revoked');
    const accepted = await REST.accept(ann.token, { token: fresh.token });
    expectOk(accepted, 200);
    expect(accepted.body.membership.role).toBe('admin');
  });

  it('an accepter who is already a member: 409, the invitation stays pending', async () => {
    const org = await team();
    const ws = await workspaceIn(org, PRIVATE);
    // A workspace invitation, then a direct membership before it is accepted.
    const toWorkspace = await invite({ ws: ws.id }, admin, member.user.email, 'admin');
    await grant(ws.id, member, 'viewer');
    let before = await organizationSnapshot(app, org);
    expectFailure(await REST.accept(member.token, { token: toWorkspace.token }), 409, 'CONFLICT');
    expect(await organizationSnapshot(app, org)).toEqual(before);
    expect(await workspaceRoleOf(app, ws.id, member.user.id)).toBe('viewer');

    // An organization invitation that expired, a second one accepted, then the first resent.
    const first = await invite({ org }, admin, ann.user.email, 'admin');
    tick(TTL_MS + 60_000);
    const second = await invite({ org }, admin, ann.user.email, 'member');
    expectOk(await REST.accept(ann.token, { token: second.token }), 200);
    const resent = await REST.resend(admin.token, first.invitation.id);
    expectOk(resent, 200);
    before = await organizationSnapshot(app, org);
    expectFailure(await TRPC.accept(ann.token, { token: resent.body.token }), 409, 'CONFLICT');
    expect(await organizationSnapshot(app, org)).toEqual(before);
    expect((await invitationRow(app, first.invitation.id))!.status).toBe('pending');
    expect(await organizationRoleOf(app, org, ann.user.id)).toBe('member');
  });

  it('an existing member: 409 for the organization, and for a workspace where they are an explicit member', async () => {
    const org = await team();
    const ws = await workspaceIn(org);
    await grant(ws.id, viewer, 'viewer');
    const before = await organizationSnapshot(app, org);
    expectFailure(await REST.inviteToOrganization(owner.token, org, { email: member.user.email, role: 'admin' }), 409, 'CONFLICT');
    expectFailure(
      await TRPC.inviteToOrganization(owner.token, org, { email: admin.user.email.toUpperCase(), role: 'member' }),
      409,
      'CONFLICT',
    );
    expectFailure(await REST.inviteToWorkspace(owner.token, ws.id, { email: viewer.user.email, role: 'member' }), 409, 'CONFLICT');
    expect(await organizationSnapshot(app, org)).toEqual(before);
    // A member of the organization who is not an explicit member of the workspace can be invited to it.
    await invite({ ws: ws.id }, owner, member.user.email, 'admin');
  });

  it('INVITATIONS_PENDING_MAX: past it the create is 409 QUOTA_EXCEEDED, nothing written; revoked and expired ones do not count', async () => {
    let limitClock = clock;
    const limited = await withLimits({ INVITATIONS_PENDING_MAX: 2, INVITATIONS_PER_DAY: 0 }, () => new Date(limitClock));
    try {
      const face = restFace(() => limited);
      // An organization of its own, with no invitation yet (a team's members joined by invitation).
      const org = await createOrganizationFor(app, owner.token);
      const ws = await workspaceIn(org, GUESTS);
      const first = await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('p1'), role: 'member' });
      expectOk(first, 201);
      // The organization's workspaces count too.
      expectOk(await face.inviteToWorkspace(owner.token, ws.id, { email: uniqueEmail('p2'), role: 'viewer' }), 201);
      const before = await organizationSnapshot(app, org);
      const refused = await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('p3'), role: 'member' });
      expectFailure(refused, 409, 'QUOTA_EXCEEDED', /INVITATIONS_PENDING_MAX/);
      const overTrpc = await trpcFace(() => limited).inviteToOrganization(owner.token, org, { email: uniqueEmail('p3'), role: 'member' });
      expectFailure(overTrpc, 409, 'QUOTA_EXCEEDED');
      expect(await organizationSnapshot(app, org)).toEqual(before);

      // A revoked one frees its place.
      expectOk(await face.revoke(owner.token, first.body.invitation.id), 204);
      expectOk(await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('p4'), role: 'member' }), 201);
      expectFailure(await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('p5'), role: 'member' }), 409, 'QUOTA_EXCEEDED');
      // Expired ones are not pending.
      limitClock += TTL_MS + 60_000;
      expectOk(await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('p6'), role: 'member' }), 201);
      expectOk(await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('p7'), role: 'member' }), 201);
      expect(await invitationCount(app, org)).toBe(5);
    } finally {
      await limited.close();
    }
  });

  it('INVITATIONS_PER_DAY counts creates and resends: past it 429 with Retry-After, nothing written; the next window allows again', async () => {
    let limitClock = clock;
    const limited = await withLimits({ INVITATIONS_PENDING_MAX: 0, INVITATIONS_PER_DAY: 3 }, () => new Date(limitClock));
    try {
      const face = restFace(() => limited);
      // An organization of its own, with no invitation yet (a team's members joined by invitation).
      const org = await createOrganizationFor(app, owner.token);
      const a = await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('d1'), role: 'member' });
      expectOk(a, 201);
      const b = await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('d2'), role: 'member' });
      expectOk(b, 201);
      limitClock += HOUR;
      expectOk(await face.resend(owner.token, a.body.invitation.id), 200);

      const before = await organizationSnapshot(app, org);
      const refused = await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('d3'), role: 'member' });
      expectFailure(refused, 429, 'TOO_MANY_REQUESTS');
      const retryAfter = Number(refused.headers!.get('retry-after'));
      expect(Number.isInteger(retryAfter), String(refused.headers!.get('retry-after'))).toBe(true);
      expect(retryAfter).toBeGreaterThan(0);
      // The window opened with the first create, an hour ago by this clock.
      expect(retryAfter).toBeLessThanOrEqual(23 * 3600);
      expect(retryAfter).toBeGreaterThan(23 * 3600 - 60);
      const resendRefused = await face.resend(owner.token, b.body.invitation.id);
      expectFailure(resendRefused, 429, 'TOO_MANY_REQUESTS');
      expect(Number(resendRefused.headers!.get('retry-after'))).toBeGreaterThan(0);
      expectFailure(
        await trpcFace(() => limited).inviteToOrganization(owner.token, org, { email: uniqueEmail('d3'), role: 'member' }),
        429,
        'TOO_MANY_REQUESTS',
      );
      expect(await organizationSnapshot(app, org)).toEqual(before);

      // Another organization has its own budget.
      const other = await createOrganizationFor(app, owner.token);
      expectOk(await face.inviteToOrganization(owner.token, other, { email: uniqueEmail('d4'), role: 'member' }), 201);

      limitClock += 23 * HOUR + 1000;
      expectOk(await face.inviteToOrganization(owner.token, org, { email: uniqueEmail('d5'), role: 'member' }), 201);
      expectOk(await face.resend(owner.token, b.body.invitation.id), 200);
      expect(await invitationCount(app, org)).toBe(3);
    } finally {
      await limited.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// 7. No enumeration
// ---------------------------------------------------------------------------------------------

describe('no enumeration', () => {
  it('the create answers alike whether an account has the email or not: status, shape and time', async () => {
    const org = await team();
    const tries = 30;
    // Accounts for half of the emails, written directly (30 signups would hash 30 passwords).
    const existing = Array.from({ length: tries + 2 }, () => uniqueEmail('has-account'));
    const absent = Array.from({ length: tries + 2 }, () => uniqueEmail('no-account'));
    for (const email of existing) await app.query(`insert into users (email, name, password_hash) values ($1, 'Existing', null)`, [email]);

    const timed = async (email: string) => {
      const started = performance.now();
      const res = await app.request('POST', `/api/v1/organizations/${org}/invitations`, {
        token: owner.token,
        body: { email, role: 'member' },
      });
      return { ms: performance.now() - started, res };
    };
    // Warm both paths up.
    for (let i = 0; i < 2; i++) {
      await timed(existing.pop()!);
      await timed(absent.pop()!);
    }
    const times = { existing: [] as number[], absent: [] as number[] };
    const shapes = new Set<string>();
    for (let i = 0; i < tries; i++) {
      const order = i % 2 ? (['existing', 'absent'] as const) : (['absent', 'existing'] as const);
      for (const which of order) {
        const email = (which === 'existing' ? existing : absent)[i]!;
        const { ms, res } = await timed(email);
        expect(res.status, res.text).toBe(201);
        times[which].push(ms);
        const { invitation } = res.body as { invitation: Record<string, unknown> };
        expectInvitationShape(invitation);
        expect(invitation).toMatchObject({ email, kind: 'member', status: 'pending', accepted_user_id: null, accepted_at: null });
        shapes.add(JSON.stringify([Object.keys(res.body).sort(), Object.keys(invitation).sort(), [...res.headers.keys()].sort()]));
      }
    }
    // One shape for both.
    expect(shapes.size, [...shapes].join('\n')).toBe(1);
    const [fast, slow] = [median(times.existing), median(times.absent)].sort((a, b) => a - b) as [number, number];
    expect(
      slow,
      `medians: with an account ${median(times.existing).toFixed(2)} ms, without ${median(times.absent).toFixed(2)} ms`,
    ).toBeLessThanOrEqual(fast * 1.5);
    // Nothing stored names the account either.
    const rows = (await invitationRows(app, org)).filter((row) => row.status === 'pending');
    expect(rows).toHaveLength(2 * tries + 4);
    for (const row of rows) expect(row).toMatchObject({ accepted_user_id: null, accepted_at: null, kind: 'member' });
  });
});

// ---------------------------------------------------------------------------------------------
// 8. The token never appears
// ---------------------------------------------------------------------------------------------

describe('the token', () => {
  it('appears in no log line, event, list or GET answer; the table holds only its SHA-256', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'trace' }, { write: (line: string) => void lines.push(line) });
    const logged = await serveApp({ ...app.config, LOG_LEVEL: 'trace' }, app.database, async () => {}, logger, now);
    const tokens: string[] = [];
    const answers: string[] = [];
    try {
      const rest = restFace(() => logged);
      const trpc = trpcFace(() => logged);
      const org = await team();
      const ws = await workspaceIn(org, GUESTS);
      const record = (outcome: Outcome) => {
        answers.push(JSON.stringify(outcome.body));
        return outcome;
      };

      const one = record(await rest.inviteToOrganization(admin.token, org, { email: ann.user.email, role: 'member' }));
      expectOk(one, 201);
      const two = record(await trpc.inviteToWorkspace(owner.token, ws.id, { email: carol.user.email, role: 'viewer' }));
      expectOk(two, 201);
      const three = record(await rest.inviteToOrganization(admin.token, org, { email: bob.user.email, role: 'member' }));
      expectOk(three, 201);
      const resent = record(await rest.resend(admin.token, three.body.invitation.id));
      expectOk(resent, 200);
      tokens.push(one.body.token, two.body.token, three.body.token, resent.body.token);

      expectOk(record(await rest.preview({ token: one.body.token })), 200);
      expectOk(record(await trpc.preview({ token: two.body.token })), 200);
      expectFailure(record(await rest.accept(bob.token, { token: one.body.token })), 403, 'FORBIDDEN');
      expectFailure(record(await trpc.accept(bob.token, { token: two.body.token })), 403, 'FORBIDDEN');
      expectNotFoundToken(record(await rest.accept(bob.token, { token: three.body.token })));
      expectOk(record(await rest.accept(ann.token, { token: one.body.token })), 200);
      expectOk(record(await trpc.accept(carol.token, { token: two.body.token })), 200);
      expectOk(record(await trpc.decline(bob.token, { token: resent.body.token })), 200);

      // What reads answer, on both faces.
      const reads = [
        await rest.get(admin.token, one.body.invitation.id),
        await trpc.get(owner.token, two.body.invitation.id),
        await rest.listOfOrganization(owner.token, org, { limit: 100 }),
        await trpc.listOfOrganization(owner.token, org, { limit: 100 }),
        await rest.listOfWorkspace(owner.token, ws.id),
        await trpc.listOfWorkspace(owner.token, ws.id),
        await restCall('GET', `/organizations/${org}/events?limit=100`, owner.token, undefined, logged),
      ];
      for (const read of reads) {
        expectOk(read, 200);
        for (const token of tokens) expect(JSON.stringify(read.body)).not.toContain(token);
      }
      // The creates and the resend answered their tokens, once each; nothing else did.
      const answered = answers.filter((text) => tokens.some((token) => text.includes(token)));
      expect(answered).toHaveLength(4);

      // The table holds the hash of the current token, no column holds a token.
      for (const [id, token] of [
        [one.body.invitation.id, one.body.token],
        [two.body.invitation.id, two.body.token],
        [three.body.invitation.id, resent.body.token],
      ] as const) {
        const [row] = await app.query<{ token_hash: string }>('select token_hash from invitations where id = $1', [id]);
        expect(row!.token_hash).toBe(sha256Hex(token));
        expect(row!.token_hash).toMatch(/^[0-9a-f]{64}$/);
      }
      const events = await app.query<{ t: string }>('select row_to_json(e)::text as t from audit_events e where organization_id = $1', [
        org,
      ]);
      expect(events.length).toBeGreaterThan(0);
      for (const token of tokens) for (const event of events) expect(event.t).not.toContain(token);
      const everything = await wholeDatabaseText(app);
      expect(everything.filter((text) => text.startsWith('invitations: ')).length).toBeGreaterThanOrEqual(3);
      for (const token of tokens) expect(everything.filter((text) => text.includes(token))).toEqual([]);
    } finally {
      await logged.close();
    }
    // Every log line of that run, at trace level.
    expect(lines.length).toBeGreaterThan(10);
    for (const token of tokens) expect(lines.filter((line) => line.includes(token))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// 9. Preview: unauthenticated, its own per-address rate limit
// ---------------------------------------------------------------------------------------------

describe('preview', () => {
  it('needs no token, answers only its five fields, and is limited per address on a budget of its own (login still passes)', async () => {
    const org = await team();
    const { token, invitation } = await invite({ org }, admin, dave.user.email, 'admin');
    const limited = await withLimits({ AUTH_RATE_LIMIT_PER_MINUTE: 3 }, now);
    try {
      const face = restFace(() => limited);
      for (let i = 0; i < 3; i++) {
        const res = await face.preview({ token });
        expectOk(res, 200);
        expect(Object.keys(res.body).sort()).toEqual([...PREVIEW_KEYS]);
        expect(res.body).toEqual({
          organization_name: await organizationName(org),
          workspace_name: null,
          role: 'admin',
          expires_at: invitation.expires_at,
          status: 'pending',
        });
      }
      const refused = await face.preview({ token });
      expectFailure(refused, 429, 'TOO_MANY_REQUESTS');
      // Unknown tokens are limited alike (no probing past it).
      expectFailure(await face.preview({ token: randomBytes(32).toString('base64url') }), 429, 'TOO_MANY_REQUESTS');
      // Both faces share the address's budget.
      expectFailure(await trpcFace(() => limited).preview({ token }), 429, 'TOO_MANY_REQUESTS');
      // Login is a budget of its own.
      const login = await limited.request('POST', '/api/v1/auth/login', { body: { email: dave.user.email, password: dave.password } });
      expect(login.status, login.text).toBe(200);
    } finally {
      await limited.close();
    }
    expect((await invitationRow(app, invitation.id))!.status).toBe('pending');
    expect(await organizationRoleOf(app, org, dave.user.id)).toBeNull();
  });
});

// ---------------------------------------------------------------------------------------------
// 10. Lists and reads by id
// ---------------------------------------------------------------------------------------------

describe('lists', () => {
  it("the organization's list (admin): its invitations and its workspaces', newest first, keyset pages, status filter", async () => {
    const org = await team();
    const ws = await workspaceIn(org, GUESTS);
    const otherOrg = await team();
    await invite({ org: otherOrg }, owner, ann.user.email, 'member');
    const made: any[] = [];
    for (const [target, email] of [
      [{ org }, ann.user.email],
      [{ ws: ws.id }, carol.user.email],
      [{ org }, bob.user.email],
      [{ ws: ws.id }, dave.user.email],
      [{ org }, uniqueEmail('nobody')],
    ] as const) {
      tick();
      made.push((await invite(target, admin, email, 'member')).invitation);
    }
    expectOk(await REST.revoke(owner.token, made[2].id), 204);
    const newestFirst = [...made].reverse().map((i) => (i.id === made[2].id ? { ...i, status: 'revoked' } : i));

    for (const face of FACES) {
      const pages: any[][] = [];
      let cursor: string | undefined;
      for (let i = 0; i < 10; i++) {
        const page = await face.listOfOrganization(admin.token, org, { limit: 2, cursor });
        expectOk(page, 200);
        expect(Object.keys(page.body).sort()).toEqual(['items', 'next_cursor']);
        pages.push(page.body.items);
        if (page.body.next_cursor === null) break;
        cursor = page.body.next_cursor;
      }
      // The five above, then the three the team's members joined by (older, accepted).
      expect(pages.map((p) => p.length)).toEqual([2, 2, 2, 2]);
      const items = pages.flat();
      expect(items.slice(0, 5)).toEqual(newestFirst);
      expect(
        items
          .slice(5)
          .map((i) => [i.email, i.status])
          .sort(),
      ).toEqual([admin, member, viewer].map((a) => [a.user.email, 'accepted']).sort());
      for (const item of items) {
        expectInvitationShape(item);
        expect(item.organization_id).toBe(org);
      }

      const pending = await face.listOfOrganization(owner.token, org, { status: 'pending' });
      expectOk(pending, 200);
      expect(pending.body).toEqual({ items: newestFirst.filter((i) => i.status === 'pending'), next_cursor: null });
      const revoked = await face.listOfOrganization(owner.token, org, { status: 'revoked' });
      expect(revoked.body).toEqual({ items: [newestFirst.find((i) => i.status === 'revoked')], next_cursor: null });
      expectFailure(await face.listOfOrganization(owner.token, org, { status: 'gone' }), 400, 'BAD_REQUEST');

      // Admins only: a member 403, an outsider 404.
      expectFailure(await face.listOfOrganization(member.token, org), 403, 'FORBIDDEN');
      expectFailure(await face.listOfOrganization(dave.token, org), 404, 'NOT_FOUND');
    }
  });

  it("a workspace's list (workspace admin): only its invitations, newest first; a workspace member 403, no access 404", async () => {
    const org = await team();
    const ws = await workspaceIn(org, GUESTS);
    const other = await workspaceIn(org, GUESTS);
    await grant(ws.id, viewer, 'admin');
    const made: any[] = [];
    for (const email of [carol.user.email, dave.user.email, member.user.email]) {
      tick();
      made.push((await invite({ ws: ws.id }, owner, email, 'viewer')).invitation);
    }
    tick();
    await invite({ ws: other.id }, owner, carol.user.email, 'viewer');
    await invite({ org }, owner, ann.user.email, 'member');

    for (const face of FACES) {
      const listed = await face.listOfWorkspace(viewer.token, ws.id);
      expectOk(listed, 200);
      expect(listed.body).toEqual({ items: [...made].reverse(), next_cursor: null });
      const first = await face.listOfWorkspace(owner.token, ws.id, { limit: 2 });
      expect(first.body.items).toEqual([made[2], made[1]]);
      const second = await face.listOfWorkspace(owner.token, ws.id, { limit: 2, cursor: first.body.next_cursor });
      expect(second.body).toEqual({ items: [made[0]], next_cursor: null });
      // member: a member of the workspace by its visibility (default role member), not its admin.
      expectFailure(await face.listOfWorkspace(member.token, ws.id), 403, 'FORBIDDEN');
      expectFailure(await face.listOfWorkspace(ann.token, ws.id), 404, 'NOT_FOUND');
    }
  });

  it('by id (get, resend, revoke): the inviter or an admin of the target; 403 for others who see it, 404 for the rest', async () => {
    const org = await team();
    const ws = await workspaceIn(org, GUESTS);
    await grant(ws.id, viewer, 'admin');
    const byMember = await invite({ org }, member, ann.user.email, 'member');
    const toWorkspace = await invite({ ws: ws.id }, owner, carol.user.email, 'member');

    expectOk(await REST.get(member.token, byMember.invitation.id), 200);
    expectOk(await REST.get(admin.token, byMember.invitation.id), 200);
    // viewer: a member of the organization, neither the inviter nor an admin of it.
    expectFailure(await REST.get(viewer.token, byMember.invitation.id), 403, 'FORBIDDEN');
    expectFailure(await REST.get(dave.token, byMember.invitation.id), 404, 'NOT_FOUND');
    // The workspace's admin (explicit) reads its invitation; a member of the workspace by visibility 403.
    expectOk(await REST.get(viewer.token, toWorkspace.invitation.id), 200);
    expectFailure(await REST.get(member.token, toWorkspace.invitation.id), 403, 'FORBIDDEN');
    expectFailure(await REST.get(ann.token, toWorkspace.invitation.id), 404, 'NOT_FOUND');
    expectFailure(await REST.get(owner.token, UNKNOWN_UUID), 404, 'NOT_FOUND');

    const before = await organizationSnapshot(app, org);
    expectFailure(await REST.resend(viewer.token, byMember.invitation.id), 403, 'FORBIDDEN');
    expectFailure(await REST.revoke(viewer.token, byMember.invitation.id), 403, 'FORBIDDEN');
    expectFailure(await REST.resend(dave.token, byMember.invitation.id), 404, 'NOT_FOUND');
    expectFailure(await REST.revoke(dave.token, byMember.invitation.id), 404, 'NOT_FOUND');
    expectFailure(await REST.revoke(member.token, toWorkspace.invitation.id), 403, 'FORBIDDEN');
    expect(await organizationSnapshot(app, org)).toEqual(before);
    expect(await eventCount(app, org)).toBe(before.events);

    // The inviter resends; the workspace's admin revokes.
    expectOk(await REST.resend(member.token, byMember.invitation.id), 200);
    expectOk(await REST.revoke(viewer.token, toWorkspace.invitation.id), 204);
    expect((await invitationRow(app, toWorkspace.invitation.id))!.status).toBe('revoked');
    expect((await eventsOf(app, org, toWorkspace.invitation.id)).at(-1)).toMatchObject({
      action: 'invitation.revoked',
      actor_id: viewer.user.id,
      workspace_id: ws.id,
    });
  });
});
