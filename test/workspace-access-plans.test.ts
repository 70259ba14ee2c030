import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';

/**
 * Query plans of workspace access on PostgreSQL (README, Workspace access; modules/workspaces/
 * service.ts listWorkspaces and readWorkspaceQuery): the SQL the service sends, captured from
 * real requests, explained with EXPLAIN (ANALYZE, FORMAT JSON) both as planned for its
 * parameters (a custom plan) and as the generic plan of its prepared statement — the plan
 * PostgreSQL switches to after a statement's fifth run, so the one a busy service runs.
 *
 * A plain member's page of one organization is a union of two keyset scans stopped at the
 * page's size: the workspaces visible to the organization (workspaces_org_visibility_*_idx, in
 * order) and the private ones they hold an explicit membership of (from workspace_members by
 * user). Neither may read the organization's other workspaces, nor sort more than the union's
 * two short branches. An organization admin's page is one index scan in order; a read by id is
 * index lookups only.
 *
 * Skipped without DATABASE_URL: plans are PostgreSQL's (PGlite plans alike, but the suite
 * asserts PostgreSQL's node names and costs its own database).
 */

/** The bulk organization: this many workspaces, every other one private (settings override, derived column set). */
const WORKSPACES = 4_000;
const VISIBLE = WORKSPACES / 2;
/** The plain member's explicit memberships, spread over the private workspaces' creation order. */
const EXPLICIT = 20;
/**
 * Other plain members of the organization (so users and memberships are of a size where an
 * index matters); the first VISIBLE / EXPLICIT of them hold as many explicit memberships as the
 * member, each private workspace once: the statistics say a user holds about 20, as they would.
 */
const COLLEAGUES = 2_000;
const LIMIT = 20;
/** Rows a page reads from one branch: the page and one more (is there a next page?). */
const TAKE = LIMIT + 1;
/** How deep the deep pages are, within the workspaces visible to the organization. */
const DEEP = 1_500;

type Sort = 'created_at' | 'name';

interface Captured {
  text: string;
  params: unknown[];
}

/** One node of EXPLAIN (ANALYZE, FORMAT JSON). */
interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Plan Rows': number;
  'Actual Rows': number;
  'Actual Loops': number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  'Rows Removed by Join Filter'?: number;
  Plans?: PlanNode[];
}

let app: TestApp;
let owner: SignedUp;
let member: SignedUp;
let organizationId: string;
let granted: string[];

const describePostgres = describe.runIf(process.env.DATABASE_URL);

describePostgres('workspace access: query plans (PostgreSQL)', () => {
  beforeAll(async () => {
    app = await startTestApp();
    expect(app.engine).toBe('postgres');
    [owner, member] = await signupMany(app, ['Owner', 'Member']);
    organizationId = owner.organization.id;
    await addMember(app, owner.token, organizationId, member, 'member');
    // One statement: workspace j is private when j is even, its derived columns as the service writes them.
    await app.query(
      `insert into workspaces (organization_id, name, name_key, slug, settings, effective_visibility, effective_default_role, created_at, updated_at)
       select $1::uuid, 'Plan ' || j, 'plan ' || j, 'plan-' || j,
              case when j % 2 = 0 then '{"permissions":{"visibility":"private"}}'::jsonb else '{}'::jsonb end,
              case when j % 2 = 0 then 'private' else 'organization' end, 'member',
              now() - make_interval(secs => j), now() - make_interval(secs => j)
         from generate_series(1, $2::int) j`,
      [organizationId, WORKSPACES],
    );
    const rows = await app.query<{ id: string }>(
      `insert into workspace_members (workspace_id, user_id, role)
       select id, $2::uuid, case when n % 2 = 0 then 'viewer' else 'member' end
         from (select id, row_number() over (order by created_at, id) as n
                 from workspaces where organization_id = $1::uuid and effective_visibility = 'private') w
        where n % ($3::int / $4::int) = 0
        returning workspace_id as id`,
      [organizationId, member.user.id, VISIBLE, EXPLICIT],
    );
    granted = rows.map((row) => row.id);
    expect(granted).toHaveLength(EXPLICIT);
    await app.query(
      `with colleagues as (
         insert into users (email, name, password_hash)
         select format('colleague-%s-%s@example.com', $2::text, k), format('Colleague %s', k), 'not a real hash'
           from generate_series(1, $3::int) k
         returning id),
       joined as (
         insert into memberships (organization_id, user_id, role) select $1::uuid, id, 'member' from colleagues returning user_id)
       insert into workspace_members (workspace_id, user_id, role)
       select w.id, c.id, 'member'
         from (select id, row_number() over (order by id) as k from colleagues) c
         join (select id, row_number() over (order by id) as n
                 from workspaces where organization_id = $1::uuid and effective_visibility = 'private') w
           on (w.n - 1) % $4::int = c.k - 1`,
      [organizationId, organizationId.slice(0, 8), COLLEAGUES, VISIBLE / EXPLICIT],
    );
    await app.query('analyze workspaces, workspace_members, memberships, users');
  });

  afterAll(async () => {
    await app?.close();
  });

  const listPath = (query: { sort?: Sort; limit?: number; cursor?: string }) => {
    const params = new URLSearchParams({ organization_id: organizationId, limit: String(query.limit ?? LIMIT) });
    if (query.sort) params.set('sort', query.sort);
    if (query.cursor) params.set('cursor', query.cursor);
    return `/api/v1/workspaces?${params.toString()}`;
  };

  /** The statements `path` sends that `pick` selects (exactly one), and the answer. */
  async function capture(path: string, token: string, pick: (text: string) => boolean) {
    const captured: Captured[] = [];
    const stop = app.database.onQuery((text, params) => captured.push({ text, params }));
    const res = await app.request('GET', path, { token });
    stop();
    expect(res.status, res.text).toBe(200);
    const picked = captured.filter((q) => pick(q.text));
    expect(picked, JSON.stringify(captured.map((q) => q.text))).toHaveLength(1);
    return { ...picked[0]!, body: res.body };
  }

  const isList = (text: string) => /from "workspaces"/.test(text) && /order by/i.test(text);

  /** The member's page `offset` rows into the list (followed 100 at a time), as its path. */
  async function pageAt(sort: Sort, offset: number, token: string): Promise<string> {
    let cursor: string | undefined;
    for (let seen = 0; seen < offset; seen += 100) {
      const res = await app.request('GET', listPath({ sort, limit: 100, cursor }), { token });
      expect(res.status, res.text).toBe(200);
      cursor = res.body.next_cursor;
      expect(cursor).toBeTruthy();
    }
    return listPath({ sort, cursor });
  }

  const literal = (value: unknown): string => {
    if (value === null || value === undefined) return 'null';
    if (typeof value === 'number' || typeof value === 'bigint') return String(value);
    const text = value instanceof Date ? value.toISOString() : typeof value === 'string' ? value : JSON.stringify(value);
    return `'${text.replace(/'/g, "''")}'`;
  };
  const bound = (value: unknown) => (value instanceof Date ? value.toISOString() : value);

  /** EXPLAIN (ANALYZE, FORMAT JSON) of the statement: its custom plan, and its prepared statement's generic plan. */
  async function plans({ text, params }: Captured): Promise<Array<{ kind: string; root: PlanNode }>> {
    const explain = 'explain (analyze, format json)';
    const custom = await app.query<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>(`${explain} ${text}`, params.map(bound));
    const connection = await app.database.postgresClient!.reserve();
    try {
      await connection.unsafe(`prepare access_plan as ${text}`);
      await connection.unsafe('set plan_cache_mode = force_generic_plan');
      const generic = await connection.unsafe<Array<{ 'QUERY PLAN': Array<{ Plan: PlanNode }> }>>(
        `${explain} execute access_plan${params.length ? `(${params.map(literal).join(', ')})` : ''}`,
      );
      return [
        { kind: 'custom', root: custom[0]!['QUERY PLAN'][0]!.Plan },
        { kind: 'generic', root: generic[0]!['QUERY PLAN'][0]!.Plan },
      ];
    } finally {
      await connection.unsafe('deallocate access_plan; reset plan_cache_mode').catch(() => {});
      connection.release();
    }
  }

  const nodes = (root: PlanNode): PlanNode[] => [root, ...(root.Plans ?? []).flatMap(nodes)];
  const rowsOut = (node: PlanNode) => node['Actual Rows'] * node['Actual Loops'];
  /** What a scan node read: the rows it returned and those its filter (or recheck) threw away. */
  const rowsRead = (node: PlanNode) =>
    rowsOut(node) + ((node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * node['Actual Loops'];
  const isScan = (node: PlanNode) => /Scan$/.test(node['Node Type']);
  const describeNode = (node: PlanNode) =>
    `${node['Node Type']}${node['Index Name'] ? ` using ${node['Index Name']}` : ''}${node['Relation Name'] ? ` on ${node['Relation Name']}` : ''} (estimated ${node['Plan Rows']}, actual ${node['Actual Rows']} × ${node['Actual Loops']} loops)`;
  const outline = (root: PlanNode, depth = 0): string =>
    [`${'  '.repeat(depth)}${describeNode(root)}`, ...(root.Plans ?? []).map((child) => outline(child, depth + 1))].join('\n');

  /**
   * What every list plan must show: index scans only on workspaces (none reads more than the
   * page's rows, or `readAtMost` when the caller's memberships drive the scan), and no Sort
   * over more than the union's two branches' rows.
   */
  function expectBoundedPlan(root: PlanNode, readAtMost: number) {
    const all = nodes(root);
    const text = outline(root);
    expect(
      all.filter((n) => n['Node Type'] === 'Seq Scan'),
      text,
    ).toEqual([]);
    for (const scan of all.filter((n) => isScan(n) && n['Relation Name'] === 'workspaces')) {
      expect(rowsRead(scan), `${describeNode(scan)} reads past the page\n${text}`).toBeLessThanOrEqual(readAtMost);
    }
    for (const sort of all.filter((n) => n['Node Type'] === 'Sort')) {
      const input = rowsOut(sort.Plans![0]!);
      expect(input, `a Sort over ${input} rows\n${text}`).toBeLessThanOrEqual(2 * TAKE);
      // The planner expected it small too (not a sort it merely got lucky with).
      expect(sort.Plans![0]!['Plan Rows'], `a Sort planned over ${sort.Plans![0]!['Plan Rows']} rows\n${text}`).toBeLessThanOrEqual(
        2 * TAKE,
      );
    }
  }

  const usesIndex = (root: PlanNode, index: string, relation: string) =>
    nodes(root).some((n) => /Index/.test(n['Node Type']) && n['Index Name'] === index && (n['Relation Name'] ?? relation) === relation);

  for (const sort of ['created_at', 'name'] as const) {
    const visibleIndex = sort === 'name' ? 'workspaces_org_visibility_name_idx' : 'workspaces_org_visibility_created_idx';

    it(`a plain member's first and deep page, sort=${sort}: the visible scan on ${visibleIndex}, the private one from their memberships`, async () => {
      const first = await capture(listPath({ sort }), member.token, isList);
      expect(first.text).toMatch(/union all/i);
      expect(first.body.items).toHaveLength(LIMIT);
      const deep = await capture(await pageAt(sort, DEEP, member.token), member.token, isList);
      expect(deep.body.items).toHaveLength(LIMIT);
      expect(deep.params.length, 'the cursor is a parameter of both branches').toBeGreaterThan(first.params.length);
      for (const page of [first, deep]) {
        for (const { kind, root } of await plans(page)) {
          const text = `${kind} plan\n${outline(root)}`;
          expect(usesIndex(root, visibleIndex, 'workspaces'), text).toBe(true);
          expect(usesIndex(root, 'workspace_members_user_idx', 'workspace_members'), text).toBe(true);
          // The visible branch reads its page and stops; the private one reads the member's 20 workspaces.
          expectBoundedPlan(root, Math.max(TAKE, EXPLICIT));
          expect(rowsOut(root), text).toBe(TAKE);
        }
      }
    });
  }

  it('the plain member sees what the plans were built for: the visible workspaces and exactly their 20 private ones', async () => {
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const res = await app.request('GET', listPath({ limit: 100, cursor }), { token: member.token });
      expect(res.status, res.text).toBe(200);
      ids.push(...res.body.items.map((w: { id: string }) => w.id));
      cursor = res.body.next_cursor ?? undefined;
    } while (cursor);
    const privateIds = new Set(
      (
        await app.query<{ id: string }>(`select id from workspaces where organization_id = $1 and effective_visibility = 'private'`, [
          organizationId,
        ])
      ).map((w) => w.id),
    );
    expect(ids.filter((id) => privateIds.has(id)).sort()).toEqual([...granted].sort());
    // the visible half, the 20, and the owner's default workspace from signup
    expect(ids).toHaveLength(VISIBLE + EXPLICIT + 1);
  });

  it("an organization admin's page is one index scan in order (workspaces_org_created_idx / _name_idx), first and deep", async () => {
    for (const sort of ['created_at', 'name'] as const) {
      const index = sort === 'name' ? 'workspaces_org_name_idx' : 'workspaces_org_created_idx';
      const first = await capture(listPath({ sort }), owner.token, isList);
      expect(first.text).not.toMatch(/union/i);
      const deep = await capture(await pageAt(sort, DEEP, owner.token), owner.token, isList);
      for (const page of [first, deep]) {
        for (const { kind, root } of await plans(page)) {
          const text = `${kind} plan\n${outline(root)}`;
          expect(usesIndex(root, index, 'workspaces'), text).toBe(true);
          expect(
            nodes(root).filter((n) => n['Node Type'] === 'Sort'),
            text,
          ).toEqual([]);
          expectBoundedPlan(root, TAKE);
        }
      }
    }
  });

  it("a list across organizations joins the caller's memberships once and reads their organizations' workspaces by index (generic plan)", async () => {
    // The owner is also admin of 40 small organizations: their list spans 41.
    await app.query(
      `with orgs as (
         insert into organizations (name, slug)
         select format('Spread %s', k), format('spread-%s-%s', $2::text, k) from generate_series(1, 40) k
         returning id),
       joined as (insert into memberships (organization_id, user_id, role) select id, $1::uuid, 'admin' from orgs)
       insert into workspaces (organization_id, name, name_key, slug, created_at, updated_at)
       select orgs.id, 'Spread ' || j, 'spread ' || j, 'spread-' || j, now() - make_interval(mins => j), now() - make_interval(mins => j)
         from orgs cross join generate_series(1, 50) j`,
      [owner.user.id, organizationId.slice(0, 8)],
    );
    await app.query('analyze workspaces, memberships, organizations');
    const page = await capture('/api/v1/workspaces?limit=20', owner.token, isList);
    expect(page.body.items).toHaveLength(LIMIT);
    const generic = (await plans(page)).find((p) => p.kind === 'generic')!.root;
    const text = outline(generic);
    expect(
      nodes(generic).filter((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'workspaces'),
      text,
    ).toEqual([]);
    // The page is the union of two branches (src/modules/workspaces/service.ts, listWorkspaces):
    // the workspaces of the caller's organizations, where memberships is read once (the access
    // join is the organizations' bound), and those it is a guest in, read from its explicit
    // memberships, where memberships is read once per such membership (to tell a guest: none
    // here). Each workspace meets the caller's membership of its own organization, not all 41 of them.
    const [{ explicit }] = (await app.query<{ explicit: number }>(
      'select count(*)::int as explicit from workspace_members where user_id = $1',
      [owner.user.id],
    )) as [{ explicit: number }];
    const membershipScans = nodes(generic).filter((n) => isScan(n) && n['Relation Name'] === 'memberships');
    expect(membershipScans.length, text).toBeLessThanOrEqual(2);
    expect(
      membershipScans.reduce((sum, n) => sum + n['Actual Loops'], 0),
      text,
    ).toBeLessThanOrEqual(1 + explicit);
    const discarded = nodes(generic).reduce((sum, n) => sum + (n['Rows Removed by Join Filter'] ?? 0) * n['Actual Loops'], 0);
    expect(discarded, text).toBeLessThanOrEqual(TAKE);
  });

  it('a read by id (the read_workspace prepared statement) is index lookups: users, workspaces, memberships, workspace_members', async () => {
    const isRead = (text: string) => /from "users"/.test(text) && /left join "workspace_members"/.test(text);
    for (const [who, caller, id] of [
      ['explicit viewer of a private workspace', member, granted[0]!],
      ['organization owner', owner, granted[1]!],
    ] as const) {
      const read = await capture(`/api/v1/workspaces/${id}`, caller.token, isRead);
      const [{ held }] = (await app.query<{ held: number }>('select count(*)::int as held from memberships where user_id = $1', [
        caller.user.id,
      ])) as [{ held: number }];
      expect(read.body.id, who).toBe(id);
      for (const { kind, root } of await plans(read)) {
        const text = `${who}, ${kind} plan\n${outline(root)}`;
        const scans = nodes(root).filter(isScan);
        expect(
          scans.filter((n) => !/Index|Bitmap/.test(n['Node Type'])),
          text,
        ).toEqual([]);
        expect(usesIndex(root, 'workspaces_pkey', 'workspaces'), text).toBe(true);
        expect(usesIndex(root, 'users_pkey', 'users'), text).toBe(true);
        // Lookups: one row each, but memberships: the generic plan may look the caller's up by user
        // (memberships_user_idx) and stop at the workspace's organization; never more than theirs.
        for (const scan of scans) {
          const most = scan['Relation Name'] === 'memberships' ? held : 1;
          expect(rowsRead(scan), `${describeNode(scan)}\n${text}`).toBeLessThanOrEqual(most);
        }
      }
    }
  });
});
