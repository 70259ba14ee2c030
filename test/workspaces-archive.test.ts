import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type ApiResponse, type TestApp } from './helpers/app';
import {
  createOrganizationFor,
  createWorkspace,
  teamOf,
  uniqueWorkspaceName,
  workspaceCount,
  type Team,
} from './helpers/workspace-helpers';
import { walkPages } from './helpers/org-helpers';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';
import { isoSql } from './helpers/sql';
import { ISO_MS_PATTERN, UNKNOWN_UUID } from './helpers/values';

/**
 * POST /workspaces/{id}/archive and /restore (workspaces.archive / workspaces.restore over tRPC):
 * the answer, the version, the conditions, the default workspace, the read-only rule, slugs,
 * delete, and the `archived` filter of the lists.
 */

let app: TestApp;
let team: Team;

beforeAll(async () => {
  app = await startTestApp();
  team = await teamOf(app);
});
afterAll(async () => {
  await app?.close();
});

/** A workspace as the API returns it, with the field this feature adds. */
interface Ws {
  id: string;
  organization_id: string;
  name: string;
  slug: string;
  description: string | null;
  metadata: Record<string, string>;
  is_default: boolean;
  cloned_from_id: string | null;
  version: number;
  archived_at: string | null;
  created_at: string;
  updated_at: string;
}

/** The workspace's row as stored (timestamps rendered the API's way), or null when gone. */
interface Row {
  id: string;
  organization_id: string;
  name: string;
  slug: string;
  description: string | null;
  metadata: Record<string, string>;
  settings: Record<string, unknown>;
  is_default: boolean;
  version: number;
  archived_at: string | null;
  updated_at: string;
}

async function row(id: string): Promise<Row | null> {
  const [r] = await app.query<Row>(
    `select id, organization_id, name, slug, description, metadata, settings, is_default, version,
            ${isoSql('archived_at')} as archived_at, ${isoSql('updated_at')} as updated_at
       from workspaces where id = $1`,
    [id],
  );
  return r ?? null;
}

/** Every workspace row of an organization, by id: what a refused call must leave as it was. */
const orgRows = (organizationId: string) =>
  app.query(
    `select id, name, slug, description, metadata, settings, is_default, version, archived_at, updated_at
       from workspaces where organization_id = $1 order by id`,
    [organizationId],
  );

/** Events of one action about one workspace. */
async function eventCount(workspaceId: string, action: string): Promise<number> {
  const [r] = await app.query<{ n: number }>('select count(*)::int as n from audit_events where target_id = $1 and action = $2', [
    workspaceId,
    action,
  ]);
  return r!.n;
}

const wsPath = (id: string) => `/api/v1/workspaces/${id}`;

interface CallOptions {
  token?: string;
  headers?: Record<string, string>;
  body?: unknown;
}
/**
 * POST …/archive, as the team's admin unless told otherwise (a `token: undefined` sends none),
 * with the body `{}` unless told otherwise (`body: undefined` sends no body and no Content-Type).
 */
const archive = (id: string, options: CallOptions = {}) =>
  app.request<Ws>('POST', `${wsPath(id)}/archive`, { token: team.admin.token, body: {}, ...options });
const restore = (id: string, options: CallOptions = {}) =>
  app.request<Ws>('POST', `${wsPath(id)}/restore`, { token: team.admin.token, body: {}, ...options });

const FIXTURE = { description: 'kept', metadata: { keep: 'yes' }, settings: { features: { kept: true } } };

/** A new active workspace of the team's organization, at version 1. */
const fresh = async (body: Record<string, unknown> = {}) =>
  await createWorkspace(app, team.owner.token, team.organizationId, { ...FIXTURE, ...body });

/** A new workspace of the team's organization, archived (version 2). */
async function archivedWorkspace(body: Record<string, unknown> = {}, organizationId = team.organizationId): Promise<Ws> {
  const ws = await createWorkspace(app, team.owner.token, organizationId, { ...FIXTURE, ...body });
  const res = await archive(ws.id, { token: team.owner.token });
  expect(res.status, res.text).toBe(200);
  expect(res.body.archived_at).not.toBeNull();
  return res.body;
}

/** The organization's default workspace, as stored now. */
async function defaultOf(organizationId: string): Promise<string> {
  const rows = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and is_default', [organizationId]);
  expect(rows).toHaveLength(1);
  return rows[0]!.id;
}

/** Asserts a 409 CONFLICT whose message says the workspace is archived. */
function expectArchivedConflict(res: ApiResponse): void {
  expectApiError(res, 409, 'CONFLICT');
  expect(res.body.message).toMatch(/archived/i);
}

/** Asserts the answer of a successful archive or restore: 200, the fields, the ETag of the new version. */
function expectWorkspaceAnswer(res: ApiResponse<Ws>, expected: { id: string; version: number; archived: boolean }): void {
  expect(res.status, res.text).toBe(200);
  expect(res.body).toMatchObject({ id: expected.id, version: expected.version });
  expect(res.headers.get('etag')).toBe(`"${expected.version}"`);
  if (expected.archived) expect(res.body.archived_at).toMatch(ISO_MS_PATTERN);
  else expect(res.body.archived_at).toBeNull();
}

describe('POST /workspaces/{id}/archive', () => {
  it('archives: 200, archived_at set, version + 1, the new ETag; the row is archived and otherwise unchanged', async () => {
    const ws = await fresh();
    expect(ws.archived_at).toBeNull();
    const before = await row(ws.id);
    expect(before).toMatchObject({ archived_at: null, version: 1 });

    const startedAt = Date.now();
    const res = await archive(ws.id);
    const endedAt = Date.now();

    expectWorkspaceAnswer(res, { id: ws.id, version: 2, archived: true });
    expect(res.body).toMatchObject({
      organization_id: team.organizationId,
      name: ws.name,
      slug: ws.slug,
      description: 'kept',
      metadata: { keep: 'yes' },
      is_default: false,
    });
    const archivedAt = Date.parse(res.body.archived_at!);
    expect(archivedAt).toBeGreaterThanOrEqual(startedAt - 1000);
    expect(archivedAt).toBeLessThanOrEqual(endedAt + 1000);

    const after = await row(ws.id);
    expect(after).toMatchObject({
      archived_at: res.body.archived_at,
      version: 2,
      name: ws.name,
      slug: ws.slug,
      description: 'kept',
      metadata: { keep: 'yes' },
      settings: { features: { kept: true } },
      is_default: false,
    });
    expect(after!.archived_at).not.toBeNull();

    // A read answers the same workspace and ETag.
    const read = await app.request<Ws>('GET', wsPath(ws.id), { token: team.member.token });
    expect(read.status, read.text).toBe(200);
    expect(read.body).toEqual(res.body);
    expect(read.headers.get('etag')).toBe('"2"');
  });

  it('archives over tRPC (workspaces.archive): archived_at set, version + 1, the row archived', async () => {
    const ws = await fresh();

    const answer = await app.trpc(team.admin.token).workspaces.archive.mutate({ workspace_id: ws.id });

    expect(answer).toMatchObject({ id: ws.id, version: 2, name: ws.name, slug: ws.slug });
    expect(answer.archived_at).toMatch(ISO_MS_PATTERN);
    expect(await row(ws.id)).toMatchObject({ archived_at: answer.archived_at, version: 2 });
    const read = await app.trpc(team.member.token).workspaces.get.query({ workspace_id: ws.id });
    expect(read).toEqual(answer);
  });

  it('takes no body at all (no Content-Type, as a plain `curl -X POST` sends) for archive and restore', async () => {
    const ws = await fresh();

    const archived = await archive(ws.id, { body: undefined, headers: { 'if-match': '"1"' } });
    expectWorkspaceAnswer(archived, { id: ws.id, version: 2, archived: true });
    expect(await row(ws.id)).toMatchObject({ version: 2, archived_at: archived.body.archived_at });

    const restored = await restore(ws.id, { body: undefined });
    expectWorkspaceAnswer(restored, { id: ws.id, version: 3, archived: false });
    expect(await row(ws.id)).toMatchObject({ version: 3, archived_at: null });
  });

  it('takes an optional body: {} and {"expected_version": <current>} both archive', async () => {
    const a = await fresh();
    const b = await fresh();

    const withEmpty = await archive(a.id, { body: {} });
    const withVersion = await archive(b.id, { body: { expected_version: 1 } });

    expectWorkspaceAnswer(withEmpty, { id: a.id, version: 2, archived: true });
    expectWorkspaceAnswer(withVersion, { id: b.id, version: 2, archived: true });
    expect(await row(a.id)).toMatchObject({ version: 2, archived_at: withEmpty.body.archived_at });
    expect(await row(b.id)).toMatchObject({ version: 2, archived_at: withVersion.body.archived_at });
  });

  it('answers 400 to an unknown field or a string expected_version in the body, and changes nothing', async () => {
    const ws = await fresh();
    const before = await row(ws.id);

    expectIssueAt(await archive(ws.id, { body: { reason: 'tidy' } }), 'reason');
    expectApiError(await archive(ws.id, { body: { expected_version: '1' } }), 400, 'BAD_REQUEST');
    await expectTrpcFailure(
      app.trpc(team.admin.token).workspaces.archive.mutate({ workspace_id: ws.id, reason: 'tidy' } as never),
      400,
      'BAD_REQUEST',
    );

    expect(await row(ws.id)).toEqual(before);
  });

  it('answers 200 with the same version to archiving an archived workspace, changes nothing and writes no event (both faces)', async () => {
    const ws = await archivedWorkspace();
    const before = await row(ws.id);
    expect(await eventCount(ws.id, 'workspace.archived')).toBe(1);

    const again = await archive(ws.id);
    expectWorkspaceAnswer(again, { id: ws.id, version: 2, archived: true });
    expect(again.body.archived_at).toBe(ws.archived_at);
    const overTrpc = await app.trpc(team.admin.token).workspaces.archive.mutate({ workspace_id: ws.id });
    expect(overTrpc).toMatchObject({ id: ws.id, version: 2, archived_at: ws.archived_at });

    expect(await row(ws.id)).toEqual(before);
    expect(await eventCount(ws.id, 'workspace.archived')).toBe(1);
  });

  it('answers 409 to archiving the default workspace (both faces, even with a current If-Match), and changes nothing', async () => {
    const defaultId = await defaultOf(team.organizationId);
    const before = await row(defaultId);
    expect(before).toMatchObject({ is_default: true, archived_at: null });

    expectApiError(await archive(defaultId), 409, 'CONFLICT');
    expectApiError(await archive(defaultId, { token: team.owner.token, headers: { 'if-match': `"${before!.version}"` } }), 409, 'CONFLICT');
    await expectTrpcFailure(app.trpc(team.owner.token).workspaces.archive.mutate({ workspace_id: defaultId }), 409, 'CONFLICT');

    expect(await row(defaultId)).toEqual(before);
    expect(await defaultOf(team.organizationId)).toBe(defaultId);
    expect(await eventCount(defaultId, 'workspace.archived')).toBe(0);
  });
});

describe('POST /workspaces/{id}/restore', () => {
  it('restores: 200, archived_at null, version + 1, the new ETag; the row is active again with its data', async () => {
    const ws = await archivedWorkspace();

    const res = await restore(ws.id);

    expectWorkspaceAnswer(res, { id: ws.id, version: 3, archived: false });
    expect(res.body).toMatchObject({ name: ws.name, slug: ws.slug, description: 'kept', metadata: { keep: 'yes' }, is_default: false });
    expect(await row(ws.id)).toMatchObject({
      archived_at: null,
      version: 3,
      slug: ws.slug,
      description: 'kept',
      metadata: { keep: 'yes' },
      settings: { features: { kept: true } },
    });
    const read = await app.request<Ws>('GET', wsPath(ws.id), { token: team.member.token });
    expect(read.body).toEqual(res.body);
    expect(read.headers.get('etag')).toBe('"3"');
  });

  it('restores over tRPC (workspaces.restore)', async () => {
    const ws = await archivedWorkspace();

    const answer = await app.trpc(team.owner.token).workspaces.restore.mutate({ workspace_id: ws.id });

    expect(answer).toMatchObject({ id: ws.id, version: 3, archived_at: null });
    expect(await row(ws.id)).toMatchObject({ archived_at: null, version: 3 });
  });

  it('answers 200 with the same version to restoring an active workspace, changes nothing and writes no event (both faces)', async () => {
    const ws = await fresh();
    const before = await row(ws.id);

    const res = await restore(ws.id);
    expectWorkspaceAnswer(res, { id: ws.id, version: 1, archived: false });
    const overTrpc = await app.trpc(team.admin.token).workspaces.restore.mutate({ workspace_id: ws.id });
    expect(overTrpc).toMatchObject({ id: ws.id, version: 1, archived_at: null });

    expect(await row(ws.id)).toEqual(before);
    expect(await eventCount(ws.id, 'workspace.restored')).toBe(0);
  });

  it('lets an archive, restore, archive cycle run, each step bumping the version', async () => {
    const ws = await fresh();
    expectWorkspaceAnswer(await archive(ws.id, { headers: { 'if-match': '"1"' } }), { id: ws.id, version: 2, archived: true });
    expectWorkspaceAnswer(await restore(ws.id, { headers: { 'if-match': '"2"' } }), { id: ws.id, version: 3, archived: false });
    const last = await archive(ws.id, { body: { expected_version: 3 } });
    expectWorkspaceAnswer(last, { id: ws.id, version: 4, archived: true });
    expect(await row(ws.id)).toMatchObject({ version: 4, archived_at: last.body.archived_at });
    expect(await eventCount(ws.id, 'workspace.archived')).toBe(2);
    expect(await eventCount(ws.id, 'workspace.restored')).toBe(1);
  });
});

describe('archive and restore: If-Match and expected_version', () => {
  it('answers 412 to a stale If-Match or expected_version on archive (REST and tRPC), and changes nothing', async () => {
    const ws = await fresh();
    const before = await row(ws.id);

    expectApiError(await archive(ws.id, { headers: { 'if-match': '"7"' } }), 412, 'PRECONDITION_FAILED');
    expectApiError(await archive(ws.id, { headers: { 'if-match': '"2", "3"' } }), 412, 'PRECONDITION_FAILED');
    expectApiError(await archive(ws.id, { headers: { 'if-match': 'W/"1"' } }), 412, 'PRECONDITION_FAILED');
    expectApiError(await archive(ws.id, { body: { expected_version: 5 } }), 412, 'PRECONDITION_FAILED');
    await expectTrpcFailure(
      app.trpc(team.admin.token).workspaces.archive.mutate({ workspace_id: ws.id, expected_version: 9 }),
      412,
      'PRECONDITION_FAILED',
    );

    expect(await row(ws.id)).toEqual(before);
    expect(await eventCount(ws.id, 'workspace.archived')).toBe(0);
  });

  it('archives under a current If-Match (a list holding it, or *) and a current tRPC expected_version', async () => {
    const [a, b, c] = [await fresh(), await fresh(), await fresh()];

    expectWorkspaceAnswer(await archive(a.id, { headers: { 'if-match': '"7", "1"' } }), { id: a.id, version: 2, archived: true });
    expectWorkspaceAnswer(await archive(b.id, { headers: { 'if-match': '*' } }), { id: b.id, version: 2, archived: true });
    const answer = await app.trpc(team.admin.token).workspaces.archive.mutate({ workspace_id: c.id, expected_version: 1 });
    expect(answer).toMatchObject({ version: 2 });

    for (const id of [a.id, b.id, c.id]) {
      const r = await row(id);
      expect(r!.version).toBe(2);
      expect(r!.archived_at).not.toBeNull();
    }
  });

  it('answers 412 to a stale If-Match or expected_version on restore (REST and tRPC), and leaves it archived', async () => {
    const ws = await archivedWorkspace();
    const before = await row(ws.id);

    expectApiError(await restore(ws.id, { headers: { 'if-match': '"1"' } }), 412, 'PRECONDITION_FAILED');
    expectApiError(await restore(ws.id, { body: { expected_version: 1 } }), 412, 'PRECONDITION_FAILED');
    await expectTrpcFailure(
      app.trpc(team.admin.token).workspaces.restore.mutate({ workspace_id: ws.id, expected_version: 1 }),
      412,
      'PRECONDITION_FAILED',
    );

    expect(await row(ws.id)).toEqual(before);
    expect(before!.archived_at).not.toBeNull();
    expect(await eventCount(ws.id, 'workspace.restored')).toBe(0);
  });

  it('answers 400 to a malformed If-Match, or one naming another version than expected_version, on archive and restore', async () => {
    const active = await fresh();
    const archived = await archivedWorkspace();
    const before = [await row(active.id), await row(archived.id)];

    for (const header of ['1', '"1', 'abc', '"1",,']) {
      expectApiError(await archive(active.id, { headers: { 'if-match': header } }), 400, 'BAD_REQUEST');
      expectApiError(await restore(archived.id, { headers: { 'if-match': header } }), 400, 'BAD_REQUEST');
    }
    expectApiError(await archive(active.id, { headers: { 'if-match': '"1"' }, body: { expected_version: 2 } }), 400, 'BAD_REQUEST');
    expectApiError(await restore(archived.id, { headers: { 'if-match': '"2"' }, body: { expected_version: 1 } }), 400, 'BAD_REQUEST');

    expect([await row(active.id), await row(archived.id)]).toEqual(before);
  });
});

describe('an archived workspace is read-only', () => {
  it('answers 409 "archived" to PUT of the workspace (REST and tRPC), and changes nothing', async () => {
    const ws = await archivedWorkspace();
    const before = await row(ws.id);

    expectArchivedConflict(await app.request('PUT', wsPath(ws.id), { token: team.admin.token, body: { description: 'changed' } }));
    expectArchivedConflict(
      await app.request('PUT', wsPath(ws.id), { token: team.owner.token, headers: { 'if-match': '"2"' }, body: { name: 'Renamed' } }),
    );
    const error = await expectTrpcFailure(
      app.trpc(team.admin.token).workspaces.update.mutate({ workspace_id: ws.id, metadata: { keep: null } }),
      409,
      'CONFLICT',
    );
    expect(error.message).toMatch(/archived/i);

    expect(await row(ws.id)).toEqual(before);
  });

  it('answers 409 "archived" to PUT of its settings (REST and tRPC), and changes nothing', async () => {
    const ws = await archivedWorkspace();
    const before = await row(ws.id);

    expectArchivedConflict(
      await app.request('PUT', `${wsPath(ws.id)}/settings`, { token: team.admin.token, body: { features: { kept: null, added: true } } }),
    );
    const error = await expectTrpcFailure(
      app.trpc(team.admin.token).workspaces.updateSettings.mutate({ workspace_id: ws.id, features: { added: true } }),
      409,
      'CONFLICT',
    );
    expect(error.message).toMatch(/archived/i);

    expect(await row(ws.id)).toEqual(before);
    expect(before!.settings).toEqual({ features: { kept: true } });
  });

  it('answers 409 "archived" to making it the default (REST and tRPC); the default stays where it was', async () => {
    const ws = await archivedWorkspace();
    const defaultId = await defaultOf(team.organizationId);
    const before = [await row(ws.id), await row(defaultId)];

    expectArchivedConflict(await app.request('PUT', wsPath(ws.id), { token: team.owner.token, body: { is_default: true } }));
    const error = await expectTrpcFailure(
      app.trpc(team.owner.token).workspaces.update.mutate({ workspace_id: ws.id, is_default: true }),
      409,
      'CONFLICT',
    );
    expect(error.message).toMatch(/archived/i);

    expect(await defaultOf(team.organizationId)).toBe(defaultId);
    expect([await row(ws.id), await row(defaultId)]).toEqual(before);
  });

  it('still answers GET, GET settings and GET events (200), to a plain member too', async () => {
    const ws = await archivedWorkspace();

    const read = await app.request<Ws>('GET', wsPath(ws.id), { token: team.member.token });
    expect(read.status, read.text).toBe(200);
    expect(read.body).toEqual(ws);
    expect(read.headers.get('etag')).toBe('"2"');

    const settings = await app.request('GET', `${wsPath(ws.id)}/settings`, { token: team.member.token });
    expect(settings.status, settings.text).toBe(200);
    expect(settings.body).toMatchObject({ workspace_id: ws.id, version: 2, overrides: { features: { kept: true } } });
    expect(settings.body.effective.features).toEqual({ kept: true });
    expect(settings.headers.get('etag')).toBe('"2"');

    const overTrpc = await app.trpc(team.member.token).workspaces.getSettings.query({ workspace_id: ws.id });
    expect(overTrpc).toEqual(settings.body);

    const events = await app.request('GET', `${wsPath(ws.id)}/events`, { token: team.member.token });
    expect(events.status, events.text).toBe(200);
    expect((events.body.items as Array<{ action: string; workspace_id: string }>).some((e) => e.action === 'workspace.archived')).toBe(
      true,
    );
    for (const event of events.body.items as Array<{ workspace_id: string }>) expect(event.workspace_id).toBe(ws.id);

    expect(await row(ws.id)).toMatchObject({ version: 2, archived_at: ws.archived_at });
  });

  it('takes writes again once restored', async () => {
    const ws = await archivedWorkspace();
    expectWorkspaceAnswer(await restore(ws.id), { id: ws.id, version: 3, archived: false });

    const res = await app.request<Ws>('PUT', wsPath(ws.id), { token: team.admin.token, body: { description: 'after restore' } });

    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ description: 'after restore', version: 4, archived_at: null });
    expect(await row(ws.id)).toMatchObject({ description: 'after restore', version: 4, archived_at: null });
  });
});

describe('an archived workspace as a source', () => {
  it('can be cloned from (201, REST and tRPC): the clone is active, the source stays archived and unchanged', async () => {
    const source = await archivedWorkspace();
    const before = await row(source.id);
    const name = uniqueWorkspaceName('From archived');

    const res = await app.request<Ws>('POST', `${wsPath(source.id)}/clone`, { token: team.admin.token, body: { name } });

    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('location')).toBe(wsPath(res.body.id));
    expect(res.body).toMatchObject({
      organization_id: team.organizationId,
      name,
      description: 'kept',
      metadata: { keep: 'yes' },
      cloned_from_id: source.id,
      archived_at: null,
      version: 1,
      is_default: false,
    });
    expect(await row(res.body.id)).toMatchObject({ name, archived_at: null, settings: { features: { kept: true } }, version: 1 });

    const name2 = uniqueWorkspaceName('From archived tRPC');
    const viaTrpc = await app.trpc(team.admin.token).workspaces.clone.mutate({ workspace_id: source.id, name: name2 });
    expect(viaTrpc).toMatchObject({ name: name2, cloned_from_id: source.id, archived_at: null });
    expect(await row(viaTrpc.id)).toMatchObject({ name: name2, archived_at: null });

    expect(await row(source.id)).toEqual(before);
  });

  it('can be a provisioning template (201): the new workspaces are active and take its fields; the template is unchanged', async () => {
    const template = await archivedWorkspace({ description: 'template text', metadata: { from: 'template' } });
    const before = await row(template.id);
    const names = [uniqueWorkspaceName('Prov A'), uniqueWorkspaceName('Prov B')];

    const res = await app.request('POST', '/api/v1/workspaces/provision', {
      token: team.admin.token,
      body: { organization_id: team.organizationId, template_workspace_id: template.id, workspaces: names.map((name) => ({ name })) },
    });

    expect(res.status, res.text).toBe(201);
    expect(res.body.failed).toEqual([]);
    expect(res.body.created).toHaveLength(2);
    for (const [i, created] of (res.body.created as Ws[]).entries()) {
      expect(created).toMatchObject({ name: names[i], description: 'template text', metadata: { from: 'template' }, archived_at: null });
      expect(await row(created.id)).toMatchObject({
        name: names[i],
        archived_at: null,
        description: 'template text',
        settings: { features: { kept: true } },
      });
    }
    expect(await row(template.id)).toEqual(before);
  });
});

describe('an archived workspace keeps its slug', () => {
  it('answers 409 to a create or a rename to its slug; nothing is created or changed', async () => {
    const ws = await archivedWorkspace();
    const other = await fresh();
    const before = await orgRows(team.organizationId);
    const count = await workspaceCount(app, team.organizationId);

    const create = await app.request('POST', '/api/v1/workspaces', {
      token: team.admin.token,
      body: { organization_id: team.organizationId, name: 'Slug thief', slug: ws.slug },
    });
    expectApiError(create, 409, 'CONFLICT');
    expectApiError(await app.request('PUT', wsPath(other.id), { token: team.admin.token, body: { slug: ws.slug } }), 409, 'CONFLICT');
    const provision = await app.request('POST', '/api/v1/workspaces/provision', {
      token: team.admin.token,
      body: { organization_id: team.organizationId, mode: 'partial', workspaces: [{ name: 'Slug thief 2', slug: ws.slug }] },
    });
    expect(provision.status, provision.text).toBe(201);
    expect(provision.body.created).toEqual([]);
    expect(provision.body.failed).toMatchObject([{ index: 0, code: 'CONFLICT' }]);

    expect(await workspaceCount(app, team.organizationId)).toBe(count);
    expect(await orgRows(team.organizationId)).toEqual(before);
    expect(await app.query('select id from workspaces where name like $1', ['Slug thief%'])).toEqual([]);
  });

  it('makes a derived slug from the same name skip it (create and provisioning), and restore without conflict', async () => {
    const ws = await archivedWorkspace();

    const created = await app.request<Ws>('POST', '/api/v1/workspaces', {
      token: team.admin.token,
      body: { organization_id: team.organizationId, name: ws.name },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.slug).not.toBe(ws.slug);
    expect(created.body.slug.startsWith(`${ws.slug}-`)).toBe(true);
    const provisioned = await app.request('POST', '/api/v1/workspaces/provision', {
      token: team.admin.token,
      body: { organization_id: team.organizationId, workspaces: [{ name: ws.name }] },
    });
    expect(provisioned.status, provisioned.text).toBe(201);
    const provisionedSlug = provisioned.body.created[0].slug as string;
    expect([ws.slug, created.body.slug]).not.toContain(provisionedSlug);

    expectWorkspaceAnswer(await restore(ws.id), { id: ws.id, version: 3, archived: false });

    const slugs = await app.query<{ id: string; slug: string }>(
      'select id, slug from workspaces where organization_id = $1 and name = $2',
      [team.organizationId, ws.name],
    );
    expect(new Set(slugs.map((s) => s.slug)).size).toBe(3);
    expect(slugs.find((s) => s.id === ws.id)!.slug).toBe(ws.slug);
    expect(await row(ws.id)).toMatchObject({ archived_at: null, slug: ws.slug });
  });
});

describe('DELETE of an archived workspace', () => {
  it('deletes it (204, REST and tRPC): the row goes and its slug is free again', async () => {
    const ws = await archivedWorkspace();
    const other = await archivedWorkspace();

    const res = await app.request('DELETE', wsPath(ws.id), { token: team.admin.token });

    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe('');
    expect(await row(ws.id)).toBeNull();
    const reuse = await app.request<Ws>('POST', '/api/v1/workspaces', {
      token: team.admin.token,
      body: { organization_id: team.organizationId, name: 'Slug reused', slug: ws.slug },
    });
    expect(reuse.status, reuse.text).toBe(201);
    expect(await row(reuse.body.id)).toMatchObject({ slug: ws.slug, archived_at: null });

    await app.trpc(team.admin.token).workspaces.delete.mutate({ workspace_id: other.id });
    expect(await row(other.id)).toBeNull();
  });
});

describe('who may archive and restore', () => {
  it("answers 404 to another tenant's archive or restore, whatever If-Match says (REST and tRPC), and changes nothing", async () => {
    const active = await fresh();
    const archived = await archivedWorkspace();
    const before = await orgRows(team.organizationId);
    const outsider = team.outsider.token;

    for (const headers of [undefined, { 'if-match': '"1"' }, { 'if-match': 'garbage' }]) {
      expectApiError(await archive(active.id, { token: outsider, headers }), 404, 'NOT_FOUND');
      expectApiError(await restore(archived.id, { token: outsider, headers }), 404, 'NOT_FOUND');
    }
    await expectTrpcFailure(app.trpc(outsider).workspaces.archive.mutate({ workspace_id: active.id }), 404, 'NOT_FOUND');
    await expectTrpcFailure(app.trpc(outsider).workspaces.restore.mutate({ workspace_id: archived.id }), 404, 'NOT_FOUND');
    // Nor may the team archive the outsider's workspaces.
    const outsiders = await createWorkspace(app, outsider, team.outsider.organization.id);
    const outsiderBefore = await row(outsiders.id);
    expectApiError(await archive(outsiders.id, { token: team.owner.token }), 404, 'NOT_FOUND');
    expectApiError(await archive(UNKNOWN_UUID), 404, 'NOT_FOUND');
    expectApiError(await restore(UNKNOWN_UUID), 404, 'NOT_FOUND');

    expect(await orgRows(team.organizationId)).toEqual(before);
    expect(await row(outsiders.id)).toEqual(outsiderBefore);
  });

  it('answers 403 to a plain member and 401 without a token (REST and tRPC), and changes nothing', async () => {
    const active = await fresh();
    const archived = await archivedWorkspace();
    const before = await orgRows(team.organizationId);

    expectApiError(await archive(active.id, { token: team.member.token }), 403, 'FORBIDDEN');
    expectApiError(await restore(archived.id, { token: team.member.token }), 403, 'FORBIDDEN');
    expectApiError(await archive(active.id, { token: undefined }), 401, 'UNAUTHORIZED');
    expectApiError(await restore(archived.id, { token: undefined }), 401, 'UNAUTHORIZED');
    await expectTrpcFailure(app.trpc(team.member.token).workspaces.archive.mutate({ workspace_id: active.id }), 403, 'FORBIDDEN');
    await expectTrpcFailure(app.trpc(team.member.token).workspaces.restore.mutate({ workspace_id: archived.id }), 403, 'FORBIDDEN');
    await expectTrpcFailure(app.trpc().workspaces.archive.mutate({ workspace_id: active.id }), 401, 'UNAUTHORIZED');

    expect(await orgRows(team.organizationId)).toEqual(before);
  });
});

describe('lists and the archived filter', () => {
  /** An organization of the owner's: its default workspace, three active ones and two archived ones. */
  let org: string;
  let active: string[];
  let archived: string[];
  const orgList = () => `/api/v1/organizations/${org}/workspaces`;
  const ids = (res: ApiResponse) => (res.body.items as Ws[]).map((w) => w.id);

  /** The organization's workspace ids as stored, oldest first (the lists' default order). */
  async function stored(which: 'active' | 'archived' | 'all'): Promise<string[]> {
    const condition = which === 'active' ? 'and archived_at is null' : which === 'archived' ? 'and archived_at is not null' : '';
    const rows = await app.query<{ id: string }>(
      `select id from workspaces where organization_id = $1 ${condition} order by created_at, id`,
      [org],
    );
    return rows.map((r) => r.id);
  }

  beforeAll(async () => {
    org = await createOrganizationFor(app, team.owner.token, 'Archive lists');
    const made: string[] = [];
    for (let i = 0; i < 5; i++) made.push((await createWorkspace(app, team.owner.token, org, { name: uniqueWorkspaceName('Listed') })).id);
    for (const id of [made[1]!, made[3]!]) expect((await archive(id, { token: team.owner.token })).status).toBe(200);
    archived = [made[1]!, made[3]!];
    active = [await defaultOf(org), made[0]!, made[2]!, made[4]!];
  });

  it('leaves archived workspaces out by default and with archived=false, on both REST lists', async () => {
    expect(await stored('active')).toHaveLength(4);
    for (const path of [`/api/v1/workspaces?organization_id=${org}`, orgList()]) {
      for (const suffix of ['', path.includes('?') ? '&archived=false' : '?archived=false']) {
        const res = await app.request('GET', `${path}${suffix}`, { token: team.owner.token });
        expect(res.status, res.text).toBe(200);
        expect(ids(res)).toEqual(await stored('active'));
        expect([...ids(res)].sort()).toEqual([...active].sort());
        for (const item of res.body.items as Ws[]) expect(item.archived_at).toBeNull();
        expect(res.body.next_cursor).toBeNull();
      }
    }
  });

  it('lists only archived workspaces with archived=true, and both with archived=all, on both REST lists', async () => {
    for (const base of [`/api/v1/workspaces?organization_id=${org}&`, `${orgList()}?`]) {
      const onlyArchived = await app.request('GET', `${base}archived=true`, { token: team.owner.token });
      expect(onlyArchived.status, onlyArchived.text).toBe(200);
      expect(ids(onlyArchived)).toEqual(await stored('archived'));
      expect([...ids(onlyArchived)].sort()).toEqual([...archived].sort());
      for (const item of onlyArchived.body.items as Ws[]) expect(item.archived_at).toMatch(ISO_MS_PATTERN);

      const all = await app.request('GET', `${base}archived=all`, { token: team.owner.token });
      expect(all.status, all.text).toBe(200);
      expect(ids(all)).toEqual(await stored('all'));
      expect(ids(all)).toHaveLength(6);
    }
  });

  it('applies the filter over tRPC (workspaces.list and workspaces.listInOrganization)', async () => {
    const client = app.trpc(team.owner.token);
    const idsOf = (page: { items: Array<{ id: string }> }) => page.items.map((w) => w.id);

    expect(idsOf(await client.workspaces.list.query({ organization_id: org }))).toEqual(await stored('active'));
    expect(idsOf(await client.workspaces.list.query({ organization_id: org, archived: 'false' }))).toEqual(await stored('active'));
    expect(idsOf(await client.workspaces.list.query({ organization_id: org, archived: 'true' }))).toEqual(await stored('archived'));
    expect(idsOf(await client.workspaces.list.query({ organization_id: org, archived: 'all' }))).toEqual(await stored('all'));
    expect(idsOf(await client.workspaces.listInOrganization.query({ org_id: org }))).toEqual(await stored('active'));
    expect(idsOf(await client.workspaces.listInOrganization.query({ org_id: org, archived: 'true' }))).toEqual(await stored('archived'));
    expect(idsOf(await client.workspaces.listInOrganization.query({ org_id: org, archived: 'all' }))).toEqual(await stored('all'));
  });

  it("applies it to the caller's workspaces across organizations (GET /workspaces without organization_id)", async () => {
    const everywhere = async (archivedParam?: string) =>
      (
        await walkPages<Ws>((cursor) => {
          const params = new URLSearchParams({ limit: '100' });
          if (archivedParam) params.set('archived', archivedParam);
          if (cursor) params.set('cursor', cursor);
          return app.request('GET', `/api/v1/workspaces?${params.toString()}`, { token: team.owner.token });
        })
      ).flatMap((page) => page.items);
    const storedFor = async (condition: string) =>
      (
        await app.query<{ id: string }>(
          `select w.id from workspaces w join memberships m on m.organization_id = w.organization_id
            where m.user_id = $1 ${condition}`,
          [team.owner.user.id],
        )
      )
        .map((r) => r.id)
        .sort();

    const byDefault = await everywhere();
    const onlyArchived = await everywhere('true');
    const all = await everywhere('all');

    expect(byDefault.map((w) => w.id).sort()).toEqual(await storedFor('and w.archived_at is null'));
    expect(onlyArchived.map((w) => w.id).sort()).toEqual(await storedFor('and w.archived_at is not null'));
    expect(all.map((w) => w.id).sort()).toEqual(await storedFor(''));
    for (const id of archived) {
      expect(byDefault.map((w) => w.id)).not.toContain(id);
      expect(onlyArchived.map((w) => w.id)).toContain(id);
    }
    for (const w of byDefault) expect(w.archived_at).toBeNull();
    for (const w of onlyArchived) expect(w.archived_at).not.toBeNull();
  });

  it('pages through archived=true with its own cursors', async () => {
    const first = await app.request('GET', `${orgList()}?archived=true&limit=1`, { token: team.owner.token });
    expect(first.status, first.text).toBe(200);
    expect(first.body.next_cursor).toEqual(expect.any(String));
    const second = await app.request('GET', `${orgList()}?archived=true&limit=1&cursor=${encodeURIComponent(first.body.next_cursor)}`, {
      token: team.owner.token,
    });
    expect(second.status, second.text).toBe(200);
    expect([...ids(first), ...ids(second)]).toEqual(await stored('archived'));
    expect(second.body.next_cursor).toBeNull();
  });

  it('answers 400 to a cursor used with another archived value (REST and tRPC)', async () => {
    const before = await orgRows(org);
    const q = (query: string) =>
      app.request('GET', `/api/v1/workspaces?organization_id=${org}&limit=1&${query}`, { token: team.owner.token });

    const activePage = await q('archived=false');
    expect(activePage.status, activePage.text).toBe(200);
    const activeCursor = encodeURIComponent(activePage.body.next_cursor);
    expect((await q(`archived=false&cursor=${activeCursor}`)).status).toBe(200);
    expectApiError(await q(`archived=true&cursor=${activeCursor}`), 400, 'BAD_REQUEST');
    expectApiError(await q(`archived=all&cursor=${activeCursor}`), 400, 'BAD_REQUEST');

    const archivedPage = await q('archived=true');
    const archivedCursor = encodeURIComponent(archivedPage.body.next_cursor);
    expectApiError(await q(`archived=false&cursor=${archivedCursor}`), 400, 'BAD_REQUEST');
    expectApiError(
      await app.request('GET', `${orgList()}?limit=1&archived=all&cursor=${archivedCursor}`, { token: team.owner.token }),
      400,
      'BAD_REQUEST',
    );

    const client = app.trpc(team.owner.token);
    const page = await client.workspaces.list.query({ organization_id: org, archived: 'false', limit: 1 });
    expect(page.next_cursor).toEqual(expect.any(String));
    await expectTrpcFailure(
      client.workspaces.list.query({ organization_id: org, archived: 'true', limit: 1, cursor: page.next_cursor! }),
      400,
      'BAD_REQUEST',
    );

    expect(await orgRows(org)).toEqual(before);
  });

  it('answers 400 to an archived value other than false, true or all (REST and tRPC), or one given twice', async () => {
    const before = await orgRows(org);
    for (const value of ['yes', 'TRUE', '1', 'none', 'archived']) {
      expectIssueAt(
        await app.request('GET', `/api/v1/workspaces?organization_id=${org}&archived=${value}`, { token: team.owner.token }),
        'archived',
      );
      expectIssueAt(await app.request('GET', `${orgList()}?archived=${value}`, { token: team.owner.token }), 'archived');
    }
    expectApiError(await app.request('GET', `${orgList()}?archived=true&archived=false`, { token: team.owner.token }), 400, 'BAD_REQUEST');
    const client = app.trpc(team.owner.token);
    await expectTrpcFailure(client.workspaces.list.query({ organization_id: org, archived: 'yes' } as never), 400, 'BAD_REQUEST');
    await expectTrpcFailure(client.workspaces.listInOrganization.query({ org_id: org, archived: true } as never), 400, 'BAD_REQUEST');
    expect(await orgRows(org)).toEqual(before);
  });

  it("answers 404 to a non-member's list of the organization with any archived value", async () => {
    const before = await orgRows(org);
    for (const value of ['false', 'true', 'all']) {
      expectApiError(await app.request('GET', `${orgList()}?archived=${value}`, { token: team.outsider.token }), 404, 'NOT_FOUND');
    }
    expect(await orgRows(org)).toEqual(before);
  });

  it('shows a restored workspace in the default list again, and no longer in archived=true', async () => {
    const [back, ...stillArchived] = archived;
    expectWorkspaceAnswer(await restore(back!, { token: team.owner.token }), { id: back!, version: 3, archived: false });

    const byDefault = await app.request('GET', orgList(), { token: team.owner.token });
    const onlyArchived = await app.request('GET', `${orgList()}?archived=true`, { token: team.owner.token });

    expect(byDefault.status).toBe(200);
    expect(ids(byDefault)).toContain(back);
    expect(ids(byDefault)).toEqual(await stored('active'));
    expect(ids(onlyArchived)).toEqual(stillArchived);
    expect(await stored('archived')).toEqual(stillArchived);
  });
});
