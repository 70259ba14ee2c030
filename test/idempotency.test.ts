import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupMany, startReplica, startTestApp, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';
import { createTeam } from './helpers/org-helpers';
import { expectApiError, expectTrpcFailure } from './helpers/errors';

/**
 * Idempotency-Key on the creates: POST /workspaces, /organizations/{org}/workspaces,
 * /workspaces/{id}/clone, /workspaces/provision and /organizations.
 */

/** Tests of real concurrency need a PostgreSQL server (PGlite is one connection, its locks never block). */
const onPostgres = Boolean(process.env.DATABASE_URL);

let app: TestApp;
let owner: SignedUp;
let admin: SignedUp;
let orgId: string;
let sourceId: string;

beforeAll(async () => {
  app = await startTestApp();
  [owner, admin] = await signupMany(app, ['Owner', 'Admin']);
  orgId = await createTeam(app, owner, [[admin, 'admin']]);
  const source = await app.request('POST', '/api/v1/workspaces', {
    token: owner.token,
    body: { organization_id: orgId, name: 'Clone Source', metadata: { origin: 'source' } },
  });
  expect(source.status, source.text).toBe(201);
  sourceId = source.body.id;
});
afterAll(async () => {
  await app?.close();
});

let counter = 0;
const tag = () => `t${++counter}x${Date.now().toString(36)}`;
const newKey = () => `key-${tag()}`;

const post = (path: string, body: unknown, key: string | undefined, token = owner.token) =>
  app.request('POST', path, { token, body, headers: key === undefined ? {} : { 'Idempotency-Key': key } });

const count = async (sql: string, params: unknown[]) => (await app.query<{ n: number }>(sql, params))[0]!.n;
const workspacesNamed = (pattern: string) => count('select count(*)::int as n from workspaces where name like $1', [pattern]);
const organizationsNamed = (name: string) => count('select count(*)::int as n from organizations where name = $1', [name]);
const storedKeys = (userId: string, key: string) =>
  app.query<{ operation: string; status_code: number | null }>(
    'select operation, status_code from idempotency_keys where user_id = $1 and key = $2',
    [userId, key],
  );

interface CreateRoute {
  name: string;
  path: () => string;
  body: (t: string) => Record<string, unknown>;
  /** Rows of what the body creates (matched by the names it carries). */
  rows: (t: string) => Promise<number>;
  created: number;
  location: boolean;
}

const routes: CreateRoute[] = [
  {
    name: 'POST /workspaces',
    path: () => '/api/v1/workspaces',
    body: (t) => ({ organization_id: orgId, name: `Create ${t}`, metadata: { k: 'v' } }),
    rows: (t) => workspacesNamed(`Create ${t}`),
    created: 1,
    location: true,
  },
  {
    name: 'POST /organizations/{org_id}/workspaces',
    path: () => `/api/v1/organizations/${orgId}/workspaces`,
    body: (t) => ({ name: `Scoped ${t}` }),
    rows: (t) => workspacesNamed(`Scoped ${t}`),
    created: 1,
    location: true,
  },
  {
    name: 'POST /workspaces/{id}/clone',
    path: () => `/api/v1/workspaces/${sourceId}/clone`,
    body: (t) => ({ name: `Clone ${t}` }),
    rows: (t) => workspacesNamed(`Clone ${t}`),
    created: 1,
    location: true,
  },
  {
    name: 'POST /workspaces/provision',
    path: () => '/api/v1/workspaces/provision',
    body: (t) => ({ organization_id: orgId, workspaces: [{ name: `Provision ${t} a` }, { name: `Provision ${t} b` }] }),
    rows: (t) => workspacesNamed(`Provision ${t} %`),
    created: 2,
    location: false,
  },
  {
    name: 'POST /organizations',
    path: () => '/api/v1/organizations',
    body: (t) => ({ name: `Org ${t}` }),
    rows: (t) => organizationsNamed(`Org ${t}`),
    created: 1,
    location: true,
  },
];

describe.each(routes)('Idempotency-Key on $name', (route) => {
  it('replays the first answer (status, body, Location) to a retry with the same body, creating once', async () => {
    const t = tag();
    const key = newKey();
    const first = await post(route.path(), route.body(t), key);
    expect(first.status, first.text).toBe(201);
    const location = first.headers.get('location');
    if (route.location) expect(location).toMatch(/^\/api\/v1\/(workspaces|organizations)\/[0-9a-f-]{36}$/);
    else expect(location).toBeNull();

    for (let attempt = 0; attempt < 2; attempt++) {
      const again = await post(route.path(), route.body(t), key);
      expect(again.status, again.text).toBe(201);
      expect(again.body).toEqual(first.body);
      expect(again.headers.get('location')).toBe(location);
    }
    expect(await route.rows(t)).toBe(route.created);
    expect(await storedKeys(owner.user.id, key)).toEqual([expect.objectContaining({ status_code: 201 })]);
  });

  it('answers 422 to the same key with a different body, creating nothing', async () => {
    const [t1, t2] = [tag(), tag()];
    const key = newKey();
    const first = await post(route.path(), route.body(t1), key);
    expect(first.status, first.text).toBe(201);
    const second = await post(route.path(), route.body(t2), key);
    expectApiError(second, 422, 'UNPROCESSABLE_CONTENT');
    expect(await route.rows(t1)).toBe(route.created);
    expect(await route.rows(t2)).toBe(0);
  });
});

describe('Idempotency-Key scope', () => {
  it('shares one operation between POST /workspaces and the organization-scoped create', async () => {
    const key = newKey();
    const name = `Shared ${tag()}`;
    const viaWorkspaces = await post('/api/v1/workspaces', { organization_id: orgId, name }, key);
    expect(viaWorkspaces.status, viaWorkspaces.text).toBe(201);
    const viaOrganization = await post(`/api/v1/organizations/${orgId}/workspaces`, { name }, key);
    expect(viaOrganization.status, viaOrganization.text).toBe(201);
    expect(viaOrganization.body).toEqual(viaWorkspaces.body);
    expect(viaOrganization.headers.get('location')).toBe(viaWorkspaces.headers.get('location'));
    expect(await workspacesNamed(name)).toBe(1);
    // Another organization under the same key is another input.
    const elsewhere = await post(`/api/v1/organizations/${owner.organization.id}/workspaces`, { name }, key);
    expectApiError(elsewhere, 422, 'UNPROCESSABLE_CONTENT');
    expect(await workspacesNamed(name)).toBe(1);
  });

  it('is scoped per caller: another user with the same key and body creates its own', async () => {
    const key = newKey();
    const name = `Per caller ${tag()}`;
    const mine = await post('/api/v1/workspaces', { organization_id: orgId, name }, key, owner.token);
    const theirs = await post('/api/v1/workspaces', { organization_id: orgId, name }, key, admin.token);
    expect([mine.status, theirs.status]).toEqual([201, 201]);
    expect(theirs.body.id).not.toBe(mine.body.id);
    expect(await workspacesNamed(name)).toBe(2);
    // Each one's retry replays its own.
    const theirsAgain = await post('/api/v1/workspaces', { organization_id: orgId, name }, key, admin.token);
    expect(theirsAgain.body.id).toBe(theirs.body.id);
    expect(await workspacesNamed(name)).toBe(2);
  });

  it('is scoped per operation: the same key on a create and on a clone are independent', async () => {
    const key = newKey();
    const t = tag();
    const created = await post('/api/v1/workspaces', { organization_id: orgId, name: `Op create ${t}` }, key);
    const cloned = await post(`/api/v1/workspaces/${sourceId}/clone`, { name: `Op clone ${t}` }, key);
    expect([created.status, cloned.status]).toEqual([201, 201]);
    expect(cloned.body.id).not.toBe(created.body.id);
    expect(cloned.body.cloned_from_id).toBe(sourceId);
    expect(await workspacesNamed(`Op % ${t}`)).toBe(2);
    expect((await storedKeys(owner.user.id, key)).map((k) => k.operation).sort()).toEqual(['workspaces.clone', 'workspaces.create']);
  });
});

describe('Idempotency-Key outcomes', () => {
  it('stores nothing for a failed attempt: after the slug is freed, the same key and body succeed', async () => {
    const slug = `blocked-${tag()}`;
    const blocker = await post('/api/v1/workspaces', { organization_id: orgId, name: 'Blocker', slug }, undefined);
    expect(blocker.status, blocker.text).toBe(201);
    const key = newKey();
    const body = { organization_id: orgId, name: `Blocked ${slug}`, slug };

    expectApiError(await post('/api/v1/workspaces', body, key), 409, 'CONFLICT');
    expect(await storedKeys(owner.user.id, key)).toEqual([]);

    const freed = await app.request('DELETE', `/api/v1/workspaces/${blocker.body.id}`, { token: owner.token });
    expect(freed.status, freed.text).toBe(204);
    const retry = await post('/api/v1/workspaces', body, key);
    expect(retry.status, retry.text).toBe(201);
    expect(retry.body).toMatchObject({ slug, name: body.name });
    const replay = await post('/api/v1/workspaces', body, key);
    expect(replay.body.id).toBe(retry.body.id);
    expect(await workspacesNamed(body.name)).toBe(1);
  });

  it('re-checks access on replay: a caller removed from the organization gets 404', async () => {
    const team = await createTeam(app, owner, [[admin, 'admin']]);
    const key = newKey();
    const body = { organization_id: team, name: `Leaver ${tag()}` };
    const first = await post('/api/v1/workspaces', body, key, admin.token);
    expect(first.status, first.text).toBe(201);

    const removed = await app.request('DELETE', `/api/v1/organizations/${team}/members/${admin.user.id}`, { token: owner.token });
    expect(removed.status, removed.text).toBe(204);
    const replay = await post('/api/v1/workspaces', body, key, admin.token);
    expectApiError(replay, 404, 'NOT_FOUND');
    expect(replay.text).not.toContain(first.body.id);
    expect(await workspacesNamed(body.name)).toBe(1);
  });

  it('answers 400 to an invalid key (empty, 256 chars, a space, non-ASCII) and creates nothing', async () => {
    const t = tag();
    const invalid = ['', 'k'.repeat(256), 'has space', 'clé'];
    for (const [i, key] of invalid.entries()) {
      const res = await post('/api/v1/workspaces', { organization_id: orgId, name: `Bad key ${t} ${i}` }, key);
      expectApiError(res, 400, 'BAD_REQUEST');
      expect(res.body.message).toMatch(/Idempotency-Key/);
    }
    expect(await workspacesNamed(`Bad key ${t} %`)).toBe(0);
    // 255 visible ASCII characters are a valid key.
    const longest = await post('/api/v1/workspaces', { organization_id: orgId, name: `Good key ${t}` }, '~'.repeat(255));
    expect(longest.status, longest.text).toBe(201);
  });
});

describe('Idempotency-Key over tRPC', () => {
  it('replays the same workspace to a call with its own header, shared with the REST face', async () => {
    const client = app.trpc(owner.token);
    const key = newKey();
    const input = { organization_id: orgId, name: `Rpc ${tag()}` };
    const options = { context: { headers: { 'Idempotency-Key': key } } };
    const first = await client.workspaces.create.mutate(input, options);
    const second = await client.workspaces.create.mutate(input, options);
    expect(second).toEqual(first);
    const viaRest = await post('/api/v1/workspaces', input, key);
    expect(viaRest.status).toBe(201);
    expect(viaRest.body.id).toBe(first.id);
    expect(await workspacesNamed(input.name)).toBe(1);

    const mismatch = await expectTrpcFailure(
      client.workspaces.create.mutate({ ...input, name: `${input.name} other` }, options),
      422,
      'UNPROCESSABLE_CONTENT',
    );
    expect(mismatch.message).toBe('This Idempotency-Key was used with a different request');
    expect(await workspacesNamed(`${input.name} other`)).toBe(0);
  });
});

describe.runIf(onPostgres)('Idempotency-Key under concurrency (PostgreSQL)', () => {
  const postTo = async (base: string, body: unknown, key: string): Promise<ApiResponse> => {
    const res = await fetch(`${base}/api/v1/workspaces`, {
      method: 'POST',
      headers: { authorization: `Bearer ${owner.token}`, 'content-type': 'application/json', 'Idempotency-Key': key },
      body: JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: JSON.parse(text), text };
  };

  it('answers 10 concurrent identical requests with one key with the same workspace, created once', async () => {
    const key = newKey();
    const body = { organization_id: orgId, name: `Race ${tag()}` };
    const answers = await Promise.all(Array.from({ length: 10 }, () => postTo(app.url, body, key)));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(201));
    expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
    expect(await workspacesNamed(body.name)).toBe(1);
  });

  it('creates once when one key races across two servers sharing the database', async () => {
    const second = await startReplica(app);
    try {
      const key = newKey();
      const body = { organization_id: orgId, name: `Two servers ${tag()}` };
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => postTo(i % 2 ? second.url : app.url, body, key)));
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(201));
      expect(new Set(answers.map((a) => a.body.id)).size).toBe(1);
      expect(new Set(answers.map((a) => a.headers.get('location'))).size).toBe(1);
      expect(await workspacesNamed(body.name)).toBe(1);
    } finally {
      await second.close();
    }
  });

  it('answers 409 with Retry-After after about 2 s while the first attempt holds the key, then runs once it is gone', async () => {
    const key = newKey();
    const body = { organization_id: orgId, name: `Waiting ${tag()}` };
    const sql = postgres(app.config.DATABASE_URL!, { max: 1, onnotice: () => {} });
    const held = await sql.reserve();
    try {
      await held`begin`;
      await held`insert into idempotency_keys (user_id, operation, key, fingerprint) values (${owner.user.id}, 'workspaces.create', ${key}, 'first attempt')`;
      const started = Date.now();
      const waiting = await post('/api/v1/workspaces', body, key);
      const elapsed = Date.now() - started;
      expectApiError(waiting, 409, 'CONFLICT');
      expect(waiting.headers.get('retry-after')).toBe('1');
      expect(waiting.body.message).toMatch(/in progress/i);
      expect(elapsed).toBeGreaterThanOrEqual(1800);
      expect(elapsed).toBeLessThan(3500);
      expect(await workspacesNamed(body.name)).toBe(0);
    } finally {
      await held`rollback`;
      held.release();
      await sql.end();
    }
    const afterwards = await post('/api/v1/workspaces', body, key);
    expect(afterwards.status, afterwards.text).toBe(201);
    expect(await workspacesNamed(body.name)).toBe(1);
  });
});
