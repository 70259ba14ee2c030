import { generateKeyPairSync } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPostgres } from '../src/db/client';
import { errorForLog } from '../src/trpc/errors';
import { serveApp, startTestApp, type TestApp } from './helpers/app';
import { AUDIENCE, CLOCK_SKEW_SECONDS, nowSeconds, signToken, untilSecond } from './helpers/auth-helpers';
import { expectApiError, expectTrpcFailure } from './helpers/errors';
import { createWorkspace, defaultWorkspaceIds, teamOf, workspaceRow, type Team } from './helpers/workspace-helpers';

/**
 * Concurrency and input edges across the API: concurrent default moves, replays of deleted
 * resources, creates racing their organization's deletion, a database that does not answer
 * in time, bodies on body-less operations, query integers, the logging of unexpected
 * database errors, and external identities after account deletion.
 */
let app: TestApp;
let team: Team;
const onPostgres = Boolean(process.env.DATABASE_URL);

beforeAll(async () => {
  app = await startTestApp();
  team = await teamOf(app);
});
afterAll(async () => {
  await app?.close();
});

describe('PUT /api/v1/workspaces/{id} {is_default: true} under concurrency', () => {
  it.runIf(onPostgres)('moves the flag once per request, one after another: all 200, exactly one default', async () => {
    const org = team.organizationId;
    const candidates = await Promise.all([1, 2, 3, 4].map(() => createWorkspace(app, team.owner.token, org)));
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all(
        candidates.map((ws) => app.request('PUT', `/api/v1/workspaces/${ws.id}`, { token: team.admin.token, body: { is_default: true } })),
      );
      expect(
        answers.map((a) => a.status),
        answers.map((a) => a.text).join('\n'),
      ).toEqual([200, 200, 200, 200]);
      expect(await defaultWorkspaceIds(app, org)).toHaveLength(1);
    }
    // Move it back so other tests find the organization's original default.
    const back = await app.request('PUT', `/api/v1/workspaces/${team.defaultWorkspaceId}`, {
      token: team.owner.token,
      body: { is_default: true },
    });
    expect(back.status, back.text).toBe(200);
    expect(await defaultWorkspaceIds(app, org)).toEqual([team.defaultWorkspaceId]);
  });
});

/**
 * Every write to a workspace locks its organization's row before the workspace's (writing the
 * audit event takes a key-share lock on the organization through its foreign key): writes
 * racing a default move, which locks the organization first, wait instead of deadlocking.
 */
describe('workspace writes racing a default move (lock order: organization, then workspace)', () => {
  const put = (id: string, body: Record<string, unknown>) =>
    app.request('PUT', `/api/v1/workspaces/${id}`, { token: team.admin.token, body });
  const post = (id: string, action: 'archive' | 'restore') =>
    app.request('POST', `/api/v1/workspaces/${id}/${action}`, { token: team.admin.token });
  const statuses = (answers: Array<{ status: number }>) => answers.map((a) => a.status).sort();

  it.runIf(onPostgres)('renames the default while the flag moves away from it: both 200, every round', async () => {
    const org = team.organizationId;
    let current = team.defaultWorkspaceId;
    for (let round = 0; round < 10; round++) {
      const next = (await createWorkspace(app, team.owner.token, org)).id;
      const answers = await Promise.all([put(current, { description: `round ${round}` }), put(next, { is_default: true })]);
      expect(statuses(answers), answers.map((a) => a.text).join('\n')).toEqual([200, 200]);
      expect(await defaultWorkspaceIds(app, org)).toEqual([next]);
      current = next;
    }
    expect((await put(team.defaultWorkspaceId, { is_default: true })).status).toBe(200);
  });

  it.runIf(onPostgres)(
    'archives or deletes a workspace while the flag moves onto it: one wins, the other is 409 or 404, never 500',
    async () => {
      const org = team.organizationId;
      for (let round = 0; round < 8; round++) {
        const target = (await createWorkspace(app, team.owner.token, org)).id;
        const racing =
          round % 2 === 0 ? post(target, 'archive') : app.request('DELETE', `/api/v1/workspaces/${target}`, { token: team.admin.token });
        const answers = await Promise.all([racing, put(target, { is_default: true })]);
        const [write, move] = answers;
        expect(
          answers.every((a) => a.status < 500),
          answers.map((a) => `${a.status} ${a.text}`).join('\n'),
        ).toBe(true);
        const [row] = await app.query<{ is_default: boolean; archived: boolean }>(
          'select is_default, archived_at is not null as archived from workspaces where id = $1',
          [target],
        );
        if (move.status === 200) {
          // The move went first: the default cannot be archived or deleted.
          expectApiError(write, 409, 'CONFLICT');
          expect(row).toEqual({ is_default: true, archived: false });
          expect((await put(team.defaultWorkspaceId, { is_default: true })).status).toBe(200);
        } else {
          // The archive (or delete) went first: the move finds it archived (409) or gone (404).
          expect(write.status).toBe(round % 2 === 0 ? 200 : 204);
          expect(move.status).toBe(round % 2 === 0 ? 409 : 404);
          expect(row ?? null).toEqual(round % 2 === 0 ? { is_default: false, archived: true } : null);
        }
        expect(await defaultWorkspaceIds(app, org)).toHaveLength(1);
      }
      expect(await defaultWorkspaceIds(app, org)).toEqual([team.defaultWorkspaceId]);
    },
  );
});

describe('Idempotency-Key replay of something deleted since', () => {
  it('answers 404 to a replayed create whose workspace was deleted, and creates nothing', async () => {
    const body = { organization_id: team.organizationId, name: 'Replayed after delete' };
    const headers = { 'Idempotency-Key': `replay-deleted-${Date.now()}` };
    const first = await app.request('POST', '/api/v1/workspaces', { token: team.admin.token, body, headers });
    expect(first.status, first.text).toBe(201);
    expect((await app.request('DELETE', `/api/v1/workspaces/${first.body.id}`, { token: team.admin.token })).status).toBe(204);

    const replay = await app.request('POST', '/api/v1/workspaces', { token: team.admin.token, body, headers });
    expectApiError(replay, 404, 'NOT_FOUND');
    const rows = await app.query<{ n: number }>('select count(*)::int as n from workspaces where organization_id = $1 and name = $2', [
      team.organizationId,
      'Replayed after delete',
    ]);
    expect(rows[0]!.n).toBe(0);
  });

  it('answers 404 to a replayed clone whose copy was deleted', async () => {
    const source = await createWorkspace(app, team.owner.token, team.organizationId);
    const headers = { 'Idempotency-Key': `clone-deleted-${Date.now()}` };
    const path = `/api/v1/workspaces/${source.id}/clone`;
    const first = await app.request('POST', path, { token: team.admin.token, body: { name: 'Clone to delete' }, headers });
    expect(first.status, first.text).toBe(201);
    expect((await app.request('DELETE', `/api/v1/workspaces/${first.body.id}`, { token: team.admin.token })).status).toBe(204);
    expectApiError(
      await app.request('POST', path, { token: team.admin.token, body: { name: 'Clone to delete' }, headers }),
      404,
      'NOT_FOUND',
    );
    expect(await workspaceRow(app, first.body.id)).toBeNull();
  });
});

describe('a create racing the deletion of its organization', () => {
  it.runIf(onPostgres)('answers 404 (not 500) when the organization goes while the create waits', async () => {
    const org = await app.request('POST', '/api/v1/organizations', { token: team.owner.token, body: { name: `Doomed ${Date.now()}` } });
    expect(org.status, org.text).toBe(201);
    const sql = postgres(app.config.DATABASE_URL!, { max: 1, onnotice: () => {} });
    try {
      const reserved = await sql.reserve();
      await reserved`begin`;
      await reserved`delete from organizations where id = ${org.body.id}`;
      // The create reads the (still committed) membership, then waits on the organization row.
      const create = app.request('POST', '/api/v1/workspaces', {
        token: team.owner.token,
        body: { organization_id: org.body.id, name: 'Too late' },
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      await reserved`commit`;
      reserved.release();
      const res = await create;
      expectApiError(res, 404, 'NOT_FOUND');
    } finally {
      await sql.end();
    }
    const rows = await app.query<{ n: number }>('select count(*)::int as n from workspaces where organization_id = $1', [org.body.id]);
    expect(rows[0]!.n).toBe(0);
  });
});

describe('a database that does not answer in time', () => {
  it.runIf(onPostgres)('answers 503 with Retry-After when a statement runs past the statement timeout', async () => {
    // A second server on the same database, with a short timeout so the test is quick.
    const database = openPostgres({ url: app.config.DATABASE_URL!, prepare: true, max: 2, statementTimeoutMs: 300 });
    const short = await serveApp(app.config, database, () => database.close());
    const sql = postgres(app.config.DATABASE_URL!, { max: 1, onnotice: () => {} });
    try {
      const reserved = await sql.reserve();
      await reserved`begin`;
      await reserved`lock table users in access exclusive mode`;
      const res = await fetch(`${short.url}/api/v1/auth/me`, { headers: { authorization: `Bearer ${team.member.token}` } });
      await reserved`rollback`;
      reserved.release();
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('1');
      expect(await res.json()).toEqual({ code: 'SERVICE_UNAVAILABLE', message: expect.any(String) });
    } finally {
      await sql.end();
      await short.close();
    }
  });
});

describe('bodies on operations that take none', () => {
  it('answers 400 to POST /auth/logout with fields, and the token keeps working', async () => {
    const res = await app.request('POST', '/api/v1/auth/logout', { token: team.member.token, body: { everywhere: true } });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect((await app.request('GET', '/api/v1/auth/me', { token: team.member.token })).status).toBe(200);
  });

  it('answers 400 to DELETE with a JSON body, and deletes nothing', async () => {
    const ws = await createWorkspace(app, team.owner.token, team.organizationId);
    const res = await app.request('DELETE', `/api/v1/workspaces/${ws.id}`, { token: team.owner.token, body: { expected_version: 1 } });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(await workspaceRow(app, ws.id)).not.toBeNull();
  });

  it('accepts an empty object where no body is expected', async () => {
    const ws = await createWorkspace(app, team.owner.token, team.organizationId);
    const res = await app.request('DELETE', `/api/v1/workspaces/${ws.id}`, { token: team.owner.token, body: {} });
    expect(res.status, res.text).toBe(204);
  });
});

describe('query integers', () => {
  it.each(['0x1', '1e0', 'true', ' 1', '1.0'])('answers 400 to ?expected_version=%s and deletes nothing', async (value) => {
    const ws = await createWorkspace(app, team.owner.token, team.organizationId);
    const res = await app.request('DELETE', `/api/v1/workspaces/${ws.id}?expected_version=${encodeURIComponent(value)}`, {
      token: team.owner.token,
    });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(await workspaceRow(app, ws.id)).not.toBeNull();
  });

  it('takes an integer or decimal digits over tRPC too, never true or "0x1"', async () => {
    const client = app.trpc(team.owner.token);
    const ws = await createWorkspace(app, team.owner.token, team.organizationId);
    await expectTrpcFailure(client.workspaces.delete.mutate({ workspace_id: ws.id, expected_version: true as never }), 400, 'BAD_REQUEST');
    await expectTrpcFailure(client.workspaces.delete.mutate({ workspace_id: ws.id, expected_version: '0x1' }), 400, 'BAD_REQUEST');
    await expectTrpcFailure(client.workspaces.delete.mutate({ workspace_id: ws.id, expected_version: 1.5 }), 400, 'BAD_REQUEST');
    await expectTrpcFailure(client.workspaces.list.query({ limit: true as never }), 400, 'BAD_REQUEST');
    expect(await workspaceRow(app, ws.id)).not.toBeNull();
    await client.workspaces.delete.mutate({ workspace_id: ws.id, expected_version: 1 });
    expect(await workspaceRow(app, ws.id)).toBeNull();
  });
});

describe('logging an unexpected database error', () => {
  it('keeps query parameters out, even when they span lines', () => {
    const driver = Object.assign(new Error('duplicate key value violates unique constraint'), { code: '23505' });
    const wrapped = new Error('Failed query: insert into "workspaces" ("name") values ($1)\nparams: first line\nsecret second line', {
      cause: driver,
    });
    const logged = JSON.stringify(errorForLog(wrapped));
    expect(logged).toContain('Failed query: insert into');
    expect(logged).toContain('23505');
    expect(logged).not.toContain('first line');
    expect(logged).not.toContain('secret second line');
  });
});

describe('an external identity whose account was deleted', () => {
  const EXTERNAL_ISSUER = 'https://idp.example.test/';
  const keys = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  let external: TestApp;

  beforeAll(async () => {
    external = await startTestApp({
      JWT_PUBLIC_KEY: keys.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      JWT_EXTERNAL_ISSUER: EXTERNAL_ISSUER,
    });
  });
  afterAll(async () => {
    await external?.close();
  });

  const idpToken = (iat: number) =>
    signToken(
      { iss: EXTERNAL_ISSUER, aud: AUDIENCE, sub: 'idp-user-42', email: 'idp42@example.com', name: 'Idp User', iat, exp: iat + 3600 },
      keys.privateKey,
      'ES256',
    );

  it('refuses the tokens issued before the deletion, and a later one is a first sight again', async () => {
    const before = idpToken(nowSeconds() - 5);
    const me = await external.request('GET', '/api/v1/auth/me', { token: before });
    expect(me.status, me.text).toBe(200);
    const firstId = me.body.user.id;

    expect((await external.request('DELETE', '/api/v1/auth/me', { token: before })).status).toBe(204);
    expectApiError(await external.request('GET', '/api/v1/auth/me', { token: before }), 401, 'UNAUTHORIZED');
    const users = await external.query<{ n: number }>("select count(*)::int as n from users where external_subject = 'idp-user-42'");
    expect(users[0]!.n).toBe(0);

    // Later means past the deletion and the 60 s an iat may be ahead of this clock.
    const [revoked] = await external.query<{ revoked_ms: number }>(
      "select (extract(epoch from revoked_at) * 1000)::float8 as revoked_ms from revoked_external_identities where subject = 'idp-user-42'",
    );
    const second = Math.floor(revoked!.revoked_ms / 1000);
    expectApiError(await external.request('GET', '/api/v1/auth/me', { token: idpToken(second + CLOCK_SKEW_SECONDS) }), 401, 'UNAUTHORIZED');
    await untilSecond(second + 1);
    const later = idpToken(second + CLOCK_SKEW_SECONDS + 1);
    const again = await external.request('GET', '/api/v1/auth/me', { token: later });
    expect(again.status, again.text).toBe(200);
    expect(again.body.user.id).not.toBe(firstId);
  });
});
