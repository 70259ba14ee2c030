import pino from 'pino';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveApp, signupMany, startTestApp, uniqueEmail, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';
import { createTeam, tamperCursor } from './helpers/org-helpers';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';
import { createOrganizationFor, uniqueWorkspaceName } from './helpers/workspace-helpers';
import { storedEvents, type ApiEvent, type Change, type Changes } from './helpers/audit-helpers';
import { withQuery, type Query } from './helpers/faces';
import { ISO_MS_PATTERN, UNKNOWN_UUID, UUID_PATTERN } from './helpers/values';

/**
 * Audit events (README, "Audit events"): one event per change, written in the change's
 * transaction (none for a no-op, a rolled-back change or an idempotent replay), the two lists
 * (GET /organizations/{org_id}/events, GET /workspaces/{workspace_id}/events, and
 * audit.listOrganizationEvents / audit.listWorkspaceEvents over tRPC), their index plans on
 * PostgreSQL, and retention (pruneAuditEvents).
 *
 * Every change a test makes carries an `X-Request-Id` of its own, so the events of that
 * request are found in the database by `client_request_id` alone (`request_id` is the
 * service's own id of the request).
 */

type EventPage = { items: ApiEvent[]; next_cursor: string | null };

/** What a test expects of one event (id, request_id and created_at are checked by the helpers). */
interface Expected {
  action: string;
  target_type: string;
  target_id: string;
  organization_id: string;
  workspace_id: string | null;
  actor: SignedUp;
  changes: Changes;
}

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

/** A fresh organization of the owner's, with the admin and the member in their roles. */
const team = () =>
  createTeam(app, owner, [
    [admin, 'admin'],
    [member, 'member'],
  ]);

let ridCounter = 0;
/** A request id no other request of this file sends. */
const newRid = (label: string) => `audit-${label}-${++ridCounter}-${randomUUID()}`;

/** A REST call carrying a fresh X-Request-Id; checks the answer echoes it. */
async function send(
  method: string,
  path: string,
  token: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ res: ApiResponse; rid: string }> {
  const rid = newRid(method.toLowerCase());
  const res = await app.request(method, path, { token, body, headers: { 'x-request-id': rid, ...headers } });
  expect(res.headers.get('x-request-id')).toBe(rid);
  return { res, rid };
}

/** tRPC call options carrying a fresh X-Request-Id (through the client's httpLink). */
const trpcRid = (label: string) => {
  const rid = newRid(`trpc-${label}`);
  return { rid, options: { context: { headers: { 'x-request-id': rid } } } };
};

/** The events of the request that sent `X-Request-Id: rid`. */
const eventsOfRequest = (rid: string) => storedEvents(app, 'client_request_id = $1', [rid]);
const eventsOfOrganization = (org: string) => storedEvents(app, 'organization_id = $1', [org]);

async function countWhere(where: string, params: unknown[]): Promise<number> {
  const [row] = await app.query<{ n: number }>(`select count(*)::int as n from audit_events where ${where}`, params);
  return row!.n;
}
const orgEventCount = (org: string) => countWhere('organization_id = $1', [org]);
const totalEventCount = () => countWhere('true', []);

/**
 * A create's `changes` for comparison: "each field set" — a `false` default flag may or may
 * not be listed as set, so `is_default: {from: null, to: false}` is dropped before comparing.
 */
function normalizeCreated(changes: Changes): Changes {
  const { is_default, ...rest } = changes;
  if (is_default && is_default.from === null && is_default.to === false) return rest;
  return changes;
}

/**
 * The request's events, as stored, are exactly `expected` (matched by action and target), all
 * carrying the caller's request id and one id of the service's, a well-formed id and
 * timestamp, and one created_at (one transaction); and the organization's list (as `token`)
 * answers them, newest first, as stored.
 */
async function expectRequestEvents(rid: string, expected: Expected[], listAs: { org: string; token: string }): Promise<ApiEvent[]> {
  const stored = await eventsOfRequest(rid);
  expect(stored.map((e) => `${e.action} ${e.target_id}`).sort(), JSON.stringify(stored, null, 1)).toEqual(
    expected.map((e) => `${e.action} ${e.target_id}`).sort(),
  );
  for (const want of expected) {
    const event = stored.find((e) => e.action === want.action && e.target_id === want.target_id)!;
    const changes = ['workspace.created', 'workspace.cloned'].includes(event.action) ? normalizeCreated(event.changes) : event.changes;
    expect({ ...event, changes }, want.action).toEqual({
      id: expect.stringMatching(UUID_PATTERN),
      organization_id: want.organization_id,
      workspace_id: want.workspace_id,
      actor: { id: want.actor.user.id, email: want.actor.user.email },
      action: want.action,
      target_type: want.target_type,
      target_id: want.target_id,
      changes: want.changes,
      request_id: expect.stringMatching(UUID_PATTERN),
      client_request_id: rid,
      created_at: expect.stringMatching(ISO_MS_PATTERN),
    });
  }
  expect(new Set(stored.map((e) => e.created_at)).size).toBe(1);
  expect(new Set(stored.map((e) => e.request_id)).size).toBe(1);
  // The API answers the same events, as stored, newest first.
  const res = await app.request('GET', `/api/v1/organizations/${listAs.org}/events?limit=50`, { token: listAs.token });
  expect(res.status, res.text).toBe(200);
  expect((res.body as EventPage).items.filter((e) => e.client_request_id === rid)).toEqual(stored);
  return stored;
}

/** The request wrote no event, and the organization's events are as many as before. */
async function expectNoEvents(rid: string, org: string, before: number) {
  expect(await eventsOfRequest(rid)).toEqual([]);
  expect(await orgEventCount(org)).toBe(before);
}

const wsEvent = (action: string, org: string, workspaceId: string, actor: SignedUp, changes: Changes): Expected => ({
  action,
  target_type: 'workspace',
  target_id: workspaceId,
  organization_id: org,
  workspace_id: workspaceId,
  actor,
  changes,
});
const memberEvent = (action: string, org: string, userId: string, actor: SignedUp, changes: Changes): Expected => ({
  action,
  target_type: 'member',
  target_id: userId,
  organization_id: org,
  workspace_id: null,
  actor,
  changes,
});
const invitationEvent = (action: string, org: string, invitationId: string, actor: SignedUp, changes: Changes): Expected => ({
  action,
  target_type: 'invitation',
  target_id: invitationId,
  organization_id: org,
  workspace_id: null,
  actor,
  changes,
});
const orgEvent = (action: string, org: string, actor: SignedUp, changes: Changes): Expected => ({
  action,
  target_type: 'organization',
  target_id: org,
  organization_id: org,
  workspace_id: null,
  actor,
  changes,
});
/**
 * No locks, as a `locks` change names it: the README compares `locks` as a whole list, and
 * `null` stands for "not set"; an empty list and `null` are both read as "none".
 */
const NO_LOCKS = {
  asymmetricMatch: (value: unknown) => value === null || (Array.isArray(value) && value.length === 0),
  toString: () => 'NoLocks',
  toAsymmetricMatcher: () => '[] or null',
};
const set = (to: unknown): Change => ({ from: null, to });
const unset = (from: unknown): Change => ({ from, to: null });

async function versionOf(workspaceId: string): Promise<number> {
  const [row] = await app.query<{ version: number }>('select version from workspaces where id = $1', [workspaceId]);
  return row!.version;
}
async function defaultIdOf(org: string): Promise<string> {
  const rows = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and is_default', [org]);
  expect(rows).toHaveLength(1);
  return rows[0]!.id;
}

/** POST /workspaces as `token` (no request id of interest); returns the workspace. */
async function newWorkspace(org: string, body: Record<string, unknown> = {}, token = owner.token) {
  const res = await app.request('POST', '/api/v1/workspaces', {
    token,
    body: { organization_id: org, name: uniqueWorkspaceName(), ...body },
  });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; name: string; slug: string; version: number; description: string | null };
}

const orgEventsPath = (org: string, query: Query = {}) => withQuery(`/api/v1/organizations/${org}/events`, query);
const wsEventsPath = (ws: string, query: Query = {}) => withQuery(`/api/v1/workspaces/${ws}/events`, query);

/** Follows next_cursor over REST from the first page to the last; every page but the last is full. */
async function walkRest(path: (cursor: string | undefined) => string, token: string, limit: number): Promise<ApiEvent[][]> {
  const pages: ApiEvent[][] = [];
  let cursor: string | undefined;
  for (let guard = 0; guard < 200; guard++) {
    const res = await app.request('GET', path(cursor), { token });
    expect(res.status, res.text).toBe(200);
    const page = res.body as EventPage;
    pages.push(page.items);
    if (page.next_cursor === null) return pages;
    expect(page.items).toHaveLength(limit);
    cursor = page.next_cursor;
  }
  throw new Error('pagination did not end');
}

// ---------------------------------------------------------------------------------------------
// One event per change
// ---------------------------------------------------------------------------------------------

describe('workspace events', () => {
  let org: string;
  beforeAll(async () => {
    org = await team();
  });
  const listAs = () => ({ org, token: owner.token });

  it('POST /workspaces writes one workspace.created with each field set, by its actor, under its request id', async () => {
    const before = await orgEventCount(org);
    const name = uniqueWorkspaceName('Created');
    const { res, rid } = await send('POST', '/api/v1/workspaces', admin.token, {
      organization_id: org,
      name,
      description: 'Team beta',
      metadata: { cost_center: '42', owner: 'ann' },
      settings: { features: { beta: true }, permissions: { allow_guests: true } },
    });
    expect(res.status, res.text).toBe(201);
    const ws = res.body;
    await expectRequestEvents(
      rid,
      [
        wsEvent('workspace.created', org, ws.id, admin, {
          name: set(name),
          slug: set(ws.slug),
          description: set('Team beta'),
          'metadata.cost_center': set('42'),
          'metadata.owner': set('ann'),
          'settings.features.beta': set(true),
          'settings.permissions.allow_guests': set(true),
        }),
      ],
      listAs(),
    );
    expect(await orgEventCount(org)).toBe(before + 1);
  });

  it('POST /organizations/{org_id}/workspaces (tRPC createInOrganization) writes one workspace.created', async () => {
    const before = await orgEventCount(org);
    const name = uniqueWorkspaceName('Scoped');
    const { rid, options } = trpcRid('create');
    const slug = `scoped-${randomUUID().slice(0, 8)}`;
    const ws = await app.trpc(owner.token).workspaces.createInOrganization.mutate({ org_id: org, name, slug }, options);
    expect(ws.slug).toBe(slug);
    await expectRequestEvents(rid, [wsEvent('workspace.created', org, ws.id, owner, { name: set(name), slug: set(ws.slug) })], listAs());
    expect(await orgEventCount(org)).toBe(before + 1);

    // and over REST, the organization-scoped path
    const rest = await send('POST', `/api/v1/organizations/${org}/workspaces`, owner.token, { name: `${name} rest` });
    expect(rest.res.status, rest.res.text).toBe(201);
    await expectRequestEvents(
      rest.rid,
      [wsEvent('workspace.created', org, rest.res.body.id, owner, { name: set(`${name} rest`), slug: set(rest.res.body.slug) })],
      listAs(),
    );
    expect(await orgEventCount(org)).toBe(before + 2);
  });

  it('PUT /workspaces/{id} writes one workspace.updated with the fields that changed (metadata key by key); a no-op writes none', async () => {
    const ws = await newWorkspace(org, { metadata: { keep: 'k', gone: 'g', edit: '1' }, description: 'old' });
    const before = await orgEventCount(org);
    const { res, rid } = await send('PUT', `/api/v1/workspaces/${ws.id}`, admin.token, {
      name: `${ws.name} renamed`,
      description: 'old',
      metadata: { keep: 'k', gone: null, edit: '2', added: 'a' },
    });
    expect(res.status, res.text).toBe(200);
    await expectRequestEvents(
      rid,
      [
        wsEvent('workspace.updated', org, ws.id, admin, {
          name: { from: ws.name, to: `${ws.name} renamed` },
          'metadata.gone': unset('g'),
          'metadata.edit': { from: '1', to: '2' },
          'metadata.added': set('a'),
        }),
      ],
      listAs(),
    );
    expect(await orgEventCount(org)).toBe(before + 1);

    // The same values again, and removing a key that is not there: nothing changes, no event.
    const version = await versionOf(ws.id);
    const noop = await send('PUT', `/api/v1/workspaces/${ws.id}`, admin.token, {
      name: `${ws.name} renamed`,
      description: 'old',
      metadata: { keep: 'k', gone: null, edit: '2' },
    });
    expect(noop.res.status, noop.res.text).toBe(200);
    expect(noop.res.body.version).toBe(version);
    await expectNoEvents(noop.rid, org, before + 1);
  });

  // Found by the fuzz suite: the diff read `{}`'s inherited `constructor`, stored a change
  // without `from`, and every list holding that event answered 500.
  it('records metadata keys named like Object.prototype members (constructor, toString…) as ordinary keys; the lists answer them', async () => {
    const keys = ['constructor', 'toString', 'valueOf', 'hasOwnProperty'];
    const metadata = Object.fromEntries(keys.map((key) => [key, `v-${key}`]));
    const created = await send('POST', '/api/v1/workspaces', admin.token, { organization_id: org, name: uniqueWorkspaceName(), metadata });
    expect(created.res.status, created.res.text).toBe(201);
    const ws = created.res.body;
    expect(ws.metadata).toEqual(metadata);
    const [event] = await expectRequestEvents(
      created.rid,
      [
        wsEvent('workspace.created', org, ws.id, admin, {
          name: set(ws.name),
          slug: set(ws.slug),
          ...Object.fromEntries(keys.map((key) => [`metadata.${key}`, set(`v-${key}`)])),
        }),
      ],
      listAs(),
    );

    const updated = await send('PUT', `/api/v1/workspaces/${ws.id}`, admin.token, { metadata: { constructor: null, toString: 'new' } });
    expect(updated.res.status, updated.res.text).toBe(200);
    expect(updated.res.body.metadata).toEqual({ toString: 'new', valueOf: 'v-valueOf', hasOwnProperty: 'v-hasOwnProperty' });
    await expectRequestEvents(
      updated.rid,
      [
        wsEvent('workspace.updated', org, ws.id, admin, {
          'metadata.constructor': unset('v-constructor'),
          'metadata.toString': { from: 'v-toString', to: 'new' },
        }),
      ],
      listAs(),
    );

    const own = await app.request('GET', `/api/v1/workspaces/${ws.id}/events`, { token: member.token });
    expect(own.status, own.text).toBe(200);
    expect((own.body as EventPage).items.map((e) => e.id)).toContain(event!.id);
  });

  it('moving is_default writes two workspace.updated events: the new default and the old one', async () => {
    const fresh = await team();
    const oldDefault = await defaultIdOf(fresh);
    const ws = await newWorkspace(fresh);
    const before = await orgEventCount(fresh);
    const { rid, options } = trpcRid('default');
    const answer = await app.trpc(admin.token).workspaces.update.mutate({ workspace_id: ws.id, is_default: true }, options);
    expect(answer.is_default).toBe(true);
    await expectRequestEvents(
      rid,
      [
        wsEvent('workspace.updated', fresh, ws.id, admin, { is_default: { from: false, to: true } }),
        wsEvent('workspace.updated', fresh, oldDefault, admin, { is_default: { from: true, to: false } }),
      ],
      { org: fresh, token: owner.token },
    );
    expect(await orgEventCount(fresh)).toBe(before + 2);
    const rows = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and is_default', [fresh]);
    expect(rows.map((r) => r.id)).toEqual([ws.id]);
    // Making the default the default again changes nothing.
    const again = await send('PUT', `/api/v1/workspaces/${ws.id}`, admin.token, { is_default: true });
    expect(again.res.status, again.res.text).toBe(200);
    await expectNoEvents(again.rid, fresh, before + 2);
  });

  it('PUT /workspaces/{id}/settings writes one workspace.settings_updated with settings.<leaf> paths; a no-op writes none', async () => {
    const ws = await newWorkspace(org, { settings: { features: { beta: true, keep: true } } });
    const before = await orgEventCount(org);
    const { res, rid } = await send('PUT', `/api/v1/workspaces/${ws.id}/settings`, admin.token, {
      integrations: { slack: { enabled: true, config: { channel: '#ops' } } },
      features: { beta: null, keep: true },
      permissions: { visibility: 'private' },
    });
    expect(res.status, res.text).toBe(200);
    await expectRequestEvents(
      rid,
      [
        wsEvent('workspace.settings_updated', org, ws.id, admin, {
          'settings.integrations.slack.enabled': set(true),
          'settings.integrations.slack.config.channel': set('#ops'),
          'settings.features.beta': unset(true),
          'settings.permissions.visibility': set('private'),
        }),
      ],
      listAs(),
    );
    expect(await orgEventCount(org)).toBe(before + 1);

    // tRPC: a change of one config value
    const { rid: trpcId, options } = trpcRid('settings');
    await app
      .trpc(owner.token)
      .workspaces.updateSettings.mutate({ workspace_id: ws.id, integrations: { slack: { config: { channel: '#dev' } } } }, options);
    await expectRequestEvents(
      trpcId,
      [
        wsEvent('workspace.settings_updated', org, ws.id, owner, {
          'settings.integrations.slack.config.channel': { from: '#ops', to: '#dev' },
        }),
      ],
      listAs(),
    );

    // Same values, and removing what is not set: no event, no new version.
    const version = await versionOf(ws.id);
    const noop = await send('PUT', `/api/v1/workspaces/${ws.id}/settings`, admin.token, {
      features: { keep: true, never: null },
      permissions: { visibility: 'private' },
    });
    expect(noop.res.status, noop.res.text).toBe(200);
    expect(noop.res.body.version).toBe(version);
    await expectNoEvents(noop.rid, org, before + 2);
  });

  it('clone writes one workspace.cloned (the new workspace) with the copied fields and cloned_from_id', async () => {
    const source = await newWorkspace(org, { description: 'src', metadata: { tier: 'gold' }, settings: { features: { x: true } } });
    const before = await orgEventCount(org);
    const name = uniqueWorkspaceName('Clone');
    const { res, rid } = await send('POST', `/api/v1/workspaces/${source.id}/clone`, admin.token, { name });
    expect(res.status, res.text).toBe(201);
    const clone = res.body;
    await expectRequestEvents(
      rid,
      [
        wsEvent('workspace.cloned', org, clone.id, admin, {
          name: set(name),
          slug: set(clone.slug),
          description: set('src'),
          'metadata.tier': set('gold'),
          'settings.features.x': set(true),
          cloned_from_id: set(source.id),
        }),
      ],
      listAs(),
    );
    expect(await orgEventCount(org)).toBe(before + 1);
  });

  it('clone into another organization also writes workspace.cloned_out in the source organization, in the same transaction', async () => {
    const source = await newWorkspace(org, { metadata: { tier: 'silver' } });
    // The admin owns the target organization; the source's own trail must show the copy leaving.
    const target = await createOrganizationFor(app, admin.token);
    const takenInTarget = await newWorkspace(target, {}, admin.token);
    const [beforeSource, beforeTarget] = [await orgEventCount(org), await orgEventCount(target)];

    // Refused in the target (slug taken): 409, and neither organization records anything.
    const refused = await send('POST', `/api/v1/workspaces/${source.id}/clone`, admin.token, {
      name: uniqueWorkspaceName('Refused'),
      organization_id: target,
      slug: takenInTarget.slug,
    });
    expectApiError(refused.res, 409, 'CONFLICT');
    expect(await eventsOfRequest(refused.rid)).toEqual([]);

    const name = uniqueWorkspaceName('Out');
    const { res, rid } = await send('POST', `/api/v1/workspaces/${source.id}/clone`, admin.token, { name, organization_id: target });
    expect(res.status, res.text).toBe(201);
    const clone = res.body;
    expect(clone.organization_id).toBe(target);

    const stored = await eventsOfRequest(rid);
    expect(stored.map((e) => `${e.organization_id} ${e.action} ${e.target_id}`).sort()).toEqual(
      [`${org} workspace.cloned_out ${source.id}`, `${target} workspace.cloned ${clone.id}`].sort(),
    );
    const out = stored.find((e) => e.action === 'workspace.cloned_out')!;
    expect(out).toEqual({
      id: expect.stringMatching(UUID_PATTERN),
      organization_id: org,
      workspace_id: source.id,
      actor: { id: admin.user.id, email: admin.user.email },
      action: 'workspace.cloned_out',
      target_type: 'workspace',
      target_id: source.id,
      changes: { cloned_to_id: set(clone.id), cloned_to_organization_id: set(target) },
      request_id: res.headers.get('x-service-request-id'),
      client_request_id: rid,
      created_at: stored.find((e) => e.action === 'workspace.cloned')!.created_at,
    });
    expect(await orgEventCount(org)).toBe(beforeSource + 1);
    expect(await orgEventCount(target)).toBe(beforeTarget + 1);

    // The source organization's list (filtered by the new action, both faces) and the source workspace's list show it.
    const listed = await app.request('GET', orgEventsPath(org, { action: 'workspace.cloned_out' }), { token: owner.token });
    expect(listed.status, listed.text).toBe(200);
    expect((listed.body as EventPage).items).toEqual([out]);
    const viaTrpc = await app.trpc(owner.token).audit.listOrganizationEvents.query({ org_id: org, action: 'workspace.cloned_out' });
    expect(viaTrpc.items).toEqual([out]);
    const ofSource = await app.request('GET', wsEventsPath(source.id), { token: member.token });
    expect(ofSource.status, ofSource.text).toBe(200);
    expect((ofSource.body as EventPage).items.map((e) => e.action)).toEqual(['workspace.cloned_out', 'workspace.created']);
    expect((ofSource.body as EventPage).items[0]).toEqual(out);

    // A clone within the organization writes none: its workspace.cloned (cloned_from_id) is already in this trail.
    const within = await send('POST', `/api/v1/workspaces/${source.id}/clone`, admin.token, { name: uniqueWorkspaceName('Within') });
    expect(within.res.status, within.res.text).toBe(201);
    expect((await eventsOfRequest(within.rid)).map((e) => e.action)).toEqual(['workspace.cloned']);
    expect(await countWhere("action = 'workspace.cloned_out' and target_id = $1", [source.id])).toBe(1);
  });

  it('provision writes one workspace.created per workspace and one workspaces.provisioned with the counts', async () => {
    const template = await newWorkspace(org, { metadata: { m: 't' }, settings: { features: { t: true } } });
    const taken = await newWorkspace(org);
    const before = await orgEventCount(org);
    const { res, rid } = await send('POST', '/api/v1/workspaces/provision', admin.token, {
      organization_id: org,
      template_workspace_id: template.id,
      mode: 'partial',
      workspaces: [{ name: 'Prov One' }, { name: 'Prov Two', slug: taken.slug }, { name: 'Prov Three', metadata: { m: 'own' } }],
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.created).toHaveLength(2);
    expect(res.body.failed).toHaveLength(1);
    const [one, three] = res.body.created;
    await expectRequestEvents(
      rid,
      [
        wsEvent('workspace.created', org, one.id, admin, {
          name: set('Prov One'),
          slug: set(one.slug),
          'metadata.m': set('t'),
          'settings.features.t': set(true),
        }),
        wsEvent('workspace.created', org, three.id, admin, {
          name: set('Prov Three'),
          slug: set(three.slug),
          'metadata.m': set('own'),
          'settings.features.t': set(true),
        }),
        orgEvent('workspaces.provisioned', org, admin, {
          created: set(2),
          failed: set(1),
          template_workspace_id: set(template.id),
        }),
      ],
      listAs(),
    );
    expect(await orgEventCount(org)).toBe(before + 3);

    // Without a template, over tRPC, atomic: the batch event still counts created and failed.
    const { rid: trpcId, options } = trpcRid('provision');
    const answer = await app
      .trpc(owner.token)
      .workspaces.provision.mutate({ organization_id: org, workspaces: [{ name: 'Prov Four' }, { name: 'Prov Five' }] }, options);
    expect(answer.created).toHaveLength(2);
    const stored = await eventsOfRequest(trpcId);
    expect(stored.map((e) => e.action).sort()).toEqual(['workspace.created', 'workspace.created', 'workspaces.provisioned']);
    const batch = stored.find((e) => e.action === 'workspaces.provisioned')!;
    expect(batch).toMatchObject({ target_type: 'organization', target_id: org, workspace_id: null, actor: { id: owner.user.id } });
    expect(batch.changes).toMatchObject({ created: set(2), failed: set(0) });
    expect(
      stored
        .filter((e) => e.action === 'workspace.created')
        .map((e) => e.target_id)
        .sort(),
    ).toEqual(answer.created.map((w) => w.id).sort());
    expect(await orgEventCount(org)).toBe(before + 6);
  });

  it('archive and restore write workspace.archived / workspace.restored with archived_at; repeating either writes none', async () => {
    const ws = await newWorkspace(org);
    const before = await orgEventCount(org);
    const archived = await send('POST', `/api/v1/workspaces/${ws.id}/archive`, admin.token, {});
    expect(archived.res.status, archived.res.text).toBe(200);
    const at = archived.res.body.archived_at as string;
    expect(at).toMatch(ISO_MS_PATTERN);
    await expectRequestEvents(archived.rid, [wsEvent('workspace.archived', org, ws.id, admin, { archived_at: set(at) })], listAs());

    const again = await send('POST', `/api/v1/workspaces/${ws.id}/archive`, admin.token, { expected_version: 2 });
    expect(again.res.status, again.res.text).toBe(200);
    expect(again.res.body.archived_at).toBe(at);
    expect(again.res.body.version).toBe(2);
    await expectNoEvents(again.rid, org, before + 1);

    const stale = await send('POST', `/api/v1/workspaces/${ws.id}/restore`, owner.token, {}, { 'if-match': '"1"' });
    expectApiError(stale.res, 412, 'PRECONDITION_FAILED');
    await expectNoEvents(stale.rid, org, before + 1);

    const restored = await send('POST', `/api/v1/workspaces/${ws.id}/restore`, owner.token, {}, { 'if-match': '"2"' });
    expect(restored.res.status, restored.res.text).toBe(200);
    expect(restored.res.body.archived_at).toBeNull();
    await expectRequestEvents(restored.rid, [wsEvent('workspace.restored', org, ws.id, owner, { archived_at: unset(at) })], listAs());

    const { rid, options } = trpcRid('restore');
    const answer = await app.trpc(owner.token).workspaces.restore.mutate({ workspace_id: ws.id }, options);
    expect(answer.archived_at).toBeNull();
    await expectNoEvents(rid, org, before + 2);
    const [row] = await app.query<{ archived_at: unknown }>('select archived_at from workspaces where id = $1', [ws.id]);
    expect(row!.archived_at).toBeNull();
  });

  it('DELETE writes one workspace.deleted with every field to null; the events outlive the workspace', async () => {
    const ws = await newWorkspace(org, { description: 'doomed', metadata: { k: 'v' }, settings: { features: { f: true } } });
    const before = await orgEventCount(org);
    const { res, rid } = await send('DELETE', `/api/v1/workspaces/${ws.id}`, admin.token);
    expect(res.status, res.text).toBe(204);
    const [deleted] = await eventsOfRequest(rid);
    expect(await eventsOfRequest(rid)).toHaveLength(1);
    expect(deleted).toMatchObject({
      action: 'workspace.deleted',
      target_type: 'workspace',
      target_id: ws.id,
      workspace_id: ws.id,
      organization_id: org,
      actor: { id: admin.user.id, email: admin.user.email },
      request_id: expect.stringMatching(UUID_PATTERN),
      client_request_id: rid,
    });
    expect(deleted!.changes).toMatchObject({
      name: unset(ws.name),
      slug: unset(ws.slug),
      description: unset('doomed'),
      'metadata.k': unset('v'),
      'settings.features.f': unset(true),
    });
    for (const [path, change] of Object.entries(deleted!.changes)) expect(change.to, path).toBeNull();
    expect(await orgEventCount(org)).toBe(before + 1);
    expect(await app.query('select id from workspaces where id = $1', [ws.id])).toEqual([]);

    // The workspace's own list is gone (404 on both faces), its events stay in the organization's.
    expectApiError(await app.request('GET', wsEventsPath(ws.id), { token: owner.token }), 404, 'NOT_FOUND');
    await expectTrpcFailure(app.trpc(owner.token).audit.listWorkspaceEvents.query({ workspace_id: ws.id }), 404, 'NOT_FOUND');
    const listed = await app.request('GET', orgEventsPath(org, { target_id: ws.id }), { token: owner.token });
    expect(listed.status, listed.text).toBe(200);
    expect((listed.body as EventPage).items.map((e) => e.action)).toEqual(['workspace.deleted', 'workspace.created']);
    expect((listed.body as EventPage).items).toEqual(await storedEvents(app, 'target_id = $1', [ws.id]));
    expect(await countWhere('workspace_id = $1', [ws.id])).toBe(2);
  });
});

describe('organization and member events', () => {
  it('signup writes organization.created, member.added (owner) and workspace.created (the default), by the new account', async () => {
    const rid = newRid('signup');
    const email = uniqueEmail('signup');
    const res = await app.request('POST', '/api/v1/auth/signup', {
      body: { email, password: 'correct horse battery', name: 'Sig' },
      headers: { 'x-request-id': rid },
    });
    expect(res.status, res.text).toBe(201);
    const account = { token: res.body.access_token, user: res.body.user } as SignedUp;
    const org = res.body.organization as { id: string; name: string; slug: string };
    const ws = res.body.workspace as { id: string };
    await expectRequestEvents(
      rid,
      [
        orgEvent('organization.created', org.id, account, { name: set(org.name), slug: set(org.slug) }),
        memberEvent('member.added', org.id, account.user.id, account, { email: set(email), role: set('owner') }),
        wsEvent('workspace.created', org.id, ws.id, account, { name: set('Default'), slug: set('default'), is_default: set(true) }),
      ],
      { org: org.id, token: account.token },
    );
    expect(await orgEventCount(org.id)).toBe(3);
  });

  it('POST /organizations writes the same three events; a slug conflict (409) writes none', async () => {
    const before = await totalEventCount();
    const name = `Audit Org ${randomUUID().slice(0, 8)}`;
    const { res, rid } = await send('POST', '/api/v1/organizations', owner.token, { name });
    expect(res.status, res.text).toBe(201);
    const org = res.body as { id: string; slug: string };
    const defaultId = await defaultIdOf(org.id);
    await expectRequestEvents(
      rid,
      [
        orgEvent('organization.created', org.id, owner, { name: set(name), slug: set(org.slug) }),
        memberEvent('member.added', org.id, owner.user.id, owner, { email: set(owner.user.email), role: set('owner') }),
        wsEvent('workspace.created', org.id, defaultId, owner, { name: set('Default'), slug: set('default'), is_default: set(true) }),
      ],
      { org: org.id, token: owner.token },
    );
    expect(await totalEventCount()).toBe(before + 3);

    const conflict = await send('POST', '/api/v1/organizations', admin.token, { name: 'Other', slug: org.slug });
    expectApiError(conflict.res, 409, 'CONFLICT');
    expect(await eventsOfRequest(conflict.rid)).toEqual([]);
    expect(await totalEventCount()).toBe(before + 3);
  });

  it('rename writes organization.updated with the changed fields; the same name writes none', async () => {
    const org = await team();
    const [stored] = await app.query<{ name: string; slug: string }>('select name, slug from organizations where id = $1', [org]);
    const { name: oldName, slug } = stored!;
    const before = await orgEventCount(org);
    const { res, rid } = await send('PUT', `/api/v1/organizations/${org}`, admin.token, { name: `${oldName} renamed`, slug });
    expect(res.status, res.text).toBe(200);
    await expectRequestEvents(rid, [orgEvent('organization.updated', org, admin, { name: { from: oldName, to: `${oldName} renamed` } })], {
      org,
      token: owner.token,
    });

    const { rid: trpcId, options } = trpcRid('rename');
    await app.trpc(owner.token).organizations.update.mutate({ org_id: org, name: `${oldName} renamed` }, options);
    await expectNoEvents(trpcId, org, before + 1);
    const [row] = await app.query<{ name: string }>('select name from organizations where id = $1', [org]);
    expect(row!.name).toBe(`${oldName} renamed`);
  });

  it('organization settings write organization.settings_updated with settings.<leaf> and locks from/to; a no-op writes none', async () => {
    const org = await team();
    const before = await orgEventCount(org);
    const { res, rid } = await send('PUT', `/api/v1/organizations/${org}/settings`, admin.token, {
      features: { beta: true },
      permissions: { allow_guests: true },
      locks: ['integrations.slack', 'permissions.allow_guests'],
    });
    expect(res.status, res.text).toBe(200);
    await expectRequestEvents(
      rid,
      [
        orgEvent('organization.settings_updated', org, admin, {
          'settings.features.beta': set(true),
          'settings.permissions.allow_guests': set(true),
          locks: { from: NO_LOCKS, to: ['integrations.slack', 'permissions.allow_guests'] },
        }),
      ],
      { org, token: owner.token },
    );

    // Unlock everything and change one value, over tRPC.
    const { rid: trpcId, options } = trpcRid('org-settings');
    const answer = await app
      .trpc(owner.token)
      .organizations.updateSettings.mutate({ org_id: org, features: { beta: false }, locks: null }, options);
    expect(answer.locks).toEqual([]);
    await expectRequestEvents(
      trpcId,
      [
        orgEvent('organization.settings_updated', org, owner, {
          'settings.features.beta': { from: true, to: false },
          locks: { from: ['integrations.slack', 'permissions.allow_guests'], to: NO_LOCKS },
        }),
      ],
      { org, token: owner.token },
    );

    // The same values, locks [] again (already none), removing an unset flag: no event.
    const noop = await send('PUT', `/api/v1/organizations/${org}/settings`, admin.token, {
      features: { beta: false, nothing: null },
      locks: [],
    });
    expect(noop.res.status, noop.res.text).toBe(200);
    await expectNoEvents(noop.rid, org, before + 2);
    const [row] = await app.query<{ settings: unknown; settings_locks: unknown }>(
      'select settings, settings_locks from organizations where id = $1',
      [org],
    );
    expect(row).toEqual({ settings: { features: { beta: false }, permissions: { allow_guests: true } }, settings_locks: [] });
  });

  it('an invitation and its accept, a role change and a removal write invitation.created, invitation.accepted with member.added (by the invitee), member.role_changed, member.removed; a same-role write none', async () => {
    const org = await createOrganizationFor(app, owner.token);
    const before = await orgEventCount(org);
    const invited = await send('POST', `/api/v1/organizations/${org}/invitations`, owner.token, {
      email: outsider.user.email,
      role: 'member',
    });
    expect(invited.res.status, invited.res.text).toBe(201);
    const invitation = invited.res.body.invitation as { id: string; expires_at: string };
    await expectRequestEvents(
      invited.rid,
      [
        invitationEvent('invitation.created', org, invitation.id, owner, {
          email: set(outsider.user.email),
          role: set('member'),
          kind: set('member'),
          expires_at: set(invitation.expires_at),
        }),
      ],
      { org, token: owner.token },
    );
    const added = await send('POST', '/api/v1/invitations/accept', outsider.token, { token: invited.res.body.token });
    expect(added.res.status, added.res.text).toBe(200);
    await expectRequestEvents(
      added.rid,
      [
        invitationEvent('invitation.accepted', org, invitation.id, outsider, { status: { from: 'pending', to: 'accepted' } }),
        memberEvent('member.added', org, outsider.user.id, outsider, { email: set(outsider.user.email), role: set('member') }),
      ],
      { org, token: owner.token },
    );

    const { rid, options } = trpcRid('role');
    await app.trpc(owner.token).organizations.updateMember.mutate({ org_id: org, user_id: outsider.user.id, role: 'admin' }, options);
    await expectRequestEvents(
      rid,
      [memberEvent('member.role_changed', org, outsider.user.id, owner, { role: { from: 'member', to: 'admin' } })],
      {
        org,
        token: owner.token,
      },
    );

    const same = await send('PUT', `/api/v1/organizations/${org}/members/${outsider.user.id}`, owner.token, { role: 'admin' });
    expect(same.res.status, same.res.text).toBe(200);
    await expectNoEvents(same.rid, org, before + 4);

    const removed = await send('DELETE', `/api/v1/organizations/${org}/members/${outsider.user.id}`, owner.token);
    expect(removed.res.status, removed.res.text).toBe(204);
    await expectRequestEvents(
      removed.rid,
      [memberEvent('member.removed', org, outsider.user.id, owner, { email: unset(outsider.user.email), role: unset('admin') })],
      { org, token: owner.token },
    );
    expect(await orgEventCount(org)).toBe(before + 5);
    expect(await app.query('select 1 from memberships where organization_id = $1 and user_id = $2', [org, outsider.user.id])).toEqual([]);
  });

  it('account deletion writes member.removed by the leaver; its earlier events keep its id and email', async () => {
    const [leaver] = await signupMany(app, ['Leaver']);
    const org = await createTeam(app, owner, [[leaver, 'admin']]);
    const ws = await newWorkspace(org);
    const edit = await send('PUT', `/api/v1/workspaces/${ws.id}`, leaver.token, { description: 'by the leaver' });
    expect(edit.res.status, edit.res.text).toBe(200);
    const before = await orgEventCount(org);
    const { res, rid } = await send('DELETE', '/api/v1/auth/me', leaver.token);
    expect(res.status, res.text).toBe(204);
    await expectRequestEvents(
      rid,
      [memberEvent('member.removed', org, leaver.user.id, leaver, { email: unset(leaver.user.email), role: unset('admin') })],
      { org, token: owner.token },
    );
    expect(await orgEventCount(org)).toBe(before + 1);
    expect(await app.query('select id from users where id = $1', [leaver.user.id])).toEqual([]);
    const [earlier] = await eventsOfRequest(edit.rid);
    expect(earlier).toMatchObject({ action: 'workspace.updated', actor: { id: leaver.user.id, email: leaver.user.email } });
    // The leaver's own organization (sole member) went, and its events with it.
    expect(await orgEventCount(leaver.organization.id)).toBe(0);
  });

  it('deleting the organization deletes its events (the deletion itself is a log line, not an event)', async () => {
    const org = await team();
    const ws = await newWorkspace(org, { metadata: { a: 'b' } });
    await app.request('PUT', `/api/v1/workspaces/${ws.id}`, { token: owner.token, body: { name: `${ws.name} x` } });
    expect(await orgEventCount(org)).toBeGreaterThanOrEqual(7);
    const others = (await totalEventCount()) - (await orgEventCount(org));
    const { res, rid } = await send('DELETE', `/api/v1/organizations/${org}`, owner.token);
    expect(res.status, res.text).toBe(204);
    expect(await orgEventCount(org)).toBe(0);
    expect(await eventsOfRequest(rid)).toEqual([]);
    expect(await totalEventCount()).toBe(others);
    expectApiError(await app.request('GET', orgEventsPath(org), { token: owner.token }), 404, 'NOT_FOUND');
  });
});

describe('no event for what does not happen', () => {
  let org: string;
  beforeAll(async () => {
    org = await team();
  });

  it('an atomic provision that conflicts (409) writes none', async () => {
    const taken = await newWorkspace(org);
    const before = await orgEventCount(org);
    const { res, rid } = await send('POST', '/api/v1/workspaces/provision', owner.token, {
      organization_id: org,
      workspaces: [{ name: 'Atomic A' }, { name: 'Atomic B', slug: taken.slug }],
    });
    expectApiError(res, 409, 'CONFLICT');
    await expectNoEvents(rid, org, before);
    expect(await app.query("select id from workspaces where organization_id = $1 and name like 'Atomic %'", [org])).toEqual([]);
  });

  it('a partial provision in which every item conflicts (201, created: []) writes none', async () => {
    const taken = await newWorkspace(org);
    const before = await orgEventCount(org);
    const { res, rid } = await send('POST', '/api/v1/workspaces/provision', owner.token, {
      organization_id: org,
      mode: 'partial',
      workspaces: [{ name: 'Nothing made', slug: taken.slug }],
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.created).toEqual([]);
    expect(res.body.failed).toHaveLength(1);
    await expectNoEvents(rid, org, before);
  });

  it('a PUT that fails its precondition (412) writes none', async () => {
    const ws = await newWorkspace(org);
    const before = await orgEventCount(org);
    const stale = await send('PUT', `/api/v1/workspaces/${ws.id}`, owner.token, { name: 'Never' }, { 'if-match': '"7"' });
    expectApiError(stale.res, 412, 'PRECONDITION_FAILED');
    await expectNoEvents(stale.rid, org, before);
    const settings = await send('PUT', `/api/v1/workspaces/${ws.id}/settings`, owner.token, { features: { x: true }, expected_version: 9 });
    expectApiError(settings.res, 412, 'PRECONDITION_FAILED');
    await expectNoEvents(settings.rid, org, before);
    const [row] = await app.query<{ name: string; version: number; settings: unknown }>(
      'select name, version, settings from workspaces where id = $1',
      [ws.id],
    );
    expect(row).toEqual({ name: ws.name, version: 1, settings: {} });
  });

  it('a create whose slug is taken (409) writes none', async () => {
    const taken = await newWorkspace(org);
    const before = await orgEventCount(org);
    const { res, rid } = await send('POST', '/api/v1/workspaces', owner.token, { organization_id: org, name: 'Dup', slug: taken.slug });
    expectApiError(res, 409, 'CONFLICT');
    await expectNoEvents(rid, org, before);
    expect(await app.query("select id from workspaces where organization_id = $1 and name = 'Dup'", [org])).toEqual([]);
  });

  it('an idempotent replay writes none: the same Idempotency-Key twice counts one event', async () => {
    const key = randomUUID();
    const body = { organization_id: org, name: uniqueWorkspaceName('Idem') };
    const before = await orgEventCount(org);
    const first = await send('POST', '/api/v1/workspaces', owner.token, body, { 'idempotency-key': key });
    expect(first.res.status, first.res.text).toBe(201);
    const replay = await send('POST', '/api/v1/workspaces', owner.token, body, { 'idempotency-key': key });
    expect(replay.res.status, replay.res.text).toBe(201);
    expect(replay.res.headers.get('idempotent-replayed')).toBe('true');
    expect(replay.res.body).toEqual(first.res.body);
    expect(await eventsOfRequest(first.rid)).toHaveLength(1);
    expect(await eventsOfRequest(replay.rid)).toEqual([]);
    expect(await countWhere('target_id = $1', [first.res.body.id])).toBe(1);
    expect(await orgEventCount(org)).toBe(before + 1);

    // A provisioning batch replayed: its events once.
    const batchKey = randomUUID();
    const batch = { organization_id: org, workspaces: [{ name: uniqueWorkspaceName('IdemP') }] };
    const p1 = await send('POST', '/api/v1/workspaces/provision', owner.token, batch, { 'idempotency-key': batchKey });
    expect(p1.res.status, p1.res.text).toBe(201);
    const p2 = await send('POST', '/api/v1/workspaces/provision', owner.token, batch, { 'idempotency-key': batchKey });
    expect(p2.res.status, p2.res.text).toBe(201);
    expect(p2.res.headers.get('idempotent-replayed')).toBe('true');
    expect(await eventsOfRequest(p1.rid)).toHaveLength(2);
    expect(await eventsOfRequest(p2.rid)).toEqual([]);
    expect(await orgEventCount(org)).toBe(before + 3);
  });
});

// ---------------------------------------------------------------------------------------------
// The lists
// ---------------------------------------------------------------------------------------------

/**
 * The audit trail's `request_id` is the service's own id for the request; a caller's
 * `X-Request-Id` (1–128 visible ASCII) is kept beside it as `client_request_id`, so no caller
 * can choose, or collide with, the id an event is traced by. The response echoes the caller's
 * id as `X-Request-Id` (ours when it sent none) and always sends ours as `X-Service-Request-Id`.
 */
describe("request ids: the service's own, and the caller's beside it", () => {
  let org: string;
  let ws: { id: string };
  beforeAll(async () => {
    org = await team();
    ws = await newWorkspace(org);
  });

  const storedOf = async (serviceId: string) => {
    const rows = await app.query<{ request_id: string; client_request_id: string | null }>(
      'select request_id, client_request_id from audit_events where request_id = $1',
      [serviceId],
    );
    return rows;
  };
  /** The event of `serviceId` as both lists answer it, over REST and tRPC (as the owner). */
  async function listedOf(serviceId: string): Promise<ApiEvent[]> {
    const rest = [
      await app.request('GET', orgEventsPath(org, { limit: 100 }), { token: owner.token }),
      await app.request('GET', wsEventsPath(ws.id, { limit: 100 }), { token: owner.token }),
    ];
    const trpc = [
      await app.trpc(owner.token).audit.listOrganizationEvents.query({ org_id: org, limit: 100 }),
      await app.trpc(owner.token).audit.listWorkspaceEvents.query({ workspace_id: ws.id, limit: 100 }),
    ];
    for (const res of rest) expect(res.status, res.text).toBe(200);
    const pages = [...rest.map((res) => res.body as EventPage), ...(trpc as EventPage[])];
    return pages.map((page) => {
      const found = page.items.filter((e) => e.request_id === serviceId);
      expect(found, `${serviceId} in every list`).toHaveLength(1);
      return found[0]!;
    });
  }
  const update = (headers: Record<string, string>) =>
    app.request('PUT', `/api/v1/workspaces/${ws.id}`, {
      token: admin.token,
      body: { description: `described ${randomUUID()}` },
      headers,
    });

  it("stores the service's id as request_id and the caller's X-Request-Id as client_request_id, in the table and both lists", async () => {
    const rid = newRid('caller');
    const res = await update({ 'x-request-id': rid });
    expect(res.status, res.text).toBe(200);
    expect(res.headers.get('x-request-id')).toBe(rid);
    const serviceId = res.headers.get('x-service-request-id')!;
    expect(serviceId).toMatch(UUID_PATTERN);
    expect(serviceId).not.toBe(rid);

    expect(await storedOf(serviceId)).toEqual([{ request_id: serviceId, client_request_id: rid }]);
    expect(await app.query('select id from audit_events where request_id = $1', [rid])).toEqual([]);
    for (const event of await listedOf(serviceId)) {
      expect(event).toMatchObject({ action: 'workspace.updated', target_id: ws.id, request_id: serviceId, client_request_id: rid });
    }
  });

  it('gives two requests with the same X-Request-Id two request_ids', async () => {
    const rid = newRid('reused');
    const [first, second] = [await update({ 'x-request-id': rid }), await update({ 'x-request-id': rid })];
    const ids = [first, second].map((res) => res.headers.get('x-service-request-id')!);
    expect(new Set(ids).size).toBe(2);
    const rows = await app.query<{ request_id: string }>('select request_id from audit_events where client_request_id = $1', [rid]);
    expect(rows.map((r) => r.request_id).sort()).toEqual([...ids].sort());
  });

  it('stores client_request_id null when the caller sent none, or one that is not 1–128 visible ASCII', async () => {
    const sent: Array<Record<string, string>> = [{}, { 'x-request-id': 'has spaces' }, { 'x-request-id': 'x'.repeat(129) }];
    for (const headers of sent) {
      const res = await update(headers);
      expect(res.status, res.text).toBe(200);
      const serviceId = res.headers.get('x-service-request-id')!;
      expect(serviceId).toMatch(UUID_PATTERN);
      expect(res.headers.get('x-request-id')).toBe(serviceId);
      expect(await storedOf(serviceId)).toEqual([{ request_id: serviceId, client_request_id: null }]);
      for (const event of await listedOf(serviceId)) expect(event.client_request_id).toBeNull();
    }
  });

  it('does the same over tRPC', async () => {
    const { rid, options } = trpcRid('update');
    await app.trpc(admin.token).workspaces.update.mutate({ workspace_id: ws.id, description: `via tRPC ${rid}` }, options);
    const rows = await app.query<{ request_id: string; client_request_id: string }>(
      'select request_id, client_request_id from audit_events where client_request_id = $1',
      [rid],
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]!.request_id).toMatch(UUID_PATTERN);
    const [listed] = await listedOf(rows[0]!.request_id);
    expect(listed).toMatchObject({ request_id: rows[0]!.request_id, client_request_id: rid });
  });

  it("logs both on the request line: requestId (the service's) and clientRequestId", async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const logged = await serveApp(app.config, app.database, async () => {}, logger);
    try {
      const rid = newRid('logged');
      const res = await fetch(`${logged.url}/healthz`, { headers: { 'x-request-id': rid } });
      expect(res.status).toBe(200);
      const serviceId = res.headers.get('x-service-request-id');
      await expect.poll(() => lines.filter((l) => l.msg === 'request').length).toBe(1);
      expect(lines.find((l) => l.msg === 'request')).toMatchObject({ requestId: serviceId, clientRequestId: rid, status: 200 });
    } finally {
      await logged.close();
    }
  });
});

describe('event lists', () => {
  let org: string;
  let ws: string;
  let other: string;
  beforeAll(async () => {
    org = await team();
    ws = (await newWorkspace(org, {}, owner.token)).id;
    other = (await newWorkspace(org, {}, admin.token)).id;
    for (let i = 0; i < 5; i++) {
      const res = await app.request('PUT', `/api/v1/workspaces/${ws}`, { token: owner.token, body: { metadata: { n: String(i) } } });
      expect(res.status, res.text).toBe(200);
    }
    for (let i = 0; i < 3; i++) {
      const res = await app.request('PUT', `/api/v1/workspaces/${ws}/settings`, {
        token: admin.token,
        body: { features: { [`f${i}`]: true } },
      });
      expect(res.status, res.text).toBe(200);
    }
    const res = await app.request('PUT', `/api/v1/workspaces/${other}`, { token: admin.token, body: { description: 'other' } });
    expect(res.status, res.text).toBe(200);
  });

  it('lists the organization newest first (created_at, then id), and walks every page with a small limit: no gap, no repeat', async () => {
    const stored = await eventsOfOrganization(org);
    expect(stored.length).toBeGreaterThanOrEqual(16);
    for (let i = 1; i < stored.length; i++) expect(stored[i - 1]!.created_at >= stored[i]!.created_at).toBe(true);
    const first = await app.request('GET', orgEventsPath(org), { token: owner.token });
    expect(first.status, first.text).toBe(200);
    expect(Object.keys(first.body).sort()).toEqual(['items', 'next_cursor']);
    expect(first.body.items[0]).toEqual(stored[0]);
    const pages = await walkRest((cursor) => orgEventsPath(org, { limit: 3, cursor }), admin.token, 3);
    expect(pages.length).toBe(Math.ceil(stored.length / 3));
    const walked = pages.flat();
    expect(new Set(walked.map((e) => e.id)).size).toBe(walked.length);
    expect(walked).toEqual(stored);
    // Reading writes nothing.
    expect(await orgEventCount(org)).toBe(stored.length);
  });

  it('walks the same pages over tRPC (audit.listOrganizationEvents)', async () => {
    const stored = await eventsOfOrganization(org);
    const client = app.trpc(admin.token);
    const walked: ApiEvent[] = [];
    let cursor: string | undefined;
    for (let guard = 0; guard < 50; guard++) {
      const page = await client.audit.listOrganizationEvents.query({ org_id: org, limit: 4, cursor });
      walked.push(...(page.items as ApiEvent[]));
      if (page.next_cursor === null) break;
      expect(page.items).toHaveLength(4);
      cursor = page.next_cursor;
    }
    expect(walked).toEqual(stored);
  });

  it("lists one workspace's events for any member, newest first, on both faces", async () => {
    const stored = await storedEvents(app, 'workspace_id = $1', [ws]);
    expect(stored).toHaveLength(9); // created, 5 updates, 3 settings writes
    const pages = await walkRest((cursor) => wsEventsPath(ws, { limit: 2, cursor }), member.token, 2);
    expect(pages.flat()).toEqual(stored);
    const viaTrpc = await app.trpc(member.token).audit.listWorkspaceEvents.query({ workspace_id: ws, limit: 50 });
    expect(viaTrpc).toEqual({ items: stored, next_cursor: null });
    const filtered = await app.request('GET', wsEventsPath(ws, { action: 'workspace.settings_updated' }), { token: member.token });
    expect(filtered.status, filtered.text).toBe(200);
    expect(filtered.body.items).toEqual(stored.filter((e) => e.action === 'workspace.settings_updated'));
    expect(filtered.body.items).toHaveLength(3);
    expect(await countWhere('workspace_id = $1', [ws])).toBe(9);
  });

  it('filters by action, actor_id and target_id (and combinations), walking pages under the filter', async () => {
    const updated = await storedEvents(app, "organization_id = $1 and action = 'workspace.updated'", [org]);
    expect(updated.length).toBe(6);
    const pages = await walkRest((cursor) => orgEventsPath(org, { action: 'workspace.updated', limit: 4, cursor }), owner.token, 4);
    expect(pages.flat()).toEqual(updated);

    const byAdmin = await storedEvents(app, 'organization_id = $1 and actor_id = $2', [org, admin.user.id]);
    // Its accept of the invitation (invitation.accepted, member.added), its workspace, three settings writes, one update.
    const joining = byAdmin.map((e) => e.action).filter((a) => a.startsWith('invitation.') || a.startsWith('member.'));
    expect(joining.sort()).toEqual(['invitation.accepted', 'member.added']);
    expect(byAdmin.length).toBe(7);
    const res = await app.request('GET', orgEventsPath(org, { actor_id: admin.user.id }), { token: owner.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items).toEqual(byAdmin);

    const onOther = await storedEvents(app, 'organization_id = $1 and target_id = $2', [org, other]);
    expect(onOther.map((e) => e.action)).toEqual(['workspace.updated', 'workspace.created']);
    const byTarget = await app.trpc(owner.token).audit.listOrganizationEvents.query({ org_id: org, target_id: other });
    expect(byTarget).toEqual({ items: onOther, next_cursor: null });

    const combined = await app.request('GET', orgEventsPath(org, { action: 'workspace.updated', actor_id: admin.user.id }), {
      token: owner.token,
    });
    expect(combined.status, combined.text).toBe(200);
    expect(combined.body.items).toEqual(updated.filter((e) => e.actor.id === admin.user.id));
    expect(combined.body.items).toHaveLength(1);

    const none = await app.request('GET', orgEventsPath(org, { actor_id: outsider.user.id }), { token: owner.token });
    expect(none.status, none.text).toBe(200);
    expect(none.body).toEqual({ items: [], next_cursor: null });
  });

  it('filters by since (inclusive) and until (exclusive)', async () => {
    const stored = await eventsOfOrganization(org);
    const times = [...new Set(stored.map((e) => e.created_at))];
    expect(times.length).toBeGreaterThanOrEqual(5);
    const t = times[Math.floor(times.length / 2)]!;
    const u = times[1]!; // newer than t
    const since = stored.filter((e) => e.created_at >= t);
    const until = stored.filter((e) => e.created_at < t);
    expect(since.some((e) => e.created_at === t)).toBe(true);
    expect(until.length).toBeGreaterThan(0);

    const sincePages = await walkRest((cursor) => orgEventsPath(org, { since: t, limit: 2, cursor }), owner.token, 2);
    expect(sincePages.flat()).toEqual(since);
    const untilRes = await app.request('GET', orgEventsPath(org, { until: t, limit: 100 }), { token: owner.token });
    expect(untilRes.status, untilRes.text).toBe(200);
    expect(untilRes.body.items).toEqual(until);
    // [t, u): the event at t in, the one at u out
    const window = await app.trpc(owner.token).audit.listOrganizationEvents.query({ org_id: org, since: t, until: u, limit: 100 });
    expect(window.items).toEqual(stored.filter((e) => e.created_at >= t && e.created_at < u));
    expect(window.items.some((e) => e.created_at === t)).toBe(true);
    expect(window.items.some((e) => e.created_at === u)).toBe(false);
    // since == until is an empty window, not an error
    const empty = await app.request('GET', orgEventsPath(org, { since: t, until: t }), { token: owner.token });
    expect(empty.status, empty.text).toBe(200);
    expect(empty.body).toEqual({ items: [], next_cursor: null });
    expect(await orgEventCount(org)).toBe(stored.length);
  });

  it('reads since and until as ISO 8601 instants: an offset names the same instant', async () => {
    const stored = await eventsOfOrganization(org);
    const t = stored[Math.floor(stored.length / 2)]!.created_at;
    const offset = new Date(Date.parse(t) + 2 * 3600_000).toISOString().replace('Z', '+02:00');
    const same = await app.request('GET', orgEventsPath(org, { since: offset, limit: 100 }), { token: owner.token });
    expect(same.status, same.text).toBe(200);
    expect(same.body.items).toEqual(stored.filter((e) => e.created_at >= t));
    expect(await orgEventCount(org)).toBe(stored.length);
  });

  it('answers 400 to since after until, an unknown action, a malformed date or id, on both faces', async () => {
    const before = await orgEventCount(org);
    expectApiError(
      await app.request('GET', orgEventsPath(org, { since: '2026-01-02T00:00:00Z', until: '2026-01-01T00:00:00Z' }), {
        token: owner.token,
      }),
      400,
      'BAD_REQUEST',
    );
    await expectTrpcFailure(
      app
        .trpc(owner.token)
        .audit.listOrganizationEvents.query({ org_id: org, since: '2026-01-02T00:00:00Z', until: '2026-01-01T00:00:00Z' }),
      400,
      'BAD_REQUEST',
    );
    expectApiError(
      await app.request('GET', wsEventsPath(ws, { since: '2026-01-02T00:00:00Z', until: '2026-01-01T00:00:00Z' }), { token: member.token }),
      400,
      'BAD_REQUEST',
    );
    expectIssueAt(await app.request('GET', orgEventsPath(org, { action: 'workspace.exploded' }), { token: owner.token }), 'action');
    expectIssueAt(await app.request('GET', wsEventsPath(ws, { action: 'nope' }), { token: member.token }), 'action');
    await expectTrpcFailure(
      app.trpc(owner.token).audit.listOrganizationEvents.query({ org_id: org, action: 'nope' as never }),
      400,
      'BAD_REQUEST',
    );
    expectIssueAt(await app.request('GET', orgEventsPath(org, { since: 'yesterday' }), { token: owner.token }), 'since');
    // Well-formed but outside what the database stores (year 0 once in UTC): 400, not a database error.
    expectIssueAt(await app.request('GET', orgEventsPath(org, { since: '0000-02-29T02:03:29-13:39' }), { token: owner.token }), 'since');
    expectIssueAt(await app.request('GET', wsEventsPath(ws, { until: '0001-01-01T00:30:00+01:00' }), { token: member.token }), 'until');
    expectIssueAt(await app.request('GET', orgEventsPath(org, { actor_id: 'not-a-uuid' }), { token: owner.token }), 'actor_id');
    expect(await orgEventCount(org)).toBe(before);
  });

  it('binds the cursor to the filters: another filter is 400, a tampered cursor is 400', async () => {
    const first = await app.request('GET', orgEventsPath(org, { action: 'workspace.updated', limit: 2 }), { token: owner.token });
    expect(first.status, first.text).toBe(200);
    const cursor = first.body.next_cursor as string;
    expect(cursor).toEqual(expect.any(String));
    const ok = await app.request('GET', orgEventsPath(org, { action: 'workspace.updated', limit: 2, cursor }), { token: owner.token });
    expect(ok.status, ok.text).toBe(200);
    for (const query of [
      { cursor },
      { action: 'workspace.settings_updated', cursor },
      { action: 'workspace.updated', actor_id: owner.user.id, cursor },
      { action: 'workspace.updated', target_id: ws, cursor },
      { action: 'workspace.updated', since: '2020-01-01T00:00:00Z', cursor },
      { action: 'workspace.updated', until: '2100-01-01T00:00:00Z', cursor },
    ]) {
      expectApiError(await app.request('GET', orgEventsPath(org, { limit: 2, ...query }), { token: owner.token }), 400, 'BAD_REQUEST');
    }
    const [payload, signature] = cursor.split('.') as [string, string];
    const flipped = signature.slice(0, 5) + (signature[5] === 'A' ? 'B' : 'A') + signature.slice(6);
    for (const bad of [tamperCursor(cursor), `${payload}.${flipped}`, 'not-a-cursor']) {
      expectApiError(
        await app.request('GET', orgEventsPath(org, { action: 'workspace.updated', limit: 2, cursor: bad }), { token: owner.token }),
        400,
        'BAD_REQUEST',
      );
    }
    await expectTrpcFailure(
      app.trpc(owner.token).audit.listOrganizationEvents.query({ org_id: org, action: 'workspace.created', cursor }),
      400,
      'BAD_REQUEST',
    );
    // A workspace list's cursor on the organization's list, and the reverse.
    const wsPage = await app.request('GET', wsEventsPath(ws, { limit: 2 }), { token: owner.token });
    expect(wsPage.body.next_cursor).toEqual(expect.any(String));
    expectApiError(
      await app.request('GET', orgEventsPath(org, { limit: 2, cursor: wsPage.body.next_cursor }), { token: owner.token }),
      400,
      'BAD_REQUEST',
    );
  });

  it('organization events: admins and owners 200, members 403, non-members and unknown organizations 404, on both faces', async () => {
    const before = await orgEventCount(org);
    for (const token of [owner.token, admin.token]) expect((await app.request('GET', orgEventsPath(org), { token })).status).toBe(200);
    expectApiError(await app.request('GET', orgEventsPath(org), { token: member.token }), 403, 'FORBIDDEN');
    const hidden = await app.request('GET', orgEventsPath(org), { token: outsider.token });
    const missing = await app.request('GET', orgEventsPath(UNKNOWN_UUID), { token: outsider.token });
    expectApiError(hidden, 404, 'NOT_FOUND');
    expectApiError(missing, 404, 'NOT_FOUND');
    expect(hidden.body).toEqual(missing.body);
    expectApiError(await app.request('GET', orgEventsPath(org)), 401, 'UNAUTHORIZED');
    await expectTrpcFailure(app.trpc(member.token).audit.listOrganizationEvents.query({ org_id: org }), 403, 'FORBIDDEN');
    await expectTrpcFailure(app.trpc(outsider.token).audit.listOrganizationEvents.query({ org_id: org }), 404, 'NOT_FOUND');
    expect(await orgEventCount(org)).toBe(before);
  });

  it('workspace events: members 200, non-members and unknown workspaces 404, on both faces', async () => {
    const before = await orgEventCount(org);
    const stored = await storedEvents(app, 'workspace_id = $1', [ws]);
    for (const token of [owner.token, admin.token, member.token]) {
      const res = await app.request('GET', wsEventsPath(ws, { limit: 100 }), { token });
      expect(res.status, res.text).toBe(200);
      expect(res.body.items).toEqual(stored);
    }
    expect((await app.trpc(member.token).audit.listWorkspaceEvents.query({ workspace_id: ws })).items).toEqual(stored.slice(0, 20));
    const hidden = await app.request('GET', wsEventsPath(ws), { token: outsider.token });
    const missing = await app.request('GET', wsEventsPath(UNKNOWN_UUID), { token: outsider.token });
    expectApiError(hidden, 404, 'NOT_FOUND');
    expectApiError(missing, 404, 'NOT_FOUND');
    expect(hidden.body).toEqual(missing.body);
    await expectTrpcFailure(app.trpc(outsider.token).audit.listWorkspaceEvents.query({ workspace_id: ws }), 404, 'NOT_FOUND');
    expect(await orgEventCount(org)).toBe(before);
  });
});

// ---------------------------------------------------------------------------------------------
// Query plans (PostgreSQL)
// ---------------------------------------------------------------------------------------------

describe('event lists: query plans', () => {
  type Captured = { text: string; params: unknown[] };

  /** The events query the service sends for one list request (exactly one), and the answer. */
  async function capture(path: string): Promise<Captured & { page: EventPage }> {
    const captured: Captured[] = [];
    const stop = app.database.onQuery((text, params) => captured.push({ text, params }));
    const res = await app.request('GET', path, { token: owner.token });
    stop();
    expect(res.status, res.text).toBe(200);
    const list = captured.filter((q) => /"?audit_events"?/.test(q.text) && /order by/i.test(q.text));
    expect(list, JSON.stringify(captured.map((q) => q.text))).toHaveLength(1);
    return { ...list[0]!, page: res.body };
  }

  const literal = (value: unknown): string => {
    if (value === null || value === undefined) return 'null';
    if (typeof value === 'number' || typeof value === 'bigint') return String(value);
    if (typeof value === 'boolean') return value ? 'true' : 'false';
    const text = value instanceof Date ? value.toISOString() : typeof value === 'string' ? value : JSON.stringify(value);
    return `'${text.replace(/'/g, "''")}'`;
  };
  const normalizeParam = (value: unknown) => (value instanceof Date ? value.toISOString() : value);

  /** EXPLAIN of the captured query: with its parameters bound (a custom plan), and as a generic plan of the prepared statement. */
  async function plans({ text, params }: Captured): Promise<string[]> {
    const custom = await app.query<{ 'QUERY PLAN': string }>(`explain ${text}`, params.map(normalizeParam));
    const connection = await app.database.postgresClient!.reserve();
    try {
      await connection.unsafe(`prepare events_page as ${text}`);
      await connection.unsafe('set plan_cache_mode = force_generic_plan');
      const generic = await connection.unsafe<Array<{ 'QUERY PLAN': string }>>(
        params.length ? `explain execute events_page(${params.map(literal).join(', ')})` : 'explain execute events_page',
      );
      return [custom, generic].map((rows) => rows.map((r) => r['QUERY PLAN']).join('\n'));
    } finally {
      await connection.unsafe('deallocate events_page; reset plan_cache_mode').catch(() => {});
      connection.release();
    }
  }

  /** Many events in `org` (and `workspaceId`), spread over the last hours, and as many in another organization. */
  async function bulk(org: string, elsewhere: string, workspaceId: string | null) {
    for (const [target, ws] of [
      [org, workspaceId],
      [elsewhere, null],
    ] as const) {
      await app.query(
        `insert into audit_events (organization_id, workspace_id, actor_id, actor_email, action, target_type, target_id, changes, request_id, created_at)
         select $1::uuid, $2::uuid, $3::uuid, 'bulk@example.com', 'workspace.updated', 'workspace', coalesce($2::uuid, gen_random_uuid()),
                '{}'::jsonb, 'bulk-' || g, now() - make_interval(secs => g)
           from generate_series(1, 4000) g`,
        [target, ws, owner.user.id],
      );
    }
    await app.query('analyze audit_events');
  }

  const expectIndexPlan = (text: string, index: string, laterPage: boolean) => {
    expect(text, text).toMatch(new RegExp(`Index (Only )?Scan( Backward)? using ${index} on audit_events`));
    expect(text, text).not.toMatch(/Sort/);
    expect(text, text).not.toMatch(/Seq Scan on audit_events/);
    // The cursor position is an index condition, so a deep page does not rescan earlier rows.
    if (laterPage) expect(text, text).toMatch(/Index Cond: .*ROW\(/);
  };

  it.runIf(process.env.DATABASE_URL)(
    'the organization list reads audit_events_org_created_idx in order, no Sort, at page 1 and a later page (PostgreSQL)',
    async () => {
      expect(app.engine).toBe('postgres');
      const org = await createOrganizationFor(app, owner.token, 'Explain Org');
      const elsewhere = await createOrganizationFor(app, owner.token, 'Explain Elsewhere');
      await bulk(org, elsewhere, null);
      const first = await capture(orgEventsPath(org, { limit: 20 }));
      expect(first.page.items).toHaveLength(20);
      let cursor = first.page.next_cursor!;
      for (let i = 0; i < 3; i++)
        cursor = (await app.request('GET', orgEventsPath(org, { limit: 20, cursor }), { token: owner.token })).body.next_cursor;
      const later = await capture(orgEventsPath(org, { limit: 20, cursor }));
      expect(later.page.items).toHaveLength(20);
      expect(later.page.items).toEqual((await eventsOfOrganization(org)).slice(80, 100));
      for (const text of await plans(first)) expectIndexPlan(text, 'audit_events_org_created_idx', false);
      for (const text of await plans(later)) expectIndexPlan(text, 'audit_events_org_created_idx', true);
    },
  );

  it.runIf(process.env.DATABASE_URL)(
    'the workspace list reads audit_events_workspace_created_idx in order, no Sort (PostgreSQL)',
    async () => {
      expect(app.engine).toBe('postgres');
      const org = await createOrganizationFor(app, owner.token, 'Explain Ws');
      const elsewhere = await createOrganizationFor(app, owner.token, 'Explain Ws Elsewhere');
      const ws = await newWorkspace(org);
      // the organization's other workspaces' events beside this one's
      await app.query(
        `insert into audit_events (organization_id, workspace_id, actor_id, actor_email, action, target_type, target_id, changes, request_id, created_at)
       select $1::uuid, gen_random_uuid(), $2::uuid, 'bulk@example.com', 'workspace.updated', 'workspace', gen_random_uuid(),
              '{}'::jsonb, 'bulk-other-' || g, now() - make_interval(secs => g)
         from generate_series(1, 4000) g`,
        [org, owner.user.id],
      );
      await bulk(org, elsewhere, ws.id);
      const first = await capture(wsEventsPath(ws.id, { limit: 20 }));
      expect(first.page.items).toHaveLength(20);
      const later = await capture(wsEventsPath(ws.id, { limit: 20, cursor: first.page.next_cursor! }));
      expect(later.page.items).toEqual((await storedEvents(app, 'workspace_id = $1', [ws.id])).slice(20, 40));
      for (const text of await plans(first)) expectIndexPlan(text, 'audit_events_workspace_created_idx', false);
      for (const text of await plans(later)) expectIndexPlan(text, 'audit_events_workspace_created_idx', true);
    },
  );
});

// ---------------------------------------------------------------------------------------------
// Retention (last: it deletes old events)
// ---------------------------------------------------------------------------------------------

describe('retention: pruneAuditEvents', () => {
  const DAY = 24 * 3600_000;

  it('deletes events older than retentionDays in batches, keeps newer ones, and deletes nothing with retentionDays 0', async () => {
    const { pruneAuditEvents } = await import('../src/modules/audit/retention');
    const org = await createOrganizationFor(app, owner.token, 'Retention');
    const insertAged = (label: string, days: number, n: number) =>
      app.query(
        `insert into audit_events (organization_id, actor_id, actor_email, action, target_type, target_id, changes, request_id, created_at)
         select $1::uuid, $2::uuid, 'old@example.com', 'workspace.updated', 'workspace', gen_random_uuid(), '{}'::jsonb,
                $3 || '-' || g, now() - make_interval(days => $4::int)
           from generate_series(1, $5::int) g`,
        [org, owner.user.id, `retention-${label}`, days, n],
      );
    await insertAged('200', 200, 3);
    await insertAged('100', 100, 2);
    await insertAged('10', 10, 1);
    const aged = (label: string) => countWhere('request_id like $1', [`retention-${label}-%`]);
    const total = await totalEventCount();
    // Nothing else in this file's database is that old.
    expect(await countWhere("created_at < now() - interval '9 days'", [])).toBe(6);

    expect(await pruneAuditEvents(app.database.db, { retentionDays: 0, batchSize: 2 })).toBe(0);
    expect(await totalEventCount()).toBe(total);

    // `now` fifty days ago: the cut-off is 140 days back, so only the 200-day-old events go, two per statement.
    const statements: string[] = [];
    const stop = app.database.onQuery((text) => statements.push(text));
    let deleted: number;
    try {
      deleted = await pruneAuditEvents(app.database.db, { retentionDays: 90, batchSize: 2, now: new Date(Date.now() - 50 * DAY) });
    } finally {
      stop();
    }
    expect(deleted).toBe(3);
    expect(statements.filter((s) => /delete\s+from\s+"?audit_events"?/i.test(s)).length, statements.join('\n')).toBeGreaterThanOrEqual(2);
    expect([await aged('200'), await aged('100'), await aged('10')]).toEqual([0, 2, 1]);
    expect(await totalEventCount()).toBe(total - 3);

    // Now: the 100-day-old ones go; the 10-day-old one and every recent event stay.
    expect(await pruneAuditEvents(app.database.db, { retentionDays: 90, batchSize: 2 })).toBe(2);
    expect([await aged('200'), await aged('100'), await aged('10')]).toEqual([0, 0, 1]);
    expect(await totalEventCount()).toBe(total - 5);
    expect(await countWhere("organization_id = $1 and action = 'organization.created'", [org])).toBe(1);
    // Again: nothing left to prune.
    expect(await pruneAuditEvents(app.database.db, { retentionDays: 90 })).toBe(0);
    expect(await totalEventCount()).toBe(total - 5);
  });

  it('runs on its own schedule in the process (startAuditRetention), and stops cleanly', async () => {
    const { startAuditRetention } = await import('../src/modules/audit/retention');
    const org = await createOrganizationFor(app, owner.token, 'Scheduled retention');
    await app.query(
      `insert into audit_events (organization_id, actor_id, actor_email, action, target_type, target_id, changes, request_id, created_at)
       select $1::uuid, $2::uuid, 'old@example.com', 'workspace.updated', 'workspace', gen_random_uuid(), '{}'::jsonb,
              'scheduled-' || g, now() - interval '40 days'
         from generate_series(1, 3) g`,
      [org, owner.user.id],
    );
    const scheduled = () => countWhere("request_id like 'scheduled-%'", []);
    expect(await scheduled()).toBe(3);
    const logger = pino({ level: 'silent' });
    // Keeping forever: the task never runs.
    const never = startAuditRetention(app.database.db, 0, logger, { firstRunMs: 1, everyMs: 5 });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await never.stop();
    expect(await scheduled()).toBe(3);
    // 30 days: the first run deletes them, later runs find nothing; the organization's recent events stay.
    const task = startAuditRetention(app.database.db, 30, logger, { firstRunMs: 10, everyMs: 50 });
    try {
      await expect.poll(scheduled, { timeout: 10_000, interval: 50 }).toBe(0);
    } finally {
      await task.stop();
    }
    expect(await countWhere("organization_id = $1 and action = 'organization.created'", [org])).toBe(1);
  });

  it('stops within the wait it is given while a batch waits on a database that does not answer (shutdown)', async () => {
    const { startAuditRetention } = await import('../src/modules/audit/retention');
    // A database whose delete never answers: the batch hangs as on a silent network path.
    let deletes = 0;
    const query: Record<string, () => unknown> = {};
    for (const step of ['from', 'where', 'orderBy', 'limit']) query[step] = () => query;
    const silent = {
      select: () => query,
      delete: () => ({ where: () => ({ returning: () => (deletes++, new Promise<never>(() => {})) }) }),
    } as unknown as Parameters<typeof startAuditRetention>[0];
    const task = startAuditRetention(silent, 30, pino({ level: 'silent' }), { firstRunMs: 1 });
    await expect.poll(() => deletes, { timeout: 2000, interval: 10 }).toBe(1);
    const started = Date.now();
    await task.stop(200);
    const waited = Date.now() - started;
    expect(waited).toBeGreaterThanOrEqual(190);
    expect(waited).toBeLessThan(1000);
  });
});
