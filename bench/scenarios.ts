/**
 * What each scenario sends, built from the seeded fixture: the same request sequence for the
 * service and the baseline, spread over many rows (and organizations) rather than one hot row.
 * @module
 */
import type { Check } from './verify';
import type { Workload } from './measure';
import type { Fixture } from './seed';

export const getPath = (id: string) => `/api/v1/workspaces/${id}`;
export const settingsPath = (id: string) => `/api/v1/workspaces/${id}/settings`;
/** httpBatchLink's GET for one query: `?batch=1&input={"0": <input>}`. */
export const trpcGetPath = (id: string) =>
  `/trpc/workspaces.get?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: { workspace_id: id } }))}`;
export const listPath = (query: { organizationId?: string; limit: number; cursor?: string }) => {
  const params = new URLSearchParams();
  if (query.organizationId) params.set('organization_id', query.organizationId);
  params.set('limit', String(query.limit));
  if (query.cursor) params.set('cursor', query.cursor);
  return `/api/v1/workspaces?${params.toString()}`;
};

const reads = (token: string, paths: string[]): Workload => ({ method: 'GET', token, expectStatus: 200, paths });

export interface ReadWorkloads {
  get: Workload;
  trpc: Workload;
  settings: Workload;
  listOrganization: Workload;
  listAll: Workload;
  listDeep: Workload;
  scaleGetSmall: Workload;
  scaleGetLarge: Workload;
  scaleListSmall: Workload;
  scaleListLarge: Workload;
  /** A plain member's first page (limit 20): the 1,000-workspace organization (the reference), the visible one, the private one. */
  memberListReference: Workload;
  memberListVisible: Workload;
  memberListPrivate: Workload;
  /** The same member's page deep into the organization of visible workspaces. */
  memberListVisibleDeep: Workload;
}

/** Paths of list pages found by following next_cursor (bench/run.ts): the bench user's across organizations, the member's. */
export interface ListPages {
  /** The bench user's list of all organizations: its second page, and the page `deepOffset` rows in. */
  second: string;
  deep: string;
  /** The plain member's list of the organization of visible workspaces: second page, and `memberListDeepOffset` rows in. */
  memberVisibleSecond: string;
  memberVisibleDeep: string;
  /** The plain member's list of the private organization, 7 at a time: the second page (its rows come from the explicit memberships). */
  memberPrivateSecond: string;
}

export function readWorkloads(fixture: Fixture, pages: ListPages): ReadWorkloads {
  const { bench, scale, member } = fixture;
  return {
    get: reads(bench.token, fixture.benchWorkspaces.map(getPath)),
    trpc: reads(bench.token, fixture.benchWorkspaces.map(trpcGetPath)),
    settings: reads(bench.token, fixture.benchWorkspaces.map(settingsPath)),
    listOrganization: reads(
      bench.token,
      fixture.benchOrganizations.map((organizationId) => listPath({ organizationId, limit: 20 })),
    ),
    listAll: reads(bench.token, [listPath({ limit: 20 })]),
    listDeep: reads(bench.token, [pages.deep]),
    scaleGetSmall: reads(scale.token, fixture.scaleSmall.workspaceIds.map(getPath)),
    scaleGetLarge: reads(scale.token, fixture.scaleLarge.workspaceIds.map(getPath)),
    scaleListSmall: reads(scale.token, [listPath({ organizationId: fixture.scaleSmall.id, limit: 20 })]),
    scaleListLarge: reads(scale.token, [listPath({ organizationId: fixture.scaleLarge.id, limit: 20 })]),
    memberListReference: reads(member.token, [listPath({ organizationId: fixture.scaleSmall.id, limit: 20 })]),
    memberListVisible: reads(member.token, [listPath({ organizationId: fixture.accessVisible.id, limit: 20 })]),
    memberListPrivate: reads(member.token, [listPath({ organizationId: fixture.accessPrivate.id, limit: 20 })]),
    memberListVisibleDeep: reads(member.token, [pages.memberVisibleDeep]),
  };
}

export interface WriteWorkloads {
  settingsPut: Workload;
  create: Workload;
  clone: Workload;
}

/**
 * Writes, each from a sequence shared by every phase (warm-up, rounds, round-trip counting),
 * so every request is a real change: a settings write flips a feature flag of workspace
 * i mod N to the opposite of what the previous pass wrote (an unchanged write bumps nothing),
 * and creates and clones carry unique names. Consecutive requests touch different rows and
 * organizations, so concurrent writes do not queue on one row lock.
 */
export function writeWorkloads(fixture: Fixture, runTag: string): WriteWorkloads {
  const { bench, benchWorkspaces, benchOrganizations } = fixture;
  let settingsWrites = 0;
  let creates = 0;
  let clones = 0;
  return {
    settingsPut: {
      method: 'PUT',
      token: bench.token,
      expectStatus: 200,
      next: () => {
        const i = settingsWrites++;
        const on = Math.floor(i / benchWorkspaces.length) % 2 === 0;
        return {
          path: settingsPath(benchWorkspaces[i % benchWorkspaces.length]!),
          body: JSON.stringify({ features: { bench_toggle: on } }),
        };
      },
    },
    create: {
      method: 'POST',
      token: bench.token,
      expectStatus: 201,
      next: () => {
        const i = creates++;
        const organizationId = benchOrganizations[i % benchOrganizations.length]!;
        return { path: '/api/v1/workspaces', body: JSON.stringify({ organization_id: organizationId, name: `Bench ${runTag} ${i}` }) };
      },
    },
    clone: {
      method: 'POST',
      token: bench.token,
      expectStatus: 201,
      next: () => {
        const i = clones++;
        const source = benchWorkspaces[(i * 7) % benchWorkspaces.length]!;
        return { path: `${getPath(source)}/clone`, body: JSON.stringify({ name: `Clone ${runTag} ${i}` }) };
      },
    },
  };
}

/**
 * The baseline must answer these as the service does: every read route, its 401s and 404s, and
 * every source of access (README, Workspace access) — an organization owner or admin in a
 * private workspace, a plain member in a visible one, an explicit viewer and member of private
 * ones, and a plain member without one (404, absent from the lists).
 */
export function baselineChecks(fixture: Fixture, pages: ListPages): Check[] {
  const { bench, scale, member, benchWorkspaces, outsiderWorkspaceId, accessPrivate, accessVisible } = fixture;
  const missing = '00000000-0000-4000-8000-000000000000';
  const ok = (what: string, path: string, token = bench.token): Check => ({ what, path, token, status: 200 });
  const checks: Check[] = [];
  // Four consecutive workspaces cover the four shapes of seeded overrides.
  for (const id of benchWorkspaces.slice(0, 4)) {
    checks.push(ok('REST get', getPath(id)), ok('tRPC get', trpcGetPath(id)), ok('settings get', settingsPath(id)));
  }
  checks.push(
    ok('list, one organization', listPath({ organizationId: fixture.benchOrganizations[0]!, limit: 20 })),
    ok('list, all organizations', listPath({ limit: 20 })),
    ok('list, second page', pages.second),
    ok('list, deep page', pages.deep),
    ok('get in the large organization', getPath(fixture.scaleLarge.workspaceIds[500] ?? fixture.scaleLarge.workspaceIds[0]!), scale.token),
    ok('list, large organization', listPath({ organizationId: fixture.scaleLarge.id, limit: 20 }), scale.token),
    ok('list, empty organization', listPath({ organizationId: fixture.provisionEmpty.id, limit: 20 }), scale.token),
  );
  const refused = (what: string, path: string, token: string, status: number): Check => ({ what, path, token, status });
  for (const [face, path] of [
    ['REST get', getPath],
    ['tRPC get', trpcGetPath],
    ['settings get', settingsPath],
  ] as const) {
    checks.push(
      refused(`${face}, another tenant's workspace`, path(outsiderWorkspaceId), bench.token, 404),
      refused(`${face}, no such workspace`, path(missing), bench.token, 404),
      refused(`${face}, revoked token`, path(benchWorkspaces[0]!), bench.revokedToken, 401),
      refused(`${face}, forged token`, path(benchWorkspaces[0]!), fixture.forgedToken, 401),
      // 401 before 404: a revoked token learns nothing about another tenant's workspace.
      refused(`${face}, revoked token, another tenant's workspace`, path(outsiderWorkspaceId), bench.revokedToken, 401),
    );
  }
  checks.push(
    refused("list, another tenant's organization", listPath({ organizationId: fixture.scaleLarge.id, limit: 20 }), bench.token, 404),
    refused('list, revoked token', listPath({ limit: 20 }), bench.revokedToken, 401),
  );

  // Workspace access: each source of a role, and none.
  const viewerOf = accessPrivate.memberOf.find((m) => m.role === 'viewer')!.id;
  const memberOf = accessPrivate.memberOf.find((m) => m.role === 'member')!.id;
  const granted = new Set(accessPrivate.memberOf.map((m) => m.id));
  const notGranted = accessPrivate.workspaceIds.find((id) => !granted.has(id))!;
  for (const [face, path] of [
    ['REST get', getPath],
    ['tRPC get', trpcGetPath],
    ['settings get', settingsPath],
  ] as const) {
    checks.push(
      ok(`${face}, private workspace, organization owner`, path(fixture.memberHiddenId), scale.token),
      ok(`${face}, private workspace of the private organization, organization owner`, path(notGranted), scale.token),
      ok(`${face}, plain member, workspace visible to the organization`, path(accessVisible.workspaceIds[1]!), member.token),
      ok(`${face}, plain member, explicit viewer of a private workspace`, path(viewerOf), member.token),
      ok(`${face}, plain member, explicit member of a private workspace`, path(memberOf), member.token),
      refused(`${face}, plain member, private workspace, no explicit membership`, path(fixture.memberHiddenId), member.token, 404),
      refused(`${face}, plain member, private organization, no explicit membership`, path(notGranted), member.token, 404),
      refused(`${face}, plain member, revoked token, private workspace`, path(fixture.memberHiddenId), member.revokedToken, 401),
    );
  }
  checks.push(
    ok(
      'list, plain member, 1,000-workspace organization (a quarter private)',
      listPath({ organizationId: fixture.scaleSmall.id, limit: 20 }),
      member.token,
    ),
    ok('list, plain member, visible organization', listPath({ organizationId: accessVisible.id, limit: 20 }), member.token),
    ok('list, plain member, visible organization, second page', pages.memberVisibleSecond, member.token),
    ok('list, plain member, visible organization, deep page', pages.memberVisibleDeep, member.token),
    ok(
      'list, plain member, private organization (explicit memberships)',
      listPath({ organizationId: accessPrivate.id, limit: 20 }),
      member.token,
    ),
    ok('list, plain member, private organization, 7 a page', listPath({ organizationId: accessPrivate.id, limit: 7 }), member.token),
    ok('list, plain member, private organization, second page of 7', pages.memberPrivateSecond, member.token),
    ok('list, plain member, all organizations', listPath({ limit: 100 }), member.token),
    ok('list, organization owner, private organization', listPath({ organizationId: accessPrivate.id, limit: 20 }), scale.token),
    refused(
      "list, plain member, an organization they're not in",
      listPath({ organizationId: fixture.benchOrganizations[0]!, limit: 20 }),
      member.token,
      404,
    ),
  );
  return checks;
}

/**
 * What the service must answer for the bench to measure access at all (the baseline agreeing
 * with it proves nothing if both show everything): the plain member's list of the private
 * organization is exactly their explicit memberships.
 */
export function memberListExpectation(fixture: Fixture): { what: string; path: string; token: string; ids: string[] } {
  return {
    what: "the plain member's list of the private organization (exactly their explicit memberships)",
    path: listPath({ organizationId: fixture.accessPrivate.id, limit: 100 }),
    token: fixture.member.token,
    ids: fixture.accessPrivate.memberOf.map((m) => m.id),
  };
}
