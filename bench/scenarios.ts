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
}

export function readWorkloads(fixture: Fixture, deepPath: string): ReadWorkloads {
  const { bench, scale } = fixture;
  return {
    get: reads(bench.token, fixture.benchWorkspaces.map(getPath)),
    trpc: reads(bench.token, fixture.benchWorkspaces.map(trpcGetPath)),
    settings: reads(bench.token, fixture.benchWorkspaces.map(settingsPath)),
    listOrganization: reads(
      bench.token,
      fixture.benchOrganizations.map((organizationId) => listPath({ organizationId, limit: 20 })),
    ),
    listAll: reads(bench.token, [listPath({ limit: 20 })]),
    listDeep: reads(bench.token, [deepPath]),
    scaleGetSmall: reads(scale.token, fixture.scaleSmall.workspaceIds.map(getPath)),
    scaleGetLarge: reads(scale.token, fixture.scaleLarge.workspaceIds.map(getPath)),
    scaleListSmall: reads(scale.token, [listPath({ organizationId: fixture.scaleSmall.id, limit: 20 })]),
    scaleListLarge: reads(scale.token, [listPath({ organizationId: fixture.scaleLarge.id, limit: 20 })]),
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

/** The baseline must answer these as the service does: every read route, its 401s and 404s. */
export function baselineChecks(fixture: Fixture, pages: { second: string; deep: string }): Check[] {
  const { bench, scale, benchWorkspaces, outsiderWorkspaceId } = fixture;
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
  return checks;
}
