import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, uniqueEmail, type TestApp } from './helpers/app';
import { REPO_ROOT } from './helpers/process-helpers';

/**
 * The typed REST client, proven: types generated with openapi-typescript from the document
 * the running service serves, test/typed-clients/rest-client.ts (openapi-fetch) type-checked
 * against them with --strict, then run against the same service. A change to the document
 * that breaks REST callers fails the type check; a change in behaviour fails the run.
 */
const CLIENT = join(REPO_ROOT, 'test/typed-clients/rest-client.ts');

let app: TestApp;
let dir: string;
beforeAll(async () => {
  app = await startTestApp();
  dir = mkdtempSync(join(tmpdir(), 'typed-rest-client-'));
});
afterAll(async () => {
  await app?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Type-checks `files` with the generated types behind the module name `workspaces-rest-api`; returns the diagnostics as text. */
function typeCheck(generated: string, files: string[]): string[] {
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    noUncheckedIndexedAccess: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    lib: ['lib.es2024.d.ts', 'lib.dom.d.ts'],
    types: ['node'],
    typeRoots: [join(REPO_ROOT, 'node_modules/@types')],
    skipLibCheck: true,
    // The wrong caller lives in the temporary directory, beyond node_modules' reach.
    paths: { 'workspaces-rest-api': [generated], 'openapi-fetch': [join(REPO_ROOT, 'node_modules/openapi-fetch')] },
  };
  const program = ts.createProgram(files, options);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file || d.start === undefined) return text;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${d.file.fileName}:${line + 1}: ${text}`;
  });
}

describe('the typed REST client (openapi-typescript + openapi-fetch)', () => {
  let generated: string;

  it('generates types from the served /openapi.json', async () => {
    const res = await fetch(`${app.url}/openapi.json`);
    expect(res.status).toBe(200);
    const document = (await res.json()) as Parameters<typeof openapiTS>[0];
    generated = join(dir, 'workspaces-rest-api.d.ts');
    writeFileSync(generated, astToString(await openapiTS(document)));
  });

  it('type-checks the client against them with --strict, and would catch a caller the document does not allow', () => {
    // A caller that gets the contract wrong, so the check is known to bite: an unknown path,
    // a wrong path parameter, a body field that does not exist, a status code that is not an error code,
    // an `archived` filter and an audit action that do not exist, a workspace role that does not
    // exist, the access question's user under another name, and the retired add of a member by email.
    const wrong = join(dir, 'wrong-caller.ts');
    writeFileSync(
      wrong,
      [
        "import createClient from 'openapi-fetch';",
        "import type { paths, components } from 'workspaces-rest-api';",
        'const client = createClient<paths>({});',
        "void client.GET('/workspace/{workspace_id}', { params: { path: { workspace_id: 'x' } } });",
        "void client.GET('/workspaces/{workspace_id}', { params: { path: { id: 'x' } } });",
        "void client.POST('/workspaces', { body: { organisation_id: 'x', name: 'n' } });",
        "export const code: components['schemas']['Error']['code'] = 'PRECONDITION_FAILURE';",
        "void client.GET('/workspaces', { params: { query: { archived: 'yes' } } });",
        "void client.GET('/organizations/{org_id}/events', { params: { path: { org_id: 'x' }, query: { action: 'workspace.archive' } } });",
        "void client.POST('/workspaces/{workspace_id}/members', { params: { path: { workspace_id: 'x' } }, body: { user_id: 'x', role: 'owner' } });",
        "void client.GET('/workspaces/{workspace_id}/access', { params: { path: { workspace_id: 'x' }, query: { member_id: 'x' } } });",
        "void client.POST('/organizations/{org_id}/members', { params: { path: { org_id: 'x' } }, body: { email: 'x@example.com', role: 'member' } });",
        '',
      ].join('\n'),
    );
    const diagnostics = typeCheck(generated, [CLIENT, wrong]);
    const inClient = diagnostics.filter((d) => !d.startsWith(wrong));
    expect(inClient).toEqual([]);
    const lines = new Set(diagnostics.map((d) => /^[^:]+:(\d+):/.exec(d)?.[1]));
    expect([...lines].sort(), diagnostics.join('\n')).toEqual(['10', '11', '12', '4', '5', '6', '7', '8', '9']);
  }, 60_000);

  it('runs against the service: sign up, create, list with a cursor, clone, settings with If-Match, provision, a typed 412, governance, an invitation accepted, workspace access', async () => {
    const { runRestSession } = await import('./typed-clients/rest-client');
    const session = await runRestSession(app.url, uniqueEmail('typed'));

    expect(session.signupStatus).toBe(201);
    expect(session.created.status).toBe(201);
    expect(session.created.location).toBe(`/api/v1/workspaces/${session.created.workspace.id}`);
    expect(session.created.workspace).toMatchObject({ name: 'Platform', slug: 'platform', version: 1, metadata: { team: 'platform' } });
    expect(session.created.replayedStatus).toBe(201);
    expect(session.created.replayedId).toBe(session.created.workspace.id);
    expect(session.provisioned).toEqual({ status: 201, slugs: ['alpha', 'bravo', 'charlie', 'delta'] });
    // default, platform and four provisioned (the clone came later), two a page: every one once, in name order.
    expect(session.walk).toEqual({ slugs: ['alpha', 'bravo', 'charlie', 'default', 'delta', 'platform'], pages: 3 });
    expect(session.clone.status).toBe(201);
    expect(session.clone.workspace).toMatchObject({
      name: 'Platform (copy)',
      cloned_from_id: session.created.workspace.id,
      is_default: false,
      metadata: { team: 'platform' },
    });
    expect(session.settingsUpdate).toEqual({ status: 200, etagBefore: '"1"', etagAfter: '"2"', version: 2, slackEnabled: true });
    expect(session.stale).toMatchObject({ status: 412, code: 'PRECONDITION_FAILED' });
    expect(session.afterStale).toEqual({ version: 2, etag: '"2"', slackChannel: '#platform' });

    // Governance: the lock, the write it refuses, archive and restore, the audit trail.
    const g = session.governance;
    expect(g.locks).toEqual(['features.beta', 'permissions.allow_guests']);
    expect(g.lockedRead).toEqual({
      locked: ['features.beta', 'permissions.allow_guests'],
      shadowed: ['features.beta'],
      sources: { allowGuests: 'organization', beta: 'organization' },
      effectiveBeta: false,
      overrideBeta: true,
    });
    expect(g.lockedWrite).toEqual({
      status: 409,
      code: 'CONFLICT',
      message: 'Locked by the organization: permissions.allow_guests',
      issuePaths: ['permissions.allow_guests'],
    });
    const cloneId = session.clone.workspace.id;
    expect(g.archived).toMatchObject({ status: 200, etag: '"2"', version: 2 });
    expect(Date.parse(g.archived.archivedAt ?? '')).not.toBeNaN();
    expect(g.archivedWrite).toEqual({ status: 409, code: 'CONFLICT', message: 'Workspace is archived; restore it first' });
    expect(g.lists).toEqual({
      active: ['alpha', 'bravo', 'charlie', 'default', 'delta', 'platform'],
      archived: ['platform-copy'],
      all: ['alpha', 'bravo', 'charlie', 'default', 'delta', 'platform', 'platform-copy'],
    });
    expect(g.restored).toEqual({ status: 200, etag: '"3"', version: 3, archivedAt: null });

    // Newest first: this session's changes in order, then the batch and the signup (each one transaction, in any order within).
    const actions = g.organizationEvents.map((e) => e.action);
    expect(actions.slice(0, 5)).toEqual([
      'workspace.restored',
      'workspace.archived',
      'organization.settings_updated',
      'workspace.settings_updated',
      'workspace.cloned',
    ]);
    expect([...actions].sort()).toEqual(
      [
        ...['organization.created', 'member.added', 'workspace.created'],
        'workspace.created',
        ...['workspace.created', 'workspace.created', 'workspace.created', 'workspace.created', 'workspaces.provisioned'],
        'workspace.cloned',
        'workspace.settings_updated',
        'organization.settings_updated',
        'workspace.archived',
        'workspace.restored',
      ].sort(),
    );
    const lockEvent = g.organizationEvents.find((e) => e.action === 'organization.settings_updated');
    expect(lockEvent).toMatchObject({
      organization_id: session.organizationId,
      workspace_id: null,
      target_type: 'organization',
      target_id: session.organizationId,
      changes: {
        'settings.features.beta': { from: null, to: false },
        locks: { from: [], to: ['features.beta', 'permissions.allow_guests'] },
      },
    });
    expect(g.archivedEvents).toHaveLength(1);
    expect(g.archivedEvents[0]).toMatchObject({
      workspace_id: cloneId,
      target_type: 'workspace',
      target_id: cloneId,
      changes: { archived_at: { from: null, to: g.archived.archivedAt } },
    });
    expect(g.workspaceEvents.map((e) => e.action)).toEqual(['workspace.restored', 'workspace.archived', 'workspace.cloned']);
    expect(new Set(g.workspaceEvents.map((e) => e.workspace_id))).toEqual(new Set([cloneId]));

    // What a plain follow-up GET and the database show.
    const workspace = await app.request('GET', `/api/v1/workspaces/${session.created.workspace.id}`, { token: session.token });
    expect(workspace.status).toBe(200);
    expect(workspace.body).toMatchObject({ version: 2, name: 'Platform' });
    const rows = await app.query<{ slug: string }>('select slug from workspaces where organization_id = $1 order by slug', [
      session.organizationId,
    ]);
    expect(rows.map((r) => r.slug)).toEqual([
      'alpha',
      'bravo',
      'charlie',
      'default',
      'delta',
      'platform',
      'platform-copy',
      'private-plans',
    ]);
    const [copy] = await app.query<{ version: number; archived_at: unknown }>('select version, archived_at from workspaces where id = $1', [
      session.clone.workspace.id,
    ]);
    expect(copy).toEqual({ version: 3, archived_at: null });
    const [org] = await app.query<{ settings_locks: unknown }>('select settings_locks from organizations where id = $1', [
      session.organizationId,
    ]);
    expect(org!.settings_locks).toEqual(['features.beta', 'permissions.allow_guests']);

    // Workspace access: a private workspace, a teammate made its viewer, then its admin, then leaving.
    const a = session.access;
    const ws = a.workspaceId;
    const teammate = a.teammateId;
    // The teammate joined the organization by invitation: invited (the token once, 43 characters), then accepted.
    expect(a.invited).toMatchObject({
      status: 201,
      location: `/api/v1/invitations/${a.invited.invitation.id}`,
      tokenLength: 43,
      invitation: { organization_id: session.organizationId, workspace_id: null, role: 'member', kind: 'member', status: 'pending' },
    });
    expect(a.invited.invitation.email).toMatch(/\+teammate@example\.com$/);
    expect(a.accepted).toEqual({
      status: 200,
      invitation: { ...a.invited.invitation, status: 'accepted', accepted_at: expect.any(String), accepted_user_id: teammate },
      membership: { organization_id: session.organizationId, workspace_id: null, user_id: teammate, role: 'member', guest: false },
    });
    const [invitationRow] = await app.query<{ status: string; accepted_user_id: string }>(
      'select status, accepted_user_id from invitations where id = $1',
      [a.invited.invitation.id],
    );
    expect(invitationRow).toEqual({ status: 'accepted', accepted_user_id: teammate });
    const [membershipRow] = await app.query<{ role: string }>('select role from memberships where organization_id = $1 and user_id = $2', [
      session.organizationId,
      teammate,
    ]);
    expect(membershipRow).toEqual({ role: 'member' });
    expect(a.madePrivate).toEqual({ status: 200, visibility: 'private' });
    expect(a.hiddenBefore).toEqual({ status: 404, code: 'NOT_FOUND' });
    expect(a.teammateAccessBefore).toEqual({
      status: 200,
      access: { workspace_id: ws, user_id: teammate, role: null, source: null, guest: false },
    });
    expect(a.added.status).toBe(201);
    expect(a.added.location).toBe(`/api/v1/workspaces/${ws}/members/${teammate}`);
    expect(a.added.member).toMatchObject({ user_id: teammate, name: 'Teammate', role: 'viewer' });
    expect(a.added.member.email).toMatch(/\+teammate@example\.com$/);
    expect(a.listed).toEqual({ status: 200, members: [a.added.member], nextCursor: null });
    expect(a.fetched).toEqual({ status: 200, member: a.added.member });
    expect(a.viewerAccess).toEqual({
      status: 200,
      access: { workspace_id: ws, user_id: teammate, role: 'viewer', source: 'workspace_member', guest: false },
    });
    expect(a.viewerRename).toEqual({ status: 403, code: 'FORBIDDEN' });
    expect(a.updated).toEqual({ status: 200, member: { ...a.added.member, role: 'admin' } });
    expect(a.adminAccess).toEqual({
      status: 200,
      access: { workspace_id: ws, user_id: teammate, role: 'admin', source: 'workspace_member', guest: false },
    });
    expect(a.adminRename).toEqual({ status: 200, name: 'Private plans (2027)' });
    expect(a.teammateMemberships).toEqual([{ workspace_id: ws, organization_id: session.organizationId, role: 'admin' }]);
    expect(a.left).toEqual({ status: 204 });
    expect(a.hiddenAfter).toEqual({ status: 404, code: 'NOT_FOUND' });
    expect(a.membersAfter).toEqual([]);
    const [owner] = await app.query<{ id: string }>('select user_id as id from memberships where organization_id = $1 and role = $2', [
      session.organizationId,
      'owner',
    ]);
    expect(a.ownerAccess).toEqual({
      status: 200,
      access: { workspace_id: ws, user_id: owner!.id, role: 'admin', source: 'organization_role', guest: false },
    });
    expect(a.events).toEqual([
      'workspace.member_removed',
      'workspace.updated',
      'workspace.member_role_changed',
      'workspace.member_added',
      'workspace.settings_updated',
      'workspace.created',
    ]);
    // What the database holds: the workspace private, and no membership left.
    const [stored] = await app.query<{ effective_visibility: string; name: string }>(
      'select effective_visibility, name from workspaces where id = $1',
      [ws],
    );
    expect(stored).toEqual({ effective_visibility: 'private', name: 'Private plans (2027)' });
    expect(await app.query('select user_id from workspace_members where workspace_id = $1', [ws])).toEqual([]);
  });
});
