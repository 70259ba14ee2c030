import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_USER, seedDemoData } from '../scripts/seed';
import { createDeps } from '../src/deps';
import { signup, startTestApp, type TestApp } from './helpers/app';
import { runScript } from './helpers/run-script';

/**
 * examples/trpc-client.ts is documentation that runs: `npm run typecheck` type-checks it
 * against AppRouter, and this suite runs it as a reader would, against a live service.
 */
let app: TestApp;
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  await app?.close();
});

interface WorkspaceRow {
  id: string;
  name: string;
  version: number;
  archived_at: string | null;
}

/** Every workspace of every organization the user belongs to, as the database holds it. */
const workspacesOf = (userId: string) =>
  app.query<WorkspaceRow>(
    `select w.id, w.name, w.version, w.archived_at::text as archived_at
       from workspaces w join memberships m on m.organization_id = w.organization_id
      where m.user_id = $1 order by w.id`,
    [userId],
  );

/** The ids of the workspaces the user created and deleted, from the audit trail. */
async function createdAndDeletedBy(userId: string) {
  const events = await app.query<{ action: string; target_id: string }>(
    `select action, target_id from audit_events
      where actor_id = $1 and action in ('workspace.created', 'workspace.deleted') order by created_at, id`,
    [userId],
  );
  const ids = (action: string) => events.filter((e) => e.action === action).map((e) => e.target_id);
  return { created: ids('workspace.created'), deleted: ids('workspace.deleted') };
}

const locksOf = async (userId: string) =>
  app.query<{ slug: string; locks: unknown }>(
    `select o.slug, o.settings_locks as locks from organizations o join memberships m on m.organization_id = o.id
      where m.user_id = $1 order by o.slug`,
    [userId],
  );

/** Who belongs to the user's organizations, and to their workspaces, as the database holds it. */
const membersOf = async (userId: string) => ({
  organizations: await app.query<{ organization_id: string; user_id: string; role: string }>(
    `select m.organization_id, m.user_id, m.role from memberships m
      where m.organization_id in (select organization_id from memberships where user_id = $1) order by 1, 2`,
    [userId],
  ),
  workspaces: await app.query<{ workspace_id: string; user_id: string; role: string }>(
    `select wm.workspace_id, wm.user_id, wm.role from workspace_members wm join workspaces w on w.id = wm.workspace_id
      where w.organization_id in (select organization_id from memberships where user_id = $1) order by 1, 2`,
    [userId],
  ),
});

/** The invitations of the user's organizations (and their workspaces), as the database holds them. */
const invitationsOf = (userId: string) =>
  app.query<{ id: string; email: string; status: string; expires_at: string }>(
    `select i.id, i.email, i.status, i.expires_at::text as expires_at from invitations i
      where i.organization_id in (select organization_id from memberships where user_id = $1) order by i.id`,
    [userId],
  );

/** The invitation events the user wrote in the workspaces, oldest first. */
const invitationEventsIn = (userId: string, workspaceIds: string[]) =>
  app.query<{ action: string; email: unknown; role: unknown; kind: unknown }>(
    `select action, changes->'email'->'to' as email, changes->'role'->'to' as role, changes->'kind'->'to' as kind from audit_events
      where actor_id = $1 and action like 'invitation.%' and workspace_id = any($2::uuid[]) order by created_at, id`,
    [userId, workspaceIds],
  );

const HOP_HEADERS = new Set(['host', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

/**
 * A pass-through HTTP proxy to the app that answers every tRPC request whose path starts with
 * `failing` with a tRPC batch error (500), as a service failing mid-session would.
 */
async function failingProxy(failing: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url?.startsWith(`/trpc/${failing}`)) {
        const error = { message: 'injected failure', code: -32603, data: { code: 'INTERNAL_SERVER_ERROR', httpStatus: 500 } };
        res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify([{ error }]));
        return;
      }
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(
          (entry): entry is [string, string] => typeof entry[1] === 'string' && !HOP_HEADERS.has(entry[0]),
        ),
      );
      fetch(app.url + req.url, { method: req.method, headers, body: chunks.length > 0 ? Buffer.concat(chunks) : undefined })
        .then(async (answer) => {
          const body = Buffer.from(await answer.arrayBuffer());
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' }).end(body);
        })
        .catch(() => res.writeHead(502).end());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('examples/trpc-client.ts', () => {
  it('runs its session with the demo login, exits 0, and leaves the demo organizations as it found them, twice', async () => {
    await seedDemoData(createDeps(app.config, app.database));
    const [demo] = await app.query<{ id: string }>('select id from users where email = $1', [DEMO_USER.email]);
    const before = await workspacesOf(demo!.id);
    const locksBefore = await locksOf(demo!.id);
    const membersBefore = await membersOf(demo!.id);
    const invitationsBefore = await invitationsOf(demo!.id);
    expect(before).toHaveLength(13);
    // Globex's private Finance has its two explicit members (the seed's teammates), Acme's Support its guest.
    expect(membersBefore.workspaces).toHaveLength(3);
    // The seed's invitations: the teammates' and the guest's accepted, one pending.
    expect(invitationsBefore.map((i) => i.status).sort()).toEqual(['accepted', 'accepted', 'accepted', 'pending']);
    const usersBefore = await app.query('select id from users order by id');
    const eventsBefore = await createdAndDeletedBy(demo!.id);

    const result = await runScript('examples/trpc-client.ts', [app.url, DEMO_USER.email, DEMO_USER.password], {});

    expect(result.stderr, result.stdout).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('signed in');
    expect(result.stdout).toContain('batched: 3 calls in 1 HTTP request');
    expect(result.stdout).toMatch(/created \S+ replayed true/);
    expect(result.stdout).toContain('version 2');
    expect(result.stdout).toContain('stale write refused: PRECONDITION_FAILED 412');
    expect(result.stdout).toContain('batch refused: CONFLICT failed items 1');
    // Governance: a locked setting refuses the workspace's write; archive and restore; the trail.
    expect(result.stdout).toContain('locked write refused: CONFLICT 409 permissions.allow_guests');
    expect(result.stdout).toMatch(/archived \S+ listed with archived=true only/);
    expect(result.stdout).toContain('restored version 3');
    expect(result.stdout).toMatch(/workspace events: workspace\.restored workspace\.archived/);
    // Workspace access, with a plain member of Globex (a seeded teammate): no teammate signed up.
    expect(result.stdout).toContain('private workspace: a plain member has no access');
    expect(result.stdout).toContain('added demo-member@example.com as viewer');
    expect(result.stdout).toContain('access: member viewer via workspace_member; mine admin via organization_role');
    expect(result.stdout).toContain('members: demo-member@example.com (viewer)');
    expect(result.stdout).toContain('removed the member: no access again');
    expect(result.stdout).toMatch(/invited demo-member@example\.com: the preview shows tRPC access \S+ \(Globex\) as viewer/);
    expect(result.stdout).toContain('revoked the invitation: its preview says revoked');
    expect(result.stdout).not.toContain('signed up a teammate');
    expect(result.stdout).toContain('cleaned up: 3 workspaces deleted');
    expect(result.stdout).toContain('example finished');

    // The demo organizations hold exactly the workspaces they held, unchanged, their locks, their
    // members and their workspaces' members; no account was added.
    expect(await workspacesOf(demo!.id)).toEqual(before);
    expect(await locksOf(demo!.id)).toEqual(locksBefore);
    expect(await membersOf(demo!.id)).toEqual(membersBefore);
    // Its invitation went with its workspace; the seed's are as they were.
    expect(await invitationsOf(demo!.id)).toEqual(invitationsBefore);
    expect(await app.query('select id from users order by id')).toEqual(usersBefore);
    // It did create its three workspaces (the replayed create made none), and deleted them all.
    const events = await createdAndDeletedBy(demo!.id);
    const made = events.created.filter((id) => !eventsBefore.created.includes(id));
    expect(made).toHaveLength(3);
    expect(events.deleted.filter((id) => !eventsBefore.deleted.includes(id)).sort()).toEqual(made.sort());
    // In one of them, the member was added as a viewer, and removed.
    const memberEvents = await app.query<{ action: string; role: unknown }>(
      `select action, changes->'role' as role from audit_events
        where actor_id = $1 and action like 'workspace.member_%' and workspace_id = any($2::uuid[]) order by created_at, id`,
      [demo!.id, made],
    );
    expect(memberEvents).toEqual([
      { action: 'workspace.member_added', role: { from: null, to: 'viewer' } },
      { action: 'workspace.member_removed', role: { from: 'viewer', to: null } },
    ]);
    // And the teammate was invited to it, as a member of the organization, and the invitation revoked.
    expect(await invitationEventsIn(demo!.id, made)).toEqual([
      { action: 'invitation.created', email: 'demo-member@example.com', role: 'viewer', kind: 'member' },
      { action: 'invitation.revoked', email: null, role: null, kind: null },
    ]);

    // Run again: the same answers, and again nothing left behind.
    const again = await runScript('examples/trpc-client.ts', [app.url, DEMO_USER.email, DEMO_USER.password], {});
    expect(again.stderr, again.stdout).toBe('');
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('cleaned up: 3 workspaces deleted');
    expect(await workspacesOf(demo!.id)).toEqual(before);
    expect(await locksOf(demo!.id)).toEqual(locksBefore);
    expect(await membersOf(demo!.id)).toEqual(membersBefore);
    expect(await invitationsOf(demo!.id)).toEqual(invitationsBefore);
    expect(await app.query('select id from users order by id')).toEqual(usersBefore);
  });

  it('deletes what it created when a step fails, and exits 1 naming the failure', async () => {
    const account = await signup(app, 'Failing');
    const before = await workspacesOf(account.user.id);
    const locksBefore = await locksOf(account.user.id);
    // 8e reads the workspace's events: by then both of its workspaces exist and a lock is set.
    const proxy = await failingProxy('audit.listWorkspaceEvents');
    try {
      const result = await runScript('examples/trpc-client.ts', [proxy.url, account.user.email, account.password], {});
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('injected failure (INTERNAL_SERVER_ERROR 500)');
      expect(result.stderr).not.toContain('clean-up failed');
      expect(result.stdout).toContain('restored version 3');
      expect(result.stdout).not.toContain('example finished');
    } finally {
      await proxy.close();
    }
    expect(await workspacesOf(account.user.id)).toEqual(before);
    expect(await locksOf(account.user.id)).toEqual(locksBefore);
    const events = await createdAndDeletedBy(account.user.id);
    // The default workspace (created at signup) and the example's two; the two are deleted.
    expect(events.created).toHaveLength(3);
    expect(events.deleted.sort()).toEqual(events.created.filter((id) => id !== account.workspace.id).sort());
  });

  it('deletes what it created and takes out the teammate it added when the access step fails, and exits 1', async () => {
    const account = await signup(app, 'FailingAccess');
    const before = await workspacesOf(account.user.id);
    const membersBefore = await membersOf(account.user.id);
    expect(membersBefore.organizations).toEqual([{ organization_id: account.organization.id, user_id: account.user.id, role: 'owner' }]);
    // 9a asks for the teammate's access: by then the teammate is in the organization and the workspace private.
    const proxy = await failingProxy('workspaces.access');
    try {
      const result = await runScript('examples/trpc-client.ts', [proxy.url, account.user.email, account.password], {});
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('injected failure (INTERNAL_SERVER_ERROR 500)');
      expect(result.stderr).not.toContain('clean-up failed');
      expect(result.stdout).toContain('signed up a teammate, invited it to the organization, and it accepted');
      expect(result.stdout).not.toContain('example finished');
    } finally {
      await proxy.close();
    }
    expect(await workspacesOf(account.user.id)).toEqual(before);
    expect(await membersOf(account.user.id)).toEqual(membersBefore);
    const events = await createdAndDeletedBy(account.user.id);
    // The default workspace (created at signup) and the example's three; the three are deleted.
    expect(events.created).toHaveLength(4);
    expect(events.deleted.sort()).toEqual(events.created.filter((id) => id !== account.workspace.id).sort());
    // The teammate joined and left again.
    const memberEvents = await app.query<{ action: string }>(
      "select action from audit_events where organization_id = $1 and action like 'member.%' order by created_at, id",
      [account.organization.id],
    );
    expect(memberEvents.map((e) => e.action)).toEqual(['member.added', 'member.added', 'member.removed']);
  });

  it('revokes the invitation it made when the preview fails, deletes what it created, takes out the teammate, and exits 1', async () => {
    const account = await signup(app, 'FailingPreview');
    const before = await workspacesOf(account.user.id);
    const membersBefore = await membersOf(account.user.id);
    // 9f previews the workspace invitation it has just made.
    const proxy = await failingProxy('invitations.preview');
    try {
      const result = await runScript('examples/trpc-client.ts', [proxy.url, account.user.email, account.password], {});
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('injected failure (INTERNAL_SERVER_ERROR 500)');
      expect(result.stderr).not.toContain('clean-up failed');
      expect(result.stdout).toContain('removed the member: no access again');
      expect(result.stdout).not.toContain('revoked the invitation');
      expect(result.stdout).not.toContain('example finished');
    } finally {
      await proxy.close();
    }
    expect(await workspacesOf(account.user.id)).toEqual(before);
    expect(await membersOf(account.user.id)).toEqual(membersBefore);
    // What stays of invitations: the one the teammate accepted to join; the workspace's went with its workspace.
    expect(await invitationsOf(account.user.id)).toEqual([
      { id: expect.any(String), email: expect.stringMatching(/^trpc-teammate-/), status: 'accepted', expires_at: expect.any(String) },
    ]);
    const { created } = await createdAndDeletedBy(account.user.id);
    const made = created.filter((id) => id !== account.workspace.id);
    expect(made).toHaveLength(3);
    // The workspace invitation was made, then revoked in the clean-up (before its workspace went, and the invitation with it).
    expect(await invitationEventsIn(account.user.id, made)).toEqual([
      { action: 'invitation.created', email: expect.stringMatching(/^trpc-teammate-/), role: 'viewer', kind: 'member' },
      { action: 'invitation.revoked', email: null, role: null, kind: null },
    ]);
  });

  it('signs up an account of its own when given only the URL (from WORKSPACES_URL), and leaves only its default workspace', async () => {
    const result = await runScript('examples/trpc-client.ts', [], { WORKSPACES_URL: app.url });
    expect(result.stderr, result.stdout).toBe('');
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('signed up a teammate, invited it to the organization, and it accepted');
    expect(result.stdout).toContain('access: member viewer via workspace_member; mine admin via organization_role');
    expect(result.stdout).toContain('example finished');
    const users = await app.query<{ id: string }>("select id from users where email like 'trpc-example-%'");
    expect(users).toHaveLength(1);
    const left = await app.query<{ is_default: boolean }>(
      'select w.is_default from workspaces w join memberships m on m.organization_id = w.organization_id where m.user_id = $1',
      [users[0]!.id],
    );
    expect(left).toEqual([{ is_default: true }]);
    // Its throwaway teammate stays as an account, but not in the organization.
    expect((await membersOf(users[0]!.id)).organizations.map((m) => m.role)).toEqual(['owner']);
  });

  it('exits 1 with one line when the service refuses it', async () => {
    const account = await signup(app, 'Wrong');
    const result = await runScript('examples/trpc-client.ts', [app.url, account.user.email, 'not the password'], {});
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\(UNAUTHORIZED 401\)/);
  });
});
