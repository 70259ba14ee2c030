import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup, signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { expectApiError, expectTrpcError, trpcFailure } from './helpers/errors';
import { createTeam } from './helpers/org-helpers';
import { workspaceCount } from './helpers/workspace-helpers';

/**
 * Quotas (README, Security: Quotas): MAX_WORKSPACES_PER_ORGANIZATION and
 * MAX_ORGANIZATIONS_PER_USER, enforced inside the writing transaction; past one, 409
 * QUOTA_EXCEEDED naming the limit, and nothing written.
 */

const onPostgres = Boolean(process.env.DATABASE_URL);
const WORKSPACES = 5;
const ORGANIZATIONS = 3;

let app: TestApp;
let owner: SignedUp;
let stranger: SignedUp;

beforeAll(async () => {
  // The organization quota has an app of its own (below): here the tests make many organizations.
  app = await startTestApp({ MAX_WORKSPACES_PER_ORGANIZATION: String(WORKSPACES), MAX_ORGANIZATIONS_PER_USER: '0' });
  [owner, stranger] = await signupMany(app, ['Owner', 'Stranger']);
});
afterAll(async () => {
  await app?.close();
});

let counter = 0;
const create = (organizationId: string, body: Record<string, unknown> = {}, token = owner.token) =>
  app.request('POST', '/api/v1/workspaces', { token, body: { organization_id: organizationId, name: `Quota ${++counter}`, ...body } });

/** A new organization, where the owner is an admin, holding `count` workspaces (its default one included). */
async function organizationHolding(count: number): Promise<string> {
  const organizationId = await createTeam(app, stranger, [[owner, 'admin']]);
  for (let i = 1; i < count; i++) expect((await create(organizationId)).status).toBe(201);
  expect(await workspaceCount(app, organizationId)).toBe(count);
  return organizationId;
}

const eventCount = async (organizationId: string) =>
  (await app.query<{ n: number }>('select count(*)::int as n from audit_events where organization_id = $1', [organizationId]))[0]!.n;

function expectQuotaError(res: Awaited<ReturnType<typeof create>>, limitName: string, limit: number) {
  expectApiError(res, 409, 'QUOTA_EXCEEDED');
  expect(res.body.message).toContain(limitName);
  expect(res.body.message).toContain(String(limit));
}

describe('MAX_WORKSPACES_PER_ORGANIZATION', () => {
  it('creates up to the limit, then answers 409 QUOTA_EXCEEDED and writes nothing (no row, no event)', async () => {
    const organizationId = await organizationHolding(WORKSPACES - 1);
    expect((await create(organizationId)).status).toBe(201);
    const events = await eventCount(organizationId);
    const refused = await create(organizationId, { name: 'One too many' });
    expectQuotaError(refused, 'MAX_WORKSPACES_PER_ORGANIZATION', WORKSPACES);
    expect(await workspaceCount(app, organizationId)).toBe(WORKSPACES);
    expect(await app.query('select id from workspaces where name = $1', ['One too many'])).toEqual([]);
    expect(await eventCount(organizationId)).toBe(events);
    // The organization-scoped create is the same operation.
    const scoped = await app.request('POST', `/api/v1/organizations/${organizationId}/workspaces`, {
      token: owner.token,
      body: { name: 'Scoped' },
    });
    expectQuotaError(scoped, 'MAX_WORKSPACES_PER_ORGANIZATION', WORKSPACES);
  });

  it('counts archived workspaces; deleting one makes room', async () => {
    const organizationId = await organizationHolding(WORKSPACES - 1);
    const last = await create(organizationId);
    const archived = await app.request('POST', `/api/v1/workspaces/${last.body.id}/archive`, { token: owner.token });
    expect(archived.status).toBe(200);
    expectApiError(await create(organizationId), 409, 'QUOTA_EXCEEDED');
    expect((await app.request('DELETE', `/api/v1/workspaces/${last.body.id}`, { token: owner.token })).status).toBe(204);
    expect((await create(organizationId)).status).toBe(201);
    expect(await workspaceCount(app, organizationId)).toBe(WORKSPACES);
  });

  it('is checked after authorization: a non-member of a full organization still gets 404', async () => {
    const organizationId = await organizationHolding(WORKSPACES);
    const outsider = await signup(app, 'Outsider');
    expectApiError(await create(organizationId, {}, outsider.token), 404, 'NOT_FOUND');
  });

  it('refuses a clone into a full organization, and answers over tRPC with data.code QUOTA_EXCEEDED', async () => {
    const organizationId = await organizationHolding(WORKSPACES);
    const [source] = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 limit 1', [organizationId]);
    const clone = await app.request('POST', `/api/v1/workspaces/${source!.id}/clone`, { token: owner.token, body: { name: 'Clone' } });
    expectQuotaError(clone, 'MAX_WORKSPACES_PER_ORGANIZATION', WORKSPACES);
    const error = await trpcFailure(app.trpc(owner.token).workspaces.create.mutate({ organization_id: organizationId, name: 'Over tRPC' }));
    expectTrpcError(error, 409, 'QUOTA_EXCEEDED');
    expect(error.message).toContain('MAX_WORKSPACES_PER_ORGANIZATION');
    expect(await workspaceCount(app, organizationId)).toBe(WORKSPACES);
  });

  it('a partial provision creates what fits and reports the rest in failed with QUOTA_EXCEEDED', async () => {
    const organizationId = await organizationHolding(WORKSPACES - 2);
    const [taken] = await app.query<{ slug: string }>('select slug from workspaces where organization_id = $1 limit 1', [organizationId]);
    const res = await app.request('POST', '/api/v1/workspaces/provision', {
      token: owner.token,
      body: {
        organization_id: organizationId,
        mode: 'partial',
        workspaces: [{ name: 'P0' }, { name: 'P1', slug: taken!.slug }, { name: 'P2' }, { name: 'P3' }, { name: 'P4' }],
      },
    });
    expect(res.status, res.text).toBe(201);
    // P1's slug is taken: a conflict, which takes no room.
    expect(res.body.created.map((w: { name: string }) => w.name)).toEqual(['P0', 'P2']);
    expect(res.body.failed).toEqual([
      { index: 1, code: 'CONFLICT', message: expect.stringContaining(taken!.slug) },
      { index: 3, code: 'QUOTA_EXCEEDED', message: expect.stringContaining('MAX_WORKSPACES_PER_ORGANIZATION') },
      { index: 4, code: 'QUOTA_EXCEEDED', message: expect.stringContaining('MAX_WORKSPACES_PER_ORGANIZATION') },
    ]);
    expect(await workspaceCount(app, organizationId)).toBe(WORKSPACES);
  });

  it('an atomic provision past the quota is 409 QUOTA_EXCEEDED listing the items over it, and creates nothing', async () => {
    const organizationId = await organizationHolding(WORKSPACES - 2);
    const events = await eventCount(organizationId);
    const res = await app.request('POST', '/api/v1/workspaces/provision', {
      token: owner.token,
      body: { organization_id: organizationId, workspaces: [{ name: 'A0' }, { name: 'A1' }, { name: 'A2' }] },
    });
    expectQuotaError(res, 'MAX_WORKSPACES_PER_ORGANIZATION', WORKSPACES);
    expect(res.body.failed).toEqual([{ index: 2, code: 'QUOTA_EXCEEDED', message: expect.stringContaining(String(WORKSPACES)) }]);
    expect(await workspaceCount(app, organizationId)).toBe(WORKSPACES - 2);
    expect(await eventCount(organizationId)).toBe(events);
    // The same batch, one item shorter, fits.
    const fits = await app.request('POST', '/api/v1/workspaces/provision', {
      token: owner.token,
      body: { organization_id: organizationId, workspaces: [{ name: 'A0' }, { name: 'A1' }] },
    });
    expect(fits.status, fits.text).toBe(201);
    expect(await workspaceCount(app, organizationId)).toBe(WORKSPACES);
  });
});

describe('MAX_ORGANIZATIONS_PER_USER', () => {
  let orgApp: TestApp;
  beforeAll(async () => {
    orgApp = await startTestApp({ MAX_ORGANIZATIONS_PER_USER: String(ORGANIZATIONS) });
  });
  afterAll(async () => {
    await orgApp?.close();
  });
  const createOrganization = (token: string, name: string) => orgApp.request('POST', '/api/v1/organizations', { token, body: { name } });

  it('counts the organizations a user created (signup included): past the limit 409 QUOTA_EXCEEDED, nothing written', async () => {
    const [user, other] = await signupMany(orgApp, ['Founder', 'Other']);
    for (let i = 2; i <= ORGANIZATIONS; i++) expect((await createOrganization(user.token, `Founded ${i}`)).status).toBe(201);
    const created = await orgApp.query<{ id: string }>('select id from organizations where created_by = $1 order by created_at', [
      user.user.id,
    ]);
    expect(created).toHaveLength(ORGANIZATIONS);
    const refused = await createOrganization(user.token, 'One too many');
    expectQuotaError(refused, 'MAX_ORGANIZATIONS_PER_USER', ORGANIZATIONS);
    expect(await orgApp.query('select id from organizations where name = $1', ['One too many'])).toEqual([]);
    const error = await trpcFailure(orgApp.trpc(user.token).organizations.create.mutate({ name: 'Over tRPC' }));
    expectTrpcError(error, 409, 'QUOTA_EXCEEDED');
    // An organization someone else created does not count, not even once the user is its admin.
    await createTeam(orgApp, other, [[user, 'admin']]);
    expectApiError(await createOrganization(user.token, 'Still too many'), 409, 'QUOTA_EXCEEDED');
    expect((await createOrganization(other.token, 'Other has room')).status).toBe(201);
    // Deleting one the user created makes room.
    expect((await orgApp.request('DELETE', `/api/v1/organizations/${created[1]!.id}`, { token: user.token })).status).toBe(204);
    expect((await createOrganization(user.token, 'Room again')).status).toBe(201);
  });

  it.runIf(onPostgres)('10 concurrent organization creates by one user with room for 2: exactly 2 created (PostgreSQL)', async () => {
    const user = await signup(orgApp, 'Racer');
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => createOrganization(user.token, `Race org ${i}`)));
    expect(answers.filter((a) => a.status === 201)).toHaveLength(ORGANIZATIONS - 1);
    for (const a of answers.filter((x) => x.status !== 201)) expectApiError(a, 409, 'QUOTA_EXCEEDED');
    expect(await orgApp.query('select id from organizations where created_by = $1', [user.user.id])).toHaveLength(ORGANIZATIONS);
  });
});

describe('a quota of 0 means none', () => {
  it('creates past what the other app would refuse', async () => {
    const unlimited = await startTestApp({ MAX_WORKSPACES_PER_ORGANIZATION: '0', MAX_ORGANIZATIONS_PER_USER: '0' });
    try {
      const user = await signup(unlimited, 'Unlimited');
      const res = await unlimited.request('POST', '/api/v1/workspaces/provision', {
        token: user.token,
        body: { organization_id: user.organization.id, workspaces: Array.from({ length: WORKSPACES + 1 }, (_, i) => ({ name: `U${i}` })) },
      });
      expect(res.status, res.text).toBe(201);
      for (let i = 0; i < ORGANIZATIONS + 1; i++) {
        expect((await unlimited.request('POST', '/api/v1/organizations', { token: user.token, body: { name: `U org ${i}` } })).status).toBe(
          201,
        );
      }
    } finally {
      await unlimited.close();
    }
  });
});

describe.runIf(onPostgres)('quotas under racing requests (PostgreSQL)', () => {
  it('20 concurrent creates into an organization with room for 3: exactly 3 created, the rest 409 QUOTA_EXCEEDED', async () => {
    const organizationId = await organizationHolding(WORKSPACES - 3);
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => create(organizationId, { name: `Race ${i}` })));
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(3);
    for (const a of answers.filter((x) => x.status !== 201)) expectApiError(a, 409, 'QUOTA_EXCEEDED');
    expect(await workspaceCount(app, organizationId)).toBe(WORKSPACES);
  });

  it('concurrent partial provisions and clones share the room: the organization ends at the limit, never past it', async () => {
    const organizationId = await organizationHolding(1);
    const [source] = await app.query<{ id: string }>('select id from workspaces where organization_id = $1', [organizationId]);
    const provisions = Array.from({ length: 4 }, (_, i) =>
      app.request('POST', '/api/v1/workspaces/provision', {
        token: owner.token,
        body: {
          organization_id: organizationId,
          mode: 'partial',
          workspaces: [{ name: `B${i}a` }, { name: `B${i}b` }, { name: `B${i}c` }],
        },
      }),
    );
    const clones = Array.from({ length: 4 }, (_, i) =>
      app.request('POST', `/api/v1/workspaces/${source!.id}/clone`, { token: owner.token, body: { name: `C${i}` } }),
    );
    const answers = await Promise.all([...provisions, ...clones]);
    let created = 0;
    for (const a of answers.slice(0, 4)) {
      expect(a.status, a.text).toBe(201);
      created += a.body.created.length;
    }
    for (const a of answers.slice(4)) {
      if (a.status === 201) created++;
      else expectApiError(a, 409, 'QUOTA_EXCEEDED');
    }
    expect(created).toBe(WORKSPACES - 1);
    expect(await workspaceCount(app, organizationId)).toBe(WORKSPACES);
  });
});
