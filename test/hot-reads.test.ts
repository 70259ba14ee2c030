import { randomUUID } from 'node:crypto';
import jwt from 'jsonwebtoken';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createTokenService } from '../src/auth/tokens';
import { signup, startReplica, startTestApp, TEST_SECRET, type SignedUp, type TestApp } from './helpers/app';
import { AUDIENCE, ISSUER, nowSeconds, signLocalToken } from './helpers/auth-helpers';
import { expectApiError, expectTrpcFailure } from './helpers/errors';

/**
 * The hot reads (get, settings, the lists) confirm the caller inside their own query, and
 * tokens are verified once and then remembered until `exp`. What must not change: the same
 * 401s, in the same order, on both faces; logout and account deletion take effect on the next
 * request, in every process; one round trip per read.
 */

let app: TestApp;
let replica: TestApp;
let owner: SignedUp;
let outsider: SignedUp;

beforeAll(async () => {
  app = await startTestApp();
  replica = await startReplica(app);
  [owner, outsider] = [await signup(app, 'Owner'), await signup(app, 'Outsider')];
});
afterAll(async () => {
  await replica?.close();
  await app?.close();
});

/** Every hot read, as REST and as tRPC calls, for a workspace and its organization. */
const reads = (s: SignedUp) => [
  { name: 'get', rest: `/api/v1/workspaces/${s.workspace.id}` },
  { name: 'settings', rest: `/api/v1/workspaces/${s.workspace.id}/settings` },
  { name: 'list', rest: '/api/v1/workspaces' },
  { name: 'list in an organization (query)', rest: `/api/v1/workspaces?organization_id=${s.organization.id}` },
  { name: 'list in an organization (path)', rest: `/api/v1/organizations/${s.organization.id}/workspaces` },
];
const trpcReads = (target: TestApp, token: string, s: SignedUp) => {
  const client = target.trpc(token);
  return [
    () => client.workspaces.get.query({ workspace_id: s.workspace.id }),
    () => client.workspaces.getSettings.query({ workspace_id: s.workspace.id }),
    () => client.workspaces.list.query({}),
    () => client.workspaces.list.query({ organization_id: s.organization.id }),
    () => client.workspaces.listInOrganization.query({ org_id: s.organization.id }),
  ];
};

async function expectAllRefused(target: TestApp, token: string, s: SignedUp, message: RegExp) {
  for (const read of reads(s)) {
    const res = await target.request('GET', read.rest, { token });
    expectApiError(res, 401, 'UNAUTHORIZED');
    expect(res.body.message, read.name).toMatch(message);
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
  }
  for (const call of trpcReads(target, token, s)) {
    const error = await expectTrpcFailure(call(), 401, 'UNAUTHORIZED');
    expect(error.message).toMatch(message);
  }
}

describe('the hot reads', () => {
  it('answer a member on both faces, and 404 to a non-member of the workspace or organization', async () => {
    for (const read of reads(owner)) expect((await app.request('GET', read.rest, { token: owner.token })).status, read.name).toBe(200);
    for (const call of trpcReads(app, owner.token, owner)) await call();
    for (const read of reads(owner).filter((r) => r.name !== 'list')) {
      expectApiError(await app.request('GET', read.rest, { token: outsider.token }), 404, 'NOT_FOUND');
    }
    const listed = await app.request('GET', '/api/v1/workspaces', { token: outsider.token });
    expect(listed.body.items.map((w: { id: string }) => w.id)).toEqual([outsider.workspace.id]);
  });

  it('refuse a token issued before a logout on the next request, in this process and in another', async () => {
    const account = await signup(app, 'Leaving');
    // Both processes have verified (and remembered) the token.
    for (const target of [app, replica]) {
      expect((await target.request('GET', reads(account)[0]!.rest, { token: account.token })).status).toBe(200);
    }
    expect((await replica.request('POST', '/api/v1/auth/logout', { token: account.token })).status).toBe(204);
    for (const target of [app, replica]) await expectAllRefused(target, account.token, account, /revoked/);
  });

  it('refuse the token of a deleted account on the next request, in this process and in another', async () => {
    const account = await signup(app, 'Deleted');
    for (const target of [app, replica]) {
      expect((await target.request('GET', reads(account)[1]!.rest, { token: account.token })).status).toBe(200);
    }
    expect((await app.request('DELETE', '/api/v1/auth/me', { token: account.token })).status).toBe(204);
    for (const target of [app, replica]) await expectAllRefused(target, account.token, account, /no longer exists/);
  });

  it('keep 401 before 400: a revoked token with an invalid input is refused as revoked', async () => {
    const revoked = signLocalToken({ sub: owner.user.id, tv: 7 });
    for (const path of ['/api/v1/workspaces/not-a-uuid', '/api/v1/workspaces/not-a-uuid/settings', '/api/v1/workspaces?limit=0']) {
      const res = await app.request('GET', path, { token: revoked });
      expectApiError(res, 401, 'UNAUTHORIZED');
      expect(res.body.message).toMatch(/revoked/);
    }
    await expectTrpcFailure(app.trpc(revoked).workspaces.get.query({ workspace_id: 'nope' }), 401, 'UNAUTHORIZED');
    // The owner's own token with the same input is the caller's 400.
    expectApiError(await app.request('GET', '/api/v1/workspaces/not-a-uuid', { token: owner.token }), 400, 'BAD_REQUEST');
  });

  it('keep 401 before 404: a revoked token naming an unknown workspace is 401', async () => {
    const revoked = signLocalToken({ sub: owner.user.id, tv: 7 });
    const res = await app.request('GET', `/api/v1/workspaces/${randomUUID()}`, { token: revoked });
    expectApiError(res, 401, 'UNAUTHORIZED');
    const gone = signLocalToken({ sub: randomUUID(), tv: 0 });
    expect((await app.request('GET', `/api/v1/workspaces/${owner.workspace.id}/settings`, { token: gone })).body.message).toMatch(
      /no longer exists/,
    );
  });

  it('cost one round trip (get, settings), two for the lists', async () => {
    const counts: Record<string, number> = {};
    for (const read of reads(owner)) {
      const seen: string[] = [];
      const stop = app.database.onQuery((query) => seen.push(query));
      const res = await app.request('GET', read.rest, { token: owner.token });
      stop();
      expect(res.status).toBe(200);
      counts[read.name] = seen.length;
    }
    expect(counts).toEqual({
      get: 1,
      settings: 1,
      list: 2,
      'list in an organization (query)': 2,
      'list in an organization (path)': 2,
    });
  });
});

describe('the cache of verified tokens', () => {
  const service = (entries?: number) =>
    createTokenService({
      secret: Buffer.from(TEST_SECRET),
      issuer: ISSUER,
      audience: AUDIENCE,
      ttlSeconds: 60,
      maxLifetimeSeconds: 86_400,
      ...(entries ? { verifiedTokenCacheEntries: entries } : {}),
    });

  it('checks a signature once per token, not once per call', () => {
    const tokens = service();
    const verify = vi.spyOn(jwt, 'verify');
    try {
      const token = signLocalToken({ sub: randomUUID() });
      for (let i = 0; i < 5; i++) expect(tokens.verify(token)).toMatchObject({ kind: 'local', tokenVersion: 0 });
      expect(verify).toHaveBeenCalledTimes(1);
    } finally {
      verify.mockRestore();
    }
  });

  it('is bounded: past its size the least recently used token is verified again', () => {
    const tokens = service(2);
    const verify = vi.spyOn(jwt, 'verify');
    try {
      const [a, b, c] = [0, 1, 2].map(() => signLocalToken({ sub: randomUUID() }));
      for (const token of [a!, b!, c!, a!]) tokens.verify(token);
      expect(verify).toHaveBeenCalledTimes(4);
      tokens.verify(a!);
      tokens.verify(c!);
      expect(verify).toHaveBeenCalledTimes(4);
    } finally {
      verify.mockRestore();
    }
  });

  it('honours exp: a remembered token is refused once it expires', () => {
    const tokens = service();
    const now = nowSeconds();
    const token = signLocalToken({ sub: randomUUID(), iat: now, exp: now + 2 });
    expect(tokens.verify(token).kind).toBe('local');
    vi.useFakeTimers({ now: (now + 3) * 1000, toFake: ['Date'] });
    try {
      expect(() => tokens.verify(token)).toThrow(/expired/);
    } finally {
      vi.useRealTimers();
    }
  });

  it('remembers nothing that failed', () => {
    const tokens = service();
    const verify = vi.spyOn(jwt, 'verify');
    const forged = jwt.sign({ sub: randomUUID(), tv: 0, iss: ISSUER, aud: AUDIENCE }, 'another-secret-of-at-least-32-bytes!!', {
      algorithm: 'HS256',
      expiresIn: 60,
    });
    try {
      for (let i = 0; i < 2; i++) expect(() => tokens.verify(forged)).toThrow(/invalid/);
      expect(verify).toHaveBeenCalledTimes(2);
    } finally {
      verify.mockRestore();
    }
  });
});
