import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { createTeam } from './helpers/org-helpers';
import { UNKNOWN_UUID } from './helpers/values';
import { workspaceCount } from './helpers/workspace-helpers';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';

/** POST /workspaces/{id}/clone: a deep, unlinked copy of description, metadata and settings overrides. */

let app: TestApp;
let owner: SignedUp;
let member: SignedUp;
let stranger: SignedUp;
let orgId: string;

const SOURCE_METADATA = { team: 'core', env: 'prod', 'cost.center': '42' };
const SOURCE_SETTINGS = {
  permissions: { default_role: 'viewer', allow_guests: true },
  features: { beta: true, legacy: false },
  integrations: { slack: { enabled: true, config: { channel: '#general', retries: 3, verbose: false } } },
};

beforeAll(async () => {
  app = await startTestApp();
  [owner, member, stranger] = await signupMany(app, ['Owner', 'Member', 'Stranger']);
  // The member is a plain member here, and owner of its own organization (from signup).
  orgId = await createTeam(app, owner, [[member, 'member']]);
});
afterAll(async () => {
  await app?.close();
});

let counter = 0;
const unique = (prefix: string) => `${prefix} ${++counter}`;

async function createSource(name = unique('Source'), extra: Record<string, unknown> = {}) {
  const res = await app.request('POST', '/api/v1/workspaces', {
    token: owner.token,
    body: { organization_id: orgId, name, description: 'The original', metadata: SOURCE_METADATA, settings: SOURCE_SETTINGS, ...extra },
  });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; slug: string; organization_id: string; version: number };
}

const clone = (sourceId: string, body: Record<string, unknown>, token = owner.token) =>
  app.request('POST', `/api/v1/workspaces/${sourceId}/clone`, { token, body });

async function row(id: string) {
  const [r] = await app.query<{
    organization_id: string;
    description: string | null;
    metadata: Record<string, string>;
    settings: unknown;
    is_default: boolean;
    cloned_from_id: string | null;
    version: number;
    slug: string;
  }>('select organization_id, slug, description, metadata, settings, is_default, cloned_from_id, version from workspaces where id = $1', [
    id,
  ]);
  return r ?? null;
}

const countIn = (organizationId: string) => workspaceCount(app, organizationId);

/** The stored metadata and settings overrides, compared exactly (toMatchObject would accept extra keys). */
async function expectStored(id: string, expected: { metadata: unknown; settings: unknown }) {
  const r = await row(id);
  expect({ metadata: r?.metadata, settings: r?.settings }).toEqual(expected);
}

const overridesOf = async (id: string) => {
  const res = await app.request('GET', `/api/v1/workspaces/${id}/settings`, { token: owner.token });
  expect(res.status, res.text).toBe(200);
  return res.body.overrides;
};

describe('POST /workspaces/{id}/clone', () => {
  it('answers 201 with Location and a deep copy of description, metadata and settings overrides', async () => {
    const source = await createSource('Source Main');
    const res = await clone(source.id, { name: 'Source Main Copy' });
    expect(res.status, res.text).toBe(201);
    const copy = res.body;
    expect(copy).toMatchObject({
      organization_id: orgId,
      name: 'Source Main Copy',
      slug: 'source-main-copy',
      description: 'The original',
      metadata: SOURCE_METADATA,
      is_default: false,
      cloned_from_id: source.id,
      version: 1,
    });
    expect(copy.id).not.toBe(source.id);
    expect(res.headers.get('location')).toBe(`/api/v1/workspaces/${copy.id}`);

    const viaLocation = await app.request('GET', res.headers.get('location')!, { token: owner.token });
    expect(viaLocation.status).toBe(200);
    expect(viaLocation.body).toEqual(copy);

    expect(await overridesOf(copy.id)).toEqual(SOURCE_SETTINGS);
    expect(await row(copy.id)).toMatchObject({
      organization_id: orgId,
      description: 'The original',
      metadata: SOURCE_METADATA,
      settings: SOURCE_SETTINGS,
      is_default: false,
      cloned_from_id: source.id,
      version: 1,
    });
    // The source is untouched.
    expect(await row(source.id)).toMatchObject({ version: 1, cloned_from_id: null });
    await expectStored(source.id, { metadata: SOURCE_METADATA, settings: SOURCE_SETTINGS });
    await expectStored(copy.id, { metadata: SOURCE_METADATA, settings: SOURCE_SETTINGS });
  });

  it('makes a non-default copy of the default workspace', async () => {
    const [def] = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and is_default', [orgId]);
    const res = await clone(def!.id, { name: unique('Default Copy') });
    expect(res.status, res.text).toBe(201);
    expect(res.body).toMatchObject({ is_default: false, cloned_from_id: def!.id, version: 1 });
    const defaults = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and is_default', [orgId]);
    expect(defaults).toEqual([{ id: def!.id }]);
  });

  it('derives the slug from the new name with a suffix when taken, or uses the one given', async () => {
    const source = await createSource('Slug Source');
    const first = await clone(source.id, { name: 'Twin Copy' });
    const second = await clone(source.id, { name: 'Twin Copy' });
    const given = await clone(source.id, { name: 'Whatever', slug: 'explicit-clone-slug' });
    expect([first.status, second.status, given.status]).toEqual([201, 201, 201]);
    expect([first.body.slug, second.body.slug, given.body.slug]).toEqual(['twin-copy', 'twin-copy-2', 'explicit-clone-slug']);
  });

  it('answers 409 to a taken slug and creates nothing', async () => {
    const source = await createSource();
    const before = await countIn(orgId);
    const res = await clone(source.id, { name: unique('Taken'), slug: source.slug });
    expectApiError(res, 409, 'CONFLICT');
    expect(await countIn(orgId)).toBe(before);
  });

  it('keeps the clone independent of later changes to the source, and the source of changes to the clone', async () => {
    const source = await createSource();
    const copy = (await clone(source.id, { name: unique('Independent') })).body;

    const putSource = await app.request('PUT', `/api/v1/workspaces/${source.id}`, {
      token: owner.token,
      body: { metadata: { team: 'changed', env: null, added: 'yes' } },
    });
    expect(putSource.status, putSource.text).toBe(200);
    const putSourceSettings = await app.request('PUT', `/api/v1/workspaces/${source.id}/settings`, {
      token: owner.token,
      body: {
        permissions: { allow_guests: false },
        features: { beta: null, fresh: true },
        integrations: { slack: { config: { channel: '#other', retries: null } } },
      },
    });
    expect(putSourceSettings.status, putSourceSettings.text).toBe(200);

    const copyNow = await app.request('GET', `/api/v1/workspaces/${copy.id}`, { token: owner.token });
    expect(copyNow.body.metadata).toEqual(SOURCE_METADATA);
    expect(copyNow.body.version).toBe(1);
    expect(await overridesOf(copy.id)).toEqual(SOURCE_SETTINGS);
    expect((await row(copy.id))?.version).toBe(1);
    await expectStored(copy.id, { metadata: SOURCE_METADATA, settings: SOURCE_SETTINGS });

    const sourceMetadata = { team: 'changed', 'cost.center': '42', added: 'yes' };
    const sourceSettings = {
      permissions: { default_role: 'viewer', allow_guests: false },
      features: { legacy: false, fresh: true },
      integrations: { slack: { enabled: true, config: { channel: '#other', verbose: false } } },
    };
    await expectStored(source.id, { metadata: sourceMetadata, settings: sourceSettings });

    // And the other way round.
    const putCopy = await app.request('PUT', `/api/v1/workspaces/${copy.id}`, {
      token: owner.token,
      body: { metadata: { team: null, mine: 'clone' } },
    });
    expect(putCopy.status, putCopy.text).toBe(200);
    const putCopySettings = await app.request('PUT', `/api/v1/workspaces/${copy.id}/settings`, {
      token: owner.token,
      body: {
        features: { legacy: true },
        integrations: { slack: { enabled: false, config: { channel: '#clone' } }, github: { enabled: true } },
      },
    });
    expect(putCopySettings.status, putCopySettings.text).toBe(200);

    const sourceNow = await app.request('GET', `/api/v1/workspaces/${source.id}`, { token: owner.token });
    expect(sourceNow.body.metadata).toEqual(sourceMetadata);
    expect(await overridesOf(source.id)).toEqual(sourceSettings);
    await expectStored(source.id, { metadata: sourceMetadata, settings: sourceSettings });
    await expectStored(copy.id, {
      metadata: { env: 'prod', 'cost.center': '42', mine: 'clone' },
      settings: {
        permissions: { default_role: 'viewer', allow_guests: true },
        features: { beta: true, legacy: true },
        integrations: {
          slack: { enabled: false, config: { channel: '#clone', retries: 3, verbose: false } },
          github: { enabled: true },
        },
      },
    });
  });

  it('leaves cloned_from_id as it is when the source is deleted', async () => {
    const source = await createSource();
    const copy = (await clone(source.id, { name: unique('Orphan') })).body;
    const del = await app.request('DELETE', `/api/v1/workspaces/${source.id}`, { token: owner.token });
    expect(del.status, del.text).toBe(204);
    const res = await app.request('GET', `/api/v1/workspaces/${copy.id}`, { token: owner.token });
    expect(res.status).toBe(200);
    expect(res.body.cloned_from_id).toBe(source.id);
    expect(await row(source.id)).toBeNull();
    expect((await row(copy.id))?.cloned_from_id).toBe(source.id);
  });

  it('puts the clone into another organization where the caller is admin', async () => {
    const source = await createSource('Travelling');
    const target = await createTeam(app, owner);
    const res = await clone(source.id, { name: 'Travelling', organization_id: target });
    expect(res.status, res.text).toBe(201);
    // The slug is free in the target, whatever the source's organization holds.
    expect(res.body).toMatchObject({
      organization_id: target,
      slug: 'travelling',
      cloned_from_id: source.id,
      metadata: SOURCE_METADATA,
      is_default: false,
    });
    expect(res.headers.get('location')).toBe(`/api/v1/workspaces/${res.body.id}`);
    expect(await row(res.body.id)).toMatchObject({ organization_id: target, settings: SOURCE_SETTINGS });
    expect(await countIn(target)).toBe(2);
  });

  it('needs membership to read the source and admin in the target', async () => {
    const source = await createSource();
    const before = await countIn(orgId);
    const ownOrg = member.organization.id;
    const ownBefore = await countIn(ownOrg);

    // A plain member may read the source but not create in its organization…
    expectApiError(await clone(source.id, { name: unique('By member') }, member.token), 403, 'FORBIDDEN');
    // …but may copy it into an organization where it is admin (here: owner).
    const intoOwn = await clone(source.id, { name: unique('Into own'), organization_id: ownOrg }, member.token);
    expect(intoOwn.status, intoOwn.text).toBe(201);
    expect(intoOwn.body).toMatchObject({ organization_id: ownOrg, cloned_from_id: source.id });

    // A non-member of the source's organization: 404, even into its own organization.
    expectApiError(
      await clone(source.id, { name: unique('Stranger'), organization_id: stranger.organization.id }, stranger.token),
      404,
      'NOT_FOUND',
    );
    // A target organization the caller is not in: 404; an unknown source: 404.
    expectApiError(await clone(source.id, { name: unique('Nowhere'), organization_id: stranger.organization.id }), 404, 'NOT_FOUND');
    expectApiError(await clone(UNKNOWN_UUID, { name: unique('Ghost') }), 404, 'NOT_FOUND');

    expect(await countIn(orgId)).toBe(before);
    expect(await countIn(ownOrg)).toBe(ownBefore + 1);
    expect(await countIn(stranger.organization.id)).toBe(1);
  });

  it('lets the body override the description, and null clear it', async () => {
    const source = await createSource();
    const overridden = await clone(source.id, { name: unique('Described'), description: 'My own' });
    const cleared = await clone(source.id, { name: unique('Blank'), description: null });
    expect(overridden.status, overridden.text).toBe(201);
    expect(cleared.status, cleared.text).toBe(201);
    expect(overridden.body.description).toBe('My own');
    expect(cleared.body.description).toBeNull();
    expect((await row(overridden.body.id))?.description).toBe('My own');
    expect((await row(cleared.body.id))?.description).toBeNull();
    // Metadata is still copied.
    expect(cleared.body.metadata).toEqual(SOURCE_METADATA);
  });

  it('rejects an invalid body with 400 and creates nothing', async () => {
    const source = await createSource();
    const before = await countIn(orgId);
    expectIssueAt(await clone(source.id, { name: '' }), 'name');
    expectIssueAt(await clone(source.id, { name: unique('X'), metadata: { a: 'b' } }), 'metadata');
    expectIssueAt(await clone(source.id, { name: unique('X'), slug: 'Not A Slug' }), 'slug');
    expect(await countIn(orgId)).toBe(before);
  });
});

describe('workspaces.clone over tRPC', () => {
  it('clones, and reports conflicts and unknown sources as tRPC errors', async () => {
    const source = await createSource();
    const client = app.trpc(owner.token);
    const copy = await client.workspaces.clone.mutate({ workspace_id: source.id, name: unique('Via tRPC'), description: 'rpc' });
    expect(copy).toMatchObject({ cloned_from_id: source.id, is_default: false, version: 1, description: 'rpc', metadata: SOURCE_METADATA });
    expect(await row(copy.id)).toMatchObject({ settings: SOURCE_SETTINGS, cloned_from_id: source.id });

    const before = await countIn(orgId);
    await expectTrpcFailure(client.workspaces.clone.mutate({ workspace_id: source.id, name: 'Dup', slug: copy.slug }), 409, 'CONFLICT');
    const strangerError = await expectTrpcFailure(
      app.trpc(stranger.token).workspaces.clone.mutate({ workspace_id: source.id, name: 'Nope' }),
      404,
      'NOT_FOUND',
    );
    expect(strangerError.message).toBe('Workspace not found');
    expect(await countIn(orgId)).toBe(before);
  });
});

describe.runIf(Boolean(process.env.DATABASE_URL))('POST /workspaces/{id}/clone — concurrency (PostgreSQL)', () => {
  it('gives 10 concurrent clones with the same name distinct derived slugs instead of failing some', async () => {
    const source = await createSource();
    const name = unique('Racing Copy');
    const answers = await Promise.all(Array.from({ length: 10 }, () => clone(source.id, { name })));
    expect(
      answers.map((a) => a.status),
      answers.map((a) => a.text.slice(0, 200)).join('\n'),
    ).toEqual(Array(10).fill(201));
    const rows = await app.query<{ slug: string }>('select slug from workspaces where organization_id = $1 and name = $2', [orgId, name]);
    expect(new Set(rows.map((r) => r.slug)).size).toBe(10);
  });
});
