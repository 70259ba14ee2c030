import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, startTestApp, type ApiResponse, type TestApp } from './helpers/app';
import {
  createOrganizationFor,
  createWorkspace,
  teamOf,
  uniqueWorkspaceName,
  workspaceCount,
  workspaceRow,
  type Team,
  type WorkspaceBody,
} from './helpers/workspace-helpers';
import { ISO_MS_PATTERN, UNKNOWN_UUID } from './helpers/values';
import { isoSql } from './helpers/sql';
import { expectApiError, expectTrpcFailure } from './helpers/errors';

let app: TestApp;
let team: Team;
/** An organization of the outsider's where the team's member is an admin (a clone target). */
let memberAdminsOrgId: string;

beforeAll(async () => {
  app = await startTestApp();
  team = await teamOf(app);
  memberAdminsOrgId = await createOrganizationFor(app, team.outsider.token, 'Clone Target');
  await addMember(app, team.outsider.token, memberAdminsOrgId, team.member, 'admin');
});
afterAll(async () => {
  await app?.close();
});

type Who = 'owner' | 'admin' | 'member' | 'non-member' | 'no token';
const WHO: Who[] = ['owner', 'admin', 'member', 'non-member', 'no token'];

function tokenOf(who: Who): string | undefined {
  switch (who) {
    case 'owner':
      return team.owner.token;
    case 'admin':
      return team.admin.token;
    case 'member':
      return team.member.token;
    case 'non-member':
      return team.outsider.token;
    case 'no token':
      return undefined;
  }
}

const wsPath = (id: string) => `/api/v1/workspaces/${id}`;

interface Operation {
  kind: 'read' | 'write';
  /** Brings the fresh workspace into the state the call needs (as the owner, before the snapshot); returns it as it now is. */
  prepare?(ws: WorkspaceBody): Promise<WorkspaceBody>;
  /** The call, made on `ws`: a fresh workspace of the team's organization, at version 1 (or as `prepare` left it). */
  call(token: string | undefined, ws: WorkspaceBody): Promise<ApiResponse>;
  /** What a successful call answers and leaves in the database. */
  succeeded(res: ApiResponse, ws: WorkspaceBody): Promise<void> | void;
}

/** Asserts a 201 create of a workspace in the team's organization, and that its row exists. */
async function createdInTeam(res: ApiResponse, name: string): Promise<void> {
  expect(res.status, res.text).toBe(201);
  expect(res.headers.get('location')).toBe(wsPath(res.body.id));
  expect(res.body).toMatchObject({ organization_id: team.organizationId, name, version: 1, is_default: false });
  expect(await workspaceRow(app, res.body.id)).toMatchObject({ organization_id: team.organizationId, name });
}

/** Asserts a list answer (newest first) holding `ws` and nothing outside the team's organization. */
function listedNewestFirst(res: ApiResponse, ws: WorkspaceBody): void {
  expect(res.status, res.text).toBe(200);
  expect(res.body.items).toContainEqual(ws);
  for (const item of res.body.items) expect(item.organization_id).toBe(team.organizationId);
}

/** The workspace's version and archived_at as stored (archived_at rendered the API's way, null while active). */
async function archiveState(id: string) {
  const [row] = await app.query<{ version: number; archived_at: string | null }>(
    `select version, ${isoSql('archived_at')} as archived_at from workspaces where id = $1`,
    [id],
  );
  return row ?? null;
}

/** Archives `ws` as the owner over REST; fails the test unless 200. */
async function archivedByOwner(ws: WorkspaceBody): Promise<WorkspaceBody> {
  const res = await app.request('POST', `${wsPath(ws.id)}/archive`, { token: team.owner.token, body: {} });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

const names = new Map<string, string>();
/** One name per (operation, caller): create-like calls use it and assert it. */
const nameFor = (key: string) => {
  if (!names.has(key)) names.set(key, uniqueWorkspaceName('Perm'));
  return names.get(key)!;
};

const OPERATIONS: Record<string, Operation> = {
  create: {
    kind: 'write',
    call: (token, ws) =>
      app.request('POST', '/api/v1/workspaces', {
        token,
        body: { organization_id: team.organizationId, name: nameFor(`create ${ws.id}`) },
      }),
    succeeded: (res, ws) => createdInTeam(res, nameFor(`create ${ws.id}`)),
  },
  'org-scoped create': {
    kind: 'write',
    call: (token, ws) =>
      app.request('POST', `/api/v1/organizations/${team.organizationId}/workspaces`, { token, body: { name: nameFor(`scoped ${ws.id}`) } }),
    succeeded: (res, ws) => createdInTeam(res, nameFor(`scoped ${ws.id}`)),
  },
  'list with organization_id': {
    kind: 'read',
    call: (token) => app.request('GET', `/api/v1/workspaces?organization_id=${team.organizationId}&order=desc&limit=5`, { token }),
    succeeded: (res, ws) => listedNewestFirst(res, ws),
  },
  'org-scoped list': {
    kind: 'read',
    call: (token) => app.request('GET', `/api/v1/organizations/${team.organizationId}/workspaces?order=desc&limit=5`, { token }),
    succeeded: (res, ws) => listedNewestFirst(res, ws),
  },
  get: {
    kind: 'read',
    call: (token, ws) => app.request('GET', wsPath(ws.id), { token }),
    succeeded: (res, ws) => {
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual(ws);
      expect(res.headers.get('etag')).toBe('"1"');
    },
  },
  update: {
    kind: 'write',
    call: (token, ws) => app.request('PUT', wsPath(ws.id), { token, body: { description: 'updated', metadata: { by: 'test' } } }),
    succeeded: async (res, ws) => {
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ id: ws.id, description: 'updated', metadata: { by: 'test' }, version: 2 });
      expect(await workspaceRow(app, ws.id)).toMatchObject({ description: 'updated', metadata: { by: 'test' }, version: 2 });
    },
  },
  delete: {
    kind: 'write',
    call: (token, ws) => app.request('DELETE', wsPath(ws.id), { token }),
    succeeded: async (res, ws) => {
      expect(res.status, res.text).toBe(204);
      expect(res.text).toBe('');
      expect(await workspaceRow(app, ws.id)).toBeNull();
    },
  },
  clone: {
    kind: 'write',
    call: (token, ws) => app.request('POST', `${wsPath(ws.id)}/clone`, { token, body: { name: nameFor(`clone ${ws.id}`) } }),
    succeeded: async (res, ws) => {
      await createdInTeam(res, nameFor(`clone ${ws.id}`));
      expect(res.body).toMatchObject({ cloned_from_id: ws.id, metadata: ws.metadata, description: ws.description });
    },
  },
  'get settings': {
    kind: 'read',
    call: (token, ws) => app.request('GET', `${wsPath(ws.id)}/settings`, { token }),
    succeeded: (res, ws) => {
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ workspace_id: ws.id, version: 1, overrides: { features: { seeded: true } } });
      expect(res.body.effective.features).toEqual({ seeded: true });
      expect(res.headers.get('etag')).toBe('"1"');
    },
  },
  'update settings': {
    kind: 'write',
    call: (token, ws) => app.request('PUT', `${wsPath(ws.id)}/settings`, { token, body: { features: { added: true } } }),
    succeeded: async (res, ws) => {
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ workspace_id: ws.id, version: 2, overrides: { features: { seeded: true, added: true } } });
      expect(await workspaceRow(app, ws.id)).toMatchObject({ version: 2, settings: { features: { seeded: true, added: true } } });
    },
  },
  archive: {
    kind: 'write',
    call: (token, ws) => app.request('POST', `${wsPath(ws.id)}/archive`, { token, body: {} }),
    succeeded: async (res, ws) => {
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ id: ws.id, version: 2, archived_at: expect.stringMatching(ISO_MS_PATTERN) });
      expect(res.headers.get('etag')).toBe('"2"');
      expect(await archiveState(ws.id)).toEqual({ version: 2, archived_at: res.body.archived_at });
    },
  },
  restore: {
    kind: 'write',
    prepare: archivedByOwner,
    call: (token, ws) => app.request('POST', `${wsPath(ws.id)}/restore`, { token, body: {} }),
    succeeded: async (res, ws) => {
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ id: ws.id, version: 3, archived_at: null });
      expect(res.headers.get('etag')).toBe('"3"');
      expect(await archiveState(ws.id)).toEqual({ version: 3, archived_at: null });
    },
  },
  'workspace events': {
    kind: 'read',
    call: (token, ws) => app.request('GET', `${wsPath(ws.id)}/events`, { token }),
    succeeded: async (res, ws) => {
      expect(res.status, res.text).toBe(200);
      expect(Object.keys(res.body).sort()).toEqual(['items', 'next_cursor']);
      const items = res.body.items as Array<{ workspace_id: string; action: string; target_id: string }>;
      for (const event of items) expect(event.workspace_id).toBe(ws.id);
      expect(items).toContainEqual(expect.objectContaining({ action: 'workspace.created', target_type: 'workspace', target_id: ws.id }));
      const [stored] = await app.query<{ n: number }>('select count(*)::int as n from audit_events where workspace_id = $1', [ws.id]);
      expect(items).toHaveLength(stored!.n);
    },
  },
  provision: {
    kind: 'write',
    call: (token, ws) =>
      app.request('POST', '/api/v1/workspaces/provision', {
        token,
        body: { organization_id: team.organizationId, workspaces: [{ name: nameFor(`provision ${ws.id}`) }] },
      }),
    succeeded: async (res, ws) => {
      expect(res.status, res.text).toBe(201);
      expect(res.body.failed).toEqual([]);
      expect(res.body.created).toHaveLength(1);
      expect(res.body.created[0]).toMatchObject({ organization_id: team.organizationId, name: nameFor(`provision ${ws.id}`) });
      expect(await workspaceRow(app, res.body.created[0].id)).not.toBeNull();
    },
  },
};

type Expected = 'success' | '403' | '404' | '401';
function expectedFor(operation: Operation, who: Who): Expected {
  if (who === 'no token') return '401';
  if (who === 'non-member') return '404';
  if (who === 'member') return operation.kind === 'read' ? 'success' : '403';
  return 'success';
}

const DENIALS = { '401': [401, 'UNAUTHORIZED'], '403': [403, 'FORBIDDEN'], '404': [404, 'NOT_FOUND'] } as const;

/** What a denied call must leave as it was: every workspace row of the database. */
const allWorkspaces = () =>
  app.query(
    `select id, name, slug, description, metadata, settings, is_default, version, archived_at, updated_at from workspaces order by id`,
  );

const MATRIX = Object.entries(OPERATIONS).flatMap(([operation, op]) =>
  WHO.map((who) => ({ operation, who, expected: expectedFor(op, who) })),
);

describe('permission matrix (REST)', () => {
  it.each(MATRIX)('$operation by $who → $expected', async ({ operation, who, expected }) => {
    const op = OPERATIONS[operation]!;
    const created = await createWorkspace(app, team.owner.token, team.organizationId, {
      description: 'fixture',
      metadata: { fixture: 'yes' },
      settings: { features: { seeded: true } },
    });
    const ws = op.prepare ? await op.prepare(created) : created;
    const before = await allWorkspaces();

    const res = await op.call(tokenOf(who), ws);

    if (expected === 'success') {
      await op.succeeded(res, ws);
      return;
    }
    const [status, code] = DENIALS[expected];
    expectApiError(res, status, code);
    expect(await allWorkspaces()).toEqual(before);
  });

  it('covers every operation for every caller', () => {
    expect(MATRIX).toHaveLength(14 * 5);
  });
});

describe('authorization comes before the version check', () => {
  const conditional: Array<[string, 'PUT' | 'DELETE' | 'POST', string, unknown]> = [
    ['update', 'PUT', '', { description: 'stale write' }],
    ['delete', 'DELETE', '', undefined],
    ['update settings', 'PUT', '/settings', { features: { stale: true } }],
    ['archive', 'POST', '/archive', {}],
  ];
  const outcomes: Array<[Who, number, string]> = [
    ['non-member', 404, 'NOT_FOUND'],
    ['member', 403, 'FORBIDDEN'],
    ['no token', 401, 'UNAUTHORIZED'],
    ['admin', 412, 'PRECONDITION_FAILED'],
  ];
  const cases = conditional.flatMap(([operation, method, suffix, body]) =>
    outcomes.map(([who, status, code]) => ({ operation, method, suffix, body, who, status, code })),
  );

  it.each(cases)('$operation by $who with a stale If-Match → $status', async ({ method, suffix, body, who, status, code }) => {
    const ws = await createWorkspace(app, team.owner.token, team.organizationId);
    const before = await allWorkspaces();

    const res = await app.request(method, `${wsPath(ws.id)}${suffix}`, { token: tokenOf(who), body, headers: { 'if-match': '"99"' } });

    expectApiError(res, status, code);
    expect(await allWorkspaces()).toEqual(before);
  });
});

describe('lists', () => {
  it("leaves the team's workspaces out of a non-member's unfiltered list", async () => {
    const ws = await createWorkspace(app, team.owner.token, team.organizationId);
    const res = await app.request('GET', '/api/v1/workspaces?limit=100', { token: team.outsider.token });

    expect(res.status, res.text).toBe(200);
    const orgs = new Set((res.body.items as WorkspaceBody[]).map((w) => w.organization_id));
    expect(orgs.has(team.organizationId)).toBe(false);
    expect((res.body.items as WorkspaceBody[]).some((w) => w.id === ws.id)).toBe(false);
    expect(orgs.has(team.outsider.organization.id)).toBe(true);
  });

  it('answers 404 to a list of an organization that does not exist', async () => {
    expectApiError(
      await app.request('GET', `/api/v1/workspaces?organization_id=${UNKNOWN_UUID}`, { token: team.owner.token }),
      404,
      'NOT_FOUND',
    );
  });
});

describe('clone across organizations', () => {
  it('lets a member of the source organization clone into an organization where it is admin (201)', async () => {
    const source = await createWorkspace(app, team.owner.token, team.organizationId, {
      description: 'cross-org source',
      metadata: { origin: 'team' },
      settings: { features: { copied: true } },
    });
    const name = uniqueWorkspaceName('Cross Clone');

    const res = await app.request('POST', `${wsPath(source.id)}/clone`, {
      token: team.member.token,
      body: { name, organization_id: memberAdminsOrgId },
    });

    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('location')).toBe(wsPath(res.body.id));
    expect(res.body).toMatchObject({
      organization_id: memberAdminsOrgId,
      name,
      description: 'cross-org source',
      metadata: { origin: 'team' },
      cloned_from_id: source.id,
      is_default: false,
      version: 1,
    });
    expect(await workspaceRow(app, res.body.id)).toMatchObject({
      organization_id: memberAdminsOrgId,
      settings: { features: { copied: true } },
    });
    expect(await workspaceRow(app, source.id)).toMatchObject({ version: 1, organization_id: team.organizationId });
  });

  it('answers 404 to an admin of the source organization who is not a member of the target', async () => {
    const source = await createWorkspace(app, team.owner.token, team.organizationId);
    const before = await workspaceCount(app);

    const res = await app.request('POST', `${wsPath(source.id)}/clone`, {
      token: team.admin.token,
      body: { name: 'Smuggled', organization_id: team.outsider.organization.id },
    });

    expectApiError(res, 404, 'NOT_FOUND');
    expect(await workspaceCount(app)).toBe(before);
    expect(await app.query('select id from workspaces where name = $1', ['Smuggled'])).toEqual([]);
  });

  it('answers 403 to a member of the target organization without the admin role there', async () => {
    // The member reads the source as admin of the outsider's organization, but is only a member of the target.
    const source = await createWorkspace(app, team.outsider.token, memberAdminsOrgId);
    const before = await workspaceCount(app);

    const res = await app.request('POST', `${wsPath(source.id)}/clone`, {
      token: team.member.token,
      body: { name: 'Into Team', organization_id: team.organizationId },
    });

    expectApiError(res, 403, 'FORBIDDEN');
    expect(await workspaceCount(app)).toBe(before);
  });

  it('answers 404 to a non-member of the source organization, even into its own organization', async () => {
    const source = await createWorkspace(app, team.owner.token, team.organizationId);
    const before = await workspaceCount(app);

    const res = await app.request('POST', `${wsPath(source.id)}/clone`, {
      token: team.outsider.token,
      body: { name: 'Stolen', organization_id: team.outsider.organization.id },
    });

    expectApiError(res, 404, 'NOT_FOUND');
    expect(await workspaceCount(app)).toBe(before);
  });
});

describe('permissions over tRPC', () => {
  it('answers the same codes as REST', async () => {
    const ws = await createWorkspace(app, team.owner.token, team.organizationId);
    const before = await allWorkspaces();

    expect(await app.trpc(team.member.token).workspaces.get.query({ workspace_id: ws.id })).toEqual(ws);
    await expectTrpcFailure(app.trpc(team.member.token).workspaces.update.mutate({ workspace_id: ws.id, name: 'Nope' }), 403, 'FORBIDDEN');
    await expectTrpcFailure(app.trpc(team.member.token).workspaces.delete.mutate({ workspace_id: ws.id }), 403, 'FORBIDDEN');
    await expectTrpcFailure(app.trpc(team.outsider.token).workspaces.get.query({ workspace_id: ws.id }), 404, 'NOT_FOUND');
    await expectTrpcFailure(
      app.trpc(team.outsider.token).workspaces.update.mutate({ workspace_id: ws.id, name: 'Nope', expected_version: 99 }),
      404,
      'NOT_FOUND',
    );
    await expectTrpcFailure(
      app.trpc(team.outsider.token).workspaces.list.query({ organization_id: team.organizationId }),
      404,
      'NOT_FOUND',
    );
    await expectTrpcFailure(app.trpc().workspaces.delete.mutate({ workspace_id: ws.id }), 401, 'UNAUTHORIZED');
    expect(await allWorkspaces()).toEqual(before);

    const updated = await app
      .trpc(team.admin.token)
      .workspaces.update.mutate({ workspace_id: ws.id, name: 'Admin Renamed', expected_version: 1 });
    expect(updated).toMatchObject({ name: 'Admin Renamed', version: 2 });
    expect(await workspaceRow(app, ws.id)).toMatchObject({ name: 'Admin Renamed', version: 2 });
  });

  it('answers archive, restore and workspace events with the same codes as REST', async () => {
    const ws = await createWorkspace(app, team.owner.token, team.organizationId);
    const archivedWs = await archivedByOwner(await createWorkspace(app, team.owner.token, team.organizationId));
    const before = await allWorkspaces();

    for (const [token, status, code] of [
      [team.member.token, 403, 'FORBIDDEN'],
      [team.outsider.token, 404, 'NOT_FOUND'],
      [undefined, 401, 'UNAUTHORIZED'],
    ] as const) {
      await expectTrpcFailure(app.trpc(token).workspaces.archive.mutate({ workspace_id: ws.id }), status, code);
      await expectTrpcFailure(app.trpc(token).workspaces.restore.mutate({ workspace_id: archivedWs.id }), status, code);
    }
    await expectTrpcFailure(app.trpc(team.outsider.token).audit.listWorkspaceEvents.query({ workspace_id: ws.id }), 404, 'NOT_FOUND');
    await expectTrpcFailure(app.trpc().audit.listWorkspaceEvents.query({ workspace_id: ws.id }), 401, 'UNAUTHORIZED');
    expect(await allWorkspaces()).toEqual(before);

    const events = await app.trpc(team.member.token).audit.listWorkspaceEvents.query({ workspace_id: ws.id });
    expect(events.items).toContainEqual(expect.objectContaining({ action: 'workspace.created', target_id: ws.id, workspace_id: ws.id }));

    const archived = await app.trpc(team.admin.token).workspaces.archive.mutate({ workspace_id: ws.id, expected_version: 1 });
    expect(archived).toMatchObject({ id: ws.id, version: 2, archived_at: expect.stringMatching(ISO_MS_PATTERN) });
    expect(await archiveState(ws.id)).toEqual({ version: 2, archived_at: archived.archived_at });
    const restored = await app.trpc(team.owner.token).workspaces.restore.mutate({ workspace_id: archivedWs.id });
    expect(restored).toMatchObject({ id: archivedWs.id, version: 3, archived_at: null });
    expect(await archiveState(archivedWs.id)).toEqual({ version: 3, archived_at: null });
  });
});
