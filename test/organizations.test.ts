import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { createOrganization, createTeam, organizationRow, rolesIn, tamperCursor, walkPages } from './helpers/org-helpers';
import { isoSql, tableCounts } from './helpers/sql';
import { UNKNOWN_UUID } from './helpers/values';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';

let app: TestApp;
/** Owner of `shared`; `admin` and `member` belong to it in those roles; `outsider` does not. */
let owner: SignedUp;
let admin: SignedUp;
let member: SignedUp;
let outsider: SignedUp;
let shared: string;

beforeAll(async () => {
  app = await startTestApp();
  [owner, admin, member, outsider] = await signupMany(app, ['Owner', 'Admin', 'Member', 'Outsider']);
  shared = await createTeam(app, owner, [
    [admin, 'admin'],
    [member, 'member'],
  ]);
});
afterAll(async () => {
  await app?.close();
});

const orgPath = (id: string) => `/api/v1/organizations/${id}`;
type OrgItem = { id: string; name: string; slug: string; created_at: string; updated_at: string; role: string };

describe("GET /organizations (the caller's organizations)", () => {
  it("lists every organization the caller belongs to, each with the caller's role, as stored", async () => {
    for (const [account, role] of [
      [owner, 'owner'],
      [admin, 'admin'],
      [member, 'member'],
    ] as const) {
      const res = await app.request('GET', '/api/v1/organizations?limit=100', { token: account.token });
      expect(res.status, res.text).toBe(200);
      expect(res.body.next_cursor).toBeNull();
      const items = res.body.items as OrgItem[];
      const stored = await app.query<{ organization_id: string; role: string }>(
        'select organization_id, role from memberships where user_id = $1',
        [account.user.id],
      );
      expect(Object.fromEntries(items.map((o) => [o.id, o.role]))).toEqual(
        Object.fromEntries(stored.map((r) => [r.organization_id, r.role])),
      );
      expect(items.find((o) => o.id === shared)?.role).toBe(role);
      expect(items.find((o) => o.id === account.organization.id)?.role).toBe('owner');
      for (const item of items) {
        expect(Object.keys(item).sort()).toEqual(['created_at', 'id', 'name', 'role', 'slug', 'updated_at']);
        expect(item.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      }
    }
    const res = await app.request('GET', '/api/v1/organizations', { token: outsider.token });
    expect(res.status).toBe(200);
    expect((res.body.items as OrgItem[]).map((o) => o.id)).toEqual([outsider.organization.id]);
  });

  it('pages with limit and next_cursor, returning every organization exactly once in (created_at, id) order', async () => {
    const pager = admin;
    for (let i = 0; i < 5; i++) await createOrganization(app, pager.token, { name: `Paged ${i}` });
    const stored = await app.query<{ id: string }>(
      `select o.id from organizations o join memberships m on m.organization_id = o.id where m.user_id = $1 order by o.created_at, o.id`,
      [pager.user.id],
    );
    expect(stored.length).toBe(7); // signup's, shared, and five more

    const pages = await walkPages<OrgItem>((cursor) =>
      app.request('GET', `/api/v1/organizations?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: pager.token }),
    );
    expect(pages.map((p) => p.items.length)).toEqual([2, 2, 2, 1]);
    expect(pages.flatMap((p) => p.items.map((o) => o.id))).toEqual(stored.map((r) => r.id));
    expect(pages.slice(0, -1).every((p) => typeof p.next_cursor === 'string')).toBe(true);
  });

  it('takes limit=5 from the query string (query numbers are coerced on purpose)', async () => {
    const res = await app.request('GET', '/api/v1/organizations?limit=5', { token: admin.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.items).toHaveLength(5);
    expect(typeof res.body.next_cursor).toBe('string');
  });

  it('defaults to 20 items', async () => {
    const res = await app.request('GET', '/api/v1/organizations', { token: admin.token });
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(7);
    expect(res.body.next_cursor).toBeNull();
  });

  it("answers 400 to a tampered cursor, a garbage cursor and another caller's cursor", async () => {
    const first = await app.request('GET', '/api/v1/organizations?limit=2', { token: admin.token });
    const cursor = first.body.next_cursor as string;
    expect(typeof cursor).toBe('string');
    const flipped = cursor.slice(0, -1) + (cursor.endsWith('A') ? 'B' : 'A');
    for (const bad of [tamperCursor(cursor), flipped, 'not-a-cursor', `${cursor}.extra`]) {
      const res = await app.request('GET', `/api/v1/organizations?limit=2&cursor=${encodeURIComponent(bad)}`, { token: admin.token });
      expectApiError(res, 400, 'BAD_REQUEST');
    }
    // Bound to the caller: the same cursor is no good in another user's list.
    const res = await app.request('GET', `/api/v1/organizations?limit=2&cursor=${encodeURIComponent(cursor)}`, { token: owner.token });
    expectApiError(res, 400, 'BAD_REQUEST');
    // The genuine cursor still works.
    const next = await app.request('GET', `/api/v1/organizations?limit=2&cursor=${encodeURIComponent(cursor)}`, { token: admin.token });
    expect(next.status).toBe(200);
  });

  it.each(['0', '101', 'abc', '1.5', '-1', ''])('answers 400 to limit=%j', async (limit) => {
    const res = await app.request('GET', `/api/v1/organizations?limit=${limit}`, { token: admin.token });
    expectIssueAt(res, 'limit');
  });

  it('answers 400 to an unknown query parameter and 401 without a token', async () => {
    expectIssueAt(await app.request('GET', '/api/v1/organizations?role=owner', { token: admin.token }), 'role');
    expectApiError(await app.request('GET', '/api/v1/organizations'), 401, 'UNAUTHORIZED');
  });
});

describe('POST /organizations', () => {
  it('answers 201 with Location; the caller is its owner; its default workspace is created in the same transaction', async () => {
    const res = await app.request('POST', '/api/v1/organizations', { token: member.token, body: { name: '  Acme Research  ' } });
    expect(res.status, res.text).toBe(201);
    const org = res.body as OrgItem;
    expect(org).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      name: 'Acme Research',
      slug: 'acme-research',
      role: 'owner',
      created_at: expect.any(String),
      updated_at: org.created_at,
    });
    expect(res.headers.get('location')).toBe(`/api/v1/organizations/${org.id}`);

    expect(await organizationRow(app, org.id)).toEqual({
      id: org.id,
      name: 'Acme Research',
      slug: 'acme-research',
      settings: {},
      created_at: org.created_at,
      updated_at: org.updated_at,
    });
    expect(await rolesIn(app, org.id)).toEqual({ [member.user.id]: 'owner' });
    const workspaces = await app.query<Record<string, unknown>>(
      `select name, slug, is_default, version, description, metadata, settings, cloned_from_id, ${isoSql('created_at')} as created_at
         from workspaces where organization_id = $1`,
      [org.id],
    );
    expect(workspaces).toEqual([
      {
        name: 'Default',
        slug: 'default',
        is_default: true,
        version: 1,
        description: null,
        metadata: {},
        settings: {},
        cloned_from_id: null,
        created_at: org.created_at,
      },
    ]);
    // now() is the transaction's start: one timestamp on all three rows means one transaction.
    const [membership] = await app.query<{ created_at: string }>(
      `select ${isoSql('created_at')} as created_at from memberships where organization_id = $1`,
      [org.id],
    );
    expect(membership!.created_at).toBe(org.created_at);

    const fetched = await app.request('GET', res.headers.get('location')!, { token: member.token });
    expect(fetched.status).toBe(200);
    expect(fetched.body).toEqual(org);
  });

  it('keeps an explicit slug', async () => {
    const org = await createOrganization(app, member.token, { name: 'Explicit', slug: 'my-explicit-slug' });
    expect(org.slug).toBe('my-explicit-slug');
    expect((await organizationRow(app, org.id))?.slug).toBe('my-explicit-slug');
  });

  it('answers 409 to a taken slug and writes nothing', async () => {
    const before = await tableCounts(app);
    const res = await app.request('POST', '/api/v1/organizations', {
      token: outsider.token,
      body: { name: 'Copycat', slug: 'my-explicit-slug' },
    });
    expectApiError(res, 409, 'CONFLICT');
    expect(res.body.message).toContain('my-explicit-slug');
    expect(res.headers.get('location')).toBeNull();
    expect(await tableCounts(app)).toEqual(before);
    expect(await app.query('select id from organizations where name = $1', ['Copycat'])).toEqual([]);
  });

  it('derives the slug from the name, with -2, -3 when taken', async () => {
    const first = await createOrganization(app, member.token, { name: 'Northwind Traders' });
    const second = await createOrganization(app, outsider.token, { name: 'Northwind Traders' });
    const third = await createOrganization(app, member.token, { name: 'northwind  TRADERS!' });
    expect([first.slug, second.slug, third.slug]).toEqual(['northwind-traders', 'northwind-traders-2', 'northwind-traders-3']);
    const rows = await app.query<{ slug: string }>(`select slug from organizations where slug like 'northwind-traders%' order by slug`);
    expect(rows.map((r) => r.slug)).toEqual(['northwind-traders', 'northwind-traders-2', 'northwind-traders-3']);
  });

  it.each([
    [{ name: 'Sneaky', owner_id: UNKNOWN_UUID }, 'owner_id'],
    [{ name: 'Sneaky', id: UNKNOWN_UUID }, 'id'],
    [{ name: 'Sneaky', role: 'member' }, 'role'],
    [{ name: 'Sneaky', created_at: '2020-01-01T00:00:00.000Z' }, 'created_at'],
    [{ name: '   ' }, 'name'],
    [{ name: 'x'.repeat(101) }, 'name'],
    [{ name: 'Sneaky', slug: 'Not A Slug' }, 'slug'],
    [{ name: 'Sneaky', slug: '-edge' }, 'slug'],
    [{ name: 'Sneaky\u0000' }, 'name'],
    [{ name: 'Sneaky \ud800' }, 'name'],
    [{ slug: 'no-name' }, 'name'],
    [{ name: 42 }, 'name'],
  ])('answers 400 to %j and writes nothing', async (body, path) => {
    const before = await tableCounts(app);
    const res = await app.request('POST', '/api/v1/organizations', { token: member.token, body });
    expectIssueAt(res, path);
    expect(await tableCounts(app)).toEqual(before);
  });

  it('answers 401 without a valid token and writes nothing', async () => {
    const before = await tableCounts(app);
    expectApiError(await app.request('POST', '/api/v1/organizations', { body: { name: 'Anonymous' } }), 401, 'UNAUTHORIZED');
    expectApiError(
      await app.request('POST', '/api/v1/organizations', { token: 'a.b.c', body: { name: 'Anonymous' } }),
      401,
      'UNAUTHORIZED',
    );
    expect(await tableCounts(app)).toEqual(before);
  });
});

describe('Idempotency-Key on POST /organizations', () => {
  const post = (token: string, key: string, body: unknown) =>
    app.request('POST', '/api/v1/organizations', { token, body, headers: { 'idempotency-key': key } });
  const keyRows = (userId: string, key: string) =>
    app.query<{ status_code: number | null; resource_organization_id: string | null }>(
      'select status_code, resource_organization_id from idempotency_keys where user_id = $1 and key = $2',
      [userId, key],
    );

  it('replays the first answer (status, body, Location) to the same key and body, creating one organization', async () => {
    const key = `replay-${Date.now()}`;
    const body = { name: 'Idempotent Inc' };
    const first = await post(member.token, key, body);
    expect(first.status, first.text).toBe(201);
    const before = await tableCounts(app);

    const second = await post(member.token, key, body);
    expect(second.status, second.text).toBe(201);
    expect(second.body).toEqual(first.body);
    expect(second.headers.get('location')).toBe(first.headers.get('location'));
    expect(second.headers.get('location')).toBe(`/api/v1/organizations/${first.body.id}`);

    expect(await tableCounts(app)).toEqual(before);
    expect(await app.query('select id from organizations where name = $1', ['Idempotent Inc'])).toEqual([{ id: first.body.id }]);
    expect(await keyRows(member.user.id, key)).toEqual([{ status_code: 201, resource_organization_id: first.body.id }]);
  });

  it('treats the same input with its keys in another order as the same request', async () => {
    const key = `order-${Date.now()}`;
    const first = await post(member.token, key, { name: 'Ordered', slug: 'ordered-slug' });
    expect(first.status).toBe(201);
    const second = await post(member.token, key, { slug: 'ordered-slug', name: 'Ordered' });
    expect(second.status).toBe(201);
    expect(second.body.id).toBe(first.body.id);
    expect(await app.query('select count(*)::int as n from organizations where slug = $1', ['ordered-slug'])).toEqual([{ n: 1 }]);
  });

  it('answers 422 to the same key with a different body, and creates nothing', async () => {
    const key = `mismatch-${Date.now()}`;
    const first = await post(member.token, key, { name: 'First Body' });
    expect(first.status).toBe(201);
    const before = await tableCounts(app);
    const second = await post(member.token, key, { name: 'Second Body' });
    expectApiError(second, 422, 'UNPROCESSABLE_CONTENT');
    expect(second.headers.get('location')).toBeNull();
    expect(await tableCounts(app)).toEqual(before);
    expect(await app.query('select id from organizations where name = $1', ['Second Body'])).toEqual([]);
  });

  it("scopes keys to the caller: another user's identical request is its own", async () => {
    const key = `scoped-${Date.now()}`;
    const mine = await post(member.token, key, { name: 'Scoped' });
    const theirs = await post(outsider.token, key, { name: 'Scoped' });
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect(await rolesIn(app, theirs.body.id)).toEqual({ [outsider.user.id]: 'owner' });
    expect(await rolesIn(app, mine.body.id)).toEqual({ [member.user.id]: 'owner' });
  });

  it('accepts a key of 255 visible ASCII characters', async () => {
    const key = `k${Date.now()}`.padEnd(255, '~');
    const res = await post(member.token, key, { name: 'Long Key' });
    expect(res.status, res.text).toBe(201);
    expect(await keyRows(member.user.id, key)).toHaveLength(1);
  });

  it.each([
    ['256 characters', 'k'.repeat(256)],
    ['a space', 'has space'],
    ['a non-ASCII character', 'clé-unique'],
  ])('answers 400 to a key with %s, and writes nothing', async (_what, key) => {
    const before = await tableCounts(app);
    const res = await app.request('POST', '/api/v1/organizations', {
      token: member.token,
      body: { name: 'Bad Key' },
      headers: { 'idempotency-key': encodeURI(key) === key ? key : Buffer.from(key, 'utf8').toString('latin1') },
    });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(res.body.message).toMatch(/Idempotency-Key/);
    expect(await tableCounts(app)).toEqual(before);
  });

  it('stores nothing for a failed create: a retry is evaluated afresh', async () => {
    const holder = await createOrganization(app, outsider.token, { name: 'Slug Holder', slug: 'contested' });
    const key = `failed-${Date.now()}`;
    const body = { name: 'Contender', slug: 'contested' };
    const before = await tableCounts(app);

    expectApiError(await post(member.token, key, body), 409, 'CONFLICT');
    expect(await keyRows(member.user.id, key)).toEqual([]);
    expect(await tableCounts(app)).toEqual(before);
    // Retrying the same request is still a conflict, not a replay.
    expectApiError(await post(member.token, key, body), 409, 'CONFLICT');
    expect(await keyRows(member.user.id, key)).toEqual([]);

    // Once the slug is free, the same key and body create the organization.
    const freed = await app.request('PUT', orgPath(holder.id), { token: outsider.token, body: { slug: 'no-longer-contested' } });
    expect(freed.status).toBe(200);
    const retry = await post(member.token, key, body);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.body).toMatchObject({ name: 'Contender', slug: 'contested', role: 'owner' });
    expect(await keyRows(member.user.id, key)).toEqual([{ status_code: 201, resource_organization_id: retry.body.id }]);
  });

  it('re-checks access on replay: once the organization is gone the replay is 404 and nothing is re-created', async () => {
    const key = `gone-${Date.now()}`;
    const first = await post(member.token, key, { name: 'Short Lived' });
    expect(first.status).toBe(201);
    expect((await app.request('DELETE', orgPath(first.body.id), { token: member.token })).status).toBe(204);
    const replay = await post(member.token, key, { name: 'Short Lived' });
    expectApiError(replay, 404, 'NOT_FOUND');
    expect(await app.query('select id from organizations where name = $1', ['Short Lived'])).toEqual([]);
  });

  it('works over tRPC with the key on a call of its own', async () => {
    const client = app.trpc(member.token);
    const key = `trpc-${Date.now()}`;
    const options = { context: { headers: { 'idempotency-key': key } } };
    const first = await client.organizations.create.mutate({ name: 'Via tRPC Key' }, options);
    const second = await client.organizations.create.mutate({ name: 'Via tRPC Key' }, options);
    expect(second).toEqual(first);
    expect(await app.query('select id from organizations where name = $1', ['Via tRPC Key'])).toEqual([{ id: first.id }]);
    const mismatch = await expectTrpcFailure(
      client.organizations.create.mutate({ name: 'Other tRPC Body' }, options),
      422,
      'UNPROCESSABLE_CONTENT',
    );
    expect(mismatch.message).toBe('This Idempotency-Key was used with a different request');
    expect(await app.query('select id from organizations where name = $1', ['Other tRPC Body'])).toEqual([]);
  });

  it.runIf(process.env.DATABASE_URL)('runs concurrent duplicates once: both get the same answer', async () => {
    expect(app.engine).toBe('postgres');
    const key = `race-${Date.now()}`;
    const body = { name: 'Racing Create' };
    const before = await tableCounts(app);
    const [a, b] = await Promise.all([post(member.token, key, body), post(member.token, key, body)]);
    expect([a.status, b.status], `${a.text} ${b.text}`).toEqual([201, 201]);
    expect(b.body).toEqual(a.body);
    expect(b.headers.get('location')).toBe(a.headers.get('location'));
    const after = await tableCounts(app);
    expect(after.organizations - before.organizations).toBe(1);
    expect(after.workspaces - before.workspaces).toBe(1);
    expect(await app.query('select id from organizations where name = $1', ['Racing Create'])).toEqual([{ id: a.body.id }]);
  });
});

describe('GET /organizations/{org_id}', () => {
  it("answers a member with the organization and the caller's role", async () => {
    const row = (await organizationRow(app, shared))!;
    for (const [account, role] of [
      [owner, 'owner'],
      [admin, 'admin'],
      [member, 'member'],
    ] as const) {
      const res = await app.request('GET', orgPath(shared), { token: account.token });
      expect(res.status, res.text).toBe(200);
      expect(res.body).toEqual({
        id: shared,
        name: row.name,
        slug: row.slug,
        created_at: row.created_at,
        updated_at: row.updated_at,
        role,
      });
    }
  });

  it('answers 404 to a non-member exactly as to an organization that does not exist', async () => {
    const hidden = await app.request('GET', orgPath(shared), { token: outsider.token });
    const missing = await app.request('GET', orgPath(UNKNOWN_UUID), { token: outsider.token });
    expectApiError(hidden, 404, 'NOT_FOUND');
    expectApiError(missing, 404, 'NOT_FOUND');
    expect(hidden.body).toEqual(missing.body);
  });

  it('answers 400 to an id that is not a UUID', async () => {
    expectIssueAt(await app.request('GET', orgPath('not-a-uuid'), { token: owner.token }), 'org_id');
  });
});

describe('PUT /organizations/{org_id}', () => {
  it('lets an admin rename it: 200, the new name, updated_at moves, the row changes', async () => {
    const before = (await organizationRow(app, shared))!;
    const res = await app.request('PUT', orgPath(shared), { token: admin.token, body: { name: 'Renamed By Admin' } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({
      id: shared,
      name: 'Renamed By Admin',
      slug: before.slug,
      created_at: before.created_at,
      role: 'admin',
    });
    expect(Date.parse(res.body.updated_at)).toBeGreaterThan(Date.parse(before.updated_at));
    const after = (await organizationRow(app, shared))!;
    expect(after).toEqual({ ...before, name: 'Renamed By Admin', updated_at: res.body.updated_at });
  });

  it('lets the owner change the slug', async () => {
    const res = await app.request('PUT', orgPath(shared), { token: owner.token, body: { slug: 'shared-team' } });
    expect(res.status, res.text).toBe(200);
    expect(res.body).toMatchObject({ slug: 'shared-team', role: 'owner' });
    expect((await organizationRow(app, shared))?.slug).toBe('shared-team');
  });

  it('leaves updated_at alone when nothing changes', async () => {
    const before = (await organizationRow(app, shared))!;
    const res = await app.request('PUT', orgPath(shared), { token: owner.token, body: { name: before.name, slug: before.slug } });
    expect(res.status).toBe(200);
    expect(res.body.updated_at).toBe(before.updated_at);
    expect(await organizationRow(app, shared)).toEqual(before);
  });

  it('answers 403 to a member and changes nothing', async () => {
    const before = await organizationRow(app, shared);
    expectApiError(await app.request('PUT', orgPath(shared), { token: member.token, body: { name: 'By Member' } }), 403, 'FORBIDDEN');
    expect(await organizationRow(app, shared)).toEqual(before);
  });

  it('answers 404 to a non-member and changes nothing', async () => {
    const before = await organizationRow(app, shared);
    expectApiError(await app.request('PUT', orgPath(shared), { token: outsider.token, body: { name: 'By Outsider' } }), 404, 'NOT_FOUND');
    expectApiError(await app.request('PUT', orgPath(UNKNOWN_UUID), { token: outsider.token, body: { name: 'Nothing' } }), 404, 'NOT_FOUND');
    expect(await organizationRow(app, shared)).toEqual(before);
  });

  it('answers 409 to a slug another organization has, and changes nothing', async () => {
    const before = await organizationRow(app, shared);
    const res = await app.request('PUT', orgPath(shared), {
      token: owner.token,
      body: { name: 'Would Rename', slug: outsider.organization.slug },
    });
    expectApiError(res, 409, 'CONFLICT');
    expect(await organizationRow(app, shared)).toEqual(before);
  });

  it.each([
    [{}, ''],
    [{ name: 'Ok', id: UNKNOWN_UUID }, 'id'],
    [{ name: 'Ok', updated_at: '2020-01-01T00:00:00.000Z' }, 'updated_at'],
    [{ slug: 'UPPER' }, 'slug'],
    [{ name: '' }, 'name'],
  ])('answers 400 to %j and changes nothing', async (body, path) => {
    const before = await organizationRow(app, shared);
    expectIssueAt(await app.request('PUT', orgPath(shared), { token: owner.token, body }), path);
    expect(await organizationRow(app, shared)).toEqual(before);
  });

  it('answers 400 when the path id is repeated in the body', async () => {
    const before = await organizationRow(app, shared);
    expectApiError(
      await app.request('PUT', orgPath(shared), { token: owner.token, body: { org_id: UNKNOWN_UUID, name: 'X' } }),
      400,
      'BAD_REQUEST',
    );
    expect(await organizationRow(app, shared)).toEqual(before);
  });
});

describe('DELETE /organizations/{org_id}', () => {
  it('lets the owner delete it: 204, no body, and its workspaces, settings and memberships go with it', async () => {
    const doomed = await createTeam(app, owner, [
      [admin, 'admin'],
      [member, 'member'],
    ]);
    const settings = await app.request('PUT', `${orgPath(doomed)}/settings`, { token: owner.token, body: { features: { beta: true } } });
    expect(settings.status).toBe(200);
    expect(await app.query('select count(*)::int as n from workspaces where organization_id = $1', [doomed])).toEqual([{ n: 1 }]);
    const before = await tableCounts(app);

    const res = await app.request('DELETE', orgPath(doomed), { token: owner.token });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe('');

    expect(await organizationRow(app, doomed)).toBeNull();
    expect(await app.query('select 1 from workspaces where organization_id = $1', [doomed])).toEqual([]);
    expect(await app.query('select 1 from memberships where organization_id = $1', [doomed])).toEqual([]);
    const after = await tableCounts(app);
    expect(after).toMatchObject({
      organizations: before.organizations - 1,
      workspaces: before.workspaces - 1,
      memberships: before.memberships - 3,
    });
    // The users themselves stay, with their other organizations.
    expect(await rolesIn(app, shared)).toMatchObject({ [owner.user.id]: 'owner', [admin.user.id]: 'admin', [member.user.id]: 'member' });
    expectApiError(await app.request('GET', orgPath(doomed), { token: owner.token }), 404, 'NOT_FOUND');
    const list = await app.request('GET', '/api/v1/organizations?limit=100', { token: admin.token });
    expect((list.body.items as OrgItem[]).map((o) => o.id)).not.toContain(doomed);
  });

  it('answers 403 to an admin and a member, and deletes nothing', async () => {
    const before = await tableCounts(app);
    expectApiError(await app.request('DELETE', orgPath(shared), { token: admin.token }), 403, 'FORBIDDEN');
    expectApiError(await app.request('DELETE', orgPath(shared), { token: member.token }), 403, 'FORBIDDEN');
    expect(await tableCounts(app)).toEqual(before);
    expect(await organizationRow(app, shared)).not.toBeNull();
  });

  it('answers 404 to a non-member and to an unknown id, and deletes nothing', async () => {
    const before = await tableCounts(app);
    expectApiError(await app.request('DELETE', orgPath(shared), { token: outsider.token }), 404, 'NOT_FOUND');
    expectApiError(await app.request('DELETE', orgPath(UNKNOWN_UUID), { token: owner.token }), 404, 'NOT_FOUND');
    expect(await tableCounts(app)).toEqual(before);
  });

  it('lets an owner made by another owner delete it', async () => {
    const org = await createTeam(app, owner, [[outsider, 'owner']]);
    const res = await app.request('DELETE', orgPath(org), { token: outsider.token });
    expect(res.status).toBe(204);
    expect(await organizationRow(app, org)).toBeNull();
  });
});

describe('organizations over tRPC', () => {
  it("lists the caller's organizations with roles and cursors", async () => {
    const client = app.trpc(admin.token);
    const first = await client.organizations.list.query({ limit: 3 });
    expect(first.items).toHaveLength(3);
    expect(typeof first.next_cursor).toBe('string');
    const all = await client.organizations.list.query({ limit: 100 });
    const stored = await app.query<{ organization_id: string; role: string }>(
      'select organization_id, role from memberships where user_id = $1',
      [admin.user.id],
    );
    expect(Object.fromEntries(all.items.map((o) => [o.id, o.role]))).toEqual(
      Object.fromEntries(stored.map((r) => [r.organization_id, r.role])),
    );
    const second = await client.organizations.list.query({ limit: 3, cursor: first.next_cursor! });
    expect(second.items.map((o) => o.id)).toEqual(all.items.slice(3, 6).map((o) => o.id));
  });

  it('creates an organization with its owner and default workspace', async () => {
    const created = await app.trpc(outsider.token).organizations.create.mutate({ name: 'Created Over tRPC' });
    expect(created).toMatchObject({ name: 'Created Over tRPC', slug: 'created-over-trpc', role: 'owner' });
    expect(await rolesIn(app, created.id)).toEqual({ [outsider.user.id]: 'owner' });
    expect(await app.query('select slug, is_default from workspaces where organization_id = $1', [created.id])).toEqual([
      { slug: 'default', is_default: true },
    ]);
  });

  it('reports errors with data.code and data.httpStatus, without a stack', async () => {
    const client = app.trpc(outsider.token);
    const before = await tableCounts(app);
    await expectTrpcFailure(client.organizations.create.mutate({ name: 'Dup', slug: 'created-over-trpc' }), 409, 'CONFLICT');
    await expectTrpcFailure(client.organizations.get.query({ org_id: shared }), 404, 'NOT_FOUND');
    await expectTrpcFailure(app.trpc(member.token).organizations.update.mutate({ org_id: shared, name: 'Nope' }), 403, 'FORBIDDEN');
    await expectTrpcFailure(app.trpc().organizations.list.query({ limit: 5 }), 401, 'UNAUTHORIZED');

    const invalid = await expectTrpcFailure(
      client.organizations.create.mutate({ name: 'Sneaky', owner_id: UNKNOWN_UUID } as never),
      400,
      'BAD_REQUEST',
    );
    expect(invalid.data?.issues?.map((i) => i.path)).toContain('owner_id');
    await expectTrpcFailure(client.organizations.list.query({ limit: 0 }), 400, 'BAD_REQUEST');
    expect(await tableCounts(app)).toEqual(before);
  });

  it('accepts the members of a tRPC batch independently', async () => {
    const client = app.trpc(member.token);
    const [list, one, denied] = await Promise.allSettled([
      client.organizations.list.query({ limit: 100 }),
      client.organizations.get.query({ org_id: shared }),
      client.organizations.delete.mutate({ org_id: shared }),
    ]);
    expect(list.status).toBe('fulfilled');
    expect(one.status === 'fulfilled' && one.value.role).toBe('member');
    expect(denied.status).toBe('rejected');
    expect(await organizationRow(app, shared)).not.toBeNull();
  });
});

describe('membership changes show in reads at once', () => {
  it('a removed member can no longer see the organization', async () => {
    const org = await createTeam(app, owner);
    await addMember(app, owner.token, org, outsider, 'member');
    expect((await app.request('GET', orgPath(org), { token: outsider.token })).status).toBe(200);
    expect((await app.request('DELETE', `${orgPath(org)}/members/${outsider.user.id}`, { token: owner.token })).status).toBe(204);
    expectApiError(await app.request('GET', orgPath(org), { token: outsider.token }), 404, 'NOT_FOUND');
  });
});
