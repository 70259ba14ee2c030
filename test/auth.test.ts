import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { addMember, signup, signupMany, startTestApp, uniqueEmail, type SignedUp, type TestApp } from './helpers/app';
import { AUDIENCE, ISSUER, byOrganizationId, decodeClaims, membershipRows, userRow } from './helpers/auth-helpers';
import { tableCounts } from './helpers/sql';
import { ISO_MS_PATTERN, UUID_PATTERN } from './helpers/values';
import { expectApiError, expectTrpcFailure } from './helpers/errors';

let app: TestApp;
beforeAll(async () => {
  // The auth rate limit is per client IP, and every request here comes from 127.0.0.1.
  app = await startTestApp({ AUTH_RATE_LIMIT_PER_MINUTE: '0' });
});
afterAll(async () => {
  await app?.close();
});

const PASSWORD = 'correct horse battery';
const SCRYPT_HASH = /^scrypt\$\d+\$\d+\$\d+\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/;

const signupRequest = (body: Record<string, unknown>) => app.request('POST', '/api/v1/auth/signup', { body });
const loginRequest = (body: Record<string, unknown>) => app.request('POST', '/api/v1/auth/login', { body });
const meRequest = (token: string) => app.request('GET', '/api/v1/auth/me', { token });

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
};

describe('POST /auth/signup', () => {
  it('answers 201 with a token, the user, an organization it owns and its default workspace', async () => {
    const before = await tableCounts(app);
    const email = uniqueEmail('Ada');
    const res = await signupRequest({ email, password: PASSWORD, name: '  Ada Lovelace  ' });

    expect(res.status, res.text).toBe(201);
    expect(res.headers.get('location')).toBeNull();
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'organization', 'token_type', 'user', 'workspace']);
    expect(res.body.token_type).toBe('Bearer');
    expect(res.body.expires_in).toBe(3600);
    const { user, organization, workspace } = res.body;
    expect(user).toEqual({
      id: expect.stringMatching(UUID_PATTERN),
      email,
      name: 'Ada Lovelace',
      created_at: expect.stringMatching(ISO_MS_PATTERN),
    });
    expect(organization).toEqual({
      id: expect.stringMatching(UUID_PATTERN),
      name: "Ada Lovelace's organization",
      slug: expect.stringMatching(/^ada-lovelace[a-z0-9-]*$/),
      role: 'owner',
      created_at: expect.stringMatching(ISO_MS_PATTERN),
      updated_at: expect.stringMatching(ISO_MS_PATTERN),
    });
    expect(workspace).toEqual({
      id: expect.stringMatching(UUID_PATTERN),
      organization_id: organization.id,
      name: 'Default',
      slug: 'default',
      description: null,
      metadata: {},
      is_default: true,
      cloned_from_id: null,
      archived_at: null,
      version: 1,
      created_at: expect.stringMatching(ISO_MS_PATTERN),
      updated_at: expect.stringMatching(ISO_MS_PATTERN),
    });

    const claims = decodeClaims(res.body.access_token);
    expect(claims).toMatchObject({ sub: user.id, iss: ISSUER, aud: AUDIENCE, tv: 0 });
    expect(claims.exp! - claims.iat!).toBe(3600);

    // Exactly one of each, and they belong together.
    expect(await tableCounts(app)).toEqual({
      users: before.users + 1,
      organizations: before.organizations + 1,
      memberships: before.memberships + 1,
      workspaces: before.workspaces + 1,
      idempotency_keys: before.idempotency_keys,
    });
    const row = await userRow(app, user.id);
    expect(row).toMatchObject({
      email,
      name: 'Ada Lovelace',
      token_version: 0,
      external_issuer: null,
      external_subject: null,
      logged_out_at: null,
    });
    expect(await membershipRows(app, user.id)).toEqual([{ organization_id: organization.id, role: 'owner' }]);
    expect(await app.query('select name, slug from organizations where id = $1', [organization.id])).toEqual([
      { name: "Ada Lovelace's organization", slug: organization.slug },
    ]);
    expect(await app.query('select id, name, slug, is_default from workspaces where organization_id = $1', [organization.id])).toEqual([
      { id: workspace.id, name: 'Default', slug: 'default', is_default: true },
    ]);

    const me = await meRequest(res.body.access_token);
    expect(me.status, me.text).toBe(200);
    expect(me.body.user).toEqual(user);
  });

  it('stores only a salted scrypt hash of the password and never returns it', async () => {
    const password = 'Un1que-Pa55word-for-hashing';
    const emails = [uniqueEmail('hash'), uniqueEmail('hash')];
    const responses = [];
    for (const email of emails) responses.push(await signupRequest({ email, password, name: 'Hash' }));
    const login = await loginRequest({ email: emails[0], password });
    const me = await meRequest(login.body.access_token);

    for (const res of [...responses, login, me]) {
      expect(res.status, res.text).toBeLessThan(300);
      expect(res.text).not.toContain(password);
      expect(res.text.toLowerCase()).not.toContain('password');
    }
    const hashes = [];
    for (const res of responses) {
      const row = await userRow(app, res.body.user.id);
      expect(row!.password_hash).toMatch(SCRYPT_HASH);
      expect(row!.password_hash).not.toContain(password);
      expect(row!.password_hash).not.toContain(Buffer.from(password).toString('base64'));
      hashes.push(row!.password_hash);
    }
    // The same password under two accounts: different salts, different hashes.
    expect(hashes[0]).not.toBe(hashes[1]);
  });

  it('answers 409 to an email already taken, in any case, and writes nothing', async () => {
    const email = uniqueEmail('dup');
    const first = await signupRequest({ email, password: PASSWORD, name: 'First' });
    expect(first.status, first.text).toBe(201);
    const before = await tableCounts(app);

    for (const variant of [email, email.toUpperCase(), `  ${email.toUpperCase()}  `]) {
      const res = await signupRequest({ email: variant, password: 'another password', name: 'Second' });
      expectApiError(res, 409, 'CONFLICT');
      expect(res.body.access_token).toBeUndefined();
    }

    expect(await tableCounts(app)).toEqual(before);
    expect(await app.query('select id, name from users where lower(email) = lower($1)', [email])).toEqual([
      { id: first.body.user.id, name: 'First' },
    ]);
    // The first account's password still works: the attempts changed nothing.
    const login = await loginRequest({ email, password: PASSWORD });
    expect(login.status, login.text).toBe(200);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a password under 8 characters', { password: 'seven77' }, 'password'],
    ['a password over 200 characters', { password: 'p'.repeat(201) }, 'password'],
    ['an invalid email', { email: 'not-an-email' }, 'email'],
    ['a missing name', { name: undefined }, 'name'],
    ['a blank name', { name: '   ' }, 'name'],
    ['an unknown field', { role: 'admin' }, 'role'],
    ['a NUL character in the name', { name: 'Nul\u0000Name' }, 'name'],
    ['a lone surrogate in the name', { name: 'Lone \ud800 surrogate' }, 'name'],
    ['a number for a name', { name: 42 }, 'name'],
  ])('answers 400 with issues to %s, and writes nothing', async (_what, change, path) => {
    const before = await tableCounts(app);
    const email = uniqueEmail('invalid');
    const res = await signupRequest({ email, password: PASSWORD, name: 'Valid Name', ...change });

    expectApiError(res, 400, 'BAD_REQUEST');
    expect(res.body.issues).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    expect(await tableCounts(app)).toEqual(before);
    expect(await app.query('select id from users where lower(email) = lower($1)', [email])).toEqual([]);
  });

  it('accepts passwords of exactly 8 and exactly 200 characters', async () => {
    for (const password of ['8chars!!', 'p'.repeat(200)]) {
      const email = uniqueEmail('bounds');
      const res = await signupRequest({ email, password, name: 'Bounds' });
      expect(res.status, res.text).toBe(201);
      expect((await userRow(app, res.body.user.id))!.password_hash).toMatch(SCRYPT_HASH);
      const login = await loginRequest({ email, password });
      expect(login.status, login.text).toBe(200);
      expect(login.body.user.id).toBe(res.body.user.id);
    }
  });

  it('gives two accounts of the same name organizations with different slugs', async () => {
    const first = await signupRequest({ email: uniqueEmail('twin'), password: PASSWORD, name: 'Twin Name' });
    const second = await signupRequest({ email: uniqueEmail('twin'), password: PASSWORD, name: 'Twin Name' });
    expect(first.status, first.text).toBe(201);
    expect(second.status, second.text).toBe(201);

    expect(first.body.organization.name).toBe("Twin Name's organization");
    expect(second.body.organization.name).toBe("Twin Name's organization");
    expect(second.body.organization.slug).toBe(`${first.body.organization.slug}-2`);
    const rows = await app.query<{ id: string; slug: string }>('select id, slug from organizations where id in ($1, $2) order by slug', [
      first.body.organization.id,
      second.body.organization.id,
    ]);
    expect(rows).toEqual([
      { id: first.body.organization.id, slug: first.body.organization.slug },
      { id: second.body.organization.id, slug: second.body.organization.slug },
    ]);
  });
});

describe('POST /auth/login', () => {
  let account: SignedUp;
  beforeAll(async () => {
    account = await signup(app, 'Login');
  });

  it('answers 200 with a token that works on /auth/me, and changes nothing stored', async () => {
    const before = await tableCounts(app);
    const rowBefore = await userRow(app, account.user.id);
    const res = await loginRequest({ email: account.user.email, password: account.password });

    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['access_token', 'expires_in', 'token_type', 'user']);
    expect(res.body).toMatchObject({ token_type: 'Bearer', expires_in: 3600, user: account.user });
    expect(decodeClaims(res.body.access_token)).toMatchObject({ sub: account.user.id, iss: ISSUER, aud: AUDIENCE, tv: 0 });

    const me = await meRequest(res.body.access_token);
    expect(me.status, me.text).toBe(200);
    expect(me.body.user).toEqual(account.user);
    expect(await tableCounts(app)).toEqual(before);
    expect(await userRow(app, account.user.id)).toEqual(rowBefore);
  });

  it('treats the email case-insensitively', async () => {
    const res = await loginRequest({ email: account.user.email.toUpperCase(), password: account.password });
    expect(res.status, res.text).toBe(200);
    expect(res.body.user).toEqual(account.user);
    expect((await meRequest(res.body.access_token)).status).toBe(200);
  });

  it('answers a wrong password and an unknown email with the same 401', async () => {
    const before = await userRow(app, account.user.id);
    const wrongPassword = await loginRequest({ email: account.user.email, password: 'not the password' });
    const unknownEmail = await loginRequest({ email: uniqueEmail('nobody'), password: account.password });

    expectApiError(wrongPassword, 401, 'UNAUTHORIZED');
    expectApiError(unknownEmail, 401, 'UNAUTHORIZED');
    expect(wrongPassword.body).toEqual(unknownEmail.body);
    expect(await userRow(app, account.user.id)).toEqual(before);
  });

  it('spends as long on an unknown email as on a wrong password', async () => {
    const attempt = async (email: string) => {
      const started = performance.now();
      const res = await loginRequest({ email, password: 'definitely wrong' });
      const elapsed = performance.now() - started;
      expect(res.status).toBe(401);
      return elapsed;
    };
    // Warm up both paths (the first unknown email computes the stand-in hash).
    await attempt(uniqueEmail('ghost'));
    await attempt(account.user.email);

    const unknown: number[] = [];
    const known: number[] = [];
    for (let i = 0; i < 7; i++) {
      unknown.push(await attempt(uniqueEmail('ghost')));
      known.push(await attempt(account.user.email));
    }
    const ratio = median(unknown) / median(known);
    expect(ratio, `unknown ${median(unknown).toFixed(1)} ms vs known ${median(known).toFixed(1)} ms`).toBeGreaterThan(0.5);
    expect(ratio).toBeLessThan(2);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['a missing password', { password: undefined }, 'password'],
    ['a password over 200 characters', { password: 'p'.repeat(201) }, 'password'],
    ['an invalid email', { email: 'nope' }, 'email'],
    ['an unknown field', { remember_me: true }, 'remember_me'],
  ])('answers 400 with issues to %s', async (_what, change, path) => {
    const res = await loginRequest({ email: account.user.email, password: account.password, ...change });
    expectApiError(res, 400, 'BAD_REQUEST');
    expect(res.body.issues).toEqual(expect.arrayContaining([{ path, message: expect.any(String) }]));
    expect(res.body.access_token).toBeUndefined();
  });
});

describe('POST /auth/logout', () => {
  it('answers 204 with no body and revokes every token issued before it', async () => {
    const account = await signup(app, 'Logout');
    const second = await loginRequest({ email: account.user.email, password: account.password });
    expect(second.status).toBe(200);
    expect(await userRow(app, account.user.id)).toMatchObject({ token_version: 0, logged_out_at: null });

    const res = await app.request('POST', '/api/v1/auth/logout', { token: account.token });
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe('');

    const row = await userRow(app, account.user.id);
    expect(row!.token_version).toBe(1);
    expect(row!.logged_out_at).toBeInstanceOf(Date);
    for (const token of [account.token, second.body.access_token]) {
      expectApiError(await meRequest(token), 401, 'UNAUTHORIZED');
    }
    expectApiError(await app.request('POST', '/api/v1/auth/logout', { token: account.token }), 401, 'UNAUTHORIZED');
    expect((await userRow(app, account.user.id))!.token_version).toBe(1);
  });

  it('accepts a login made in the same second as the logout', async () => {
    const account = await signup(app, 'Quick');
    let token = account.token;
    let sameSecond = false;
    // Retried only when the clock ticked over between the two; each round must work anyway.
    for (let round = 0; round < 5 && !sameSecond; round++) {
      expect((await app.request('POST', '/api/v1/auth/logout', { token })).status).toBe(204);
      const login = await loginRequest({ email: account.user.email, password: account.password });
      expect(login.status, login.text).toBe(200);
      token = login.body.access_token;

      const me = await meRequest(token);
      expect(me.status, me.text).toBe(200);
      const { logged_out_at } = (await userRow(app, account.user.id))!;
      sameSecond = decodeClaims(token).iat === Math.floor(logged_out_at!.getTime() / 1000);
    }
    expect(sameSecond).toBe(true);
  });

  it('works over tRPC too', async () => {
    const account = await signup(app, 'TrpcLogout');
    const client = app.trpc(account.token);
    await expect(client.auth.logout.mutate()).resolves.toBeUndefined();

    expect((await userRow(app, account.user.id))!.token_version).toBe(1);
    await expectTrpcFailure(client.auth.me.query(), 401, 'UNAUTHORIZED');
    expectApiError(await meRequest(account.token), 401, 'UNAUTHORIZED');
  });
});

describe('GET /auth/me', () => {
  it('returns the user and each of its memberships with its role, on both faces', async () => {
    const [owner, member] = await signupMany(app, ['MeOwner', 'MeMember']);
    await addMember(app, owner.token, owner.organization.id, member, 'admin');

    const res = await meRequest(member.token);
    expect(res.status, res.text).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(['memberships', 'user', 'workspace_memberships']);
    expect(res.body.user).toEqual(member.user);
    expect(res.body.workspace_memberships).toEqual([]);
    const expected = [
      { organization_id: member.organization.id, role: 'owner' },
      { organization_id: owner.organization.id, role: 'admin' },
    ].sort(byOrganizationId);
    expect([...res.body.memberships].sort(byOrganizationId)).toEqual(expected);
    expect(await membershipRows(app, member.user.id)).toEqual(expected);

    expect(await app.trpc(member.token).auth.me.query()).toEqual(res.body);
  });
});

describe('DELETE /auth/me', () => {
  const deleteMe = (token: string) => app.request('DELETE', '/api/v1/auth/me', { token });
  const organizationsOf = (ids: string[]) =>
    app.query<{ id: string }>('select id from organizations where id = any($1::uuid[]) order by id', [ids]);
  const workspacesOf = (ids: string[]) =>
    app.query<{ id: string }>('select id from workspaces where organization_id = any($1::uuid[])', [ids]);

  it('answers 204, deleting the account and the organizations where it was the only member', async () => {
    const [other, leaving] = await signupMany(app, ['Bystander', 'Leaving']);
    const secondOrg = await app.request('POST', '/api/v1/organizations', { token: leaving.token, body: { name: 'Leaving Second' } });
    expect(secondOrg.status, secondOrg.text).toBe(201);
    await addMember(app, other.token, other.organization.id, leaving, 'admin');
    const sole = [leaving.organization.id, secondOrg.body.id as string];
    expect(await workspacesOf(sole)).toHaveLength(2);
    const before = await tableCounts(app);

    const res = await deleteMe(leaving.token);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe('');

    expect(await userRow(app, leaving.user.id)).toBeUndefined();
    expect(await membershipRows(app, leaving.user.id)).toEqual([]);
    expect(await organizationsOf(sole)).toEqual([]);
    expect(await workspacesOf(sole)).toEqual([]);
    expect(await tableCounts(app)).toEqual({
      users: before.users - 1,
      organizations: before.organizations - 2,
      memberships: before.memberships - 3,
      workspaces: before.workspaces - 2,
      idempotency_keys: before.idempotency_keys,
    });
    // The organization it shared stays, with its own owner and workspace.
    expect(await organizationsOf([other.organization.id])).toEqual([{ id: other.organization.id }]);
    expect(await workspacesOf([other.organization.id])).toEqual([{ id: other.workspace.id }]);
    expect(await membershipRows(app, other.user.id)).toEqual([{ organization_id: other.organization.id, role: 'owner' }]);

    expectApiError(await meRequest(leaving.token), 401, 'UNAUTHORIZED');
    expectApiError(await loginRequest({ email: leaving.user.email, password: leaving.password }), 401, 'UNAUTHORIZED');
  });

  it('answers 409 to the last owner of an organization with other members, on both faces, and deletes nothing', async () => {
    const [lastOwner, member] = await signupMany(app, ['LastOwner', 'StaysMember']);
    await addMember(app, lastOwner.token, lastOwner.organization.id, member, 'admin');
    // A second organization of its own, which would go with the account if it could.
    const soleOrg = await app.request('POST', '/api/v1/organizations', { token: lastOwner.token, body: { name: 'Would Go' } });
    expect(soleOrg.status, soleOrg.text).toBe(201);
    const before = await tableCounts(app);
    const membershipsBefore = await membershipRows(app, lastOwner.user.id);
    expect(membershipsBefore).toHaveLength(2);

    const res = await deleteMe(lastOwner.token);
    expectApiError(res, 409, 'CONFLICT');
    expect(res.body.message).toMatch(/owner/i);
    const error = await expectTrpcFailure(app.trpc(lastOwner.token).auth.deleteMe.mutate(), 409, 'CONFLICT');
    expect(error.message).toBe(res.body.message);

    expect(await tableCounts(app)).toEqual(before);
    expect(await userRow(app, lastOwner.user.id)).toBeDefined();
    expect(await membershipRows(app, lastOwner.user.id)).toEqual(membershipsBefore);
    expect(await organizationsOf([lastOwner.organization.id, soleOrg.body.id])).toHaveLength(2);
    expect(await workspacesOf([lastOwner.organization.id, soleOrg.body.id])).toHaveLength(2);
    expect((await meRequest(lastOwner.token)).status).toBe(200);
  });

  it('deletes one owner among several and keeps the organization', async () => {
    const [leaving, coOwner] = await signupMany(app, ['OwnerLeaving', 'CoOwner']);
    await addMember(app, leaving.token, leaving.organization.id, coOwner, 'owner');
    const before = await tableCounts(app);

    const res = await deleteMe(leaving.token);
    expect(res.status, res.text).toBe(204);
    expect(res.text).toBe('');

    expect(await userRow(app, leaving.user.id)).toBeUndefined();
    expect(await organizationsOf([leaving.organization.id])).toEqual([{ id: leaving.organization.id }]);
    expect(await workspacesOf([leaving.organization.id])).toEqual([{ id: leaving.workspace.id }]);
    expect(await app.query('select user_id, role from memberships where organization_id = $1', [leaving.organization.id])).toEqual([
      { user_id: coOwner.user.id, role: 'owner' },
    ]);
    expect(await tableCounts(app)).toEqual({ ...before, users: before.users - 1, memberships: before.memberships - 1 });
    expectApiError(await meRequest(leaving.token), 401, 'UNAUTHORIZED');

    const me = await meRequest(coOwner.token);
    expect([...me.body.memberships].sort(byOrganizationId)).toEqual(
      [
        { organization_id: coOwner.organization.id, role: 'owner' },
        { organization_id: leaving.organization.id, role: 'owner' },
      ].sort(byOrganizationId),
    );
  });
});

describe('the auth procedures over tRPC', () => {
  it('signs up and logs in with the same answers as REST', async () => {
    const email = uniqueEmail('trpc');
    const before = await tableCounts(app);
    const created = await app.trpc().auth.signup.mutate({ email, password: PASSWORD, name: 'Trpc User' });

    expect(created).toMatchObject({
      token_type: 'Bearer',
      expires_in: 3600,
      user: { email, name: 'Trpc User' },
      organization: { name: "Trpc User's organization", role: 'owner' },
      workspace: { name: 'Default', slug: 'default', is_default: true },
    });
    expect(created.workspace.organization_id).toBe(created.organization.id);
    expect(await tableCounts(app)).toEqual({
      users: before.users + 1,
      organizations: before.organizations + 1,
      memberships: before.memberships + 1,
      workspaces: before.workspaces + 1,
      idempotency_keys: before.idempotency_keys,
    });
    expect(await membershipRows(app, created.user.id)).toEqual([{ organization_id: created.organization.id, role: 'owner' }]);

    const loggedIn = await app.trpc().auth.login.mutate({ email: email.toUpperCase(), password: PASSWORD });
    expect(loggedIn.user).toEqual(created.user);
    const me = await app.trpc(loggedIn.access_token).auth.me.query();
    expect(me).toEqual({
      user: created.user,
      memberships: [{ organization_id: created.organization.id, role: 'owner' }],
      workspace_memberships: [],
    });
  });

  it('reports a validation failure with code, httpStatus and the same issues as REST, and no stack', async () => {
    const input = { email: 'not-an-email', password: 'short', name: 'X', role: 'owner' };
    const before = await tableCounts(app);
    const error = await expectTrpcFailure(app.trpc().auth.signup.mutate(input), 400, 'BAD_REQUEST');
    const rest = await signupRequest(input);
    expectApiError(rest, 400, 'BAD_REQUEST');

    expect(error.data!.issues).toEqual(rest.body.issues);
    expect(error.message).toBe(rest.body.message);
    expect(rest.body.issues.map((i: { path: string }) => i.path).sort()).toEqual(['email', 'password', 'role']);
    expect(await tableCounts(app)).toEqual(before);
  });

  it('reports a duplicate email as CONFLICT and a wrong password as UNAUTHORIZED, with the REST messages', async () => {
    const account = await signup(app, 'TrpcErrors');
    const before = await tableCounts(app);

    const conflict = await expectTrpcFailure(
      app.trpc().auth.signup.mutate({ email: account.user.email.toUpperCase(), password: PASSWORD, name: 'Again' }),
      409,
      'CONFLICT',
    );
    const restConflict = await signupRequest({ email: account.user.email, password: PASSWORD, name: 'Again' });
    expect(conflict.message).toBe(restConflict.body.message);

    const unauthorized = await expectTrpcFailure(
      app.trpc().auth.login.mutate({ email: account.user.email, password: 'wrong password' }),
      401,
      'UNAUTHORIZED',
    );
    const restUnauthorized = await loginRequest({ email: account.user.email, password: 'wrong password' });
    expect(unauthorized.message).toBe(restUnauthorized.body.message);
    expect(await tableCounts(app)).toEqual(before);
  });
});
