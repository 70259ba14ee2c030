import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signup, startTestApp, type ApiResponse, type SignedUp, type TestApp } from './helpers/app';
import { expectApiError } from './helpers/errors';
import { createTeam } from './helpers/org-helpers';
import { workspaceCount } from './helpers/workspace-helpers';

/**
 * Bounded work per request (README, Security): the largest allowed input against a large
 * organization, on every path whose work could grow with input × stored data, answers within
 * 2 s while /healthz is polled every 20 ms, and never holds the event loop longer than
 * STALL_LIMIT_MS (PGlite runs its statements on the service's thread: a longer bound there).
 * This file runs in the timing group (alone), since it judges the event loop.
 */

const FAMILY = 50_000;
const ANSWER_WITHIN_MS = 2000;
let app: TestApp;
let owner: SignedUp;
let organizationId: string;
let stallLimitMs: number;

beforeAll(async () => {
  // No workspace quota: the organization holds 51,000 workspaces by the end.
  app = await startTestApp({ MAX_WORKSPACES_PER_ORGANIZATION: '0' });
  stallLimitMs = app.engine === 'pglite' ? 500 : 100;
  owner = await signup(app, 'Owner');
  organizationId = await createTeam(app, owner);
  // x-1 … x-50000, as 50 partial provisions of 1,000 explicit slugs would leave them (in one statement here).
  await app.query(
    `insert into workspaces (organization_id, name, name_key, slug)
     select $1::uuid, 'x', 'x', 'x-' || n from generate_series(1, $2::int) as n`,
    [organizationId, FAMILY],
  );
  await app.query('analyze workspaces');
}, 120_000);
afterAll(async () => {
  await app?.close();
});

/**
 * Sends one request while /healthz is polled every 20 ms: its answer, how long it took, the
 * longest the event loop stood still meanwhile (Node's histogram), and the longest wait between
 * two health answers (every one of them 200).
 */
async function measured(method: string, path: string, body?: unknown) {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  let polling = true;
  let lastHealthAnswer = performance.now();
  let longestHealthGapMs = 0;
  const poll = (async () => {
    while (polling) {
      const res = await fetch(`${app.url}/healthz`);
      expect(res.status).toBe(200);
      await res.text();
      const now = performance.now();
      longestHealthGapMs = Math.max(longestHealthGapMs, now - lastHealthAnswer);
      lastHealthAnswer = now;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  histogram.enable();
  const started = performance.now();
  const res = await app.request(method, path, { token: owner.token, body });
  const elapsedMs = performance.now() - started;
  histogram.disable();
  polling = false;
  await poll;
  return { res, elapsedMs, stallMs: histogram.max / 1e6, longestHealthGapMs };
}

function expectBounded(m: Awaited<ReturnType<typeof measured>>, status: number) {
  expect(m.res.status, m.res.text.slice(0, 300)).toBe(status);
  expect(m.elapsedMs, 'answer time').toBeLessThan(ANSWER_WITHIN_MS);
  expect(m.stallMs, 'longest event-loop stall').toBeLessThan(stallLimitMs);
  // The health checks kept answering while the request ran: a 20 ms pause, a round trip, at most one stall.
  expect(m.longestHealthGapMs, 'longest wait between two health answers').toBeLessThan(stallLimitMs + 100);
}

const slugsOf = (res: ApiResponse) => (res.body.created as Array<{ slug: string }>).map((w) => w.slug);

describe('the provisioning attack: 1,000 × {"name":"x"} over x-1 … x-50000', () => {
  it('answers 201 within 2 s without stalling the event loop, each slug the next free one of the family', async () => {
    const body = { organization_id: organizationId, workspaces: Array.from({ length: 1000 }, () => ({ name: 'x' })) };
    expect(JSON.stringify(body).length).toBeLessThan(14 * 1024);
    const m = await measured('POST', '/api/v1/workspaces/provision', body);
    expectBounded(m, 201);
    // `x` itself was free; then the family goes on past x-50000.
    expect(slugsOf(m.res)).toEqual(['x', ...Array.from({ length: 999 }, (_, i) => `x-${FAMILY + 1 + i}`)]);
    expect(m.res.body.failed).toEqual([]);
    expect(await workspaceCount(app, organizationId)).toBe(FAMILY + 1 + 1000);
  });
});

describe('the other paths whose work could grow with input × stored data', () => {
  it('a create with a derived slug over that family', async () => {
    const m = await measured('POST', '/api/v1/workspaces', { organization_id: organizationId, name: 'X' });
    expectBounded(m, 201);
    expect(m.res.body.slug).toBe(`x-${FAMILY + 1000}`);
  });

  it('a clone with a derived slug over that family', async () => {
    const [source] = await app.query<{ id: string }>('select id from workspaces where organization_id = $1 and slug = $2', [
      organizationId,
      'x',
    ]);
    const m = await measured('POST', `/api/v1/workspaces/${source!.id}/clone`, { name: 'x' });
    expectBounded(m, 201);
    expect(m.res.body.slug).toBe(`x-${FAMILY + 1001}`);
  });

  it('a new organization whose name derives a slug of a large family', async () => {
    await app.query(
      `insert into organizations (name, slug) select 'fam', 'fam' union all select 'fam', 'fam-' || n from generate_series(2, $1::int) as n`,
      [FAMILY],
    );
    const m = await measured('POST', '/api/v1/organizations', { name: 'Fam' });
    expectBounded(m, 201);
    expect(m.res.body.slug).toBe(`fam-${FAMILY + 1}`);
  });

  it('list filters and sorts over the organization', async () => {
    const q = await measured('GET', `/api/v1/workspaces?organization_id=${organizationId}&q=x-4999&limit=100`);
    expectBounded(q, 200);
    expect(q.res.body.items.length).toBe(11); // x-4999 and x-49990 … x-49999
    const byName = await measured('GET', `/api/v1/workspaces?organization_id=${organizationId}&sort=name&order=desc&limit=100`);
    expectBounded(byName, 200);
    expect(byName.res.body.items).toHaveLength(100);
  });

  describe('settings at their limits: a 2,600-leaf layer, 100 organization locks', () => {
    /** 100 flags and 50 integrations of 50 config keys: about 40 KiB, under the 64 KiB a layer may hold. */
    const largeSettings = (value: string) => ({
      features: Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`flag-${i}`, i % 2 === 0])),
      integrations: Object.fromEntries(
        Array.from({ length: 50 }, (_, i) => [
          `integration-${i}`,
          { enabled: true, config: Object.fromEntries(Array.from({ length: 50 }, (_, k) => [`key-${k}`, value])) },
        ]),
      ),
    });
    let templateId: string;

    beforeAll(async () => {
      // 100 locks on paths the workspace does not set: every leaf is checked against all of them.
      const locks = Array.from({ length: 100 }, (_, i) => `integrations.integration-${i}.config.locked`);
      const locked = await app.request('PUT', `/api/v1/organizations/${organizationId}/settings`, { token: owner.token, body: { locks } });
      expect(locked.status, locked.text).toBe(200);
      const created = await app.request('POST', '/api/v1/workspaces', {
        token: owner.token,
        body: { organization_id: organizationId, name: 'Template', settings: largeSettings('a') },
      });
      expect(created.status, created.text.slice(0, 300)).toBe(201);
      templateId = created.body.id;
    });

    it('reading them resolves every leaf against every lock', async () => {
      const m = await measured('GET', `/api/v1/workspaces/${templateId}/settings`);
      expectBounded(m, 200);
      expect(Object.keys(m.res.body.effective.integrations)).toHaveLength(50);
      expect(m.res.body.locked).toHaveLength(100);
    });

    it('rewriting every leaf diffs the whole layer into one event', async () => {
      const m = await measured('PUT', `/api/v1/workspaces/${templateId}/settings`, largeSettings('b'));
      expectBounded(m, 200);
      const [event] = await app.query<{ n: number }>(
        `select count(*)::int as n from audit_events, jsonb_object_keys(changes) where target_id = $1 and action = 'workspace.settings_updated'`,
        [templateId],
      );
      expect(event!.n).toBe(2500);
    });

    it('1,000 copies of them: refused (413) as soon as the write budget is spent, nothing written', async () => {
      const before = await workspaceCount(app, organizationId);
      const body = {
        organization_id: organizationId,
        template_workspace_id: templateId,
        workspaces: Array.from({ length: 1000 }, (_, i) => ({ name: `Copy ${i}` })),
      };
      const m = await measured('POST', '/api/v1/workspaces/provision', body);
      expectBounded(m, 413);
      expectApiError(m.res, 413, 'PAYLOAD_TOO_LARGE');
      expect(await workspaceCount(app, organizationId)).toBe(before);
    });
  });
});
