import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupMany, startTestApp, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';
import { DEFAULT_EFFECTIVE, SYSTEM_DEFAULT_PERMISSIONS, createTeam } from './helpers/org-helpers';
import { isoSql, withRawTransaction } from './helpers/sql';
import { UNKNOWN_UUID } from './helpers/values';
import { uniqueWorkspaceName, workspaceCount } from './helpers/workspace-helpers';

/**
 * Locked organization settings (README "Locked settings"): `locks` on the organization's
 * settings PUT/GET, their validation and storage, how they override workspaces at read time
 * (`effective`, `sources`, `locked`, `shadowed`), and the 409 every workspace write under a
 * lock answers (settings PUT, create, clone, provision), on both faces; on PostgreSQL, that a
 * workspace write reads the locks under the organization's row lock.
 */

let app: TestApp;
let owner: SignedUp;
let admin: SignedUp;
let member: SignedUp;
let outsider: SignedUp;
const onPostgres = Boolean(process.env.DATABASE_URL);

beforeAll(async () => {
  app = await startTestApp();
  [owner, admin, member, outsider] = await signupMany(app, ['Owner', 'Admin', 'Member', 'Outsider']);
});
afterAll(async () => {
  await app?.close();
});

const DEFAULT_SOURCES = { default_role: 'default', allow_guests: 'default', allow_member_invites: 'default', visibility: 'default' };
const ALL_ORGANIZATION = {
  default_role: 'organization',
  allow_guests: 'organization',
  allow_member_invites: 'organization',
  visibility: 'organization',
};

/** A fresh organization of the owner's, with `admin` as admin and `member` as a plain member. */
const team = () =>
  createTeam(app, owner, [
    [admin, 'admin'],
    [member, 'member'],
  ]);

const orgSettingsPath = (org: string) => `/api/v1/organizations/${org}/settings`;
const wsSettingsPath = (ws: string) => `/api/v1/workspaces/${ws}/settings`;

const putOrg = (org: string, body: unknown, token = admin.token) => app.request('PUT', orgSettingsPath(org), { token, body });
const getOrg = (org: string, token = member.token) => app.request('GET', orgSettingsPath(org), { token });
const putWs = (ws: string, body: unknown, token = admin.token) => app.request('PUT', wsSettingsPath(ws), { token, body });
// Read by an owner: several workspaces below are private (visibility is only a value here), and a plain member would get 404.
const getWs = (ws: string, token = owner.token) => app.request('GET', wsSettingsPath(ws), { token });

/** The organization's stored settings, locks and updated_at. */
async function orgState(org: string) {
  const [row] = await app.query<{ settings: unknown; settings_locks: unknown; updated_at: string }>(
    `select settings, settings_locks, ${isoSql('updated_at')} as updated_at from organizations where id = $1`,
    [org],
  );
  return row!;
}

/** The workspace's stored overrides and version (null when there is no such row). */
async function wsState(ws: string) {
  const [row] = await app.query<{ settings: unknown; version: number }>('select settings, version from workspaces where id = $1', [ws]);
  return row ?? null;
}

/** PUT of the organization's settings that must answer 200; checks a member's GET answers the same and the stored locks. */
async function writeOrg(org: string, body: Record<string, unknown>) {
  const res = await putOrg(org, body);
  expect(res.status, res.text).toBe(200);
  const read = await getOrg(org);
  expect(read.status, read.text).toBe(200);
  expect(read.body).toEqual(res.body);
  expect((await orgState(org)).settings_locks).toEqual(res.body.locks);
  return res.body as { organization_id: string; settings: any; effective: any; locks: string[] };
}

/** A workspace in `org` (created by the owner) with `settings` as its overrides; returns its id. */
async function newWorkspace(org: string, settings?: Record<string, unknown>): Promise<string> {
  const res = await app.request('POST', '/api/v1/workspaces', {
    token: owner.token,
    body: { organization_id: org, name: uniqueWorkspaceName('Locks'), ...(settings ? { settings } : {}) },
  });
  expect(res.status, res.text).toBe(201);
  return res.body.id;
}

/** The workspace settings GET, which must answer 200; also checks the tRPC face answers the same. */
async function readWs(ws: string) {
  const res = await getWs(ws);
  expect(res.status, res.text).toBe(200);
  expect(res.headers.get('cache-control')).toBe('no-store');
  expect(await app.trpc(owner.token).workspaces.getSettings.query({ workspace_id: ws })).toEqual(res.body);
  return res.body as {
    workspace_id: string;
    version: number;
    effective: any;
    overrides: any;
    sources: any;
    locked: string[];
    shadowed: string[];
  };
}

const sorted = (paths: readonly string[]) => [...paths].sort();

/**
 * Each entry of `refused` is a path the conflict must name (or, as an array, alternatives: a
 * write under or above a lock may be reported at the written path or at the lock's).
 */
type Refused = Array<string | string[]>;

function checkNamed(message: string, issuePaths: string[], refused: Refused, context: string) {
  for (const entry of refused) {
    const options = Array.isArray(entry) ? entry : [entry];
    expect(
      options.some((p) => message.includes(p)),
      `message ${JSON.stringify(message)} names one of ${options.join(', ')}`,
    ).toBe(true);
    // an issue's path may carry the input's prefix (`settings.…`, `workspaces.1.settings.…`)
    expect(
      options.some((p) => issuePaths.some((issue) => issue === p || issue.endsWith(`.${p}`))),
      `issues ${JSON.stringify(issuePaths)} hold one of ${options.join(', ')} (${context})`,
    ).toBe(true);
  }
}

/** A REST 409 CONFLICT `Locked by the organization: <paths>` with each refused path in `issues`. */
function expectLocked(res: ApiResponse, refused: Refused) {
  expectApiError(res, 409, 'CONFLICT');
  expect(res.body.message).toMatch(/^Locked by the organization/);
  expect(Array.isArray(res.body.issues), res.text).toBe(true);
  const issues = res.body.issues as Array<{ path: string; message: string }>;
  for (const issue of issues) expect(typeof issue.message).toBe('string');
  checkNamed(
    res.body.message,
    issues.map((i) => i.path),
    refused,
    res.text,
  );
}

/** The same over tRPC: data.code CONFLICT, httpStatus 409, the paths in the message and data.issues. */
async function expectTrpcLocked(call: Promise<unknown>, refused: Refused) {
  const error = await expectTrpcFailure(call, 409, 'CONFLICT');
  expect(error.message).toMatch(/^Locked by the organization/);
  const issues = (error.data?.issues ?? []) as Array<{ path: string }>;
  checkNamed(
    error.message,
    issues.map((i) => i.path),
    refused,
    JSON.stringify(error.data),
  );
}

// ---------------------------------------------------------------------------------------------

describe('PUT /organizations/{org_id}/settings with locks', () => {
  it('answers a fresh organization with locks: [] (stored as [])', async () => {
    const org = await team();
    const res = await getOrg(org);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ organization_id: org, settings: {}, effective: DEFAULT_EFFECTIVE, locks: [] });
    expect((await orgState(org)).settings_locks).toEqual([]);
  });

  it('stores the locks sorted and without repeats beside the settings; PUT and GET answer them', async () => {
    const org = await team();
    const res = await putOrg(org, {
      permissions: { allow_guests: true },
      locks: ['permissions.allow_guests', 'integrations.slack', 'features.beta', 'integrations.slack', 'features.beta'],
    });
    expect(res.status, res.text).toBe(200);
    const locks = ['features.beta', 'integrations.slack', 'permissions.allow_guests'];
    expect(res.body).toEqual({
      organization_id: org,
      settings: { permissions: { allow_guests: true } },
      effective: { ...DEFAULT_EFFECTIVE, permissions: { ...SYSTEM_DEFAULT_PERMISSIONS, allow_guests: true } },
      locks,
    });
    expect((await getOrg(org)).body).toEqual(res.body);
    const stored = await orgState(org);
    expect(stored.settings).toEqual({ permissions: { allow_guests: true } });
    expect(stored.settings_locks).toEqual(locks);
  });

  it('keeps the locks when `locks` is left out, replaces them when given, and clears them with [] or null', async () => {
    const org = await team();
    await writeOrg(org, { locks: ['permissions', 'features.beta'] });

    let body = await writeOrg(org, { features: { beta: true } });
    expect(body.locks).toEqual(['features.beta', 'permissions']);
    expect(body.settings).toEqual({ features: { beta: true } });

    body = await writeOrg(org, { locks: ['integrations'] });
    expect(body.locks).toEqual(['integrations']);
    expect(body.settings).toEqual({ features: { beta: true } });

    body = await writeOrg(org, { locks: [] });
    expect(body.locks).toEqual([]);
    expect((await orgState(org)).settings_locks).toEqual([]);

    await writeOrg(org, { locks: ['features'] });
    body = await writeOrg(org, { locks: null });
    expect(body.locks).toEqual([]);
    expect(body.settings).toEqual({ features: { beta: true } });
    expect(await orgState(org)).toMatchObject({ settings: { features: { beta: true } }, settings_locks: [] });
  });

  it('takes and answers locks over tRPC, the same as REST', async () => {
    const org = await team();
    const client = app.trpc(admin.token);
    const updated = await client.organizations.updateSettings.mutate({
      org_id: org,
      features: { beta: true },
      locks: ['features', 'permissions.visibility', 'features'],
    });
    expect(updated).toEqual({
      organization_id: org,
      settings: { features: { beta: true } },
      effective: { ...DEFAULT_EFFECTIVE, features: { beta: true } },
      locks: ['features', 'permissions.visibility'],
    });
    expect(await app.trpc(member.token).organizations.getSettings.query({ org_id: org })).toEqual(updated);
    expect((await getOrg(org)).body).toEqual(updated);
    expect((await orgState(org)).settings_locks).toEqual(['features', 'permissions.visibility']);

    const kept = await client.organizations.updateSettings.mutate({ org_id: org, features: { beta: false } });
    expect(kept.locks).toEqual(['features', 'permissions.visibility']);
    const cleared = await client.organizations.updateSettings.mutate({ org_id: org, locks: null });
    expect(cleared.locks).toEqual([]);
    expect(cleared.settings).toEqual({ features: { beta: false } });
    expect((await orgState(org)).settings_locks).toEqual([]);
  });

  it('accepts every documented form of path, dotted keys included', async () => {
    const org = await team();
    const forms = [
      'permissions',
      'permissions.default_role',
      'permissions.allow_guests',
      'permissions.allow_member_invites',
      'permissions.visibility',
      'features',
      'features.beta',
      // after "features." the rest is the flag
      'features.beta.editor',
      'features.new-editor',
      'features.x_y.z-1',
      `features.${'a'.repeat(64)}`,
      'integrations',
      'integrations.slack',
      'integrations.slack.enabled',
      'integrations.slack.config',
      'integrations.slack.config.channel',
      // config key "a.b" of slack: after "config." the rest is the key
      'integrations.slack.config.a.b',
      `integrations.${'i'.repeat(64)}.config.${'k'.repeat(64)}`,
    ];
    const res = await putOrg(org, { locks: forms });
    expect(res.status, res.text).toBe(200);
    expect(res.body.locks).toEqual(sorted(forms));
    expect((await orgState(org)).settings_locks).toEqual(sorted(forms));
    expect((await getOrg(org)).body.locks).toEqual(sorted(forms));
  });

  it('accepts 100 distinct paths', async () => {
    const org = await team();
    const hundred = Array.from({ length: 100 }, (_, i) => `features.f${i}`);
    const body = await writeOrg(org, { locks: hundred });
    expect(body.locks).toEqual(sorted(hundred));
    expect(body.locks).toHaveLength(100);
  });

  describe('validation', () => {
    /** One organization for the rejected writes, with settings and locks of its own that must stay. */
    let org: string;
    let before: Awaited<ReturnType<typeof orgState>>;
    beforeAll(async () => {
      org = await team();
      await writeOrg(org, { features: { keep: true }, locks: ['features.keep'] });
      before = await orgState(org);
    });

    it.each([
      ['an unknown permission', 'permissions.nope'],
      ['an unknown section', 'foo'],
      ['an empty flag', 'features.'],
      ['an upper-case integration name', 'integrations.X'],
      ['an integration name with an upper-case part', 'integrations.x.Bogus'],
      ['an upper-case flag', 'features.Beta'],
      ['a flag starting with a digit', 'features.1beta'],
      ['a flag starting with a dot', 'features..beta'],
      ['a flag of 65 characters', `features.${'a'.repeat(65)}`],
      ['an empty integration name', 'integrations.'],
      ['an integration name starting with a dot', 'integrations..slack'],
      ['an upper-case config key', 'integrations.slack.config.Channel'],
      ['a path below a permission', 'permissions.allow_guests.extra'],
      ['an empty permission', 'permissions.'],
      ['an upper-case section', 'Permissions'],
      ['a leading space', ' features'],
      ['the empty string', ''],
      // An integration's name is one segment: a mistyped part is refused, not read as a dotted name.
      ['a mistyped part of an integration', 'integrations.slack.enable'],
      ['a mistyped config part', 'integrations.slack.confg.channel'],
      ['a config part with an empty key', 'integrations.slack.config.'],
      ['a dotted integration name', 'integrations.a.b.config.c'],
    ])('answers 400 at locks.2 to %s (%j), and changes nothing', async (_what, path) => {
      const res = await putOrg(org, { features: { other: true }, locks: ['features', 'permissions', path] });
      expectIssueAt(res, 'locks.2');
      expect(res.body.issues.map((i: { path: string }) => i.path)).not.toContain('locks.0');
      expect(res.body.issues.map((i: { path: string }) => i.path)).not.toContain('locks.1');
      expect(await orgState(org)).toEqual(before);
    });

    it('answers 400 at locks.2 to a path that is not a string', async () => {
      expectIssueAt(await putOrg(org, { locks: ['features', 'permissions', 7] }), 'locks.2');
      expect(await orgState(org)).toEqual(before);
    });

    it('answers 400 to locks that are not a list, and to 101 paths', async () => {
      expectIssueAt(await putOrg(org, { locks: 'features' }), 'locks', { prefix: true });
      expectIssueAt(await putOrg(org, { locks: { 0: 'features' } }), 'locks', { prefix: true });
      const tooMany = Array.from({ length: 101 }, (_, i) => `features.f${i}`);
      expectIssueAt(await putOrg(org, { locks: tooMany }), 'locks', { prefix: true });
      expect(await orgState(org)).toEqual(before);
    });

    it('answers BAD_REQUEST over tRPC with the path in data.issues, and changes nothing', async () => {
      const error = await expectTrpcFailure(
        app.trpc(admin.token).organizations.updateSettings.mutate({ org_id: org, locks: ['features', 'integrations', 'permissions.nope'] }),
        400,
        'BAD_REQUEST',
      );
      expect(error.data?.issues?.map((i) => i.path)).toEqual(['locks.2']);
      expect(await orgState(org)).toEqual(before);
    });
  });

  describe('who may set locks', () => {
    it('answers 403 to a member and 404 to a non-member on both faces, and changes nothing', async () => {
      const org = await team();
      await writeOrg(org, { locks: ['features'] });
      const before = await orgState(org);

      expectApiError(await putOrg(org, { locks: ['permissions'] }, member.token), 403, 'FORBIDDEN');
      expectApiError(await putOrg(org, { locks: null }, member.token), 403, 'FORBIDDEN');
      const hidden = await putOrg(org, { locks: ['permissions'] }, outsider.token);
      const missing = await putOrg(UNKNOWN_UUID, { locks: ['permissions'] }, outsider.token);
      expectApiError(hidden, 404, 'NOT_FOUND');
      expectApiError(missing, 404, 'NOT_FOUND');
      expect(hidden.body).toEqual(missing.body);

      await expectTrpcFailure(
        app.trpc(member.token).organizations.updateSettings.mutate({ org_id: org, locks: ['permissions'] }),
        403,
        'FORBIDDEN',
      );
      await expectTrpcFailure(app.trpc(outsider.token).organizations.updateSettings.mutate({ org_id: org, locks: [] }), 404, 'NOT_FOUND');
      expect(await orgState(org)).toEqual(before);

      // the owner may, like an admin
      const res = await putOrg(org, { locks: ['permissions'] }, owner.token);
      expect(res.status, res.text).toBe(200);
      expect((await orgState(org)).settings_locks).toEqual(['permissions']);
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe('workspace settings under locks (read time)', () => {
  it('gives a locked leaf the organization value whatever the override says; the override stays, shadowed, and applies again once unlocked', async () => {
    const org = await team();
    await writeOrg(org, { permissions: { allow_guests: true } });
    const ws = await newWorkspace(org, { permissions: { allow_guests: false, visibility: 'private' } });
    const overrides = { permissions: { allow_guests: false, visibility: 'private' } };

    await writeOrg(org, { locks: ['permissions.allow_guests'] });
    let res = await readWs(ws);
    expect(res).toEqual({
      workspace_id: ws,
      version: 1,
      effective: { ...DEFAULT_EFFECTIVE, permissions: { ...SYSTEM_DEFAULT_PERMISSIONS, allow_guests: true, visibility: 'private' } },
      overrides,
      sources: {
        permissions: { ...DEFAULT_SOURCES, allow_guests: 'organization', visibility: 'workspace' },
        features: {},
        integrations: {},
      },
      locked: ['permissions.allow_guests'],
      shadowed: ['permissions.allow_guests'],
    });
    // nothing is copied into the workspace
    expect(await wsState(ws)).toEqual({ settings: overrides, version: 1 });

    await writeOrg(org, { locks: null });
    res = await readWs(ws);
    expect(res.effective.permissions.allow_guests).toBe(false);
    expect(res.sources.permissions.allow_guests).toBe('workspace');
    expect(res.overrides).toEqual(overrides);
    expect(res.locked).toEqual([]);
    expect(res.shadowed).toEqual([]);
    expect(await wsState(ws)).toEqual({ settings: overrides, version: 1 });
  });

  it('holds a locked path the organization does not set at the system default, with source "organization"', async () => {
    const org = await team();
    const allSet = { default_role: 'admin', allow_guests: true, allow_member_invites: false, visibility: 'private' } as const;
    const ws = await newWorkspace(org, { permissions: allSet, features: { beta: true } });

    await writeOrg(org, { locks: ['permissions'] });
    let res = await readWs(ws);
    expect(res.effective).toEqual({ ...DEFAULT_EFFECTIVE, features: { beta: true } });
    expect(res.effective.permissions).toEqual(SYSTEM_DEFAULT_PERMISSIONS);
    expect(res.sources).toEqual({ permissions: ALL_ORGANIZATION, features: { beta: 'workspace' }, integrations: {} });
    expect(res.locked).toEqual(['permissions']);
    expect(sorted(res.shadowed)).toEqual([
      'permissions.allow_guests',
      'permissions.allow_member_invites',
      'permissions.default_role',
      'permissions.visibility',
    ]);
    expect(res.overrides).toEqual({ permissions: allSet, features: { beta: true } });

    // a leaf lock held at the default: visibility only
    await writeOrg(org, { locks: ['permissions.visibility'] });
    res = await readWs(ws);
    expect(res.effective.permissions).toEqual({ ...allSet, visibility: 'organization' });
    expect(res.sources.permissions).toEqual({
      default_role: 'workspace',
      allow_guests: 'workspace',
      allow_member_invites: 'workspace',
      visibility: 'organization',
    });
    expect(res.shadowed).toEqual(['permissions.visibility']);
    expect(await wsState(ws)).toEqual({ settings: { permissions: allSet, features: { beta: true } }, version: 1 });
  });

  it("makes a locked map (features) the organization's as a whole: the workspace's own flags do not show", async () => {
    const org = await team();
    await writeOrg(org, { features: { beta: true, org_only: false } });
    const ws = await newWorkspace(org, { features: { beta: false, ws_only: true }, permissions: { visibility: 'private' } });

    await writeOrg(org, { locks: ['features'] });
    let res = await readWs(ws);
    expect(res.effective.features).toEqual({ beta: true, org_only: false });
    expect(res.sources.features).toEqual({ beta: 'organization', org_only: 'organization' });
    // other sections are not affected
    expect(res.effective.permissions.visibility).toBe('private');
    expect(res.sources.permissions.visibility).toBe('workspace');
    expect(res.locked).toEqual(['features']);
    expect(sorted(res.shadowed)).toEqual(['features.beta', 'features.ws_only']);
    expect(res.overrides).toEqual({ features: { beta: false, ws_only: true }, permissions: { visibility: 'private' } });

    await writeOrg(org, { locks: [] });
    res = await readWs(ws);
    expect(res.effective.features).toEqual({ beta: false, org_only: false, ws_only: true });
    expect(res.sources.features).toEqual({ beta: 'workspace', org_only: 'organization', ws_only: 'workspace' });
    expect(res.shadowed).toEqual([]);
  });

  it('locks one flag whose name holds dots, leaving the other flags to the workspace', async () => {
    const org = await team();
    const ws = await newWorkspace(org, { features: { 'beta.editor': true, beta: true } });
    await writeOrg(org, { locks: ['features.beta.editor'] });
    let res = await readWs(ws);
    // the organization sets none: held at the default (off)
    expect(res.effective.features['beta.editor'] ?? false).toBe(false);
    if ('beta.editor' in res.effective.features) expect(res.sources.features['beta.editor']).toBe('organization');
    expect(res.effective.features.beta).toBe(true);
    expect(res.sources.features.beta).toBe('workspace');
    expect(res.shadowed).toEqual(['features.beta.editor']);

    await writeOrg(org, { features: { 'beta.editor': false, beta: false } });
    res = await readWs(ws);
    expect(res.effective.features).toEqual({ 'beta.editor': false, beta: true });
    expect(res.sources.features).toEqual({ 'beta.editor': 'organization', beta: 'workspace' });
  });

  it('locks an integration as a whole: its enabled and config come from the organization alone', async () => {
    const org = await team();
    await writeOrg(org, { integrations: { slack: { enabled: true, config: { channel: '#org' } } } });
    const ws = await newWorkspace(org, {
      integrations: { slack: { enabled: false, config: { channel: '#ws', extra: 1 } }, github: { enabled: true } },
    });
    await writeOrg(org, { locks: ['integrations.slack'] });
    const res = await readWs(ws);
    expect(res.effective.integrations).toEqual({
      slack: { enabled: true, config: { channel: '#org' } },
      github: { enabled: true, config: {} },
    });
    expect(res.sources.integrations).toEqual({
      slack: { enabled: 'organization', config: { channel: 'organization' } },
      github: { enabled: 'workspace', config: {} },
    });
    expect(sorted(res.shadowed)).toEqual([
      'integrations.slack.config.channel',
      'integrations.slack.config.extra',
      'integrations.slack.enabled',
    ]);
    expect(res.locked).toEqual(['integrations.slack']);
  });

  it('locks an integration whose name holds a dot with all of integrations (its own path is refused), and a config key "a.b"', async () => {
    const org = await team();
    await writeOrg(org, { integrations: { 'a.b': { config: { c: 'org' } }, slack: { config: { 'x.y': 'org' } } } });
    const ws = await newWorkspace(org, {
      integrations: { 'a.b': { enabled: true, config: { c: 'ws' } }, slack: { config: { 'x.y': 'ws', z: 1 } } },
    });

    expectIssueAt(await putOrg(org, { locks: ['integrations.a.b'] }), 'locks.0');
    await writeOrg(org, { locks: ['integrations.slack.config.x.y'] });
    let res = await readWs(ws);
    expect(res.effective.integrations.slack!.config).toEqual({ 'x.y': 'org', z: 1 });
    expect(res.sources.integrations.slack!.config).toEqual({ 'x.y': 'organization', z: 'workspace' });
    expect(res.shadowed).toEqual(['integrations.slack.config.x.y']);

    await writeOrg(org, { locks: ['integrations'] });
    res = await readWs(ws);
    expect(res.effective.integrations).toEqual({
      'a.b': { enabled: false, config: { c: 'org' } },
      slack: { enabled: false, config: { 'x.y': 'org' } },
    });
    expect(res.sources.integrations['a.b']).toEqual({ enabled: 'organization', config: { c: 'organization' } });
    expect(sorted(res.shadowed)).toEqual([
      'integrations.a.b.config.c',
      'integrations.a.b.enabled',
      'integrations.slack.config.x.y',
      'integrations.slack.config.z',
    ]);
    expect((await wsState(ws))!.version).toBe(1);
  });

  it('does not hide a bare integration declaration behind a lock of its enabled or config alone', async () => {
    const org = await team();
    const ws = await newWorkspace(org, { integrations: { jira: {} } });
    await writeOrg(org, { locks: ['integrations.jira.enabled'] });
    const res = await readWs(ws);
    expect(res.effective.integrations).toEqual({ jira: { enabled: false, config: {} } });
    expect(res.sources.integrations).toEqual({ jira: { enabled: 'organization', config: {} } });
    expect(res.shadowed).toEqual([]);
    // A lock of the integration itself hides the declaration.
    await writeOrg(org, { locks: ['integrations.jira'] });
    const locked = await readWs(ws);
    expect(locked.effective.integrations).toEqual({});
    expect(locked.shadowed).toEqual(['integrations.jira']);
  });

  it("applies to every workspace of the organization, and to no other organization's", async () => {
    const org = await team();
    const other = await team();
    const overrides = { permissions: { allow_guests: true } };
    const [a, b, elsewhere] = [await newWorkspace(org, overrides), await newWorkspace(org), await newWorkspace(other, overrides)];
    await writeOrg(org, { locks: ['permissions.allow_guests'] });

    const [ra, rb, re] = [await readWs(a), await readWs(b), await readWs(elsewhere)];
    expect(ra.effective.permissions.allow_guests).toBe(false);
    expect(ra.sources.permissions.allow_guests).toBe('organization');
    expect(ra.shadowed).toEqual(['permissions.allow_guests']);
    expect(rb.sources.permissions.allow_guests).toBe('organization');
    expect(rb.locked).toEqual(['permissions.allow_guests']);
    expect(rb.shadowed).toEqual([]);
    expect(re.effective.permissions.allow_guests).toBe(true);
    expect(re.sources.permissions.allow_guests).toBe('workspace');
    expect(re.locked).toEqual([]);
    expect(re.shadowed).toEqual([]);
  });

  it('answers locked: [] and shadowed: [] without locks', async () => {
    const org = await team();
    const ws = await newWorkspace(org, { features: { beta: true } });
    const res = await readWs(ws);
    expect(res.locked).toEqual([]);
    expect(res.shadowed).toEqual([]);
    expect(res.sources.features).toEqual({ beta: 'workspace' });
  });
});

// ---------------------------------------------------------------------------------------------

describe('PUT /workspaces/{id}/settings under a lock', () => {
  const LOCKS = ['features.beta', 'integrations.jira.enabled', 'integrations.slack', 'permissions.allow_guests'];
  let org: string;
  let ws: string;
  let before: { settings: unknown; version: number };

  beforeAll(async () => {
    org = await team();
    await writeOrg(org, { permissions: { allow_guests: true }, features: { beta: true } });
    ws = await newWorkspace(org, { features: { free: true }, permissions: { allow_guests: false } });
    await writeOrg(org, { locks: LOCKS });
    before = (await wsState(ws))!;
    expect(before).toEqual({ settings: { features: { free: true }, permissions: { allow_guests: false } }, version: 1 });
  });

  const refusals: Array<[string, Record<string, unknown>, Refused]> = [
    ['a value at a locked leaf', { permissions: { allow_guests: false } }, ['permissions.allow_guests']],
    ["the organization's own value at a locked leaf", { permissions: { allow_guests: true } }, ['permissions.allow_guests']],
    ['a value at a locked flag', { features: { beta: false } }, ['features.beta']],
    [
      'a value under a locked integration (enabled)',
      { integrations: { slack: { enabled: true } } },
      [['integrations.slack.enabled', 'integrations.slack']],
    ],
    [
      'a value under a locked integration (a config key)',
      { integrations: { slack: { config: { channel: '#x' } } } },
      [['integrations.slack.config.channel', 'integrations.slack']],
    ],
    ['an entry at a locked integration', { integrations: { slack: {} } }, ['integrations.slack']],
    ["a value at a locked integration's enabled", { integrations: { jira: { enabled: true } } }, ['integrations.jira.enabled']],
    [
      'a locked value beside allowed ones (the whole write is refused)',
      { features: { free: false, beta: true }, permissions: { visibility: 'private' } },
      ['features.beta'],
    ],
    [
      'two locked values',
      { features: { beta: false, other: true }, permissions: { allow_guests: false } },
      ['features.beta', 'permissions.allow_guests'],
    ],
  ];

  it.each(refusals)('answers 409 over REST to %s, naming the path, and changes nothing', async (_what, body, refused) => {
    expectLocked(await putWs(ws, body), refused);
    expect(await wsState(ws)).toEqual(before);
    expect((await readWs(ws)).overrides).toEqual(before.settings);
  });

  it.each(refusals)('answers CONFLICT (409) over tRPC to %s, naming the path, and changes nothing', async (_what, body, refused) => {
    await expectTrpcLocked(app.trpc(admin.token).workspaces.updateSettings.mutate({ workspace_id: ws, ...body }), refused);
    expect(await wsState(ws)).toEqual(before);
  });

  it('refuses a conditional write under a lock with 409 too (the version is current)', async () => {
    const res = await app.request('PUT', wsSettingsPath(ws), {
      token: admin.token,
      body: { features: { beta: true } },
      headers: { 'if-match': `"${before.version}"` },
    });
    expectLocked(res, ['features.beta']);
    expect(await wsState(ws)).toEqual(before);
  });

  it('allows a write beside the locks: a sibling of a locked leaf is not under it', async () => {
    const sibling = await newWorkspace(org);
    const res = await putWs(sibling, { integrations: { jira: { config: { project: 'OPS' } } }, features: { gamma: true } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.version).toBe(2);
    expect(res.body.effective.integrations.jira.config).toEqual({ project: 'OPS' });
    expect(res.body.effective.features).toEqual({ beta: true, gamma: true });
    expect(await wsState(sibling)).toEqual({
      settings: { integrations: { jira: { config: { project: 'OPS' } } }, features: { gamma: true } },
      version: 2,
    });
  });

  it('allows declaring an integration whose enabled alone is locked (the declaration sets no value under the lock)', async () => {
    const sibling = await newWorkspace(org);
    const res = await putWs(sibling, { integrations: { jira: {} } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.effective.integrations.jira).toEqual({ enabled: false, config: {} });
    expect(res.body.sources.integrations.jira.enabled).toBe('organization');
    expect(await wsState(sibling)).toEqual({ settings: { integrations: { jira: {} } }, version: 2 });
  });

  it('answers 404 (not 409) to a non-member and 403 to a member, and changes nothing', async () => {
    const hidden = await putWs(ws, { permissions: { allow_guests: false } }, outsider.token);
    expectApiError(hidden, 404, 'NOT_FOUND');
    expectApiError(await putWs(ws, { permissions: { allow_guests: false } }, member.token), 403, 'FORBIDDEN');
    expect(await wsState(ws)).toEqual(before);
  });

  it('allows null at a locked path: it removes the shadowed override (200, version + 1); with nothing to remove it changes nothing', async () => {
    const target = await newWorkspace(org);
    // written while unlocked, on a workspace of its own so the shared one stays as it was
    const otherOrg = await team();
    const cleanup = await newWorkspace(otherOrg, { permissions: { allow_guests: false, visibility: 'private' } });
    await writeOrg(otherOrg, { permissions: { allow_guests: true }, locks: ['permissions.allow_guests'] });
    expect((await readWs(cleanup)).shadowed).toEqual(['permissions.allow_guests']);

    let res = await putWs(cleanup, { permissions: { allow_guests: null } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.version).toBe(2);
    expect(res.body.overrides).toEqual({ permissions: { visibility: 'private' } });
    expect(res.body.effective.permissions.allow_guests).toBe(true);
    expect(res.body.sources.permissions.allow_guests).toBe('organization');
    expect(res.body.shadowed).toEqual([]);
    expect(res.body.locked).toEqual(['permissions.allow_guests']);
    expect(await wsState(cleanup)).toEqual({ settings: { permissions: { visibility: 'private' } }, version: 2 });

    // nothing to remove: a no-op, 200 at the same version
    res = await putWs(target, { permissions: { allow_guests: null }, integrations: { slack: null } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.version).toBe(1);
    expect(await wsState(target)).toEqual({ settings: {}, version: 1 });

    // over tRPC too
    const viaTrpc = await app
      .trpc(admin.token)
      .workspaces.updateSettings.mutate({ workspace_id: cleanup, permissions: { allow_guests: null } });
    expect(viaTrpc.version).toBe(2);
  });

  it('allows null under a locked map (removing a flag the lock hides)', async () => {
    const otherOrg = await team();
    const cleanup = await newWorkspace(otherOrg, { features: { ws_only: true, beta: false } });
    await writeOrg(otherOrg, { locks: ['features'] });
    const res = await putWs(cleanup, { features: { ws_only: null } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.version).toBe(2);
    expect(res.body.overrides).toEqual({ features: { beta: false } });
    expect(res.body.shadowed).toEqual(['features.beta']);
    expect(await wsState(cleanup)).toEqual({ settings: { features: { beta: false } }, version: 2 });
    // while a value under it is still refused
    expectLocked(await putWs(cleanup, { features: { ws_only: true } }), [['features.ws_only', 'features']]);
    expect(await wsState(cleanup)).toEqual({ settings: { features: { beta: false } }, version: 2 });
  });

  it('accepts the refused write once the lock is removed', async () => {
    const otherOrg = await team();
    const target = await newWorkspace(otherOrg);
    await writeOrg(otherOrg, { locks: ['permissions.allow_guests'] });
    expectLocked(await putWs(target, { permissions: { allow_guests: true } }), ['permissions.allow_guests']);
    expect(await wsState(target)).toEqual({ settings: {}, version: 1 });
    await writeOrg(otherOrg, { locks: null });
    const res = await putWs(target, { permissions: { allow_guests: true } });
    expect(res.status, res.text).toBe(200);
    expect(res.body.effective.permissions.allow_guests).toBe(true);
    expect(await wsState(target)).toEqual({ settings: { permissions: { allow_guests: true } }, version: 2 });
  });
});

// ---------------------------------------------------------------------------------------------

describe('creating, cloning and provisioning into an organization with locks', () => {
  /** The target organization: locks on a flag, a permission and an integration. */
  let target: string;
  /** A source organization without locks, where the admin is an admin too. */
  let source: string;
  const TARGET_LOCKS = ['features.beta', 'integrations.slack.config', 'permissions.allow_guests'];

  beforeAll(async () => {
    [target, source] = [await team(), await team()];
    await writeOrg(target, { permissions: { allow_guests: true }, locks: TARGET_LOCKS });
  });

  const namesIn = async (org: string) =>
    (await app.query<{ name: string }>('select name from workspaces where organization_id = $1 order by name', [org])).map((r) => r.name);

  describe('create', () => {
    it.each([
      [
        'POST /workspaces',
        (name: string, settings: unknown) => ({ path: '/api/v1/workspaces', body: { organization_id: target, name, settings } }),
      ],
      [
        'POST /organizations/{id}/workspaces',
        (name: string, settings: unknown) => ({ path: `/api/v1/organizations/${target}/workspaces`, body: { name, settings } }),
      ],
    ])('%s answers 409 to settings under a lock, naming the path, and creates nothing', async (_what, build) => {
      const count = await workspaceCount(app, target);
      const name = uniqueWorkspaceName('Locked create');
      const { path, body } = build(name, { features: { gamma: true }, permissions: { allow_guests: false } });
      expectLocked(await app.request('POST', path, { token: admin.token, body }), ['permissions.allow_guests']);
      const under = build(uniqueWorkspaceName('Locked create'), { integrations: { slack: { config: { channel: '#x' } } } });
      expectLocked(await app.request('POST', under.path, { token: admin.token, body: under.body }), [
        ['integrations.slack.config.channel', 'integrations.slack.config'],
      ]);
      expect(await workspaceCount(app, target)).toBe(count);
      expect(await namesIn(target)).not.toContain(name);
    });

    it('answers CONFLICT over tRPC (create and createInOrganization), and creates nothing', async () => {
      const count = await workspaceCount(app, target);
      const client = app.trpc(admin.token);
      await expectTrpcLocked(
        client.workspaces.create.mutate({
          organization_id: target,
          name: uniqueWorkspaceName('T'),
          settings: { features: { beta: false } },
        }),
        ['features.beta'],
      );
      await expectTrpcLocked(
        client.workspaces.createInOrganization.mutate({
          org_id: target,
          name: uniqueWorkspaceName('T'),
          settings: { permissions: { allow_guests: true } },
        }),
        ['permissions.allow_guests'],
      );
      expect(await workspaceCount(app, target)).toBe(count);
    });

    it('creates a workspace whose settings stay clear of the locks', async () => {
      const count = await workspaceCount(app, target);
      const settings = { features: { gamma: true }, integrations: { slack: { enabled: true } }, permissions: { visibility: 'private' } };
      const res = await app.request('POST', '/api/v1/workspaces', {
        token: admin.token,
        body: { organization_id: target, name: uniqueWorkspaceName('Clear'), settings },
      });
      expect(res.status, res.text).toBe(201);
      expect(await workspaceCount(app, target)).toBe(count + 1);
      expect(await wsState(res.body.id)).toEqual({ settings, version: 1 });
    });
  });

  describe('clone', () => {
    const clone = (id: string, body: Record<string, unknown>) =>
      app.request('POST', `/api/v1/workspaces/${id}/clone`, { token: admin.token, body });

    it("answers 409 when the source's overrides fall under a lock of the target organization, and creates nothing", async () => {
      const from = await newWorkspace(source, { features: { beta: true, gamma: true }, permissions: { visibility: 'private' } });
      const count = await workspaceCount(app, target);
      const name = uniqueWorkspaceName('Clone');
      expectLocked(await clone(from, { name, organization_id: target }), ['features.beta']);
      await expectTrpcLocked(
        app.trpc(admin.token).workspaces.clone.mutate({ workspace_id: from, name: uniqueWorkspaceName('Clone'), organization_id: target }),
        ['features.beta'],
      );
      expect(await workspaceCount(app, target)).toBe(count);
      expect(await namesIn(target)).not.toContain(name);
      const rows = await app.query<{ n: number }>('select count(*)::int as n from workspaces where cloned_from_id = $1', [from]);
      expect(rows[0]!.n).toBe(0);

      // the same source clones within its own (unlocked) organization
      const res = await clone(from, { name: uniqueWorkspaceName('Clone') });
      expect(res.status, res.text).toBe(201);
      expect(res.body.organization_id).toBe(source);
    });

    it('answers 409 to a clone within an organization whose lock now shadows the source overrides', async () => {
      const org = await team();
      const from = await newWorkspace(org, { integrations: { slack: { config: { channel: '#a' } } } });
      await writeOrg(org, { locks: ['integrations.slack'] });
      const count = await workspaceCount(app, org);
      expectLocked(await clone(from, { name: uniqueWorkspaceName('Same org') }), [
        ['integrations.slack.config.channel', 'integrations.slack'],
      ]);
      expect(await workspaceCount(app, org)).toBe(count);
    });

    it('clones into the locked organization a source whose overrides stay clear of the locks', async () => {
      const overrides = { features: { gamma: true }, integrations: { slack: { enabled: true } } };
      const from = await newWorkspace(source, overrides);
      const count = await workspaceCount(app, target);
      const res = await clone(from, { name: uniqueWorkspaceName('Clean clone'), organization_id: target });
      expect(res.status, res.text).toBe(201);
      expect(await workspaceCount(app, target)).toBe(count + 1);
      expect(await wsState(res.body.id)).toEqual({ settings: overrides, version: 1 });
    });
  });

  describe('provision', () => {
    const provision = (body: Record<string, unknown>) => app.request('POST', '/api/v1/workspaces/provision', { token: admin.token, body });

    it.each(['atomic', 'partial'] as const)(
      "answers 409 in %s mode when the template's overrides fall under a lock, and creates nothing",
      async (mode) => {
        const template = await newWorkspace(source, { permissions: { allow_guests: false }, features: { gamma: true } });
        const count = await workspaceCount(app, target);
        const items = [{ name: uniqueWorkspaceName('P') }, { name: uniqueWorkspaceName('P') }];
        const res = await provision({ organization_id: target, template_workspace_id: template, mode, workspaces: items });
        expectLocked(res, ['permissions.allow_guests']);
        await expectTrpcLocked(
          app.trpc(admin.token).workspaces.provision.mutate({
            organization_id: target,
            template_workspace_id: template,
            mode,
            workspaces: [{ name: uniqueWorkspaceName('P') }],
          }),
          ['permissions.allow_guests'],
        );
        expect(await workspaceCount(app, target)).toBe(count);
        for (const item of items) expect(await namesIn(target)).not.toContain(item.name);
      },
    );

    it.each(['atomic', 'partial'] as const)(
      "answers 409 in %s mode when one item's settings fall under a lock (the whole call), and creates nothing",
      async (mode) => {
        const count = await workspaceCount(app, target);
        const items = [
          { name: uniqueWorkspaceName('Fine') },
          { name: uniqueWorkspaceName('Bad'), settings: { integrations: { slack: { config: { channel: '#x' } } } } },
          { name: uniqueWorkspaceName('Fine'), settings: { features: { gamma: true } } },
        ];
        const res = await provision({ organization_id: target, mode, workspaces: items });
        expectLocked(res, [['integrations.slack.config.channel', 'integrations.slack.config']]);
        await expectTrpcLocked(
          app.trpc(admin.token).workspaces.provision.mutate({
            organization_id: target,
            mode,
            workspaces: [
              { name: uniqueWorkspaceName('Fine') },
              { name: uniqueWorkspaceName('Bad'), settings: { features: { beta: true } } },
            ],
          }),
          ['features.beta'],
        );
        expect(await workspaceCount(app, target)).toBe(count);
        for (const item of items) expect(await namesIn(target)).not.toContain(item.name);
      },
    );

    it('provisions from a template whose overrides, merged with the items, stay clear of the locks', async () => {
      const template = await newWorkspace(source, { features: { gamma: true } });
      const count = await workspaceCount(app, target);
      const res = await provision({
        organization_id: target,
        template_workspace_id: template,
        workspaces: [
          { name: uniqueWorkspaceName('Ok') },
          { name: uniqueWorkspaceName('Ok'), settings: { permissions: { visibility: 'private' } } },
        ],
      });
      expect(res.status, res.text).toBe(201);
      expect(res.body.created).toHaveLength(2);
      expect(res.body.failed).toEqual([]);
      expect(await workspaceCount(app, target)).toBe(count + 2);
      expect((await wsState(res.body.created[1].id))!.settings).toEqual({
        features: { gamma: true },
        permissions: { visibility: 'private' },
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------

describe.runIf(onPostgres)('locks and workspace writes under concurrency (PostgreSQL)', () => {
  const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

  /** A promise with a flag saying whether it has settled yet. */
  function tracked<T>(promise: Promise<T>) {
    const state = { settled: false, promise };
    promise
      .finally(() => {
        state.settled = true;
      })
      .catch(() => {});
    return state;
  }

  it('a workspace settings write waits for the organization row held for update, then reads the lock committed meanwhile: 409', async () => {
    const org = await team();
    const ws = await newWorkspace(org);
    await withRawTransaction(app, async (tx) => {
      // what the organization's settings write takes
      await tx`select id from organizations where id = ${org} for update`;
      const write = tracked(putWs(ws, { permissions: { allow_guests: true }, features: { fine: true } }));
      await sleep(300);
      expect(write.settled, 'the workspace write answered while the organization row was held').toBe(false);
      await tx.unsafe(`update organizations set settings_locks = $1::text::jsonb where id = $2`, [
        JSON.stringify(['permissions.allow_guests']),
        org,
      ]);
      await tx`commit`;
      expectLocked(await write.promise, ['permissions.allow_guests']);
    });
    expect(await wsState(ws)).toEqual({ settings: {}, version: 1 });
    expect((await orgState(org)).settings_locks).toEqual(['permissions.allow_guests']);
  });

  it('a create with settings waits the same way, then answers 409 and creates nothing', async () => {
    const org = await team();
    const count = await workspaceCount(app, org);
    await withRawTransaction(app, async (tx) => {
      await tx`select id from organizations where id = ${org} for update`;
      const create = tracked(
        app.request('POST', '/api/v1/workspaces', {
          token: admin.token,
          body: { organization_id: org, name: uniqueWorkspaceName('Racing'), settings: { features: { beta: true } } },
        }),
      );
      await sleep(300);
      expect(create.settled, 'the create answered while the organization row was held').toBe(false);
      await tx.unsafe(`update organizations set settings_locks = $1::text::jsonb where id = $2`, [JSON.stringify(['features']), org]);
      await tx`commit`;
      expectLocked(await create.promise, [['features.beta', 'features']]);
    });
    expect(await workspaceCount(app, org)).toBe(count);
    expect((await orgState(org)).settings_locks).toEqual(['features']);
  });

  it("the organization's lock write waits for a workspace write holding the row's share lock", async () => {
    const org = await team();
    await withRawTransaction(app, async (tx) => {
      // what a workspace settings write takes
      await tx`select id from organizations where id = ${org} for share`;
      const lock = tracked(putOrg(org, { locks: ['features'] }));
      await sleep(300);
      expect(lock.settled, 'the lock write answered while a workspace write held the share lock').toBe(false);
      await tx`commit`;
      const res = await lock.promise;
      expect(res.status, res.text).toBe(200);
      expect(res.body.locks).toEqual(['features']);
    });
    expect((await orgState(org)).settings_locks).toEqual(['features']);
  });

  it('racing writes and a lock: every write answers 200 or 409, exactly the 200s are stored, and writes after the lock are 409', async () => {
    const org = await team();
    const ws = await newWorkspace(org);
    const writers = 12;
    const writes = Array.from({ length: writers }, (_, i) => putWs(ws, { features: { [`w${i}`]: true } }));
    const lock = putOrg(org, { locks: ['features'] });
    const [answers, lockAnswer] = await Promise.all([Promise.all(writes), lock]);
    expect(lockAnswer.status, lockAnswer.text).toBe(200);
    const statuses = answers.map((a) => a.status);
    expect(
      statuses.every((s) => s === 200 || s === 409),
      answers.map((a) => a.text).join('\n'),
    ).toBe(true);
    for (const a of answers)
      if (a.status === 409) expectLocked(a, [['features', ...Array.from({ length: writers }, (_, i) => `features.w${i}`)]]);
    const committed = answers.flatMap((a, i) => (a.status === 200 ? [`w${i}`] : []));
    const after = (await wsState(ws))!;
    expect(after.version).toBe(1 + committed.length);
    expect(after.settings).toEqual(committed.length ? { features: Object.fromEntries(committed.map((k) => [k, true])) } : {});
    // once locked, no further write gets through
    expectLocked(await putWs(ws, { features: { late: true } }), [['features.late', 'features']]);
    expect(await wsState(ws)).toEqual(after);
  });
});
