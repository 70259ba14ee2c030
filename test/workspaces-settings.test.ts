import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { signupMany, startTestApp, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';
import { expectApiError } from './helpers/errors';
import { createOrganizationFor } from './helpers/workspace-helpers';

/** GET and PUT /api/v1/workspaces/{workspace_id}/settings (and workspaces.updateSettings over tRPC). */

const DEFAULT_PERMISSIONS = { default_role: 'member', allow_guests: false, allow_member_invites: true, visibility: 'organization' };
const DEFAULT_SOURCES = { default_role: 'default', allow_guests: 'default', allow_member_invites: 'default', visibility: 'default' };

let app: TestApp;
let owner: SignedUp;
let outsider: SignedUp;

const settingsPath = (workspaceId: string) => `/api/v1/workspaces/${workspaceId}/settings`;
const getSettings = (workspaceId: string, token = owner.token) => app.request('GET', settingsPath(workspaceId), { token });
const putSettings = (workspaceId: string, body: unknown, headers?: Record<string, string>, token = owner.token) =>
  app.request('PUT', settingsPath(workspaceId), { token, body, headers });
const putRaw = (workspaceId: string, rawBody: string) =>
  app.request('PUT', settingsPath(workspaceId), { token: owner.token, rawBody, headers: { 'content-type': 'application/json' } });

async function putOrgSettings(orgId: string, body: unknown) {
  const res = await app.request('PUT', `/api/v1/organizations/${orgId}/settings`, { token: owner.token, body });
  expect(res.status, res.text).toBe(200);
  return res.body;
}

let workspaceCounter = 0;
async function createWorkspace(organizationId = owner.organization.id): Promise<string> {
  const res = await app.request('POST', '/api/v1/workspaces', {
    token: owner.token,
    body: { organization_id: organizationId, name: `Settings ${++workspaceCounter}` },
  });
  expect(res.status, res.text).toBe(201);
  return res.body.id;
}

async function stored(workspaceId: string): Promise<{ settings: unknown; version: number }> {
  const [row] = await app.query<{ settings: unknown; version: number }>('select settings, version from workspaces where id = $1', [
    workspaceId,
  ]);
  return row!;
}

function expectOk(res: ApiResponse, version: number) {
  expect(res.status, res.text).toBe(200);
  expect(res.body.version).toBe(version);
  expect(res.headers.get('etag')).toBe(`"${version}"`);
  expect(res.headers.get('cache-control')).toBe('no-store');
}

beforeAll(async () => {
  app = await startTestApp({ RATE_LIMIT_PER_MINUTE: '0' });
  [owner, outsider] = await signupMany(app, ['Owner', 'Outsider']);
});

afterAll(async () => {
  await app?.close();
});

describe('GET /workspaces/{id}/settings', () => {
  it('answers a fresh workspace with the system defaults, no overrides, every source "default"', async () => {
    const id = await createWorkspace();
    const res = await getSettings(id);
    expectOk(res, 1);
    expect(res.body).toEqual({
      workspace_id: id,
      version: 1,
      effective: { permissions: DEFAULT_PERMISSIONS, features: {}, integrations: {} },
      overrides: {},
      sources: { permissions: DEFAULT_SOURCES, features: {}, integrations: {} },
      locked: [],
      shadowed: [],
    });
  });

  it('answers 404 to a non-member, whatever If-Match says, and changes nothing', async () => {
    const id = await createWorkspace();
    expectApiError(await getSettings(id, outsider.token), 404, 'NOT_FOUND');
    for (const ifMatch of ['"1"', '"7"']) {
      expectApiError(await putSettings(id, { features: { x: true } }, { 'if-match': ifMatch }, outsider.token), 404, 'NOT_FOUND');
    }
    expect(await stored(id)).toEqual({ settings: {}, version: 1 });
  });
});

describe('settings inheritance', () => {
  let org: string;
  let first: string;
  let second: string;
  beforeAll(async () => {
    org = await createOrganizationFor(app, owner.token, 'Inheritance');
    [first, second] = [await createWorkspace(org), await createWorkspace(org)];
  });

  it('shows an organization value with source "organization", an override over it with "workspace", and the organization value again once the override is removed', async () => {
    await putOrgSettings(org, { permissions: { allow_guests: true }, features: { beta: true } });
    let res = await getSettings(first);
    expectOk(res, 1);
    expect(res.body.effective.permissions).toEqual({ ...DEFAULT_PERMISSIONS, allow_guests: true });
    expect(res.body.sources.permissions).toEqual({ ...DEFAULT_SOURCES, allow_guests: 'organization' });
    expect(res.body.effective.features).toEqual({ beta: true });
    expect(res.body.sources.features).toEqual({ beta: 'organization' });
    expect(res.body.overrides).toEqual({});

    res = await putSettings(first, { permissions: { allow_guests: false }, features: { beta: false } });
    expectOk(res, 2);
    expect(res.body.overrides).toEqual({ permissions: { allow_guests: false }, features: { beta: false } });
    expect(res.body.effective.permissions.allow_guests).toBe(false);
    expect(res.body.sources.permissions.allow_guests).toBe('workspace');
    expect(res.body.effective.features).toEqual({ beta: false });
    expect(res.body.sources.features).toEqual({ beta: 'workspace' });
    expect((await getSettings(first)).body).toEqual(res.body);

    res = await putSettings(first, { permissions: { allow_guests: null }, features: { beta: null } });
    expectOk(res, 3);
    expect(res.body.overrides).toEqual({});
    expect(res.body.effective.permissions.allow_guests).toBe(true);
    expect(res.body.sources.permissions.allow_guests).toBe('organization');
    expect(res.body.sources.features).toEqual({ beta: 'organization' });
    expect(await stored(first)).toEqual({ settings: {}, version: 3 });
  });

  it('propagates a later organization change at once to every workspace', async () => {
    await putSettings(second, { permissions: { visibility: 'private' } });
    await putOrgSettings(org, { permissions: { default_role: 'viewer', visibility: 'organization' } });
    const [a, b] = await Promise.all([getSettings(first), getSettings(second)]);
    for (const res of [a, b]) {
      expect(res.body.effective.permissions.default_role).toBe('viewer');
      expect(res.body.sources.permissions.default_role).toBe('organization');
    }
    // the override still wins over the organization's new value
    expect(b.body.effective.permissions.visibility).toBe('private');
    expect(b.body.sources.permissions.visibility).toBe('workspace');
    expect(a.body.sources.permissions.visibility).toBe('organization');
    expect(a.body.version).toBe(3); // an organization change is not a workspace change
  });

  it('gives an integration named only at the organization the defaults beneath it, and merges config key by key', async () => {
    await putOrgSettings(org, { integrations: { jira: {}, slack: { config: { channel: '#general', retries: 3 } } } });
    await putSettings(first, { integrations: { slack: { enabled: true, config: { channel: '#team', urgent: false } } } });
    const [a, b] = await Promise.all([getSettings(first), getSettings(second)]);
    expect(a.body.effective.integrations).toEqual({
      jira: { enabled: false, config: {} },
      slack: { enabled: true, config: { channel: '#team', retries: 3, urgent: false } },
    });
    expect(a.body.sources.integrations).toEqual({
      jira: { enabled: 'default', config: {} },
      slack: { enabled: 'workspace', config: { channel: 'workspace', retries: 'organization', urgent: 'workspace' } },
    });
    expect(a.body.overrides.integrations).toEqual({ slack: { enabled: true, config: { channel: '#team', urgent: false } } });
    expect(b.body.effective.integrations).toEqual({
      jira: { enabled: false, config: {} },
      slack: { enabled: false, config: { channel: '#general', retries: 3 } },
    });
    expect(b.body.sources.integrations.slack).toEqual({ enabled: 'default', config: { channel: 'organization', retries: 'organization' } });
  });

  it('gives an integration named only by the workspace the defaults beneath it', async () => {
    const res = await putSettings(second, { integrations: { github: { config: { repo: 'a/b' } } } });
    expect(res.status).toBe(200);
    expect(res.body.effective.integrations.github).toEqual({ enabled: false, config: { repo: 'a/b' } });
    expect(res.body.sources.integrations.github).toEqual({ enabled: 'default', config: { repo: 'workspace' } });
  });
});

describe('PUT /workspaces/{id}/settings', () => {
  it('deep-merges into the overrides, bumping version only on a real change', async () => {
    const id = await createWorkspace();
    expectOk(await putSettings(id, { features: { a: true } }), 2);
    let res = await putSettings(id, { features: { b: false }, permissions: { visibility: 'private' } });
    expectOk(res, 3);
    res = await putSettings(id, { integrations: { slack: { config: { channel: '#x' } } } });
    expectOk(res, 4);
    res = await putSettings(id, { integrations: { slack: { enabled: true } } });
    expectOk(res, 5);
    const overrides = {
      features: { a: true, b: false },
      permissions: { visibility: 'private' },
      integrations: { slack: { enabled: true, config: { channel: '#x' } } },
    };
    expect(res.body.overrides).toEqual(overrides);
    expect(await stored(id)).toEqual({ settings: overrides, version: 5 });

    // no-op writes: the same values, an empty document, removing what is not there
    for (const body of [
      { features: { a: true } },
      {},
      { features: { zzz: null } },
      { integrations: { slack: { config: { channel: '#x' } } } },
    ]) {
      res = await putSettings(id, body);
      expectOk(res, 5);
      expect(res.body.overrides).toEqual(overrides);
    }
    expect(await stored(id)).toEqual({ settings: overrides, version: 5 });
  });

  it('removes a whole section with null', async () => {
    const id = await createWorkspace();
    await putSettings(id, { features: { a: true, b: true }, permissions: { allow_guests: true } });
    const res = await putSettings(id, { features: null });
    expectOk(res, 3);
    expect(res.body.overrides).toEqual({ permissions: { allow_guests: true } });
  });

  it('answers 412 to a stale If-Match and changes nothing; a current one, or *, writes', async () => {
    const id = await createWorkspace();
    await putSettings(id, { features: { a: true } });
    const before = await stored(id);
    expectApiError(await putSettings(id, { features: { b: true } }, { 'if-match': '"1"' }), 412, 'PRECONDITION_FAILED');
    expect(await stored(id)).toEqual(before);
    expectOk(await putSettings(id, { features: { b: true } }, { 'if-match': '"2"' }), 3);
    expectOk(await putSettings(id, { features: { c: true } }, { 'if-match': '*' }), 4);
    expect((await stored(id)).settings).toEqual({ features: { a: true, b: true, c: true } });
  });

  it('answers 400 when If-Match and expected_version disagree', async () => {
    const id = await createWorkspace();
    expectApiError(await putSettings(id, { features: { a: true }, expected_version: 2 }, { 'if-match': '"1"' }), 400, 'BAD_REQUEST');
    expect(await stored(id)).toEqual({ settings: {}, version: 1 });
  });

  it('takes expected_version over tRPC: stale is 412 with nothing changed, current writes', async () => {
    const id = await createWorkspace();
    const client = app.trpc(owner.token);
    const error = await client.workspaces.updateSettings
      .mutate({ workspace_id: id, expected_version: 5, features: { a: true } })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error as TRPCClientError<never>).data).toMatchObject({ code: 'PRECONDITION_FAILED', httpStatus: 412 });
    expect(await stored(id)).toEqual({ settings: {}, version: 1 });
    const res = await client.workspaces.updateSettings.mutate({ workspace_id: id, expected_version: 1, features: { a: true } });
    expect(res.version).toBe(2);
    expect(res.overrides).toEqual({ features: { a: true } });
    expect(await stored(id)).toEqual({ settings: { features: { a: true } }, version: 2 });
  });

  describe('validation', () => {
    let id: string;
    let before: { settings: unknown; version: number };
    beforeAll(async () => {
      id = await createWorkspace();
      await putSettings(id, { features: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`flag_${i}`, true])) });
      before = await stored(id);
    });
    const tooMany = Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`f${i}`, true]));
    const fortyMore = Object.fromEntries(Array.from({ length: 41 }, (_, i) => [`more_${i}`, true]));

    it.each([
      ['a key with upper case', { features: { BadKey: true } }],
      ['a key starting with a digit', { features: { '1flag': true } }],
      ['a key with a space', { integrations: { 'my app': { enabled: true } } }],
      ['a key over 64 chars', { features: { ['a'.repeat(65)]: true } }],
      ['a config key "constructor"', { integrations: { x: { config: { constructor: 1 } } } }],
      ['a feature "prototype"', { features: { prototype: true } }],
      ['101 flags in one write', { features: tooMany }],
      ['60 stored + 41 new flags', { features: fortyMore }],
      ['the string "true" for a feature', { features: { x: 'true' } }],
      ['the string "false" for a permission', { permissions: { allow_guests: 'false' } }],
      ['the string "true" for enabled', { integrations: { slack: { enabled: 'true' } } }],
      ['1 for a boolean', { permissions: { allow_member_invites: 1 } }],
      ['an unknown section', { themes: { dark: true } }],
      ['an unknown permission', { permissions: { is_admin: true } }],
      ['an unknown integration field', { integrations: { slack: { secret: 'x' } } }],
      ['an unknown role', { permissions: { default_role: 'owner' } }],
      ['a config string over 500 chars', { integrations: { slack: { config: { note: 'x'.repeat(501) } } } }],
      ['a config object value', { integrations: { slack: { config: { nested: { a: 1 } } } } }],
      ['a section that is not an object', { features: ['a'] }],
    ])('answers 400 to %s and changes nothing', async (_, body) => {
      expectApiError(await putSettings(id, body), 400, 'BAD_REQUEST');
      expect(await stored(id)).toEqual(before);
    });

    it.each([
      ['features', '{"features":{"__proto__":true}}'],
      ['features, with a sibling', '{"features":{"ok":true,"__proto__":{"polluted":true}}}'],
      ['integrations', '{"integrations":{"__proto__":{"enabled":true}}}'],
      ['config', '{"integrations":{"x":{"config":{"__proto__":"y"}}}}'],
      ['the document', '{"__proto__":{"features":{"a":true}}}'],
    ])('answers 400 to a __proto__ key in %s and changes nothing', async (_, raw) => {
      expectApiError(await putRaw(id, raw), 400, 'BAD_REQUEST');
      expect(await stored(id)).toEqual(before);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    });

    it('answers 400 over tRPC to a string boolean too', async () => {
      const error = await app
        .trpc(owner.token)
        .workspaces.updateSettings.mutate({ workspace_id: id, permissions: { allow_guests: 'false' as never } })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TRPCClientError);
      expect((error as TRPCClientError<never>).data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
      expect(await stored(id)).toEqual(before);
    });
  });
});

describe('PUT /workspaces/{id}/settings under concurrency', () => {
  it.runIf(process.env.DATABASE_URL)(
    'lets exactly one of 5 writes with the same If-Match win, without a lost update (PostgreSQL)',
    async () => {
      expect(app.engine).toBe('postgres');
      const id = await createWorkspace();
      const { version } = await stored(id);
      const answers = await Promise.all(
        Array.from({ length: 5 }, (_, i) => putSettings(id, { features: { [`race_${i}`]: true } }, { 'if-match': `"${version}"` })),
      );
      const winners = answers.flatMap((res, i) => (res.status === 200 ? [i] : []));
      expect(answers.map((r) => r.status).sort()).toEqual([200, 412, 412, 412, 412]);
      for (const res of answers) if (res.status === 412) expect(res.body.code).toBe('PRECONDITION_FAILED');
      expect(await stored(id)).toEqual({ settings: { features: { [`race_${winners[0]}`]: true } }, version: version + 1 });
    },
  );

  it.runIf(process.env.DATABASE_URL)(
    'applies all of 5 unconditional concurrent writes: every flag kept, version +5 (PostgreSQL)',
    async () => {
      const id = await createWorkspace();
      const { version } = await stored(id);
      const answers = await Promise.all(Array.from({ length: 5 }, (_, i) => putSettings(id, { features: { [`flag_${i}`]: true } })));
      expect(answers.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect(answers.map((r) => r.body.version as number).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5].map((n) => version + n));
      const after = await stored(id);
      expect(after.version).toBe(version + 5);
      expect(after.settings).toEqual({ features: Object.fromEntries(Array.from({ length: 5 }, (_, i) => [`flag_${i}`, true])) });
    },
  );
});
