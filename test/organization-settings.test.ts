import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { DEFAULT_EFFECTIVE, SYSTEM_DEFAULT_PERMISSIONS, createTeam, organizationRow } from './helpers/org-helpers';
import { UNKNOWN_UUID } from './helpers/values';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';

let app: TestApp;
let owner: SignedUp;
let admin: SignedUp;
let member: SignedUp;
let outsider: SignedUp;

beforeAll(async () => {
  app = await startTestApp();
  [owner, admin, member, outsider] = await signupMany(app, ['Owner', 'Admin', 'Member', 'Outsider']);
});
afterAll(async () => {
  await app?.close();
});

/** A fresh organization with an admin and a member. */
const team = () =>
  createTeam(app, owner, [
    [admin, 'admin'],
    [member, 'member'],
  ]);

const settingsPath = (org: string) => `/api/v1/organizations/${org}/settings`;
const getSettings = (org: string, token = member.token) => app.request('GET', settingsPath(org), { token });
const putSettings = (org: string, body: unknown, token = admin.token) => app.request('PUT', settingsPath(org), { token, body });
const putRaw = (org: string, json: string, token = admin.token) =>
  app.request('PUT', settingsPath(org), { token, rawBody: json, headers: { 'content-type': 'application/json' } });

/** PUT that must succeed; returns the answer's body after checking it equals a fresh GET and the stored row. */
async function write(org: string, body: unknown) {
  const res = await putSettings(org, body);
  expect(res.status, res.text).toBe(200);
  const read = await getSettings(org);
  expect(read.body).toEqual(res.body);
  expect((await organizationRow(app, org))!.settings).toEqual(res.body.settings);
  return res.body as { organization_id: string; settings: any; effective: any };
}

describe('GET /organizations/{org_id}/settings', () => {
  it('answers a member with { organization_id, settings, effective }: nothing set, the system defaults in effect', async () => {
    const org = await team();
    const res = await getSettings(org);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ organization_id: org, settings: {}, effective: DEFAULT_EFFECTIVE, locks: [] });
    expect(res.body.effective.permissions).toEqual({
      default_role: 'member',
      allow_guests: false,
      allow_member_invites: true,
      visibility: 'organization',
    });
    expect((await organizationRow(app, org))!.settings).toEqual({});
  });

  it('answers 404 to a non-member as to an unknown organization, and 400 to a non-UUID', async () => {
    const org = await team();
    const hidden = await getSettings(org, outsider.token);
    const missing = await getSettings(UNKNOWN_UUID, outsider.token);
    expectApiError(hidden, 404, 'NOT_FOUND');
    expectApiError(missing, 404, 'NOT_FOUND');
    expect(hidden.body).toEqual(missing.body);
    expectIssueAt(await getSettings('nope'), 'org_id');
  });
});

describe('PUT /organizations/{org_id}/settings: deep merge', () => {
  it('adds feature flags key by key', async () => {
    const org = await team();
    await write(org, { features: { beta: true } });
    const body = await write(org, { features: { 'new-editor': false, 'x.y_z': true } });
    expect(body.settings).toEqual({ features: { beta: true, 'new-editor': false, 'x.y_z': true } });
    expect(body.effective).toEqual({ ...DEFAULT_EFFECTIVE, features: { beta: true, 'new-editor': false, 'x.y_z': true } });
  });

  it('merges permissions partially and overlays them on the defaults', async () => {
    const org = await team();
    await write(org, { permissions: { allow_guests: true } });
    const body = await write(org, { permissions: { visibility: 'private', default_role: 'viewer' } });
    expect(body.settings).toEqual({ permissions: { allow_guests: true, visibility: 'private', default_role: 'viewer' } });
    expect(body.effective.permissions).toEqual({
      default_role: 'viewer',
      allow_guests: true,
      allow_member_invites: true,
      visibility: 'private',
    });
  });

  it("merges an integration's config key by key, keeping its other fields", async () => {
    const org = await team();
    await write(org, { integrations: { slack: { enabled: true, config: { channel: '#general', retries: 3 } } } });
    let body = await write(org, { integrations: { slack: { config: { retries: 5, verbose: true } }, github: { enabled: true } } });
    expect(body.settings.integrations).toEqual({
      slack: { enabled: true, config: { channel: '#general', retries: 5, verbose: true } },
      github: { enabled: true },
    });
    expect(body.effective.integrations).toEqual({
      slack: { enabled: true, config: { channel: '#general', retries: 5, verbose: true } },
      github: { enabled: true, config: {} },
    });
    body = await write(org, { integrations: { slack: { config: { channel: null } } } });
    expect(body.settings.integrations.slack).toEqual({ enabled: true, config: { retries: 5, verbose: true } });
  });

  it('gives every integration the defaults enabled: false, config: {} in effect', async () => {
    const org = await team();
    const body = await write(org, { integrations: { jira: {}, linear: { config: { team: 'core' } } } });
    expect(body.settings).toEqual({ integrations: { jira: {}, linear: { config: { team: 'core' } } } });
    expect(body.effective.integrations).toEqual({
      jira: { enabled: false, config: {} },
      linear: { enabled: false, config: { team: 'core' } },
    });
  });

  it('removes a key on null, so the system default is in effect again', async () => {
    const org = await team();
    await write(org, {
      permissions: { default_role: 'admin', allow_guests: true, allow_member_invites: false, visibility: 'private' },
      features: { beta: true, gamma: false },
      integrations: { slack: { enabled: true, config: { channel: '#ops' } }, github: { enabled: true } },
    });

    let body = await write(org, {
      permissions: { default_role: null, allow_member_invites: null },
      features: { beta: null },
      integrations: { slack: { enabled: null } },
    });
    expect(body.settings).toEqual({
      permissions: { allow_guests: true, visibility: 'private' },
      features: { gamma: false },
      integrations: { slack: { config: { channel: '#ops' } }, github: { enabled: true } },
    });
    expect(body.effective.permissions).toEqual({
      default_role: 'member',
      allow_guests: true,
      allow_member_invites: true,
      visibility: 'private',
    });
    expect(body.effective.features).toEqual({ gamma: false });
    expect(body.effective.integrations.slack).toEqual({ enabled: false, config: { channel: '#ops' } });

    body = await write(org, { permissions: null, integrations: { github: null } });
    expect(body.settings).toEqual({ features: { gamma: false }, integrations: { slack: { config: { channel: '#ops' } } } });
    expect(body.effective.permissions).toEqual(SYSTEM_DEFAULT_PERMISSIONS);
    expect(body.effective.integrations).toEqual({ slack: { enabled: false, config: { channel: '#ops' } } });

    body = await write(org, { features: null, integrations: null });
    expect(body).toEqual({ organization_id: org, settings: {}, effective: DEFAULT_EFFECTIVE, locks: [] });
    // null is never stored.
    expect(JSON.stringify((await organizationRow(app, org))!.settings)).not.toContain('null');
  });

  it('stores config values with their JSON types (strings that look like booleans or numbers stay strings)', async () => {
    const org = await team();
    const body = await write(org, {
      integrations: { hook: { config: { verbose: 'true', retries: '3', on: false, count: 2147483647, text: 'x'.repeat(500) } } },
    });
    expect(body.effective.integrations.hook.config).toEqual({
      verbose: 'true',
      retries: '3',
      on: false,
      count: 2147483647,
      text: 'x'.repeat(500),
    });
    const types = await app.query<{ key: string; type: string }>(
      `select key, jsonb_typeof(value) as type from organizations, jsonb_each(settings->'integrations'->'hook'->'config') where id = $1 order by key`,
      [org],
    );
    expect(types).toEqual([
      { key: 'count', type: 'number' },
      { key: 'on', type: 'boolean' },
      { key: 'retries', type: 'string' },
      { key: 'text', type: 'string' },
      { key: 'verbose', type: 'string' },
    ]);
  });

  it('accepts 100 feature flags, 50 integrations and 50 config keys', async () => {
    const org = await team();
    const features = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`flag${i}`, i % 2 === 0]));
    const integrations = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`int${i}`, { enabled: true }]));
    const config = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`key${i}`, i]));
    const body = await write(org, { features, integrations: { ...integrations, int0: { enabled: true, config } } });
    expect(Object.keys(body.settings.features)).toHaveLength(100);
    expect(Object.keys(body.effective.integrations)).toHaveLength(50);
    expect(Object.keys(body.effective.integrations.int0.config)).toHaveLength(50);
  });

  it('lets the owner write too, and answers the same shape as GET', async () => {
    const org = await team();
    const res = await putSettings(org, { features: { owner_flag: true } }, owner.token);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      organization_id: org,
      settings: { features: { owner_flag: true } },
      effective: { ...DEFAULT_EFFECTIVE, features: { owner_flag: true } },
      locks: [],
    });
  });
});

describe('PUT /organizations/{org_id}/settings: a write that changes nothing', () => {
  it('leaves the row and updated_at as they were; a real change moves updated_at', async () => {
    const org = await team();
    await write(org, { features: { beta: true }, integrations: { slack: { enabled: true } } });
    const before = (await organizationRow(app, org))!;
    for (const noop of [
      {},
      { features: { beta: true } },
      { features: { absent: null } },
      { permissions: {} },
      { permissions: null },
      { integrations: { slack: { enabled: true } } },
    ]) {
      const res = await putSettings(org, noop);
      expect(res.status, JSON.stringify(noop)).toBe(200);
      expect(res.body.settings).toEqual(before.settings);
      expect(await organizationRow(app, org), JSON.stringify(noop)).toEqual(before);
    }
    await write(org, { features: { beta: false } });
    const after = (await organizationRow(app, org))!;
    expect(Date.parse(after.updated_at)).toBeGreaterThan(Date.parse(before.updated_at));
  });
});

describe('PUT /organizations/{org_id}/settings: validation', () => {
  /** One organization for the rejected writes: each test checks it is left exactly as it was. */
  let org: string;
  beforeAll(async () => {
    org = await team();
    await write(org, { features: { keep: true }, integrations: { slack: { enabled: true, config: { channel: '#keep' } } } });
  });

  const many = (n: number, value: (i: number) => unknown) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, value(i)]));

  const invalid: Array<[string, unknown, string]> = [
    ['a key with capitals', { features: { Beta: true } }, 'features.Beta'],
    ['a key starting with a digit', { features: { '1beta': true } }, 'features.1beta'],
    ['a key with a space', { integrations: { 'my slack': { enabled: true } } }, 'integrations.my slack'],
    ['a key of 65 characters', { features: { ['a'.repeat(65)]: true } }, `features.${'a'.repeat(65)}`],
    ['a config key with a slash', { integrations: { slack: { config: { 'a/b': 'x' } } } }, 'integrations.slack.config.a/b'],
    ['101 feature flags', { features: many(101, () => true) }, 'features'],
    ['51 integrations', { integrations: many(51, () => ({ enabled: true })) }, 'integrations'],
    ['51 config keys', { integrations: { slack: { config: many(51, (i) => i) } } }, 'integrations.slack.config'],
    [
      'a config string of 501 characters',
      { integrations: { slack: { config: { channel: 'x'.repeat(501) } } } },
      'integrations.slack.config.channel',
    ],
    ['a config number over 2^31 - 1', { integrations: { slack: { config: { n: 2 ** 31 } } } }, 'integrations.slack.config.n'],
    ['a config object', { integrations: { slack: { config: { nested: { a: 1 } } } } }, 'integrations.slack.config.nested'],
    ['a "constructor" feature', { features: { constructor: true } }, 'features.constructor'],
    ['a "prototype" integration', { integrations: { prototype: { enabled: true } } }, 'integrations.prototype'],
    ['an unknown top-level field', { theme: 'dark' }, 'theme'],
    ['an unknown permission', { permissions: { allow_everything: true } }, 'permissions.allow_everything'],
    ['an unknown integration field', { integrations: { slack: { enabled: true, secret: 'x' } } }, 'integrations.slack.secret'],
    ['default_role "boss"', { permissions: { default_role: 'boss' } }, 'permissions.default_role'],
    ['default_role "owner"', { permissions: { default_role: 'owner' } }, 'permissions.default_role'],
    ['visibility "public"', { permissions: { visibility: 'public' } }, 'permissions.visibility'],
    ['features as an array', { features: ['beta'] }, 'features'],
    ['a NUL in a config string', { integrations: { slack: { config: { channel: 'a\u0000b' } } } }, 'integrations.slack.config.channel'],
    ['an organization_id in the body', { organization_id: UNKNOWN_UUID }, 'organization_id'],
    ['a settings wrapper', { settings: { features: { beta: true } } }, 'settings'],
  ];

  it.each(invalid)('answers 400 with issues to %s, and changes nothing', async (_what, body, path) => {
    const before = await organizationRow(app, org);
    expectIssueAt(await putSettings(org, body), path);
    expect(await organizationRow(app, org)).toEqual(before);
  });

  it.each([
    ['a "__proto__" feature', '{"features":{"__proto__":true}}', 'features.__proto__'],
    ['a "__proto__" integration', '{"integrations":{"__proto__":{"enabled":true}}}', 'integrations.__proto__'],
    ['a "__proto__" config key', '{"integrations":{"slack":{"config":{"__proto__":"x"}}}}', 'integrations.slack.config.__proto__'],
    ['a "__proto__" in permissions', '{"permissions":{"__proto__":{"allow_guests":true}}}', 'permissions.__proto__'],
    ['a top-level "__proto__"', '{"__proto__":{"features":{"beta":true}}}', '__proto__'],
  ])('answers 400 with issues to %s, and changes nothing', async (_what, json, path) => {
    const before = await organizationRow(app, org);
    expectIssueAt(await putRaw(org, json), path);
    expect(await organizationRow(app, org)).toEqual(before);
    // Nothing leaked onto Object.prototype of the server either.
    expect(({} as Record<string, unknown>).enabled).toBeUndefined();
  });

  it('answers 400 when a write would push the stored layer over a limit, and changes nothing', async () => {
    const org = await team(); // a layer of its own, since this one is filled up
    await write(org, { features: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`first${i}`, true])) });
    const before = await organizationRow(app, org);
    const res = await putSettings(org, { features: Object.fromEntries(Array.from({ length: 41 }, (_, i) => [`second${i}`, true])) });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(res.body.message).toMatch(/100/);
    expect(await organizationRow(app, org)).toEqual(before);
    // Replacing some keys while adding others within the limit is fine.
    const ok = await putSettings(org, {
      features: { ...Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`first${i}`, null])), extra: true },
    });
    expect(ok.status, ok.text).toBe(200);
    expect(Object.keys(ok.body.settings.features)).toHaveLength(21);
  });

  it('answers 400 to a body that is not an object, 415 to one that is not JSON, and changes nothing', async () => {
    const before = await organizationRow(app, org);
    expectApiError(await putRaw(org, '[]'), 400, 'BAD_REQUEST');
    expectApiError(await putRaw(org, '{"features":'), 400, 'BAD_REQUEST');
    expectApiError(
      await app.request('PUT', settingsPath(org), {
        token: admin.token,
        rawBody: 'features=beta',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
      }),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
    );
    expect(await organizationRow(app, org)).toEqual(before);
  });
});

describe('PUT /organizations/{org_id}/settings: who may write', () => {
  it('answers 403 to a member and changes nothing', async () => {
    const org = await team();
    const before = await organizationRow(app, org);
    expectApiError(await putSettings(org, { features: { beta: true } }, member.token), 403, 'FORBIDDEN');
    expect(await organizationRow(app, org)).toEqual(before);
  });

  it('answers 404 to a non-member (as to an unknown organization) and changes nothing', async () => {
    const org = await team();
    const before = await organizationRow(app, org);
    const hidden = await putSettings(org, { features: { beta: true } }, outsider.token);
    const missing = await putSettings(UNKNOWN_UUID, { features: { beta: true } }, outsider.token);
    expectApiError(hidden, 404, 'NOT_FOUND');
    expectApiError(missing, 404, 'NOT_FOUND');
    expect(hidden.body).toEqual(missing.body);
    expect(await organizationRow(app, org)).toEqual(before);
  });
});

describe('strict types over both faces: booleans are JSON true/false only', () => {
  /** One organization for the rejected writes: each test checks it is left exactly as it was. */
  let org: string;
  beforeAll(async () => {
    org = await team();
    await write(org, { features: { beta: true }, permissions: { allow_guests: false }, integrations: { slack: { enabled: false } } });
  });

  const cases: Array<[string, Record<string, unknown>, string]> = [
    ['a feature "false"', { features: { beta: 'false' } }, 'features.beta'],
    ['a feature "true"', { features: { beta: 'true' } }, 'features.beta'],
    ['a feature 1', { features: { beta: 1 } }, 'features.beta'],
    ['a feature 0', { features: { beta: 0 } }, 'features.beta'],
    ['allow_guests "true"', { permissions: { allow_guests: 'true' } }, 'permissions.allow_guests'],
    ['allow_member_invites "false"', { permissions: { allow_member_invites: 'false' } }, 'permissions.allow_member_invites'],
    ['allow_guests 1', { permissions: { allow_guests: 1 } }, 'permissions.allow_guests'],
    ['an integration enabled "true"', { integrations: { slack: { enabled: 'true' } } }, 'integrations.slack.enabled'],
    ['an integration enabled "false"', { integrations: { slack: { enabled: 'false' } } }, 'integrations.slack.enabled'],
    ['an integration enabled 1', { integrations: { slack: { enabled: 1 } } }, 'integrations.slack.enabled'],
    ['default_role 1', { permissions: { default_role: 1 } }, 'permissions.default_role'],
  ];

  it.each(cases)('REST answers 400 to %s and changes nothing', async (_what, body, path) => {
    const before = await organizationRow(app, org);
    expectIssueAt(await putSettings(org, body), path);
    expect(await organizationRow(app, org)).toEqual(before);
  });

  it.each(cases)('tRPC answers BAD_REQUEST (400) to %s and changes nothing', async (_what, body, path) => {
    const before = await organizationRow(app, org);
    const error = await expectTrpcFailure(
      app.trpc(admin.token).organizations.updateSettings.mutate({ org_id: org, ...body }),
      400,
      'BAD_REQUEST',
    );
    expect(error.data?.issues?.map((i) => i.path)).toContain(path);
    expect(await organizationRow(app, org)).toEqual(before);
  });

  it('stays strict after REST traffic (no face turns coercion on for the other)', async () => {
    // Exercise the REST face (including the query-number coercion) and the document first.
    expect((await app.request('GET', '/api/v1/organizations?limit=5', { token: admin.token })).status).toBe(200);
    expect((await app.request('GET', '/openapi.json')).status).toBe(200);
    const before = await organizationRow(app, org);
    expectIssueAt(await putSettings(org, { features: { beta: 'false' } }), 'features.beta');
    await expectTrpcFailure(
      app.trpc(admin.token).organizations.updateSettings.mutate({ org_id: org, features: { beta: 'false' } } as never),
      400,
      'BAD_REQUEST',
    );
    expect(await organizationRow(app, org)).toEqual(before);
    expect((before!.settings as { features: Record<string, unknown> }).features.beta).toBe(true);
  });

  it('accepts config values given as strings, over both faces, as strings', async () => {
    const org = await team(); // a layer of its own, since this one changes it
    const rest = await putSettings(org, { integrations: { slack: { config: { verbose: 'true' } } } });
    expect(rest.status, rest.text).toBe(200);
    const viaTrpc = await app
      .trpc(admin.token)
      .organizations.updateSettings.mutate({ org_id: org, integrations: { slack: { config: { retries: '3' } } } });
    expect(viaTrpc.settings).toEqual({ integrations: { slack: { config: { verbose: 'true', retries: '3' } } } });
    expect((await organizationRow(app, org))!.settings).toEqual({ integrations: { slack: { config: { verbose: 'true', retries: '3' } } } });
  });
});

describe('settings over tRPC', () => {
  it('updates and reads settings with the same result as REST', async () => {
    const org = await team();
    const client = app.trpc(admin.token);
    const updated = await client.organizations.updateSettings.mutate({
      org_id: org,
      features: { beta: true },
      permissions: { allow_guests: true },
    });
    expect(updated).toEqual({
      organization_id: org,
      settings: { features: { beta: true }, permissions: { allow_guests: true } },
      effective: { ...DEFAULT_EFFECTIVE, features: { beta: true }, permissions: { ...SYSTEM_DEFAULT_PERMISSIONS, allow_guests: true } },
      locks: [],
    });
    expect(await app.trpc(member.token).organizations.getSettings.query({ org_id: org })).toEqual(updated);
    expect((await getSettings(org)).body).toEqual(updated);
    expect((await organizationRow(app, org))!.settings).toEqual(updated.settings);

    const removed = await client.organizations.updateSettings.mutate({ org_id: org, permissions: { allow_guests: null } });
    expect(removed.effective.permissions).toEqual(SYSTEM_DEFAULT_PERMISSIONS);
  });

  it('reports FORBIDDEN, NOT_FOUND and validation errors with data.code and data.httpStatus, without a stack', async () => {
    const org = await team();
    const before = await organizationRow(app, org);
    await expectTrpcFailure(
      app.trpc(member.token).organizations.updateSettings.mutate({ org_id: org, features: { beta: true } }),
      403,
      'FORBIDDEN',
    );
    await expectTrpcFailure(
      app.trpc(outsider.token).organizations.updateSettings.mutate({ org_id: org, features: { beta: true } }),
      404,
      'NOT_FOUND',
    );
    await expectTrpcFailure(app.trpc(outsider.token).organizations.getSettings.query({ org_id: org }), 404, 'NOT_FOUND');
    const invalid = await expectTrpcFailure(
      app.trpc(admin.token).organizations.updateSettings.mutate({ org_id: org, permissions: { default_role: 'boss' as never } }),
      400,
      'BAD_REQUEST',
    );
    expect(invalid.data?.issues).toEqual([{ path: 'permissions.default_role', message: expect.any(String) }]);
    expect(await organizationRow(app, org)).toEqual(before);
  });
});
