import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signupMany, startTestApp, type SignedUp, type TestApp } from './helpers/app';
import { createTeam, rolesIn, tamperCursor, walkPages, type Role } from './helpers/org-helpers';
import { isoSql } from './helpers/sql';
import { UNKNOWN_UUID } from './helpers/values';
import { expectApiError, expectIssueAt, expectTrpcFailure } from './helpers/errors';

let app: TestApp;
let owner: SignedUp;
let admin: SignedUp;
let member: SignedUp;
let member2: SignedUp;
let outsider: SignedUp;
/** An account that starts outside every team, to be added. */
let newcomer: SignedUp;

beforeAll(async () => {
  app = await startTestApp();
  [owner, admin, member, member2, outsider, newcomer] = await signupMany(app, [
    'Owner',
    'Admin',
    'Member',
    'Second',
    'Outsider',
    'Newcomer',
  ]);
});
afterAll(async () => {
  await app?.close();
});

/** A fresh organization: owner, admin, member, member2. */
const team = () =>
  createTeam(app, owner, [
    [admin, 'admin'],
    [member, 'member'],
    [member2, 'member'],
  ]);

const membersPath = (org: string, userId?: string) => `/api/v1/organizations/${org}/members${userId ? `/${userId}` : ''}`;
type MemberBody = { user_id: string; email: string; name: string; role: Role; created_at: string };

describe('GET /organizations/{org_id}/members', () => {
  it('lists every member with email, name, role and created_at, as stored', async () => {
    const org = await team();
    const res = await app.request('GET', membersPath(org), { token: member.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.next_cursor).toBeNull();
    const stored = await app.query<MemberBody>(
      `select m.user_id, u.email, u.name, m.role, ${isoSql('m.created_at')} as created_at
         from memberships m join users u on u.id = m.user_id where m.organization_id = $1 order by m.created_at, m.user_id`,
      [org],
    );
    expect(res.body.items).toEqual(stored);
    expect(Object.fromEntries((res.body.items as MemberBody[]).map((m) => [m.user_id, m.role]))).toEqual({
      [owner.user.id]: 'owner',
      [admin.user.id]: 'admin',
      [member.user.id]: 'member',
      [member2.user.id]: 'member',
    });
    expect((res.body.items as MemberBody[]).find((m) => m.user_id === admin.user.id)).toEqual({
      user_id: admin.user.id,
      email: admin.user.email,
      name: 'Admin',
      role: 'admin',
      created_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
    });
  });

  it('pages with limit and next_cursor, returning every member exactly once', async () => {
    const org = await createTeam(app, owner, [
      [admin, 'admin'],
      [member, 'member'],
      [member2, 'member'],
      [outsider, 'member'],
    ]);
    const pages = await walkPages<MemberBody>((cursor) =>
      app.request('GET', `${membersPath(org)}?limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`, { token: member.token }),
    );
    expect(pages.map((p) => p.items.length)).toEqual([2, 2, 1]);
    const ids = pages.flatMap((p) => p.items.map((m) => m.user_id));
    expect(new Set(ids).size).toBe(5);
    expect(ids.sort()).toEqual(Object.keys(await rolesIn(app, org)).sort());

    const five = await app.request('GET', `${membersPath(org)}?limit=5`, { token: member.token });
    expect(five.status).toBe(200);
    expect(five.body.items).toHaveLength(5);
    expect(five.body.next_cursor).toBeNull();
  });

  it('answers 400 to a tampered cursor, a cursor of another organization and a bad limit', async () => {
    const org = await team();
    const other = await team();
    const first = await app.request('GET', `${membersPath(org)}?limit=1`, { token: member.token });
    const cursor = first.body.next_cursor as string;
    expect(typeof cursor).toBe('string');
    expectApiError(
      await app.request('GET', `${membersPath(org)}?limit=1&cursor=${encodeURIComponent(tamperCursor(cursor))}`, { token: member.token }),
      400,
      'BAD_REQUEST',
    );
    expectApiError(
      await app.request('GET', `${membersPath(other)}?limit=1&cursor=${encodeURIComponent(cursor)}`, { token: member.token }),
      400,
      'BAD_REQUEST',
    );
    for (const limit of ['0', '101', 'abc']) {
      expectIssueAt(await app.request('GET', `${membersPath(org)}?limit=${limit}`, { token: member.token }), 'limit');
    }
  });
});

describe('GET /organizations/{org_id}/members/{user_id}', () => {
  it('answers a member with one member', async () => {
    const org = await team();
    const res = await app.request('GET', membersPath(org, owner.user.id), { token: member2.token });
    expect(res.status, res.text).toBe(200);
    const [stored] = await app.query<{ created_at: string }>(
      `select ${isoSql('created_at')} as created_at from memberships where organization_id = $1 and user_id = $2`,
      [org, owner.user.id],
    );
    expect(res.body).toEqual({
      user_id: owner.user.id,
      email: owner.user.email,
      name: 'Owner',
      role: 'owner',
      created_at: stored!.created_at,
    });
  });

  it('answers 404 for a user who is not a member, and 400 for an id that is not a UUID', async () => {
    const org = await team();
    expectApiError(await app.request('GET', membersPath(org, outsider.user.id), { token: member.token }), 404, 'NOT_FOUND');
    expectApiError(await app.request('GET', membersPath(org, UNKNOWN_UUID), { token: member.token }), 404, 'NOT_FOUND');
    expectIssueAt(await app.request('GET', membersPath(org, 'nobody'), { token: member.token }), 'user_id');
  });
});

describe('POST /organizations/{org_id}/members (retired: members join by invitation)', () => {
  /** The account's memberships (in any organization) and the invitations to its email: what a retired add must not make. */
  const traceOf = async (account: SignedUp) => ({
    memberships: await app.query('select organization_id, role from memberships where user_id = $1 order by organization_id', [
      account.user.id,
    ]),
    invitations: await app.query<{ n: number }>('select count(*)::int as n from invitations where lower(email) = lower($1)', [
      account.user.email,
    ]),
  });

  it('answers 405 METHOD_NOT_SUPPORTED with Allow: GET to anyone, and adds no member', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    const newcomerBefore = await traceOf(newcomer);
    const body = { email: newcomer.user.email, role: 'member' };
    for (const [who, token] of [
      ['an owner', owner.token],
      ['an admin', admin.token],
      ['a member', member.token],
      ['a non-member', outsider.token],
      ['no token', undefined],
    ] as const) {
      for (const target of [org, UNKNOWN_UUID]) {
        const res = await app.request('POST', membersPath(target), { token, body });
        expectApiError(res, 405, 'METHOD_NOT_SUPPORTED');
        expect(res.headers.get('allow')?.split(/,\s*/).sort(), `${who}: ${res.text}`).toEqual(['GET']);
      }
    }
    expect(await rolesIn(app, org)).toEqual(before);
    expect(await traceOf(newcomer)).toEqual(newcomerBefore);
    expect(await rolesIn(app, org)).not.toHaveProperty(newcomer.user.id);
  });

  it('answers 405 whatever the body: it is no longer an operation that validates one', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    for (const body of [{ email: newcomer.user.email, role: 'owner' }, { user_id: newcomer.user.id, role: 'member' }, {}, undefined]) {
      const res = await app.request('POST', membersPath(org), { token: owner.token, body });
      expectApiError(res, 405, 'METHOD_NOT_SUPPORTED');
      expect(res.headers.get('allow')).toBe('GET');
    }
    expect(await rolesIn(app, org)).toEqual(before);
    expect(await rolesIn(app, org)).not.toHaveProperty(newcomer.user.id);
  });
});

describe('PUT /organizations/{org_id}/members/{user_id}', () => {
  const setRole = (token: string, org: string, userId: string, role: string) =>
    app.request('PUT', membersPath(org, userId), { token, body: { role } });

  it('lets an admin promote a member to admin and demote an admin to member', async () => {
    const org = await team();
    const promoted = await setRole(admin.token, org, member.user.id, 'admin');
    expect(promoted.status, promoted.text).toBe(200);
    expect(promoted.body).toMatchObject({ user_id: member.user.id, email: member.user.email, role: 'admin' });
    expect((await rolesIn(app, org))[member.user.id]).toBe('admin');

    const demoted = await setRole(admin.token, org, member.user.id, 'member');
    expect(demoted.status, demoted.text).toBe(200);
    expect(demoted.body.role).toBe('member');
    expect((await rolesIn(app, org))[member.user.id]).toBe('member');

    // Created_at is the membership's, not the change's.
    const fetched = await app.request('GET', membersPath(org, member.user.id), { token: member.token });
    expect(fetched.body).toEqual(demoted.body);
  });

  it('answers 403 to an admin granting or removing the owner role, and changes nothing', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    expectApiError(await setRole(admin.token, org, member.user.id, 'owner'), 403, 'FORBIDDEN');
    expectApiError(await setRole(admin.token, org, admin.user.id, 'owner'), 403, 'FORBIDDEN');
    expectApiError(await setRole(admin.token, org, owner.user.id, 'admin'), 403, 'FORBIDDEN');
    expectApiError(await setRole(admin.token, org, owner.user.id, 'member'), 403, 'FORBIDDEN');
    expect(await rolesIn(app, org)).toEqual(before);
  });

  it('lets an owner grant the owner role and demote another owner', async () => {
    const org = await team();
    const granted = await setRole(owner.token, org, admin.user.id, 'owner');
    expect(granted.status, granted.text).toBe(200);
    expect(granted.body.role).toBe('owner');
    expect((await rolesIn(app, org))[admin.user.id]).toBe('owner');

    // The new owner demotes the first; one owner remains.
    const demoted = await setRole(admin.token, org, owner.user.id, 'member');
    expect(demoted.status, demoted.text).toBe(200);
    expect(await rolesIn(app, org)).toMatchObject({ [owner.user.id]: 'member', [admin.user.id]: 'owner' });
  });

  it('answers 409 to demoting the last owner (even by itself), and changes nothing', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    const res = await setRole(owner.token, org, owner.user.id, 'admin');
    expectApiError(res, 409, 'CONFLICT');
    expect(res.body.message).toMatch(/owner/);
    expect(await rolesIn(app, org)).toEqual(before);
  });

  it('answers 200 and changes nothing when the role is already the one asked for', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    const res = await setRole(owner.token, org, owner.user.id, 'owner');
    expect(res.status).toBe(200);
    expect(res.body.role).toBe('owner');
    expect(await rolesIn(app, org)).toEqual(before);
  });

  it('answers 403 to a member changing a role, even its own', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    expectApiError(await setRole(member.token, org, member2.user.id, 'admin'), 403, 'FORBIDDEN');
    expectApiError(await setRole(member.token, org, member.user.id, 'admin'), 403, 'FORBIDDEN');
    expect(await rolesIn(app, org)).toEqual(before);
  });

  it('answers 404 for a user who is not a member, and 400 to a bad role or an unknown field', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    expectApiError(await setRole(owner.token, org, outsider.user.id, 'member'), 404, 'NOT_FOUND');
    expectIssueAt(await setRole(owner.token, org, member.user.id, 'boss'), 'role');
    expectIssueAt(await app.request('PUT', membersPath(org, member.user.id), { token: owner.token, body: {} }), 'role');
    expectIssueAt(
      await app.request('PUT', membersPath(org, member.user.id), {
        token: owner.token,
        body: { role: 'admin', created_at: '2020-01-01T00:00:00.000Z' },
      }),
      'created_at',
    );
    expect(await rolesIn(app, org)).toEqual(before);
  });
});

describe('DELETE /organizations/{org_id}/members/{user_id}', () => {
  const remove = (token: string, org: string, userId: string) => app.request('DELETE', membersPath(org, userId), { token });

  it('lets an admin remove a member: 204, no body, the row is gone', async () => {
    const org = await team();
    const res = await remove(admin.token, org, member.user.id);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe('');
    const roles = await rolesIn(app, org);
    expect(roles).not.toHaveProperty(member.user.id);
    expect(Object.keys(roles)).toHaveLength(3);
    expectApiError(await app.request('GET', membersPath(org, member.user.id), { token: owner.token }), 404, 'NOT_FOUND');
    expectApiError(await app.request('GET', `/api/v1/organizations/${org}`, { token: member.token }), 404, 'NOT_FOUND');
  });

  it('answers 403 to a member removing another member, and removes nothing', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    expectApiError(await remove(member.token, org, member2.user.id), 403, 'FORBIDDEN');
    expectApiError(await remove(member.token, org, owner.user.id), 403, 'FORBIDDEN');
    expect(await rolesIn(app, org)).toEqual(before);
  });

  it('lets a member leave (remove itself)', async () => {
    const org = await team();
    const res = await remove(member.token, org, member.user.id);
    expect(res.status, res.text).toBe(204);
    expect(await rolesIn(app, org)).not.toHaveProperty(member.user.id);
    expectApiError(await app.request('GET', membersPath(org), { token: member.token }), 404, 'NOT_FOUND');
  });

  it('lets an admin leave', async () => {
    const org = await team();
    expect((await remove(admin.token, org, admin.user.id)).status).toBe(204);
    expect(await rolesIn(app, org)).not.toHaveProperty(admin.user.id);
  });

  it('answers 409 to the last owner leaving, and removes nothing', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    const res = await remove(owner.token, org, owner.user.id);
    expectApiError(res, 409, 'CONFLICT');
    expect(res.body.message).toMatch(/owner/);
    expect(await rolesIn(app, org)).toEqual(before);
  });

  it('lets an owner leave while another owner remains', async () => {
    const org = await createTeam(app, owner, [[newcomer, 'owner']]);
    expect((await remove(owner.token, org, owner.user.id)).status).toBe(204);
    expect(await rolesIn(app, org)).toEqual({ [newcomer.user.id]: 'owner' });
  });

  it('answers 403 to an admin removing an owner, and removes nothing', async () => {
    const org = await createTeam(app, owner, [
      [newcomer, 'owner'],
      [admin, 'admin'],
    ]);
    const before = await rolesIn(app, org);
    expectApiError(await remove(admin.token, org, newcomer.user.id), 403, 'FORBIDDEN');
    expectApiError(await remove(admin.token, org, owner.user.id), 403, 'FORBIDDEN');
    expect(await rolesIn(app, org)).toEqual(before);
  });

  it('lets an owner remove another owner', async () => {
    const org = await createTeam(app, owner, [[newcomer, 'owner']]);
    expect((await remove(owner.token, org, newcomer.user.id)).status).toBe(204);
    expect(await rolesIn(app, org)).toEqual({ [owner.user.id]: 'owner' });
  });

  it('lets an admin remove another admin', async () => {
    const org = await createTeam(app, owner, [
      [admin, 'admin'],
      [newcomer, 'admin'],
    ]);
    expect((await remove(admin.token, org, newcomer.user.id)).status).toBe(204);
    expect(await rolesIn(app, org)).not.toHaveProperty(newcomer.user.id);
  });

  it('answers 404 for a user who is not a member', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    expectApiError(await remove(owner.token, org, outsider.user.id), 404, 'NOT_FOUND');
    expect(await rolesIn(app, org)).toEqual(before);
  });
});

describe('a non-member gets 404 for every member operation', () => {
  it.each([
    ['list', 'GET', '', undefined],
    ['get', 'GET', 'member', undefined],
    ['change role', 'PUT', 'member', { role: 'admin' }],
    ['remove', 'DELETE', 'member', undefined],
  ] as const)('%s', async (_name, method, target, body) => {
    const org = await team();
    const before = await rolesIn(app, org);
    const path = membersPath(org, target ? member.user.id : undefined);
    const hidden = await app.request(method, path, { token: outsider.token, body });
    expectApiError(hidden, 404, 'NOT_FOUND');
    // Exactly as for an organization that does not exist.
    const missing = await app.request(method, path.replace(org, UNKNOWN_UUID), { token: outsider.token, body });
    expectApiError(missing, 404, 'NOT_FOUND');
    expect(hidden.body).toEqual(missing.body);
    expect(await rolesIn(app, org)).toEqual(before);
  });
});

describe('members over tRPC', () => {
  it('lists, and reports rule violations with data.code and data.httpStatus', async () => {
    const org = await team();
    const client = app.trpc(admin.token);
    const page = await client.organizations.listMembers.query({ org_id: org, limit: 2 });
    expect(page.items).toHaveLength(2);
    expect(typeof page.next_cursor).toBe('string');
    const rest = await app.request('GET', `${membersPath(org)}?limit=2`, { token: admin.token });
    expect(page).toEqual(rest.body);

    const before = await rolesIn(app, org);
    await expectTrpcFailure(
      client.organizations.updateMember.mutate({ org_id: org, user_id: owner.user.id, role: 'member' }),
      403,
      'FORBIDDEN',
    );
    await expectTrpcFailure(
      app.trpc(owner.token).organizations.removeMember.mutate({ org_id: org, user_id: owner.user.id }),
      409,
      'CONFLICT',
    );
    await expectTrpcFailure(
      app.trpc(outsider.token).organizations.getMember.query({ org_id: org, user_id: owner.user.id }),
      404,
      'NOT_FOUND',
    );
    const invalid = await expectTrpcFailure(
      client.organizations.updateMember.mutate({ org_id: org, user_id: member.user.id, role: 'boss' as never }),
      400,
      'BAD_REQUEST',
    );
    expect(invalid.data?.issues?.map((i) => i.path)).toEqual(['role']);
    expect(await rolesIn(app, org)).toEqual(before);
  });

  it('has no organizations.addMember: the router lacks it, and the path answers 404 NOT_FOUND in the tRPC error envelope', async () => {
    const org = await team();
    const before = await rolesIn(app, org);
    const client = app.trpc(owner.token);
    // The typed client knows no such procedure (this line fails the type check if it comes back)…
    // @ts-expect-error organizations.addMember is retired: members join by invitation
    const retired = client.organizations.addMember as { mutate(input: unknown): Promise<unknown> };
    // …and a client that calls it anyway is told there is none.
    const error = await expectTrpcFailure(retired.mutate({ org_id: org, email: newcomer.user.email, role: 'member' }), 404, 'NOT_FOUND');
    expect(error.data?.path).toBe('organizations.addMember');

    const input = { org_id: org, email: newcomer.user.email, role: 'member' };
    for (const token of [owner.token, outsider.token, undefined]) {
      const res = await app.request('POST', '/trpc/organizations.addMember', { token, body: input });
      expect(res.status, res.text).toBe(404);
      expect(res.body).toEqual({
        error: {
          code: -32004,
          message: expect.stringContaining('organizations.addMember'),
          data: { code: 'NOT_FOUND', httpStatus: 404, path: 'organizations.addMember' },
        },
      });
    }
    expect(await rolesIn(app, org)).toEqual(before);
    expect(await rolesIn(app, org)).not.toHaveProperty(newcomer.user.id);
    // Nor did it leave an invitation behind (the team's members joined by theirs).
    const invitations = await app.query('select id from invitations where organization_id = $1 and lower(email) = lower($2)', [
      org,
      newcomer.user.email,
    ]);
    expect(invitations).toEqual([]);
  });
});

describe('the last owner under concurrency (PostgreSQL)', () => {
  const owners = async (org: string) => Object.values(await rolesIn(app, org)).filter((r) => r === 'owner').length;

  it.runIf(process.env.DATABASE_URL)(
    'two owners demoting each other at once: the first wins, the second is no longer an owner (403)',
    async () => {
      expect(app.engine).toBe('postgres');
      for (let round = 0; round < 5; round++) {
        const org = await createTeam(app, owner, [[newcomer, 'owner']]);
        const [a, b] = await Promise.all([
          app.request('PUT', membersPath(org, newcomer.user.id), { token: owner.token, body: { role: 'admin' } }),
          app.request('PUT', membersPath(org, owner.user.id), { token: newcomer.token, body: { role: 'admin' } }),
        ]);
        // Member changes of one organization run one after another: the second sees itself demoted.
        expect([a.status, b.status].sort(), `${a.text} ${b.text}`).toEqual([200, 403]);
        expectApiError(a.status === 403 ? a : b, 403, 'FORBIDDEN');
        expect(await owners(org)).toBe(1);
        const roles = await rolesIn(app, org);
        const winner = a.status === 200 ? owner : newcomer;
        const loser = a.status === 200 ? newcomer : owner;
        expect(roles).toEqual({ [winner.user.id]: 'owner', [loser.user.id]: 'admin' });
      }
    },
  );

  it.runIf(process.env.DATABASE_URL)('two owners leaving at once: exactly one succeeds, one owner remains', async () => {
    expect(app.engine).toBe('postgres');
    for (let round = 0; round < 5; round++) {
      const org = await createTeam(app, owner, [[newcomer, 'owner']]);
      const [a, b] = await Promise.all([
        app.request('DELETE', membersPath(org, owner.user.id), { token: owner.token }),
        app.request('DELETE', membersPath(org, newcomer.user.id), { token: newcomer.token }),
      ]);
      expect([a.status, b.status].sort(), `${a.text} ${b.text}`).toEqual([204, 409]);
      const stayed = a.status === 409 ? owner : newcomer;
      expect(await rolesIn(app, org)).toEqual({ [stayed.user.id]: 'owner' });
    }
  });

  it.runIf(process.env.DATABASE_URL)(
    'an owner leaving while demoting the other owner: exactly one succeeds, one owner remains',
    async () => {
      expect(app.engine).toBe('postgres');
      for (let round = 0; round < 5; round++) {
        const org = await createTeam(app, owner, [[newcomer, 'owner']]);
        const [left, demoted] = await Promise.all([
          app.request('DELETE', membersPath(org, owner.user.id), { token: owner.token }),
          app.request('PUT', membersPath(org, newcomer.user.id), { token: owner.token, body: { role: 'member' } }),
        ]);
        // The loser sees either the last-owner conflict or (having already left) no organization.
        expect(
          [left.status, demoted.status].filter((s) => s < 300),
          `${left.text} ${demoted.text}`,
        ).toHaveLength(1);
        expect([left.status, demoted.status].every((s) => [200, 204, 404, 409].includes(s))).toBe(true);
        expect(await owners(org)).toBe(1);
      }
    },
  );
});
