import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { addMember, signupMany, startTestApp, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';
import { expectApiError } from './helpers/errors';
import { createOrganizationFor } from './helpers/workspace-helpers';
import { UNKNOWN_UUID } from './helpers/values';

/** GET /api/v1/workspaces (and /organizations/{org_id}/workspaces, and workspaces.list over tRPC). */

interface Ws {
  id: string;
  organization_id: string;
  name: string;
  slug: string;
  is_default: boolean;
  created_at: string;
}
type Sort = 'created_at' | 'name';
type Order = 'asc' | 'desc';
interface ListQuery {
  organization_id?: string;
  q?: string;
  sort?: Sort;
  order?: Order;
  limit?: number | string;
  cursor?: string;
}

let app: TestApp;
let ann: SignedUp; // owner of her own organization, member of Bob's
let bob: SignedUp;
let cat: SignedUp; // another tenant
/** An organization of Ann's holding 250 provisioned workspaces and its default one. */
let pagingOrg: string;

const NAMES = ['alpha', 'Alpha', 'ALPHA', 'beta 10', 'Beta 2', 'Ärger', 'ärger', 'zeta', 'Zeta', 'b'];
/** The service's sort key for names, compared by UTF-8 bytes (PostgreSQL's "C" collation). */
const nameKey = (name: string) => name.normalize('NFC').toLowerCase();
const byteCompare = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
const idCompare = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function expectedOrder(rows: Ws[], sort: Sort, order: Order): string[] {
  const sorted = [...rows].sort((a, b) => {
    const key = sort === 'name' ? byteCompare(nameKey(a.name), nameKey(b.name)) : Date.parse(a.created_at) - Date.parse(b.created_at);
    return key !== 0 ? key : idCompare(a.id, b.id);
  });
  if (order === 'desc') sorted.reverse();
  return sorted.map((w) => w.id);
}

const listPath = (query: ListQuery, base = '/api/v1/workspaces') => {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text ? `${base}?${text}` : base;
};

const list = (
  token: string,
  query: ListQuery,
  base?: string,
): Promise<ApiResponse<{ items: Ws[]; next_cursor: string | null; code?: string }>> => app.request('GET', listPath(query, base), { token });

/** Follows next_cursor to the end over REST; returns every page. */
async function walk(token: string, query: ListQuery, between?: (pageIndex: number, items: Ws[]) => Promise<void>) {
  const pages: Ws[][] = [];
  let cursor: string | undefined;
  for (let guard = 0; guard < 500; guard++) {
    const res = await list(token, { ...query, cursor });
    expect(res.status, res.text).toBe(200);
    pages.push(res.body.items);
    if (res.body.next_cursor === null) return pages;
    expect(res.body.items).toHaveLength(Number(query.limit ?? 20));
    cursor = res.body.next_cursor;
    await between?.(pages.length - 1, res.body.items);
  }
  throw new Error('the walk did not end');
}

const ids = (pages: Ws[][]) => pages.flat().map((w) => w.id);

const expect400 = (res: ApiResponse) => expectApiError(res, 400, 'BAD_REQUEST');

async function dbWorkspaces(organizationId: string): Promise<Ws[]> {
  const rows = await app.query<Omit<Ws, 'created_at'> & { created_at: Date | string }>(
    'select id, organization_id, name, slug, is_default, created_at from workspaces where organization_id = $1',
    [organizationId],
  );
  return rows.map((r) => ({ ...r, created_at: new Date(r.created_at).toISOString() }));
}

async function provision(token: string, organizationId: string, names: string[]): Promise<Ws[]> {
  const res = await app.request('POST', '/api/v1/workspaces/provision', {
    token,
    body: { organization_id: organizationId, workspaces: names.map((name) => ({ name })) },
  });
  expect(res.status, res.text).toBe(201);
  expect(res.body.failed).toEqual([]);
  return res.body.created;
}

beforeAll(async () => {
  app = await startTestApp({ RATE_LIMIT_PER_MINUTE: '0' });
  [ann, bob, cat] = await signupMany(app, ['Ann', 'Bob', 'Cat']);
  await addMember(app, bob.token, bob.organization.id, ann, 'member');
  await provision(bob.token, bob.organization.id, ['Bob one', 'Bob two']);
  await provision(cat.token, cat.organization.id, ['Cat one', 'alpha']);
  pagingOrg = await createOrganizationFor(app, ann.token, 'Paging');
  const names = Array.from({ length: 250 }, (_, i) => (i % 2 === 0 ? NAMES[(i / 2) % NAMES.length]! : `${i % 3 ? 'w' : 'W'} ${i}`));
  await provision(ann.token, pagingOrg, names);
});

afterAll(async () => {
  await app?.close();
});

describe('GET /workspaces: tenancy', () => {
  it("lists the workspaces of every organization the caller belongs to, and never another tenant's", async () => {
    const seen = ids(await walk(ann.token, { limit: 100 }));
    const expected = await app.query<{ id: string }>(
      'select w.id from workspaces w join memberships m on m.organization_id = w.organization_id where m.user_id = $1',
      [ann.user.id],
    );
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual(expected.map((r) => r.id).sort());
    const bobs = await dbWorkspaces(bob.organization.id);
    expect(bobs).toHaveLength(3);
    for (const w of bobs) expect(seen).toContain(w.id);
    expect(seen).toContain(ann.workspace.id);
    for (const w of await dbWorkspaces(cat.organization.id)) expect(seen).not.toContain(w.id);
  });

  it('filters by organization_id', async () => {
    const res = await list(ann.token, { organization_id: bob.organization.id });
    expect(res.status).toBe(200);
    expect(res.body.items.map((w) => w.id).sort()).toEqual((await dbWorkspaces(bob.organization.id)).map((w) => w.id).sort());
    expect(res.body.items.every((w) => w.organization_id === bob.organization.id)).toBe(true);
    expect(res.body.next_cursor).toBeNull();
  });

  it('answers 404 to an organization_id the caller is not a member of (or that does not exist)', async () => {
    for (const orgId of [cat.organization.id, UNKNOWN_UUID]) {
      const res = await list(ann.token, { organization_id: orgId });
      expect(res.status, res.text).toBe(404);
      expect(res.body.code).toBe('NOT_FOUND');
      const scoped = await list(ann.token, {}, `/api/v1/organizations/${orgId}/workspaces`);
      expect(scoped.status, scoped.text).toBe(404);
      expect(scoped.body.code).toBe('NOT_FOUND');
    }
  });

  it('GET /organizations/{org_id}/workspaces answers the same as ?organization_id=, cursors included', async () => {
    const query = { limit: 7, sort: 'name' as const, order: 'desc' as const };
    const a = await list(ann.token, { ...query, organization_id: pagingOrg });
    const b = await list(ann.token, query, `/api/v1/organizations/${pagingOrg}/workspaces`);
    expect(b.status).toBe(200);
    expect(b.body).toEqual(a.body);
    const next = await list(ann.token, { ...query, organization_id: pagingOrg, cursor: b.body.next_cursor! });
    const nextScoped = await list(ann.token, { ...query, cursor: a.body.next_cursor! }, `/api/v1/organizations/${pagingOrg}/workspaces`);
    expect(next.status).toBe(200);
    expect(nextScoped.body).toEqual(next.body);
  });
});

describe('GET /workspaces: keyset paging', () => {
  /** The paging organization walked 7 at a time, once per sort and order (memoised: the rows do not change). */
  const walks = new Map<string, Promise<Ws[][]>>();
  const walkPaging = (sort: Sort, order: Order) => {
    const key = `${sort} ${order}`;
    if (!walks.has(key)) walks.set(key, walk(ann.token, { organization_id: pagingOrg, sort, order, limit: 7 }));
    return walks.get(key)!;
  };
  const combos = (['created_at', 'name'] as const).flatMap((sort) => (['asc', 'desc'] as const).map((order) => ({ sort, order })));

  it.each(combos)('walks 251 workspaces 7 at a time by $sort $order: each exactly once, in order', async ({ sort, order }) => {
    const rows = await dbWorkspaces(pagingOrg);
    expect(rows).toHaveLength(251);
    // One multi-row insert: created_at ties are real, and the id must break them.
    expect(new Set(rows.map((r) => r.created_at)).size).toBeLessThan(10);
    const pages = await walkPaging(sort, order);
    expect(pages).toHaveLength(Math.ceil(251 / 7));
    expect(ids(pages)).toEqual(expectedOrder(rows, sort, order));
  });

  it('desc is exactly the reverse of asc', async () => {
    for (const sort of ['created_at', 'name'] as const) {
      const asc = ids(await walkPaging(sort, 'asc'));
      const desc = ids(await walkPaging(sort, 'desc'));
      expect(desc).toEqual([...asc].reverse());
    }
  });

  it('sorts names case-insensitively: "alpha", "Alpha" and "ALPHA" sit together, ordered by id', async () => {
    const items = ids(await walk(ann.token, { organization_id: pagingOrg, sort: 'name', limit: 100 }));
    const rows = new Map((await dbWorkspaces(pagingOrg)).map((w) => [w.id, w]));
    const names = items.map((id) => rows.get(id)!.name);
    const alphas = names
      .map((n, i) => [n, i] as const)
      .filter(([n]) => nameKey(n) === 'alpha')
      .map(([, i]) => i);
    expect(alphas.length).toBeGreaterThan(3);
    expect(alphas.at(-1)! - alphas[0]!).toBe(alphas.length - 1); // contiguous
    const alphaIds = alphas.map((i) => items[i]!);
    expect(alphaIds).toEqual([...alphaIds].sort());
    // byte order: "beta 10" before "beta 2", "zeta" before "ärger"
    expect(names.findIndex((n) => nameKey(n) === 'beta 10')).toBeLessThan(names.findIndex((n) => nameKey(n) === 'beta 2'));
    expect(names.findLastIndex((n) => nameKey(n) === 'zeta')).toBeLessThan(names.findIndex((n) => nameKey(n) === 'ärger'));
  });

  it('the same list over tRPC pages the same way', async () => {
    const client = app.trpc(ann.token);
    for (const { sort, order } of [
      { sort: 'name', order: 'desc' },
      { sort: 'created_at', order: 'asc' },
    ] as const) {
      const seen: string[] = [];
      let cursor: string | undefined;
      do {
        const page = await client.workspaces.list.query({ organization_id: pagingOrg, sort, order, limit: 7, cursor });
        seen.push(...page.items.map((w) => w.id));
        cursor = page.next_cursor ?? undefined;
      } while (cursor);
      expect(seen).toEqual(ids(await walkPaging(sort, order)));
    }
  });

  it.each([
    { sort: 'name', order: 'asc' },
    { sort: 'created_at', order: 'desc' },
  ] as const)(
    'returns every row present and unchanged for the whole walk exactly once, while rows come and go ($sort $order)',
    async ({ sort, order }) => {
      const org = await createOrganizationFor(app, ann.token, `Churn ${sort} ${order}`);
      await provision(
        ann.token,
        org,
        Array.from({ length: 30 }, (_, i) => `${NAMES[i % NAMES.length]} ${i % 4}`),
      );
      const before = await dbWorkspaces(org);
      const touched = new Set<string>();
      const seenBefore = new Set<string>();
      const pages = await walk(ann.token, { organization_id: org, sort, order, limit: 5 }, async (pageIndex, items) => {
        items.forEach((w) => seenBefore.add(w.id));
        if (pageIndex > 2) return;
        // Delete the row the cursor points at, and one not seen yet; insert rows before and after.
        const anchor = items.at(-1)!.is_default ? items.at(-2)! : items.at(-1)!;
        const unseen = before.find((w) => !seenBefore.has(w.id) && !touched.has(w.id) && !w.is_default)!;
        for (const victim of [anchor, unseen]) {
          touched.add(victim.id);
          const del = await app.request('DELETE', `/api/v1/workspaces/${victim.id}`, { token: ann.token });
          expect(del.status, del.text).toBe(204);
        }
        for (const name of [`aaa new ${pageIndex}`, `zzz new ${pageIndex}`]) {
          const res = await app.request('POST', '/api/v1/workspaces', { token: ann.token, body: { organization_id: org, name } });
          expect(res.status, res.text).toBe(201);
        }
      });
      const seen = ids(pages);
      expect(new Set(seen).size).toBe(seen.length);
      const untouched = before.filter((w) => !touched.has(w.id));
      expect(untouched.length).toBe(before.length - 6);
      for (const w of untouched) expect(seen.filter((id) => id === w.id)).toHaveLength(1);
    },
  );
});

describe('GET /workspaces: q', () => {
  let org: string;
  beforeAll(async () => {
    org = await createOrganizationFor(app, ann.token, 'Search');
    await provision(ann.token, org, ['100% done', 'a_b', 'axb', 'Mixed CASE Name']);
    const res = await app.request('POST', '/api/v1/workspaces', {
      token: ann.token,
      body: { organization_id: org, name: 'Plain', slug: 'hidden-slug-xyz' },
    });
    expect(res.status).toBe(201);
  });
  const names = async (q: string) => {
    const res = await list(ann.token, { organization_id: org, q, limit: 100 });
    expect(res.status, res.text).toBe(200);
    return res.body.items.map((w) => w.name).sort();
  };

  it('matches a case-insensitive substring of the name', async () => {
    expect(await names('case n')).toEqual(['Mixed CASE Name']);
    expect(await names('MIXED')).toEqual(['Mixed CASE Name']);
  });

  it('matches a case-insensitive substring of the slug', async () => {
    expect(await names('SLUG-XYZ')).toEqual(['Plain']);
  });

  it('treats % and _ literally', async () => {
    expect(await names('%')).toEqual(['100% done']);
    expect(await names('_')).toEqual(['a_b']);
    expect(await names('a_b')).toEqual(['a_b']);
    expect(await names('x%')).toEqual([]);
  });

  it('binds the cursor to q', async () => {
    const first = await list(ann.token, { organization_id: org, q: 'a', limit: 1 });
    expect(first.body.next_cursor).not.toBeNull();
    expect400(await list(ann.token, { organization_id: org, q: 'b', limit: 1, cursor: first.body.next_cursor! }));
    expect400(await list(ann.token, { organization_id: org, limit: 1, cursor: first.body.next_cursor! }));
  });
});

describe('GET /workspaces: limit, sort, order', () => {
  it('defaults limit to 20 and accepts 1..100', async () => {
    const byDefault = await list(ann.token, { organization_id: pagingOrg });
    expect(byDefault.body.items).toHaveLength(20);
    expect(byDefault.body.next_cursor).not.toBeNull();
    for (const limit of [1, 100]) {
      const res = await list(ann.token, { organization_id: pagingOrg, limit });
      expect(res.status).toBe(200);
      expect(res.body.items).toHaveLength(limit);
    }
  });

  it.each(['0', '101', 'abc', '-1', '1.5', ''])('answers 400 to limit=%j', async (limit) => {
    expect400(await list(ann.token, { organization_id: pagingOrg, limit }));
  });

  it('answers 400 to an unknown sort or order', async () => {
    expect400(await app.request('GET', `/api/v1/workspaces?sort=slug`, { token: ann.token }));
    expect400(await app.request('GET', `/api/v1/workspaces?sort=NAME`, { token: ann.token }));
    expect400(await app.request('GET', `/api/v1/workspaces?order=up`, { token: ann.token }));
    expect400(await app.request('GET', `/api/v1/workspaces?order=DESC`, { token: ann.token }));
  });

  it('answers 400 over tRPC too', async () => {
    const error = await app
      .trpc(ann.token)
      .workspaces.list.query({ limit: 0 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error as TRPCClientError<never>).data).toMatchObject({ code: 'BAD_REQUEST', httpStatus: 400 });
  });
});

describe('GET /workspaces: cursors', () => {
  const query = { organization_id: '', sort: 'created_at' as const, order: 'asc' as const, limit: 7 };
  let cursor: string;
  beforeAll(async () => {
    query.organization_id = pagingOrg;
    const res = await list(ann.token, query);
    cursor = res.body.next_cursor!;
    expect(cursor).toEqual(expect.any(String));
  });
  const flip = (text: string, at: number) => text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);

  it('answers 400 to a cursor tampered with in its payload or its signature', async () => {
    const [payload, signature] = cursor.split('.') as [string, string];
    expect(signature).toBeTruthy();
    expect400(await list(ann.token, { ...query, cursor: `${flip(payload, Math.floor(payload.length / 2))}.${signature}` }));
    expect400(await list(ann.token, { ...query, cursor: `${payload}.${flip(signature, Math.floor(signature.length / 2))}` }));
    expect400(await list(ann.token, { ...query, cursor: 'not-a-cursor' }));
    expect400(await list(ann.token, { ...query, cursor: `${cursor}.x` }));
    expect((await list(ann.token, { ...query, cursor })).status).toBe(200);
  });

  it('answers 400 to a cursor used with another sort, order or organization_id', async () => {
    expect400(await list(ann.token, { ...query, cursor, sort: 'name' }));
    expect400(await list(ann.token, { ...query, cursor, order: 'desc' }));
    expect400(await list(ann.token, { ...query, cursor, organization_id: ann.organization.id }));
    expect400(await list(ann.token, { ...query, cursor, organization_id: undefined }));
    const { organization_id: _, ...withoutOrg } = query;
    expect400(await list(ann.token, { ...withoutOrg, cursor }, `/api/v1/organizations/${ann.organization.id}/workspaces`));
    // limit is not a filter: the next page may be of another size
    const bigger = await list(ann.token, { ...query, cursor, limit: 9 });
    expect(bigger.status).toBe(200);
    expect(bigger.body.items).toHaveLength(9);
  });

  it('answers 400 to a cursor issued to another user, even for the same filters', async () => {
    const mine = await list(ann.token, { limit: 1 });
    expect(mine.body.next_cursor).not.toBeNull();
    expect400(await list(bob.token, { limit: 1, cursor: mine.body.next_cursor! }));
    const bobsPage = await list(bob.token, { organization_id: bob.organization.id, limit: 1 });
    expect400(await list(ann.token, { organization_id: bob.organization.id, limit: 1, cursor: bobsPage.body.next_cursor! }));
  });
});

describe('GET /workspaces: query plans', () => {
  /**
   * EXPLAIN of the organization-filtered list query the service sends for a second page: with
   * its parameters bound (a custom plan), and as a generic plan of the prepared statement.
   */
  async function plans(org: string, sort: Sort, order: Order): Promise<string[]> {
    const first = await list(ann.token, { organization_id: org, sort, order, limit: 7 });
    const last = first.body.items.at(-1)!;
    const captured: Array<{ text: string; params: unknown[] }> = [];
    const stop = app.database.onQuery((text, params) => captured.push({ text, params }));
    const res = await list(ann.token, { organization_id: org, sort, order, limit: 7, cursor: first.body.next_cursor! });
    stop();
    expect(res.status).toBe(200);
    const listSql = captured.filter(({ text }) => /from "workspaces"/.test(text) && /order by/i.test(text));
    expect(listSql).toHaveLength(1);
    const { text } = listSql[0]!;
    // The service binds the caller (their membership of the organization, and of each workspace),
    // the organization and the cursor's position (reconstructed from the last row of page 1); the
    // page's row count, limit + 1, is written into the statement (lib/pagination.ts literalLimit).
    expect(text.match(/\$\d+/g)).toEqual(['$1', '$2', '$3', '$4', '$5']);
    expect(text).toMatch(/ limit 8$/);
    const key = sort === 'name' ? nameKey(last.name) : last.created_at;
    const params = [ann.user.id, ann.user.id, org, key, last.id];
    expect(listSql[0]!.params.map((p) => (p instanceof Date ? p.toISOString() : p))).toEqual(params);
    const custom = await app.query<{ 'QUERY PLAN': string }>(`explain ${text}`, params);
    // The app prepares its statements, and PostgreSQL may switch a prepared statement to a generic plan.
    const connection = await app.database.postgresClient!.reserve();
    try {
      await connection.unsafe(`prepare list_page as ${text}`);
      await connection.unsafe('set plan_cache_mode = force_generic_plan');
      const literal = (value: string | number) => (typeof value === 'number' ? String(value) : `'${value.replace(/'/g, "''")}'`);
      const generic = await connection.unsafe<Array<{ 'QUERY PLAN': string }>>(
        `explain execute list_page(${params.map(literal).join(', ')})`,
      );
      return [custom, generic].map((rows) => rows.map((r) => r['QUERY PLAN']).join('\n'));
    } finally {
      await connection.unsafe('deallocate list_page; reset plan_cache_mode').catch(() => {});
      connection.release();
    }
  }

  it.runIf(process.env.DATABASE_URL)('uses the organization indexes, forwards or backwards, with no Sort (PostgreSQL)', async () => {
    expect(app.engine).toBe('postgres');
    const org = await createOrganizationFor(app, ann.token, 'Explain');
    await app.query(
      `insert into workspaces (organization_id, name, name_key, slug, created_at, updated_at)
       select $1::uuid, 'Bulk ' || g, lower('Bulk ' || g), 'bulk-' || g,
              now() - make_interval(secs => g), now() - make_interval(secs => g)
       from generate_series(1, 2000) g`,
      [org],
    );
    await app.query('analyze workspaces');
    for (const sort of ['created_at', 'name'] as const) {
      const index = sort === 'name' ? 'workspaces_org_name_idx' : 'workspaces_org_created_idx';
      for (const order of ['asc', 'desc'] as const) {
        const scan = order === 'asc' ? 'Index Scan' : 'Index Scan Backward';
        for (const text of await plans(org, sort, order)) {
          expect(text, text).toMatch(new RegExp(`${scan} using ${index} on workspaces`));
          expect(text, text).not.toMatch(/Sort|Seq Scan/);
          // The cursor position is an index condition, so a deep page does not rescan earlier rows.
          expect(text, text).toMatch(/Index Cond: .*ROW\(/);
        }
      }
    }
  });
});
