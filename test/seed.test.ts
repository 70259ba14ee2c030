import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config';
import type { DatabaseHandle } from '../src/db/client';
import { runMigrations } from '../src/db/migrate';
import { openDatabase } from '../src/db/open';
import { serveApp } from './helpers/app';
import { databaseUrlFor } from './helpers/database-url';
import { runScript } from './helpers/run-script';

/**
 * `npm run seed` (scripts/seed.ts) as a person runs it: a child process on a fresh database
 * (an empty PostgreSQL database when DATABASE_URL is set, else an empty DATA_DIR), twice.
 */
const serverUrl = process.env.DATABASE_URL;
const SEED_TIMEOUT = 120_000;

let dataDir: string;
let env: Record<string, string>;
let dropDatabase = async () => {};
beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'workspaces-seed-'));
  env = { DATA_DIR: dataDir };
  if (serverUrl) {
    // An empty database, not the migrated template: the seed migrates it as `npm start` would.
    const name = `ws_seed_${randomUUID().replace(/-/g, '')}`;
    const admin = postgres(serverUrl, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    env.DATABASE_URL = databaseUrlFor(serverUrl, name);
    dropDatabase = async () => {
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    };
  }
});
afterAll(async () => {
  await dropDatabase();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const seed = (extra: Record<string, string> = {}) => runScript('scripts/seed.ts', [], { ...env, ...extra }, SEED_TIMEOUT);
const tokenIn = (stdout: string) => /^\s*token:\s+(\S+)$/m.exec(stdout)?.[1];

/** Opens the seeded database in this process (the seed has exited, so the embedded one is free). */
async function withDatabase<T>(work: (database: DatabaseHandle) => Promise<T>): Promise<T> {
  const database = await openDatabase(loadConfig({ ...env, LOG_LEVEL: 'silent' }));
  try {
    return await work(database);
  } finally {
    await database.close();
  }
}

/** Every row the demo data consists of, as text: a second run must leave it identical. */
async function contents(database: DatabaseHandle) {
  const one = async (query: string) => (await database.rows<{ n: number }>(sql.raw(query)))[0]!.n;
  return {
    users: await one('select count(*)::int as n from users'),
    organizations: await one('select count(*)::int as n from organizations'),
    memberships: await one('select count(*)::int as n from memberships'),
    workspaces: await one('select count(*)::int as n from workspaces'),
    clones: await one('select count(*)::int as n from workspaces where cloned_from_id is not null'),
    overridden: await one("select count(*)::int as n from workspaces where settings <> '{}'::jsonb"),
    workspaceMembers: await database.rows(
      sql.raw(
        `select w.slug as workspace, w.effective_visibility, u.email, wm.role
           from workspace_members wm join workspaces w on w.id = wm.workspace_id join users u on u.id = wm.user_id
          order by w.slug, u.email`,
      ),
    ),
    invitations: await database.rows(
      sql.raw(
        `select o.slug as organization, w.slug as workspace, i.email, i.role, i.kind, i.status,
                i.expires_at::text as expires_at, i.accepted_user_id is not null as accepted
           from invitations i join organizations o on o.id = i.organization_id left join workspaces w on w.id = i.workspace_id
          order by i.email`,
      ),
    ),
    rows: await database.rows(
      sql.raw(
        `select o.slug as organization, o.name as organization_name, o.settings::text as organization_settings,
                w.slug, w.name, w.version, w.is_default, w.settings::text as settings, w.metadata::text as metadata,
                w.updated_at::text as updated_at, o.settings_locks::text as locks, w.archived_at::text as archived_at
           from workspaces w join organizations o on o.id = w.organization_id
          order by o.slug, w.slug`,
      ),
    ),
  };
}

describe('npm run seed', () => {
  let first: Awaited<ReturnType<typeof contents>>;
  let token: string | undefined;

  it(
    'fills a fresh database with a demo user, two teammates and a guest, two organizations, 13 workspaces and a pending invitation, and prints how to sign in',
    async () => {
      const run = await seed();
      expect(run.stderr, run.stdout).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('email:    demo@example.com');
      expect(run.stdout).toContain('password: demo password');
      expect(run.stdout).toContain('added now:     4 users, 2 organizations, 13 workspaces, 4 invitations');
      expect(run.stdout).toContain('teammates: demo-member@example.com, demo-viewer@example.com (same password');
      expect(run.stdout).toContain("guest:     demo-guest@example.com (same password; a guest in Acme Corp's Support workspace");
      expect(run.stdout).toContain('pending:   an invitation to Acme Corp for invitee@example.com (no account)');
      expect(run.stdout).toContain('Acme Corp (acme-demo, 8 workspaces), Globex (globex-demo, 5 workspaces)');
      token = tokenIn(run.stdout);
      expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);

      first = await withDatabase(contents);
      // The teammates' and the guest's own organizations (from their signups) are gone: the
      // teammates are members of Globex only, the guest of no organization.
      expect(first).toMatchObject({ users: 4, organizations: 2, memberships: 4, workspaces: 13, clones: 1 });
      // Globex's private Finance: one explicit member, one explicit viewer; Acme's Support: its guest.
      expect(first.workspaceMembers).toEqual([
        { workspace: 'finance', effective_visibility: 'private', email: 'demo-member@example.com', role: 'member' },
        { workspace: 'finance', effective_visibility: 'private', email: 'demo-viewer@example.com', role: 'viewer' },
        { workspace: 'support', effective_visibility: 'organization', email: 'demo-guest@example.com', role: 'member' },
      ]);
      // Each joined by an invitation it accepted; one invitation waits for someone without an account.
      const invitation = (organization: string, workspace: string | null, email: string, role: string, kind: string, status: string) => ({
        organization,
        workspace,
        email,
        role,
        kind,
        status,
        expires_at: expect.any(String),
        accepted: status === 'accepted',
      });
      expect(first.invitations).toEqual([
        invitation('acme-demo', 'support', 'demo-guest@example.com', 'member', 'guest', 'accepted'),
        invitation('globex-demo', null, 'demo-member@example.com', 'member', 'member', 'accepted'),
        invitation('globex-demo', null, 'demo-viewer@example.com', 'member', 'member', 'accepted'),
        invitation('acme-demo', null, 'invitee@example.com', 'member', 'member', 'pending'),
      ]);
      const [invitee] = await withDatabase((database) =>
        database.rows<{ n: number }>(sql.raw("select count(*)::int as n from users where email = 'invitee@example.com'")),
      );
      expect(invitee!.n).toBe(0);
      // Most workspaces override something; the defaults, Marketing and Operations inherit everything.
      expect(first.overridden).toBe(8);
      expect(first.rows.find((r) => r.slug === 'platform-staging')).toMatchObject({ organization: 'acme-demo', version: 2 });
    },
    SEED_TIMEOUT,
  );

  it(
    'adds and changes nothing when run again',
    async () => {
      const run = await seed();
      expect(run.stderr, run.stdout).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('added now:     0 users, 0 organizations, 0 workspaces, 0 invitations');
      expect(await withDatabase(contents)).toEqual(first);
      // A fresh token each run; the first one still works (checked below).
      expect(tokenIn(run.stdout)).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    },
    SEED_TIMEOUT,
  );

  it('prints a token the service accepts, for data a person can look at', async () => {
    const database = await openDatabase(loadConfig({ ...env, LOG_LEVEL: 'silent' }));
    const config = loadConfig({ ...env, LOG_LEVEL: 'silent' });
    const service = await serveApp(config, database, () => database.close());
    try {
      const base = `${service.url}/api/v1`;
      const get = async (path: string, as = token) => {
        const res = await fetch(base + path, { headers: { authorization: `Bearer ${as}` } });
        return { status: res.status, body: (await res.json()) as any };
      };
      const me = await get('/auth/me');
      expect(me.status).toBe(200);
      expect(me.body.user.email).toBe('demo@example.com');
      expect(me.body.memberships).toHaveLength(2);

      const list = await get('/workspaces?limit=100&sort=name');
      expect(list.status).toBe(200);
      expect(list.body.items).toHaveLength(12);
      const staging = list.body.items.find((w: any) => w.slug === 'platform-staging');
      const platform = list.body.items.find((w: any) => w.slug === 'platform');
      expect(staging.cloned_from_id).toBe(platform.id);

      // Settings from every layer: the clone's own override, the organization's, and the defaults.
      const settings = await get(`/workspaces/${staging.id}/settings`);
      expect(settings.status).toBe(200);
      expect(settings.body.effective.features).toMatchObject({ beta: true, audit_log: true, 'ci.fast_lane': true });
      expect(settings.body.sources.features).toMatchObject({ beta: 'workspace', audit_log: 'organization' });
      expect(settings.body.effective.integrations.github.config).toEqual({ org: 'acme', required_reviews: 2, branch: 'staging' });
      expect(settings.body.sources.permissions.visibility).toBe('default');
      // Acme locks its audit log on; Globex's Legacy CRM is archived, out of the default list.
      expect(settings.body.locked).toEqual(['features.audit_log']);
      const archived = await get('/workspaces?limit=100&archived=true');
      expect(archived.body.items.map((w: any) => w.slug)).toEqual(['legacy-crm']);
      expect(list.body.items.some((w: any) => w.slug === 'legacy-crm')).toBe(false);
      // And the trail of it all: the archive is the newest of Globex's events.
      const globexId = archived.body.items[0].organization_id;
      const events = await get(`/organizations/${globexId}/events?limit=4`);
      // The newest: the second teammate invited to Globex, accepting (the invitation and the
      // membership: one transaction, in any order within), and added to Finance.
      const actions = events.body.items.map((e: any) => e.action);
      expect(actions[0]).toBe('workspace.member_added');
      expect(actions.slice(1, 3).sort()).toEqual(['invitation.accepted', 'member.added']);
      expect(actions[3]).toBe('invitation.created');
      const archiveEvent = await get(`/organizations/${globexId}/events?limit=1&action=workspace.archived`);
      expect(archiveEvent.body.items[0]).toMatchObject({ action: 'workspace.archived', actor: { email: 'demo@example.com' } });

      // Workspace access: the demo user, an owner, sees every workspace, the private ones too.
      const bySlug = Object.fromEntries(list.body.items.map((w: any) => [w.slug, w.id]));
      expect(Object.keys(bySlug)).toEqual(expect.arrayContaining(['design', 'finance', 'legal']));
      const finance = await get(`/workspaces/${bySlug.finance}/members`);
      expect(finance.status).toBe(200);
      expect(finance.body.items.map((m: any) => [m.email, m.role])).toEqual([
        ['demo-member@example.com', 'member'],
        ['demo-viewer@example.com', 'viewer'],
      ]);
      expect((await get(`/workspaces/${bySlug.finance}/access`)).body).toMatchObject({ role: 'admin', source: 'organization_role' });

      // The teammates see Globex's workspaces visible to it and Finance; not Legal (private), nor anything of Acme's.
      const login = async (email: string) => {
        const res = await fetch(`${base}/auth/login`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email, password: 'demo password' }),
        });
        expect(res.status).toBe(200);
        return ((await res.json()) as { access_token: string }).access_token;
      };
      const memberToken = await login('demo-member@example.com');
      const viewerToken = await login('demo-viewer@example.com');
      for (const [as, role] of [
        [memberToken, 'member'],
        [viewerToken, 'viewer'],
      ] as const) {
        const me = await get('/auth/me', as);
        expect(me.body.memberships).toEqual([{ organization_id: globexId, role: 'member' }]);
        expect(me.body.workspace_memberships).toEqual([{ workspace_id: bySlug.finance, organization_id: globexId, role }]);
        const theirs = await get('/workspaces?limit=100&sort=name', as);
        expect(theirs.body.items.map((w: any) => w.slug)).toEqual(['default', 'finance', 'operations']);
        expect((await get(`/workspaces/${bySlug.finance}`, as)).status).toBe(200);
        expect((await get(`/workspaces/${bySlug.finance}/access`, as)).body).toMatchObject({ role, source: 'workspace_member' });
        // Globex's default role is viewer: what a workspace visible to the organization gives them.
        expect((await get(`/workspaces/${bySlug.operations}/access`, as)).body).toMatchObject({
          role: 'viewer',
          source: 'organization_visibility',
        });
        expect((await get(`/workspaces/${bySlug.legal}`, as)).status).toBe(404);
        expect((await get(`/workspaces/${bySlug.design}`, as)).status).toBe(404);
        expect((await get(`/workspaces/${bySlug.platform}`, as)).status).toBe(404);
      }
      // The guest: Acme's Support and nothing else of Acme's, in no organization.
      const acmeId = platform.organization_id as string;
      const guestToken = await login('demo-guest@example.com');
      const guestMe = await get('/auth/me', guestToken);
      expect(guestMe.body.memberships).toEqual([]);
      expect(guestMe.body.workspace_memberships).toEqual([{ workspace_id: bySlug.support, organization_id: acmeId, role: 'member' }]);
      expect((await get('/workspaces?limit=100', guestToken)).body.items.map((w: any) => w.slug)).toEqual(['support']);
      expect((await get('/organizations', guestToken)).body.items).toEqual([]);
      expect((await get(`/organizations/${acmeId}`, guestToken)).status).toBe(404);
      expect((await get(`/workspaces/${bySlug.support}/access`, guestToken)).body).toMatchObject({
        role: 'member',
        source: 'workspace_member',
      });
      expect((await get(`/workspaces/${bySlug.marketing}`, guestToken)).status).toBe(404);
      const support = await get(`/workspaces/${bySlug.support}/members`);
      expect(support.body.items.map((m: any) => [m.email, m.role, m.guest])).toEqual([['demo-guest@example.com', 'member', true]]);

      // The invitation left pending, as its organization's admins list it.
      const pending = await get(`/organizations/${acmeId}/invitations?status=pending`);
      expect(pending.status).toBe(200);
      expect(pending.body.items).toEqual([
        expect.objectContaining({
          organization_id: acmeId,
          workspace_id: null,
          email: 'invitee@example.com',
          role: 'member',
          kind: 'member',
          status: 'pending',
          invited_by: me.body.user.id,
        }),
      ]);

      // A viewer may read Finance but not change it (403: it can see the workspace).
      const rename = await fetch(`${base}/workspaces/${bySlug.finance}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${viewerToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'Finance (renamed)' }),
      });
      expect(rename.status).toBe(403);
    } finally {
      await service.close();
    }
  });

  it(
    'completes a run that stopped between an invitation and its accept: the pending invitation is resent and accepted, none is added',
    async () => {
      // As a run that stopped there leaves it: the guest out of Support, with a pending invitation to it.
      const database = await openDatabase(loadConfig({ ...env, LOG_LEVEL: 'silent' }));
      const service = await serveApp(loadConfig({ ...env, LOG_LEVEL: 'silent' }), database, () => database.close());
      const call = async (method: string, path: string, body?: unknown) => {
        const res = await service.request(method, `/api/v1${path}`, { token, body });
        expect(res.status, res.text).toBeLessThan(300);
        return res.body;
      };
      const { support, guestId, pendingId } = await (async () => {
        try {
          const workspaces = await call('GET', '/workspaces?limit=100&q=support');
          const supportId: string = workspaces.items.find((w: any) => w.slug === 'support').id;
          const members = await call('GET', `/workspaces/${supportId}/members`);
          const guest: string = members.items.find((m: any) => m.email === 'demo-guest@example.com').user_id;
          await call('DELETE', `/workspaces/${supportId}/members/${guest}`);
          const invited = await call('POST', `/workspaces/${supportId}/invitations`, { email: 'demo-guest@example.com', role: 'member' });
          return { support: supportId, guestId: guest, pendingId: invited.invitation.id as string };
        } finally {
          await service.close();
        }
      })();

      const run = await seed();
      expect(run.stderr, run.stdout).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toContain('added now:     0 users, 0 organizations, 0 workspaces, 0 invitations');
      const [membership, invitation, events] = await withDatabase(async (db) => [
        await db.rows(sql`select role from workspace_members where workspace_id = ${support} and user_id = ${guestId}`),
        await db.rows(sql`select status, accepted_user_id from invitations where id = ${pendingId}`),
        await db.rows(sql`select action from audit_events where target_id = ${pendingId} order by created_at, id`),
      ]);
      expect(membership).toEqual([{ role: 'member' }]);
      expect(invitation).toEqual([{ status: 'accepted', accepted_user_id: guestId }]);
      // Created by hand above; resent by the seed (a token of its own), then accepted by the guest.
      expect(events.map((e) => e.action)).toEqual(['invitation.created', 'invitation.resent', 'invitation.accepted']);
    },
    SEED_TIMEOUT,
  );

  it(
    'refuses the embedded database while another process has it open, with one clear line, and leaves it as it was',
    async () => {
      // This process holds the data directory, as `npm start` would.
      const holder = await openDatabase(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent' }));
      try {
        // Seeded already on the embedded database; on PostgreSQL runs, an empty one of its own.
        await runMigrations(holder);
        const before = await contents(holder);
        const run = await runScript('scripts/seed.ts', [], { DATA_DIR: dataDir }, SEED_TIMEOUT);
        expect(run.code).toBe(1);
        expect(run.stdout).toBe('');
        expect(run.stderr.trim().split('\n')).toEqual([
          `npm run seed: The embedded database is in use by another process (pid ${process.pid}); stop it or set DATA_DIR to another directory. Stop the server (npm start) first, seed, then start it again.`,
        ]);
        expect(await contents(holder)).toEqual(before);
      } finally {
        await holder.close();
      }
    },
    SEED_TIMEOUT,
  );
});
