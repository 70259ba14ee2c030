/**
 * A REST caller written the way a TypeScript team would write one: openapi-fetch over the
 * types openapi-typescript generates from the service's /openapi.json.
 *
 * `workspaces-rest-api` is the generated `.d.ts`. test/typed-rest-client.test.ts generates it
 * from the served document, points the module name at it, type-checks this file with
 * `--strict` (a renamed field, path, parameter or status breaks the check), then imports and
 * runs `runRestSession` against the service. Under `npm run typecheck` the module name
 * resolves to the loose stand-in in ./workspaces-rest-api.d.ts, which only keeps the repository's own check
 * (and ESLint) going.
 */
import createClient from 'openapi-fetch';
import type { components, paths } from 'workspaces-rest-api';

type Workspace = components['schemas']['Workspace'];
type ApiError = components['schemas']['Error'];
type AuditEvent = components['schemas']['AuditEvent'];
type WorkspaceMember = components['schemas']['WorkspaceMember'];
type WorkspaceAccess = components['schemas']['WorkspaceAccess'];
type Invitation = components['schemas']['Invitation'];
type InvitationMembership = components['schemas']['InvitationMembership'];

/** What the session saw, for the test to assert. */
export interface RestSession {
  token: string;
  organizationId: string;
  signupStatus: number;
  created: { status: number; location: string | null; workspace: Workspace; replayedStatus: number; replayedId: string };
  provisioned: { status: number; slugs: string[] };
  /** Every workspace the cursor walk returned, in order, and how many pages it took. */
  walk: { slugs: string[]; pages: number };
  clone: { status: number; workspace: Workspace };
  settingsUpdate: { status: number; etagBefore: string; etagAfter: string | null; version: number; slackEnabled: boolean };
  stale: { status: number; code: ApiError['code']; message: string };
  /** The settings as a GET shows them after the refused write. */
  afterStale: { version: number; etag: string | null; slackChannel: string | number | boolean | undefined };
  governance: Governance;
  access: AccessSession;
}

/**
 * Workspace access (README, Workspace access): a private workspace, a teammate (a plain member
 * of the organization) given an explicit role in it, changed, and leaving again.
 */
export interface AccessSession {
  teammateId: string;
  workspaceId: string;
  /** The owner invites the teammate to the organization (201 with Location and the token); the teammate accepts. */
  invited: { status: number; location: string | null; invitation: Invitation; tokenLength: number };
  accepted: { status: number; invitation: Invitation; membership: InvitationMembership };
  /** PUT settings making the workspace private: the effective visibility it answers. */
  madePrivate: { status: number; visibility: string };
  /** The teammate's GET of the private workspace before it is a member. */
  hiddenBefore: { status: number; code: ApiError['code'] };
  /** The owner asking for the teammate's access before it is a member. */
  teammateAccessBefore: { status: number; access: WorkspaceAccess };
  added: { status: number; location: string | null; member: WorkspaceMember };
  listed: { status: number; members: WorkspaceMember[]; nextCursor: string | null };
  fetched: { status: number; member: WorkspaceMember };
  /** The teammate's own access as a viewer, and its refused rename. */
  viewerAccess: { status: number; access: WorkspaceAccess };
  viewerRename: { status: number; code: ApiError['code'] };
  updated: { status: number; member: WorkspaceMember };
  /** The teammate's own access as an admin, its rename, and its workspace memberships from /auth/me. */
  adminAccess: { status: number; access: WorkspaceAccess };
  adminRename: { status: number; name: string };
  teammateMemberships: Array<{ workspace_id: string; organization_id: string; role: string }>;
  /** The teammate leaves: 204; then the workspace is hidden from it again and lists no member. */
  left: { status: number };
  hiddenAfter: { status: number; code: ApiError['code'] };
  membersAfter: WorkspaceMember[];
  /** The owner's own access (no user_id). */
  ownerAccess: { status: number; access: WorkspaceAccess };
  /** The workspace's events, newest first. */
  events: Array<AuditEvent['action']>;
}

/** The governance part of the session: a lock, a write it refuses, archive and restore, the audit trail. */
export interface Governance {
  /** The organization's locks as its settings PUT answers them. */
  locks: string[];
  /** The locked workspace's settings, as a GET shows them under the lock. */
  lockedRead: {
    locked: string[];
    shadowed: string[];
    sources: { allowGuests: string; beta: string | undefined };
    effectiveBeta: boolean | undefined;
    overrideBeta: boolean | null | undefined;
  };
  lockedWrite: { status: number; code: ApiError['code']; message: string; issuePaths: string[] };
  archived: { status: number; etag: string | null; version: number; archivedAt: string | null };
  archivedWrite: { status: number; code: ApiError['code']; message: string };
  /** The organization's slugs, sorted by name, under each `archived` filter. */
  lists: { active: string[]; archived: string[]; all: string[] };
  restored: { status: number; etag: string | null; version: number; archivedAt: string | null };
  /** The organization's events, newest first (one page). */
  organizationEvents: AuditEvent[];
  /** What `action=workspace.archived` returns. */
  archivedEvents: AuditEvent[];
  /** The archived workspace's own events, newest first. */
  workspaceEvents: AuditEvent[];
}

function fail(step: string, status: number, error: unknown): never {
  throw new Error(`${step}: unexpected ${status} ${JSON.stringify(error)}`);
}

export async function runRestSession(baseUrl: string, email: string): Promise<RestSession> {
  const client = createClient<paths>({ baseUrl: `${baseUrl}/api/v1` });

  // Sign up: no token needed; 201 with the token, the organization and its default workspace.
  const signup = await client.POST('/auth/signup', { body: { email, password: 'a typed client password', name: 'Typed Client' } });
  if (!signup.data) fail('signup', signup.response.status, signup.error);
  const token = signup.data.access_token;
  const organizationId = signup.data.organization.id;
  client.use({
    onRequest({ request }) {
      request.headers.set('Authorization', `Bearer ${token}`);
      return request;
    },
  });

  // Create, with an Idempotency-Key: a retry with the same key replays the first answer.
  const key = `typed-client-${Date.now()}`;
  const body = {
    organization_id: organizationId,
    name: 'Platform',
    description: 'Created by the typed REST client',
    metadata: { team: 'platform' },
    settings: { features: { beta: true } },
  };
  const create = await client.POST('/workspaces', { params: { header: { 'Idempotency-Key': key } }, body });
  if (!create.data) fail('create', create.response.status, create.error);
  const replay = await client.POST('/workspaces', { params: { header: { 'Idempotency-Key': key } }, body });
  if (!replay.data) fail('create (replay)', replay.response.status, replay.error);

  // Provision a batch, so that the list below has several pages.
  const provision = await client.POST('/workspaces/provision', {
    body: {
      organization_id: organizationId,
      mode: 'atomic',
      workspaces: ['Alpha', 'Bravo', 'Charlie', 'Delta'].map((name) => ({ name })),
    },
  });
  if (!provision.data) fail('provision', provision.response.status, provision.error);

  // List two at a time, following next_cursor until it is null.
  const slugs: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const page = await client.GET('/workspaces', {
      params: { query: { organization_id: organizationId, sort: 'name', order: 'asc', limit: 2, cursor } },
    });
    if (!page.data) fail('list', page.response.status, page.error);
    pages++;
    slugs.push(...page.data.items.map((w: Workspace) => w.slug));
    cursor = page.data.next_cursor ?? undefined;
  } while (cursor && pages < 20);

  // Clone the created workspace.
  const clone = await client.POST('/workspaces/{workspace_id}/clone', {
    params: { path: { workspace_id: create.data.id } },
    body: { name: 'Platform (copy)' },
  });
  if (!clone.data) fail('clone', clone.response.status, clone.error);

  // Update the settings conditionally on the ETag just read.
  const read = await client.GET('/workspaces/{workspace_id}/settings', { params: { path: { workspace_id: create.data.id } } });
  if (!read.data) fail('settings', read.response.status, read.error);
  const etagBefore = read.response.headers.get('ETag') ?? fail('settings ETag', read.response.status, null);
  const update = await client.PUT('/workspaces/{workspace_id}/settings', {
    params: { path: { workspace_id: create.data.id }, header: { 'If-Match': etagBefore } },
    body: { integrations: { slack: { enabled: true, config: { channel: '#platform' } } } },
  });
  if (!update.data) fail('settings update', update.response.status, update.error);

  // The same If-Match again is stale now: 412, typed as the contract's error body.
  const stale = await client.PUT('/workspaces/{workspace_id}/settings', {
    params: { path: { workspace_id: create.data.id }, header: { 'If-Match': etagBefore } },
    body: { integrations: { slack: { config: { channel: '#elsewhere' } } } },
  });
  if (stale.data || !stale.error) throw new Error('settings update with a stale If-Match was accepted');
  // Compile-time: 412's code is one the document names.
  const precondition: ApiError['code'] = 'PRECONDITION_FAILED';
  if (stale.error.code !== precondition) fail('stale update', stale.response.status, stale.error);

  const after = await client.GET('/workspaces/{workspace_id}/settings', { params: { path: { workspace_id: create.data.id } } });
  if (!after.data) fail('settings after the 412', after.response.status, after.error);

  // Governance 1. Lock settings for every workspace of the organization: the organization's
  // value (features.beta: false) or the default (permissions.allow_guests) holds everywhere.
  const lock = await client.PUT('/organizations/{org_id}/settings', {
    params: { path: { org_id: organizationId } },
    body: { features: { beta: false }, locks: ['permissions.allow_guests', 'features.beta'] },
  });
  if (!lock.data) fail('lock', lock.response.status, lock.error);

  // 2. The workspace's settings show the locks; its own features.beta override is shadowed, not gone.
  const locked = await client.GET('/workspaces/{workspace_id}/settings', { params: { path: { workspace_id: create.data.id } } });
  if (!locked.data) fail('settings under the lock', locked.response.status, locked.error);
  if (locked.data.sources.permissions.allow_guests !== 'organization') fail('sources under the lock', locked.response.status, locked.data);

  // 3. A write under the lock is 409 CONFLICT, naming each refused path in issues; nothing changes.
  const refused = await client.PUT('/workspaces/{workspace_id}/settings', {
    params: { path: { workspace_id: create.data.id } },
    body: { permissions: { allow_guests: true }, features: { dark_mode: true } },
  });
  if (refused.data || !refused.error) throw new Error('a settings write under a lock was accepted');
  if (refused.response.status !== 409 || refused.error.code !== 'CONFLICT') fail('locked write', refused.response.status, refused.error);

  // 4. Archive the clone, conditionally on the ETag a GET gives: read-only, left out of lists.
  const target = await client.GET('/workspaces/{workspace_id}', { params: { path: { workspace_id: clone.data.id } } });
  if (!target.data) fail('workspace to archive', target.response.status, target.error);
  const targetEtag = target.response.headers.get('ETag') ?? fail('workspace ETag', target.response.status, null);
  const archive = await client.POST('/workspaces/{workspace_id}/archive', {
    params: { path: { workspace_id: clone.data.id }, header: { 'If-Match': targetEtag } },
    body: {},
  });
  if (!archive.data) fail('archive', archive.response.status, archive.error);
  if (archive.data.archived_at === null) fail('archive (archived_at)', archive.response.status, archive.data);

  // 5. An archived workspace refuses writes: 409 until it is restored.
  const archivedWrite = await client.PUT('/workspaces/{workspace_id}', {
    params: { path: { workspace_id: clone.data.id } },
    body: { name: 'Renamed while archived' },
  });
  if (archivedWrite.data || !archivedWrite.error) throw new Error('a write to an archived workspace was accepted');
  if (archivedWrite.error.code !== 'CONFLICT') fail('write to the archived workspace', archivedWrite.response.status, archivedWrite.error);

  // 6. The lists: active ones by default, archived=true only the archived, archived=all both.
  const listSlugs = async (archived: 'false' | 'true' | 'all') => {
    const page = await client.GET('/workspaces', {
      params: { query: { organization_id: organizationId, sort: 'name', limit: 100, archived } },
    });
    if (!page.data) fail(`list archived=${archived}`, page.response.status, page.error);
    if (page.data.next_cursor !== null) fail(`list archived=${archived} (one page)`, page.response.status, page.data.next_cursor);
    return page.data.items.map((w: Workspace) => w.slug);
  };
  const lists = { active: await listSlugs('false'), archived: await listSlugs('true'), all: await listSlugs('all') };
  if (lists.active.includes(clone.data.slug) || !lists.archived.includes(clone.data.slug)) fail('lists after archive', 200, lists);

  // 7. Restore it, this time conditionally on expected_version in the body.
  const restore = await client.POST('/workspaces/{workspace_id}/restore', {
    params: { path: { workspace_id: clone.data.id } },
    body: { expected_version: archive.data.version },
  });
  if (!restore.data) fail('restore', restore.response.status, restore.error);
  if (restore.data.archived_at !== null) fail('restore (archived_at)', restore.response.status, restore.data);

  // 8. The audit trail: the organization's events (admin), one action of them, and the workspace's own.
  const orgEvents = await client.GET('/organizations/{org_id}/events', {
    params: { path: { org_id: organizationId }, query: { limit: 100 } },
  });
  if (!orgEvents.data) fail('organization events', orgEvents.response.status, orgEvents.error);
  const archivedEvents = await client.GET('/organizations/{org_id}/events', {
    params: { path: { org_id: organizationId }, query: { action: 'workspace.archived', target_id: clone.data.id } },
  });
  if (!archivedEvents.data) fail('organization events (action filter)', archivedEvents.response.status, archivedEvents.error);
  const wsEvents = await client.GET('/workspaces/{workspace_id}/events', { params: { path: { workspace_id: clone.data.id } } });
  if (!wsEvents.data) fail('workspace events', wsEvents.response.status, wsEvents.error);
  const actions = new Set(orgEvents.data.items.map((e: AuditEvent) => e.action));
  for (const action of ['organization.settings_updated', 'workspace.archived', 'workspace.restored'] as const) {
    if (!actions.has(action)) fail(`organization events (${action})`, orgEvents.response.status, [...actions]);
  }

  const access = await accessSession(baseUrl, client, organizationId, email.replace('@', '+teammate@'));

  return {
    token,
    organizationId,
    signupStatus: signup.response.status,
    created: {
      status: create.response.status,
      location: create.response.headers.get('Location'),
      workspace: create.data,
      replayedStatus: replay.response.status,
      replayedId: replay.data.id,
    },
    provisioned: { status: provision.response.status, slugs: provision.data.created.map((w: Workspace) => w.slug) },
    walk: { slugs, pages },
    clone: { status: clone.response.status, workspace: clone.data },
    settingsUpdate: {
      status: update.response.status,
      etagBefore,
      etagAfter: update.response.headers.get('ETag'),
      version: update.data.version,
      slackEnabled: update.data.effective.integrations.slack?.enabled === true,
    },
    stale: { status: stale.response.status, code: stale.error.code, message: stale.error.message },
    afterStale: {
      version: after.data.version,
      etag: after.response.headers.get('ETag'),
      slackChannel: after.data.effective.integrations.slack?.config.channel,
    },
    governance: {
      locks: lock.data.locks,
      lockedRead: {
        locked: locked.data.locked,
        shadowed: locked.data.shadowed,
        sources: { allowGuests: locked.data.sources.permissions.allow_guests, beta: locked.data.sources.features.beta },
        effectiveBeta: locked.data.effective.features.beta,
        overrideBeta: locked.data.overrides.features?.beta,
      },
      lockedWrite: {
        status: refused.response.status,
        code: refused.error.code,
        message: refused.error.message,
        issuePaths: (refused.error.issues ?? []).map((i: { path: string }) => i.path),
      },
      archived: {
        status: archive.response.status,
        etag: archive.response.headers.get('ETag'),
        version: archive.data.version,
        archivedAt: archive.data.archived_at,
      },
      archivedWrite: { status: archivedWrite.response.status, code: archivedWrite.error.code, message: archivedWrite.error.message },
      lists,
      restored: {
        status: restore.response.status,
        etag: restore.response.headers.get('ETag'),
        version: restore.data.version,
        archivedAt: restore.data.archived_at,
      },
      organizationEvents: orgEvents.data.items,
      archivedEvents: archivedEvents.data.items,
      workspaceEvents: wsEvents.data.items,
    },
    access,
  };
}

type Client = ReturnType<typeof createClient<paths>>;

/** Workspace access: a private workspace, a teammate given a role in it, its role changed, and leaving. */
async function accessSession(baseUrl: string, owner: Client, organizationId: string, teammateEmail: string): Promise<AccessSession> {
  // A teammate: an account of its own (its own client and token), added to the organization as a plain member.
  const teammate = createClient<paths>({ baseUrl: `${baseUrl}/api/v1` });
  const signup = await teammate.POST('/auth/signup', { body: { email: teammateEmail, password: 'a teammate password', name: 'Teammate' } });
  if (!signup.data) fail('teammate signup', signup.response.status, signup.error);
  const teammateToken = signup.data.access_token;
  const teammateId = signup.data.user.id;
  teammate.use({
    onRequest({ request }) {
      request.headers.set('Authorization', `Bearer ${teammateToken}`);
      return request;
    },
  });
  // Members join by invitation: the owner invites the teammate's email, the teammate (logged in with it) accepts the token.
  const invited = await owner.POST('/organizations/{org_id}/invitations', {
    params: { path: { org_id: organizationId } },
    body: { email: teammateEmail, role: 'member' },
  });
  if (!invited.data) fail('invite the teammate to the organization', invited.response.status, invited.error);
  const accepted = await teammate.POST('/invitations/accept', { body: { token: invited.data.token } });
  if (!accepted.data) fail('accept the invitation', accepted.response.status, accepted.error);

  // A workspace made private: only the organization's owners and admins, and its explicit members, see it.
  const created = await owner.POST('/workspaces', { body: { organization_id: organizationId, name: 'Private plans' } });
  if (!created.data) fail('create the private workspace', created.response.status, created.error);
  const workspace_id = created.data.id;
  const path = { workspace_id };
  const madePrivate = await owner.PUT('/workspaces/{workspace_id}/settings', {
    params: { path },
    body: { permissions: { visibility: 'private' } },
  });
  if (!madePrivate.data) fail('make it private', madePrivate.response.status, madePrivate.error);

  // The teammate cannot see it (404, as for a workspace that does not exist); the owner may ask why.
  const hiddenBefore = await teammate.GET('/workspaces/{workspace_id}', { params: { path } });
  if (hiddenBefore.data || !hiddenBefore.error) throw new Error('a private workspace was shown to a plain member');
  const before = await owner.GET('/workspaces/{workspace_id}/access', { params: { path, query: { user_id: teammateId } } });
  if (!before.data) fail('teammate access (before)', before.response.status, before.error);

  // Add the teammate as a viewer: 201 with Location; list and get the membership.
  const added = await owner.POST('/workspaces/{workspace_id}/members', { params: { path }, body: { user_id: teammateId, role: 'viewer' } });
  if (!added.data) fail('add a workspace member', added.response.status, added.error);
  const listed = await owner.GET('/workspaces/{workspace_id}/members', { params: { path, query: { limit: 20 } } });
  if (!listed.data) fail('list workspace members', listed.response.status, listed.error);
  const fetched = await owner.GET('/workspaces/{workspace_id}/members/{user_id}', {
    params: { path: { workspace_id, user_id: teammateId } },
  });
  if (!fetched.data) fail('get a workspace member', fetched.response.status, fetched.error);

  // As a viewer the teammate sees it and reads why, but may not rename it (403: it can see the workspace).
  const viewerAccess = await teammate.GET('/workspaces/{workspace_id}/access', { params: { path } });
  if (!viewerAccess.data) fail('viewer access', viewerAccess.response.status, viewerAccess.error);
  const viewerRename = await teammate.PUT('/workspaces/{workspace_id}', { params: { path }, body: { name: 'Renamed by a viewer' } });
  if (viewerRename.data || !viewerRename.error) throw new Error('a viewer renamed the workspace');

  // Make the teammate an admin of this workspace: now it may rename it.
  const updated = await owner.PUT('/workspaces/{workspace_id}/members/{user_id}', {
    params: { path: { workspace_id, user_id: teammateId } },
    body: { role: 'admin' },
  });
  if (!updated.data) fail('change the member role', updated.response.status, updated.error);
  const adminAccess = await teammate.GET('/workspaces/{workspace_id}/access', { params: { path } });
  if (!adminAccess.data) fail('admin access', adminAccess.response.status, adminAccess.error);
  const adminRename = await teammate.PUT('/workspaces/{workspace_id}', { params: { path }, body: { name: 'Private plans (2027)' } });
  if (!adminRename.data) fail('rename as a workspace admin', adminRename.response.status, adminRename.error);
  const me = await teammate.GET('/auth/me', {});
  if (!me.data) fail('teammate /auth/me', me.response.status, me.error);

  // The teammate leaves (removes its own membership): the workspace is hidden from it again.
  const left = await teammate.DELETE('/workspaces/{workspace_id}/members/{user_id}', {
    params: { path: { workspace_id, user_id: teammateId } },
  });
  if (left.error) fail('leave the workspace', left.response.status, left.error);
  const hiddenAfter = await teammate.GET('/workspaces/{workspace_id}', { params: { path } });
  if (hiddenAfter.data || !hiddenAfter.error) throw new Error('the workspace stayed visible to a member who left');
  const after = await owner.GET('/workspaces/{workspace_id}/members', { params: { path } });
  if (!after.data) fail('list workspace members (after)', after.response.status, after.error);
  const ownerAccess = await owner.GET('/workspaces/{workspace_id}/access', { params: { path } });
  if (!ownerAccess.data) fail('owner access', ownerAccess.response.status, ownerAccess.error);
  const events = await owner.GET('/workspaces/{workspace_id}/events', { params: { path } });
  if (!events.data) fail('workspace events', events.response.status, events.error);

  return {
    teammateId,
    workspaceId: workspace_id,
    invited: {
      status: invited.response.status,
      location: invited.response.headers.get('Location'),
      invitation: invited.data.invitation,
      tokenLength: invited.data.token.length,
    },
    accepted: { status: accepted.response.status, invitation: accepted.data.invitation, membership: accepted.data.membership },
    madePrivate: { status: madePrivate.response.status, visibility: madePrivate.data.effective.permissions.visibility },
    hiddenBefore: { status: hiddenBefore.response.status, code: hiddenBefore.error.code },
    teammateAccessBefore: { status: before.response.status, access: before.data },
    added: { status: added.response.status, location: added.response.headers.get('Location'), member: added.data },
    listed: { status: listed.response.status, members: listed.data.items, nextCursor: listed.data.next_cursor },
    fetched: { status: fetched.response.status, member: fetched.data },
    viewerAccess: { status: viewerAccess.response.status, access: viewerAccess.data },
    viewerRename: { status: viewerRename.response.status, code: viewerRename.error.code },
    updated: { status: updated.response.status, member: updated.data },
    adminAccess: { status: adminAccess.response.status, access: adminAccess.data },
    adminRename: { status: adminRename.response.status, name: adminRename.data.name },
    teammateMemberships: me.data.workspace_memberships,
    left: { status: left.response.status },
    hiddenAfter: { status: hiddenAfter.response.status, code: hiddenAfter.error.code },
    membersAfter: after.data.items,
    ownerAccess: { status: ownerAccess.response.status, access: ownerAccess.data },
    events: events.data.items.map((e: AuditEvent) => e.action),
  };
}
