import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { createTeam } from './helpers/org-helpers';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';
import { workspaceCount } from './helpers/workspace-helpers';

/** POST /workspaces/provision: up to 1000 workspaces in one call, atomic or partial. */

let app: TestApp;
let owner: SignedUp;
let member: SignedUp;
let stranger: SignedUp;

beforeAll(async () => {
  app = await startTestApp();
  [owner, member, stranger] = await signupMany(app, ['Owner', 'Member', 'Stranger']);
});
afterAll(async () => {
  await app?.close();
});

type Item = Record<string, unknown>;

const provision = (body: Record<string, unknown>, token = owner.token) =>
  app.request('POST', '/api/v1/workspaces/provision', { token, body });

/** A fresh organization of the owner's (with `member` as a plain member), so slugs start from a clean slate. */
const freshOrg = () => createTeam(app, owner, [[member, 'member']]);

async function createWorkspace(organizationId: string, body: Item) {
  const res = await app.request('POST', '/api/v1/workspaces', { token: owner.token, body: { organization_id: organizationId, ...body } });
  expect(res.status, res.text).toBe(201);
  return res.body as { id: string; slug: string };
}

/** The organization's slugs, sorted. */
const slugsIn = async (organizationId: string) =>
  (await app.query<{ slug: string }>('select slug from workspaces where organization_id = $1 order by slug', [organizationId])).map(
    (r) => r.slug,
  );

const countIn = (organizationId: string) => workspaceCount(app, organizationId);

const storedOf = async (id: string) =>
  (
    await app.query<{ description: string | null; metadata: unknown; settings: unknown }>(
      'select description, metadata, settings from workspaces where id = $1',
      [id],
    )
  )[0];

/** Item 1 uses a slug taken in the organization; items 3 and 4 repeat one. */
const conflictingBatch = (): Array<{ name: string; slug?: string }> => [
  { name: 'Zero', slug: 'zero' },
  { name: 'One', slug: 'taken' },
  { name: 'Two Derived' },
  { name: 'Three', slug: 'repeated' },
  { name: 'Four', slug: 'repeated' },
];

function expectConflictFailures(failed: Array<{ index: number; code: string; message: string }>) {
  expect(failed.map((f) => [f.index, f.code])).toEqual([
    [1, 'CONFLICT'],
    [4, 'CONFLICT'],
  ]);
  expect(failed[0]!.message).toMatch(/taken/);
  expect(failed[1]!.message).toMatch(/repeated/);
}

describe('POST /workspaces/provision — atomic (default)', () => {
  it('creates every item in item order and answers 201 without Location', async () => {
    const org = await freshOrg();
    const res = await provision({
      organization_id: org,
      workspaces: [
        { name: 'Alpha' },
        { name: 'Beta', slug: 'beta-custom', description: 'b', metadata: { k: 'v' }, settings: { features: { x: true } } },
        { name: 'Gamma Ray' },
      ],
    });
    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('location')).toBeNull();
    expect(res.body.failed).toEqual([]);
    expect(res.body.created.map((w: { name: string; slug: string }) => [w.name, w.slug])).toEqual([
      ['Alpha', 'alpha'],
      ['Beta', 'beta-custom'],
      ['Gamma Ray', 'gamma-ray'],
    ]);
    for (const w of res.body.created) {
      expect(w).toMatchObject({ organization_id: org, is_default: false, cloned_from_id: null, version: 1 });
    }
    expect(res.body.created[0]).toMatchObject({ description: null, metadata: {} });
    expect(res.body.created[1]).toMatchObject({ description: 'b', metadata: { k: 'v' } });
    expect(await slugsIn(org)).toEqual(['alpha', 'beta-custom', 'default', 'gamma-ray']);
    expect(await storedOf(res.body.created[1].id)).toEqual({ description: 'b', metadata: { k: 'v' }, settings: { features: { x: true } } });
    expect((await storedOf(res.body.created[0].id))?.settings).toEqual({});
  });

  it('answers 409 listing every conflicting item (a taken slug, the later of a repeat) and creates nothing', async () => {
    const org = await freshOrg();
    await createWorkspace(org, { name: 'Blocker', slug: 'taken' });
    const before = await slugsIn(org);
    const res = await provision({ organization_id: org, workspaces: conflictingBatch() });
    expectApiError(res, 409, 'CONFLICT');
    expectConflictFailures(res.body.failed);
    expect(await slugsIn(org)).toEqual(before);
  });
});

describe('POST /workspaces/provision — partial', () => {
  it('creates the items that can be, and reports the rest in failed', async () => {
    const org = await freshOrg();
    await createWorkspace(org, { name: 'Blocker', slug: 'taken' });
    const res = await provision({ organization_id: org, mode: 'partial', workspaces: conflictingBatch() });
    expect(res.status, res.text).toBe(201);
    expect(res.body.created.map((w: { name: string; slug: string }) => [w.name, w.slug])).toEqual([
      ['Zero', 'zero'],
      ['Two Derived', 'two-derived'],
      ['Three', 'repeated'],
    ]);
    expectConflictFailures(res.body.failed);
    expect(await slugsIn(org)).toEqual(['default', 'repeated', 'taken', 'two-derived', 'zero']);
    const rows = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and name = any($2)', [
      org,
      ['Zero', 'Two Derived', 'Three', 'One', 'Four'],
    ]);
    expect(rows.map((r) => r.id).sort()).toEqual(res.body.created.map((w: { id: string }) => w.id).sort());
  });
});

describe('POST /workspaces/provision — derived slugs', () => {
  it("de-duplicates derived slugs within the batch, against the organization and against the batch's explicit slugs", async () => {
    const org = await freshOrg();
    const first = await provision({ organization_id: org, workspaces: [{ name: 'Team' }, { name: 'team' }, { name: 'TEAM' }] });
    expect(first.status, first.text).toBe(201);
    expect(first.body.created.map((w: { slug: string }) => w.slug)).toEqual(['team', 'team-2', 'team-3']);

    const second = await provision({
      organization_id: org,
      workspaces: [{ name: 'Team' }, { name: 'Explicit', slug: 'team-4' }, { name: 'tEaM' }],
    });
    expect(second.status, second.text).toBe(201);
    expect(second.body.created.map((w: { slug: string }) => w.slug)).toEqual(['team-5', 'team-4', 'team-6']);
    expect(await slugsIn(org)).toEqual(['default', 'team', 'team-2', 'team-3', 'team-4', 'team-5', 'team-6']);
  });
});

describe('POST /workspaces/provision — template_workspace_id', () => {
  const TEMPLATE = {
    description: 'From the template',
    metadata: { a: '1', b: '2' },
    settings: {
      permissions: { default_role: 'viewer', allow_guests: true },
      features: { f1: true, f2: false },
      integrations: { slack: { enabled: true, config: { channel: '#t', n: 1 } } },
    },
  };

  it("uses the template's description, metadata and settings as each item's base, the item's own fields merged on top", async () => {
    const org = await freshOrg();
    const template = await createWorkspace(org, { name: 'Template', ...TEMPLATE });
    const res = await provision({
      organization_id: org,
      template_workspace_id: template.id,
      workspaces: [
        { name: 'Plain' },
        {
          name: 'Own',
          description: 'Mine',
          metadata: { b: '20', c: '3' },
          settings: {
            permissions: { allow_guests: false },
            features: { f2: true, f3: true },
            integrations: { slack: { config: { channel: '#own' } }, github: { enabled: true } },
          },
        },
        { name: 'Cleared', description: null, settings: { features: { f1: null }, integrations: { slack: null } } },
      ],
    });
    expect(res.status, res.text).toBe(201);
    const [plain, own, cleared] = res.body.created as Array<{
      id: string;
      description: string | null;
      metadata: unknown;
      cloned_from_id: string | null;
    }>;
    expect(plain).toMatchObject({ description: 'From the template', cloned_from_id: null });
    expect(plain!.metadata).toEqual(TEMPLATE.metadata);
    expect(own!.metadata).toEqual({ a: '1', b: '20', c: '3' });

    expect(await storedOf(plain!.id)).toEqual(TEMPLATE);
    expect(await storedOf(own!.id)).toEqual({
      description: 'Mine',
      metadata: { a: '1', b: '20', c: '3' },
      settings: {
        permissions: { default_role: 'viewer', allow_guests: false },
        features: { f1: true, f2: true, f3: true },
        integrations: { slack: { enabled: true, config: { channel: '#own', n: 1 } }, github: { enabled: true } },
      },
    });
    expect(await storedOf(cleared!.id)).toEqual({
      description: null,
      metadata: TEMPLATE.metadata,
      settings: { permissions: TEMPLATE.settings.permissions, features: { f2: false } },
    });
    const overrides = await app.request('GET', `/api/v1/workspaces/${own!.id}/settings`, { token: owner.token });
    expect(overrides.body.overrides.features).toEqual({ f1: true, f2: true, f3: true });
    // The template itself is unchanged.
    expect(await storedOf(template.id)).toEqual(TEMPLATE);
  });

  it("answers 400 when an item's metadata merged onto the template's would exceed 50 keys, and creates nothing", async () => {
    const org = await freshOrg();
    const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v']));
    const template = await createWorkspace(org, { name: 'Full template', metadata: fifty });
    const res = await provision({
      organization_id: org,
      template_workspace_id: template.id,
      workspaces: [{ name: 'Overfull', metadata: { extra: 'x' } }],
    });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(await countIn(org)).toBe(2);
  });

  it('answers 404 to a template of another tenant and creates nothing', async () => {
    const org = await freshOrg();
    const res = await provision({ organization_id: org, template_workspace_id: stranger.workspace.id, workspaces: [{ name: 'Copycat' }] });
    expectApiError(res, 404, 'NOT_FOUND');
    expect(await countIn(org)).toBe(1);
  });
});

describe('POST /workspaces/provision — validation', () => {
  let org: string;
  beforeAll(async () => {
    org = await freshOrg();
  });

  const withItem2 = (item: Item) => ({ organization_id: org, workspaces: [{ name: 'Ok 0' }, { name: 'Ok 1' }, item, { name: 'Ok 3' }] });

  it('answers 400 naming the item when one item is invalid, and creates nothing', async () => {
    expectIssueAt(await provision(withItem2({ name: '' })), 'workspaces.2.name');
    expectIssueAt(await provision(withItem2({ name: 'Extra', color: 'red' })), 'workspaces.2.color');
    expectIssueAt(
      await provision(withItem2({ name: 'Stringly', settings: { permissions: { allow_guests: 'true' } } })),
      'workspaces.2.settings.permissions.allow_guests',
    );
    expectIssueAt(await provision(withItem2({ name: 'Bad slug', slug: '-nope-' })), 'workspaces.2.slug');
    expect(await countIn(org)).toBe(1);
  });

  it('answers 400 to 0 items, 1001 items and an unknown mode', async () => {
    expectIssueAt(await provision({ organization_id: org, workspaces: [] }), 'workspaces');
    const many = Array.from({ length: 1001 }, (_, i) => ({ name: `W ${i}` }));
    expectIssueAt(await provision({ organization_id: org, workspaces: many }), 'workspaces');
    expectIssueAt(await provision({ organization_id: org, workspaces: [{ name: 'M' }], mode: 'bogus' }), 'mode');
    expect(await countIn(org)).toBe(1);
  });
});

describe('POST /workspaces/provision — scale', () => {
  it('provisions 1000 workspaces with distinct slugs in reasonable time', async () => {
    const org = await freshOrg();
    const started = Date.now();
    const res = await provision({ organization_id: org, workspaces: Array.from({ length: 1000 }, (_, i) => ({ name: `Bulk ${i % 10}` })) });
    const elapsed = Date.now() - started;
    expect(res.status, res.text.slice(0, 500)).toBe(201);
    expect(res.body.created).toHaveLength(1000);
    expect(res.body.failed).toEqual([]);
    expect(elapsed).toBeLessThan(10_000);
    const [stats] = await app.query<{ n: number; distinct_slugs: number }>(
      "select count(*)::int as n, count(distinct slug)::int as distinct_slugs from workspaces where organization_id = $1 and name like 'Bulk %'",
      [org],
    );
    expect(stats).toEqual({ n: 1000, distinct_slugs: 1000 });
    expect(new Set(res.body.created.map((w: { slug: string }) => w.slug)).size).toBe(1000);
    expect(res.body.created[10].slug).toBe('bulk-0-2');
  });

  it('sends the same number of queries for 10 items as for 1000', async () => {
    const queriesFor = async (count: number) => {
      const org = await freshOrg();
      const template = await createWorkspace(org, { name: 'Template', metadata: { t: '1' } });
      const seen: string[] = [];
      const unsubscribe = app.database.onQuery((query) => seen.push(query));
      try {
        const res = await provision({
          organization_id: org,
          template_workspace_id: template.id,
          workspaces: Array.from({ length: count }, (_, i) => (i % 2 ? { name: `Round ${i}` } : { name: `Trip ${i}`, slug: `trip-${i}` })),
        });
        expect(res.status, res.text.slice(0, 500)).toBe(201);
        expect(res.body.created).toHaveLength(count);
      } finally {
        unsubscribe();
      }
      return seen.length;
    };
    const ten = await queriesFor(10);
    const thousand = await queriesFor(1000);
    expect(ten).toBeGreaterThan(0);
    expect(thousand).toBe(ten);
  });
});

describe('POST /workspaces/provision — permissions', () => {
  it('answers 403 to a member and 404 to a non-member, creating nothing', async () => {
    const org = await freshOrg();
    expectApiError(await provision({ organization_id: org, workspaces: [{ name: 'By member' }] }, member.token), 403, 'FORBIDDEN');
    expectApiError(await provision({ organization_id: org, workspaces: [{ name: 'By stranger' }] }, stranger.token), 404, 'NOT_FOUND');
    expect(await countIn(org)).toBe(1);
  });
});

describe('workspaces.provision over tRPC', () => {
  it('provisions, and sends an atomic conflict as CONFLICT with data.failed', async () => {
    const org = await freshOrg();
    const client = app.trpc(owner.token);
    const result = await client.workspaces.provision.mutate({
      organization_id: org,
      workspaces: [{ name: 'Rpc One' }, { name: 'Rpc Two', slug: 'taken' }],
    });
    expect(result.failed).toEqual([]);
    expect(result.created.map((w) => w.slug)).toEqual(['rpc-one', 'taken']);

    const before = await slugsIn(org);
    const error = await expectTrpcFailure(
      client.workspaces.provision.mutate({ organization_id: org, workspaces: conflictingBatch() }),
      409,
      'CONFLICT',
    );
    expectConflictFailures(error.data!.failed!);
    expect(await slugsIn(org)).toEqual(before);
  });
});

describe.runIf(Boolean(process.env.DATABASE_URL))('POST /workspaces/provision — concurrency (PostgreSQL)', () => {
  it('gives concurrent batches into one organization distinct derived slugs instead of failing them', async () => {
    const org = await freshOrg();
    const answers = await Promise.all(
      Array.from({ length: 5 }, () => provision({ organization_id: org, workspaces: [{ name: 'Same' }, { name: 'Same' }] })),
    );
    expect(
      answers.map((a) => a.status),
      answers.map((a) => a.text.slice(0, 300)).join('\n'),
    ).toEqual(Array(5).fill(201));
    expect(answers.flatMap((a) => a.body.failed ?? [])).toEqual([]);
    const slugs = await slugsIn(org);
    expect(slugs).toHaveLength(11);
    expect(slugs).toEqual(['default', 'same', ...Array.from({ length: 9 }, (_, i) => `same-${i + 2}`)].sort());
    // Each creation event names the slug as inserted, also where a retry round moved it on.
    const events = await app.query<{ slug: string; recorded: string }>(
      `select w.slug, e.changes->'slug'->>'to' as recorded
         from audit_events e join workspaces w on w.id = e.target_id
        where e.organization_id = $1 and e.action = 'workspace.created' and w.slug <> 'default'`,
      [org],
    );
    expect(events).toHaveLength(10);
    for (const { slug, recorded } of events) expect(recorded).toBe(slug);
  });
});

describe.runIf(Boolean(process.env.DATABASE_URL))('the taken-slug lookup: query plan (PostgreSQL)', () => {
  it('finds a batch’s taken slugs with index range scans, not a scan of the organization', async () => {
    const org = await freshOrg();
    // A large organization: 5,000 workspaces, so a scan of it would show in the plan.
    await app.query(
      `insert into workspaces (organization_id, name, name_key, slug)
       select $1, 'Big ' || i, 'big ' || i, case when i = 1 then 'big' else 'big-' || i end from generate_series(1, 5000) i`,
      [org],
    );
    await app.query('analyze workspaces');
    const seen: Array<{ query: string; params: unknown[] }> = [];
    const stop = app.database.onQuery((query, params) => seen.push({ query, params }));
    const res = await provision({ organization_id: org, workspaces: [{ name: 'Big' }, { name: 'Team' }, { name: 'Mine', slug: 'mine' }] });
    stop();
    expect(res.status, res.text).toBe(201);
    expect(res.body.created.map((w: { slug: string }) => w.slug)).toEqual(['big-5001', 'team', 'mine']);
    const lookup = seen.find((q) => q.query.includes('jsonb_array_elements_text'));
    expect(lookup).toBeDefined();
    const plan = (await app.query<{ 'QUERY PLAN': string }>(`explain ${lookup!.query}`, lookup!.params))
      .map((r) => r['QUERY PLAN'])
      .join('\n');
    expect(plan).toMatch(/Index (Only )?Scan using workspaces_org_slug_key/);
    expect(plan).not.toMatch(/Seq Scan on workspaces/);
  });
});
