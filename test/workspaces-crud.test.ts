import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from './helpers/app';
import {
  asBody,
  createOrganizationFor,
  createWorkspace,
  defaultWorkspaceIds,
  teamOf,
  uniqueWorkspaceName,
  workspaceCount,
  workspaceRow,
  type Team,
  type WorkspaceBody,
} from './helpers/workspace-helpers';
import { ISO_MS_PATTERN, UNKNOWN_UUID, UUID_PATTERN } from './helpers/values';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';

let app: TestApp;
let team: Team;
/** Shorthands: the owner's token and the team's organization. */
let token: string;
let orgId: string;

beforeAll(async () => {
  app = await startTestApp();
  team = await teamOf(app);
  token = team.owner.token;
  orgId = team.organizationId;
});
afterAll(async () => {
  await app?.close();
});

const path = (id: string) => `/api/v1/workspaces/${id}`;
const put = (id: string, body: unknown, headers: Record<string, string> = {}) => app.request('PUT', path(id), { token, body, headers });
const del = (id: string, { query = '', headers = {} }: { query?: string; headers?: Record<string, string> } = {}) =>
  app.request('DELETE', `${path(id)}${query}`, { token, headers });

/** Asserts that the stored row is exactly what `expected` says (settings aside). */
async function expectStored(expected: WorkspaceBody): Promise<void> {
  const row = await workspaceRow(app, expected.id);
  expect(row, `row ${expected.id}`).not.toBeNull();
  expect(asBody(row!)).toEqual(expected);
}

describe('POST /api/v1/workspaces', () => {
  it('creates a workspace: 201, Location, the documented defaults, and the row', async () => {
    const before = await workspaceCount(app, orgId);
    const name = uniqueWorkspaceName('Fresh');
    const res = await app.request('POST', '/api/v1/workspaces', { token, body: { organization_id: orgId, name: `  ${name}  ` } });

    expect(res.status, res.text).toBe(201);
    const ws = res.body as WorkspaceBody;
    expect(res.headers.get('location')).toBe(`/api/v1/workspaces/${ws.id}`);
    expect(Object.keys(ws).sort()).toEqual([
      'archived_at',
      'cloned_from_id',
      'created_at',
      'description',
      'id',
      'is_default',
      'metadata',
      'name',
      'organization_id',
      'slug',
      'updated_at',
      'version',
    ]);
    expect(ws).toMatchObject({
      organization_id: orgId,
      name,
      slug: name.toLowerCase().replace(/ /g, '-'),
      description: null,
      metadata: {},
      is_default: false,
      cloned_from_id: null,
      archived_at: null,
      version: 1,
    });
    expect(ws.id).toMatch(UUID_PATTERN);
    expect(ws.created_at).toMatch(ISO_MS_PATTERN);
    expect(ws.updated_at).toMatch(ISO_MS_PATTERN);
    expect(ws.updated_at).toBe(ws.created_at);

    expect(await workspaceRow(app, ws.id)).toEqual({ ...ws, settings: {} });
    expect(await workspaceCount(app, orgId)).toBe(before + 1);
  });

  it('stores the given description, metadata and slug', async () => {
    const res = await app.request('POST', '/api/v1/workspaces', {
      token,
      body: {
        organization_id: orgId,
        name: 'Described',
        slug: 'described-explicitly',
        description: 'What it is for',
        metadata: { team: 'core', 'cost.center': '42' },
      },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({
      name: 'Described',
      slug: 'described-explicitly',
      description: 'What it is for',
      metadata: { team: 'core', 'cost.center': '42' },
    });
    await expectStored(res.body);
  });

  it('derives the slug from the name, with -2 and -3 suffixes when taken', async () => {
    const org = await createOrganizationFor(app, token);
    const first = await createWorkspace(app, token, org, { name: 'Team Alpha!' });
    const second = await createWorkspace(app, token, org, { name: 'Team Alpha!' });
    const third = await createWorkspace(app, token, org, { name: 'team   ALPHA' });

    expect([first.slug, second.slug, third.slug]).toEqual(['team-alpha', 'team-alpha-2', 'team-alpha-3']);
    expect([first.name, second.name, third.name]).toEqual(['Team Alpha!', 'Team Alpha!', 'team   ALPHA']);
    const rows = await app.query<{ slug: string }>(
      "select slug from workspaces where organization_id = $1 and slug like 'team-alpha%' order by slug",
      [org],
    );
    expect(rows.map((r) => r.slug)).toEqual(['team-alpha', 'team-alpha-2', 'team-alpha-3']);
  });

  it('derives a slug of at most 64 characters from a long name, suffixes included', async () => {
    const org = await createOrganizationFor(app, token);
    const name = `${'Long Name '.repeat(9)}End`;
    const slugs: string[] = [];
    for (let i = 0; i < 2; i++) slugs.push((await createWorkspace(app, token, org, { name })).slug);

    for (const slug of slugs) {
      expect(slug.length).toBeLessThanOrEqual(64);
      expect(slug).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$/);
    }
    expect(slugs[0]).toMatch(/^long-name-long-name-/);
    expect(slugs[1]).toMatch(/^long-name-long-name-.*-2$/);
    expect(slugs[1]).not.toBe(slugs[0]);
  });

  it('answers 409 to an explicit slug that is taken in the organization, and writes nothing', async () => {
    const taken = await createWorkspace(app, token, orgId, { slug: 'taken-explicit' });
    const before = await workspaceCount(app);

    const res = await app.request('POST', '/api/v1/workspaces', {
      token,
      body: { organization_id: orgId, name: 'Again', slug: 'taken-explicit' },
    });

    expectApiError(res, 409, 'CONFLICT');
    expect(await workspaceCount(app)).toBe(before);
    await expectStored(taken);
    const named = await app.query('select id from workspaces where organization_id = $1 and name = $2', [orgId, 'Again']);
    expect(named).toEqual([]);
  });

  it('takes a slug that another organization uses', async () => {
    await createWorkspace(app, token, orgId, { slug: 'shared-across-orgs' });
    const other = await createWorkspace(app, team.outsider.token, team.outsider.organization.id, { slug: 'shared-across-orgs' });
    expect(other.slug).toBe('shared-across-orgs');
  });

  const metadataOf = (count: number) => Object.fromEntries(Array.from({ length: count }, (_, i) => [`key${i}`, 'v']));
  it.each([
    ['a slug starting with a hyphen', { slug: '-x' }, 'slug'],
    ['an upper-case slug', { slug: 'UPPER' }, 'slug'],
    ['a 65-character slug', { slug: 'a'.repeat(65) }, 'slug'],
    ['an empty name', { name: '' }, 'name'],
    ['a blank name', { name: '   ' }, 'name'],
    ['a 101-character name', { name: 'n'.repeat(101) }, 'name'],
    ['a name that is not a string', { name: 42 }, 'name'],
    ['a name with a NUL character', { name: 'a\u0000b' }, 'name'],
    ['a name with a lone UTF-16 surrogate', { name: 'a\ud800b' }, 'name'],
    ['a 1001-character description', { description: 'd'.repeat(1001) }, 'description'],
    ['51 metadata keys', { metadata: metadataOf(51) }, 'metadata'],
    ['a metadata key with a space', { metadata: { 'bad key': 'v' } }, 'metadata'],
    ['a 41-character metadata key', { metadata: { ['k'.repeat(41)]: 'v' } }, 'metadata'],
    ['a 501-character metadata value', { metadata: { ok: 'v'.repeat(501) } }, 'metadata'],
    ['a metadata value that is a number', { metadata: { count: 3 } }, 'metadata'],
    ['a metadata value that is null', { metadata: { gone: null } }, 'metadata'],
    ['organization_id that is not a UUID', { organization_id: 'not-a-uuid' }, 'organization_id'],
    ['a feature flag given as the string "true"', { settings: { features: { a: 'true' } } }, 'settings.features'],
    [
      'a permission boolean given as the string "false"',
      { settings: { permissions: { allow_guests: 'false' } } },
      'settings.permissions.allow_guests',
    ],
    ['an unknown settings section', { settings: { colours: {} } }, 'settings.colours'],
  ])('answers 400 to %s and writes nothing', async (_what, fields, issuePath) => {
    const before = await workspaceCount(app);
    const res = await app.request('POST', '/api/v1/workspaces', { token, body: { organization_id: orgId, name: 'Rejected', ...fields } });

    expectIssueAt(res, issuePath, { prefix: true });
    expect(await workspaceCount(app)).toBe(before);
  });

  it('accepts a 100-character name and a 64-character slug (the bounds)', async () => {
    const ws = await createWorkspace(app, token, orgId, {
      name: ` ${'N'.repeat(100)} `,
      slug: `b${'0'.repeat(63)}`,
      description: 'd'.repeat(1000),
    });
    expect(ws.name).toBe('N'.repeat(100));
    await expectStored(ws);
  });

  it('never silently drops a metadata key that matches the documented pattern ("__proto__"): stores it or answers 400', async () => {
    // "__proto__" matches ^[a-zA-Z0-9_.-]{1,40}$. Either answer is defensible; a 201 without the key is not.
    const before = await workspaceCount(app);
    const res = await app.request('POST', '/api/v1/workspaces', {
      token,
      rawBody: `{"organization_id":"${orgId}","name":"Proto Keys","metadata":{"__proto__":"x","ok":"1"}}`,
      headers: { 'content-type': 'application/json' },
    });

    if (res.status === 201) {
      expect(Object.entries(res.body.metadata), `a 201 must have stored the key: ${res.text}`).toContainEqual(['__proto__', 'x']);
      expect(Object.entries((await workspaceRow(app, res.body.id))!.metadata)).toContainEqual(['__proto__', 'x']);
    } else {
      expectApiError(res, 400, 'BAD_REQUEST');
      expect(await workspaceCount(app)).toBe(before);
    }
  });

  it('answers 400 to an unknown field, naming it in issues, and writes nothing', async () => {
    const before = await workspaceCount(app);
    const res = await app.request('POST', '/api/v1/workspaces', {
      token,
      body: { organization_id: orgId, name: 'Sneaky', version: 7, is_default: true },
    });

    expectIssueAt(res, 'version');
    expectIssueAt(res, 'is_default');
    expect(await workspaceCount(app)).toBe(before);
  });

  it('answers 404 when organization_id names an organization the caller is not in, and writes nothing', async () => {
    const before = await workspaceCount(app);
    const res = await app.request('POST', '/api/v1/workspaces', {
      token,
      body: { organization_id: team.outsider.organization.id, name: 'Intruder' },
    });

    expectApiError(res, 404, 'NOT_FOUND');
    expect(await workspaceCount(app)).toBe(before);
    expect(await app.query('select id from workspaces where name = $1', ['Intruder'])).toEqual([]);
  });

  it('answers 404 for an organization that does not exist', async () => {
    const res = await app.request('POST', '/api/v1/workspaces', { token, body: { organization_id: UNKNOWN_UUID, name: 'Nowhere' } });
    expectApiError(res, 404, 'NOT_FOUND');
  });

  it('stores settings given at creation as the workspace overrides', async () => {
    const settings = {
      permissions: { allow_guests: true },
      features: { beta: true, legacy: false },
      integrations: { slack: { enabled: true, config: { channel: '#ops', retries: 3, verbose: false } } },
    };
    const ws = await createWorkspace(app, token, orgId, { settings });
    expect(ws.version).toBe(1);
    expect((await workspaceRow(app, ws.id))!.settings).toEqual(settings);

    const res = await app.request('GET', `${path(ws.id)}/settings`, { token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.overrides).toEqual(settings);
    expect(res.body.effective).toEqual({
      permissions: { default_role: 'member', allow_guests: true, allow_member_invites: true, visibility: 'organization' },
      features: { beta: true, legacy: false },
      integrations: { slack: { enabled: true, config: { channel: '#ops', retries: 3, verbose: false } } },
    });
    expect(res.body.sources.permissions).toEqual({
      default_role: 'default',
      allow_guests: 'workspace',
      allow_member_invites: 'default',
      visibility: 'default',
    });
  });

  it('rejects booleans sent as strings over tRPC too (400), writing nothing', async () => {
    const before = await workspaceCount(app);
    const trpc = app.trpc(token);

    const failure = await expectTrpcFailure(
      trpc.workspaces.create.mutate({ organization_id: orgId, name: 'Stringly', settings: { features: { a: 'true' } } } as never),
      400,
      'BAD_REQUEST',
    );
    expect(failure.data?.issues?.map((i) => i.path)).toContain('settings.features.a');
    await expectTrpcFailure(
      trpc.workspaces.create.mutate({
        organization_id: orgId,
        name: 'Stringly',
        settings: { permissions: { allow_guests: 'false' } },
      } as never),
      400,
      'BAD_REQUEST',
    );
    expect(await workspaceCount(app)).toBe(before);
  });
});

describe('POST /api/v1/organizations/{org_id}/workspaces', () => {
  it('creates a workspace in that organization: 201 and Location', async () => {
    const res = await app.request('POST', `/api/v1/organizations/${orgId}/workspaces`, {
      token,
      body: { name: 'Scoped Create', metadata: { via: 'org' } },
    });

    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('location')).toBe(`/api/v1/workspaces/${res.body.id}`);
    expect(res.body).toMatchObject({
      organization_id: orgId,
      name: 'Scoped Create',
      slug: 'scoped-create',
      metadata: { via: 'org' },
      version: 1,
      is_default: false,
    });
    expect(await workspaceRow(app, res.body.id)).toEqual({ ...res.body, settings: {} });
  });

  it('answers 400 to organization_id in the body (the organization is in the path) and writes nothing', async () => {
    const before = await workspaceCount(app);
    const res = await app.request('POST', `/api/v1/organizations/${orgId}/workspaces`, {
      token,
      body: { name: 'Doubly Scoped', organization_id: team.outsider.organization.id },
    });
    expectIssueAt(res, 'organization_id');
    expect(await workspaceCount(app)).toBe(before);
  });

  it('answers 409 to a taken slug and 404 to an organization the caller is not in', async () => {
    await createWorkspace(app, token, orgId, { slug: 'scoped-taken' });
    const before = await workspaceCount(app);
    expectApiError(
      await app.request('POST', `/api/v1/organizations/${orgId}/workspaces`, { token, body: { name: 'X', slug: 'scoped-taken' } }),
      409,
      'CONFLICT',
    );
    expectApiError(
      await app.request('POST', `/api/v1/organizations/${team.outsider.organization.id}/workspaces`, { token, body: { name: 'X' } }),
      404,
      'NOT_FOUND',
    );
    expect(await workspaceCount(app)).toBe(before);
  });
});

describe('GET /api/v1/workspaces/{workspace_id}', () => {
  it('answers the workspace with ETag "<version>"', async () => {
    const ws = await createWorkspace(app, token, orgId, { description: 'read me' });
    const res = await app.request('GET', path(ws.id), { token });

    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual(ws);
    expect(res.headers.get('etag')).toBe('"1"');

    expect((await put(ws.id, { description: 'changed' })).status).toBe(200);
    const again = await app.request('GET', path(ws.id), { token });
    expect(again.headers.get('etag')).toBe('"2"');
    expect(again.body.version).toBe(2);
  });

  it('answers 404 to a UUID that names nothing', async () => {
    expectApiError(await app.request('GET', path(UNKNOWN_UUID), { token }), 404, 'NOT_FOUND');
  });

  it('answers 400 to an id that is not a UUID', async () => {
    expectIssueAt(await app.request('GET', path('not-a-uuid'), { token }), 'workspace_id');
  });
});

describe('PUT /api/v1/workspaces/{workspace_id}', () => {
  it('changes only the fields given, bumps version, and sends the new ETag', async () => {
    const ws = await createWorkspace(app, token, orgId, { description: 'old', metadata: { keep: 'me' } });
    const res = await put(ws.id, { description: 'new' });

    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('etag')).toBe('"2"');
    expect(res.body).toEqual({ ...ws, description: 'new', version: 2, updated_at: res.body.updated_at });
    expect(res.body.updated_at).toMatch(ISO_MS_PATTERN);
    expect(res.body.updated_at >= ws.updated_at).toBe(true);
    await expectStored(res.body);
  });

  it('trims the name, changes the slug, and clears the description with null', async () => {
    const ws = await createWorkspace(app, token, orgId, { description: 'to be cleared' });
    const res = await put(ws.id, { name: '  Renamed Space  ', slug: 'renamed-space', description: null });

    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ name: 'Renamed Space', slug: 'renamed-space', description: null, version: 2 });
    await expectStored(res.body);
  });

  it('merges metadata key by key, null removing a key', async () => {
    const ws = await createWorkspace(app, token, orgId, { metadata: { a: '1', b: '2', c: '3' } });
    const res = await put(ws.id, { metadata: { b: null, c: 'three', d: '4', missing: null } });

    expect(res.status, res.text).toBe(200);
    expect(res.body.metadata).toEqual({ a: '1', c: 'three', d: '4' });
    expect(res.body.version).toBe(2);
    await expectStored(res.body);
  });

  it('adds one to version on each real change', async () => {
    const ws = await createWorkspace(app, token, orgId);
    const versions: number[] = [];
    for (const body of [{ description: 'one' }, { metadata: { k: 'v' } }, { name: `${ws.name} renamed` }]) {
      const res = await put(ws.id, body);
      expect(res.status, res.text).toBe(200);
      expect(res.headers.get('etag')).toBe(`"${res.body.version}"`);
      versions.push(res.body.version);
    }
    expect(versions).toEqual([2, 3, 4]);
    expect((await workspaceRow(app, ws.id))!.version).toBe(4);
  });

  it('keeps version and updated_at on a write that changes nothing', async () => {
    const ws = await createWorkspace(app, token, orgId, { description: 'same', metadata: { a: '1' } });
    await new Promise((resolve) => setTimeout(resolve, 5));

    for (const body of [
      { name: ws.name },
      { name: `  ${ws.name} ` },
      { slug: ws.slug, description: 'same' },
      { metadata: { a: '1', absent: null } },
    ]) {
      const res = await put(ws.id, body);
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual(ws);
      expect(res.headers.get('etag')).toBe('"1"');
    }
    await expectStored(ws);
  });

  it('answers 400 to an empty body and changes nothing', async () => {
    const ws = await createWorkspace(app, token, orgId);
    expectApiError(await put(ws.id, {}), 400, 'BAD_REQUEST');
    expectApiError(await put(ws.id, { expected_version: 1 }), 400, 'BAD_REQUEST');
    await expectStored(ws);
  });

  it.each([
    ['a 101-character name', { name: 'n'.repeat(101) }, 'name'],
    ['a blank name', { name: '  ' }, 'name'],
    ['an invalid slug', { slug: 'Not_A_Slug' }, 'slug'],
    ['a 1001-character description', { description: 'd'.repeat(1001) }, 'description'],
    ['a bad metadata key', { metadata: { 'no spaces': 'v' } }, 'metadata'],
    ['a 501-character metadata value', { metadata: { k: 'v'.repeat(501) } }, 'metadata'],
    ['a metadata value that is a boolean', { metadata: { k: true } }, 'metadata'],
    ['is_default: false', { is_default: false }, 'is_default'],
    ['is_default as the string "true"', { is_default: 'true' }, 'is_default'],
    ['expected_version as a string', { description: 'x', expected_version: '1' }, 'expected_version'],
    ['expected_version 0', { description: 'x', expected_version: 0 }, 'expected_version'],
    ['an unknown field', { description: 'x', organization_id: UNKNOWN_UUID }, 'organization_id'],
    ['a version in the body', { description: 'x', version: 9 }, 'version'],
  ])('answers 400 to %s and changes nothing', async (_what, body, issuePath) => {
    const ws = await createWorkspace(app, token, orgId, { metadata: { k: 'v' } });
    expectIssueAt(await put(ws.id, body), issuePath, { prefix: true });
    await expectStored(ws);
  });

  it('never silently ignores a "__proto__" metadata key on update: stores it or answers 400', async () => {
    const ws = await createWorkspace(app, token, orgId, { metadata: { ok: '1' } });
    const res = await app.request('PUT', path(ws.id), {
      token,
      rawBody: '{"metadata":{"__proto__":"x"}}',
      headers: { 'content-type': 'application/json' },
    });

    if (res.status === 200) {
      expect(res.body.version, `a 200 must have stored the key: ${res.text}`).toBe(2);
      expect(Object.entries((await workspaceRow(app, ws.id))!.metadata)).toContainEqual(['__proto__', 'x']);
    } else {
      expectApiError(res, 400, 'BAD_REQUEST');
      await expectStored(ws);
    }
  });

  it('answers 400 when the merge would leave more than 50 metadata keys, and changes nothing', async () => {
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v']));
    const ws = await createWorkspace(app, token, orgId, { metadata: fifty });
    expectApiError(await put(ws.id, { metadata: { one_more: 'v' } }), 400, 'BAD_REQUEST');
    await expectStored(ws);

    const swapped = await put(ws.id, { metadata: { k0: null, one_more: 'v' } });
    expect(swapped.status, swapped.text).toBe(200);
    expect(Object.keys(swapped.body.metadata)).toHaveLength(50);
  });

  describe('conditional writes', () => {
    it('answers 412 to a stale If-Match and changes nothing', async () => {
      const ws = await createWorkspace(app, token, orgId);
      const v2 = (await put(ws.id, { description: 'v2' })).body as WorkspaceBody;

      const res = await put(ws.id, { description: 'lost update' }, { 'if-match': '"1"' });

      expectApiError(res, 412, 'PRECONDITION_FAILED');
      await expectStored(v2);
    });

    it('applies the write when If-Match names the current version, or is *', async () => {
      const ws = await createWorkspace(app, token, orgId);
      const matching = await put(ws.id, { description: 'matched' }, { 'if-match': '"1"' });
      expect(matching.status, matching.text).toBe(200);
      expect(matching.body.version).toBe(2);

      const star = await put(ws.id, { description: 'any version' }, { 'if-match': '*' });
      expect(star.status, star.text).toBe(200);
      expect(star.body).toMatchObject({ description: 'any version', version: 3 });
      await expectStored(star.body);
    });

    it.each([['2'], ['"1'], ['1"'], ['"1",,']])('answers 400 to the malformed If-Match %s and changes nothing', async (ifMatch) => {
      const ws = await createWorkspace(app, token, orgId);
      expectApiError(await put(ws.id, { description: 'x' }, { 'if-match': ifMatch }), 400, 'BAD_REQUEST');
      await expectStored(ws);
    });

    it.each([['"one"'], ['""'], ['W/"1"']])('answers 412 to the well-formed If-Match %s that can never be current', async (ifMatch) => {
      const ws = await createWorkspace(app, token, orgId);
      expectApiError(await put(ws.id, { description: 'x' }, { 'if-match': ifMatch }), 412, 'PRECONDITION_FAILED');
      await expectStored(ws);
    });

    it('honours expected_version in the body: 412 when stale, applied when current', async () => {
      const ws = await createWorkspace(app, token, orgId);
      const v2 = (await put(ws.id, { description: 'v2' })).body as WorkspaceBody;

      expectApiError(await put(ws.id, { description: 'stale', expected_version: 1 }), 412, 'PRECONDITION_FAILED');
      await expectStored(v2);

      const res = await put(ws.id, { description: 'current', expected_version: 2 });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ description: 'current', version: 3 });
    });

    it('answers 400 when If-Match and expected_version disagree, and accepts them when they agree', async () => {
      const ws = await createWorkspace(app, token, orgId);
      expectApiError(await put(ws.id, { description: 'x', expected_version: 1 }, { 'if-match': '"2"' }), 400, 'BAD_REQUEST');
      expectApiError(await put(ws.id, { description: 'x', expected_version: 2 }, { 'if-match': '"1"' }), 400, 'BAD_REQUEST');
      await expectStored(ws);

      const agreed = await put(ws.id, { description: 'agreed', expected_version: 1 }, { 'if-match': '"1"' });
      expect(agreed.status, agreed.text).toBe(200);
      expect(agreed.body.version).toBe(2);
    });

    it('answers 412 to a stale If-Match even when the write would change nothing', async () => {
      const ws = await createWorkspace(app, token, orgId);
      await put(ws.id, { description: 'v2' });
      expectApiError(await put(ws.id, { description: 'v2' }, { 'if-match': '"1"' }), 412, 'PRECONDITION_FAILED');
      expect((await workspaceRow(app, ws.id))!.version).toBe(2);
    });
  });

  it('answers 409 to a slug taken in the organization and changes nothing', async () => {
    const holder = await createWorkspace(app, token, orgId, { slug: 'slug-holder' });
    const ws = await createWorkspace(app, token, orgId, { description: 'mine' });

    const res = await put(ws.id, { slug: 'slug-holder', description: 'would change too' });

    expectApiError(res, 409, 'CONFLICT');
    await expectStored(ws);
    await expectStored(holder);
  });

  it('moves the default flag with is_default: true, bumping both versions', async () => {
    const org = await createOrganizationFor(app, token);
    const [oldDefaultId] = await defaultWorkspaceIds(app, org);
    const oldDefault = asBody((await workspaceRow(app, oldDefaultId!))!);
    const ws = await createWorkspace(app, token, org);

    const res = await put(ws.id, { is_default: true });

    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ id: ws.id, is_default: true, version: 2 });
    expect(res.headers.get('etag')).toBe('"2"');
    await expectStored(res.body);
    const formerRow = (await workspaceRow(app, oldDefault.id))!;
    expect(formerRow).toMatchObject({ is_default: false, version: oldDefault.version + 1 });
    expect(await defaultWorkspaceIds(app, org)).toEqual([ws.id]);

    const getFormer = await app.request('GET', path(oldDefault.id), { token });
    expect(getFormer.body).toMatchObject({ is_default: false, version: oldDefault.version + 1 });
    expect(getFormer.headers.get('etag')).toBe(`"${oldDefault.version + 1}"`);

    // Already the default: nothing changes.
    const again = await put(ws.id, { is_default: true });
    expect(again.status, again.text).toBe(200);
    expect(again.body.version).toBe(2);
    expect(await defaultWorkspaceIds(app, org)).toEqual([ws.id]);
  });

  it('leaves the default where it was when the same write fails (409 slug, 412 version)', async () => {
    const org = await createOrganizationFor(app, token);
    const [defaultId] = await defaultWorkspaceIds(app, org);
    const storedDefault = asBody((await workspaceRow(app, defaultId!))!);
    await createWorkspace(app, token, org, { slug: 'occupied' });
    const ws = await createWorkspace(app, token, org);

    expectApiError(await put(ws.id, { is_default: true, slug: 'occupied' }), 409, 'CONFLICT');
    expectApiError(await put(ws.id, { is_default: true }, { 'if-match': '"2"' }), 412, 'PRECONDITION_FAILED');

    expect(await defaultWorkspaceIds(app, org)).toEqual([defaultId]);
    await expectStored(storedDefault);
    await expectStored(ws);
  });

  it('answers 404 to a UUID that names nothing and 400 to a non-UUID id', async () => {
    expectApiError(await put(UNKNOWN_UUID, { description: 'x' }), 404, 'NOT_FOUND');
    expectIssueAt(await put('nope', { description: 'x' }), 'workspace_id');
  });
});

describe('DELETE /api/v1/workspaces/{workspace_id}', () => {
  it('answers 204 with no body and removes the row', async () => {
    const ws = await createWorkspace(app, token, orgId, { settings: { features: { gone: true } } });
    const before = await workspaceCount(app, orgId);

    const res = await del(ws.id);

    expect(res.status).toBe(204);
    expect(res.text).toBe('');
    expect(await workspaceRow(app, ws.id)).toBeNull();
    expect(await workspaceCount(app, orgId)).toBe(before - 1);
    expectApiError(await app.request('GET', path(ws.id), { token }), 404, 'NOT_FOUND');
    expectApiError(await del(ws.id), 404, 'NOT_FOUND');
  });

  it('answers 409 for the default workspace until the flag moves, then deletes the former default', async () => {
    const org = await createOrganizationFor(app, token);
    const [defaultId] = await defaultWorkspaceIds(app, org);
    const stored = asBody((await workspaceRow(app, defaultId!))!);

    expectApiError(await del(defaultId!), 409, 'CONFLICT');
    await expectStored(stored);

    const successor = await createWorkspace(app, token, org);
    expect((await put(successor.id, { is_default: true })).status).toBe(200);

    const res = await del(defaultId!);
    expect(res.status, res.text).toBe(204);
    expect(await workspaceRow(app, defaultId!)).toBeNull();
    expect(await defaultWorkspaceIds(app, org)).toEqual([successor.id]);
  });

  it('answers 412 to a stale If-Match and keeps the row; deletes with the current one', async () => {
    const ws = await createWorkspace(app, token, orgId);
    const v2 = (await put(ws.id, { description: 'v2' })).body as WorkspaceBody;

    expectApiError(await del(ws.id, { headers: { 'if-match': '"1"' } }), 412, 'PRECONDITION_FAILED');
    await expectStored(v2);

    expectApiError(await del(ws.id, { headers: { 'if-match': 'v2' } }), 400, 'BAD_REQUEST');
    await expectStored(v2);

    expect((await del(ws.id, { headers: { 'if-match': '"2"' } })).status).toBe(204);
    expect(await workspaceRow(app, ws.id)).toBeNull();
  });

  it('honours ?expected_version=N', async () => {
    const ws = await createWorkspace(app, token, orgId);
    await put(ws.id, { description: 'v2' });

    expectApiError(await del(ws.id, { query: '?expected_version=1' }), 412, 'PRECONDITION_FAILED');
    expect((await workspaceRow(app, ws.id))!.version).toBe(2);
    expectIssueAt(await del(ws.id, { query: '?expected_version=abc' }), 'expected_version');
    expectApiError(await del(ws.id, { query: '?expected_version=2', headers: { 'if-match': '"1"' } }), 400, 'BAD_REQUEST');
    expect(await workspaceRow(app, ws.id)).not.toBeNull();

    expect((await del(ws.id, { query: '?expected_version=2' })).status).toBe(204);
    expect(await workspaceRow(app, ws.id)).toBeNull();
  });

  it('answers 400 to an unknown query parameter and a non-UUID id', async () => {
    const ws = await createWorkspace(app, token, orgId);
    expectIssueAt(await del(ws.id, { query: '?force=true' }), 'force');
    expectIssueAt(await del('nope'), 'workspace_id');
    await expectStored(ws);
  });

  it('leaves a clone of the deleted workspace as it is (cloned_from_id stays)', async () => {
    const source = await createWorkspace(app, token, orgId);
    const clone = await app.request('POST', `${path(source.id)}/clone`, { token, body: { name: 'Clone Of Deleted' } });
    expect(clone.status, clone.text).toBe(201);

    expect((await del(source.id)).status).toBe(204);
    await expectStored(clone.body);
    expect(clone.body.cloned_from_id).toBe(source.id);
  });
});

describe('over tRPC', () => {
  it('creates, reads, updates with expected_version and deletes with the same outcomes', async () => {
    const trpc = app.trpc(token);

    const created = await trpc.workspaces.create.mutate({ organization_id: orgId, name: '  Over tRPC  ', metadata: { face: 'trpc' } });
    expect(created).toMatchObject({
      organization_id: orgId,
      name: 'Over tRPC',
      slug: 'over-trpc',
      version: 1,
      is_default: false,
      cloned_from_id: null,
      description: null,
    });
    expect(await workspaceRow(app, created.id)).toEqual({ ...created, settings: {} });

    expect(await trpc.workspaces.get.query({ workspace_id: created.id })).toEqual(created);

    const updated = await trpc.workspaces.update.mutate({ workspace_id: created.id, description: 'via trpc', expected_version: 1 });
    expect(updated).toMatchObject({ description: 'via trpc', version: 2 });
    await expectStored(updated);

    await expectTrpcFailure(
      trpc.workspaces.update.mutate({ workspace_id: created.id, description: 'stale', expected_version: 1 }),
      412,
      'PRECONDITION_FAILED',
    );
    await expectStored(updated);

    await expectTrpcFailure(trpc.workspaces.delete.mutate({ workspace_id: created.id, expected_version: 1 }), 412, 'PRECONDITION_FAILED');
    expect(await workspaceRow(app, created.id)).not.toBeNull();

    expect(await trpc.workspaces.delete.mutate({ workspace_id: created.id, expected_version: 2 })).toBeUndefined();
    expect(await workspaceRow(app, created.id)).toBeNull();
  });

  it('creates in an organization with createInOrganization', async () => {
    const created = await app.trpc(token).workspaces.createInOrganization.mutate({ org_id: orgId, name: 'Scoped Over tRPC' });
    expect(created).toMatchObject({ organization_id: orgId, slug: 'scoped-over-trpc', version: 1 });
    await expectStored(created);
  });

  it('fails with data.code, data.httpStatus and issues, never a stack', async () => {
    const trpc = app.trpc(token);
    const before = await workspaceCount(app);

    await expectTrpcFailure(trpc.workspaces.get.query({ workspace_id: UNKNOWN_UUID }), 404, 'NOT_FOUND');
    await expectTrpcFailure(
      trpc.workspaces.create.mutate({ organization_id: team.outsider.organization.id, name: 'Intruder' }),
      404,
      'NOT_FOUND',
    );

    const invalid = await expectTrpcFailure(
      trpc.workspaces.create.mutate({ organization_id: orgId, name: '  ', slug: 'UPPER' }),
      400,
      'BAD_REQUEST',
    );
    expect(invalid.data?.issues?.map((i) => i.path).sort()).toEqual(['name', 'slug']);

    const unknown = await expectTrpcFailure(
      trpc.workspaces.create.mutate({ organization_id: orgId, name: 'X', colour: 'red' } as never),
      400,
      'BAD_REQUEST',
    );
    expect(unknown.data?.issues).toEqual([{ path: 'colour', message: expect.any(String) }]);

    await createWorkspace(app, token, orgId, { slug: 'trpc-taken' });
    await expectTrpcFailure(trpc.workspaces.create.mutate({ organization_id: orgId, name: 'X', slug: 'trpc-taken' }), 409, 'CONFLICT');
    await expectTrpcFailure(trpc.workspaces.delete.mutate({ workspace_id: team.defaultWorkspaceId }), 409, 'CONFLICT');
    await expectTrpcFailure(trpc.workspaces.update.mutate({ workspace_id: team.defaultWorkspaceId }), 400, 'BAD_REQUEST');
    await expectTrpcFailure(
      trpc.workspaces.update.mutate({ workspace_id: team.defaultWorkspaceId, description: 'x', expected_version: '1' } as never),
      400,
      'BAD_REQUEST',
    );
    await expectTrpcFailure(app.trpc().workspaces.get.query({ workspace_id: team.defaultWorkspaceId }), 401, 'UNAUTHORIZED');

    expect(await workspaceCount(app)).toBe(before + 1);
    expect(await defaultWorkspaceIds(app, orgId)).toEqual([team.defaultWorkspaceId]);
    expect((await workspaceRow(app, team.defaultWorkspaceId))!.version).toBe(1);
  });
});
